#!/usr/bin/env bash
# routevpn behind a NAT router (nftables masquerade, plus a port forward of UDP 500/4500 so
# the peer can reach it too) against a real strongSwan charon on the public side, over an
# XFRM interface. routevpn's address is private; it announces the NAT's public address as
# its identity (local_id). As initiator and as responder the IKE SA moves to UDP 4500 and
# ESP travels in UDP. Then charon is killed (no DELETE reaches routevpn) and restarted:
# routevpn's DPD finds the stale IKE SA and its restart action brings the tunnel back,
# within DPD delay + timeout + 5 s. Last, charon restarts and initiates at once with
# INITIAL_CONTACT: routevpn drops the stale SAs and answers.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/../lib.sh"
it_init 70-nat-restart-strongswan

ROUTEVPN=${ROUTEVPN:-$PWD/target/debug/routevpn}
modprobe -a xfrm_interface esp4 dummy nft_nat nft_masq nft_chain_nat

DPD_DELAY=5
DPD_TIMEOUT=15

site_add a
site_add nat
site_add b
for site in a nat b; do
  in_site "$site" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
# a (10.0.0.2, private) -- (10.0.0.1) nat (192.0.2.1) -- (192.0.2.2) b
link_add a out 10.0.0.2/24 nat inside 10.0.0.1/24
link_add nat pub 192.0.2.1/24 b out 192.0.2.2/24
ip -n a route add default via 10.0.0.1
in_site nat sysctl -qw net.ipv4.ip_forward=1
lan_add a lan 10.1.0.1/24
lan_add b lan 10.2.0.1/24
in_site nat nft -f - <<'NFT'
table ip nat {
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    iifname "pub" udp dport { 500, 4500 } dnat to 10.0.0.2
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "pub" masquerade
  }
}
NFT

rv_site_a_init
cat >"$A/tunnels/natted.toml" <<TOML
kind = "xfrm"
local = "10.0.0.2"
local_id = "192.0.2.1"
remote = "192.0.2.2"
[ike]
proposals = ["aes256gcm16-prfsha384-x25519"]
psk_file = "../secrets/psk"
start_action = "none"
close_action = "none"
[ike.dpd]
delay = "${DPD_DELAY}s"
timeout = "${DPD_TIMEOUT}s"
action = "restart"
[[child]]
local_ts = ["10.1.0.0/24"]
remote_ts = ["10.2.0.0/24"]
esp_proposals = ["aes256gcm16"]
[interface]
name = "xnat"
[[route]]
to = "10.2.0.0/24"
src = "10.1.0.1"
TOML

# charon, policy-based: its LAN reaches ours through the policy, the route only picks the
# source address the policy matches.
ip -n b route add 10.1.0.0/24 via 192.0.2.1 src 10.2.0.1
swanctl_text() {
  swanctl_conf natted 192.0.2.2 192.0.2.1 aes256gcm16-prfsha384-x25519 \
    "natted 10.2.0.0/24 10.1.0.0/24 aes256gcm16 $1"
}
charon_start b "$(swanctl_text none)"

rv_daemon_start
ike_spis() { ours "' '.join(sa['spi_i'] + '_' + sa['spi_r'] for sa in s['ike_sas'])"; }
child_encap() { ours "' '.join(str(c['encap']) for sa in s['ike_sas'] for c in sa['children'])"; }
established() { test "$(ours "len([c for sa in s['ike_sas'] for c in sa['children']])")" = 1; }
# charon's INSTALLED CHILD SA, as "ENCAP" when it is ESP in UDP.
theirs_encap() { swanctl_in b --list-sas 2>&1 | holds -q 'INSTALLED, TUNNEL-in-UDP'; }
pings() { ping_from a 10.1.0.1 10.2.0.1 "$1"; }

# --- routevpn initiates from behind the NAT
capture_start nat pub "$IT_WORK/initiator.pcap" 60
out=$(rv up natted 2>&1) || true
assert "routevpn up behind NAT ($out)" grep -q "CHILD SA installed" <<<"$out"
assert "routevpn reports its CHILD SA UDP-encapsulated" test "$(child_encap)" = True
assert "charon installed its CHILD SA UDP-encapsulated" theirs_encap
assert "charon sees routevpn at the NAT's public address, port 4500" \
  grep -q "192.0.2.1\[4500\]" <(swanctl_in b --list-sas 2>&1)
assert "ping 10.1.0.1 -> 10.2.0.1 through the NAT" pings 5
capture_stop
assert_only_udp_esp "initiator: ESP in UDP on the public side" "$IT_WORK/initiator.pcap" 10

# --- charon initiates to the NAT's public address; routevpn answers through the forward
swanctl_in b --terminate --ike natted --timeout 10 >/dev/null 2>&1 || true
assert "charon's delete removed our SAs" retry 25 0.2 test "$(sa_count a)" = 0
capture_start nat pub "$IT_WORK/responder.pcap" 60
assert "charon initiates to routevpn behind the NAT" swanctl_in b --initiate --child natted --timeout 30
assert "routevpn, as responder, reports its CHILD SA UDP-encapsulated" test "$(child_encap)" = True
assert "ping through the NAT (routevpn responder)" pings 5
capture_stop
assert_only_udp_esp "responder: ESP in UDP on the public side" "$IT_WORK/responder.pcap" 10
sleep 1
keepalives=$(pcap_count "$IT_WORK/responder.pcap" udp port 4500 and less 40)
log "NAT keepalives seen so far: $keepalives (every 20 s from the side behind the NAT)"

# --- charon crashes and comes back without initiating: routevpn's DPD restarts the tunnel
stale=$(ike_spis)
charon_kill b
killed_at=$(date +%s)
charon_start b "$(swanctl_text none)"
limit=$((DPD_DELAY + DPD_TIMEOUT + 5))
back() { established && test "$(ike_spis)" != "$stale" && pings 1; }
assert "tunnel back by itself after charon's crash" retry $((limit * 2)) 0.5 back
took=$(($(date +%s) - killed_at))
assert "...within DPD delay + timeout + 5 s (${took}s <= ${limit}s)" test "$took" -le "$limit"
assert "routevpn's log tells why" grep -q "natted: peer not responding" "$IT_WORK/daemon-a.log"
assert "a single CHILD SA pair remains on site a" test "$(sa_count a)" = 2
assert "ping after the recovery" pings 5

# --- charon crashes and restarts with start_action = start: INITIAL_CONTACT replaces the
# stale SAs at once (no waiting for DPD)
stale=$(ike_spis)
charon_kill b
charon_start b "$(swanctl_text start)"
swapped() { established && test "$(ike_spis)" != "$stale" && test "$(sa_count a)" = 2; }
assert "charon's new IKE SA replaced the stale one (INITIAL_CONTACT)" retry 40 0.5 swapped
assert "ping after charon's restart" pings 5
timeouts() { test "$(grep -c "natted: peer not responding" "$IT_WORK/daemon-a.log")" = "$1"; }
assert "no liveness timeout was needed for it" timeouts 1

it_finish
