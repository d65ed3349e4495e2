#!/usr/bin/env bash
# How fast range queries are answered (`count --serve`, GET /v1/uniques), per counter:
# a 45-day stream is loaded, then ranges are asked ROUNDS times each and the median time
# to the answer (curl's time_total) is printed:
#   30 days of hour slices   (from and to at hours that are not midnights: 23 + 696 + 1 hours)
#   30 days of day slices    (midnight to midnight)
#   the last 2 hours         (minute and hour slices)
#   30 days, one group       (--group-by country, the most common country)
#
# usage: scripts/bench-queries.sh
#
# Environment:
#   BENCH_DIR     data and the report (default /tmp/distinctly-bench)
#   ROUNDS        queries per range (default 9)
#   COUNTERS      counters to run (default "exact hll4")
#   PORT          the port to serve on (default 19464)
#
# Prints a markdown table and writes it to $BENCH_DIR/bench-queries.md. One run at a time.
set -euo pipefail
# shellcheck source=scripts/bench-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/tmp/distinctly-bench}
ROUNDS=${ROUNDS:-9}
COUNTERS=${COUNTERS:-exact hll4}
PORT=${PORT:-19464}
BIN=$ROOT/target/release/distinctly
REPORT=$BENCH_DIR/bench-queries.md

say() { printf '== %s\n' "$*" >&2; }
die() { printf 'bench-queries: %s\n' "$*" >&2; exit 1; }

command -v curl >/dev/null || die "needs curl"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, got '$ROUNDS'"
mkdir -p "$BENCH_DIR"
tmp_files=()
server=""
trap 'rm -f "${tmp_files[@]}"; [[ -z $server ]] || kill "$server" 2>/dev/null || true' EXIT
ignore_distinctly_settings
say "building the release binary"
(cd "$ROOT" && cargo build --release --bin distinctly >&2)

DATA=$BENCH_DIR/queries-45d.jsonl
if [[ ${REGENERATE:-0} == 1 || ! -s $DATA ]]; then
  say "generating $DATA"
  tmp_files+=("$DATA.tmp")
  "$BIN" generate --frame minimal --groups --events 3000000 --users 300000 \
    --span-seconds 3888000 --invalid-share 0 --outlier-share 0 --seed 22 -o "$DATA.tmp"
  mv "$DATA.tmp" "$DATA"
fi

T0=1767225600 # 2026-01-01T00:00:00Z, where the stream starts
DAY=86400
END=$((T0 + 45 * DAY))
median() { printf '%s\n' "$@" | sort -n | sed -n "$(( ($# + 1) / 2 ))p"; }

# ask QUERY: "median_ms unique_users slices" over ROUNDS queries.
ask() {
  local times=() body
  for _ in $(seq "$ROUNDS"); do
    times+=("$(curl -s -o /dev/null -w '%{time_total}' "http://127.0.0.1:$PORT/v1/uniques?$1")")
  done
  body=$(curl -s "http://127.0.0.1:$PORT/v1/uniques?$1")
  [[ $body == *unique_users* ]] || die "no answer to $1: $body"
  printf '%s %s %s\n' \
    "$(awk -v t="$(median "${times[@]}")" 'BEGIN {printf "%.1f", t * 1000}')" \
    "$(sed 's/.*"unique_users":\([0-9]*\).*/\1/' <<<"$body")" \
    "$(sed 's/.*"slices":\({[^}]*}\).*/\1/' <<<"$body")"
}

{
  echo "## Range queries on a 45-day stream (3·10^6 events, 3·10^5 users), medians of $ROUNDS"
  echo
  echo "Measured $(date -u +%F) on $(nproc) cores; busy at the start: $(busy_processes)."
  echo
  echo "| counter | range | answer time | unique users | slices merged |"
  echo "|---|---|---|---|---|"
  for counter in $COUNTERS; do
    summary=$BENCH_DIR/queries-summary.json
    tmp_files+=("$summary")
    : >"$summary"
    "$BIN" count --counter "$counter" --group-by country --summary json \
      --serve "127.0.0.1:$PORT" "$DATA" >/dev/null 2>"$summary" &
    server=$!
    # The summary comes once the whole input is read; serving goes on.
    until grep -q '"messages"' "$summary"; do
      kill -0 "$server" 2>/dev/null || die "count --serve exited: $(cat "$summary")"
      sleep 1
    done
    hours="from=$((END - 30 * DAY - 5 * 3600))&to=$((END - 5 * 3600))"
    days="from=$((END - 30 * DAY))&to=$END"
    recent="from=$((END - 7200))&to=$END"
    group="$days&group_by=country&group=US"
    for q in "30 days of hour slices|$hours" "30 days of day slices|$days" \
      "the last 2 hours|$recent" "30 days, one group|$group"; do
      read -r ms users slices < <(ask "${q#*|}")
      printf '| %s | %s | %s ms | %s | `%s` |\n' "$counter" "${q%%|*}" "$ms" "$users" "$slices"
    done
    kill "$server"
    wait "$server" 2>/dev/null || true
    server=""
  done
} | tee "$REPORT"
