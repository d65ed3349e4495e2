#!/usr/bin/env bash
# Memory and time of several window sizes at once: an hour-long and a
# day-long stream of a service with 10^6 distinct users per day, counted as
# `1m` alone (the baseline, in the same run) and as `1m,1h,1d`, with `exact`
# and `hll4`. Reports each size's peak heap (the held counters, measured by
# `count`), the process's peak resident set and the wall time.
#
# usage: scripts/bench-sizes.sh
#
# Environment:
#   BENCH_DIR   data and the report (default /tmp/distinctly-bench)
#   DAY_EVENTS  events of the day-long stream (default 3000000: ~950 000
#               distinct of 10^6 users); the hour-long one has 1/24 of them
#   REGENERATE=1  regenerate the data files even if cached
#
# Prints a markdown table and writes it to $BENCH_DIR/bench-sizes.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/tmp/distinctly-bench}
DAY_EVENTS=${DAY_EVENTS:-3000000}
BIN=$ROOT/target/release/distinctly

say() { printf '== %s\n' "$*" >&2; }
die() { printf 'bench-sizes: %s\n' "$*" >&2; exit 1; }

command -v python3 >/dev/null || die "python3 is required"
[[ -x /usr/bin/time ]] || die "/usr/bin/time is required (Debian package time)"
mkdir -p "$BENCH_DIR"
say "building the release binary"
(cd "$ROOT" && cargo build --release --quiet --bin distinctly)

# stream NAME SPAN EVENTS: minimal frames of 10^6 users, uniform visits.
stream() {
  local file=$BENCH_DIR/$1.jsonl
  if [[ ${REGENERATE:-0} == 1 || ! -s $file ]]; then
    say "generating $file"
    "$BIN" generate --frame minimal --users 1000000 --skew 0 --span-seconds "$2" \
      --events "$3" --invalid-share 0 --outlier-share 0 -o "$file.tmp"
    mv "$file.tmp" "$file"
  fi
}
stream sizes-hour 3600 $((DAY_EVENTS / 24))
stream sizes-day 86400 "$DAY_EVENTS"

report=$BENCH_DIR/bench-sizes.md
{
  echo "| stream | counter | windows | wall s | ratio vs 1m | peak RSS MB | peak heap per size |"
  echo "|---|---|---|---:|---:|---:|---|"
} >"$report"
for name in sizes-hour sizes-day; do
  for counter in exact hll4; do
    base=""
    for windows in 1m 1m,1h,1d; do
      say "$name $counter $windows"
      summary=$BENCH_DIR/summary.json
      timing=$(/usr/bin/time -f '%e %M' "$BIN" count --counter "$counter" --windows "$windows" \
        --summary json "$BENCH_DIR/$name.jsonl" 2>"$summary" >/dev/null; tail -1 "$summary")
      head -1 "$summary" >"$summary.one"
      read -r wall rss_kb <<<"$timing"
      [[ -z $base ]] && base=$wall
      heap=$(python3 -c 'import json,sys
s=json.load(open(sys.argv[1]))
print(", ".join(f"{k} {v/1e6:.2f} MB" for k,v in s["peak_heap_bytes"].items()))' "$summary.one")
      ratio=$(python3 -c "print(f'{$wall/$base:.2f}')")
      echo "| $name | $counter | $windows | $wall | $ratio | $((rss_kb / 1024)) | $heap |" >>"$report"
    done
  done
done
cat "$report"
