#!/usr/bin/env bash
# The "re-tuning pays?" table of the README: a plan run with and without
# `--refit-after canary` on 100 seeds of truths that differ from the plan's scenario.
# Usage: scripts/refit-table.sh PLAN [SEEDS]   (needs target/release/stagger)
set -euo pipefail
plan=${1:?usage: scripts/refit-table.sh PLAN [SEEDS]}
seeds=${2:-100}
bin=${STAGGER:-target/release/stagger}
truths=(
  "as planned|"
  "installs 40% slower|install.seconds={dist=\"uniform\",min=252,max=420}"
  "installs 40% faster|install.seconds={dist=\"uniform\",min=108,max=180}"
  "service twice as cheap|uncertainty.\"service.op_request_ms\"={dist=\"uniform\",min=12.5,max=30};uncertainty.\"service.progress_ms\"={dist=\"uniform\",min=2,max=8};uncertainty.\"service.heartbeat_ms\"={dist=\"uniform\",min=0.5,max=2};uncertainty.\"service.reconnect_ms\"={dist=\"uniform\",min=50,max=250}"
)
echo "| truth | runs | within limits, plan | within limits, refit | mean makespan plan (s) | refit (s) | paces chosen (<1 / 1 / >1) |"
echo "|---|---|---|---|---|---|---|"
for t in "${truths[@]}"; do
  name=${t%%|*}; set_=${t#*|}
  # A truth is one or more --set values, separated by ';'.
  args=(); IFS=';' read -ra parts <<< "$set_"
  for p in "${parts[@]}"; do [ -n "$p" ] && args+=(--set "$p"); done
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
