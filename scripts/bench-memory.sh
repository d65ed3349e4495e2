#!/usr/bin/env bash
# Peak resident memory of `distinctly count` against the size of its input: ~2 KB frames,
# files of ~0.2, 0.8 and 3.2 GB, `exact` and `hll4`, counted by this checkout and by a
# baseline commit (default: the last one that kept the mapped file resident), both built
# here and run one after the other on the same page-cache-warm files.
#
# usage: scripts/bench-memory.sh
#
# Environment:
#   BENCH_DIR            data, baseline build and the report (default /tmp/distinctly-bench)
#   REPS                 runs per binary, counter and file (default 3; the table shows medians)
#   EVENTS               events per file, space-separated (default "100000 400000 1600000")
#   BENCH_BASELINE_REV   the baseline commit (default 49fd019)
#   REGENERATE=1         regenerate the data files even if cached
#
# Prints a markdown table and writes it to $BENCH_DIR/bench-memory.md.
set -euo pipefail
# shellcheck source=scripts/bench-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/tmp/distinctly-bench}
REPS=${REPS:-3}
EVENTS=${EVENTS:-100000 400000 1600000}
BENCH_BASELINE_REV=${BENCH_BASELINE_REV:-49fd019}
BIN=$ROOT/target/release/distinctly
OUT=$BENCH_DIR/memory

say() { printf '== %s\n' "$*" >&2; }
die() { printf 'bench-memory: %s\n' "$*" >&2; exit 1; }

command -v python3 >/dev/null || die "python3 is required"
[[ -x /usr/bin/time ]] || die "/usr/bin/time is required (Debian package time)"
[[ $REPS =~ ^[1-9][0-9]*$ ]] || die "REPS must be a positive integer, got '$REPS'"
ignore_distinctly_settings
mkdir -p "$BENCH_DIR" "$OUT"
tmp_files=()
trap 'rm -f "${tmp_files[@]+"${tmp_files[@]}"}"' EXIT

say "cargo build --release"
(cd "$ROOT" && cargo build --release --bin distinctly) || die "cargo build --release failed"
baseline=$(baseline_binary "$BENCH_BASELINE_REV")

results=$OUT/results.tsv
printf 'events\tbytes\tcounter\tbinary\trep\tseconds\trss_kb\n' >"$results"
for events in $EVENTS; do
  [[ $events =~ ^[1-9][0-9]*$ ]] || die "EVENTS must be positive integers, got '$events'"
  name=realistic-e$events-u200000
  generate "$name" realistic "$events" 200000
  file=$BENCH_DIR/$name.jsonl
  bytes=$(stat -c %s "$file")
  say "warming the page cache: $file"
  cat "$file" >/dev/null
  for counter in exact hll4; do
    for rep in $(seq "$REPS"); do
      for which in baseline current; do
        bin=$BIN
        [[ $which == baseline ]] && bin=$baseline
        DISTINCTLY_COUNTER=$counter /usr/bin/time -f '%e %M' -o "$OUT/time" \
          "$bin" count "$file" >"$OUT/$which.out" 2>"$OUT/$which.err" || {
          cat "$OUT/$which.err" >&2
          die "$which failed on $file"
        }
        read -r seconds rss <"$OUT/time"
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$events" "$bytes" "$counter" "$which" "$rep" \
          "$seconds" "$rss" >>"$results"
        say "$which $counter on $name, rep $rep: ${seconds}s, peak RSS ${rss} KB"
      done
      cmp -s "$OUT/baseline.out" "$OUT/current.out" ||
        die "the two binaries' records differ on $file ($counter)"
    done
  done
done

commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
busy=$(busy_processes) || busy=unknown
export results commit busy BENCH_BASELINE_REV REPS
python3 - <<'PY' | tee "$BENCH_DIR/bench-memory.md"
import csv, os, statistics, subprocess
from collections import defaultdict

E = os.environ
runs = defaultdict(list)
size = {}
for r in csv.DictReader(open(E["results"]), delimiter="\t"):
    runs[int(r["events"]), r["counter"], r["binary"]].append((float(r["seconds"]), int(r["rss_kb"])))
    size[int(r["events"])] = int(r["bytes"])
date = subprocess.run(["date", "-u", "+%Y-%m-%d %H:%M UTC"], capture_output=True, text=True).stdout.strip()
print("## `distinctly count`: peak resident memory against the input size\n")
print(f"{date}, nproc={os.cpu_count()}, commit {E['commit']} against baseline {E['BENCH_BASELINE_REV']}; "
      f"busy processes at the end: {E['busy'] or 'none'}\n")
print("| file | counter | peak RSS MB, baseline | peak RSS MB | wall s, baseline | wall s | time ratio |")
print("|---|---|---:|---:|---:|---:|---:|")
for (events, counter) in sorted({(e, c) for e, c, _ in runs}):
    base, cur = runs[events, counter, "baseline"], runs[events, counter, "current"]
    bt, ct = statistics.median(t for t, _ in base), statistics.median(t for t, _ in cur)
    bm, cm = max(m for _, m in base) / 1024, max(m for _, m in cur) / 1024
    print(f"| {size[events] / 1e9:.2f} GB ({events:,} frames) | {counter} | {bm:,.0f} | {cm:,.0f} | "
          f"{bt:.2f} | {ct:.2f} | {ct / bt:.2f} |")
print(f"\nPeak RSS: the largest of {E['REPS']} runs (`/usr/bin/time %M`); wall: their median. "
      "Time ratio > 1: this checkout is slower. Both binaries wrote identical records on every run.")
PY
say "report written to $BENCH_DIR/bench-memory.md"
