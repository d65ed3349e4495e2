# shellcheck shell=bash
# Shared by the bench scripts (sourced, not run).

# Prints the processes using >= 20 % CPU right now, as "name (pid N) P%, ...",
# or "unknown" without top. Uses top's second frame: the first one averages
# since each process started.
busy_processes() {
  command -v top >/dev/null || { echo unknown; return; }
  top -bn2 -d1 | awk '/^top -/{frame++} frame==2 && $1 ~ /^[0-9]+$/ && $9+0 >= 20 {print $1, $9}' |
    while read -r pid pcpu; do
      name=$(ps -o comm= -p "$pid" 2>/dev/null) || continue
      [[ $name == top ]] || printf '%s (pid %s) %s%%, ' "$name" "$pid" "$pcpu"
    done | sed 's/, $//'
}

# generate NAME FRAME EVENTS USERS: cached, clean benchmark data in $BENCH_DIR
# (no invalid lines, no bit-flipped timestamps; late events stay in) plus the
# generator's exact per-window truth. Uses the caller's $BIN, `say` and
# `tmp_files` (removed on exit).
generate() {
  local file=$BENCH_DIR/$1.jsonl truth=$BENCH_DIR/$1.truth.jsonl
  if [[ ${REGENERATE:-0} == 1 || ! -s $file || ! -s $truth ]]; then
    say "generating $file"
    tmp_files+=("$file.tmp" "$truth.tmp")
    "$BIN" generate --frame "$2" --events "$3" --users "$4" \
      --invalid-share 0 --outlier-share 0 --truth "$truth.tmp" -o "$file.tmp"
    mv "$truth.tmp" "$truth"
    mv "$file.tmp" "$file"
  fi
}

# baseline_binary REV: path of a release binary of commit REV, built once in a git worktree
# under $BENCH_DIR (minutes). Uses the caller's $ROOT, `say` and `die`.
baseline_binary() {
  local src=$BENCH_DIR/baseline-$1
  local bin=$src/target/release/distinctly
  if [[ ! -x $bin ]]; then
    say "building the baseline $1 in $src"
    [[ -d $src ]] || git -C "$ROOT" worktree add --detach "$src" "$1" >&2
    (cd "$src" && cargo build --release --bin distinctly >&2) || die "building the baseline $1 failed"
  fi
  [[ -x $bin ]] || die "missing the baseline binary $bin"
  printf '%s\n' "$bin"
}

# ignore_distinctly_settings: unsets every DISTINCTLY_* variable of the caller's environment
# (they would change what is counted; benchmarks run with default settings). Uses `say`.
ignore_distinctly_settings() {
  local var
  for var in $(compgen -e | grep '^DISTINCTLY_' || true); do
    say "ignoring $var=${!var} (benchmarks run with default settings)"
    unset "$var"
  done
}

# python_module MODULE: true if python3 can import MODULE, after installing it from PyPI when
# missing. Uses `say`.
python_module() {
  if ! python3 -c "import $1" 2>/dev/null; then
    say "installing $1 from PyPI"
    python3 -m pip install --quiet "$1" >&2 || true
  fi
  python3 -c "import $1" 2>/dev/null
}
