#!/usr/bin/env bash
# Drain throughput of `distinctly run --exit-when-idle` against the local broker
# (scripts/kafka-local.sh), next to two baselines drained in the same run from the same topics:
#   kcat     `kcat -C -e -o beginning -q > /dev/null`: librdkafka reading to the end of every
#            partition and discarding, the ceiling a Kafka consumer can reach here;
#   python   scripts/bench_kafka_baseline.py: the old app's logic (confluent-kafka consumer,
#            json.loads, one Python set per minute), the historical baseline.
#
# usage: scripts/bench-kafka.sh
#
# Data: `distinctly generate` (cached in BENCH_DIR; no invalid lines and no bit-flipped
# timestamps, late events stay in), produced with `kcat -P -l FILE` (no key; librdkafka's
# sticky partitioner would put whole seconds of keyless messages on one partition, so it is
# switched off and each message goes to a random partition; the spread is checked)
# to fresh topics: realistic ~2 KB frames, minimal ~45 B frames, and a tiny topic (the first
# 100 realistic frames) whose drain time is each consumer's fixed overhead (start-up, group
# join, and for distinctly the 0.5 s of quiet that --exit-when-idle waits for, then flush and
# commit). Not an empty topic: at offset 0 = end, the first fetch is held by the broker for
# fetch.wait.max.ms before the end of the partition is seen, an overhead no real drain has. Every distinctly run
# gets a fresh consumer group and a fresh compacted output topic; the exact run's output on
# the realistic topic (last record per key) is compared with the generator's truth.
#
# Tuned runs (BENCH_TUNED, default on): librdkafka stops fetching a partition whose local queue
# holds queued.min.messages (100000) messages or queued.max.messages.kbytes, and then waits
# fetch.queue.backoff.ms (default 1000 ms; fixed at 1 s before librdkafka 2.4, e.g. kcat's) before
# it fetches that partition again. A consumer slower than the fetcher keeps hitting that pause,
# so with defaults a drain is partly idle waiting (distinctly sets fetch.queue.backoff.ms=10
# itself). Besides the default runs, the script drains each topic with
# `kcat -X queued.min.messages=1000000`, and with distinctly hll without its Prometheus exporter
# (DISTINCTLY_METRICS_ADDR empty; every other distinctly run serves metrics, as in production),
# which measures what the metrics cost; the tables show consumer and broker CPU.
#
# Environment:
#   BENCH_DIR              data, outputs and the report (default /tmp/distinctly-bench)
#   BENCH_EVENTS           realistic frames (default 300000, ~600 MB)
#   BENCH_USERS            users of the realistic data (default 100000)
#   BENCH_MINIMAL_EVENTS   minimal frames (default 3000000)
#   BENCH_MINIMAL_USERS    users of the minimal data (default 1000000)
#   BENCH_PARTITIONS       partitions of the input topics (default 3)
#   BENCH_TIMEOUT          seconds one drain may take before it is killed (default 900)
#   BENCH_TUNED=0          leave out the two tuned runs per topic (see below; default: run them)
#   BENCH_REPS             rounds of tuned kcat, exact and hll per topic (default 3; the first
#                          round is the main runs): the report gives their median ratio
#   BENCH_PERF=1           also `perf record -g` distinctly run (hll) on the minimal topic and
#                          write the top functions to $BENCH_DIR/perf-hll-minimal.txt
#   BENCH_KEEP_TOPICS=1    keep the topics and consumer groups (default: deleted at exit)
#   SKIP_BUILD=1           use target/release/distinctly as it is (no cargo build)
#   REGENERATE=1           regenerate the data files even if cached
#
# Prints a markdown table and writes it to $BENCH_DIR/bench-kafka.md. Starts the broker if it
# is not running and stops it at exit only in that case; nothing else is left running.
set -euo pipefail
# shellcheck source=scripts/bench-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/tmp/distinctly-bench}
BENCH_EVENTS=${BENCH_EVENTS:-300000}
BENCH_USERS=${BENCH_USERS:-100000}
BENCH_MINIMAL_EVENTS=${BENCH_MINIMAL_EVENTS:-3000000}
BENCH_MINIMAL_USERS=${BENCH_MINIMAL_USERS:-1000000}
BENCH_PARTITIONS=${BENCH_PARTITIONS:-3}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-900}
KAFKA=$ROOT/scripts/kafka-local.sh
BIN=$ROOT/target/release/distinctly
PY_BASELINE=$ROOT/scripts/bench_kafka_baseline.py
OUT=$BENCH_DIR/kafka-out
RESULTS=$BENCH_DIR/kafka-results.tsv
RUN_ID=$(date +%Y%m%d%H%M%S)-$$
PREFIX=distinctly-bench-$RUN_ID

