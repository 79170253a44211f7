#!/usr/bin/env bash
# OSPF (FRR 8) over routevpn's tunnels. Two routevpn sites with the example profiles
# ospf-a/ospf-b (a VTI) and a GRE-over-IPsec tunnel beside it: adjacencies reach Full
# over both, each site learns the other's LAN by OSPF alone and traffic follows the
# learned route (through the GRE tunnel once the VTI's cost is raised), ESP only on the
# wire. Then a partner that is not routevpn: charon behind a hand-made VTI at the kernel's
# default MTU (1480) against routevpn's computed one. OSPF sticks in ExStart, `routevpn
# doctor` says why, and agreeing on the MTU brings the adjacency to Full.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/../lib.sh"
it_init 56-ospf-frr

ROUTEVPN=${ROUTEVPN:-$PWD/target/debug/routevpn}
PROFILES=$(cd "$here/../../profiles" && pwd)
modprobe -a ip_vti ip_gre esp4

# a: 192.0.2.11 (VTI), .21 (GRE), .31 (to charon); b: .12, .22, .32; LANs 10.1.0.0/24, 10.2.0.0/24.
two_sites 1 2 3
rv_sites_init a b

# The VTI: the example profiles as shipped, only the outer addresses (site a's 192.0.2.1
# becomes .11, site b's .2 becomes .12) and the key's path changed.
example() {
  sed -e 's/"192\.0\.2\.\([12]\)"/"192.0.2.1\1"/' \
    -e 's#^psk_file = .*#psk_file = "../secrets/psk"#' "$PROFILES/$1.toml"
}
example ospf-a >"$IT_WORK/a/tunnels/ospf-a.toml"
example ospf-b >"$IT_WORK/b/tunnels/ospf-b.toml"
# tunnel SITE NAME KIND LOCAL REMOTE ADDRESS [LINE...]: a profile beside the examples (the
# same suite), an inside /30 address, extra [interface] lines after it.
tunnel() {
  local site=$1 name=$2 kind=$3 local=$4 remote=$5 address=$6
  shift 6
  {
    cat <<EOF
kind = "$kind"
local = "192.0.2.$local"
remote = "192.0.2.$remote"
[ike]
proposals = ["aes256gcm16-prfsha384-x25519"]
psk_file = "../secrets/psk"
[[child]]
esp_proposals = ["aes256gcm16-x25519"]
[interface]
name = "$name"
addresses = ["$address"]
rp_filter = "loose"
EOF
    printf '%s\n' "$@"
  } >"$IT_WORK/$site/tunnels/$name.toml"
}
# GRE over IPsec (transport mode), multicast on by GRE's default.
tunnel a gre-ospf gre 21 22 169.254.101.1/30
tunnel b gre-ospf gre 22 21 169.254.101.2/30
assert "site a's profiles check" rv_at a check
assert "site b's profiles check" rv_at b check

rv_daemon_at a
rv_daemon_at b

# ospf_config ROUTER_ID LAN: OSPF on every tunnel's /30 and the LAN (passive); short
# timers so that adjacencies form and fail within seconds.
ospf_config() {
  cat <<EOF
router ospf
 ospf router-id $1
 passive-interface lan
 network 169.254.100.0/30 area 0
 network 169.254.101.0/30 area 0
 network 169.254.102.0/30 area 0
 network $2 area 0
EOF
  local dev
  for dev in vti-to-a vti-to-b gre-ospf vti-c; do
    printf 'interface %s\n ip ospf network point-to-point\n ip ospf hello-interval 1\n ip ospf dead-interval 4\n' "$dev"
  done
  # The VTI first, GRE the backup: one path at a time, so each test names the one used.
  printf 'interface gre-ospf\n ip ospf cost 100\n'

}
assert "FRR (zebra, ospfd) starts on site a" frr_start a ospfd "$(ospf_config 10.255.0.1 10.1.0.0/24)"
assert "FRR (zebra, ospfd) starts on site b" frr_start b ospfd "$(ospf_config 10.255.0.2 10.2.0.0/24)"

assert "OSPF adjacency over the VTI reaches Full" retry 150 0.2 ospf_state_is a vti-to-b Full
assert "OSPF adjacency over GRE over IPsec reaches Full" retry 150 0.2 ospf_state_is a gre-ospf Full
# learned_via SITE PREFIX DEV: SITE's route to PREFIX is OSPF's, through DEV alone (zebra
# writes "PREFIX nhid N via PEER dev DEV ..."; several paths would be "nexthop" entries).
learned_via() {
  local route
  route=$(in_site "$1" ip -o route show "$2" proto ospf)
  [[ $route == "$2 "*" dev $3 "* && $route != *nexthop* ]]
}
assert "site a learned 10.2.0.0/24 by OSPF, through the VTI" retry 100 0.2 learned_via a 10.2.0.0/24 vti-to-b
assert "site b learned 10.1.0.0/24 by OSPF, through the VTI" retry 100 0.2 learned_via b 10.1.0.0/24 vti-to-a
static_for_lan() { in_site a ip -o route show 10.2.0.0/24 | holds -v 'proto ospf' | holds -q .; }
assert_not "no other route for the remote LAN (routevpn installed none)" static_for_lan

