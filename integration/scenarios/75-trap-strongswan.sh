#!/usr/bin/env bash
# Negotiation on demand (`trap`) against a real strongSwan charon, through the kernel's
# acquires: the tunnel's XFRM policies stay installed without SAs (fail closed), a packet
# that matches them makes the kernel send XFRM_MSG_ACQUIRE, and routevpn negotiates.
# start_action = trap: no IKE until the first packet. close_action = trap: charon deletes
# the IKE SA, the next packet brings it back. dpd_action = trap: charon is killed, DPD gives
# it up, nothing is sent until traffic comes, and that traffic brings the tunnel back to
# the restarted charon. No packet ever leaves in clear.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/../lib.sh"
it_init 75-trap-strongswan

ROUTEVPN=${ROUTEVPN:-$PWD/target/debug/routevpn}
modprobe -a ip_vti esp4 dummy

DPD_DELAY=3
DPD_TIMEOUT=6

site_add a
site_add b
for site in a b; do
  in_site "$site" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
link_add a out 192.0.2.1/24 b out 192.0.2.2/24
lan_add a lan 10.1.0.1/24
lan_add b lan 10.2.0.1/24

rv_site_a_init
cat >"$A/tunnels/ondemand.toml" <<TOML
kind = "vti"
local = "192.0.2.1"
remote = "192.0.2.2"
[ike]
proposals = ["aes256gcm16-prfsha384-x25519"]
psk_file = "../secrets/psk"
start_action = "trap"
close_action = "trap"
[ike.dpd]
delay = "${DPD_DELAY}s"
timeout = "${DPD_TIMEOUT}s"
action = "trap"
[[child]]
local_ts = ["10.1.0.0/24"]
remote_ts = ["10.2.0.0/24"]
esp_proposals = ["aes256gcm16"]
[interface]
name = "vti-od"
[[route]]
to = "10.2.0.0/24"
src = "10.1.0.1"
TOML

# charon, policy-based and passive: it never initiates, so every negotiation below is one
# routevpn started on traffic.
ip -n b route add 10.1.0.0/24 via 192.0.2.1 src 10.2.0.1
swanctl_text=$(swanctl_conf ondemand 192.0.2.2 192.0.2.1 aes256gcm16-prfsha384-x25519 \
  "ondemand 10.2.0.0/24 10.1.0.0/24 aes256gcm16 none")
charon_start b "$swanctl_text"

rv_daemon_start
children() { ours "len([c for sa in s['ike_sas'] for c in sa['children']])"; }
ike_sas() { ours "len(s['ike_sas'])"; }
charon_children() { swanctl_in b --list-sas 2>&1 | grep -c 'INSTALLED' || true; }
count() { grep -c "$1" "$IT_WORK/daemon-a.log" || true; }
# TRIES pings at 0.5 s intervals; the first are dropped while the tunnel is negotiated.
pings() { in_site a ping -n -q -c "$1" -i 0.5 -W 2 -I 10.1.0.1 10.2.0.1 2>&1 || true; }
received() { sed -n 's/.* \([0-9]*\) received.*/\1/p' <<<"$1"; }

capture_start a out "$IT_WORK/trap.pcap" 200

# --- start_action = trap: nothing until the first packet
sleep 4
assert "no IKE SA before traffic" test "$(ike_sas)" = 0
assert "no IKE message on the wire before traffic" test "$(pcap_count "$IT_WORK/trap.pcap" udp port 500)" = 0
assert "the policies are in place without SAs" test "$(in_site a ip xfrm policy | grep -c '^src')" -ge 2
out=$(pings 20)
assert "traffic brings the tunnel up: $(received "$out")/20 pings answered" test "$(received "$out")" -ge 10
assert "routevpn logged the acquire" grep -q "ondemand/.*traffic for the tunnel, negotiating (trap)" "$IT_WORK/daemon-a.log"
assert "CHILD SA installed on both sides" test "$(children)/$(charon_children)" = 1/1

# --- close_action = trap: charon deletes the IKE SA, the next packet brings it back
swanctl_in b --terminate --ike ondemand --timeout 10 >/dev/null 2>&1 || true
assert "charon's delete removed our SAs" retry 25 0.2 test "$(sa_count a)" = 0
assert "routevpn waits for traffic (close_action = trap)" \
  retry 10 0.2 grep -q "ondemand: waiting for traffic to negotiate again (trap)" "$IT_WORK/daemon-a.log"
sleep 3
assert "...and does not negotiate by itself" test "$(ike_sas)" = 0
out=$(pings 20)
assert "traffic brings it back: $(received "$out")/20 answered" test "$(received "$out")" -ge 10
assert "a second acquire was logged" test "$(count 'traffic for the tunnel, negotiating (trap)')" = 2

# --- dpd_action = trap: charon crashes; DPD gives it up and routevpn waits for traffic
charon_kill b
# Traffic during the outage keeps the DPD check answered by nobody; it must not leak.
pings 4 >/dev/null
assert "DPD gives the peer up" retry $(((DPD_DELAY + DPD_TIMEOUT + 10) * 2)) 0.5 \
  grep -q "ondemand: peer not responding" "$IT_WORK/daemon-a.log"
assert "then routevpn waits for traffic (dpd_action = trap)" \
  test "$(count 'ondemand: waiting for traffic to negotiate again (trap)')" = 2
assert "no SA left on site a" test "$(sa_count a)" = 0
before=$(pcap_count "$IT_WORK/trap.pcap" udp port 500)
sleep 5
assert "no IKE message without traffic" test "$(pcap_count "$IT_WORK/trap.pcap" udp port 500)" = "$before"
charon_start b "$swanctl_text"
out=$(pings 30)
assert "traffic brings the tunnel back to the restarted charon: $(received "$out")/30" \
  test "$(received "$out")" -ge 10
assert "CHILD SA installed on both sides again" test "$(children)/$(charon_children)" = 1/1
assert "no restart by timer ever happened" test "$(count 'initiating again')" = 0

capture_stop
# Charon's port unreachables for the DPD checks while it was down are the only ICMP
# allowed: nothing from or to the LANs may cross in clear.
cleartext=$(pcap_count "$IT_WORK/trap.pcap" net 10.0.0.0/8)
esp=$(pcap_count "$IT_WORK/trap.pcap" ip proto 50)
assert "no LAN packet in clear on the outer link ($cleartext), ESP seen ($esp)" \
  test "$cleartext" = 0 -a "$esp" -gt 20
grep -E 'trap|established|installed|not responding|deleted' "$IT_WORK/daemon-a.log" | sed 's/^/    | /'

it_finish
