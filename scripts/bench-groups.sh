#!/usr/bin/env bash
# What groups (DISTINCTLY_GROUP_BY) cost, next to the same runs without them, in one script:
#
# 1. `count` over the same file without and with `--group-by country` (about 30 values),
#    on minimal (~110 B with the group fields) and realistic (~2 KB) frames: medians of
#    interleaved rounds, wall and CPU (user + sys), and the ratios. With valgrind, also the
#    instructions of both on a slice of the minimal file (callgrind: repeatable whatever else
#    the machine does).
# 2. The plain path against the commit before groups (BASELINE_REV): `count` without
#    grouping, both binaries on the same file, interleaved.
# 3. 10^5 groups per minute window at 10^6 events per minute (`--group-by page` over a page
#    field of 10^5 Zipf values), per backend: time, peak resident set, groups held.
# 4. `distinctly bench --groups`: heap per group at 1, 10, 100, 1000 users; error and rate
#    on a window of 10^5 Zipf groups.
#
# usage: scripts/bench-groups.sh
#
# Environment:
#   BENCH_DIR     data, outputs and the report (default /tmp/distinctly-bench)
#   ROUNDS        interleaved rounds per comparison (default 7)
#   BASELINE_REV  the commit the plain path is compared with (default 9e721a6, before groups)
#   REGENERATE=1  regenerate the data files even if cached
#
# Prints a markdown report and writes it to $BENCH_DIR/bench-groups.md. One run at a time, in
# the foreground. Stop the local Kafka broker first for steadier numbers on 2 cores.
set -euo pipefail
# shellcheck source=scripts/bench-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/tmp/distinctly-bench}
ROUNDS=${ROUNDS:-7}
BASELINE_REV=${BASELINE_REV:-9e721a6}
BIN=$ROOT/target/release/distinctly
REPORT=$BENCH_DIR/bench-groups.md

say() { printf '== %s\n' "$*" >&2; }
die() { printf 'bench-groups: %s\n' "$*" >&2; exit 1; }

