#!/usr/bin/env bash
# A local single-node Apache Kafka 4.x (KRaft, combined broker+controller) for
# development and the integration tests. Needs only Java 17+, Maven and
# openssl: the jars are fetched with Maven (scripts/kafka/pom.xml) into a cache
# outside the repository, and the broker runs straight from them (`kafka.Kafka`);
# openssl makes the certificates of the SASL_SSL listener (see TLS below).
#
# Usage: scripts/kafka-local.sh COMMAND
#   start                 fetch the jars if not cached, format the storage if
#                         needed (data is kept across stop/start), start the
#                         broker in the background and wait until it answers
#                         metadata requests. No-op if already running.
#   stop                  stop the broker (SIGTERM, SIGKILL after 30 s).
#   status                print "running ..." (exit 0) or "stopped" (exit 1).
#   bootstrap             print the PLAINTEXT bootstrap address (127.0.0.1:9092).
#   ca                    print the absolute path of the CA certificate (PEM) that
#                         signs the SASL_SSL listener's certificate, for clients
#                         (librdkafka's ssl.ca.location); generated if missing.
#   topic-create NAME PARTITIONS [KEY=VALUE ...]
#                         create a topic (replication factor 1) if it does not
#                         exist yet, e.g. `topic-create t 3 cleanup.policy=compact`.
#   kill9                 SIGKILL the broker (crash tests); `start` recovers.
#   tool CLASS [ARGS ...] run a Java main class from the Kafka jars with quiet
#                         logging, e.g. `tool org.apache.kafka.tools.ConsoleProducer
#                         --bootstrap-server 127.0.0.1:9092 --topic t`.
#
# Listeners (all on 127.0.0.1):
#   PLAINTEXT       ${KAFKA_LOCAL_PORT:-9092}
#   SASL_PLAINTEXT  ${KAFKA_LOCAL_SASL_PORT:-9094}, SASL mechanism PLAIN,
#                   user "distinctly", password "distinctly-secret"
#                   (client settings: $KAFKA_LOCAL_HOME/config/client-sasl.properties)
#   SASL_SSL        ${KAFKA_LOCAL_SSL_PORT:-9095}, the same SASL/PLAIN user over TLS;
#                   certificate for 127.0.0.1 and localhost, signed by the CA
#                   that `ca` prints (client settings, Java truststore included:
#                   $KAFKA_LOCAL_HOME/config/client-sasl-ssl.properties)
#   CONTROLLER      ${KAFKA_LOCAL_CONTROLLER_PORT:-9093}
#
# TLS: `start` generates, once, into $KAFKA_LOCAL_HOME/tls/ with openssl:
#   ca.key, ca.pem  the CA: RSA 2048 key and self-signed certificate, PEM,
#                   valid 20 years
#   broker.p12      the broker's PKCS12 keystore (password "distinctly-keystore"):
#                   RSA 2048 key, certificate (subjectAltName IP:127.0.0.1,
#                   DNS:localhost; valid 10 years) signed by the CA, and the CA
#   Each is made again at `start` when missing or within 30 days of expiry; the
#   broker's certificate also when the CA does not verify it. The CA only
#   changes when it is missing or expiring, so clients keep trusting ca.pem.
#
# Environment:
#   KAFKA_LOCAL_HOME           cache/state dir (default ~/.cache/distinctly-kafka):
#                              lib/ (jars), data/ (log dir), config/, logs/, tls/,
#                              kafka.pid
#   KAFKA_LOCAL_VERSION        Kafka version to fetch (default: 4.4.0, falling
#                              back to 4.3.1); only used when lib/ is not cached
#   KAFKA_LOCAL_START_TIMEOUT  seconds to wait for the broker (default 90)
#   KAFKA_LOCAL_HEAP_OPTS      broker heap options (default "-Xms256m -Xmx512m")
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SCRIPT_DIR
readonly POM="$SCRIPT_DIR/kafka/pom.xml"

readonly HOST=127.0.0.1
readonly PORT="${KAFKA_LOCAL_PORT:-9092}"
readonly SASL_PORT="${KAFKA_LOCAL_SASL_PORT:-9094}"
readonly SSL_PORT="${KAFKA_LOCAL_SSL_PORT:-9095}"
readonly CONTROLLER_PORT="${KAFKA_LOCAL_CONTROLLER_PORT:-9093}"
readonly SASL_USER=distinctly
readonly SASL_PASSWORD=distinctly-secret
readonly START_TIMEOUT="${KAFKA_LOCAL_START_TIMEOUT:-90}"
readonly STOP_TIMEOUT=30
readonly HEAP_OPTS="${KAFKA_LOCAL_HEAP_OPTS:--Xms256m -Xmx512m}"
readonly DEFAULT_VERSIONS=(4.4.0 4.3.1)

