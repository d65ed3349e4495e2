#!/usr/bin/env bash
# The project's test command (README: "Run the tests"). Formatting, lints,
# then every test target: unit tests, end-to-end tests in tests/, and the
# benches in criterion's quick test mode (so they keep compiling and their
# sanity assertions run).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked --all-targets
