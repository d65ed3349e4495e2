#!/usr/bin/env bash
# Throughput of `distinctly count`, next to baselines run by this script on the same files:
# the same counting on maintained JSON parsers with full validation (serde_json, sonic-rs and
# simd-json: examples/json_baselines.rs, one thread), the old app's logic in Python with orjson
# (scripts/oldapp_baseline.py), DuckDB (scripts/duckdb_baseline.py) and `cat FILE > /dev/null`
# as the read ceiling. Before timing, every parser is fed hostile lines (truncated frames, bad
# UTF-8 or grammar in keys that are not counted) and the table says how many it rejected.
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
#   SKIP_OLDAPP=1    leave the Python baseline out (it takes ~1 min per repetition)
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
BASELINES=$ROOT/target/release/examples/json_baselines
DUCK=$ROOT/scripts/duckdb_baseline.py
OLDAPP=$ROOT/scripts/oldapp_baseline.py
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
ignore_distinctly_settings

mkdir -p "$BENCH_DIR" "$OUT"
tmp_files=()
cleanup() { rm -f "${tmp_files[@]+"${tmp_files[@]}"}"; }
trap cleanup EXIT

# --- build -----------------------------------------------------------------------------
say "cargo build --release --examples"
(cd "$ROOT" && cargo build --release --examples) || die "cargo build --release --examples failed"
[[ -x $BIN && -x $BASELINES ]] || die "missing $BIN or $BASELINES after the build"

# --- DuckDB ----------------------------------------------------------------------------
duckdb_ok=0
duckdb_note="skipped (SKIP_DUCKDB=1)"
if [[ ${SKIP_DUCKDB:-0} != 1 ]]; then
  if python_module duckdb; then
    duckdb_ok=1
    duckdb_note="duckdb $(python3 -c 'import duckdb; print(duckdb.__version__)')"
  else
    duckdb_note="skipped: 'pip install duckdb' failed, see the messages above"
    printf 'bench-count: WARNING: duckdb cannot be installed; the DuckDB column is skipped\n' >&2
  fi
fi

# --- the old app's logic ---------------------------------------------------------------
oldapp_ok=0
if [[ ${SKIP_OLDAPP:-0} != 1 ]]; then
  if python_module orjson; then
    oldapp_ok=1
  else
    printf 'bench-count: WARNING: orjson cannot be installed; the old-app column is skipped\n' >&2
  fi
fi
PARSERS=(serde_json sonic-rs sonic-rs-value simd-json)

# --- validation probe ------------------------------------------------------------------
# Lines every fully validating parser must reject, each otherwise a valid event: the damage is
# after the uid, or in a key that is not counted.
PROBE=$BENCH_DIR/probe.jsonl
python3 - "$PROBE" <<'PY'
import sys
ok = b'{"ts":1700000000,"uid":"u1"'
bad = [
    ok + b'}x',                          # garbage after the object
    ok + b',"x":[1,2',                   # truncated after the uid
    ok + b',"x":"\xff"}',                # invalid UTF-8 in a skipped string
    ok + b',"\xc3\x28":1}',              # invalid UTF-8 in a key
    ok + b',"x":"\xc0\xaf"}',            # overlong UTF-8
    ok + b',"x":"\xed\xa0\x80"}',        # UTF-8 encoded surrogate
    ok + b',"x":"a\x01b"}',              # raw control byte in a string
    ok + b',"x":"\\q"}',                 # invalid escape
    ok + b',"x":"\\u12g4"}',             # invalid \u escape
    ok + b',"x":{"y":tru}}',             # bad literal, nested
    ok + b',"x":01}',                    # leading zero
    ok + b',"x":1.}',                    # number without fraction digits
    ok + b',"x":-}',                     # lone minus
    ok + b',}',                          # trailing comma
    ok + b',"x":[1,]}',                  # trailing comma, nested
    ok + b'}}',                          # extra brace
    ok + b' "x":1}',                     # missing comma
    ok + b',"x":[}]}',                   # mismatched brackets
    ok + b',"x":[1}',                    # array closed by a brace
    ok + b',"x" 1}',                     # missing colon
]
with open(sys.argv[1], "wb") as f:
    f.write(ok + b'}\n')  # one good line: every parser must count it
    for line in bad:
        f.write(line + b'\n')
PY
probe_lines=$(wc -l <"$PROBE")
# probe_rejects NAME CMD...: "NAME<TAB>rejected" from the tool's JSON summary on stderr
probe_rejects() {
  local name=$1
  shift
  "$@" >/dev/null 2>"$OUT/probe.$name.json" || die "$name failed on the probe file"
  printf '%s\t%s\n' "$name" "$(tail -n1 "$OUT/probe.$name.json" |
    python3 -c 'import json, sys; s = json.load(sys.stdin); print(s.get("rejected_total", s.get("rejected")))')"
}
{
  probe_rejects distinctly "$BIN" count --summary json "$PROBE"
  for parser in "${PARSERS[@]}"; do
    probe_rejects "$parser" "$BASELINES" "$parser" "$PROBE"
  done
  if ((oldapp_ok)); then probe_rejects oldapp python3 "$OLDAPP" "$PROBE"; fi
} >"$OUT/probe.tsv"

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
    for parser in "${PARSERS[@]}"; do
      timed "$parser" "$input" "$rep" -- "$BASELINES" "$parser" "$file"
    done
    if ((oldapp_ok)); then
      timed oldapp "$input" "$rep" -- python3 "$OLDAPP" "$file"
    fi
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
  cpu_model commit probe_lines
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