readonly CACHE="${KAFKA_LOCAL_HOME:-${HOME:?HOME is not set; set KAFKA_LOCAL_HOME}/.cache/distinctly-kafka}"
readonly LIB="$CACHE/lib"
readonly DATA="$CACHE/data"
readonly CONF="$CACHE/config"
readonly LOGS="$CACHE/logs"
readonly PIDFILE="$CACHE/kafka.pid"
readonly SERVER_PROPS="$CONF/server.properties"
# Absolute even for a relative KAFKA_LOCAL_HOME: `ca` prints it and client
# settings written here must work from any directory.
if [[ $CACHE == /* ]]; then TLS="$CACHE/tls"; else TLS="$PWD/$CACHE/tls"; fi
readonly TLS
readonly CA_KEY="$TLS/ca.key"
readonly CA_PEM="$TLS/ca.pem"
readonly KEYSTORE="$TLS/broker.p12"
# A local test broker's keystore; the password is in server.properties anyway.
readonly KEYSTORE_PASSWORD=distinctly-keystore
readonly CA_DAYS=7300
readonly BROKER_DAYS=3650
readonly RENEW_BEFORE_SECONDS=$((30 * 24 * 3600))

# Set while `start` has launched a broker that is not confirmed up yet; the
# EXIT trap kills it so that a failed start leaves no process behind.
STARTING_PID=""
# A scratch dir of the certificate generation, removed by the EXIT trap.
TLS_TMP=""

say() { printf 'kafka-local: %s\n' "$*" >&2; }
die() {
  say "error: $*"
  exit 1
}
# check_java, jars_cached, fetch_maven_jars (they use say, die, CACHE, LIB, LOGS, POM)
# shellcheck source=scripts/maven-lib.sh
source "$SCRIPT_DIR/maven-lib.sh"

usage() {
  sed -n '/^# Usage:/,/^# Environment:/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
  exit 2
}

check_port_var() {
  if ! [[ $2 =~ ^[0-9]+$ ]] || ((10#$2 == 0 || 10#$2 > 65535)); then
    die "$1 must be a TCP port number, got '$2'"
  fi
}

check_ports() {
  check_port_var KAFKA_LOCAL_PORT "$PORT"
  check_port_var KAFKA_LOCAL_SASL_PORT "$SASL_PORT"
  check_port_var KAFKA_LOCAL_SSL_PORT "$SSL_PORT"
  check_port_var KAFKA_LOCAL_CONTROLLER_PORT "$CONTROLLER_PORT"
  if [[ -n $(printf '%s\n' $((10#$PORT)) $((10#$SASL_PORT)) $((10#$SSL_PORT)) $((10#$CONTROLLER_PORT)) | sort | uniq -d) ]]; then
    die "the ports must differ: KAFKA_LOCAL_PORT=$PORT KAFKA_LOCAL_SASL_PORT=$SASL_PORT" \
      "KAFKA_LOCAL_SSL_PORT=$SSL_PORT KAFKA_LOCAL_CONTROLLER_PORT=$CONTROLLER_PORT"
  fi
}

# --- processes -------------------------------------------------------------

# True if PID is a live (non-zombie) broker started by this script for this
# cache dir; guards against stale pid files and reused pids.
is_our_broker() {
  local pid=$1 cmdline
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  if [[ -r /proc/$pid/cmdline ]]; then
    cmdline=$({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null) || return 1
    [[ $cmdline == *kafka.Kafka* && $cmdline == *"$SERVER_PROPS"* ]]
  fi
}

# True if PID exists and is not a zombie (an exited child not yet reaped).
proc_alive() {
  local stat
  kill -0 "$1" 2>/dev/null || return 1
  if [[ -r /proc/$1/stat ]]; then
    stat=$({ cat "/proc/$1/stat"; } 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat:0:1} != Z ]]
  fi
}

# Prints the broker's pid if it is running; removes a stale pid file.
running_pid() {
  local pid=""
  [[ -f $PIDFILE ]] || return 1
  read -r pid <"$PIDFILE" || true
  if is_our_broker "$pid"; then
    printf '%s\n' "$pid"
    return 0
  fi
  rm -f "$PIDFILE"
  return 1
}

port_open() {
  # shellcheck disable=SC2016 # expanded by the inner bash
  timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$HOST" "$1" 2>/dev/null
}

# Waits up to $2 seconds for process $1 to end.
wait_gone() {
  local pid=$1 deadline=$((SECONDS + $2))
  while is_our_broker "$pid"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

# Waits up to $1 seconds until the listener ports are closed: a killed JVM's
# pid stops looking like a broker (empty cmdline) while its other threads are
# still exiting and holding the sockets, which made an immediate `start` fail
# with "port ... already in use". Gives up silently (`start` checks again).
wait_ports_closed() {
  local deadline=$((SECONDS + $1)) p
  for p in "$PORT" "$SASL_PORT" "$SSL_PORT" "$CONTROLLER_PORT"; do
    while port_open "$p"; do
      ((SECONDS < deadline)) || return 0
      sleep 0.1
    done
  done
}

# SIGTERM, then SIGKILL if still alive after $2 seconds.
terminate() {
  local pid=$1 grace=$2
  kill -TERM "$pid" 2>/dev/null || return 0
  if ! wait_gone "$pid" "$grace"; then
    say "broker (pid $pid) still alive after ${grace}s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone "$pid" 15 || die "could not kill broker (pid $pid)"
  fi
}

# Byte offsets of the log files when `start` launched the broker, so that a
# failure shows only this run's lines.
OUT_OFFSET=0
SERVER_LOG_OFFSET=0

file_size() { stat -c %s "$1" 2>/dev/null || echo 0; }

# Prints (to stderr) the last lines file $1 got since offset $2.
tail_since() {
  local f=$1 off=$2
  local size
  size=$(file_size "$f")
  ((size >= off)) || off=0 # rolled over meanwhile
  ((size > off)) || return 0
  say "---- $f (last lines of this run) ----"
  tail -c +"$((off + 1))" "$f" | tail -n 40 >&2 || true
}

show_logs() {
  tail_since "$LOGS/kafka.out" "$OUT_OFFSET"
  tail_since "$LOGS/server.log" "$SERVER_LOG_OFFSET"
}

on_exit() {
  local rc=$?
  if [[ -n $TLS_TMP ]]; then
    rm -rf "$TLS_TMP"
  fi
  if [[ -n $STARTING_PID ]]; then
    say "start failed; cleaning up the broker process (pid $STARTING_PID)"
    terminate "$STARTING_PID" 10 || true
    wait "$STARTING_PID" 2>/dev/null || true
    rm -f "$PIDFILE"
    show_logs
  fi
  exit "$rc"
}

# Serializes start/stop/kill9 (and the jar download) between concurrent callers.
take_lock() {
  mkdir -p "$CACHE"
  if command -v flock >/dev/null 2>&1; then
    exec 9>>"$CACHE/.lock"
    flock -w 600 9 || die "timed out waiting for another kafka-local.sh ($CACHE/.lock)"
  fi
}

# --- java and jars -----------------------------------------------------------

fetch_jars() {
  jars_cached && return 0
  local versions="${DEFAULT_VERSIONS[*]}"
  fetch_maven_jars Kafka "${KAFKA_LOCAL_VERSION:-$versions}" "kafka_2.13" kafka-tools
}

kafka_version() { cat "$LIB/.complete"; }

# Runs a main class from the jars the way Kafka's command-line tools run.
kafka_java() {
  java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true -Dlog4j2.shutdownHookEnabled=false \
    -Dlog4j2.configurationFile="$CONF/log4j2-tools.properties" \
    -cp "$LIB/*" "$@"
}

# --- TLS (the SASL_SSL listener) -----------------------------------------------

check_openssl() {
  command -v openssl >/dev/null 2>&1 ||
    die "openssl not found on PATH (needed to generate the SASL_SSL listener's certificates; e.g. apt-get install openssl)"
}

# Runs openssl quietly; shows what it said if it fails.
ossl() {
  local out
  if ! out=$(openssl "$@" 2>&1); then
    printf '%s\n' "$out" | grep -v '^[.+*]*$' | tail -n 20 >&2 || true
    die "'openssl $1' failed"
  fi
}

# True if the CA is usable: key and certificate present and matching, and the
# certificate valid for at least RENEW_BEFORE_SECONDS more.
ca_ok() {
  local cert_pub key_pub
  [[ -s $CA_KEY && -s $CA_PEM ]] || return 1
  openssl x509 -in "$CA_PEM" -noout -checkend "$RENEW_BEFORE_SECONDS" >/dev/null 2>&1 || return 1
  cert_pub=$(openssl x509 -in "$CA_PEM" -noout -pubkey 2>/dev/null) || return 1
  key_pub=$(openssl pkey -in "$CA_KEY" -pubout 2>/dev/null) || return 1
  [[ -n $cert_pub && $cert_pub == "$key_pub" ]]
}

# True if the keystore opens with its password and holds a certificate that the
# CA verifies for a TLS server at 127.0.0.1 and localhost, valid for at least
# RENEW_BEFORE_SECONDS more.
keystore_ok() {
  local cert
  [[ -s $KEYSTORE && -s $CA_PEM ]] || return 1
  cert=$(openssl pkcs12 -in "$KEYSTORE" -passin "pass:$KEYSTORE_PASSWORD" -nokeys -clcerts 2>/dev/null) || return 1
  [[ $cert == *"BEGIN CERTIFICATE"* ]] || return 1
  openssl x509 -noout -checkend "$RENEW_BEFORE_SECONDS" <<<"$cert" >/dev/null 2>&1 || return 1
  openssl verify -CAfile "$CA_PEM" -purpose sslserver -verify_ip "$HOST" -verify_hostname localhost \
    <<<"$cert" >/dev/null 2>&1
}

# A scratch dir (private) with an openssl config holding the extensions of
# both certificates; sets TLS_TMP.
tls_scratch() {
  mkdir -p "$TLS"
  [[ -n $TLS_TMP ]] || TLS_TMP=$(mktemp -d "$TLS/.tmp.XXXXXX")
  cat >"$TLS_TMP/openssl.cnf" <<EOF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca_ext]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[broker_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:$HOST, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
EOF
}

random_serial() { printf '0x%s' "$(openssl rand -hex 16)"; }

# Makes a new CA (ca.key, ca.pem); the caller holds the lock.
generate_ca() {
  tls_scratch
  local tmp=$TLS_TMP
  say "generating a CA for the SASL_SSL listener ($CA_PEM, valid $CA_DAYS days)"
  ossl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$tmp/ca.key"
  ossl req -config "$tmp/openssl.cnf" -new -x509 -key "$tmp/ca.key" -sha256 -days "$CA_DAYS" \
    -set_serial "$(random_serial)" -extensions ca_ext \
    -subj "/O=distinctly/CN=kafka-local CA $(date -u +%Y-%m-%dT%H:%M:%SZ)" -out "$tmp/ca.pem"
  chmod 600 "$tmp/ca.key"
  chmod 644 "$tmp/ca.pem"
  # The key first: a ca.pem never pairs with an older key (ca_ok checks anyway).
  mv -f "$tmp/ca.key" "$CA_KEY"
  mv -f "$tmp/ca.pem" "$CA_PEM"
}

# Makes a new broker key and certificate signed by the CA, into broker.p12
# (key, certificate, CA); the caller holds the lock.
generate_keystore() {
  tls_scratch
  local tmp=$TLS_TMP
  say "generating the SASL_SSL listener's certificate for $HOST and localhost ($KEYSTORE, valid $BROKER_DAYS days)"
  ossl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$tmp/broker.key"
  ossl req -config "$tmp/openssl.cnf" -new -key "$tmp/broker.key" -sha256 \
    -subj "/O=distinctly/CN=localhost" -out "$tmp/broker.csr"
  ossl x509 -req -in "$tmp/broker.csr" -CA "$CA_PEM" -CAkey "$CA_KEY" -set_serial "$(random_serial)" \
    -sha256 -days "$BROKER_DAYS" -extfile "$tmp/openssl.cnf" -extensions broker_ext -out "$tmp/broker.pem"
  ossl pkcs12 -export -name kafka -inkey "$tmp/broker.key" -in "$tmp/broker.pem" -certfile "$CA_PEM" \
    -passout "pass:$KEYSTORE_PASSWORD" -out "$tmp/broker.p12"
  chmod 600 "$tmp/broker.p12"
  mv -f "$tmp/broker.p12" "$KEYSTORE"
}

# Makes sure tls/ has a usable CA and a keystore it verifies, generating what is
# missing, expiring or not matching (idempotent; the caller holds the lock).
ensure_tls() {
  check_openssl
  ca_ok || generate_ca
  keystore_ok || generate_keystore
  keystore_ok || die "the generated keystore $KEYSTORE does not verify against $CA_PEM"
  if [[ -n $TLS_TMP ]]; then
    rm -rf "$TLS_TMP"
    TLS_TMP=""
  fi
}

# --- configuration -------------------------------------------------------------

write_config() {
  mkdir -p "$CONF" "$LOGS"
  local jaas="org.apache.kafka.common.security.plain.PlainLoginModule required"
  cat >"$SERVER_PROPS" <<EOF
# Generated by scripts/kafka-local.sh on every start; edits are overwritten.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$CONTROLLER_PORT
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://$HOST:$PORT,SASL_PLAINTEXT://$HOST:$SASL_PORT,SASL_SSL://$HOST:$SSL_PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$PORT,SASL_PLAINTEXT://$HOST:$SASL_PORT,SASL_SSL://$HOST:$SSL_PORT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL
inter.broker.listener.name=PLAINTEXT

# SASL/PLAIN on the SASL_PLAINTEXT and SASL_SSL listeners: one user, $SASL_USER.
sasl.enabled.mechanisms=PLAIN
listener.name.sasl_plaintext.sasl.enabled.mechanisms=PLAIN
listener.name.sasl_plaintext.plain.sasl.jaas.config=$jaas username="$SASL_USER" password="$SASL_PASSWORD" user_$SASL_USER="$SASL_PASSWORD";
listener.name.sasl_ssl.sasl.enabled.mechanisms=PLAIN
listener.name.sasl_ssl.plain.sasl.jaas.config=$jaas username="$SASL_USER" password="$SASL_PASSWORD" user_$SASL_USER="$SASL_PASSWORD";
# TLS on the SASL_SSL listener: key and certificate (127.0.0.1, localhost)
# signed by the CA in $CA_PEM; no client certificates.
listener.name.sasl_ssl.ssl.keystore.type=PKCS12
listener.name.sasl_ssl.ssl.keystore.location=$KEYSTORE
listener.name.sasl_ssl.ssl.keystore.password=$KEYSTORE_PASSWORD
listener.name.sasl_ssl.ssl.truststore.type=PEM
listener.name.sasl_ssl.ssl.truststore.location=$CA_PEM
listener.name.sasl_ssl.ssl.client.auth=none

log.dirs=$DATA
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
delete.topic.enable=true
# A test broker: never delete data by age/size (records with old timestamps
# would otherwise vanish), and keep the log cleaner's buffer small.
log.retention.ms=-1
log.cleaner.dedupe.buffer.size=33554432
# After a crash (kill9) the restarted controller only accepts the broker's
# re-registration once the old registration's session has timed out (default
# 9 s); the broker heartbeats its own controller in-process, so keep it short.
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=4000
num.network.threads=2
num.io.threads=4
EOF

  cat >"$CONF/log4j2-broker.properties" <<'EOF'
status = warn
appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.filePattern = ${sys:kafka.logs.dir}/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 50MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
EOF

  cat >"$CONF/log4j2-tools.properties" <<'EOF'
status = warn
shutdownHook = disable
appender.stderr.type = Console
appender.stderr.name = STDERR
appender.stderr.target = SYSTEM_ERR
appender.stderr.layout.type = PatternLayout
appender.stderr.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stderr.ref = STDERR
EOF

  # Admin client settings for the readiness probe: give up quickly.
  cat >"$CONF/probe.properties" <<'EOF'
request.timeout.ms=5000
default.api.timeout.ms=10000
EOF

  # Client settings for the SASL_PLAINTEXT listener (for --command-config,
  # --producer.config, --consumer.config of the Kafka tools).
  cat >"$CONF/client-sasl.properties" <<EOF
bootstrap.servers=$HOST:$SASL_PORT
security.protocol=SASL_PLAINTEXT
sasl.mechanism=PLAIN
sasl.jaas.config=$jaas username="$SASL_USER" password="$SASL_PASSWORD";
EOF

  # The same for the SASL_SSL listener (Java clients verify the host name,
  # 127.0.0.1, against the certificate by default).
  cat >"$CONF/client-sasl-ssl.properties" <<EOF
bootstrap.servers=$HOST:$SSL_PORT
security.protocol=SASL_SSL
sasl.mechanism=PLAIN
sasl.jaas.config=$jaas username="$SASL_USER" password="$SASL_PASSWORD";
ssl.truststore.type=PEM
ssl.truststore.location=$CA_PEM
EOF
}

format_storage_if_needed() {
  if [[ -f $DATA/meta.properties ]]; then
    return 0
  fi
  rm -rf "$DATA"
  local cluster_id
  cluster_id=$(kafka_java kafka.tools.StorageTool random-uuid) || die "could not generate a cluster id"
  say "formatting KRaft storage in $DATA (cluster id $cluster_id)"
  kafka_java kafka.tools.StorageTool format --cluster-id "$cluster_id" --config "$SERVER_PROPS" >"$LOGS/format.log" 2>&1 || {
    cat "$LOGS/format.log" >&2
    rm -rf "$DATA"
    die "formatting the storage failed"
  }
}

# True once the broker answers a metadata request on the PLAINTEXT listener.
broker_answers() {
  timeout 30 java -Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Dlog4j2.configurationFile="$CONF/log4j2-tools.properties" \
    -cp "$LIB/*" org.apache.kafka.tools.TopicCommand \
    --bootstrap-server "$HOST:$PORT" --command-config "$CONF/probe.properties" --list \
    >/dev/null 2>&1
}

# --- commands --------------------------------------------------------------------

cmd_start() {
  check_ports
  [[ $START_TIMEOUT =~ ^[0-9]+$ ]] || die "KAFKA_LOCAL_START_TIMEOUT must be a number of seconds"
  take_lock
  local t0=$SECONDS pid
  if pid=$(running_pid); then
    if port_open "$PORT"; then
      say "already running (pid $pid, bootstrap $HOST:$PORT); nothing to do"
      if ! port_open "$SSL_PORT"; then
        say "warning: nothing answers on the SASL_SSL port $HOST:$SSL_PORT (a broker started" \
          "by an older kafka-local.sh?); to add it: '$0 stop && $0 start'"
      elif command -v openssl >/dev/null 2>&1 && ! keystore_ok; then
        say "warning: the broker's certificate ($KEYSTORE) does not verify against $CA_PEM" \
          "or expires soon; to renew it: '$0 stop && $0 start'"
      fi
      return 0
    fi
    die "broker process $pid exists but port $PORT does not answer; run '$0 stop' first (logs: $LOGS)"
  fi
  local p
  for p in "$PORT" "$SASL_PORT" "$SSL_PORT" "$CONTROLLER_PORT"; do
    if port_open "$p"; then
      die "port $HOST:$p is already in use by another process (another Kafka?); stop it or set KAFKA_LOCAL_*PORT"
    fi
  done

  check_java "Kafka 4"
  ensure_tls
  fetch_jars
  write_config
  format_storage_if_needed

  local -a heap launcher=()
  read -r -a heap <<<"$HEAP_OPTS"
  # Own session: the broker must not die with the caller's process group.
  command -v setsid >/dev/null 2>&1 && launcher=(setsid)
  {
    echo
    echo "==== $(date '+%Y-%m-%d %H:%M:%S') starting Kafka $(kafka_version) ===="
  } >>"$LOGS/kafka.out"
  say "starting Kafka $(kafka_version) (logs: $LOGS/server.log)"
  OUT_OFFSET=$(file_size "$LOGS/kafka.out")
  SERVER_LOG_OFFSET=$(file_size "$LOGS/server.log")
  "${launcher[@]}" java "${heap[@]}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
    -Djava.awt.headless=true -Dlog4j2.shutdownHookEnabled=false -Dkafka.logs.dir="$LOGS" \
    -Dlog4j2.configurationFile="$CONF/log4j2-broker.properties" \
    -cp "$LIB/*" kafka.Kafka "$SERVER_PROPS" \
    </dev/null >>"$LOGS/kafka.out" 2>&1 9>&- &
  pid=$!
  STARTING_PID=$pid
  printf '%s\n' "$pid" >"$PIDFILE"

  local deadline=$((SECONDS + START_TIMEOUT))
  while :; do
    # (Not is_our_broker: right after the fork, the child is still bash.)
    proc_alive "$pid" || die "the broker exited during startup"
    if port_open "$PORT" && broker_answers; then
      break
    fi
    ((SECONDS < deadline)) || die "the broker did not answer on $HOST:$PORT within ${START_TIMEOUT}s"
    sleep 0.5
  done
  STARTING_PID=""
  say "running (pid $pid): PLAINTEXT $HOST:$PORT, SASL_PLAINTEXT/PLAIN $HOST:$SASL_PORT," \
    "SASL_SSL/PLAIN $HOST:$SSL_PORT (user $SASL_USER; CA $CA_PEM), controller $HOST:$CONTROLLER_PORT;" \
    "started in $((SECONDS - t0))s"
}

cmd_stop() {
  take_lock
  local pid
  if ! pid=$(running_pid); then
    say "not running"
    return 0
  fi
  say "stopping broker (pid $pid) ..."
  terminate "$pid" "$STOP_TIMEOUT"
  rm -f "$PIDFILE"
  wait_ports_closed 10
  say "stopped"
}

cmd_kill9() {
  take_lock
  local pid
  if ! pid=$(running_pid); then
    say "not running"
    return 0
  fi
  kill -KILL "$pid" 2>/dev/null || true
  wait_gone "$pid" 15 || die "broker (pid $pid) survived SIGKILL"
  rm -f "$PIDFILE"
  wait_ports_closed 10
  say "killed broker (pid $pid) with SIGKILL"
}

cmd_status() {
  local pid ssl="sasl_ssl $HOST:$SSL_PORT"
  if pid=$(running_pid); then
    if port_open "$PORT"; then
      port_open "$SSL_PORT" || ssl="no sasl_ssl on $HOST:$SSL_PORT: restart to add it"
      echo "running (pid $pid, Kafka $(kafka_version 2>/dev/null || echo '?'), bootstrap $HOST:$PORT, sasl $HOST:$SASL_PORT, $ssl)"
      return 0
    fi
    echo "not ready (pid $pid alive, port $PORT not answering)"
    return 1
  fi
  echo "stopped"
  return 1
}

# Prints the CA certificate's path, generating the CA if it is missing or
# expiring (not the broker's certificate: `start` does that).
cmd_ca() {
  check_openssl
  if ! ca_ok; then
    take_lock
    if ! ca_ok; then
      generate_ca
      rm -rf "$TLS_TMP"
      TLS_TMP=""
      if running_pid >/dev/null; then
        say "warning: the running broker's certificate is not signed by this new CA; restart it: '$0 stop && $0 start'"
      fi
    fi
  fi
  printf '%s\n' "$CA_PEM"
}

require_running() {
  running_pid >/dev/null || die "the broker is not running; run '$0 start' first"
}

cmd_topic_create() {
  (($# >= 2)) || die "usage: $0 topic-create NAME PARTITIONS [KEY=VALUE ...]"
  local name=$1 partitions=$2 kv
  shift 2
  [[ $partitions =~ ^[1-9][0-9]*$ ]] || die "PARTITIONS must be a positive integer, got '$partitions'"
  local -a configs=()
  for kv in "$@"; do
    [[ $kv == ?*=* ]] || die "topic config must be KEY=VALUE, got '$kv'"
    configs+=(--config "$kv")
  done
  require_running
  kafka_java org.apache.kafka.tools.TopicCommand --bootstrap-server "$HOST:$PORT" \
    --create --if-not-exists --topic "$name" --partitions "$partitions" \
    --replication-factor 1 "${configs[@]}"
}

cmd_tool() {
  (($# >= 1)) || die "usage: $0 tool MAIN_CLASS [ARGS ...]"
  jars_cached || die "the Kafka jars are not cached yet; run '$0 start' first"
  [[ -f $CONF/log4j2-tools.properties ]] || write_config
  kafka_java "$@"
}

main() {
  (($# >= 1)) || usage
  local cmd=$1
  shift
  trap on_exit EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  case $cmd in
    start) (($# == 0)) || usage; cmd_start ;;
    stop) (($# == 0)) || usage; cmd_stop ;;
    status) (($# == 0)) || usage; cmd_status ;;
    kill9) (($# == 0)) || usage; cmd_kill9 ;;
    bootstrap) (($# == 0)) || usage; echo "$HOST:$PORT" ;;
    ca) (($# == 0)) || usage; cmd_ca ;;
    topic-create) cmd_topic_create "$@" ;;
    tool) cmd_tool "$@" ;;
    -h | --help | help) usage ;;
    *) say "unknown command '$cmd'"; usage ;;
  esac
}

main "$@"
