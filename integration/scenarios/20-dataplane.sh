#!/usr/bin/env bash
# routevpn's dataplane between two sites, manual keys (no IKE): VTI, GRE over IPsec and an
# XFRM interface. Proves traffic crosses, only ESP is on the wire, the MTU and MSS hold,
# multicast crosses GRE, re-apply is a no-op, drift is repaired, down removes exactly
# routevpn's objects, and traffic never leaves in clear without SAs.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/../lib.sh"
it_init 20-dataplane

ROUTEVPN=${ROUTEVPN:-$PWD/target/debug/routevpn}
modprobe -a ip_vti ip_gre xfrm_interface esp4 dummy

# --- two sites, one outer link, three outer address pairs (one per tunnel: IPv4 VTIs are
# told apart by their endpoints alone) and a LAN prefix per tunnel on each side.
site_add a
site_add b
link_add a out 192.0.2.1/24 b out 192.0.2.2/24
for i in 11 21; do
  ip -n a addr add 192.0.2.$i/24 dev out
  ip -n b addr add 192.0.2.$((i + 1))/24 dev out
done
lan_add a lan 10.1.1.1/24
lan_add b lan 10.2.1.1/24
for n in 2 3; do
  ip -n a addr add 10.1.$n.1/24 dev lan
  ip -n b addr add 10.2.$n.1/24 dev lan
done

hexkey() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }
VTI_OUT=$(hexkey 20) VTI_IN=$(hexkey 20)
GRE_OUT=$(hexkey 32) GRE_IN=$(hexkey 32) GRE_AUTH_OUT=$(hexkey 32) GRE_AUTH_IN=$(hexkey 32)
XF_OUT=$(hexkey 36) XF_IN=$(hexkey 36)

