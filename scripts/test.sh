#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need, then runs them.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
cargo test --all-targets 2>&1
