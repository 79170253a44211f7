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
log "kernel $(uname -r)"
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
W=ike-w E=ike-e KEY=21
site_add $W
site_add $E
link_add $W w-wan 198.51.100.1/24 $E e-wan 198.51.100.2/24
lan_add $W lan0 10.3.0.1/24
lan_add $E lan0 10.4.0.1/24

ike_site() {
  local site=$1 local=$2 remote=$3 lan=$4
  ip -n "$site" tunnel add vti$KEY mode vti local "$local" remote "$remote" key $KEY
  in_site "$site" sysctl -qw net.ipv4.conf.vti$KEY.disable_policy=1
  ip -n "$site" link set vti$KEY up
  ip -n "$site" route add "$lan" dev vti$KEY
}
ike_site $W 198.51.100.1 198.51.100.2 10.4.0.0/24
ike_site $E 198.51.100.2 198.51.100.1 10.3.0.0/24

# swanctl_conf LOCAL_ADDR REMOTE_ADDR LOCAL_ID REMOTE_ID
swanctl_conf() {
  cat <<EOF
connections {
  smoke {
    version = 2
    local_addrs = $1
    remote_addrs = $2
    proposals = aes256-sha256-modp2048
    local { auth = psk
            id = $3 }
    remote { auth = psk
             id = $4 }
    children {
      smoke {
        local_ts = 0.0.0.0/0
        remote_ts = 0.0.0.0/0
        esp_proposals = aes256-sha256
        mark_in = $KEY
        mark_out = $KEY
        start_action = none
      }
    }
  }
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

charon_start $W "$(swanctl_conf 198.51.100.1 198.51.100.2 west.example east.example)"
charon_start $E "$(swanctl_conf 198.51.100.2 198.51.100.1 east.example west.example)"
pass "charons started in $W and $E, config loaded"
assert "two charons running side by side" test "$(pgrep -xc charon)" -eq 2

assert "swanctl --initiate from $W" swanctl_in $W --initiate --child smoke --timeout 30
for site in $W $E; do
  sas=$(swanctl_in "$site" --list-sas 2>&1 || true)
  printf '%s\n' "$sas" | sed "s/^/    [$site] /"
  assert "$site: IKE_SA ESTABLISHED" grep -q 'ESTABLISHED' <<<"$sas"
  assert "$site: CHILD_SA INSTALLED" grep -q 'INSTALLED, TUNNEL' <<<"$sas"
  assert "$site: ESP uses AES_CBC-256/HMAC_SHA2_256" grep -q 'AES_CBC-256/HMAC_SHA2_256' <<<"$sas"
  assert "$site: SA carries mark $KEY" sh -c "ip -n $site xfrm state | grep -q 'mark 0x15/0xffffffff'"
done

capture_start $W w-wan "$IT_WORK/ike-vti.pcap" 30
assert "ping 10.3.0.1 -> 10.4.0.1 across IKE-keyed VTI" ping_from $W 10.3.0.1 10.4.0.1 5
capture_stop
assert_only_esp "outer link carries ESP only (IKE VTI)" "$IT_WORK/ike-vti.pcap" 10
