#!/usr/bin/env bash
# What a refit could gain at most: the plan with the rest after its canary run at each pace
# (`simulate --refit-after canary --pace P`, no fit), on 100 seeds of each truth. A refit
# that knew the truth exactly could choose no better than the fastest pace here that stays
# within the limits as often as pace 1.
# Usage: [CANARY=N] scripts/pace-table.sh PLAN [SEEDS]   (needs target/release/stagger)
set -euo pipefail
. "$(dirname "$0")/truths.sh"
plan=$(with_canary "${1:?usage: [CANARY=N] scripts/pace-table.sh PLAN [SEEDS]}" "${CANARY:-}")
seeds=${2:-100}
bin=${STAGGER:-target/release/stagger}
paces=(1 1.25 1.5 2)
header="| truth |"; rule="|---|"
for p in "${paces[@]}"; do header+=" pace $p: within, mean makespan (s) |"; rule+="---|"; done
echo "$header"; echo "$rule"
for t in "${truths[@]}"; do
  name=${t%%|*}; truth_args "${t#*|}"
  row="| $name |"
  for p in "${paces[@]}"; do
    tmp=$(mktemp)
    for s in $(seq 1 "$seeds"); do
      "$bin" simulate --plan "$plan" --seed "$s" --json --refit-after canary --pace "$p" "${args[@]}" 2>/dev/null >> "$tmp"
    done
    row+=$(python3 - "$tmp" "$plan" <<'PY'
import json, sys, tomllib
runs, plan = sys.argv[1:3]
c = tomllib.load(open(plan, "rb"))["constraints"]
A = [json.loads(l) for l in open(runs)]
w = sum(d["success_rate"] >= c["min_success"] and d["peak_mgmt_cpu_pct"] <= c["max_cpu_pct"] and d["disconnect_rate"] <= c["max_disconnect"] for d in A)
print(f" {w}/{len(A)}, {sum(d['makespan_s'] for d in A) / len(A):.0f} |", end="")
PY
)
    rm -f "$tmp"
  done
  echo "$row"
done
