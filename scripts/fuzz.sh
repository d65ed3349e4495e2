#!/usr/bin/env bash
# Fuzzes the message decoder against serde_json (fuzz/fuzz_targets/decode.rs).
#
#   scripts/fuzz.sh [SECONDS]     # default 600
#
# Installs cargo-fuzz if missing, rebuilds the seed corpus from the generator
# (realistic and minimal frames, invalid and string-wrapped lines included)
# plus a few hand-written edge cases, runs one libFuzzer job for SECONDS with
# -max_len=4096 and the JSON dictionary, and prints libFuzzer's final stats.
# A failing input lands in fuzz/artifacts/decode/; minimize it with
#   cargo +nightly fuzz tmin -O -a decode fuzz/artifacts/decode/crash-...
#
# Toolchain: a rustup `nightly` if there is one, else the default (stable)
# with RUSTC_BOOTSTRAP=1 (cargo-fuzz needs nightly-only rustc flags);
# FUZZ_TOOLCHAIN=stable (or any rustup toolchain name) forces one. Sanitizer:
# address when the toolchain ships the ASan runtime, else none; override with
# FUZZ_SANITIZER=address|none|... . Extra libFuzzer flags: FUZZ_ARGS.
set -euo pipefail

duration="${1:-600}"
if ! [[ "$duration" =~ ^[0-9]+$ ]]; then
    echo "usage: $0 [SECONDS]" >&2
    exit 2
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# --- toolchain --------------------------------------------------------------
toolchain=()
if [[ -n "${FUZZ_TOOLCHAIN:-}" ]]; then
    toolchain=("+$FUZZ_TOOLCHAIN")
elif command -v rustup >/dev/null && rustup toolchain list | grep -q '^nightly'; then
    toolchain=(+nightly)
fi
if [[ "${toolchain[*]}" != +nightly* ]]; then
    export RUSTC_BOOTSTRAP=1
fi
echo "fuzz.sh: toolchain: $(rustc "${toolchain[@]}" --version)${RUSTC_BOOTSTRAP:+ (RUSTC_BOOTSTRAP=1)}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz"
    cargo install --locked cargo-fuzz
fi

sanitizer="${FUZZ_SANITIZER:-}"
if [[ -z "$sanitizer" ]]; then
    sysroot="$(rustc "${toolchain[@]}" --print sysroot)"
    host="$(rustc "${toolchain[@]}" -vV | sed -n 's/^host: //p')"
    if compgen -G "$sysroot/lib/rustlib/$host/lib/librustc-*_rt.asan.a" >/dev/null; then
        sanitizer=address
    else
        sanitizer=none
    fi
fi
echo "fuzz.sh: sanitizer: $sanitizer"

# --- seed corpus ------------------------------------------------------------
corpus=fuzz/corpus/decode
mkdir -p "$corpus"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

generate() { # FRAME OUT
    local args=(generate --events 300 --frame "$1" --invalid-share 0.2 --wrapped-share 0.2 -o "$2")
    if ! cargo run --quiet --release -- "${args[@]}"; then
        # src/ may be mid-edit; an already built binary makes the same bytes.
        if [[ -x target/release/distinctly ]]; then
            echo "fuzz.sh: cargo run failed, using target/release/distinctly" >&2
            target/release/distinctly "${args[@]}"
        else
            return 1
        fi
    fi
}

for frame in realistic minimal; do
    generate "$frame" "$tmp/$frame.jsonl"
    # One file per line, without the newline.
    LC_ALL=C awk -v dir="$corpus" -v tag="$frame" \
        '{ f = sprintf("%s/seed-%s-%04d", dir, tag, NR); printf "%s", $0 > f; close(f) }' \
        "$tmp/$frame.jsonl"
done

# Hand-written edge cases the generator does not make.
seed() { printf '%s' "$2" >"$corpus/seed-edge-$1"; }
seed ok-min '{"uid":"a","ts":1}'
seed ok-float '{"ts":1767225600.9999999999999,"uid":"u"}'
seed ok-exp '{"ts":17672256009E-1,"uid":"u"}'
seed ok-escaped-keys '{"\u0075id":"\u00e4\ud83d\ude00","\u0074s":0}'
seed wrapped '"{\"uid\":\"\\u0041\",\"ts\":5}"'
seed wrapped-surrogate '"\ud800{\"uid\":\"a\",\"ts\":1}"'
seed lone-surrogate-uid '{"uid":"\ud800","ts":1}'
seed lone-surrogate-key '{"\udc00":1,"uid":"a","ts":1}'
seed dup '{"uid":"a","ts":1,"uid":"b"}'
seed huge-number '{"uid":"a","ts":1,"x":1e400}'
seed huge-ts '{"uid":"a","ts":1e400}'
seed max-ts '{"uid":"a","ts":253402300799.99}'
seed negative '{"uid":"a","ts":-0.0001}'
seed neg-zero '{"uid":"a","ts":-0.0e5}'
seed decoys '{"a":{"uid":"x","ts":2},"uid":"y","ts":3}'
seed deep "{\"uid\":\"a\",\"ts\":1,\"d\":$(printf '[%.0s' {1..300})$(printf ']%.0s' {1..300})}"
seed blank $' \t\r\n'
seed not-object '[{"uid":"a","ts":1}]'
seed double-wrapped '"\"{\\\"uid\\\":\\\"a\\\",\\\"ts\\\":1}\""'
echo "fuzz.sh: corpus: $(find "$corpus" -type f | wc -l) files in $corpus"

# --- fuzz -------------------------------------------------------------------
log="fuzz/fuzz-decode.log"
mkdir -p fuzz/artifacts/decode
echo "fuzz.sh: fuzzing for ${duration}s, log in $log"
rc=0
# shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags
cargo "${toolchain[@]}" fuzz run -O -a --sanitizer "$sanitizer" decode "$corpus" -- \
    -max_total_time="$duration" -max_len=4096 -dict=fuzz/decode.dict \
    -timeout=10 -print_final_stats=1 ${FUZZ_ARGS:-} 2>&1 | tee "$log" || rc=$?

echo
echo "fuzz.sh: final stats (exit $rc)"
grep -E '^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE|INITED)' "$log" | tail -1 || true
grep -E '^stat::' "$log" || true
if [ -n "$(find fuzz/artifacts/decode -type f 2>/dev/null | head -n 1)" ]; then
    echo "fuzz.sh: artifacts:"
    ls -l fuzz/artifacts/decode/
fi
exit "$rc"
