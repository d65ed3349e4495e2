#!/usr/bin/env bash
# Scale-out throughput of `distinctly run` against the local broker (scripts/kafka-local.sh):
# the same input drained by the previous single-instance version (the baseline), by one
# instance of this version and by two, with CPU per stage and the shard topic's bytes per
# event. The driver is scripts/bench_scale.py; what it measures is described there.
#
# usage: scripts/bench-scale.sh
#
# Environment:
#   BENCH_DIR              data, outputs and the report (default /tmp/distinctly-bench)
#   BENCH_EVENTS           realistic frames (default 1000000, ~2 GB)
#   BENCH_USERS            users of the realistic data (default 100000)
#   BENCH_MINIMAL_EVENTS   minimal frames (default 10000000)
#   BENCH_MINIMAL_USERS    users of the minimal data (default 1000000)
#   BENCH_PARTITIONS       partitions of the input topics (default 6)
#   BENCH_TIMEOUT          seconds one drain may take (default 900)
#   BENCH_REPS             rounds of every configuration; medians are reported (default 3)
#   BENCH_BASELINE_BIN     the single-instance binary to compare with; else built from
#   BENCH_BASELINE_REV     this commit (default 93d4028, the last single-instance version) in a
#                          git worktree under BENCH_DIR (a release build: minutes)
#   SKIP_BUILD=1           use target/release/distinctly as it is
#
# Prints two markdown tables and writes them to $BENCH_DIR/bench-scale.md. Starts the broker if
# it is not running and stops it at exit only in that case; deletes its topics at exit.
set -euo pipefail
# shellcheck source=scripts/bench-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/tmp/distinctly-bench}
BENCH_EVENTS=${BENCH_EVENTS:-1000000}
BENCH_USERS=${BENCH_USERS:-100000}
BENCH_MINIMAL_EVENTS=${BENCH_MINIMAL_EVENTS:-10000000}
BENCH_MINIMAL_USERS=${BENCH_MINIMAL_USERS:-1000000}
BENCH_PARTITIONS=${BENCH_PARTITIONS:-6}
BENCH_REPS=${BENCH_REPS:-3}
BENCH_BASELINE_REV=${BENCH_BASELINE_REV:-93d4028}
KAFKA=$ROOT/scripts/kafka-local.sh
BIN=$ROOT/target/release/distinctly
OUT=$BENCH_DIR/scale-out
PREFIX=distinctly-scale-$(date +%Y%m%d%H%M%S)-$$
tmp_files=()

say() { printf '== %s\n' "$*" >&2; }
die() {
  printf 'bench-scale: %s\n' "$*" >&2
  exit 1
}
for var in BENCH_EVENTS BENCH_USERS BENCH_MINIMAL_EVENTS BENCH_MINIMAL_USERS BENCH_PARTITIONS \
  BENCH_REPS; do
  [[ ${!var} =~ ^[1-9][0-9]*$ ]] || die "$var must be a positive integer, got '${!var}'"
done
command -v kcat >/dev/null || die "kcat is required (apt-get install kcat)"
command -v python3 >/dev/null || die "python3 is required"

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  say "cargo build --release"
  (cd "$ROOT" && cargo build --release) || die "cargo build --release failed"
fi
[[ -x $BIN ]] || die "missing $BIN"
mkdir -p "$BENCH_DIR" "$OUT"
rm -f "$OUT"/*

baseline=${BENCH_BASELINE_BIN:-}
if [[ -z $baseline ]]; then
  baseline=$(baseline_binary "$BENCH_BASELINE_REV")
fi
[[ -x $baseline ]] || die "missing the baseline binary $baseline"

broker_started=0
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  rm -f "${tmp_files[@]+"${tmp_files[@]}"}"
  if "$KAFKA" status >/dev/null 2>&1; then
    "$KAFKA" tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" \
      --delete --topic "$PREFIX-.*" >/dev/null 2>&1 || true
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
if ! "$KAFKA" status >/dev/null 2>&1; then
  say "starting the broker (stopped again at exit)"
  broker_started=1
  "$KAFKA" start
fi
BOOTSTRAP=$("$KAFKA" bootstrap)

REAL=realistic-e$BENCH_EVENTS-u$BENCH_USERS
MINI=minimal-e$BENCH_MINIMAL_EVENTS-u$BENCH_MINIMAL_USERS
generate "$REAL" realistic "$BENCH_EVENTS" "$BENCH_USERS"
generate "$MINI" minimal "$BENCH_MINIMAL_EVENTS" "$BENCH_MINIMAL_USERS"
TINY=$BENCH_DIR/tiny.jsonl
tmp_files+=("$TINY")
head -n 100 "$BENCH_DIR/$REAL.jsonl" >"$TINY"
for kind in tiny real mini; do
  case $kind in
    tiny) file=$TINY ;;
    real) file=$BENCH_DIR/$REAL.jsonl ;;
    mini) file=$BENCH_DIR/$MINI.jsonl ;;
  esac
  "$KAFKA" topic-create "$PREFIX-$kind" "$BENCH_PARTITIONS" >/dev/null
  say "producing $file to $PREFIX-$kind"
  kcat -P -b "$BOOTSTRAP" -t "$PREFIX-$kind" -l "$file" \
    -X linger.ms=50 -X batch.num.messages=10000 -X sticky.partitioning.linger.ms=0
done

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
busy=$(busy_processes) || busy=unknown
export BOOTSTRAP KAFKA BIN OUT PREFIX BENCH_PARTITIONS BENCH_REPS
export BASELINE_BIN=$baseline TINY_FILE=$TINY
export REAL_FILE=$BENCH_DIR/$REAL.jsonl REAL_TRUTH=$BENCH_DIR/$REAL.truth.jsonl
export MINI_FILE=$BENCH_DIR/$MINI.jsonl MINI_TRUTH=$BENCH_DIR/$MINI.truth.jsonl
{
  python3 "$ROOT/scripts/bench_scale.py"
  echo
  echo "machine: nproc=$(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//');" \
    "date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit $(git -C "$ROOT" describe --always --dirty);" \
    "baseline: $baseline"
  echo "load average before: $load_before; busy processes at start: ${busy:-none}"
} | tee "$BENCH_DIR/bench-scale.md"
