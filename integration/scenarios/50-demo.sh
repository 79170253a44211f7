#!/usr/bin/env bash
# `routevpn demo`, the first command a new user runs: it makes two sites, negotiates a VTI
# and a GRE-over-IPsec tunnel between two daemons, pings across each, shows the SAs and
# removes everything. Also --keep (left running, usable with ip netns) and --clean.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/../lib.sh"
it_init 50-demo

ROUTEVPN=${ROUTEVPN:-$PWD/target/debug/routevpn}
modprobe -a ip_vti ip_gre esp4 dummy veth

leftovers() {
  ls /run/netns 2>/dev/null | grep routevpn-demo || true
  test ! -e /run/routevpn-demo || echo /run/routevpn-demo
  pgrep -f "routevpn-demo/./state" || true
}

status=0
out=$("$ROUTEVPN" demo 2>&1) || status=$?
printf '%s\n' "$out" | sed 's/^/    | /'
printf '%s\n' "$out" >"${RESULTS_DIR:-$IT_WORK}/50-demo.out"
assert "demo exits 0" test "$status" = 0
assert "both tunnels come up" test "$(grep -c 'CHILD SA installed\|already established' <<<"$out")" = 2
assert "ping crosses the VTI" grep -Eq '10.81.1.1 -> 10.82.1.1 via vti-demo: [1-5]/5 replies' <<<"$out"
assert "ping crosses GRE over IPsec" grep -Eq '10.81.2.1 -> 10.82.2.1 via gre-demo: [1-5]/5 replies' <<<"$out"
assert "status lists both IKE SAs established on each site" \
  test "$(grep -Ec '(vti|gre)-demo: ESTABLISHED' <<<"$out")" = 4
assert "status shows the GRE child in transport mode" grep -q 'TRANSPORT' <<<"$out"
assert "the PSK is never printed" bash -c "! grep -Eq '0x[0-9a-f]{64}' <<<\"\$1\"" _ "$out"
assert "nothing is left behind" test -z "$(leftovers)"

# --keep: everything stays, usable by hand; a second demo refuses to trample it.
status=0
out=$("$ROUTEVPN" demo --keep 2>&1) || status=$?
assert "demo --keep exits 0" test "$status" = 0
assert "--keep says how to clean up" grep -q 'routevpn demo --clean' <<<"$out"
assert "kept: both namespaces exist" test "$(ls /run/netns | grep -c routevpn-demo)" = 2
assert "kept: 4 ESP SAs in site a (2 tunnels x 2 directions)" \
  test "$(ip -n routevpn-demo-a xfrm state | grep -c '^src')" = 4
assert "kept: ping by hand through the VTI" \
  ip netns exec routevpn-demo-a ping -c 3 -i 0.2 -W 2 -I 10.81.1.1 10.82.1.1
status=0
again=$("$ROUTEVPN" demo 2>&1) || status=$?
assert "a second demo refuses while one is kept ($again)" \
  bash -c '[[ $1 != 0 ]] && grep -q "demo --clean" <<<"$2"' _ "$status" "$again"
status=0
out=$("$ROUTEVPN" demo --clean 2>&1) || status=$?
assert "demo --clean exits 0 ($out)" test "$status" = 0
assert "after --clean nothing is left" test -z "$(leftovers)"
out=$("$ROUTEVPN" demo --clean 2>&1)
assert "--clean with nothing to clean says so" grep -q 'no demo to clean up' <<<"$out"

it_finish