say() { printf '== %s\n' "$*" >&2; }
die() {
  printf 'bench-kafka: %s\n' "$*" >&2
  exit 1
}

BENCH_REPS=${BENCH_REPS:-3}
for var in BENCH_EVENTS BENCH_USERS BENCH_MINIMAL_EVENTS BENCH_MINIMAL_USERS BENCH_PARTITIONS BENCH_TIMEOUT \
  BENCH_REPS; do
  [[ ${!var} =~ ^[1-9][0-9]*$ ]] || die "$var must be a positive integer, got '${!var}'"
done

# Settings from the caller's environment would change what is counted or where it goes.
for var in $(compgen -e | grep -E '^(DISTINCTLY_|KAFKA_SERVICE_)' || true); do
  say "ignoring $var (benchmarks run with default settings)"
  unset "$var"
done

# --- tools -----------------------------------------------------------------------------
apt_updated=0
apt_install() {
  if ((!apt_updated)); then
    apt-get update -qq >&2 || true
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}
command -v kcat >/dev/null || { say "installing kcat (apt-get)"; apt_install kcat; }
[[ -x /usr/bin/time ]] || { say "installing time (apt-get)"; apt_install time; }
command -v kcat >/dev/null || die "kcat is required"
[[ -x /usr/bin/time ]] || die "/usr/bin/time is required"
command -v python3 >/dev/null || die "python3 is required"
if ! python3 -c 'import confluent_kafka' 2>/dev/null; then
  say "installing confluent-kafka (pip)"
  python3 -m pip install --quiet confluent-kafka >&2 || true
fi
python3 -c 'import confluent_kafka' 2>/dev/null || die "python3 cannot import confluent_kafka (pip install confluent-kafka)"

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  say "cargo build --release"
  (cd "$ROOT" && cargo build --release) || die "cargo build --release failed"
fi
[[ -x $BIN ]] || die "missing $BIN"

