#!/usr/bin/env bash
# The "re-tuning pays?" table of the README: a plan run with and without
# `--refit-after canary` on 100 seeds of truths that differ from the plan's scenario.
# Usage: [CANARY=N] scripts/refit-table.sh PLAN [SEEDS]   (needs target/release/stagger)
# CANARY=N runs a copy of the plan whose canary has N gateways.
set -euo pipefail
. "$(dirname "$0")/truths.sh"
plan=$(with_canary "${1:?usage: [CANARY=N] scripts/refit-table.sh PLAN [SEEDS]}" "${CANARY:-}")
seeds=${2:-100}
bin=${STAGGER:-target/release/stagger}
echo "| truth | runs | within limits, plan | within limits, refit | mean makespan plan (s) | refit (s) | paces chosen (<1 / 1 / >1) |"
echo "|---|---|---|---|---|---|---|"
for t in "${truths[@]}"; do
  name=${t%%|*}; set_=${t#*|}
  truth_args "$set_"
  tmp=$(mktemp)
  for s in $(seq 1 "$seeds"); do
    a=$("$bin" simulate --plan "$plan" --seed "$s" --json "${args[@]}" 2>/dev/null)
    b=$("$bin" simulate --plan "$plan" --seed "$s" --json --refit-after canary "${args[@]}" 2>/dev/null)
    echo "$a" >> "$tmp.a"; echo "$b" >> "$tmp.b"
  done
  python3 - "$name" "$tmp.a" "$tmp.b" "$plan" <<'PY'
import json, sys, tomllib
name, fa, fb, plan = sys.argv[1:5]
c = tomllib.load(open(plan, "rb"))["constraints"]
def within(d):
    return d["success_rate"] >= c["min_success"] and d["peak_mgmt_cpu_pct"] <= c["max_cpu_pct"] and d["disconnect_rate"] <= c["max_disconnect"]
A = [json.loads(l) for l in open(fa)]; B = [json.loads(l) for l in open(fb)]
wa = sum(within(d) for d in A); wb = sum(within(d) for d in B)
ma = sum(d["makespan_s"] for d in A) / len(A); mb = sum(d["makespan_s"] for d in B) / len(B)
paces = [d.get("refit", {}).get("pace", 1.0) for d in B]
lo = sum(p < 1 for p in paces); eq = sum(p == 1 for p in paces); hi = sum(p > 1 for p in paces)
print(f"| {name} | {len(A)} | {wa}/{len(A)} | {wb}/{len(B)} | {ma:.0f} | {mb:.0f} | {lo} / {eq} / {hi} |")
PY
  rm -f "$tmp" "$tmp.a" "$tmp.b"
done
