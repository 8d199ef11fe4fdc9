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
# The AWS backend is tested against MiniStack, a real AWS emulator from PyPI, behind a proxy that
# verifies every signature with botocore's signer; both live in a cached venv.
venv=target/ministack-venv
if [ ! -x "$venv/bin/ministack" ] || ! "$venv/bin/python" -c "import botocore" 2>/dev/null; then
  echo "installing MiniStack and botocore into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q ministack botocore
fi
export STAGGER_MINISTACK="$PWD/$venv/bin/ministack"

cargo test --all-targets 2>&1
