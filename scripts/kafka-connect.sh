#!/usr/bin/env bash
# A local Kafka Connect worker in standalone mode, run straight from Maven jars
# (scripts/connect/pom.xml) like scripts/kafka-local.sh runs the broker. It
# runs the same worker and connector files as docker-compose-kafka-connect.yml
# (connect/worker.properties, connect/file-source.properties), which take their
# site-specific values from CONNECT_* environment variables.
#
# Usage: scripts/kafka-connect.sh COMMAND
#   fetch                 fetch the Connect jars with Maven if not cached.
#   run [WORKER [CONNECTOR ...]]
#                         fetch the jars if needed, then run
#                         org.apache.kafka.connect.cli.ConnectStandalone in the
#                         foreground (it replaces this shell: its pid is this
#                         script's; SIGTERM stops it cleanly). Defaults:
#                         connect/worker.properties connect/file-source.properties.
#                         Logs go to stdout, or to $KAFKA_CONNECT_LOG_FILE.
#   classpath             print the worker's classpath (after fetching).
#
# Environment (defaults in brackets) read by the properties files:
#   CONNECT_BOOTSTRAP_SERVERS  [127.0.0.1:${KAFKA_LOCAL_PORT:-9092}, the local broker]
#   CONNECT_LISTENERS          REST listener [http://127.0.0.1:8083]; port 0 picks a free one
#   CONNECT_OFFSET_FILE        source offsets [$KAFKA_CONNECT_HOME/connect.offsets];
#                              delete it (or use another) to load a file again
#   CONNECT_EVENTS_FILE        the JSON-lines file to load (required by file-source.properties)
#   CONNECT_TOPIC              the topic to load it into [events]
# and by this script:
#   KAFKA_CONNECT_HOME         cache dir (default ~/.cache/distinctly-kafka-connect):
#                              lib/ (jars), config/ (log4j), logs/ (Maven output)
#   KAFKA_CONNECT_VERSION      Kafka version to fetch (default 4.4.0, falling back
#                              to 4.3.1); only used when lib/ is not cached
#   KAFKA_CONNECT_LOG_LEVEL    log level of org.apache.kafka.connect [INFO]
#   KAFKA_CONNECT_LOG_FILE     log to this file instead of stdout
#   KAFKA_CONNECT_HEAP_OPTS    [-Xms128m -Xmx512m]
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SCRIPT_DIR
readonly REPO="$SCRIPT_DIR/.."
readonly POM="$SCRIPT_DIR/connect/pom.xml"
readonly DEFAULT_VERSIONS=(4.4.0 4.3.1)
readonly HEAP_OPTS="${KAFKA_CONNECT_HEAP_OPTS:--Xms128m -Xmx512m}"

readonly CACHE="${KAFKA_CONNECT_HOME:-${HOME:?HOME is not set; set KAFKA_CONNECT_HOME}/.cache/distinctly-kafka-connect}"
readonly LIB="$CACHE/lib"
readonly CONF="$CACHE/config"
readonly LOGS="$CACHE/logs"

say() { printf 'kafka-connect: %s\n' "$*" >&2; }
die() {
  say "error: $*"
  exit 1
}
# check_java, jars_cached, fetch_maven_jars (they use say, die, CACHE, LIB, LOGS, POM)
# shellcheck source=scripts/maven-lib.sh
source "$SCRIPT_DIR/maven-lib.sh"

usage() {
  sed -n '/^# Usage:/,/^# Environment/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
  exit 2
}

# Fetches the jars once; serialized between concurrent callers (tests).
cmd_fetch() {
  jars_cached && return 0
  mkdir -p "$CACHE"
  if command -v flock >/dev/null 2>&1; then
    exec 9>>"$CACHE/.lock"
    flock -w 600 9 || die "timed out waiting for another kafka-connect.sh ($CACHE/.lock)"
    jars_cached && { exec 9>&-; return 0; }
  fi
  local versions="${DEFAULT_VERSIONS[*]}"
  fetch_maven_jars "Kafka Connect" "${KAFKA_CONNECT_VERSION:-$versions}" connect-runtime connect-file
  exec 9>&- # release the fetch lock (fd 9)
}

