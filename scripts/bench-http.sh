#!/usr/bin/env bash
# The counting rate of `count --serve` while its HTTP port is under a hostile load
# (scripts/bench_http.py): quiet against 2000 idle and half-sent connections, dripping
# clients and 32 busy ones, medians of ROUNDS rounds, one after the other.
#
# usage: scripts/bench-http.sh
#
# Environment:
#   BENCH_DIR   data and the report (default /tmp/distinctly-bench)
#   ROUNDS      rounds of each (default 3)
#   EVENTS      events in the file (default 10000000, minimal frames)
#   PORT        the port to serve on (default 19466)
#
# Prints a markdown table and writes it to $BENCH_DIR/bench-http.md. One run at a time:
# the load and the counting share the machine's cores, as they would in production.
set -euo pipefail
# shellcheck source=scripts/bench-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/tmp/distinctly-bench}
ROUNDS=${ROUNDS:-3}
EVENTS=${EVENTS:-10000000}
PORT=${PORT:-19466}
BIN=$ROOT/target/release/distinctly
REPORT=$BENCH_DIR/bench-http.md

say() { printf '== %s\n' "$*" >&2; }
die() { printf 'bench-http: %s\n' "$*" >&2; exit 1; }

command -v python3 >/dev/null || die "needs python3"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, got '$ROUNDS'"
[[ $EVENTS =~ ^[1-9][0-9]*$ ]] || die "EVENTS must be a positive integer, got '$EVENTS'"
mkdir -p "$BENCH_DIR"
tmp_files=()
trap 'rm -f "${tmp_files[@]}"' EXIT
ignore_distinctly_settings
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

(cd "$ROOT" && cargo build --release --quiet)
generate "http-minimal-$EVENTS" minimal "$EVENTS" 100000
say "busy before the run: $(busy_processes)"
python3 "$ROOT/scripts/bench_http.py" "$BIN" "$BENCH_DIR/http-minimal-$EVENTS.jsonl" "$ROUNDS" "$PORT" |
  tee "$REPORT"
