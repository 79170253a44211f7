#!/usr/bin/env bash
# The algorithms partners' sheets name, each as one cell against one charon: ChaCha20-Poly1305,
# AES-CTR, AES-CCM-8/12/16, AES-GCM-8/12, AES-XCBC and AES-CMAC (integrity and PRF), ECP-521,
# Curve448, MODP-6144/8192 and, under allow_legacy, MODP-1536 with SHA-1. A cell is one
# VTI tunnel: IKE proposal + ESP proposal on both sides; charon must report exactly those
# algorithms, the SPIs agree, a ping crosses and only ESP is on the wire (which proves the
# kernel took routevpn's key layout: salt / nonce at the key's end, ICV length). Odd cells
# are initiated by routevpn, even ones by charon, so both roles parse every new transform.
# Cells run one after the other, each torn down before the next.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The extra plugins (Debian's libstrongswan-extra-plugins) bring CCM, CTR, ChaCha20-Poly1305
# and CMAC; xcbc is a standard plugin; openssl does ECP-521, X448 and the MODP groups.
export CHARON_PLUGINS="random nonce aes sha1 sha2 hmac kdf gcm ccm ctr chapoly xcbc cmac gmp openssl pem pkcs1 x509 pubkey kernel-netlink socket-default vici updown"
. "$here/../lib.sh"
it_init 48-algorithms-strongswan

ROUTEVPN=${ROUTEVPN:-$PWD/target/debug/routevpn}
modprobe -a ip_vti esp4
# The kernel loads its crypto templates on demand; loading them here makes a missing one
# show up as a clear message in the log instead of a refused SA.
for m in chacha20poly1305 ccm ctr xcbc cmac gcm; do
  modprobe "$m" 2>/dev/null || log "note: module $m not loadable (may be built in)"
done

