#!/usr/bin/env bash
# Two routevpn daemons negotiate with each other (routevpn's own IKEv2 engine on both
# sides): a VTI and a GRE-over-IPsec tunnel come up with `routevpn up`, both daemons report
# the same SPIs, traffic crosses as ESP only, `down` removes the SAs on both sides (the peer
# hears the DELETE), a wrong PSK and a proposal mismatch fail with clear messages and
# leave no SA, a daemon killed with SIGKILL finds and removes its old SAs when it starts
# again, a tunnel whose device name a foreign device holds is reported and retried while
# the others come up, and a daemon stopped with an exchange in flight still tells the peer
# and removes every SA.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/../lib.sh"
it_init 30-ike-daemon

ROUTEVPN=${ROUTEVPN:-$PWD/target/debug/routevpn}
modprobe -a ip_vti ip_gre esp4 esp6 dummy sch_netem

site_add a
site_add b
link_add a out 192.0.2.1/24 b out 192.0.2.2/24
# One outer address pair per tunnel: IPv4 VTIs are told apart by their endpoints alone.
for i in 11 21 31 41; do
  ip -n a addr add 192.0.2.$i/24 dev out
  ip -n b addr add 192.0.2.$((i + 1))/24 dev out
done
lan_add a lan 10.1.1.1/24
lan_add b lan 10.2.1.1/24
ip -n a addr add 10.1.2.1/24 dev lan
ip -n b addr add 10.2.2.1/24 dev lan

PSK=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')

