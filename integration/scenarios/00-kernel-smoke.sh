#!/usr/bin/env bash
# Smoke test of the VM recipe itself: the guest kernel has the tunnel and
# IPsec pieces routevpn needs, a hand-built VTI tunnel encrypts, and two
# strongSwan charons negotiate a route-based (VTI + marks) tunnel.
# Runs inside the VM only (integration/vm); it needs CAP_NET_ADMIN and the
# guest kernel's modules.
set -Eeuo pipefail
# shellcheck source=integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
it_init 00-kernel-smoke

# --- a) kernel modules -------------------------------------------------
log "a) kernel modules and tunnel devices"
pass "kernel version $(uname -r)"
# aesni_intel may or may not load under TCG; the generic gcm/rfc4106
# templates are what must be there.
for mod in ip_vti ip_gre esp4 xfrm_interface xfrm_user gcm aes_generic; do
  assert "modprobe $mod" modprobe "$mod"
done
assert "kernel offers rfc4106(gcm(aes))" sh -c "modprobe crypto-rfc4106 2>/dev/null; grep -q 'rfc4106(gcm(aes))' /proc/crypto"

site_add smoke-dev
assert "create a VTI device" ip -n smoke-dev tunnel add vti9 mode vti local 203.0.113.1 remote 203.0.113.2 key 9
assert "create a GRE device" ip -n smoke-dev tunnel add gre9 mode gre local 203.0.113.1 remote 203.0.113.2 ttl 64
assert "create an XFRM interface" ip -n smoke-dev link add xfrm9 type xfrm if_id 9
site_del smoke-dev

# --- b) hand-made VTI tunnel with marked xfrm states/policies ------------
log "b) hand-made VTI tunnel, AES-GCM xfrm states"
L=smoke-l R=smoke-r KEY=11
site_add $L
site_add $R
link_add $L l-wan 192.0.2.1/24 $R r-wan 192.0.2.2/24
lan_add $L lan0 10.1.0.1/24
lan_add $R lan0 10.2.0.1/24

# AES-256-GCM: 32 key bytes + 4 salt bytes, 16-byte ICV.
GCM_KEY_LR=0x$(printf '11%.0s' {1..36})
GCM_KEY_RL=0x$(printf '22%.0s' {1..36})

# vti_site SITE LOCAL REMOTE REMOTE_LAN: tunnel device, route, and the
# marked state/policy pair. VTI marks packets with its key on the way out
# (policy lookup) and on the way in (state and policy lookup), so both
# states and policies carry the same mark.
vti_site() {
  local site=$1 local=$2 remote=$3 lan=$4 spi_out=$5 key_out=$6 spi_in=$7 key_in=$8
  ip -n "$site" tunnel add vti$KEY mode vti local "$local" remote "$remote" key $KEY
  # Policy checks happen on the xfrm states, not on the decrypted packet.
  in_site "$site" sysctl -qw net.ipv4.conf.vti$KEY.disable_policy=1
  ip -n "$site" link set vti$KEY up
  ip -n "$site" route add "$lan" dev vti$KEY
  ip -n "$site" xfrm state add src "$local" dst "$remote" proto esp spi "$spi_out" \
    mode tunnel mark $KEY aead 'rfc4106(gcm(aes))' "$key_out" 128
  ip -n "$site" xfrm state add src "$remote" dst "$local" proto esp spi "$spi_in" \
    mode tunnel mark $KEY aead 'rfc4106(gcm(aes))' "$key_in" 128
  ip -n "$site" xfrm policy add dir out src 0.0.0.0/0 dst 0.0.0.0/0 mark $KEY \
    tmpl src "$local" dst "$remote" proto esp mode tunnel
  ip -n "$site" xfrm policy add dir in src 0.0.0.0/0 dst 0.0.0.0/0 mark $KEY \
    tmpl src "$remote" dst "$local" proto esp mode tunnel
}
# Set-up steps run directly (not under assert): a failure aborts the scenario
# with its line number, which is counted as a failure.
vti_site $L 192.0.2.1 192.0.2.2 10.2.0.0/24 0x1001 "$GCM_KEY_LR" 0x2001 "$GCM_KEY_RL"
vti_site $R 192.0.2.2 192.0.2.1 10.1.0.0/24 0x2001 "$GCM_KEY_RL" 0x1001 "$GCM_KEY_LR"
pass "manual VTI tunnels with AES-GCM states configured"