# --- broker and clean-up ---------------------------------------------------------------
mkdir -p "$BENCH_DIR" "$OUT"
rm -f "$OUT"/*
broker_was_running=0
broker_started=0
bg_pids=()
groups=()
tmp_files=()
cleanup() {
  local rc=$? pid
  trap - EXIT INT TERM
  for pid in "${bg_pids[@]+"${bg_pids[@]}"}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${bg_pids[@]+"${bg_pids[@]}"}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -f "${tmp_files[@]+"${tmp_files[@]}"}"
  if [[ ${BENCH_KEEP_TOPICS:-0} != 1 ]] && "$KAFKA" status >/dev/null 2>&1; then
    say "deleting topics $PREFIX-* and the benchmark's consumer groups"
    "$KAFKA" tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" \
      --delete --topic "$PREFIX-.*" >/dev/null 2>&1 || true
    if ((${#groups[@]})); then
      local -a gargs=()
      local g
      for g in "${groups[@]}"; do gargs+=(--group "$g"); done
      "$KAFKA" tool org.apache.kafka.tools.consumer.group.ConsumerGroupCommand \
        --bootstrap-server "$BOOTSTRAP" --delete "${gargs[@]}" >/dev/null 2>&1 || true
    fi
  fi
  if ((broker_started)); then
    say "stopping the broker this script started"
    "$KAFKA" stop || true
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if "$KAFKA" status >/dev/null 2>&1; then
  broker_was_running=1
  say "broker already running: $("$KAFKA" status)"
else
  say "starting the broker (stopped again at exit)"
  broker_started=1
  "$KAFKA" start
fi
BOOTSTRAP=$("$KAFKA" bootstrap)
CLK_TCK=$(getconf CLK_TCK)

# --- data ------------------------------------------------------------------------------
# generate(): see bench-lib.sh
REAL=realistic-e$BENCH_EVENTS-u$BENCH_USERS
MINI=minimal-e$BENCH_MINIMAL_EVENTS-u$BENCH_MINIMAL_USERS
generate "$REAL" realistic "$BENCH_EVENTS" "$BENCH_USERS"
generate "$MINI" minimal "$BENCH_MINIMAL_EVENTS" "$BENCH_MINIMAL_USERS"

# --- topics ----------------------------------------------------------------------------
declare -A TOPIC FILE
TOPIC[real]=$PREFIX-realistic
TOPIC[mini]=$PREFIX-minimal
TOPIC[tiny]=$PREFIX-tiny
FILE[real]=$BENCH_DIR/$REAL.jsonl
FILE[mini]=$BENCH_DIR/$MINI.jsonl
FILE[tiny]=$BENCH_DIR/tiny.jsonl
tmp_files+=("${FILE[tiny]}")
head -n 100 "${FILE[real]}" >"${FILE[tiny]}"

topic_create() { "$KAFKA" topic-create "$@" >/dev/null; }

produce_notes=()
for kind in tiny real mini; do
  topic_create "${TOPIC[$kind]}" "$BENCH_PARTITIONS"
  file=${FILE[$kind]}
  lines=$(wc -l <"$file")
  say "producing $lines frames of $file to ${TOPIC[$kind]} with kcat -P"
  t0=$EPOCHREALTIME
  kcat -P -b "$BOOTSTRAP" -t "${TOPIC[$kind]}" -l "$file" \
    -X linger.ms=50 -X batch.num.messages=10000 -X sticky.partitioning.linger.ms=0
  t1=$EPOCHREALTIME
  # Per-partition end offsets: every partition must hold data, and all of it must be there.
  offsets=$("$KAFKA" tool org.apache.kafka.tools.GetOffsetShell --bootstrap-server "$BOOTSTRAP" \
    --topic "${TOPIC[$kind]}" | sort -t: -k2,2n)
  counts=$(cut -d: -f3 <<<"$offsets" | paste -sd' ')
  total=$(awk -F: '{s += $3} END {print s + 0}' <<<"$offsets")
  nonempty=$(awk -F: '$3 > 0' <<<"$offsets" | wc -l)
  ((total == lines)) || die "${TOPIC[$kind]} holds $total messages, expected $lines"
  ((nonempty == BENCH_PARTITIONS)) || die "${TOPIC[$kind]}: not every partition got data ($counts)"
  produce_notes+=("$kind: $lines frames in $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}') s, per partition: $counts")
done

# --- runs ------------------------------------------------------------------------------
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
busy=$(busy_processes) || busy=unknown

printf 'name\tkind\tseconds\trss_kb\tcpu_s\tbroker_cpu_s\n' >"$RESULTS"

# "PID CPU": the broker's pid and the CPU seconds (user+sys) it has used so far; empty if it
# is not running (another user of the broker may restart it, e.g. the Kafka tests).
broker_cpu() {
  local pid
  pid=$("$KAFKA" status 2>/dev/null | sed -n 's/^running (pid \([0-9]*\).*/\1/p') || true
  [[ -n $pid && -r /proc/$pid/stat ]] || return 0
  awk -v hz="$CLK_TCK" -v pid="$pid" '{sub(/^.*\) /, ""); printf "%s %.2f", pid, ($12 + $13) / hz}' \
    "/proc/$pid/stat"
}