# write_site SITE LOCAL_BASE REMOTE_BASE LOCAL_NET REMOTE_NET SWAP
write_site() {
  local site=$1 l=$2 r=$3 ln=$4 rn=$5 swap=$6 dir
  dir=$IT_WORK/$site
  mkdir -p "$dir/tunnels" "$dir/secrets" "$dir/state"
  chmod 700 "$dir/secrets"
  # key_pair OUT IN: this site's "out" is the other's "in".
  key_pair() { if ((swap)); then echo "$2 $1"; else echo "$1 $2"; fi; }
  read -r vo vi <<<"$(key_pair "$VTI_OUT" "$VTI_IN")"
  read -r go gi <<<"$(key_pair "$GRE_OUT" "$GRE_IN")"
  read -r gao gai <<<"$(key_pair "$GRE_AUTH_OUT" "$GRE_AUTH_IN")"
  read -r xo xi <<<"$(key_pair "$XF_OUT" "$XF_IN")"
  read -r so si <<<"$(if ((swap)); then echo "0x2001 0x1001"; else echo "0x1001 0x2001"; fi)"

  cat >"$dir/tunnels/vti-lab.toml" <<EOF
kind = "vti"
local = "192.0.2.$l"
remote = "192.0.2.$r"
[ike]
keying = "manual"
manual_keys_file = "../secrets/vti-lab.keys"
[[child]]
local_ts = ["$ln.1.0/24"]
remote_ts = ["$rn.1.0/24"]
esp_proposals = ["aes128gcm16"]
[interface]
name = "vti-lab"
addresses = ["$ln.1.1/32"]
[[route]]
to = "$rn.1.0/24"
src = "$ln.1.1"
EOF
  cat >"$dir/secrets/vti-lab.keys" <<EOF
[[sa]]
direction = "out"
spi = $so
encryption = "aes128gcm16"
key = "0x$vo"
[[sa]]
direction = "in"
spi = $si
encryption = "aes128gcm16"
key = "0x$vi"
EOF
  cat >"$dir/tunnels/gre-lab.toml" <<EOF
kind = "gre"
local = "192.0.2.$((l + 10))"
remote = "192.0.2.$((r + 10))"
[ike]
keying = "manual"
manual_keys_file = "../secrets/gre-lab.keys"
[[child]]
esp_proposals = ["aes256-sha256"]
[interface]
name = "gre-lab"
addresses = ["172.16.0.$l/30"]
multicast = true
[[route]]
to = "$rn.2.0/24"
src = "$ln.2.1"
EOF
  cat >"$dir/secrets/gre-lab.keys" <<EOF
[[sa]]
direction = "out"
spi = $((so + 1))
encryption = "aes256"
key = "0x$go"
integrity = "sha256"
integrity_key = "0x$gao"
[[sa]]
direction = "in"
spi = $((si + 1))
encryption = "aes256"
key = "0x$gi"
integrity = "sha256"
integrity_key = "0x$gai"
EOF
  cat >"$dir/tunnels/xfrm-lab.toml" <<EOF
kind = "xfrm"
local = "192.0.2.$((l + 20))"
remote = "192.0.2.$((r + 20))"
[ike]
keying = "manual"
manual_keys_file = "../secrets/xfrm-lab.keys"
[[child]]
local_ts = ["$ln.3.0/24"]
remote_ts = ["$rn.3.0/24"]
esp_proposals = ["aes256gcm16"]
[interface]
name = "xfrm-lab"
addresses = ["$ln.3.1/32"]
[[route]]
to = "$rn.3.0/24"
src = "$ln.3.1"
EOF
  cat >"$dir/secrets/xfrm-lab.keys" <<EOF
[[sa]]
direction = "out"
spi = $((so + 2))
encryption = "aes256gcm16"
key = "0x$xo"
[[sa]]
direction = "in"
spi = $((si + 2))
encryption = "aes256gcm16"
key = "0x$xi"
EOF
  chmod 600 "$dir"/secrets/*
}
write_site a 1 2 10.1 10.2 0
write_site b 2 1 10.2 10.1 1

rv() {
  local site=$1
  shift
  in_site "$site" "$ROUTEVPN" --config-dir "$IT_WORK/$site/tunnels" --state-dir "$IT_WORK/$site/state" "$@"
}
# changes SITE: the number of kernel writes `apply` reports.
changes() { rv "$1" apply | sed -n 's/^apply: \([0-9]*\) change.*/\1/p'; }

assert "check passes on site a" rv a check
assert "check passes on site b" rv b check
assert "apply on site a" rv a apply
assert "apply on site b" rv b apply
for site in a b; do
  n=$(changes $site)
  if [[ $n == 0 ]]; then pass "second apply on $site makes 0 changes"; else fail "second apply on $site made $n changes"; fi
done

# The SPIs in the keys files are the ones in the kernel (byte order checked end to end).
spi_installed() { in_site a ip xfrm state | holds -q "spi 0x00001001 reqid"; }
assert "the manual SPI 0x1001 is installed as written" spi_installed

# --- traffic crosses every tunnel, and only ESP is on the wire
capture_start a out "$IT_WORK/outer.pcap"
assert "ping over the VTI" ping_from a 10.1.1.1 10.2.1.1
assert "ping over GRE over IPsec" ping_from a 10.1.2.1 10.2.2.1
assert "ping over the XFRM interface" ping_from a 10.1.3.1 10.2.3.1

# --- routevpn doctor against a real kernel: nothing to say about a healthy tunnel; ESP the
# peer drops is named as such (counters sampled over --interval while pings run).
# A gateway forwards what its LAN sends into the tunnel (here the LAN's addresses are the
# site's own, so the pings above needed no forwarding; doctor rightly asks for it).
in_site a sysctl -qw net.ipv4.conf.lan.forwarding=1
status=0
out=$(rv a doctor vti-lab --interval 2 2>&1) || status=$?
assert "doctor: the healthy vti-lab has no error (exit $status)" test "$status" = 0
printf '%s\n' "$out" | sed 's/^/    [doctor] /'
in_site b nft -f - <<'NFT'
table inet doctor-test {
  chain input { type filter hook input priority -10; ip protocol esp drop; }
}
NFT
in_site a ping -n -q -i 0.2 -c 40 -W 1 -I 10.1.1.1 10.2.1.1 >/dev/null 2>&1 &
pinger=$!
status=0
out=$(rv a doctor vti-lab --interval 3 2>&1) || status=$?
wait "$pinger" || true
in_site b nft delete table inet doctor-test
in_site a sysctl -qw net.ipv4.conf.lan.forwarding=0
assert "doctor: ESP dropped by the peer is an error (exit $status)" test "$status" = 1
assert "...saying the peer or the path drops it: $out" \
  grep -q "received none: the peer or the path drops them" <<<"$out"
capture_stop
assert_only_esp "outer link carries ESP only" "$IT_WORK/outer.pcap" 18
spis=$(pcap_spis "$IT_WORK/outer.pcap")
if ((spis == 6)); then pass "6 SPIs seen (two per tunnel)"; else fail "$spis SPIs seen, expected 6"; fi

# --- MTU as planned: the largest unfragmented ping passes, one byte more is refused
plan_mtu() {
  rv a plan --json | python3 -c 'import json,sys; p=json.load(sys.stdin); print(next(t["link"]["mtu"] for t in p["tunnels"] if t["name"]==sys.argv[1]))' "$1"
}
for t in vti-lab:10.1.1.1:10.2.1.1 gre-lab:10.1.2.1:10.2.2.1 xfrm-lab:10.1.3.1:10.2.3.1; do
  IFS=: read -r name src dst <<<"$t"
  mtu=$(plan_mtu "$name")
  dev_mtu=$(in_site a cat "/sys/class/net/$name/mtu")
  assert "$name device MTU $dev_mtu equals the planned $mtu" test "$dev_mtu" = "$mtu"
  assert "$name: unfragmented ping of $((mtu - 28)) bytes passes" \
    in_site a ping -n -q -c 2 -i 0.2 -W 2 -M "do" -s $((mtu - 28)) -I "$src" "$dst"
  out=$(in_site a ping -n -c 1 -W 2 -M "do" -s $((mtu - 27)) -I "$src" "$dst" 2>&1 || true)
  if grep -qi "message too long" <<<"$out"; then
    pass "$name: one byte more is refused with 'message too long'"
  else
    fail "$name: one byte more was not refused locally: $out"
  fi
done

# --- a large TCP transfer through the VTI (MSS clamping and MTU together)
in_site b python3 - >"$IT_WORK/tcp-server.log" 2>&1 <<'EOF' &
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.2.1.1", 5001)); s.listen(1); s.settimeout(30)
c, _ = s.accept(); total = 0
while True:
    b = c.recv(65536)
    if not b: break
    total += len(b)
c.sendall(str(total).encode()); c.close()
EOF
IT_PIDS+=("$!")
sleep 0.5
got=$(in_site a timeout 30 python3 -c '
import socket
c = socket.create_connection(("10.2.1.1", 5001), timeout=20, source_address=("10.1.1.1", 0))
c.sendall(b"x" * (8 << 20)); c.shutdown(socket.SHUT_WR); print(c.recv(64).decode())' 2>&1 || true)
if [[ $got == "$((8 << 20))" ]]; then pass "8 MiB TCP transfer over the VTI completed"; else fail "TCP transfer: $got"; fi

# --- multicast crosses the GRE tunnel: a receiver joined on site b, a sender on site a
in_site b python3 - >"$IT_WORK/mcast.log" 2>&1 <<'EOF' &
import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("239.1.2.3", 5002))
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, struct.pack("4s4s", socket.inet_aton("239.1.2.3"), socket.inet_aton("172.16.0.2")))
s.settimeout(10); print(s.recv(100).decode())
EOF
mpid=$!
IT_PIDS+=("$mpid")
sleep 0.5
in_site a python3 -c '
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("172.16.0.1"))
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 8)
for _ in range(10):
    s.sendto(b"hello-group", ("239.1.2.3", 5002)); time.sleep(0.2)'
