#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need, then runs them.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

# Debian's packages: the report test renders HTML in headless Chromium, the metrics test has
# a real Prometheus server scrape a rehearsal, and the Slurm test runs the sbatch example under
# a real single-node Slurm (slurm-wlm's daemons and client, with munge) that it starts itself.
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
[ -x /usr/sbin/slurmctld ] || missing+=(slurmctld)
[ -x /usr/sbin/slurmd ] || missing+=(slurmd)
command -v sbatch >/dev/null 2>&1 || missing+=(slurm-client)
[ -x /usr/sbin/munged ] || missing+=(munge)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} for the tests" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# The AWS backend is tested against MiniStack, a real AWS emulator from PyPI, behind a proxy that
# verifies every signature with botocore's signer; the schema test validates scenarios with the
# jsonschema package. All live in a cached venv.
venv=target/ministack-venv
if [ ! -x "$venv/bin/ministack" ] || ! "$venv/bin/python" -c "import botocore, jsonschema" 2>/dev/null; then
  echo "installing MiniStack, botocore and jsonschema into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q ministack botocore jsonschema
fi
export STAGGER_MINISTACK="$PWD/$venv/bin/ministack"

cargo test --all-targets 2>&1