# timed NAME KIND -- CMD...: runs CMD in the background (so that the EXIT trap can stop it)
# under `timeout` and `/usr/bin/time -v`; stdout to $OUT/NAME.out (kcat's, the messages, to
# /dev/null), stderr to $OUT/NAME.err. Records the wall time (EPOCHREALTIME around the run)
# and the peak RSS.
timed() {
  local name=$1 kind=$2 pid rc=0 t0 t1 rss cpu b0 b1 stdout
  shift 3
  say "draining ${TOPIC[$kind]}: $name"
  stdout=$OUT/$name.out
  [[ $name == kcat* ]] && stdout=/dev/null
  b0=$(broker_cpu)
  t0=$EPOCHREALTIME
  timeout "$BENCH_TIMEOUT" /usr/bin/time -v -o "$OUT/$name.time" "$@" \
    >"$stdout" 2>"$OUT/$name.err" &
  pid=$!
  bg_pids+=("$pid")
  wait "$pid" || rc=$?
  t1=$EPOCHREALTIME
  b1=$(broker_cpu)
  unset 'bg_pids[-1]'
  if ((rc != 0)); then
    tail -n 20 "$OUT/$name.err" >&2
    die "$name failed (exit $rc; 124 = timed out after ${BENCH_TIMEOUT}s)"
  fi
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$OUT/$name.time")
  cpu=$(awk -F': ' '/User time|System time/ {s += $2} END {printf "%.2f", s}' "$OUT/$name.time")
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$kind" \
    "$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')" "$rss" "$cpu" \
    "$(awk -v a="$b0" -v b="$b1" 'BEGIN {split(a, x, " "); split(b, y, " ")
      if (a == "" || b == "" || x[1] != y[1]) print "nan"; else printf "%.2f", y[2] - x[2]}')" \
    >>"$RESULTS"
  [[ -n $b1 && ${b0%% *} == "${b1%% *}" ]] || say "WARNING: the broker was restarted (or stopped) during $name"
  say "$name: $(tail -n1 "$RESULTS" | cut -f3) s"
}

# distinctly_run NAME KIND COUNTER [VAR=VALUE... WRAPPER...]: fresh group, fresh compacted
# output topic; the extra words go between `env` and the binary. Metrics are
# served (on a free port) as in production, so their cost is measured.
distinctly_run() {
  local name=$1 kind=$2 counter=$3 out=$PREFIX-out-$1
  shift 3
  topic_create "$out" 1 cleanup.policy=compact
  groups+=("$PREFIX-group-$name")
  printf '%s\n' "$out" >"$OUT/$name.topic"
  timed "$name" "$kind" -- env KAFKA_SERVICE_INTERNAL_HOST="$BOOTSTRAP" \
    KAFKA_SERVICE_INPUT_TOPIC="${TOPIC[$kind]}" KAFKA_SERVICE_OUTPUT_TOPIC="$out" \
    KAFKA_SERVICE_GROUP_ID="$PREFIX-group-$name" DISTINCTLY_COUNTER="$counter" \
    DISTINCTLY_METRICS_ADDR=127.0.0.1:0 "$@" "$BIN" run --exit-when-idle
}

python_run() {
  groups+=("$PREFIX-group-$1")
  timed "$1" "$2" -- env KAFKA_SERVICE_INTERNAL_HOST="$BOOTSTRAP" \
    python3 "$PY_BASELINE" "${TOPIC[$2]}" "$PREFIX-group-$1"
}

