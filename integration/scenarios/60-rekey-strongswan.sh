#!/usr/bin/env bash
# CHILD SA rekeying against a real strongSwan charon while 100 packets/s cross each tunnel:
# rekeys started by routevpn (`routevpn rekey`, and on its own when rekey_time runs out)
# and by charon (`swanctl --rekey`), on a VTI with PFS and on GRE over IPsec (transport).
# Both IKE SAs are rekeyed by charon, then by routevpn (`routevpn rekey NAME --ike`), then
# by both at once over a slow link (crossing rekeys, RFC 7296 section 2.8.2).
# Zero lost packets, new SPIs agreed by both sides after
# each rekey, old SAs removed.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/../lib.sh"
it_init 60-rekey-strongswan

ROUTEVPN=${ROUTEVPN:-$PWD/target/debug/routevpn}
modprobe -a ip_vti ip_gre esp4 dummy

two_sites 1 2

rv_site_a_init

# Tunnel 1: VTI with PFS, also rekeyed by routevpn on its own every 55-60 s (the shortest
# rekey_time profiles accept is 60 s).
cat >"$A/tunnels/vti-pfs.toml" <<TOML
kind = "vti"
local = "192.0.2.11"
remote = "192.0.2.12"
[ike]
proposals = ["aes256gcm16-prfsha384-x25519"]
psk_file = "../secrets/psk"
start_action = "none"
close_action = "none"
[[child]]
local_ts = ["10.1.1.0/24"]
remote_ts = ["10.2.1.0/24"]
esp_proposals = ["aes256gcm16-x25519"]
rekey_time = "60s"
life_time = "120s"
rand_time = "5s"
[interface]
name = "vti-pfs"
addresses = ["10.1.1.1/32"]
[[route]]
to = "10.2.1.0/24"
src = "10.1.1.1"
TOML
# Tunnel 2: GRE over IPsec in transport mode, rekeyed on demand only.
cat >"$A/tunnels/gre-tr.toml" <<TOML
kind = "gre"
local = "192.0.2.21"
remote = "192.0.2.22"
[ike]
proposals = ["aes128gcm16-prfsha256-ecp256"]
psk_file = "../secrets/psk"
start_action = "none"
close_action = "none"
[[child]]
esp_proposals = ["aes128gcm16"]
[interface]
name = "gre-tr"
addresses = ["172.16.2.1/30"]
[[route]]
to = "10.2.2.0/24"
src = "10.1.2.1"
TOML

ip -n b tunnel add vti-pfs mode vti local 192.0.2.12 remote 192.0.2.11 key 1
in_site b sysctl -qw net.ipv4.conf.vti-pfs.disable_policy=1
ip -n b link set vti-pfs up
ip -n b route add 10.1.1.0/24 dev vti-pfs src 10.2.1.1
ip -n b tunnel add gre-tr mode gre local 192.0.2.22 remote 192.0.2.21 ttl 64
ip -n b addr add 172.16.2.2/30 dev gre-tr
ip -n b link set gre-tr up
ip -n b route add 10.1.2.0/24 dev gre-tr src 10.2.2.1

swanctl_text() {
  cat <<CONF
connections {
  vti-pfs {
    version = 2
    local_addrs = 192.0.2.12
    remote_addrs = 192.0.2.11
    proposals = aes256gcm16-prfsha384-x25519
    local { auth = psk
            id = 192.0.2.12 }
    remote { auth = psk
             id = 192.0.2.11 }
    children {
      vti-pfs {
        local_ts = 10.2.1.0/24
        remote_ts = 10.1.1.0/24
        mark_in = 1
        mark_out = 1
        esp_proposals = aes256gcm16-x25519
        start_action = none
      }
    }
  }
  gre-tr {
    version = 2
    local_addrs = 192.0.2.22
    remote_addrs = 192.0.2.21
    proposals = aes128gcm16-prfsha256-ecp256
    local { auth = psk
            id = 192.0.2.22 }
    remote { auth = psk
             id = 192.0.2.21 }
    children {
      gre-tr {
        local_ts = dynamic[gre]
        remote_ts = dynamic[gre]
        mode = transport
        esp_proposals = aes128gcm16
        start_action = none
      }
    }
  }
}
secrets {
  ike-all { secret = "$PSK" }
}
CONF
}
charon_start b "$(swanctl_text)"

rv_daemon_start
# spis NAME: our "in/out" SPIs of the tunnel's CHILD SAs; theirs NAME: charon's, mirrored.
spis() {
  ours "' '.join(c['spi_in'] + '/' + c['spi_out'] for sa in s['ike_sas'] if sa['name']=='$1' for c in sa['children'])"
}
# Only INSTALLED ones: charon keeps a rekeyed inbound SA a few seconds longer
# (delete_rekeyed_delay), listed as REKEYED or DELETED.
theirs() {
  swanctl_in b --list-sas --ike "$1" 2>&1 | awk '
    /reqid/ { installed = /INSTALLED/ }
    installed && $1 == "in" { spi_in = substr($2, 1, 8) }
    installed && $1 == "out" { printf "%s%s/%s", sep, substr($2, 1, 8), spi_in; sep = " " }'
}
same() { test "$(spis "$1")" = "$(theirs "$1")"; }
ike_spis() {
  ours "' '.join(sa['spi_i'] + '_' + sa['spi_r'] for sa in s['ike_sas'] if sa['name']=='$1')"
}
states() { sa_count a; }

