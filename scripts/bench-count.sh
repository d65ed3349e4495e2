#!/usr/bin/env bash
# Throughput of `distinctly count`, next to baselines run by this script on the same files:
# a straightforward serde_json implementation (examples/serde_baseline.rs), DuckDB
# (scripts/duckdb_baseline.py) and `cat FILE > /dev/null` as the read ceiling.
#
# usage: scripts/bench-count.sh
#
# Environment:
#   BENCH_DIR        data, outputs and the report (default /tmp/distinctly-bench; local disk)
#   REPS             repetitions per run (default 3)
#   STAT=median|best which repetition the table shows (default median; best suits a shared,
#                    noisy machine, the CPU times in the report show how noisy it was)
#   REALISTIC_EVENTS events of the realistic-frame file (default 500000, ~1 GB)
#   MINIMAL_EVENTS   events of the minimal-frame file (default 20000000)
#   SKIP_DUCKDB=1    leave DuckDB out
#   REGENERATE=1     regenerate the data files even if cached
#
# Prints a markdown table and writes it to $BENCH_DIR/bench-count.md. Everything runs in the
# foreground, one run at a time; nothing is left running.
set -euo pipefail
# shellcheck source=scripts/bench-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/tmp/distinctly-bench}
REPS=${REPS:-3}
STAT=${STAT:-median}
REALISTIC_EVENTS=${REALISTIC_EVENTS:-500000}
MINIMAL_EVENTS=${MINIMAL_EVENTS:-20000000}
BIN=$ROOT/target/release/distinctly
SERDE=$ROOT/target/release/examples/serde_baseline
DUCK=$ROOT/scripts/duckdb_baseline.py
OUT=$BENCH_DIR/out
RESULTS=$BENCH_DIR/results.tsv

say() { printf '== %s\n' "$*" >&2; }
die() { printf 'bench-count: %s\n' "$*" >&2; exit 1; }

for tool in cargo python3; do
  command -v "$tool" >/dev/null || die "$tool is required"
done
[[ $REPS =~ ^[1-9][0-9]*$ ]] || die "REPS must be a positive integer, got '$REPS'"
[[ $STAT == median || $STAT == best ]] || die "STAT must be median or best, got '$STAT'"

# Settings from the caller's environment would change what is counted: run with defaults.
for var in $(compgen -e | grep '^DISTINCTLY_' || true); do
  say "ignoring $var=${!var} (benchmarks run with default settings)"
  unset "$var"
done

mkdir -p "$BENCH_DIR" "$OUT"
tmp_files=()
cleanup() { rm -f "${tmp_files[@]+"${tmp_files[@]}"}"; }
trap cleanup EXIT

# --- build -----------------------------------------------------------------------------
say "cargo build --release --examples"
(cd "$ROOT" && cargo build --release --examples) || die "cargo build --release --examples failed"
[[ -x $BIN && -x $SERDE ]] || die "missing $BIN or $SERDE after the build"

# --- DuckDB ----------------------------------------------------------------------------
duckdb_ok=0
duckdb_note="skipped (SKIP_DUCKDB=1)"
if [[ ${SKIP_DUCKDB:-0} != 1 ]]; then
  if ! python3 -c 'import duckdb' 2>/dev/null; then
    say "installing duckdb from PyPI"
    python3 -m pip install --quiet duckdb >&2 || true
  fi
  if python3 -c 'import duckdb' 2>/dev/null; then
    duckdb_ok=1
    duckdb_note="duckdb $(python3 -c 'import duckdb; print(duckdb.__version__)')"
  else
    duckdb_note="skipped: 'pip install duckdb' failed, see the messages above"
    printf 'bench-count: WARNING: duckdb cannot be installed; the DuckDB column is skipped\n' >&2
  fi
fi

# --- data ------------------------------------------------------------------------------
# generate(): see bench-lib.sh
REAL=realistic-e$REALISTIC_EVENTS-u200000
MINI=minimal-e$MINIMAL_EVENTS-u1000000
generate "$REAL" realistic "$REALISTIC_EVENTS" 200000
generate "$MINI" minimal "$MINIMAL_EVENTS" 1000000
real_size=$(stat -c %s "$BENCH_DIR/$REAL.jsonl")
say "realistic file: $real_size bytes"
if [[ $REALISTIC_EVENTS == 500000 ]] && ((real_size < 900000000 || real_size > 1200000000)); then
  printf 'bench-count: WARNING: realistic file is %s bytes, expected ~1 GB\n' "$real_size" >&2
fi

# --- runs ------------------------------------------------------------------------------
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
busy=$(busy_processes) || busy=unknown

printf 'run\tinput\trep\telapsed\tcpu\tbytes\n' >"$RESULTS"