for kind in tiny real mini; do
  timed "kcat.$kind" "$kind" -- kcat -C -b "$BOOTSTRAP" -t "${TOPIC[$kind]}" -e -o beginning -q
  if [[ $kind == tiny ]]; then
    distinctly_run "hll.$kind" "$kind" hll
  else
    for counter in exact roaring hll cpc hll4; do
      distinctly_run "$counter.$kind" "$kind" "$counter"
    done
  fi
  python_run "python.$kind" "$kind"
  if [[ $kind != tiny && ${BENCH_TUNED:-1} != 0 ]]; then
    timed "kcattuned.$kind" "$kind" -- kcat -C -b "$BOOTSTRAP" -t "${TOPIC[$kind]}" -e -o beginning -q \
      -X queued.min.messages=1000000
    distinctly_run "hllnometrics.$kind" "$kind" hll DISTINCTLY_METRICS_ADDR=
  fi
done
# More rounds against tuned kcat, interleaved, so that each ratio compares runs made side by side.
if [[ ${BENCH_TUNED:-1} != 0 ]]; then
  for rep in $(seq 2 "$BENCH_REPS"); do
    for kind in real mini; do
      timed "kcattuned.$kind.r$rep" "$kind" -- kcat -C -b "$BOOTSTRAP" -t "${TOPIC[$kind]}" -e \
        -o beginning -q -X queued.min.messages=1000000
      distinctly_run "exact.$kind.r$rep" "$kind" exact
      distinctly_run "hll.$kind.r$rep" "$kind" hll
    done
  done
fi
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# The windows each distinctly run produced: its output topic read back, key and value.
for f in "$OUT"/*.topic; do
  name=$(basename "$f" .topic)
  kcat -C -b "$BOOTSTRAP" -t "$(cat "$f")" -e -o beginning -q -f '%k\t%s\n' >"$OUT/$name.records"
done

if [[ ${BENCH_PERF:-0} == 1 ]]; then
  command -v perf >/dev/null || die "BENCH_PERF=1 needs perf"
  say "perf record -g: distinctly run (hll) on the minimal topic"
  distinctly_run perf.mini mini hll perf record -g -o "$OUT/perf.data" --
  {
    echo "# perf record -g, distinctly run --exit-when-idle (hll), minimal topic"
    echo "## by shared object (self time)"
    perf report -i "$OUT/perf.data" --stdio --no-children --sort dso -g none 2>/dev/null |
      awk 'NF && !/^#/ && n++ < 15'
    echo "## top functions (self time)"
    perf report -i "$OUT/perf.data" --stdio --no-children --sort dso,sym -g none --percent-limit 0.7 2>/dev/null |
      awk 'NF && !/^#/ && n++ < 40'
  } >"$BENCH_DIR/perf-hll-minimal.txt"
  say "perf report written to $BENCH_DIR/perf-hll-minimal.txt"
fi

# --- report ----------------------------------------------------------------------------
cpu_model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git -C "$ROOT" status --porcelain -- src Cargo.toml 2>/dev/null) ]]; then
  commit="$commit + uncommitted changes in src/ or Cargo.toml"
fi
kcat_version=$(kcat -V 2>&1 | sed -n 's/^Version \([^ ]*\) .*librdkafka \([^ ]*\) .*/kcat \1 (librdkafka \2)/p')
rdkafka_version=$(awk '/^name = "rdkafka-sys"/ {getline; gsub(/"/, "", $3); print $3}' "$ROOT/Cargo.lock")
ck_version=$(python3 -c 'import confluent_kafka as c; print(c.version(), "(librdkafka", c.libversion()[0] + ")")')
produce=$(printf '%s; ' "${produce_notes[@]}")
produce=${produce%; }
export BENCH_REPS BENCH_DIR OUT RESULTS REAL MINI BENCH_PARTITIONS load_before load_after busy cpu_model commit \
  kcat_version rdkafka_version ck_version produce
python3 - <<'PY' | tee "$BENCH_DIR/bench-kafka.md"
import csv, json, math, os, subprocess