for name in vti-pfs gre-tr; do
  out=$(rv up "$name" 2>&1) || true
  assert "$name: up ($out)" grep -q "CHILD SA installed" <<<"$out"
done
first_vti=$(spis vti-pfs) first_gre=$(spis gre-tr)

# 100 packets/s for 70 s through each tunnel while both sides rekey, long enough for
# vti-pfs's own rekey_time to run out once.
pings() {
  in_site a ping -n -q -i 0.01 -c 7000 -W 2 -I "10.1.$1.1" "10.2.$1.1" >"$IT_WORK/ping-$1.txt" 2>&1
}
pings 1 &
ping_vti=$!
pings 2 &
ping_gre=$!
capture_start a out "$IT_WORK/rekey.pcap" 100
sleep 4
assert "routevpn rekeys vti-pfs" rv rekey vti-pfs
assert "charon rekeys gre-tr" swanctl_in b --rekey --child gre-tr
sleep 7
assert "charon rekeys vti-pfs" swanctl_in b --rekey --child vti-pfs
assert "routevpn rekeys gre-tr" rv rekey gre-tr
sleep 2
assert "routevpn rekeys gre-tr again" rv rekey gre-tr
# The IKE SAs too (routevpn answers; the CHILD SAs move to the new IKE SA).
ike_before=$(ike_spis vti-pfs)/$(ike_spis gre-tr)
assert "charon rekeys the IKE SA of vti-pfs" swanctl_in b --rekey --ike vti-pfs
assert "charon rekeys the IKE SA of gre-tr" swanctl_in b --rekey --ike gre-tr
sleep 3
assert "routevpn rekeys vti-pfs over its new IKE SA" rv rekey vti-pfs
sleep 2
# And routevpn rekeys both IKE SAs itself, then a CHILD SA over the IKE SA it made.
ike_after_charon=$(ike_spis vti-pfs)/$(ike_spis gre-tr)
assert "routevpn rekeys the IKE SA of gre-tr" rv rekey gre-tr --ike
assert "routevpn rekeys the IKE SA of vti-pfs" rv rekey vti-pfs --ike
sleep 3
assert "routevpn rekeys gre-tr over the IKE SA it made" rv rekey gre-tr
wait "$ping_vti" || true
wait "$ping_gre" || true
capture_stop

for n in 1 2; do
  summary=$(grep 'packets transmitted' "$IT_WORK/ping-$n.txt" || echo "no ping summary")
  assert "tunnel $n: 7000 pings at 100/s, none lost ($summary)" \
    grep -q '7000 packets transmitted, 7000 received' <<<"$summary"
done
# Rekeys leave exactly one CHILD SA per tunnel once the old ones are deleted.
settled() { test "$(states)" = 4; }
assert "old SAs are gone: 4 states on site a (2 tunnels x 2 directions)" retry 25 0.2 settled
# vti-pfs keeps rekeying on its own: compare again if one ran between the two readings.
for name in vti-pfs gre-tr; do
  assert "$name: charon holds the same CHILD SA (ours $(spis "$name"), charon's $(theirs "$name"))" \
    retry 10 1 same "$name"
done
assert "vti-pfs: SPIs changed (was $first_vti, now $(spis vti-pfs))" test "$(spis vti-pfs)" != "$first_vti"
assert "gre-tr: SPIs changed (was $first_gre, now $(spis gre-tr))" test "$(spis gre-tr)" != "$first_gre"
count() { grep -c "$1" "$IT_WORK/daemon-a.log" || true; }
assert "vti-pfs: rekeyed 3 times or more: 3 forced, the rest by rekey_time ($(count 'vti-pfs/vti-pfs: CHILD SA rekeyed'))" \
  test "$(count 'vti-pfs/vti-pfs: CHILD SA rekeyed')" -ge 3
assert "gre-tr: rekeyed 4 times ($(count 'gre-tr/gre-tr: CHILD SA rekeyed'))" \
  test "$(count 'gre-tr/gre-tr: CHILD SA rekeyed')" -ge 4
assert "both IKE SAs rekeyed twice, by charon and by routevpn ($(count 'IKE SA rekeyed'))" \
  test "$(count 'IKE SA rekeyed')" = 4
ike_now=$(ike_spis vti-pfs)/$(ike_spis gre-tr)
assert "new IKE SPIs (were $ike_before, then $ike_after_charon, now $ike_now)" \
  test "$ike_now" != "$ike_before" -a "$ike_now" != "$ike_after_charon"
