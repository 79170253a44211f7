#!/usr/bin/env bash
# Volume limits against a real charon: a CHILD SA with `rekey_packets = 400` is rekeyed when
# the kernel says its packet count reached the soft limit (XFRM_MSG_EXPIRE), which only the
# kernel can count. 1500 pings at 100/s: several rekeys, none lost, both sides agree on the
# SPIs afterwards. The tunnel has a second CHILD SA, which routevpn asks for with
# CREATE_CHILD_SA once IKE_AUTH brought the first; it carries its own traffic.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/../lib.sh"
it_init 65-volume-rekey-strongswan

ROUTEVPN=${ROUTEVPN:-$PWD/target/debug/routevpn}
modprobe -a ip_vti esp4 dummy

site_add a
site_add b
for site in a b; do
  in_site "$site" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
link_add a out 192.0.2.1/24 b out 192.0.2.2/24
lan_add a lan 10.1.0.1/24
lan_add b lan 10.2.0.1/24
ip -n a addr add 10.1.9.1/24 dev lan
ip -n b addr add 10.2.9.1/24 dev lan

rv_site_a_init
cat >"$A/tunnels/counted.toml" <<TOML
kind = "vti"
local = "192.0.2.1"
remote = "192.0.2.2"
[ike]
proposals = ["aes128gcm16-prfsha256-x25519"]
psk_file = "../secrets/psk"
start_action = "none"
close_action = "none"
[[child]]
local_ts = ["10.1.0.0/24"]
remote_ts = ["10.2.0.0/24"]
esp_proposals = ["aes128gcm16"]
rekey_packets = 400
life_packets = 2000
[[child]]
name = "second"
local_ts = ["10.1.9.0/24"]
remote_ts = ["10.2.9.0/24"]
esp_proposals = ["aes128gcm16"]
[interface]
name = "vti-counted"
[[route]]
to = "10.2.0.0/24"
src = "10.1.0.1"
[[route]]
to = "10.2.9.0/24"
src = "10.1.9.1"
TOML

ip -n b route add 10.1.0.0/24 via 192.0.2.1 src 10.2.0.1
ip -n b route add 10.1.9.0/24 via 192.0.2.1 src 10.2.9.1
charon_start b "$(swanctl_conf counted 192.0.2.2 192.0.2.1 aes128gcm16-prfsha256-x25519 \
  "counted 10.2.0.0/24 10.1.0.0/24 aes128gcm16 none" \
  "second 10.2.9.0/24 10.1.9.0/24 aes128gcm16 none")"
rv_daemon_start

out=$(rv up counted 2>&1) || true
assert "up ($out)" grep -q "CHILD SA installed" <<<"$out"
children() { ours "' '.join(sorted(c['name'] for sa in s['ike_sas'] for c in sa['children']))"; }
both_children() { test "$(children)" = "counted second"; }
assert "the second CHILD SA follows over CREATE_CHILD_SA" retry 20 0.5 both_children
charon_children() { test "$(swanctl_in b --list-sas 2>&1 | grep -c 'INSTALLED')" = 2; }
assert "charon installed both CHILD SAs" retry 20 0.5 charon_children
assert "ping through the second CHILD SA (10.1.9.1 -> 10.2.9.1)" ping_from a 10.1.9.1 10.2.9.1 3
limits() { in_site a ip -s xfrm state | grep -c "soft 400(packets)" || true; }
assert "the first CHILD SA's two kernel SAs carry the packet limits" test "$(limits)" = 2
first=$(ours "' '.join(c['spi_in'] for sa in s['ike_sas'] for c in sa['children'] if c['name'] == 'counted')")

in_site a ping -n -q -i 0.01 -c 1500 -W 2 -I 10.1.0.1 10.2.0.1 >"$IT_WORK/ping.txt" 2>&1 || true
summary=$(grep 'packets transmitted' "$IT_WORK/ping.txt" || echo "no ping summary")
assert "1500 pings at 100/s, none lost ($summary)" \
  grep -q '1500 packets transmitted, 1500 received' <<<"$summary"
rekeys=$(grep -c "counted/counted: CHILD SA rekeyed" "$IT_WORK/daemon-a.log" || true)
# Each SA carries ~1500 packets one way: a rekey every 400 from whichever half gets there.
assert "rekeyed by packet count 3 times or more ($rekeys)" test "$rekeys" -ge 3
# The first CHILD SA's SPIs at charon (mirrored) and ours.
theirs() {
  swanctl_in b --list-sas 2>&1 | awk '
    /counted: #/ { mine = 1 } /second: #/ { mine = 0 }
    /reqid/ { installed = /INSTALLED/ }
    mine && installed && $1 == "in" { spi_in = substr($2, 1, 8) }
    mine && installed && $1 == "out" { printf "%s/%s", substr($2, 1, 8), spi_in }'
}
spis() { ours "' '.join(c['spi_in'] + '/' + c['spi_out'] for sa in s['ike_sas'] for c in sa['children'] if c['name'] == 'counted')"; }
same() { test "$(spis)" = "$(theirs)"; }
assert "charon holds the same CHILD SA (ours $(spis), charon's $(theirs))" retry 10 1 same
assert "the SPIs changed (first inbound $first, now $(spis))" test "${first}" != "$(spis | cut -d/ -f1)"
assert "no CHILD SA was lost to the hard limit" test "$(grep -c 'CHILD SA removed' "$IT_WORK/daemon-a.log")" = "$rekeys"
settled() { test "$(sa_count a)" = 4; }
assert "one SA pair per CHILD SA left on site a" retry 25 0.2 settled

it_finish