E = os.environ
out, bench = E["OUT"], E["BENCH_DIR"]
rows = {r["name"]: r for r in csv.DictReader(open(E["RESULTS"]), delimiter="\t")}
sec = {n: float(r["seconds"]) for n, r in rows.items()}
rss = {n: int(r["rss_kb"]) / 1024 for n, r in rows.items()}
cpu = {n: float(r["cpu_s"]) for n, r in rows.items()}
bcpu = {n: float(r["broker_cpu_s"]) for n, r in rows.items()}
files = {"tiny": f"{bench}/tiny.jsonl", "real": f"{bench}/{E['REAL']}.jsonl",
         "mini": f"{bench}/{E['MINI']}.jsonl"}
frames, payload = {}, {}
for kind, path in files.items():
    n = sum(1 for _ in open(path, "rb"))
    frames[kind], payload[kind] = n, os.path.getsize(path) - n  # message bytes, no newlines


def windows(lines, keyed):
    """start_ts -> (unique_users, events); keyed output: the last record per key wins."""
    got = {}
    for line in lines:
        if line.strip():
            r = json.loads(line.split("\t", 1)[1] if keyed else line)
            got[r["start_ts"]] = (r["unique_users"], r["events"])
    return got


def summary_messages(name):
    """Messages read, from the `stopped: read ...` log line (its `messages=` field)."""
    for line in open(f"{out}/{name}.err"):
        if "stopped: read " in line:
            for field in line.split():
                if field.startswith("messages="):
                    return int(field.split("=", 1)[1])
    return None


labels = {"kcat": "kcat -C (read and discard)", "exact": "distinctly run, exact",
          "roaring": "distinctly run, roaring", "hll": "distinctly run, hll",
          "cpc": "distinctly run, cpc", "hll4": "distinctly run, hll4",
          "python": "Python confluent-kafka + sets (old app)",
          "kcattuned": "tuned: kcat -C -X queued.min.messages=1000000",
          "hllnometrics": "distinctly run, hll, metrics off"}
tools = [t for t in labels if f"{t}.real" in sec]
kinds = {"real": "realistic ~2 KB", "mini": "minimal ~45 B"}
date = subprocess.run(["date", "-u", "+%Y-%m-%d %H:%M UTC"], capture_output=True, text=True).stdout.strip()

print("## `distinctly run` drain throughput vs kcat\n")
print(f"machine: nproc={os.cpu_count()}, CPU: {E['cpu_model']}; date: {date}; commit {E['commit']}")
print(f"load average before/after the drains: {E['load_before']} / {E['load_after']}; "
      f"busy processes at start: {E['busy'] or 'none'}")
if E["busy"] and E["busy"] != "unknown":
    print("\n**Warning: the machine was not quiet** (processes above were using CPU; the broker runs "
          "on the same 2 cores): absolute numbers are pessimistic and noisy.")
print(f"\nclients: {E['kcat_version']}; distinctly: rdkafka-sys {E['rdkafka_version']}; "
      f"Python: confluent-kafka {E['ck_version']}")
print(f"input: {E['BENCH_PARTITIONS']} partitions per topic, produced with `kcat -P -l FILE -X linger.ms=50 "
      f"-X batch.num.messages=10000 -X sticky.partitioning.linger.ms=0` (no key: a random "
      f"partition per message): {E['produce']}\n")
print("| run | frames | events/s | MB/s | ratio vs kcat | peak RSS MB |")
print("|---|---:|---:|---:|---:|---:|")
for kind in ("real", "mini"):
    for tool in tools:
        name = f"{tool}.{kind}"
        t = sec[name]
        print(f"| {labels[tool]} ({kinds[kind]}) | {frames[kind]:,} | {frames[kind] / t:,.0f} | "
              f"{payload[kind] / 1e6 / t:,.1f} | {sec[f'kcat.{kind}'] / t:.2f} | {rss[name]:,.0f} |")
