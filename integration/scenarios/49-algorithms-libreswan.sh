#!/usr/bin/env bash
# The algorithms partners' sheets name, against libreswan 4.10's pluto (48 does the same
# against charon). libreswan 4.10 has, for IKEv2: AES-CTR, AES-GCM-8/12/16 and
# ChaCha20-Poly1305 in IKE and ESP, AES-CCM-8/12/16 in ESP only, AES-XCBC (PRF and
# integrity), AES-CMAC as ESP integrity only, ECP-521, Curve25519 and MODP-1536..8192.
# It lacks Curve448 and the AES-CMAC PRF, and has no CCM for IKE (its `algparse`), so those
# cells are 48's alone. A cell is one tunnel: routevpn's VTI against pluto's XFRM
# interface (ipsec-interface=N, no updown: the test routes), both pinned to the cell's
# IKE and ESP proposals; both sides must report exactly those algorithms, the SPIs agree,
# pings cross and only ESP is on the wire. Odd cells are started by routevpn, even ones by
# pluto. The last cell's ESP proposal names a PFS group: its CHILD SA is rekeyed by
# routevpn, through ECP-521, and pluto must hold the new SA. (pluto 4.10 puts the IKE SA's
# group in its CREATE_CHILD_SA proposals, pfs=yes being its default, and dropped a group
# written in esp= in this set-up: the cell's IKE group is the PFS group.)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/../lib.sh"
it_init 49-algorithms-libreswan

ROUTEVPN=${ROUTEVPN:-$PWD/target/debug/routevpn}
modprobe -a ip_vti esp4 xfrm_interface
for m in chacha20poly1305 ccm ctr xcbc cmac gcm; do
  modprobe "$m" 2>/dev/null || log "note: module $m not loadable (may be built in)"
done

