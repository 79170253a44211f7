#!/usr/bin/env bash
# Moving between charon and routevpn with the operator's own files, against the same
# partner (routevpn on site a):
# 1. import: site b's charon runs a policy-based swanctl.conf and carries traffic;
#    `routevpn import` turns that file into a profile, charon goes, and routevpn's daemon
#    on site b brings the same tunnel up from the imported profile.
# 2. export: site a's profile, exported by `routevpn export --with-secrets`, is loaded
#    into a charon on site a (with the VTI an operator makes for the export's mark) and
#    carries traffic against site b's routevpn.
# Every step carries LAN traffic, and the outer link only ever carries ESP.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/../lib.sh"
it_init 36-swanctl-migrate

ROUTEVPN=${ROUTEVPN:-$PWD/target/debug/routevpn}
modprobe -a ip_vti xfrm_interface esp4 dummy

MARK=100
# Outer 192.0.2.250 (a) and .251 (b), LANs 10.1.0.1/24 and 10.2.0.1/24.
two_sites
rv_sites_init a b

# Site a answers only: each side that replaces another initiates.
cat >"$IT_WORK/a/tunnels/partner.toml" <<TOML
kind = "vti"
local = "192.0.2.250"
remote = "192.0.2.251"
mark = $MARK
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
rv_daemon_at a

children_at() {
  rv_at "$1" status --json |
    python3 -c "import json,sys; print(sum(len(sa['children']) for sa in json.load(sys.stdin)['ike_sas']))"
}
charon_children() { swanctl_in "$1" --list-sas 2>/dev/null | grep -c INSTALLED || true; }

# --- 1. charon on site b, policy-based, then routevpn from the imported file ------------
ip -n b route add 10.1.0.0/24 via 192.0.2.250 src 10.2.0.1
assert "charon on site b loads its swanctl.conf" charon_start b \
  "$(swanctl_conf partner 192.0.2.251 192.0.2.250 aes256gcm16-prfsha384-x25519 \
    'net 10.2.0.0/24 10.1.0.0/24 aes256gcm16 start')"
assert "charon's tunnel comes up" retry 100 0.2 test "$(children_at a)/$(charon_children b)" = 1/1
capture_start a out "$IT_WORK/charon-b.pcap" 60
assert "LAN to LAN through charon on site b" ping_from b 10.2.0.1 10.1.0.1
capture_stop
assert_only_esp "outer link: ESP only (charon on b)" "$IT_WORK/charon-b.pcap" 3

conf_b=$(charon_dir b)/swanctl.conf
imported=$(rv_at b import "$conf_b" --out "$IT_WORK/b/tunnels" 2>&1)
printf '%s\n' "$imported" | sed 's/^/    | /'
assert "routevpn import writes the profile and the key" \
  test -f "$IT_WORK/b/tunnels/partner.toml" -a -f "$IT_WORK/b/tunnels/secrets/partner.psk"
assert "...and says the policy-based connection became route-based" \
  holds -q "policy-based in swanctl.conf" <<<"$imported"
assert_not "...and prints no key" holds -qF "$PSK" <<<"$imported"
assert "the imported profile passes check" rv_at b check

# charon goes as an operator stops it: its SAs and policies with it; the route made for
# its policies too (the profile routes the LAN through its own device).
swanctl_in b --terminate --ike partner --timeout 10 >/dev/null 2>&1 || true
kill "$(cat "$(charon_dir b)/pid")"
charon_gone() { ! kill -0 "$(cat "$(charon_dir b)/pid")" 2>/dev/null; }
assert "charon on site b stops" retry 50 0.2 charon_gone
ip -n b route del 10.1.0.0/24
assert "site a's SAs went with charon's delete" retry 50 0.2 test "$(sa_count a)" = 0

rv_daemon_at b
assert "routevpn on site b brings the imported tunnel up" \
  retry 100 0.2 test "$(children_at a)/$(children_at b)" = 1/1
capture_start a out "$IT_WORK/imported.pcap" 60
assert "LAN to LAN through the imported profile (b) and routevpn (a)" ping_from b 10.2.0.1 10.1.0.1
assert "...both ways" ping_from a 10.1.0.1 10.2.0.1
capture_stop
assert_only_esp "outer link: ESP only (imported profile)" "$IT_WORK/imported.pcap" 6

# --- 2. site a's profile exported into a charon on site a ------------------------------
exported=$IT_WORK/exported.conf
export_a() { rv_at a export partner --with-secrets >"$exported"; }
assert "routevpn export writes site a's tunnel for charon" export_a
sed 's/secret = .*/secret = <not shown>/; s/^/    | /' "$exported"
assert "...with the VTI's mark" holds -q "mark_in = $MARK" "$exported"

# routevpn leaves site a: its daemon deletes the SAs on the way out, an apply without the
# profile removes its device, routes and policies.
kill "${RV_DAEMON[a]}"
wait "${RV_DAEMON[a]}" 2>/dev/null || true
rm "$IT_WORK/a/tunnels/partner.toml"
assert "routevpn's dataplane leaves site a" rv_at a apply
assert_not "...its VTI with it" in_site a ip link show vti-partner
# What a strongSwan operator makes for a route-based connection with that mark.
ip -n a tunnel add vti-partner mode vti local 192.0.2.250 remote 192.0.2.251 key "$MARK"
in_site a sysctl -qw net.ipv4.conf.vti-partner.disable_policy=1
ip -n a link set vti-partner up
ip -n a route add 10.2.0.0/24 dev vti-partner src 10.1.0.1
assert "charon on site a loads the exported file" charon_start a "$(cat "$exported")"
assert "site b's routevpn brings the tunnel up with it" rv_at b up partner
assert "CHILD SA installed on both sides" \
  retry 50 0.2 test "$(charon_children a)/$(children_at b)" = 1/1
capture_start a out "$IT_WORK/exported.pcap" 60
assert "LAN to LAN through the exported file (charon on a) and routevpn (b)" \
  ping_from a 10.1.0.1 10.2.0.1
assert "...both ways" ping_from b 10.2.0.1 10.1.0.1
capture_stop
assert_only_esp "outer link: ESP only (exported file)" "$IT_WORK/exported.pcap" 6

it_finish
