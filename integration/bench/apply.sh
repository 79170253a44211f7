#!/usr/bin/env bash
# Inside the VM: time `routevpn apply` for 1, 100 and 1000 VTI tunnels (each with an address,
# two routes and their fail-closed twins, sysctls, SNAT, MSS clamping and XFRM policies)
# against the same objects made by `ip -batch`, `sysctl -p` and `nft -f`, in one run.
# Prints a table; every run happens in a fresh network namespace.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
ROUTEVPN=${ROUTEVPN:-$repo/target/release/routevpn}
SIZES=${SIZES:-"1 100 1000"}
work=$(mktemp -d /tmp/bench.XXXXXX)
modprobe -a ip_vti xfrm_user dummy

now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.3f}')"; }

# profiles N DIR: N VTI tunnels from 192.0.2.1 to distinct peers in 198.18.0.0/15.
profiles() {
  local n=$1 dir=$2 i a b
  mkdir -p "$dir/tunnels" "$dir/state"
  printf 'benchmark-only key' >"$dir/bench.psk"
  for ((i = 0; i < n; i++)); do
    a=$((i / 256)) b=$((i % 256))
    cat >"$dir/tunnels/t$i.toml" <<EOF
kind = "vti"
local = "192.0.2.1"
remote = "198.18.$a.$b"
[ike]
psk_file = "../bench.psk"
[[child]]
local_ts = ["100.64.$a.$b/32"]
remote_ts = ["10.$a.$b.0/24"]
[interface]
name = "vti$i"
addresses = ["100.64.$a.$b/32"]
outer_mtu = 1500
[[route]]
to = "10.$a.$b.0/25"
src = "100.64.$a.$b"
[[route]]
to = "10.$a.$b.128/25"
src = "100.64.$a.$b"
[[snat]]
to = "10.$a.$b.0/24"
source = "100.64.$a.$b"
EOF
  done
}

# The same kernel objects as routevpn's plan, as iproute2, sysctl and nft input.
baseline_inputs() {
  local dir=$1
  "$ROUTEVPN" --config-dir "$dir/tunnels" --state-dir "$dir/plan-state" --insecure-secrets plan --json \
    | python3 "$here/baseline.py" "$dir"
}

netns_run() { ip netns exec bench "$@"; }
fresh_netns() {
  ip netns del bench 2>/dev/null || true
  ip netns add bench
  ip -n bench link add out type dummy
  ip -n bench addr add 192.0.2.1/24 dev out
  ip -n bench link set out up
  ip -n bench link set lo up
  ip -n bench route add 198.18.0.0/15 via 192.0.2.254 dev out onlink
}

REPEAT=${REPEAT:-3}
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
# The in-process total `ROUTEVPN_TIMINGS=1` reports (from reading the profiles to the end).
in_process() { sed -n 's/.*total \([0-9.]*\)s.*/\1/p' "$1"; }

# What any invocation costs before it does work: `routevpn apply` with no profiles at all.
fresh_netns
mkdir -p "$work/empty/tunnels"
floors=()
for ((r = 0; r < REPEAT; r++)); do
  t0=$(now)
  netns_run "$ROUTEVPN" --config-dir "$work/empty/tunnels" --state-dir "$work/empty/state" apply >/dev/null
  t1=$(now)
  floors+=("$(elapsed "$t0" "$t1")")
done
floor=$(median "${floors[@]}")

phases=()
printf 'median of %s runs each; times are wall clock, "in-process" is routevpn'"'"'s own total\n' "$REPEAT"
printf '%-8s %10s %10s %7s %10s %8s %19s %18s\n' tunnels routevpn baseline ratio re-apply re/cold "in-process re/cold" "change one"
for n in $SIZES; do
  dir=$work/n$n
  profiles "$n" "$dir"
  baseline_inputs "$dir"

  bases=() colds=() cold_ins=() agains=() again_ins=()
  for ((r = 0; r < REPEAT; r++)); do
    fresh_netns
    t0=$(now)
    netns_run ip -batch "$dir/baseline.ip"
    netns_run sysctl -q -p "$dir/baseline.sysctl" >/dev/null
    netns_run nft -f "$dir/baseline.nft"
    t1=$(now)
    bases+=("$(elapsed "$t0" "$t1")")

    fresh_netns
    rm -rf "$dir/state"
    rv=(netns_run "$ROUTEVPN" --config-dir "$dir/tunnels" --state-dir "$dir/state" --insecure-secrets)
    t0=$(now); ROUTEVPN_TIMINGS=1 "${rv[@]}" apply >"$dir/cold.log" 2>"$dir/cold.timings"; t1=$(now)
    colds+=("$(elapsed "$t0" "$t1")")
    cold_ins+=("$(in_process "$dir/cold.timings")")
    grep -q "^apply: [1-9]" "$dir/cold.log" || { echo "cold apply changed nothing:"; cat "$dir/cold.log"; exit 1; }
    for ((k = 0; k < REPEAT; k++)); do
      t0=$(now); ROUTEVPN_TIMINGS=1 "${rv[@]}" apply >"$dir/again.log" 2>"$dir/again.timings"; t1=$(now)
      grep -q '^apply: 0 changes' "$dir/again.log" || { echo "re-apply changed something:"; cat "$dir/again.log"; exit 1; }
      agains+=("$(elapsed "$t0" "$t1")")
      again_ins+=("$(in_process "$dir/again.timings")")
    done
  done
  base=$(median "${bases[@]}") cold=$(median "${colds[@]}") cold_in=$(median "${cold_ins[@]}")
  again=$(median "${agains[@]}") again_in=$(median "${again_ins[@]}")

  sed -i 's/^outer_mtu = 1500/outer_mtu = 1400/' "$dir/tunnels/t0.toml"
  t0=$(now); "${rv[@]}" apply >"$dir/one.log"; t1=$(now)
  one=$(elapsed "$t0" "$t1")
  touched=$(sed -n 's/^apply: \([0-9]*\) change.*/\1/p' "$dir/one.log")

  ratio=$(python3 -c "print(f'{$cold / $base:.2f}x')")
  reratio=$(python3 -c "print(f'{100 * $again / $cold:.1f}%')")
  inratio=$(python3 -c "print(f'{$again_in:.3f}/{$cold_in:.3f}s {100 * $again_in / $cold_in:.1f}%')")
  printf '%-8s %9ss %9ss %7s %9ss %8s %19s %9ss (%s writes)\n' "$n" "$cold" "$base" "$ratio" "$again" "$reratio" "$inratio" "$one" "$touched"
  phases+=("$n tunnels, cold: $(tr "\n" ";" <"$dir/cold.timings")")
  phases+=("$n tunnels, re-apply: $(tr "\n" ";" <"$dir/again.timings")")
done
python3 -c "print(f'per-invocation floor (apply with no profiles): {$floor:.3f}s')"
printf '%s\n' "${phases[@]}"
ip netns del bench 2>/dev/null || true
rm -rf "$work"