PARSERS = ("serde_json", "sonic-rs", "sonic-rs-value", "simd-json")
agree = {}
hll_err = None
for inp in (real, mini):
    truth = final_counts(f"{E['BENCH_DIR']}/{inp}.truth.jsonl", False)
    got = {"exact": final_counts(f"{out}/exact.{inp}.out", True)}
    for name in PARSERS + ("oldapp",):
        if (name, inp) in runs:
            got[name] = final_counts(f"{out}/{name}.{inp}.out", False)
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
          "serde_json": "serde_json (+ simdutf8)", "sonic-rs": "sonic-rs (struct)",
          "sonic-rs-value": "sonic-rs (Value)", "simd-json": "simd-json",
          "oldapp": "old app's logic (Python, orjson)", "duckdb": "DuckDB",
          "cat": "cat > /dev/null (read ceiling)"}
inputs = {real: f"realistic ({size[real] / 1e9:.2f} GB, {lines(real):,} frames)",
          mini: f"minimal ({size[mini] / 1e9:.2f} GB, {lines(mini):,} events)"}
order = [(run, inp) for inp in (real, mini)
         for run in ("exact", "hll", *PARSERS, "oldapp", "duckdb", "cat")]

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
print("| run | input | MB/s | events/s | MB per CPU s | vs DuckDB | vs old app | vs serde_json |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for run, inp in order:
    if (run, inp) not in runs:
        continue
    t, cpu = chosen(run, inp)
    ratio = lambda other: f"{median(other, inp) / t:.2f}x" if (other, inp) in runs else "n/a"
    per_cpu = f"{size[inp] / 1e6 / cpu:,.0f}" if cpu > 0 else "n/a"
    print(f"| {labels[run]} | {inputs[inp]} | {size[inp] / 1e6 / t:,.0f} | {lines(inp) / t:,.0f} | "
          f"{per_cpu} | {ratio('duckdb')} | {ratio('oldapp')} | {ratio('serde_json')} |")

print(f"\nEach number is the {'best (fastest)' if stat == 'best' else 'median'} of {reps} runs on the page-cache-warm file; ratios are "
      "throughput ratios (>1: faster than the baseline). Time is each tool's own: "
      "`distinctly` and the Rust baselines from open to last record written, DuckDB and the "
      "old app the query or loop alone (no interpreter start, no import), `cat` the wall time "
      "of `cat FILE > /dev/null`. `distinctly` decodes large files on every core, DuckDB uses "
      "its threads, the Rust baselines and the old app one thread: MB per CPU second compares "
      "them per core.")
print(f"DuckDB: {E['duckdb_note']}" + ("" if not duck else
      f", {json.loads(open(f'{out}/duckdb.{real}.json').read().splitlines()[-1])['threads']} threads"))

probe = dict(line.split("\t") for line in open(f"{out}/probe.tsv").read().splitlines())
n_bad = int(E["probe_lines"]) - 1
print(f"\nValidation: of {n_bad} hostile lines (damaged after the uid or in keys that are not "
      "counted: bad UTF-8, control bytes, bad escapes, numbers, literals, commas, brackets; "
      "the list is in this script), each parser rejected: "
      + ", ".join(f"{labels.get(k, k) if k != 'distinctly' else 'distinctly'} {int(v)}"
                  for k, v in probe.items()) + ".")
print("\nCorrectness (per-window unique users and events; distinctly's last revision per window):")
for inp, (ok, bad, vs_truth, n, names) in agree.items():
    print(f"- {inp}: counts agree: {'yes' if ok else 'no'} ({', '.join(names)} over {n} windows"
          f"{'' if ok else '; differ from exact: ' + ', '.join(bad)}); "
          f"exact vs generator truth: {'yes' if vs_truth else 'no'}")
if hll_err is not None:
    print(f"- hll on {mini}: largest relative error of unique users vs exact: {hll_err:.2%}")


def target(what, value, goal, unit=""):
    state = "met" if value >= goal else f"NOT met ({value / goal:.2f} of it)"
    return f"- {what}: {value:,.2f}{unit} against >= {goal:,}{unit}: {state}"


print("\nAgainst the targets:")
for run, inp, goals in (("exact", real, (2, 10)), ("exact", mini, (1.5, None)), ("hll", mini, (1.5, None))):
    if (run, inp) not in runs:
        continue
    t, cpu = chosen(run, inp)
    if duck:
        print(target(f"{labels[run]} on {inp} vs DuckDB", median("duckdb", inp) / t, goals[0], "x"))
    if goals[1] and ("oldapp", inp) in runs:
        print(target(f"{labels[run]} on {inp} vs the old app", median("oldapp", inp) / t, goals[1], "x"))
    if inp == real and cpu > 0:
        print(target(f"{labels[run]} on {inp}, GB per CPU second", size[inp] / 1e9 / cpu, 1.5))
    if inp == mini:
        print(target(f"{labels[run]} on {inp}, M events/s", lines(inp) / t / 1e6, 15))

print("\nAll repetitions (s, tool's own time; CPU = user+sys of all threads, for DuckDB during the "
      f"query, for the others of the whole process; cores busy = CPU / time, both {stat}):\n")
print(f"| run | input | times | CPU s ({'fastest run' if stat == 'best' else 'median'}) | cores busy |")
print("|---|---|---|---:|---:|")
for (run, inp), v in runs.items():
    t, cpu = chosen(run, inp)
    print(f"| {labels[run]} | {inp} | {', '.join(f'{e:.3f}' for e, _ in v)} | {cpu:.2f} | "
          f"{cpu / t:.2f} |")
PY
say "report written to $BENCH_DIR/bench-count.md"