# timed RUN INPUT REP -- CMD...: runs CMD with stdout to $OUT/RUN.INPUT.out, its JSON summary
# (stderr) to $OUT/RUN.INPUT.json; records the tool's own elapsed time and the CPU time.
timed() {
  local run=$1 input=$2 rep=$3
  shift 4
  local base=$OUT/$run.$input
  local -a timer=()
  if [[ -x /usr/bin/time ]]; then
    timer=(/usr/bin/time -f '%U %S' -o "$base.time")
  else
    echo 'nan 0' >"$base.time"
  fi
  "${timer[@]+"${timer[@]}"}" "$@" >"$base.out" 2>"$base.json" || {
    cat "$base.json" >&2
    return 1
  }
  local elapsed cpu bytes
  # elapsed_seconds, and the CPU time: the tool's own (DuckDB: the query alone) or the process's.
  read -r elapsed cpu < <(tail -n1 "$base.json" | python3 -c 'import json, sys
s = json.load(sys.stdin); print(s["elapsed_seconds"], s.get("cpu_seconds", sys.argv[1]))' \
    "$(awk '{print $1 + $2}' "$base.time")")
  bytes=$(stat -c %s "$BENCH_DIR/$input.jsonl")
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$run" "$input" "$rep" "$elapsed" "$cpu" "$bytes" >>"$RESULTS"
  say "$run on $input, rep $rep: ${elapsed}s (cpu ${cpu}s)"
}

# `cat` has no timer of its own: time it in a child bash, in the same summary format.
# shellcheck disable=SC2016
CAT_TIMED=(bash -c 's=$EPOCHREALTIME; cat "$1" >/dev/null; e=$EPOCHREALTIME
  awk -v s="$s" -v e="$e" '"'"'BEGIN { printf "{\"elapsed_seconds\": %.6f}\n", e - s }'"'"' >&2' _)

for input in "$REAL" "$MINI"; do
  file=$BENCH_DIR/$input.jsonl
  say "warming the page cache: $file"
  cat "$file" >/dev/null
  for rep in $(seq "$REPS"); do
    timed cat "$input" "$rep" -- "${CAT_TIMED[@]}" "$file"
    timed exact "$input" "$rep" -- env DISTINCTLY_COUNTER=exact "$BIN" count --summary json "$file"
    if [[ $input == "$MINI" ]]; then
      timed hll "$input" "$rep" -- env DISTINCTLY_COUNTER=hll "$BIN" count --summary json "$file"
    fi
    timed serde "$input" "$rep" -- "$SERDE" "$file"
    if ((duckdb_ok)); then
      if ! timed duckdb "$input" "$rep" -- python3 "$DUCK" "$file"; then
        printf 'bench-count: WARNING: the DuckDB run failed; the DuckDB column is skipped\n' >&2
        duckdb_ok=0
        duckdb_note="skipped: the query failed, see the messages above"
        awk -F'\t' '$1 != "duckdb"' "$RESULTS" >"$RESULTS.tmp" && mv "$RESULTS.tmp" "$RESULTS"
      fi
    fi
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# --- report ----------------------------------------------------------------------------
cpu_model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git -C "$ROOT" status --porcelain -- src Cargo.toml 2>/dev/null) ]]; then
  commit="$commit + uncommitted changes in src/ or Cargo.toml"
fi
export BENCH_DIR OUT RESULTS REAL MINI REPS STAT duckdb_ok duckdb_note load_before load_after busy \
  cpu_model commit
python3 - <<'PY' | tee "$BENCH_DIR/bench-count.md"
import csv, json, os, statistics, subprocess
from collections import defaultdict

E = os.environ
out, real, mini, reps, stat = E["OUT"], E["REAL"], E["MINI"], int(E["REPS"]), E["STAT"]
duck = E["duckdb_ok"] == "1"

rows = list(csv.DictReader(open(E["RESULTS"]), delimiter="\t"))
runs = defaultdict(list)  # (run, input) -> [(elapsed, cpu)]
size = {}
for r in rows:
    runs[r["run"], r["input"]].append((float(r["elapsed"]), float(r["cpu"])))
    size[r["input"]] = int(r["bytes"])


def lines(inp):
    return json.loads(open(f"{out}/exact.{inp}.json").read().splitlines()[-1])["messages"]


def chosen(run, inp):
    """(time, CPU time) reported: the fastest repetition, or the medians (STAT)."""
    v = runs[run, inp]
    if stat == "best":
        return min(v)
    return statistics.median(e for e, _ in v), statistics.median(c for _, c in v)


def median(run, inp):
    return chosen(run, inp)[0]


def final_counts(path, revisions):
    """start_ts -> (unique_users, events); distinctly re-emits corrected windows: keep the last."""
    best = {}
    for line in open(path):
        r = json.loads(line)
        key, rev = r["start_ts"], r.get("revision", 0) if revisions else 0
        if key not in best or rev >= best[key][0]:
            best[key] = (rev, (r["unique_users"], r["events"]))
    return {k: v for k, (_, v) in best.items()}


