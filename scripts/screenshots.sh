#!/usr/bin/env bash
# Screenshots of the live page (GET /) at a desktop and a phone width, from a real
# `count --serve` of a generated three-hour stream (groups by country, 1m and 1h windows,
# a rolling 1h/10m window, late events that correct windows), taken by headless Chromium.
#
# usage: scripts/screenshots.sh [OUT_DIR]     (default docs/screenshots)
#
# Environment:
#   CHROMIUM   the browser (default chromium; Debian's package)
#   PORT       the port to serve on (default 19465)
#
# Writes OUT_DIR/page-desktop.png (1280 px wide) and OUT_DIR/page-phone.png (390 px).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${1:-$ROOT/docs/screenshots}
CHROMIUM=${CHROMIUM:-chromium}
PORT=${PORT:-19465}
BIN=$ROOT/target/release/distinctly

die() { printf 'screenshots: %s\n' "$*" >&2; exit 1; }
command -v "$CHROMIUM" >/dev/null || die "needs $CHROMIUM (apt-get install chromium)"
command -v curl >/dev/null || die "needs curl"
[[ $PORT =~ ^[0-9]+$ ]] || die "PORT must be a port number, got '$PORT'"
mkdir -p "$OUT"

(cd "$ROOT" && cargo build --release --quiet)
work=$(mktemp -d)
server=""
trap 'rm -rf "$work"; [[ -z $server ]] || kill "$server" 2>/dev/null || true' EXIT

"$BIN" generate --groups --events 240000 --users 40000 --span-seconds 10800 \
  --late-share 0.01 --seed 7 > "$work/events.jsonl"
"$BIN" count "$work/events.jsonl" --serve "127.0.0.1:$PORT" --windows 1m,1h \
  --rolling 1h/10m --group-by country --summary json > /dev/null 2> "$work/count.log" &
server=$!
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break
  kill -0 "$server" 2>/dev/null || die "count exited: $(cat "$work/count.log")"
  sleep 0.1
done
# Until the whole file is read (the summary is logged), then a moment for the page.
for _ in $(seq 1 300); do
  grep -q "^{" "$work/count.log" && break
  sleep 0.1
done

shot() { # width height file
  TZ=UTC "$CHROMIUM" --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --no-first-run --disable-extensions --lang=en-US \
    --user-data-dir="$work/profile-$1" --window-size="$1,$2" \
    --virtual-time-budget=8000 --screenshot="$3" "http://127.0.0.1:$PORT/" \
    > "$work/chromium.log" 2>&1 || die "chromium failed: $(tail -3 "$work/chromium.log")"
  [[ -s $3 ]] || die "no screenshot in $3"
}
shot 1280 2300 "$OUT/page-desktop.png"
shot 390 4400 "$OUT/page-phone.png"
printf 'wrote %s and %s\n' "$OUT/page-desktop.png" "$OUT/page-phone.png"
