#!/usr/bin/env bash
# IPv6 in the kernel against charon, routevpn's daemon on site a, charon on site b:
#   1 xfrm-ds  XFRM interface, IPv6 outer, IPv4 + IPv6 LANs (4-in-6 and 6-in-6), as
#              profiles/xfrm-dualstack.toml; routevpn initiates. Then the MTU arithmetic
#              (ping -M do) and fail closed for IPv6 once the SAs are gone.
#   2 vti6     VTI over IPv6 (vti6), IPv6 LANs; charon initiates.
#   3 xfrm-64  XFRM interface over IPv4, IPv6 LANs (6-in-4), ESN with replay_window 128;
#              charon initiates.
#   4 gre6     ip6gre over IPv6 protected by transport-mode ESP, IPv4 + IPv6 LANs;
#              routevpn initiates.
#   5 xfrm-esn routevpn to routevpn (a second daemon on site c), XFRM interface over IPv6,
#              ESN with replay_window 64 on a and the default 32 on c.
# Every case pings each LAN family through; the outer links carry only ESP.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/../lib.sh"
it_init 45-ipv6-strongswan

ROUTEVPN=${ROUTEVPN:-$PWD/target/debug/routevpn}
modprobe -a ip_vti ip6_vti ip_gre ip6_gre esp4 esp6 xfrm_interface dummy

# Tunnel 1 as profiles/xfrm-dualstack.toml; the others with a cheaper group (TCG is slow).
# Tunnel 5 joins site a's routevpn to a second routevpn daemon on site c.
IKE=(x aes256gcm16-prfsha384-ecp384 aes128gcm16-prfsha256-x25519 aes128gcm16-prfsha256-x25519
  aes128gcm16-prfsha256-x25519 aes128gcm16-prfsha256-x25519)
NAME=(x xfrm-ds vti6 xfrm-64 gre6 xfrm-esn)
KIND=(x xfrm vti xfrm gre xfrm)
ESP=(x aes256gcm16 aes128gcm16 aes128gcm16-esn aes128gcm16 aes128gcm16-esn)
# replay_window on site a's side, where set.
WINDOW=(x "" "" 128 "" 64)
# Outer addresses of tunnel N: a ends in 1, the peer in 2.
OUTER=(x 2001:db8:f::1 2001:db8:f::2 192.0.2.3 2001:db8:f::4 2001:db8:e::5)
PREFIX=(x 64 64 24 64 64)
# outer N SIDE: tunnel N's outer address on side 1 (a) or 2 (b).
outer() { echo "${OUTER[$1]}$2"; }
# LANs of tunnel N: IPv6 fd00:S:N::/64 always, IPv4 10.S.N.0/24 where the case carries it.
V4=(x yes no no yes no)

site_add a
site_add b
site_ipv6 a
site_ipv6 b
link_add a out 192.0.2.250/24 b out 192.0.2.251/24
lan_add a lan 10.1.0.1/24
lan_add b lan 10.2.0.1/24
for n in 1 2 3 4; do
  ip -n a addr add "$(outer "$n" 1)/${PREFIX[$n]}" dev out
  ip -n b addr add "$(outer "$n" 2)/${PREFIX[$n]}" dev out
  ip -n a addr add "fd00:1:$n::1/64" dev lan
  ip -n b addr add "fd00:2:$n::1/64" dev lan
  if [[ ${V4[$n]} == yes ]]; then
    ip -n a addr add "10.1.$n.1/24" dev lan
    ip -n b addr add "10.2.$n.1/24" dev lan
  fi
done
rv_site_a_init