# One cell a line: routevpn's IKE and ESP proposals, pluto's ike= and esp=, and the
# algorithms routevpn must report for the IKE SA and the CHILD SA (status --json).
CELLS=(
  "aes256ctr-sha256-ecp384 aes256ctr-sha256 aes_ctr256-sha2_256;dh20 aes_ctr256-sha2_256 AES_CTR_256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/ECP_384 AES_CTR_256/HMAC_SHA2_256_128"
  "chacha20poly1305-prfsha256-x25519 chacha20poly1305 chacha20_poly1305-sha2_256;dh31 chacha20_poly1305 CHACHA20_POLY1305/PRF_HMAC_SHA2_256/CURVE_25519 CHACHA20_POLY1305"
  "aes128ctr-aesxcbc-modp2048 aes128ctr-aesxcbc aes_ctr128-aes_xcbc;dh14 aes_ctr128-aes_xcbc AES_CTR_128/AES_XCBC_96/PRF_AES128_XCBC/MODP_2048 AES_CTR_128/AES_XCBC_96"
  "aes128-sha256-ecp256 aes128-aescmac aes128-sha2_256;dh19 aes128-aes_cmac AES_CBC_128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/ECP_256 AES_CBC_128/AES_CMAC_96"
  "aes256gcm16-prfsha384-ecp521 aes256ccm16 aes_gcm_c256-sha2_384;dh21 aes_ccm_c256 AES_GCM_16_256/PRF_HMAC_SHA2_384/ECP_521 AES_CCM_16_256"
  "aes128gcm12-prfaesxcbc-modp6144 aes128ccm8 aes_gcm_b128-aes_xcbc;dh17 aes_ccm_a128 AES_GCM_12_128/PRF_AES128_XCBC/MODP_6144 AES_CCM_8_128"
  "aes256gcm8-prfsha512-modp8192 aes256ccm12 aes_gcm_a256-sha2_512;dh18 aes_ccm_b256 AES_GCM_8_256/PRF_HMAC_SHA2_512/MODP_8192 AES_CCM_12_256"
  "aes256-sha1-modp1536 aes128gcm12 aes256-sha1;dh5 aes_gcm_b128 AES_CBC_256/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1536 AES_GCM_12_128"
  "aes256-sha512-ecp521 aes256gcm8-ecp521 aes256-sha2_512;dh21 aes_gcm_a256 AES_CBC_256/HMAC_SHA2_512_256/PRF_HMAC_SHA2_512/ECP_521 AES_GCM_8_256"
)
COUNT=${#CELLS[@]}
NAME=(x)
TUNNELS=()
for ((n = 1; n <= COUNT; n++)); do
  NAME+=("alg$n")
  TUNNELS+=("$n")
done

# Tunnel n: outer 192.0.2.n1 (a) <-> 192.0.2.n2 (b), LANs 10.1.n.0/24 <-> 10.2.n.0/24.
two_sites "${TUNNELS[@]}"
rv_site_a_init

conns=""
for n in "${TUNNELS[@]}"; do
  read -r ike esp ls_ike ls_esp _ <<<"${CELLS[n - 1]}"
  alg_cell_profile "$n" "$ike" "$esp"
  conns+=$(printf 'conn %s\n  left=192.0.2.%s2\n  right=192.0.2.%s1\n' "${NAME[$n]}" "$n" "$n")
  conns+=$(printf '\n  authby=secret\n  ikev2=yes\n  auto=add\n  ipsec-interface=%s\n  leftupdown=/bin/true\n' "$n")
  conns+=$(printf '\n  leftsubnet=10.2.%s.0/24\n  rightsubnet=10.1.%s.0/24\n  ike=%s\n  esp=%s\n\n' "$n" "$n" "$ls_ike" "$ls_esp")
  conns+=$'\n\n'
done
pluto_start b "$conns" ": PSK \"$PSK\""
pass "pluto started on site b with $COUNT algorithm cells"

out=$(rv check 2>&1) || true
assert "the validator warns about the legacy cell's group 5, at the keyword" \
  grep -q "weak algorithm \`modp1536\` accepted under allow_legacy" <<<"$out"
rv_daemon_start

# b_route N: pluto's ipsecN up and b's route to our LAN through it (no updown runs).
b_route() {
  ip -n b link set "ipsec$1" up 2>/dev/null &&
    ip -n b route replace "10.1.$1.0/24" dev "ipsec$1" src "10.2.$1.1"
}
# pluto_newest N KIND: pluto's "IKEv2"/"ESP" algorithm newest line of tunnel N.
pluto_newest() {
  whack_in b --status 2>/dev/null | grep "\"${NAME[$1]}\":.* $2 algorithm newest" | tail -n1
}
# has_all TEXT WORD...: TEXT names every WORD.
has_all() {
  local text=$1 w
  shift
  for w; do grep -q -- "$w" <<<"$text" || return 1; done
}
# pluto_words PROPOSAL: the algorithm names of a pluto proposal string, as its status
# prints them (aes_ctr256 -> AES_CTR, dh20 -> DH20, dh14 -> MODP2048; key lengths apart).
pluto_words() {
  python3 - "$1" <<'PY'
import re, sys
names = {"aes_ctr": "AES_CTR", "aes_gcm_a": "AES_GCM_8", "aes_gcm_b": "AES_GCM_12",
         "aes_gcm_c": "AES_GCM_16", "aes_ccm_a": "AES_CCM_8", "aes_ccm_b": "AES_CCM_12",
         "aes_ccm_c": "AES_CCM_16", "chacha20_poly1305": "CHACHA20_POLY1305",
         "aes_xcbc": "XCBC", "aes_cmac": "AES_CMAC", "sha2_256": "SHA2_256",
         "sha2_384": "SHA2_384", "sha2_512": "SHA2_512", "sha1": "SHA1", "aes": "AES_CBC",
         "dh5": "MODP1536", "dh14": "MODP2048", "dh17": "MODP6144", "dh18": "MODP8192",
         "dh19": "DH19", "dh20": "DH20", "dh21": "DH21", "dh31": "DH31"}
for word in re.split(r"[-;]", sys.argv[1]):
    key = re.sub(r"(128|192|256)$", "", word) if word.startswith("aes") else word
    print(names[key])
PY
}

for n in "${TUNNELS[@]}"; do
  read -r ike esp ls_ike ls_esp want_ike want_esp <<<"${CELLS[n - 1]}"
  name=${NAME[$n]}
  capture_start a out "$IT_WORK/$name.pcap" 90
  if ((n % 2)); then
    role=initiator
    out=$(rv up "$name" 2>&1) || true
    assert "$name ($ike / $esp): routevpn up as initiator ($out)" up_done "$name" "$out"
  else
    role=responder
    assert "$name ($ike / $esp): pluto initiates" whack_in b --initiate --name "$name"
    assert "$name: our CHILD SA is up" retry 60 0.5 child_up "$name"
  fi
  assert "$name: pluto's ipsec$n is there and routes our LAN" retry 40 0.25 b_route "$n"
  got_ike=$(ours "$(sa_of "$name")['ike']")
  got_esp=$(ours "$(sa_of "$name")['children'][0]['esp']")
  assert "$name ($role): our IKE SA is $want_ike ($got_ike)" test "$got_ike" = "$want_ike"
  assert "$name ($role): our CHILD SA is $want_esp ($got_esp)" test "$got_esp" = "$want_esp"
  # pluto's status says what it negotiated, in its own names (printed for the record)
  # shellcheck disable=SC2046 # one word per algorithm
  assert "$name ($role): pluto's IKE SA: $(pluto_newest "$n" IKEv2)" \
    has_all "$(pluto_newest "$n" IKEv2)" $(pluto_words "${ls_ike}")
  # shellcheck disable=SC2046
  assert "$name ($role): pluto's CHILD SA: $(pluto_newest "$n" ESP)" \
    has_all "$(pluto_newest "$n" ESP)" $(pluto_words "${ls_esp%%;*}")
  pluto_cell_checks "$n" "$name ($role)"
  capture_stop
  assert_only_esp "$name: only ESP on the outer link" "$IT_WORK/$name.pcap" 6
done

# --- the last cell's CHILD SA rekeyed by routevpn with its PFS group (ECP-521)
n=$COUNT name=${NAME[$n]}
before=$(spis "$name")
assert "$name: routevpn rekeys the CHILD SA" rv rekey "$name"
rekeyed() { test "$(spis "$name")" != "$before" && same "$n"; }
assert "$name: new CHILD SPIs on both sides (were $before, now $(spis "$name"))" retry 40 0.25 rekeyed
got_esp=$(ours "$(sa_of "$name")['children'][0]['esp']")
assert "$name: the rekeyed CHILD SA ran ECP-521 ($got_esp)" grep -q "AES_GCM_8_256/ECP_521" <<<"$got_esp"
assert "$name: pluto established the rekeyed CHILD SA with DH21" \
  grep -q "\"$name\" #.*xfrm=AES_GCM_8_256-NONE-DH21" "$(pluto_dir b)/pluto.log"
assert "$name: ping through the rekeyed SA" ping_from a "10.1.$n.1" "10.2.$n.1" 3

if grep -q "$PSK" "$IT_WORK/daemon-a.log"; then fail "the PSK appears in the daemon log"; else pass "the PSK never appears in the daemon log"; fi

it_finish