ike_sas_at_charon() { test "$(swanctl_in b --list-sas 2>&1 | grep -c 'ESTABLISHED')" = 2; }
assert "charon holds exactly the 2 IKE SAs (the rekeyed ones deleted)" retry 10 0.5 ike_sas_at_charon
# same_ike_sa NAME: charon's IKE SA of NAME has our SPIs.
same_ike_sa() {
  local spi
  spi=$(ike_spis "$1")
  grep -q "${spi%_*}_i.*${spi#*_}_r" <(swanctl_in b --list-sas --ike "$1" 2>&1)
}
for name in vti-pfs gre-tr; do
  assert "$name: charon's IKE SA has our SPIs $(ike_spis "$name")" same_ike_sa "$name"
done
assert "no IKE SA was deleted or restarted" test "$(count 'IKE SA deleted\|initiating again')" = 0
assert "no rekey failed" test "$(count 'rekeying failed')" = 0
assert_only_esp "only ESP on the outer link during the rekeys" "$IT_WORK/rekey.pcap" 1000
assert "more than 10 SPIs on the wire" test "$(pcap_spis "$IT_WORK/rekey.pcap")" -gt 10

# Crossing IKE rekeys (RFC 7296 section 2.8.2): 1.5 s of delay each way on the outer link
# (below the 4 s both sides wait before a retransmission), so both sides' requests are on
# the wire before either is answered when the two commands start within 1.5 s of each
# other. Both exchanges complete; the IKE SA made by the one with the lowest nonce is
# deleted by its maker, the other side deletes the old one, and the CHILD SAs move to the
# survivor.
modprobe sch_netem
in_site a tc qdisc add dev out root netem delay 1500ms
in_site a ping -n -q -i 0.01 -c 4500 -W 5 -I 10.1.1.1 10.2.1.1 >"$IT_WORK/ping-cross.txt" 2>&1 &
ping_cross=$!
sleep 3
# Three rounds: which side's rekey is kept is random (nonces), so both outcomes show.
for round in 1 2 3; do
  for name in vti-pfs gre-tr; do
    # routevpn's client takes longer to start than swanctl (~0.4 s under emulation).
    rv rekey "$name" --ike >"$IT_WORK/cross-ours.txt" 2>&1 &
    ours_pid=$!
    sleep 0.3
    swanctl_in b --rekey --ike "$name" >"$IT_WORK/cross-charon.txt" 2>&1 &
    theirs_pid=$!
    theirs_rc=0 ours_rc=0
    wait "$theirs_pid" || theirs_rc=$?
    wait "$ours_pid" || ours_rc=$?
    assert "round $round, $name: charon rekeys the IKE SA ($(tr '\n' ' ' <"$IT_WORK/cross-charon.txt"))" \
      test "$theirs_rc" = 0
    assert "round $round, $name: routevpn rekeys the IKE SA ($(cat "$IT_WORK/cross-ours.txt"))" \
      test "$ours_rc" = 0
    # Two round trips: the deletes of the old and the redundant IKE SA are answered.
    sleep 6
  done
done
wait "$ping_cross" || true
in_site a tc qdisc del dev out root
summary=$(grep 'packets transmitted' "$IT_WORK/ping-cross.txt" || echo "no ping summary")
assert "crossing IKE rekeys: 4500 pings over a 3 s RTT, none lost ($summary)" \
  grep -q '4500 packets transmitted, 4500 received' <<<"$summary"
# A pair whose commands started too far apart does not cross (it is then a plain rekey
# and a refused one); every pair that crossed must have been seen so by both sides.
crossed=$(count 'IKE SA rekeys crossed')
charon_collisions=$(grep -c 'IKE_SA rekey collision' "$(charon_dir b)/charon.log" || true)
assert "most of the 6 pairs of rekeys crossed ($crossed)" test "$crossed" -ge 4
assert "charon saw the same crossings ($charon_collisions)" test "$charon_collisions" = "$crossed"
# Who deletes what depends on the nonces; both sides must have kept the same IKE SA.
two_each() { ike_sas_at_charon && test "$(ours "len(s['ike_sas'])")" = 2; }
assert "each side kept one IKE SA per tunnel" retry 15 1 two_each
for name in vti-pfs gre-tr; do
  assert "$name: after the crossing charon's IKE SA has our SPIs $(ike_spis "$name")" \
    same_ike_sa "$name"
  assert "$name: charon holds the same CHILD SA after the crossing" retry 10 1 same "$name"
done
assert "still no IKE SA deleted or restarted" test "$(count 'IKE SA deleted\|initiating again')" = 0
assert "no IKE rekey failed" test "$(count 'rekeying the IKE SA failed')" = 0
grep 'collision' "$(charon_dir b)/charon.log" | sed 's/^/    charon | /'
grep -E 'rekeyed|removed|failed|deleted|crossed' "$IT_WORK/daemon-a.log" | sed 's/^/    | /' | tail -20

it_finish