# --- routevpn's profiles: roles are driven by the test
# profile N ME PEER SIDE PEER_SIDE: tunnel N's profile for LAN site ME (1 a, 3 c) toward
# PEER's LANs, from outer address SIDE (1 or 2) to PEER_SIDE.
profile() {
  local n=$1 me=$2 peer=$3 side=$4 peer_side=$5 local_ts remote_ts addrs
  cat <<EOF
kind = "${KIND[$n]}"
local = "$(outer "$n" "$side")"
remote = "$(outer "$n" "$peer_side")"
[ike]
proposals = ["${IKE[$n]}"]
psk_file = "../secrets/psk"
start_action = "none"
close_action = "none"
[[child]]
esp_proposals = ["${ESP[$n]}"]
EOF
  local_ts="\"fd00:$me:$n::/64\"" remote_ts="\"fd00:$peer:$n::/64\"" addrs="\"fd00:$me:$n::1/128\""
  if [[ ${V4[$n]} == yes ]]; then
    local_ts+=", \"10.$me.$n.0/24\"" remote_ts+=", \"10.$peer.$n.0/24\"" addrs+=", \"10.$me.$n.1/32\""
  fi
  [[ -z ${WINDOW[$n]} || $me != 1 ]] || echo "replay_window = ${WINDOW[$n]}"
  if [[ ${KIND[$n]} == gre ]]; then
    # GRE between the outer addresses: the child protects GRE itself (transport mode).
    addrs="\"fd00:16:$n::1/64\", \"172.16.$n.1/30\""
  else
    echo "local_ts = [$local_ts]"
    echo "remote_ts = [$remote_ts]"
  fi
  cat <<EOF
[interface]
name = "${NAME[$n]}"
addresses = [$addrs]
[[route]]
to = "fd00:$peer:$n::/64"
src = "fd00:$me:$n::1"
EOF
  if [[ ${V4[$n]} == yes ]]; then
    printf '[[route]]\nto = "10.%s.%s.0/24"\nsrc = "10.%s.%s.1"\n' "$peer" "$n" "$me" "$n"
  fi
}
for n in 1 2 3 4; do profile "$n" 1 2 1 2 >"$A/tunnels/${NAME[$n]}.toml"; done
profile 5 1 3 1 2 >"$A/tunnels/${NAME[5]}.toml"

# --- a second routevpn daemon on site c, the peer of tunnel 5
site_add c
site_ipv6 c
link_add a out2 "$(outer 5 1)/64" c out "$(outer 5 2)/64"
lan_add c lan fd00:3:5::1/64
ip -n a addr add fd00:1:5::1/64 dev lan
C=$IT_WORK/c
mkdir -p "$C/tunnels" "$C/secrets" "$C/state"
chmod 700 "$C/secrets"
install -m 600 "$A/secrets/psk" "$C/secrets/psk"
profile 5 3 1 2 1 >"$C/tunnels/${NAME[5]}.toml"
(exec ip netns exec c "$ROUTEVPN" --config-dir "$C/tunnels" --state-dir "$C/state" daemon \
  >"$IT_WORK/daemon-c.log" 2>&1) &
IT_PIDS+=("$!")
assert "routevpn daemon on site c answers" retry 100 0.2 test -S "$C/state/routevpn.sock"

# --- charon's side on site b: its own devices, routes and connections
route_back() {
  local n=$1 dev=$2
  ip -n b route add "fd00:1:$n::/64" dev "$dev" src "fd00:2:$n::1"
  if [[ ${V4[$n]} == yes ]]; then ip -n b route add "10.1.$n.0/24" dev "$dev" src "10.2.$n.1"; fi
}
child_ts() {
  local n=$1 l="fd00:2:$1::/64" r="fd00:1:$1::/64"
  if [[ ${V4[$n]} == yes ]]; then l+=",10.2.$n.0/24" r+=",10.1.$n.0/24"; fi
  printf '        local_ts = %s\n        remote_ts = %s\n' "$l" "$r"
}
ip -n b link add xfrm-ds type xfrm dev out if_id 1
ip -n b link add vti6 type vti6 local "$(outer 2 2)" remote "$(outer 2 1)" key 2
# charon's inbound policies carry no mark: the decrypted packet, its secpath dropped by the
# VTI, would fail them. IPv6 looks the sysctl up on the device of the destination address.
in_site b sysctl -qw net.ipv6.conf.vti6.disable_policy=1 net.ipv6.conf.lan.disable_policy=1
ip -n b link add xfrm-64 type xfrm dev out if_id 3
ip -n b link add gre6 type ip6gre local "$(outer 4 2)" remote "$(outer 4 1)" ttl 64
ip -n b addr add fd00:16:4::2/64 dev gre6
ip -n b addr add 172.16.4.2/30 dev gre6
for n in 1 2 3 4; do
  ip -n b link set "${NAME[$n]}" up
  route_back "$n" "${NAME[$n]}"