for tool in ("kcat", "hll", "python"):
    name = f"{tool}.tiny"
    print(f"| {labels[tool]} (tiny topic: {sec[name]:.2f} s) | {frames['tiny']} | – | – | – | "
          f"{rss[name]:,.0f} |")

print("\nTimes are wall clock from process start to exit (one run each), so they include each "
      "consumer's fixed overhead, shown by the tiny-topic rows (fixed overhead = their time): "
      "start-up, metadata, group join (distinctly, Python), and for distinctly the ~0.5 s of "
      "quiet `--exit-when-idle` waits for plus the final flush and commit. MB/s counts message "
      "payload bytes. Ratio = throughput relative to default kcat on the same topic (>1: faster).")


def net(name, kind):
    """Events/s with the tiny-topic time of the same tool (its fixed overhead) taken off."""
    tool = name.split(".")[0]
    base = {"kcattuned": "kcat", "exact": "hll", "roaring": "hll", "cpc": "hll", "hll4": "hll",
            "hllnometrics": "hll"}.get(tool, tool)
    return frames[kind] / max(sec[name] - sec[f"{base}.tiny"], 1e-3)


print("\nTarget: `distinctly run` with hll at >= 80 % of kcat's drain rate.")
for kind in ("real", "mini"):
    ratio = sec[f"kcat.{kind}"] / sec[f"hll.{kind}"]
    line = (f"- {kinds[kind]}: hll at {ratio:.0%} of kcat: **{'met' if ratio >= 0.8 else 'NOT met'}** "
            f"(fixed overheads of both taken off: {net(f'hll.{kind}', kind) / net(f'kcat.{kind}', kind):.0%})")
    if f"kcattuned.{kind}" in sec:
        tr = sec[f"kcattuned.{kind}"] / sec[f"hll.{kind}"]
        line += (f"; vs tuned kcat {tr:.0%} (overheads off: "
                 f"{net(f'hll.{kind}', kind) / net(f'kcattuned.{kind}', kind):.0%})")
    if f"hllnometrics.{kind}" in sec:
        line += (f"; with metrics served, hll runs at "
                 f"{sec[f'hllnometrics.{kind}'] / sec[f'hll.{kind}']:.0%} of its speed without")
    print(line)

rounds = [r for r in range(1, int(E["BENCH_REPS"]) + 1)
          if all(f"{t}.{k}{'' if r == 1 else f'.r{r}'}" in sec
                 for t in ("kcattuned", "exact", "hll") for k in ("real", "mini"))]
if len(rounds) > 1:
    import statistics

    def nm(tool, kind, r):
        return f"{tool}.{kind}" if r == 1 else f"{tool}.{kind}.r{r}"

    print(f"\nAgainst tuned kcat, {len(rounds)} rounds (each round drains both topics with tuned kcat, "
          "exact and hll, one after the other); median ratio (range). *Wall* is the whole run; "
          "*steady* takes each tool's fixed overhead (its tiny-topic time) off first. "
          "Target: >= 0.9 of tuned kcat.\n")
    print("| topic | run | wall ratio | steady ratio | steady events/s |")
    print("|---|---|---:|---:|---:|")
    for kind in ("real", "mini"):
        for tool in ("exact", "hll"):
            wall = [sec[nm("kcattuned", kind, r)] / sec[nm(tool, kind, r)] for r in rounds]
            steady = [net(nm(tool, kind, r), kind) / net(nm("kcattuned", kind, r), kind) for r in rounds]
            rate = statistics.median(net(nm(tool, kind, r), kind) for r in rounds)
            print(f"| {kinds[kind]} | {labels[tool]} | {statistics.median(wall):.2f} "
                  f"({min(wall):.2f}–{max(wall):.2f}) | **{statistics.median(steady):.2f}** "
                  f"({min(steady):.2f}–{max(steady):.2f}) | {rate:,.0f} |")
    for kind in ("real", "mini"):
        truth = windows(open(f"{bench}/{E['REAL' if kind == 'real' else 'MINI']}.truth.jsonl"), False)
        ok = [r for r in rounds if windows(open(f"{out}/{nm('exact', kind, r)}.records"), True) == truth]
        print(f"- exact on {kinds[kind]}: output equal to the truth in {len(ok)} of {len(rounds)} rounds")

