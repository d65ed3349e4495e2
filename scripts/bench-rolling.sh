#!/usr/bin/env bash
# What rolling windows (DISTINCTLY_ROLLING) cost, against runs without them in the same script:
#
# `count` over a 45-day stream (minimal frames), per counter:
#   plain     --windows 1d                             (the baseline)
#   rolling   --windows 1d --rolling 7d/1d,30d/1d      (a counter per day step, merged)
#   one-copy  --windows 1d,30d                         (one tumbling 30-day window: what a
#                                                       hopping 30d/1d window costs per hop)
# Medians of interleaved rounds: wall, CPU (user + sys), peak resident set. A hopping 30d/1d
# window as peers keep it holds 30 such copies and inserts every event 30 times; the last
# column estimates its memory as 30 x (one-copy - plain) + 7 x the same for 7d/1d.
#
# usage: scripts/bench-rolling.sh
#
# Environment:
#   BENCH_DIR     data, outputs and the report (default /tmp/distinctly-bench)
#   ROUNDS        interleaved rounds (default 3)
#   COUNTERS      counters to run (default "exact roaring hll cpc hll4")
#   REGENERATE=1  regenerate the data file even if cached
#
# Prints a markdown report and writes it to $BENCH_DIR/bench-rolling.md. One run at a time,
# in the foreground; stop the local Kafka broker first for steadier numbers on 2 cores.
set -euo pipefail
# shellcheck source=scripts/bench-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/tmp/distinctly-bench}
ROUNDS=${ROUNDS:-3}
COUNTERS=${COUNTERS:-exact roaring hll cpc hll4}
BIN=$ROOT/target/release/distinctly
REPORT=$BENCH_DIR/bench-rolling.md

say() { printf '== %s\n' "$*" >&2; }
die() { printf 'bench-rolling: %s\n' "$*" >&2; exit 1; }

[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, got '$ROUNDS'"
mkdir -p "$BENCH_DIR"
tmp_files=()
trap 'rm -f "${tmp_files[@]}"' EXIT
ignore_distinctly_settings
say "building the release binary"
(cd "$ROOT" && cargo build --release --bin distinctly >&2)

DATA=$BENCH_DIR/rolling-45d.jsonl
if [[ ${REGENERATE:-0} == 1 || ! -s $DATA ]]; then
  say "generating $DATA"
  tmp_files+=("$DATA.tmp")
  "$BIN" generate --frame minimal --events 3000000 --users 300000 --span-seconds 3888000 \
    --invalid-share 0 --outlier-share 0 --seed 21 -o "$DATA.tmp"
  mv "$DATA.tmp" "$DATA"
fi

# measure ARGS...: "wall cpu peak_kb" of one `count ARGS` over the data.
measure() {
  /usr/bin/time -f '%e %U %S %M' "$BIN" count --summary none "$DATA" "$@" 2>&1 >/dev/null |
    tail -1 | awk '{printf "%s %.2f %s\n", $1, $2 + $3, $4}'
}
median() { printf '%s\n' "$@" | sort -n | sed -n "$(( ($# + 1) / 2 ))p"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", b / a}'; }

{
  echo "## Rolling windows on a 45-day stream (3·10^6 events, 3·10^5 users), medians of $ROUNDS rounds"
  echo
  echo "Measured $(date -u +%F) on $(nproc) cores; busy at the start: $(busy_processes)."
  echo
  echo "| counter | run | wall | CPU | peak RSS | wall / plain | RSS / plain | hopping copies, est. RSS |"
  echo "|---|---|---|---|---|---|---|---|"
  for counter in $COUNTERS; do
    declare -A W=() C=() M=()
    for _ in $(seq "$ROUNDS"); do
      for run in plain rolling one-copy; do
        case $run in
          plain) args=(--windows 1d) ;;
          rolling) args=(--windows 1d --rolling 7d/1d,30d/1d) ;;
          one-copy) args=(--windows 1d,30d) ;;
        esac
        read -r w c m < <(measure --counter "$counter" "${args[@]}")
        W[$run]+="$w "; C[$run]+="$c "; M[$run]+="$m "
      done
    done
    pw=$(median ${W[plain]}); pm=$(median ${M[plain]})
    om=$(median ${M[one-copy]})
    for run in plain rolling one-copy; do
      w=$(median ${W[$run]}); c=$(median ${C[$run]}); m=$(median ${M[$run]})
      est=""
      if [[ $run == rolling ]]; then
        est=$(awk -v p="$pm" -v o="$om" 'BEGIN {printf "%.0f MB", (p + 37 * (o - p)) / 1024}')
      fi
      printf '| %s | %s | %s s | %s s | %.0f MB | %s | %s | %s |\n' "$counter" "$run" "$w" "$c" \
        "$(awk -v m="$m" 'BEGIN {print m / 1024}')" "$(ratio "$pw" "$w")" "$(ratio "$pm" "$m")" "$est"
    done
    unset W C M
  done
} | tee "$REPORT"