wait "$mpid" 2>/dev/null || true
assert "multicast to 239.1.2.3 received across GRE" grep -q hello-group "$IT_WORK/mcast.log"

# --- drift: a route deleted by hand comes back, with one write
in_site a ip route del 10.2.1.0/24 dev vti-lab
n=$(changes a)
assert "apply after deleting a route makes 1 change (made $n)" test "$n" = 1
route_back() { in_site a ip route show 10.2.1.0/24 | holds -q vti-lab; }
assert "the route is back" route_back

# --- fail closed: without SAs nothing leaves in clear. Both sides lose their SAs: manual
# keys restart sequence numbers, which the other side's replay window would refuse.
in_site a ip xfrm state flush
in_site b ip xfrm state flush
capture_start a out "$IT_WORK/nosa.pcap"
for src_dst in 10.1.1.1:10.2.1.1 10.1.2.1:10.2.2.1 10.1.3.1:10.2.3.1; do
  in_site a ping -n -q -c 2 -i 0.2 -W 1 -I "${src_dst%%:*}" "${src_dst##*:}" >/dev/null 2>&1 || true
done
capture_stop
cleartext=$(pcap_count "$IT_WORK/nosa.pcap" ip and not esp)
assert "no packet left in clear without SAs ($cleartext seen)" test "$cleartext" = 0
assert "apply reinstalls the manual SAs on site a" rv a apply
assert "apply reinstalls the manual SAs on site b" rv b apply
assert "ping over the VTI works again" ping_from a 10.1.1.1 10.2.1.1
status_lists_sa() { rv a status | holds -q "sa 00001001 192.0.2.1 -> 192.0.2.2 rfc4106(gcm(aes)) reqid"; }
assert "status shows the VTI's SA with its counters" status_lists_sa

# --- down removes exactly what routevpn made
in_site a ip route add 10.99.0.0/16 via 192.0.2.2
in_site a nft add table inet mine
in_site a nft add chain inet mine input '{ type filter hook input priority 0; }'
for t in vti-lab gre-lab xfrm-lab; do assert "down $t" rv a down "$t"; done
no_devices() { ! in_site a ip -br link | grep -E "^(vti|gre|xfrm)-lab"; }
no_routes() { [[ -z $(in_site a ip route show table all proto 210) ]]; }
no_table() { ! in_site a nft list table inet routevpn >/dev/null 2>&1; }
no_xfrm() { [[ -z $(in_site a ip xfrm policy) && -z $(in_site a ip xfrm state) ]]; }
user_route() { in_site a ip route show 10.99.0.0/16 | holds -q 192.0.2.2; }
assert "no routevpn device left" no_devices
assert "no routevpn route left" no_routes
assert "no routevpn nftables table left" no_table
assert "no XFRM policy or SA left" no_xfrm
assert "the hand-made route survives" user_route
assert "the hand-made nftables table survives" in_site a nft list table inet mine