# write_site SITE LOCAL REMOTE LOCAL_NET REMOTE_NET: profiles and secrets of one site.
write_site() {
  local site=$1 l=$2 r=$3 ln=$4 rn=$5 dir
  dir=$IT_WORK/$site
  mkdir -p "$dir/tunnels" "$dir/secrets" "$dir/state"
  chmod 700 "$dir/secrets"
  printf '%s\n' "$PSK" >"$dir/secrets/good.psk"
  printf 'not-the-same-key-%s\n' "$site" >"$dir/secrets/bad.psk"
  cat >"$dir/tunnels/vti-ike.toml" <<EOF
kind = "vti"
local = "192.0.2.$l"
remote = "192.0.2.$r"
[ike]
proposals = ["aes256-sha256-modp2048"]
psk_file = "../secrets/good.psk"
[[child]]
local_ts = ["$ln.1.0/24"]
remote_ts = ["$rn.1.0/24"]
esp_proposals = ["aes256-sha256"]
[interface]
name = "vti-ike"
addresses = ["$ln.1.1/32"]
[[route]]
to = "$rn.1.0/24"
src = "$ln.1.1"
EOF
  cat >"$dir/tunnels/gre-ike.toml" <<EOF
kind = "gre"
local = "192.0.2.$((l + 10))"
remote = "192.0.2.$((r + 10))"
[ike]
proposals = ["aes128gcm16-prfsha256-ecp256"]
psk_file = "../secrets/good.psk"
[[child]]
esp_proposals = ["aes128gcm16"]
[interface]
name = "gre-ike"
addresses = ["172.16.0.$l/30"]
[[route]]
to = "$rn.2.0/24"
src = "$ln.2.1"
EOF
  # Each side has its own key: authentication must fail.
  cat >"$dir/tunnels/vti-badpsk.toml" <<EOF
kind = "vti"
local = "192.0.2.$((l + 20))"
remote = "192.0.2.$((r + 20))"
[ike]
proposals = ["aes256gcm16-prfsha384-x25519"]
psk_file = "../secrets/bad.psk"
[interface]
name = "vti-badpsk"
addresses = ["172.16.1.$l/32"]
EOF
  # No IKE proposal in common.
  local proposal=aes256-sha256-modp3072
  [[ $site == b ]] && proposal=aes128-sha256-ecp384
  cat >"$dir/tunnels/vti-noprop.toml" <<EOF
kind = "vti"
local = "192.0.2.$((l + 30))"
remote = "192.0.2.$((r + 30))"
[ike]
proposals = ["$proposal"]
psk_file = "../secrets/good.psk"
[interface]
name = "vti-noprop"
addresses = ["172.16.2.$l/32"]
EOF
  chmod 600 "$dir"/secrets/*
}
write_site a 1 2 10.1 10.2
write_site b 2 1 10.2 10.1

rv() {
  local site=$1
  shift
  in_site "$site" "$ROUTEVPN" --config-dir "$IT_WORK/$site/tunnels" --state-dir "$IT_WORK/$site/state" "$@"
}

daemon_start() {
  local site=$1
  # exec all the way down, so that $! is the daemon itself (for kill -TERM below).
  (exec ip netns exec "$site" "$ROUTEVPN" --config-dir "$IT_WORK/$site/tunnels" \
    --state-dir "$IT_WORK/$site/state" daemon --metrics "unix:$IT_WORK/$site/metrics.sock" \
    >>"$IT_WORK/daemon-$site.log" 2>&1) &
  IT_PIDS+=("$!")
  eval "DAEMON_$site=$!"
  # Answering, not the socket file: a killed daemon leaves its file behind.
  if ! retry 100 0.2 rv "$site" status --json >/dev/null 2>&1; then
    fail "daemon on site $site did not start"
    sed 's/^/    | /' "$IT_WORK/daemon-$site.log"
    return 1
  fi
  pass "daemon on site $site answers on its control socket"
}
daemon_start a
daemon_start b

# json SITE EXPR: evaluates EXPR (Python, `s` = status --json) on SITE's daemon.
json() {
  rv "$1" status --json | python3 -c "import json,sys; s=json.load(sys.stdin); print($2)"
}
assert_eventually() { local desc=$1; shift; if retry 25 0.2 "$@"; then pass "$desc"; else fail "$desc"; fi; }
child_of() { printf 'next(c for sa in s["ike_sas"] if sa["name"]=="%s" for c in sa["children"])' "$1"; }
sa_of() { printf 'next(sa for sa in s["ike_sas"] if sa["name"]=="%s")' "$1"; }

# --- the VTI: up from site a, both daemons agree on the SAs, traffic crosses as ESP
# Both sides start their tunnels (start_action = start): `up` finds it under way or done.
out=$(rv a up vti-ike 2>&1)
assert "up vti-ike succeeds ($out)" grep -Eq "CHILD SA installed|already established" <<<"$out"
# Both sides initiated at once: each may briefly hold a second IKE SA until the duplicate
# is deleted; compare once one is left on each side.
ike_sas_named() { json "$1" "sum(sa['name'] == '$2' for sa in s['ike_sas'])"; }
one_vti_ike_sa_each() { test "$(ike_sas_named a vti-ike)/$(ike_sas_named b vti-ike)" = 1/1; }
assert_eventually "one vti-ike IKE SA on each side" one_vti_ike_sa_each
a_in=$(json a "$(child_of vti-ike)['spi_in']") a_out=$(json a "$(child_of vti-ike)['spi_out']")
b_in=$(json b "$(child_of vti-ike)['spi_in']") b_out=$(json b "$(child_of vti-ike)['spi_out']")
assert "CHILD SPIs mirror: a in $a_in = b out $b_out, a out $a_out = b in $b_in" \
  test "$a_in/$a_out" = "$b_out/$b_in"
a_ike=$(json a "$(sa_of vti-ike)['spi_i'] + $(sa_of vti-ike)['spi_r']")
b_ike=$(json b "$(sa_of vti-ike)['spi_i'] + $(sa_of vti-ike)['spi_r']")
assert "both report IKE SPIs $a_ike" test "$a_ike" = "$b_ike"
assert "the IKE SA uses aes256-sha256-modp2048" \
  test "$(json a "$(sa_of vti-ike)['ike']")" = "AES_CBC_256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048"
assert "the kernel holds the inbound SA $a_in on site a" \
  sh -c "ip netns exec a ip xfrm state | grep -q 'spi 0x$a_in'"

capture_start a out "$IT_WORK/vti.pcap"
assert "ping over the negotiated VTI" ping_from a 10.1.1.1 10.2.1.1
capture_stop
assert_only_esp "only ESP (and IKE) on the outer link" "$IT_WORK/vti.pcap" 6
packets=$(json a "$(child_of vti-ike)['packets_out']")
assert "status counts the packets sent ($packets)" test "$packets" -ge 3
# Prometheus metrics from the daemon: the SAs as the kernel counts them.
metric() {
  curl -sf --unix-socket "$IT_WORK/a/metrics.sock" http://localhost/metrics |
    awk -v m="$1" 'index($0, m) == 1 { print $NF }'
}
bytes_out=$(metric 'routevpn_child_sa_bytes_total{tunnel="vti-ike",child="vti-ike",direction="out"}')
assert "metrics count the bytes sent through vti-ike (${bytes_out:-none})" test "${bytes_out:-0}" -gt 0
assert "metrics show vti-ike's IKE SA established" \
  test "$(metric 'routevpn_ike_sas{tunnel="vti-ike",state="ESTABLISHED"}')" = 1
assert "status text lists the IKE SA like swanctl" sh -c "'$ROUTEVPN' --config-dir '$IT_WORK/a/tunnels' --state-dir '$IT_WORK/a/state' status | grep -q 'vti-ike: ESTABLISHED, IKEv2'"

# --- GRE over IPsec: transport mode, dynamic[gre]
out=$(rv a up gre-ike 2>&1)
assert "up gre-ike succeeds ($out)" grep -Eq "CHILD SA installed|already established" <<<"$out"
assert "the GRE child runs in transport mode" test "$(json b "$(child_of gre-ike)['mode']")" = TRANSPORT
assert "ping over GRE over IPsec" ping_from a 10.1.2.1 10.2.2.1

# --- down: the peer hears the DELETE and removes its SAs too
# ESP SAs with their SPI: `ip xfrm state` also lists the kernel's acquire states (SPI 0,
# no keys), made whenever a packet meets a policy without SA, e.g. the GRE device's own
# IPv6 neighbour discovery; counting '^src' lines counted those too.
spis() {
  in_site "$1" ip xfrm state | grep -Eo 'proto esp spi 0x[0-9a-f]+' | awk '{print $4}' |
    grep -vx 0x00000000 || true
}
states() { spis "$1" | grep -c . || true; }
assert "4 SAs per site with two tunnels up" test "$(states a)/$(states b)" = 4/4
assert "down vti-ike on site a" rv a down vti-ike
only_gre_left() { test "$(states a)/$(states b)" = 2/2; }
assert_eventually "only the GRE tunnel's SAs are left on both sites" only_gre_left
assert "site a's VTI device is gone" sh -c "! ip netns exec a ip link show vti-ike 2>/dev/null"

# --- failures read as what they are and leave nothing behind
status=0
out=$(rv a up vti-badpsk 2>&1) || status=$?
assert "a wrong PSK fails (exit $status)" test "$status" -ne 0
assert "...saying authentication failed: $out" grep -qi "authentication failed" <<<"$out"
grep -i "vti-badpsk" "$IT_WORK/daemon-b.log" | holds -qi "authentication failed" &&
  pass "the responder logs the authentication failure" || fail "the responder did not log the authentication failure"
status=0
out=$(rv a up vti-noprop 2>&1) || status=$?
assert "a proposal mismatch fails (exit $status)" test "$status" -ne 0
assert "...saying no proposal chosen: $out" grep -qi "no .*proposal" <<<"$out"
assert "no SA was added by the failures" test "$(states a)/$(states b)" = 2/2
no_failed_ike_sa() { ! json a "[sa['name'] for sa in s['ike_sas']]" | holds -q "badpsk\|noprop"; }
assert "no IKE SA is left for the failed tunnels" no_failed_ike_sa
grep -q "$PSK" "$IT_WORK"/daemon-*.log && fail "the PSK appears in a daemon log" || pass "the PSK never appears in the logs"

# --- SIGKILL: the kernel keeps the SAs; the next daemon removes them and negotiates anew
# A tunnel never applied before, whose device name a foreign device holds when a starts.
# vti-noprop's profile on a new address pair, with a proposal both sides share.
write_taken() {
  local tunnels=$IT_WORK/$1/tunnels
  sed -e 's/vti-noprop/vti-taken/' -e 's/192\.0\.2\.3\([12]\)"/192.0.2.4\1"/' \
    -e 's/^proposals = .*/proposals = ["aes128gcm16-prfsha256-ecp256"]/' \
    -e 's/172\.16\.2\./172.16.3./' "$tunnels/vti-noprop.toml" >"$tunnels/vti-taken.toml"
}
out=$(rv a up vti-ike 2>&1)
assert "vti-ike up again before the kill ($out)" grep -Eq "CHILD SA installed|already established" <<<"$out"
four_sas_a() { test "$(states a)" = 4; }
assert_eventually "site a holds the 4 SAs of gre-ike and vti-ike before the kill" four_sas_a
old_spis=$(spis a | sort)
kill -KILL "$DAEMON_a"
wait "$DAEMON_a" 2>/dev/null || true
assert "SIGKILL left the SAs (and their keys) in the kernel" test "$(spis a | sort)" = "$old_spis"
write_taken a
write_taken b
# SIGHUP reloads the profiles; a new tunnel is enabled by `up`.
kill -HUP "$DAEMON_b"
if retry 25 0.2 rv b up vti-taken --no-wait >/dev/null 2>&1; then pass "site b reloads and starts vti-taken"; else fail "site b did not start vti-taken"; fi
ip -n a link add vti-taken type dummy
daemon_start a
assert "the new daemon logs the 4 SAs it removed" \
  grep -q "removed 4 SA(s) left by an earlier daemon" "$IT_WORK/daemon-a.log"