# One cell a line: IKE proposal, ESP proposal, charon's IKE algorithms, charon's ESP
# algorithms (as `swanctl --list-sas` prints them; extended regexes).
CELLS=(
  "aes256ctr-sha256-ecp384 aes256ctr-sha256 AES_CTR-256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/ECP_384 AES_CTR-256/HMAC_SHA2_256_128"
  "chacha20poly1305-prfsha256-x25519 chacha20poly1305 CHACHA20_POLY1305(-256)?/PRF_HMAC_SHA2_256/CURVE_25519 CHACHA20_POLY1305(-256)?"
  "aes128ctr-aesxcbc-modp2048 aes128ctr-aesxcbc AES_CTR-128/AES_XCBC_96/PRF_AES128_XCBC/MODP_2048 AES_CTR-128/AES_XCBC_96"
  "aes128-aescmac-ecp256 aes128-aescmac AES_CBC-128/AES_CMAC_96/PRF_AES128_CMAC/ECP_256 AES_CBC-128/AES_CMAC_96"
  "aes256ccm16-prfaescmac-ecp521 aes256ccm16 AES_CCM_16-256/PRF_AES128_CMAC/ECP_521 AES_CCM_16-256"
  "aes128ccm12-prfaesxcbc-curve448 aes128ccm8 AES_CCM_12-128/PRF_AES128_XCBC/CURVE_448 AES_CCM_8-128"
  "aes256gcm8-prfsha384-modp6144 aes256gcm12 AES_GCM_8-256/PRF_HMAC_SHA2_384/MODP_6144 AES_GCM_12-256"
  "aes128gcm12-prfaescmac-modp8192 aes128gcm8 AES_GCM_12-128/PRF_AES128_CMAC/MODP_8192 AES_GCM_8-128"
  "aes256-sha1-modp1536 aes128-sha1 AES_CBC-256/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1536 AES_CBC-128/HMAC_SHA1_96"
)
COUNT=${#CELLS[@]}

two_sites
rv_site_a_init

# Cell n (1-based): outer 192.0.2.n1 <-> 192.0.2.n2, LANs 10.1.n.0/24 <-> 10.2.n.0/24.
swanctl_text=""
for ((n = 1; n <= COUNT; n++)); do
  read -r ike esp _ <<<"${CELLS[n - 1]}"
  name=alg$n
  ip -n a addr add "192.0.2.${n}1/24" dev out
  ip -n b addr add "192.0.2.${n}2/24" dev out
  ip -n a addr add "10.1.$n.1/24" dev lan
  ip -n b addr add "10.2.$n.1/24" dev lan
  alg_cell_profile "$n" "$ike" "$esp"
  ip -n b tunnel add "$name" mode vti local "192.0.2.${n}2" remote "192.0.2.${n}1" key "$n"
  in_site b sysctl -qw "net.ipv4.conf.$name.disable_policy=1"
  ip -n b link set "$name" up
  ip -n b route add "10.1.$n.0/24" dev "$name" src "10.2.$n.1"
  swanctl_text+=$(swanctl_conn "$name" "192.0.2.${n}2" "192.0.2.${n}1" "$ike" "$name" \
    "        local_ts = 10.2.$n.0/24
        remote_ts = 10.1.$n.0/24
        esp_proposals = $esp
        mark_in = $n
        mark_out = $n")
  swanctl_text+=$'\n'
done
charon_start b "connections {
$swanctl_text}
secrets {
  ike-all { secret = \"$PSK\" }
}" && pass "charon started on site b with $COUNT algorithm cells"

out=$(rv check 2>&1) || true
assert "the validator warns about the legacy cell's group 5, at the keyword" \
  grep -q "weak algorithm \`modp1536\` accepted under allow_legacy" <<<"$out"

rv_daemon_start
sa_of() { printf 'next(sa for sa in s["ike_sas"] if sa["name"]=="%s")' "$1"; }

for ((n = 1; n <= COUNT; n++)); do
  read -r ike esp ike_alg esp_alg <<<"${CELLS[n - 1]}"
  name=alg$n
  capture_start a out "$IT_WORK/$name.pcap" 60
  if ((n % 2)); then
    role=initiator
    out=$(rv up "$name" 2>&1) || true
    assert "$name ($ike / $esp): routevpn up as initiator ($out)" grep -q "CHILD SA installed" <<<"$out"
  else
    role=responder
    assert "$name ($ike / $esp): charon initiates" swanctl_in b --initiate --child "$name" --timeout 30
  fi
  sas=$(swanctl_in b --list-sas --ike "$name" 2>&1 || true)
  printf '%s\n' "$sas" | sed "s/^/    [charon] /" >>"$IT_WORK/charon-sas.log"
  assert "$name ($role): charon's IKE SA is ESTABLISHED with $ike_alg" grep -Eq "$ike_alg" <<<"$sas"
  assert "$name ($role): charon's CHILD SA is INSTALLED, ESP $esp_alg" grep -Eq "INSTALLED, TUNNEL, ESP:$esp_alg" <<<"$sas"
  in=$(ours "$(sa_of "$name")['children'][0]['spi_in']")
  out=$(ours "$(sa_of "$name")['children'][0]['spi_out']")
  theirs_in=$(sed -n 's/^ *in  *\([0-9a-f]\{8\}\).*/\1/p' <<<"$sas" | sed -n 1p)
  theirs_out=$(sed -n 's/^ *out *\([0-9a-f]\{8\}\).*/\1/p' <<<"$sas" | sed -n 1p)
  assert "$name ($role): same CHILD SPIs (ours in $in out $out, charon's in $theirs_in out $theirs_out)" \
    test "$in/$out" = "$theirs_out/$theirs_in"
  assert "$name ($role): ping 10.1.$n.1 -> 10.2.$n.1 across $esp" ping_from a "10.1.$n.1" "10.2.$n.1" 2
  capture_stop
  assert_only_esp "$name: only ESP on the outer link" "$IT_WORK/$name.pcap" 4
  swanctl_in b --terminate --ike "$name" --timeout 10 >/dev/null 2>&1 || true
  gone() { test "$(sa_count a "192.0.2.${n}[12]")" = 0; }
  assert "$name: the peer's delete removed its SAs on site a" retry 25 0.2 gone
done

if grep -q "$PSK" "$IT_WORK/daemon-a.log"; then fail "the PSK appears in the daemon log"; else pass "the PSK never appears in the daemon log"; fi

it_finish