assert "outer ping (underlay) $L -> $R" ping_from $L 192.0.2.1 192.0.2.2 2
capture_start $L l-wan "$IT_WORK/manual-vti.pcap" 30
assert "ping 10.1.0.1 -> 10.2.0.1 across manual VTI" ping_from $L 10.1.0.1 10.2.0.1 5
capture_stop
# 5 echo requests + 5 replies, each one ESP packet.
assert_only_esp "outer link carries ESP only (manual VTI)" "$IT_WORK/manual-vti.pcap" 10
assert "ESP SA counted the traffic" sh -c \
  "ip -n $L -s xfrm state get src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x1001 mark $KEY | grep -Eq '[1-9][0-9]*\(bytes\)'"
site_del $L
site_del $R

# --- c) two charons, PSK IKEv2, route-based via VTI + mark_in/mark_out ---
log "c) two charons, route-based IKEv2 tunnels"
# Tunnel "smoke": aes256-sha256-modp2048 / ESP aes256-sha256, VTI key 21,
# LANs 10.3.0.0/24 <-> 10.4.0.0/24.
# Tunnel "gcm": aes256gcm16-prfsha256-x25519 / ESP aes256gcm16 with ecp256
# PFS (exercised by a rekey), VTI key 22, LANs 10.5.0.0/24 <-> 10.6.0.0/24,
# on a second outer address pair: an IPv4 VTI's receive path matches tunnels
# by addresses only, so two VTIs between one pair would steal each other's
# inbound traffic.
W=ike-w E=ike-e
site_add $W
site_add $E
link_add $W w-wan 198.51.100.1/24 $E e-wan 198.51.100.2/24
ip -n $W addr add 198.51.100.11/24 dev w-wan
ip -n $E addr add 198.51.100.12/24 dev e-wan
lan_add $W lan0 10.3.0.1/24
lan_add $E lan0 10.4.0.1/24
lan_add $W lan1 10.5.0.1/24
lan_add $E lan1 10.6.0.1/24

# vti_dev SITE KEY LOCAL REMOTE ROUTE: tunnel device and route only; charon
# installs the marked states and policies.
vti_dev() {
  local site=$1 key=$2 local=$3 remote=$4 route=$5
  ip -n "$site" tunnel add "vti$key" mode vti local "$local" remote "$remote" key "$key"
  in_site "$site" sysctl -qw "net.ipv4.conf.vti$key.disable_policy=1"
  ip -n "$site" link set "vti$key" up
  ip -n "$site" route add "$route" dev "vti$key"
}
vti_dev $W 21 198.51.100.1 198.51.100.2 10.4.0.0/24
vti_dev $E 21 198.51.100.2 198.51.100.1 10.3.0.0/24
vti_dev $W 22 198.51.100.11 198.51.100.12 10.6.0.0/24
vti_dev $E 22 198.51.100.12 198.51.100.11 10.5.0.0/24

# conn NAME LOCAL REMOTE LOCAL_ID REMOTE_ID IKE ESP MARK
conn() {
  cat <<EOF
  $1 {
    version = 2
    local_addrs = $2
    remote_addrs = $3
    proposals = $6
    local { auth = psk
            id = $4 }
    remote { auth = psk
             id = $5 }
    children {
      $1 {
        local_ts = 0.0.0.0/0
        remote_ts = 0.0.0.0/0
        esp_proposals = $7
        mark_in = $8
        mark_out = $8
        start_action = none
      }
    }
  }
EOF
}
# swanctl_conf w|e
swanctl_conf() {
  local a=1 b=2 me=west.example peer=east.example
  if [[ $1 == e ]]; then a=2 b=1 me=east.example peer=west.example; fi
  echo "connections {"
  conn smoke "198.51.100.$a" "198.51.100.$b" $me $peer aes256-sha256-modp2048 aes256-sha256 21
  conn gcm "198.51.100.1$a" "198.51.100.1$b" $me $peer aes256gcm16-prfsha256-x25519 aes256gcm16-ecp256 22
  cat <<EOF
}
secrets {
  ike-smoke {
    id-w = west.example
    id-e = east.example
    secret = "smoke-test-psk-not-a-secret"
  }
}
EOF
}

