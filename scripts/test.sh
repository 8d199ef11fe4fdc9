#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need, then runs them.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

# The report test renders HTML in headless Chromium (Debian's package).
if ! command -v chromium >/dev/null 2>&1; then
  echo "installing chromium for the report test" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq chromium >/dev/null
fi
# The AWS backend is tested against MiniStack, a real AWS emulator from PyPI, in a cached venv.
venv=target/ministack-venv
if [ ! -x "$venv/bin/ministack" ]; then
  echo "installing MiniStack into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q ministack
fi
export STAGGER_MINISTACK="$PWD/$venv/bin/ministack"

cargo test --all-targets 2>&1