capture_start a out "$IT_WORK/ospf.pcap" 60
assert "LAN to LAN over the learned route (VTI)" ping_from a 10.1.0.1 10.2.0.1
# OSPF's choice moves the traffic: the VTI made expensive, GRE carries the LAN.
vtysh_in a -c 'configure terminal' -c 'interface vti-to-b' -c 'ip ospf cost 1000' >/dev/null
vtysh_in b -c 'configure terminal' -c 'interface vti-to-a' -c 'ip ospf cost 1000' >/dev/null
assert "with the VTI's cost raised, 10.2.0.0/24 is learned through GRE" retry 100 0.2 learned_via a 10.2.0.0/24 gre-ospf
assert "...and 10.1.0.0/24 likewise on site b" retry 100 0.2 learned_via b 10.1.0.0/24 gre-ospf
assert "LAN to LAN over the learned route (GRE over IPsec)" ping_from a 10.1.0.1 10.2.0.1
capture_stop
assert_only_esp "outer link carries ESP only: OSPF and LAN traffic inside the tunnels" "$IT_WORK/ospf.pcap" 10

# --- a partner that is not routevpn: charon with a hand-made VTI on site b ----------
# routevpn leaves site b (charon needs UDP 500): its profiles removed, an apply tears its
# tunnels down. Site a keeps only the tunnel to charon.
kill "${RV_DAEMON[b]}"
wait "${RV_DAEMON[b]}" 2>/dev/null || true
rm "$IT_WORK/b/tunnels/"*.toml "$IT_WORK/a/tunnels/"*.toml
assert "routevpn's tunnels leave site b" rv_at b apply
routevpn_links_on_b() { in_site b ip -o link show | holds -q -e vti-to-a -e gre-ospf; }
assert_not "...and its devices are gone" routevpn_links_on_b
tunnel a vti-c vti 31 32 169.254.102.1/30 "multicast = true"
# The partner's VTI as a strongSwan user makes it: the kernel's default MTU (1480).
ip -n b tunnel add vti-c mode vti local 192.0.2.32 remote 192.0.2.31 key 42
in_site b sysctl -qw net.ipv4.conf.vti-c.disable_policy=1
ip -n b addr add 169.254.102.2/30 dev vti-c
ip -n b link set vti-c multicast on up
assert "charon starts on site b" charon_start b "connections {
$(swanctl_conn vti-c 192.0.2.32 192.0.2.31 aes256gcm16-prfsha384-x25519 vti-c \
  '        local_ts = 0.0.0.0/0
        remote_ts = 0.0.0.0/0
        mark_in = 42
        mark_out = 42
        esp_proposals = aes256gcm16-x25519')
}
secrets {
  ike-c { secret = \"$PSK\" }
}"
assert "site a's daemon applies the tunnel to charon (and removes the others)" rv_at a apply
assert "the tunnel to charon comes up" rv_at a up vti-c
mtu_a=$(in_site a cat /sys/class/net/vti-c/mtu)
mtu_b=$(in_site b cat /sys/class/net/vti-c/mtu)
log "VTI MTU: routevpn's $mtu_a, charon's hand-made $mtu_b"
assert "the MTUs differ as in the field (routevpn's computed < the kernel's default)" test "$mtu_a" -lt "$mtu_b"
stuck() {
  case $(ospf_neighbor_state a vti-c) in ExStart* | Exchange*) return 0 ;; *) return 1 ;; esac
}
assert "OSPF toward charon's side sticks in ExStart/Exchange" retry 150 0.2 stuck
doctor=$(rv_at a doctor vti-c --frr-dir "$(frr_dir a)" 2>&1 || true)
assert "routevpn doctor names the MTU mismatch" \
  holds -q "OSPF neighbor 10.255.0.2 on vti-c is stuck in .*the interface MTUs differ (ours is $mtu_a" <<<"$doctor"
holds 'OSPF neighbor' <<<"$doctor" | sed 's/^/    | /'
assert "...and it is still stuck after doctor ran" stuck
# The fix doctor gives: the same MTU on the peer's device.
ip -n b link set vti-c mtu "$mtu_a"
assert "with the MTUs agreed, the adjacency reaches Full" retry 150 0.2 ospf_state_is a vti-c Full
assert "site a learned 10.2.0.0/24 by OSPF through charon's tunnel" retry 100 0.2 learned_via a 10.2.0.0/24 vti-c
assert "LAN to LAN through charon's tunnel" ping_from a 10.1.0.1 10.2.0.1
doctor=$(rv_at a doctor vti-c --frr-dir "$(frr_dir a)" 2>&1 || true)
assert_not "doctor no longer reports an OSPF finding" holds -q "OSPF neighbor" <<<"$doctor"