charon_start $W "$(swanctl_conf w)"
charon_start $E "$(swanctl_conf e)"
pass "charons started in $W and $E, config loaded"
assert "two charons running side by side" test "$(pgrep -xc charon)" -eq 2
algs=$(swanctl_in $W --list-algs)
for alg in MODP_2048 ECP_256 CURVE_25519 AES_GCM_16 AES_CBC HMAC_SHA2_256_128; do
  assert "charon plugins provide $alg" grep -q "$alg" <<<"$algs"
done

# sas_of SITE IKE: swanctl --list-sas for one IKE_SA, echoed to the log too.
sas_of() {
  local sas
  sas=$(swanctl_in "$1" --list-sas --ike "$2" 2>&1 || true)
  printf '%s\n' "$sas" | sed "s/^/    [$1] /" >&2
  printf '%s\n' "$sas"
}

assert "swanctl --initiate smoke from $W" swanctl_in $W --initiate --child smoke --timeout 30
assert "swanctl --initiate gcm from $W" swanctl_in $W --initiate --child gcm --timeout 30
for site in $W $E; do
  sas=$(sas_of "$site" smoke)
  assert "$site smoke: IKE_SA ESTABLISHED, modp2048" grep -q 'AES_CBC-256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048' <<<"$sas"
  assert "$site smoke: CHILD_SA INSTALLED, ESP aes256-sha256" grep -q 'INSTALLED, TUNNEL, ESP:AES_CBC-256/HMAC_SHA2_256_128' <<<"$sas"
  assert "$site smoke: SAs carry mark 21" sh -c "ip -n $site xfrm state | grep -q 'mark 0x15/0xffffffff'"
  sas=$(sas_of "$site" gcm)
  assert "$site gcm: IKE_SA ESTABLISHED, x25519" grep -q 'AES_GCM_16-256/PRF_HMAC_SHA2_256/CURVE_25519' <<<"$sas"
  assert "$site gcm: CHILD_SA INSTALLED, ESP aes256gcm16" grep -q 'INSTALLED, TUNNEL, ESP:AES_GCM_16-256' <<<"$sas"
  assert "$site gcm: SAs carry mark 22" sh -c "ip -n $site xfrm state | grep -q 'mark 0x16/0xffffffff'"
done

# A CHILD_SA rekey with PFS runs a fresh ecp256 exchange.
gcm_rekeyed() { sas_of $W gcm 2>/dev/null | holds -q 'ESP:AES_GCM_16-256/ECP_256'; }
assert "swanctl --rekey gcm" swanctl_in $W --rekey --child gcm
assert "gcm CHILD_SA rekeyed with ecp256 PFS" retry 30 0.5 gcm_rekeyed

capture_start $W w-wan "$IT_WORK/ike-vti.pcap" 60
assert "ping 10.3.0.1 -> 10.4.0.1 across smoke VTI" ping_from $W 10.3.0.1 10.4.0.1 5
assert "ping 10.5.0.1 -> 10.6.0.1 across gcm VTI after rekey" ping_from $W 10.5.0.1 10.6.0.1 5
capture_stop
assert_only_esp "outer link carries ESP only (IKE VTIs)" "$IT_WORK/ike-vti.pcap" 20
assert "smoke and gcm traffic used 4 distinct SPIs" test "$(pcap_spis "$IT_WORK/ike-vti.pcap")" -ge 4
