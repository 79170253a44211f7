#!/usr/bin/env bash
# routevpn's IKEv2 engine against a real strongSwan charon, route-based on both sides: a
# VTI (charon: mark_in / mark_out) and GRE over IPsec (charon: dynamic[gre], transport) for
# each of three suites, with routevpn as initiator and then as responder. Each case: both
# sides report the same SPIs and algorithms, ping crosses, only ESP on the wire. Then a
# wrong PSK and a proposal mismatch fail with clear messages and leave nothing installed.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/../lib.sh"
it_init 40-interop-strongswan

ROUTEVPN=${ROUTEVPN:-$PWD/target/debug/routevpn}
modprobe -a ip_vti ip_gre esp4 dummy

# Site a runs routevpn, site b runs charon. Tunnel N uses outer 192.0.2.N1 <-> .N2,
# LANs 10.1.N.0/24 <-> 10.2.N.0/24 (GRE: inner 172.16.N.1/30 <-> .2).
SUITES=(
  "aes256-sha256-modp2048 aes256-sha256 AES_CBC-256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048 AES_CBC-256/HMAC_SHA2_256_128"
  "aes128gcm16-prfsha256-ecp256 aes128gcm16 AES_GCM_16-128/PRF_HMAC_SHA2_256/ECP_256 AES_GCM_16-128"
  "aes256gcm16-prfsha384-x25519 aes256gcm16-x25519 AES_GCM_16-256/PRF_HMAC_SHA2_384/CURVE_25519 AES_GCM_16-256"
)
# tunnel N: kind and suite index. 1-3 VTI, 4-6 GRE; 7 wrong PSK, 8 proposal mismatch.
KIND=(x vti vti vti gre gre gre vti vti)
SUITE=(x 0 1 2 0 1 2 2 0)
NAME=(x vti-s1 vti-s2 vti-s3 gre-s1 gre-s2 gre-s3 vti-badpsk vti-noprop)

two_sites 1 2 3 4 5 6 7 8

PSK=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')
A=$IT_WORK/a
mkdir -p "$A/tunnels" "$A/secrets" "$A/state"
chmod 700 "$A/secrets"
printf '%s\n' "$PSK" >"$A/secrets/good.psk"
printf 'a-different-key\n' >"$A/secrets/bad.psk"
chmod 600 "$A"/secrets/*

# --- routevpn's profiles on site a: roles are driven by the test, so no automatic starts
for n in 1 2 3 4 5 6 7 8; do
  read -r ike esp _ <<<"${SUITES[${SUITE[$n]}]}"
  psk=good.psk
  ((n == 7)) && psk=bad.psk
  ((n == 8)) && ike=aes256-sha384-ecp384
  {
    cat <<EOF
kind = "${KIND[$n]}"
local = "192.0.2.${n}1"
remote = "192.0.2.${n}2"
[ike]
proposals = ["$ike"]
psk_file = "../secrets/$psk"
start_action = "none"
close_action = "none"
[[child]]
esp_proposals = ["$esp"]
EOF
    if [[ ${KIND[$n]} == vti ]]; then
      cat <<EOF
local_ts = ["10.1.$n.0/24"]
remote_ts = ["10.2.$n.0/24"]
[interface]
name = "${NAME[$n]}"
addresses = ["10.1.$n.1/32"]
EOF
    else
      cat <<EOF
[interface]
name = "${NAME[$n]}"
addresses = ["172.16.$n.1/30"]
EOF
    fi
    cat <<EOF
[[route]]
to = "10.2.$n.0/24"
src = "10.1.$n.1"
EOF
  } >"$A/tunnels/${NAME[$n]}.toml"
done

# --- charon's side on site b: its own devices, routes and connections
conn() {
  local n=$1 ike=$2 esp=$3
  local child
  if [[ ${KIND[$n]} == vti ]]; then
    child="local_ts = 10.2.$n.0/24
        remote_ts = 10.1.$n.0/24
        mark_in = $n
        mark_out = $n"
  else
    child="local_ts = dynamic[gre]
        remote_ts = dynamic[gre]
        mode = transport"
  fi
  cat <<EOF
  ${NAME[$n]} {
    version = 2
    local_addrs = 192.0.2.${n}2
    remote_addrs = 192.0.2.${n}1
    proposals = $ike
    local { auth = psk
            id = 192.0.2.${n}2 }
    remote { auth = psk
             id = 192.0.2.${n}1 }
    children {
      ${NAME[$n]} {
        $child
        esp_proposals = $esp
        start_action = none
      }
    }
  }
EOF
}
for n in 1 2 3 4 5 6 7 8; do
  if [[ ${KIND[$n]} == vti ]]; then
    ip -n b tunnel add "${NAME[$n]}" mode vti local "192.0.2.${n}2" remote "192.0.2.${n}1" key "$n"
    in_site b sysctl -qw "net.ipv4.conf.${NAME[$n]}.disable_policy=1"
    ip -n b link set "${NAME[$n]}" up
    ip -n b route add "10.1.$n.0/24" dev "${NAME[$n]}" src "10.2.$n.1"
  else
    ip -n b tunnel add "${NAME[$n]}" mode gre local "192.0.2.${n}2" remote "192.0.2.${n}1" ttl 64
    ip -n b addr add "172.16.$n.2/30" dev "${NAME[$n]}"
    ip -n b link set "${NAME[$n]}" up
    ip -n b route add "10.1.$n.0/24" dev "${NAME[$n]}" src "10.2.$n.1"
  fi
done
swanctl_text() {
  echo "connections {"
  for n in 1 2 3 4 5 6 7 8; do
    read -r ike esp _ <<<"${SUITES[${SUITE[$n]}]}"
    ((n == 8)) && ike=aes128-sha256-modp3072
    conn "$n" "$ike" "$esp"
  done
  cat <<EOF
}
secrets {
  ike-all { secret = "$PSK" }
}
EOF
}
charon_start b "$(swanctl_text)"
pass "charon started on site b with 8 connections"

rv_daemon_start
sa_of() { printf 'next(sa for sa in s["ike_sas"] if sa["name"]=="%s")' "$1"; }

# check_case N ROLE: both sides agree on the SAs, traffic crosses.
check_case() {
  local n=$1 role=$2 name=${NAME[$1]} sas ike_alg esp_alg in out theirs_in theirs_out
  read -r _ _ ike_alg esp_alg <<<"${SUITES[${SUITE[$n]}]}"
  sas=$(swanctl_in b --list-sas --ike "$name" 2>&1 || true)
  printf '%s\n' "$sas" | sed "s/^/    [charon] /" >>"$IT_WORK/charon-sas.log"
  in=$(ours "$(sa_of "$name")['children'][0]['spi_in']")
  out=$(ours "$(sa_of "$name")['children'][0]['spi_out']")
  theirs_in=$(sed -n 's/^ *in  *\([0-9a-f]\{8\}\).*/\1/p' <<<"$sas" | sed -n 1p)
  theirs_out=$(sed -n 's/^ *out *\([0-9a-f]\{8\}\).*/\1/p' <<<"$sas" | sed -n 1p)
  assert "$name ($role): charon's IKE SA is ESTABLISHED with $ike_alg" grep -q "$ike_alg" <<<"$sas"
  assert "$name ($role): charon's CHILD SA is INSTALLED, ESP $esp_alg" grep -q "INSTALLED, $([[ ${KIND[$n]} == gre ]] && echo TRANSPORT || echo TUNNEL), ESP:$esp_alg" <<<"$sas"
  assert "$name ($role): same CHILD SPIs (ours in $in out $out, charon's in $theirs_in out $theirs_out)" \
    test "$in/$out" = "$theirs_out/$theirs_in"
  local spis
  spis=$(ours "$(sa_of "$name")['spi_i'] + '_i ' + $(sa_of "$name")['spi_r'] + '_r'")
  assert "$name ($role): same IKE SPIs ($spis)" grep -q "$(cut -d' ' -f1 <<<"$spis").*$(cut -d' ' -f2 <<<"$spis")" <<<"$sas"
  assert "$name ($role): ping 10.1.$n.1 -> 10.2.$n.1" ping_from a "10.1.$n.1" "10.2.$n.1" 2
}