done
{
  echo "connections {"
  swanctl_conn xfrm-ds "$(outer 1 2)" "$(outer 1 1)" "${IKE[1]}" xfrm-ds \
    "$(child_ts 1)        if_id_in = 1
        if_id_out = 1
        esp_proposals = ${ESP[1]}"
  swanctl_conn vti6 "$(outer 2 2)" "$(outer 2 1)" "${IKE[2]}" vti6 \
    "$(child_ts 2)        mark_in = 2
        mark_out = 2
        esp_proposals = ${ESP[2]}"
  swanctl_conn xfrm-64 "$(outer 3 2)" "$(outer 3 1)" "${IKE[3]}" xfrm-64 \
    "$(child_ts 3)        if_id_in = 3
        if_id_out = 3
        esp_proposals = ${ESP[3]}"
  swanctl_conn gre6 "$(outer 4 2)" "$(outer 4 1)" "${IKE[4]}" gre6 \
    "        local_ts = dynamic[gre]
        remote_ts = dynamic[gre]
        mode = transport
        esp_proposals = ${ESP[4]}"
  printf '}\nsecrets {\n  ike-all { secret = "%s" }\n}\n' "$PSK"
} >"$IT_WORK/b-swanctl.conf"
charon_start b "$(cat "$IT_WORK/b-swanctl.conf")"
pass "charon started on site b with 4 connections"

rv_daemon_start
log "sites, charon and both daemons up"
capture_start a out "$IT_WORK/up.pcap" 150

# --- each case up, in its role, then pings of each LAN family
for n in 1 2 3 4; do
  name=${NAME[$n]}
  if [[ $n == 1 || $n == 4 ]]; then
    role=initiator
    out=$(rv up "$name" 2>&1) || true
    assert "$name: routevpn up as initiator ($out)" grep -q "CHILD SA installed" <<<"$out"
  else
    role=responder
    assert "$name: charon initiates" swanctl_in b --initiate --child "$name" --timeout 30
  fi
  assert "$name ($role): charon's CHILD SA is INSTALLED" \
    grep -q "INSTALLED, $([[ ${KIND[$n]} == gre ]] && echo TRANSPORT || echo TUNNEL)" \
    <<<"$(swanctl_in b --list-sas --ike "$name" 2>&1)"
  assert "$name ($role): ping fd00:1:$n::1 -> fd00:2:$n::1" ping_from a "fd00:1:$n::1" "fd00:2:$n::1" 2
  if [[ ${V4[$n]} == yes ]]; then
    assert "$name ($role): ping 10.1.$n.1 -> 10.2.$n.1" ping_from a "10.1.$n.1" "10.2.$n.1" 2
  fi
done
capture_stop
assert_only_esp46 "outer link: only ESP for the 6 pings of 4 tunnels" "$IT_WORK/up.pcap" 24

log "tunnels 1-4 checked"

# --- routevpn to routevpn with ESN
capture_start a out2 "$IT_WORK/esn.pcap" 60
out=$(rv up xfrm-esn 2>&1) || true
assert "xfrm-esn: routevpn up toward routevpn on site c ($out)" grep -q "CHILD SA installed" <<<"$out"
assert "xfrm-esn: ping fd00:1:5::1 -> fd00:3:5::1" ping_from a fd00:1:5::1 fd00:3:5::1 2
capture_stop
assert_only_esp46 "xfrm-esn: only ESP between the routevpn sites" "$IT_WORK/esn.pcap" 4

for site in a b c; do
  in_site "$site" cat /proc/net/xfrm_stat >"$IT_WORK/$site-xfrm_stat.log"
  in_site "$site" ip -s xfrm state >"$IT_WORK/$site-states.log"
done

# --- the kernel states: AF_UNSPEC on tunnel mode, ESN with the child's window
tunnel_af_unspec=$(grep -A3 -E "^src ($(outer 1 1)|$(outer 1 2)|$(outer 2 1)|$(outer 2 2)|$(outer 3 1)|$(outer 3 2)) " \
  "$IT_WORK/a-states.log" | grep -c "flag.*af-unspec" || true)