print("\nCPU (user+sys seconds of the consumer process, and of the broker during the run); "
      "busy = consumer CPU / wall time. A consumer far below 100 % busy is waiting, not computing.\n")
print("| run | topic | wall s | consumer CPU s | busy | broker CPU s | µs CPU per event |")
print("|---|---|---:|---:|---:|---:|---:|")
for kind in ("tiny", "real", "mini"):
    for tool in tools:
        name = f"{tool}.{kind}"
        if name in sec:
            per = f"{cpu[name] / frames[kind] * 1e6:.2f}" if kind != "tiny" else "–"
            b = "restarted" if math.isnan(bcpu[name]) else f"{bcpu[name]:.2f}"
            print(f"| {labels[tool]} | {kind} | {sec[name]:.2f} | {cpu[name]:.2f} | "
                  f"{cpu[name] / sec[name]:.0%} | {b} | {per} |")

restarted = [n for n in sec if math.isnan(bcpu[n])]
if restarted:
    print(f"\n**The broker was restarted or stopped by someone else during: {', '.join(restarted)}** "
          "(e.g. the Kafka tests' restart test); those times include the outage.")
print("\nCorrectness (per-window unique users and events; distinctly: last record per key of its "
      "output topic):")
for kind, inp in (("real", E["REAL"]), ("mini", E["MINI"])):
    truth = windows(open(f"{bench}/{inp}.truth.jsonl"), False)
    for tool in ("exact", "roaring", "hll", "cpc", "hll4", "hllnometrics"):
        name = f"{tool}.{kind}"
        if name not in sec:
            continue
        got = windows(open(f"{out}/{name}.records"), True)
        read = f"read {summary_messages(name) or 0:,} of {frames[kind]:,} messages"
        if set(got) != set(truth):
            print(f"- {name}: windows differ from the truth ({len(got)} vs {len(truth)}); {read}")
            continue
        ev = "equal" if all(got[k][1] == truth[k][1] for k in truth) else "DIFFER"
        if tool == "exact":
            yes = "yes" if got == truth else "no"
            head = (f"**counts agree: {yes}** (exact run on the realistic topic vs the generator's "
                    "truth, " if kind == "real" else f"{name} vs truth: {yes} (")
            print(f"- {head}{len(truth)} windows; {read})")
        elif tool == "roaring":
            diff = [abs(got[k][0] - truth[k][0]) for k in truth]
            print(f"- {name}: unique users equal in {diff.count(0)} of {len(truth)} windows, largest "
                  f"difference {max(diff)} (near-exact by design: 32-bit hashes, collisions estimated); "
                  f"events {ev}; {read}")
        else:
            err = max(abs(got[k][0] - truth[k][0]) / max(truth[k][0], 1) for k in truth)
            print(f"- {name}: largest relative error of unique users {err:.2%}; events {ev}; {read}")
    py = windows(open(f"{out}/python.{kind}.out"), False)
    print(f"- python.{kind} (per-minute sets) vs truth: {'yes' if py == truth else 'no'}")
PY
if [[ -f $BENCH_DIR/perf-hll-minimal.txt && ${BENCH_PERF:-0} == 1 ]]; then
  printf '\n```text\n' | tee -a "$BENCH_DIR/bench-kafka.md"
  tee -a "$BENCH_DIR/bench-kafka.md" <"$BENCH_DIR/perf-hll-minimal.txt"
  printf '```\n' | tee -a "$BENCH_DIR/bench-kafka.md"
fi
say "report written to $BENCH_DIR/bench-kafka.md"
if ((broker_was_running)); then
  say "the broker was running before: left running"
fi