for role in initiator responder; do
  capture_start a out "$IT_WORK/$role.pcap" 120
  for n in 1 2 3 4 5 6; do
    name=${NAME[$n]}
    if [[ $role == initiator ]]; then
      out=$(rv up "$name" 2>&1) || true
      assert "$name: routevpn up as initiator ($out)" grep -q "CHILD SA installed" <<<"$out"
    else
      assert "$name: charon initiates" swanctl_in b --initiate --child "$name" --timeout 30
    fi
    check_case "$n" "$role"
  done
  capture_stop
  assert_only_esp "$role round: only ESP on the outer link" "$IT_WORK/$role.pcap" 24
  assert "$role round: 12 SPIs on the wire" test "$(pcap_spis "$IT_WORK/$role.pcap")" -ge 12
  # charon deletes every IKE SA; with close_action = none routevpn stays down.
  for n in 1 2 3 4 5 6; do
    swanctl_in b --terminate --ike "${NAME[$n]}" --timeout 10 >/dev/null 2>&1 || true
  done
  no_states() { test "$(sa_count a)" = 0; }
  assert "$role round: the peer's deletes removed every SA on site a" retry 25 0.2 no_states
done

# --- failures: clear on our side, nothing left behind
status=0
out=$(rv up vti-badpsk 2>&1) || status=$?
assert "a wrong PSK fails (exit $status): $out" test "$status" -ne 0
assert "...with an authentication failure" grep -qi "authentication failed" <<<"$out"
status=0
out=$(rv up vti-noprop 2>&1) || status=$?
assert "a proposal mismatch fails (exit $status): $out" test "$status" -ne 0
assert "...with no proposal chosen" grep -qi "no IKE proposal chosen" <<<"$out"
swanctl_in b --initiate --child vti-noprop --timeout 15 >/dev/null 2>&1 || true
assert "as responder too, the mismatch is explained in our log" grep -q "vti-noprop: no IKE proposal chosen: ours AES_CBC_256/HMAC_SHA2_384_192/PRF_HMAC_SHA2_384/ECP_384; theirs AES_CBC_128" "$IT_WORK/daemon-a.log"
assert "no SA installed after the failures" test "$(sa_count a)" = 0
left=$(ours "[sa['name'] for sa in s['ike_sas'] if sa['state'] == 'ESTABLISHED']")
assert "no IKE SA established after the failures ($left)" test "$left" = "[]"
if grep -q "$PSK" "$IT_WORK/daemon-a.log"; then fail "the PSK appears in the daemon log"; else pass "the PSK never appears in the daemon log"; fi

it_finish
