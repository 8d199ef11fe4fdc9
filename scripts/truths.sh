# The truths the refit tables run: "name|--set values separated by ;". Sourced by
# scripts/refit-table.sh and scripts/pace-table.sh.
truths=(
  "as planned|"
  "installs 40% slower|install.seconds={dist=\"uniform\",min=252,max=420}"
  "installs 40% faster|install.seconds={dist=\"uniform\",min=108,max=180}"
  "uncertain service costs halved|uncertainty.\"service.op_request_ms\"={dist=\"uniform\",min=12.5,max=30};uncertainty.\"service.progress_ms\"={dist=\"uniform\",min=2,max=8};uncertainty.\"service.heartbeat_ms\"={dist=\"uniform\",min=0.5,max=2};uncertainty.\"service.reconnect_ms\"={dist=\"uniform\",min=50,max=250}"
)

# truth_args "SPEC": the --set arguments of a truth, in the array `args`.
truth_args() {
  args=(); local parts p
  IFS=';' read -ra parts <<< "$1"
  for p in "${parts[@]}"; do [ -n "$p" ] && args+=(--set "$p"); done
  return 0
}

# with_canary PLAN N: prints the path of a copy of PLAN whose canary has N gateways (PLAN
# itself when N is empty).
with_canary() {
  [ -z "${2:-}" ] && { echo "$1"; return; }
  local out; out=$(mktemp --suffix=.toml)
  python3 - "$1" "$2" "$out" <<'PY'
import re, sys
src, n, out = sys.argv[1:4]
text = open(src).read()
edited, k = re.subn(r"(\[policy\.canary\]\nsize = )\d+", r"\g<1>" + n, text, count=1)
if k != 1:
    sys.exit(f"{src}: the plan has no [policy.canary] size to change")
open(out, "w").write(edited)
PY
  echo "$out"
}