write_log_config() {
  local level=${KAFKA_CONNECT_LOG_LEVEL:-INFO}
  [[ $level =~ ^(TRACE|DEBUG|INFO|WARN|ERROR|OFF)$ ]] ||
    die "KAFKA_CONNECT_LOG_LEVEL must be TRACE, DEBUG, INFO, WARN, ERROR or OFF, got '$level'"
  mkdir -p "$CONF"
  local f="$CONF/log4j2-$level.properties"
  # Kafka clients and config dumps are verbose at INFO; keep them at WARN.
  cat >"$f.tmp.$$" <<EOF
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.target = SYSTEM_OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.out.ref = OUT
logger.connect.name = org.apache.kafka.connect
logger.connect.level = $level
EOF
  mv "$f.tmp.$$" "$f"
  printf '%s\n' "$f"
}

cmd_run() {
  local worker=${1:-$REPO/connect/worker.properties}
  (($# > 0)) && shift
  local -a connectors=("$@")
  ((${#connectors[@]} > 0)) || connectors=("$REPO/connect/file-source.properties")
  local f
  for f in "$worker" "${connectors[@]}"; do
    [[ -f $f ]] || die "no such properties file: $f"
  done
  check_java "Kafka Connect 4"
  cmd_fetch

  export CONNECT_BOOTSTRAP_SERVERS="${CONNECT_BOOTSTRAP_SERVERS:-127.0.0.1:${KAFKA_LOCAL_PORT:-9092}}"
  export CONNECT_LISTENERS="${CONNECT_LISTENERS:-http://127.0.0.1:8083}"
  export CONNECT_OFFSET_FILE="${CONNECT_OFFSET_FILE:-$CACHE/connect.offsets}"
  export CONNECT_TOPIC="${CONNECT_TOPIC:-events}"
  if grep -q 'env:CONNECT_EVENTS_FILE' "${connectors[@]}"; then
    [[ -n ${CONNECT_EVENTS_FILE:-} ]] || die "set CONNECT_EVENTS_FILE to the JSON-lines file to load"
    [[ -r $CONNECT_EVENTS_FILE ]] || die "cannot read CONNECT_EVENTS_FILE=$CONNECT_EVENTS_FILE"
  fi
  mkdir -p "$(dirname "$CONNECT_OFFSET_FILE")"

  local log4j
  log4j=$(write_log_config)
  if [[ -n ${KAFKA_CONNECT_LOG_FILE:-} ]]; then
    mkdir -p "$(dirname "$KAFKA_CONNECT_LOG_FILE")"
    exec >>"$KAFKA_CONNECT_LOG_FILE" 2>&1
  fi
  say "Kafka Connect $(cat "$LIB/.complete") standalone: bootstrap $CONNECT_BOOTSTRAP_SERVERS," \
    "topic $CONNECT_TOPIC, file ${CONNECT_EVENTS_FILE:-(none)}, REST $CONNECT_LISTENERS"
  local -a heap
  read -r -a heap <<<"$HEAP_OPTS"
  exec java "${heap[@]}" -XX:+UseSerialGC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$log4j" \
    -cp "$LIB/*" org.apache.kafka.connect.cli.ConnectStandalone "$worker" "${connectors[@]}"
}

main() {
  (($# >= 1)) || usage
  local cmd=$1
  shift
  case $cmd in
    fetch) (($# == 0)) || usage; check_java "Kafka Connect 4"; cmd_fetch ;;
    run) cmd_run "$@" ;;
    classpath) (($# == 0)) || usage; cmd_fetch; printf '%s/*\n' "$LIB" ;;
    -h | --help | help) usage ;;
    *) say "unknown command '$cmd'"; usage ;;
  esac
}

main "$@"