[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, got '$ROUNDS'"
[[ -x /usr/bin/time ]] || die "GNU time (/usr/bin/time) is required: apt-get install time"
ignore_distinctly_settings
mkdir -p "$BENCH_DIR"
tmp_files=()
cleanup() { rm -f "${tmp_files[@]+"${tmp_files[@]}"}"; }
trap cleanup EXIT

say "cargo build --release"
(cd "$ROOT" && cargo build --release --bin distinctly) || die "cargo build --release failed"

# grouped_data NAME ARGS...: a cached file of `generate --groups ARGS`.
grouped_data() {
  local name=$1 file=$BENCH_DIR/$1.jsonl
  shift
  if [[ ${REGENERATE:-0} == 1 || ! -s $file ]]; then
    say "generating $file"
    tmp_files+=("$file.tmp")
    "$BIN" generate --groups --invalid-share 0 --outlier-share 0 "$@" -o "$file.tmp"
    mv "$file.tmp" "$file"
  fi
}
grouped_data groups-minimal --frame minimal --events 4000000 --users 200000 --span-seconds 86400 --seed 11
grouped_data groups-realistic --frame realistic --events 400000 --users 50000 --span-seconds 86400 --seed 12
# 10^6 events a minute for 5 minutes, 10^5 pages.
grouped_data groups-many --frame minimal --events 5000000 --users 2000000 --span-seconds 300 \
  --group-pages 100000 --seed 13

# measure BIN ARGS...: "wall cpu peak_kb" of one `BIN count ARGS`.
measure() {
  local bin=$1
  shift
  /usr/bin/time -f '%e %U %S %M' "$bin" count --summary none "$@" 2>&1 >/dev/null |
    tail -1 | awk '{printf "%s %.2f %s\n", $1, $2 + $3, $4}'
}

median() { printf '%s\n' "$@" | sort -n | sed -n "$(( ($# + 1) / 2 ))p"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", b / a}'; }

# compare LABEL BIN_A ARGS_A -- BIN_B ARGS_B: one table row of medians and ratios.
compare() {
  local label=$1 bin_a=$2 bin_b
  shift 2
  local a=() b=()
  while [[ $1 != -- ]]; do a+=("$1"); shift; done
  shift
  bin_b=$1
  shift
  b=("$@")
  local aw=() ac=() bw=() bc=() w c m
  for _ in $(seq "$ROUNDS"); do
    read -r w c m < <(measure "$bin_a" "${a[@]}"); aw+=("$w"); ac+=("$c")
    read -r w c m < <(measure "$bin_b" "${b[@]}"); bw+=("$w"); bc+=("$c")
  done
  local maw mac mbw mbc
  maw=$(median "${aw[@]}"); mac=$(median "${ac[@]}"); mbw=$(median "${bw[@]}"); mbc=$(median "${bc[@]}")
  printf '| %s | %s s | %s s | %s | %s s | %s s | %s |\n' "$label" "$maw" "$mbw" \
    "$(ratio "$maw" "$mbw")" "$mac" "$mbc" "$(ratio "$mac" "$mbc")"
}

{
  echo "# Groups: cost and memory ($(date -u +%Y-%m-%d), $(nproc) cores)"
  echo
  echo "Busy processes at start: $(busy_processes)."
  echo
  echo "## One grouping of about 30 values (\`--group-by country\`), medians of $ROUNDS rounds"
  echo
  echo "| frames | wall, none | wall, grouped | ratio | CPU, none | CPU, grouped | ratio |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
} > "$REPORT"
for f in minimal realistic; do
  say "count $f frames, with and without groups"
  compare "$f" "$BIN" "$BENCH_DIR/groups-$f.jsonl" -- "$BIN" --group-by country \
    "$BENCH_DIR/groups-$f.jsonl" >> "$REPORT"
done
if command -v valgrind >/dev/null; then
  say "instructions (callgrind) on 60 MB of minimal frames"
  slice=$BENCH_DIR/groups-minimal-slice.jsonl
  [[ -s $slice ]] || head -c 60000000 "$BENCH_DIR/groups-minimal.jsonl" | sed '$d' > "$slice"
  instructions() {
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$BIN" count --summary none "$@" 2>&1 >/dev/null |
      awk '/Collected/ {print $NF}'
  }
  i0=$(instructions "$slice")
  i1=$(instructions --group-by country "$slice")
  {
    echo
    echo "Instructions (callgrind, 60 MB of minimal frames): $i0 without, $i1 with: $(ratio "$i0" "$i1")x."
  } >> "$REPORT"
fi

say "the plain path against $BASELINE_REV"
base=$(baseline_binary "$BASELINE_REV")
{
  echo
  echo "## The plain path (no grouping) against $BASELINE_REV, medians of $ROUNDS rounds"
  echo
  echo "| frames | wall, $BASELINE_REV | wall, now | ratio | CPU, $BASELINE_REV | CPU, now | ratio |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
} >> "$REPORT"
for f in minimal realistic; do
  compare "$f" "$base" "$BENCH_DIR/groups-$f.jsonl" -- "$BIN" "$BENCH_DIR/groups-$f.jsonl" >> "$REPORT"
done

say "10^5 groups per minute window, per backend"
{
  echo
  echo "## 10^5 groups per minute window at 10^6 events per minute (\`--group-by page\`, 5 minutes)"
  echo
  echo "| counter | wall | peak resident | groups held at once, at most | without grouping: peak resident |"
  echo "|---|---:|---:|---:|---:|"
} >> "$REPORT"
for counter in exact roaring hll cpc hll4; do
  read -r w c m < <(measure "$BIN" --counter "$counter" --group-by page "$BENCH_DIR/groups-many.jsonl")
  held=$("$BIN" count --summary json --counter "$counter" --group-by page "$BENCH_DIR/groups-many.jsonl" \
    2>&1 >/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["groups"]["page"]["peak_groups_held"])')
  read -r _ _ m0 < <(measure "$BIN" --counter "$counter" "$BENCH_DIR/groups-many.jsonl")
  printf '| %s | %s s | %s MB | %s | %s MB |\n' "$counter" "$w" "$((m / 1024))" "$held" "$((m0 / 1024))" >> "$REPORT"
done

say "distinctly bench --groups"
{
  echo
  echo "## Heap per group, error and rate (\`distinctly bench --groups\`)"
  echo
  "$BIN" bench --groups --counters exact,roaring,hll-p14,cpc-lgk14,hll4-lgk14
} >> "$REPORT"

cat "$REPORT"