survivors() { comm -12 <(cat <<<"$old_spis") <(spis a | sort); }
assert "none of the old SPIs is left on site a" test -z "$(survivors)"
gre_up_with_new_spis() {
  local spi
  spi=$(json a "$(child_of gre-ike)['spi_in']" 2>/dev/null) || return 1
  ! grep -q "0x$spi" <<<"$old_spis" && spis a | holds -qx "0x$spi"
}
if retry 100 0.2 gre_up_with_new_spis; then pass "gre-ike is back with new SPIs while vti-taken fails"; else fail "gre-ike did not come back with new SPIs"; fi
taken_error=$(json a "next(f['error'] for f in s['failures'] if f['name'] == 'vti-taken')" 2>&1 || true)
# The dummy is no device kind routevpn reads, so the kernel's EEXIST is what refuses it.
assert "status --json names vti-taken's failure: $taken_error" \
  grep -Eq "vti-taken.*(File exists|not created by routevpn)" <<<"$taken_error"
assert "status text names it too" sh -c "'$ROUTEVPN' --config-dir '$IT_WORK/a/tunnels' --state-dir '$IT_WORK/a/state' status | grep -q 'vti-taken: FAILED'"
assert "the foreign device was not touched" sh -c "ip -n a -d link show vti-taken | grep -q dummy"
ip -n a link del vti-taken
taken_up() { json a "$(child_of vti-taken)['state']" 2>/dev/null | holds -qx INSTALLED; }
if retry 60 1 taken_up; then pass "vti-taken comes up by the retry once the name is free"; else fail "vti-taken did not come up by the retry"; fi
assert "status no longer lists a failure" test "$(json a "len(s['failures'])")" = 0

# --- stopping a daemon removes its SAs and tells the peer, even with an exchange in
# flight: a CHILD rekey whose answer is 0.6 s away (netem) defers the DELETE until then.
in_site a tc qdisc add dev out root netem delay 300ms
assert "a rekeys gre-ike" rv a rekey gre-ike
kill -TERM "$DAEMON_a"
wait "$DAEMON_a" 2>/dev/null || true
in_site a tc qdisc del dev out root
no_sas_a() { test "$(states a)" = 0; }
assert_eventually "a stopped daemon leaves no SA behind" no_sas_a
no_sas_b() { test "$(states b)" = 0; }
assert_eventually "the peer removed its SAs on the DELETE" no_sas_b
assert "the fail-closed dataplane stays: no cleartext without SAs" \
  sh -c "! ip netns exec a ping -n -q -c 1 -W 1 -I 10.1.2.1 10.2.2.1"

it_finish