assert "site a: the 6 tunnel-mode states carry af-unspec ($tunnel_af_unspec)" test "$tunnel_af_unspec" = 6
esn_a=$(grep -A3 -E "^src ($(outer 3 1)|$(outer 3 2)) " "$IT_WORK/a-states.log" | grep -c "flag.* esn" || true)
esn_b=$(grep -A3 -E "^src ($(outer 3 1)|$(outer 3 2)) " "$IT_WORK/b-states.log" | grep -c "flag.* esn" || true)
assert "xfrm-64: both states on site a have ESN ($esn_a)" test "$esn_a" = 2
assert "xfrm-64: both states on site b (charon) have ESN ($esn_b)" test "$esn_b" = 2
window=$(grep -c "replay_window 128," "$IT_WORK/a-states.log" || true)
assert "xfrm-64: site a's states have the child's replay window 128 ($window)" test "$window" = 2
esn_a=$(grep -A3 -E "^src ($(outer 5 1)|$(outer 5 2)) " "$IT_WORK/a-states.log" | grep -c "flag.* esn" || true)
esn_c=$(grep -c "flag.* esn" "$IT_WORK/c-states.log" || true)
assert "xfrm-esn: both states on site a have ESN ($esn_a)" test "$esn_a" = 2
assert "xfrm-esn: both states on site c have ESN ($esn_c)" test "$esn_c" = 2
window=$(grep -c "replay_window 64," "$IT_WORK/a-states.log" || true)
assert "xfrm-esn: site a's states have replay window 64 ($window)" test "$window" = 2
window=$(grep -c "replay_window 32," "$IT_WORK/c-states.log" || true)
assert "xfrm-esn: site c's states have the default window 32 ($window)" test "$window" = 2
no_esn_elsewhere=$(grep -c "flag.* esn" "$IT_WORK/a-states.log" || true)
assert "site a: ESN only where negotiated ($no_esn_elsewhere states)" test "$no_esn_elsewhere" = 4

log "kernel states checked"

# --- MTU: the largest IPv6 ping that fits xfrm-ds passes, one byte more is refused here
mtu=$(ip -n a -j link show xfrm-ds | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["mtu"])')
ip -n b link set xfrm-ds mtu "$mtu"
fits=$((mtu - 40 - 8))
assert "xfrm-ds (MTU $mtu): a $fits-byte IPv6 ping (a full $mtu-byte packet) crosses" \
  ping_size_from a fd00:1:1::1 fd00:2:1::1 "$fits"
out=$(ping_size_from a fd00:1:1::1 fd00:2:1::1 $((fits + 1)) 2>&1) || true
assert "xfrm-ds: one byte more is refused locally: message too long" grep -qi "message too long" <<<"$out"

# --- fail closed: charon deletes the SAs; IPv6 toward its LAN stays off the wire
swanctl_in b --terminate --ike xfrm-ds --timeout 10 >/dev/null 2>&1 || true
gone() { test "$(sa_count a "$(outer 1 1)|$(outer 1 2)")" = 0; }
assert "xfrm-ds: the peer's delete removed its SAs on site a" retry 25 0.2 gone
capture_start a out "$IT_WORK/closed.pcap" 30
assert_not "xfrm-ds without SAs: IPv6 ping gets no answer" ping_from a fd00:1:1::1 fd00:2:1::1 2
assert_not "xfrm-ds without SAs: IPv4 ping gets no answer" ping_from a 10.1.1.1 10.2.1.1 2
capture_stop
clear=$(pcap_count "$IT_WORK/closed.pcap" "$PCAP_CLEAR_ECHO")
esp=$(pcap_count "$IT_WORK/closed.pcap" "$PCAP_ESP46")
assert "fail closed: no cleartext echo on the wire ($clear), nor ESP ($esp)" test "$clear/$esp" = 0/0

for n in 2 3 4; do
  swanctl_in b --terminate --ike "${NAME[$n]}" --timeout 10 >/dev/null 2>&1 || true
done
assert "xfrm-esn: routevpn down" rv down xfrm-esn
c_empty() { test "$(sa_count c)" = 0; }
assert "xfrm-esn: site c heard the delete and removed its SAs" retry 25 0.2 c_empty
no_states() { test "$(sa_count a)" = 0; }
assert "the peer's deletes removed every SA on site a" retry 25 0.2 no_states
if grep -q "$PSK" "$IT_WORK/daemon-a.log" "$IT_WORK/daemon-c.log"; then
  fail "the PSK appears in a daemon log"
else
  pass "the PSK never appears in the daemon logs"
fi

it_finish
