#!/usr/bin/env bash
# An IKE_SA_INIT flood against routevpn's responder from a third namespace, from 256 source
# addresses (as spoofed sources would: the flood never follows up on an answer). routevpn
# starts asking initiators for cookies (RFC 7296 section 2.6), answers none of the flood's
# sources (no state, no amplification), and a real peer, strongSwan's charon, still
# establishes during the flood: it echoes the cookie and its tunnel carries traffic. When
# the flood stops, cookies are no longer asked for.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/../lib.sh"
it_init 80-cookie-flood-strongswan

ROUTEVPN=${ROUTEVPN:-$PWD/target/debug/routevpn}
IKE_LOAD=${IKE_LOAD:-$PWD/target/debug/examples/ike_load}
modprobe -a ip_vti esp4 dummy

FLOOD_RATE=400
FLOOD_SECONDS=40

site_add a
site_add b
site_add flood
for site in a b flood; do
  in_site "$site" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
link_add a out 192.0.2.1/24 b out 192.0.2.2/24
link_add a fl 198.19.0.1/24 flood fl 198.19.0.2/24
# The flood's sources: a whole /24 is local to its namespace, so it can send from any of them.
ip -n flood route add local 198.18.0.0/24 dev lo
ip -n flood route add 192.0.2.0/24 via 198.19.0.1
ip -n a route add 198.18.0.0/24 via 198.19.0.2
lan_add a lan 10.1.0.1/24
lan_add b lan 10.2.0.1/24

rv_site_a_init
# routevpn only answers: charon initiates.
cat >"$A/tunnels/partner.toml" <<TOML
kind = "vti"
local = "192.0.2.1"
remote = "192.0.2.2"
[ike]
proposals = ["aes256gcm16-prfsha384-x25519"]
psk_file = "../secrets/psk"
start_action = "none"
close_action = "none"
[[child]]
local_ts = ["10.1.0.0/24"]
remote_ts = ["10.2.0.0/24"]
esp_proposals = ["aes256gcm16"]
[interface]
name = "vti-partner"
[[route]]
to = "10.2.0.0/24"
src = "10.1.0.1"
TOML

ip -n b route add 10.1.0.0/24 via 192.0.2.1 src 10.2.0.1
charon_start b "$(swanctl_conf partner 192.0.2.2 192.0.2.1 aes256gcm16-prfsha384-x25519 \
  "partner 10.2.0.0/24 10.1.0.0/24 aes256gcm16 none")"
rv_daemon_start

capture_start a fl "$IT_WORK/flood.pcap" 120
in_site flood "$IKE_LOAD" --responder 192.0.2.1 --sources 198.18.0.0/24 --count 256 \
  --flood "$FLOOD_RATE" --timeout "$FLOOD_SECONDS" >"$IT_WORK/flood.json" 2>&1 &
flood_pid=$!
IT_PIDS+=("$flood_pid")
engaged() { grep -q "asking initiators for cookies" "$IT_WORK/daemon-a.log"; }
assert "the flood makes routevpn ask for cookies" retry 60 0.5 engaged
grep "IKE_SA_INIT load" "$IT_WORK/daemon-a.log" | head -n 1 | sed 's/^/    | /'

assert "charon establishes during the flood" swanctl_in b --initiate --child partner --timeout 30
assert "charon was asked for a cookie and echoed it" grep -q "N(COOKIE)" "$(charon_dir b)/charon.log"
assert "ping through the tunnel during the flood" ping_from a 10.1.0.1 10.2.0.1 5
flooding() { kill -0 "$flood_pid" 2>/dev/null; }
assert "...and the flood was still on" flooding

wait "$flood_pid" || true
log "flood: $(cat "$IT_WORK/flood.json")"
sent=$(python3 -c "import json; print(json.load(open('$IT_WORK/flood.json'))['flood_sent'])" || echo 0)
answers=$(python3 -c "import json; print(json.load(open('$IT_WORK/flood.json'))['answers'])" || echo -1)
assert "the flood sent thousands of IKE_SA_INITs ($sent)" test "$sent" -ge 2000
assert "none of the flood's sources got an answer (no state, no amplification)" test "$answers" = 0
disengaged() { grep -q "no longer asking for cookies" "$IT_WORK/daemon-a.log"; }
# Requests are counted per second: within two quiet seconds after the flood they stop.
assert "cookies stop once the flood is over" retry 20 0.5 disengaged
assert "the tunnel still works after the flood" ping_from a 10.1.0.1 10.2.0.1 3
capture_stop
from_flood=$(pcap_count "$IT_WORK/flood.pcap" src net 198.18.0.0/24 and udp port 500)
to_flood=$(pcap_count "$IT_WORK/flood.pcap" udp and dst net 198.18.0.0/24)
assert "the flood crossed the wire ($from_flood datagrams), no datagram went back ($to_flood)" \
  test "$from_flood" -ge 2000 -a "$to_flood" = 0
tcpdump -n -r "$IT_WORK/flood.pcap" dst net 198.18.0.0/24 2>/dev/null | head -n 5 | sed 's/^/    | back: /'

it_finish