agree = {}
hll_err = None
for inp in (real, mini):
    truth = final_counts(f"{E['BENCH_DIR']}/{inp}.truth.jsonl", False)
    got = {"exact": final_counts(f"{out}/exact.{inp}.out", True),
           "serde_json": final_counts(f"{out}/serde.{inp}.out", False)}
    if duck:
        got["DuckDB"] = final_counts(f"{out}/duckdb.{inp}.out", False)
    bad = [name for name, counts in got.items() if counts != got["exact"]]
    vs_truth = got["exact"] == truth
    agree[inp] = (not bad, bad, vs_truth, len(truth), list(got))
    if inp == mini:
        h = final_counts(f"{out}/hll.{inp}.out", True)
        ex = got["exact"]
        hll_err = max(abs(h[k][0] - ex[k][0]) / max(ex[k][0], 1) for k in ex) if set(h) == set(ex) else None

labels = {"exact": "distinctly count (exact)", "hll": "distinctly count (hll)",
          "serde": "serde_json baseline", "duckdb": "DuckDB", "cat": "cat > /dev/null (read ceiling)"}
inputs = {real: f"realistic ({size[real] / 1e9:.2f} GB, {lines(real):,} frames)",
          mini: f"minimal ({size[mini] / 1e9:.2f} GB, {lines(mini):,} events)"}
order = [("exact", real), ("serde", real), ("duckdb", real), ("cat", real),
         ("hll", mini), ("exact", mini), ("serde", mini), ("duckdb", mini), ("cat", mini)]

print("## `distinctly count` throughput\n")
print(f"machine: nproc={os.cpu_count()}, CPU: {E['cpu_model']}; "
      f"date: {subprocess.run(['date', '-u', '+%Y-%m-%d %H:%M UTC'], capture_output=True, text=True).stdout.strip()}; "
      f"commit {E['commit']}")
print(f"load average before/after: {E['load_before']} / {E['load_after']}; "
      f"busy processes at start: {E['busy'] or 'none'}")
if E["busy"] and E["busy"] != "unknown":
    print("\n**Warning: the machine was not quiet** (processes above were using CPU): absolute "
          "numbers are pessimistic and noisy; compare with the CPU times below.")
print()
print("| run | input | MB/s | events/s | ratio vs serde_json | ratio vs DuckDB |")
print("|---|---|---:|---:|---:|---:|")
for run, inp in order:
    if (run, inp) not in runs:
        continue
    t = median(run, inp)
    ratio = lambda other: f"{median(other, inp) / t:.2f}x" if (other, inp) in runs else "n/a"
    print(f"| {labels[run]} | {inputs[inp]} | {size[inp] / 1e6 / t:,.0f} | {lines(inp) / t:,.0f} | "
          f"{ratio('serde')} | {ratio('duckdb')} |")

print(f"\nEach number is the {'best (fastest)' if stat == 'best' else 'median'} of {reps} runs on the page-cache-warm file; ratios are "
      "throughput ratios (>1: faster than the baseline). Time is each tool's own: "
      "`distinctly` and the serde baseline from open to last record written, DuckDB the query "
      "alone (no interpreter start, no import), `cat` the wall time of `cat FILE > /dev/null`.")
print(f"DuckDB: {E['duckdb_note']}" + ("" if not duck else
      f", {json.loads(open(f'{out}/duckdb.{real}.json').read().splitlines()[-1])['threads']} threads"))
print("\nCorrectness (per-window unique users and events; distinctly's last revision per window):")
for inp, (ok, bad, vs_truth, n, names) in agree.items():
    print(f"- {inp}: counts agree: {'yes' if ok else 'no'} ({', '.join(names)} over {n} windows"
          f"{'' if ok else '; differ from exact: ' + ', '.join(bad)}); "
          f"exact vs generator truth: {'yes' if vs_truth else 'no'}")
if hll_err is not None:
    print(f"- hll on {mini}: largest relative error of unique users vs exact: {hll_err:.2%}")
if ("hll", mini) in runs:
    t, cpu = chosen("hll", mini)
    rate = lines(mini) / t
    per_cpu = lines(mini) / cpu if cpu > 0 else float("nan")
    print(f"\nhll on the minimal file: {rate / 1e6:.1f} M events/s on one thread "
          f"({stat} {t:.2f} s wall, {cpu:.2f} s CPU = {per_cpu / 1e6:.1f} M events per CPU second); "
          f"target >= 10 M/s per core: {'met' if rate >= 10e6 else 'NOT met'}")
print("\nAll repetitions (s, tool's own time; CPU = user+sys of all threads, for DuckDB during the "
      f"query, for the others of the whole process; cores busy = CPU / time, both {stat}; "
      "MB per CPU s compares single-threaded and multi-threaded runs per core):\n")
print(f"| run | input | times | CPU s ({'fastest run' if stat == 'best' else 'median'}) | cores busy "
      "| MB per CPU s |")
print("|---|---|---|---:|---:|---:|")
for (run, inp), v in runs.items():
    t, cpu = chosen(run, inp)
    per_cpu = f"{size[inp] / 1e6 / cpu:,.0f}" if cpu > 0 else "n/a"
    print(f"| {labels[run]} | {inp} | {', '.join(f'{e:.3f}' for e, _ in v)} | {cpu:.2f} | "
          f"{cpu / t:.2f} | {per_cpu} |")
PY
say "report written to $BENCH_DIR/bench-count.md"
