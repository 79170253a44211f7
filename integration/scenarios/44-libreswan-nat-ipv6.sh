#!/usr/bin/env bash
# GRE over IPsec in transport mode from behind a 1:1 NAT (issue 13, seed 003's set-up):
# routevpn on site a has the private 172.16.0.2, the NAT publishes it as 198.51.100.1, and
# routevpn names that address as its identity (local_id). libreswan's pluto (site b) wants
# it in our traffic selectors (RFC 7296 2.23.1) while our kernel's SAs and policies name
# 172.16.0.2 with UDP encapsulation; charon (site c) substitutes whatever we send. Against
# each: routevpn initiates, then the peer (through the NAT's forward); each time the same
# SPIs both sides, pings over GRE, and only ESP in UDP on the public side.
# Then IPv6 outer against pluto on a second a-b link, XFRM interfaces on both sides, each
# tunnel carrying IPv6 (6-in-6) and IPv4 (4-in-6) in two CHILD SAs (pluto: one conn per
# family on the same ipsec-interface, sharing the IKE SA):
#   x6-i  routevpn initiates   2001:db8:f::1  <-> 2001:db8:f::2
#   x6-r  pluto initiates      2001:db8:f::11 <-> 2001:db8:f::12
# each: both CHILD SAs up, b's kernel holds our SPIs, pings of both families cross, the
# IPv6 link carries only ESP.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/../lib.sh"
it_init 44-libreswan-nat-ipv6

ROUTEVPN=${ROUTEVPN:-$PWD/target/debug/routevpn}
modprobe -a ip_gre esp4 esp6 xfrm_interface dummy nft_nat nft_chain_nat

PRIVATE=172.16.0.2 PUBLIC=198.51.100.1 PLUTO=198.51.100.2 CHARON_ADDR=203.0.113.2

# a (172.16.0.2) -- nat -- pub: b (198.51.100.2), pub2: c (203.0.113.2)
for site in a nat b c; do site_add "$site"; done
# a and b also talk IPv6 on their own link (out6); the NAT path is IPv4 only.
site_ipv6 a
site_ipv6 b
for site in nat c; do
  in_site "$site" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
link_add a out "$PRIVATE/24" nat inside 172.16.0.1/24
link_add nat pub "$PUBLIC/24" b out "$PLUTO/24"
link_add nat pub2 203.0.113.1/24 c out "$CHARON_ADDR/24"
ip -n a route add default via 172.16.0.1
ip -n c route add "$PUBLIC/32" via 203.0.113.1
in_site nat sysctl -qw net.ipv4.ip_forward=1
lan_add a lan 10.1.0.1/24
lan_add b lan 10.2.0.1/24
lan_add c lan 10.3.0.1/24

# --- the IPv6 link
NAME=(x x6-i x6-r)
outer() { [[ $1 == 1 ]] && echo "2001:db8:f::$2" || echo "2001:db8:f::1$2"; }
link_add a out6 "$(outer 1 1)/64" b out6 "$(outer 1 2)/64"
for n in 1 2; do
  ((n == 1)) || ip -n a addr add "$(outer "$n" 1)/64" dev out6
  ((n == 1)) || ip -n b addr add "$(outer "$n" 2)/64" dev out6
  ip -n a addr add "fd00:1:$n::1/64" dev lan
  ip -n b addr add "fd00:2:$n::1/64" dev lan
  ip -n a addr add "10.1.$n.1/24" dev lan
  ip -n b addr add "10.2.$n.1/24" dev lan
done
# 1:1: a's address and the NAT's public one map to each other, ports unchanged.
in_site nat nft -f - <<NFT
table ip nat {
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr $PUBLIC dnat to $PRIVATE
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr $PRIVATE oifname != "inside" snat to $PUBLIC
  }
}
NFT

rv_site_a_init
# profile NAME REMOTE N: GRE transport to REMOTE, inner 10.77.N.1/30, LAN 10.N+1.0.0/24.
profile() {
  cat >"$A/tunnels/$1.toml" <<TOML
kind = "gre"
local = "$PRIVATE"
local_id = "$PUBLIC"
remote = "$2"
[ike]
psk_file = "../secrets/psk"
start_action = "none"
close_action = "none"
$4
[[child]]
$5
[interface]
name = "$1"
addresses = ["10.77.$3.1/30"]
[[route]]
to = "10.$(($3 + 1)).0.0/24"
src = "10.1.0.1"
TOML
}
profile gre-ls "$PLUTO" 1 "" ""
profile gre-ch "$CHARON_ADDR" 2 'proposals = ["aes256gcm16-prfsha384-x25519"]' 'esp_proposals = ["aes256gcm16"]'
for n in 1 2; do
  cat >"$A/tunnels/${NAME[$n]}.toml" <<TOML
kind = "xfrm"
local = "$(outer "$n" 1)"
remote = "$(outer "$n" 2)"
[ike]
proposals = ["aes256gcm16-prfsha512-ecp256"]
psk_file = "../secrets/psk"
start_action = "none"
close_action = "none"
[[child]]
name = "v6"
local_ts = ["fd00:1:$n::/64"]
remote_ts = ["fd00:2:$n::/64"]
esp_proposals = ["aes256gcm16-ecp256"]
[[child]]
name = "v4"
local_ts = ["10.1.$n.0/24"]
remote_ts = ["10.2.$n.0/24"]
esp_proposals = ["aes256gcm16-ecp256"]
[interface]
name = "${NAME[$n]}"
[[route]]
to = "fd00:2:$n::/64"
src = "fd00:1:$n::1"
[[route]]
to = "10.2.$n.0/24"
src = "10.1.$n.1"
TOML
done

# The peers' GRE devices point at the NAT's public address: that is where a's packets
# come from.
peer_gre() {
  local site=$1 local=$2 n=$3
  ip -n "$site" tunnel add gre-a mode gre local "$local" remote "$PUBLIC" ttl 64
  ip -n "$site" addr add "10.77.$n.2/30" dev gre-a
  ip -n "$site" link set gre-a up
  ip -n "$site" route add 10.1.0.0/24 dev gre-a src "10.$((n + 1)).0.1"
}
peer_gre b "$PLUTO" 1
peer_gre c "$CHARON_ADDR" 2

# pluto: ipsec-interface=N makes ipsecN (if_id N), its updown the routes. The second CHILD
# SA comes in a CREATE_CHILD_SA, where pluto's pfs=yes adds the IKE group: both sides pin
# a suite with it (42's suite 2).
conns=$(for n in 1 2; do
  for fam in v6 v4; do
    printf 'conn %s-%s\n  left=%s\n  right=%s\n' "${NAME[$n]}" "$fam" "$(outer "$n" 2)" "$(outer "$n" 1)"
    printf '  authby=secret\n  ikev2=yes\n  auto=add\n  ipsec-interface=%s\n' "$n"
    printf '  ike=aes_gcm256-sha2_512;dh19\n  esp=aes_gcm256\n'
    if [[ $fam == v6 ]]; then
      printf '  leftsubnet=fd00:2:%s::/64\n  rightsubnet=fd00:1:%s::/64\n\n' "$n" "$n"
    else
      # pluto 4.10's _updown.xfrm routes a 4-in-6 child with `ip -6 route` (the outer
      # family), which fails, and pluto then refuses the child (TS_UNACCEPTABLE): no updown
      # for it, the test adds its route.
      printf '  leftsubnet=10.2.%s.0/24\n  rightsubnet=10.1.%s.0/24\n  leftupdown=/bin/true\n\n' "$n" "$n"
    fi
  done
done)
conns+=$(printf '\nconn gre-nat\n  left=%s\n  right=%s\n  authby=secret\n  ikev2=yes\n  auto=add\n  type=transport\n  leftprotoport=gre\n  rightprotoport=gre\n' "$PLUTO" "$PUBLIC")
pluto_start b "$conns" ": PSK \"$PSK\""
pass "pluto started on site b"
charon_start c "$(printf 'connections {\n%s}\nsecrets {\n  ike-all { secret = "%s" }\n}\n' \
  "$(swanctl_conn gre-ch "$CHARON_ADDR" "$PUBLIC" aes256gcm16-prfsha384-x25519 gre-ch \
    "        local_ts = dynamic[gre]
        remote_ts = dynamic[gre]
        esp_proposals = aes256gcm16
        mode = transport")" "$PSK")"
pass "charon started on site c"
rv_daemon_start

up() { test "$(ours "len([c for sa in s['ike_sas'] if sa['name']=='$1' and sa['state']=='ESTABLISHED' for c in sa['children'] if c['encap']])")" = 1; }
down() { test "$(ours "len([sa for sa in s['ike_sas'] if sa['name']=='$1'])")" = 0; }
# ours_ts NAME: our CHILD SA's selectors, "local <-> remote".
ours_ts() { ours "' '.join(' '.join(c['local_ts']) + ' <-> ' + ' '.join(c['remote_ts']) for sa in s['ike_sas'] if sa['name']=='$1' for c in sa['children'])"; }
# pluto_spis: pluto's newest CHILD SA, mirrored to our "in/out".
pluto_spis() {
  whack_in b --status 2>/dev/null | { grep -E '"gre-nat"(:[0-9]+)? esp\.' || true; } | tail -n1 |
    sed -n "s/.*esp\.\([0-9a-f]*\)@${PUBLIC//./\\.} esp\.\([0-9a-f]*\)@${PLUTO//./\\.}.*/\1 \2/p" |
    { read -r i o && printf '%08x/%08x' "0x$i" "0x$o"; }
}
# charon_spis: charon's CHILD SA, mirrored ("in" of charon is our "out").
charon_spis() {
  local sas
  sas=$(swanctl_in c --list-sas 2>&1 || true)
  printf '%s/%s' "$(sed -n 's/^ *out *\([0-9a-f]\{8\}\).*/\1/p' <<<"$sas" | sed -n 1p)" \
    "$(sed -n 's/^ *in  *\([0-9a-f]\{8\}\).*/\1/p' <<<"$sas" | sed -n 1p)"
}
same_spis() { test "$(spis "$1")" = "$("$2")"; }

# cell LABEL NAME PEER_IF LAN SPIS_FN START...: START brings NAME up (we or the peer
# initiate); then the checks, with a capture on the NAT's interface PEER_IF.
cell() {
  local label=$1 name=$2 peer_if=$3 lan=$4 spis_fn=$5
  shift 5
  capture_start nat "$peer_if" "$IT_WORK/$name-$label.pcap" 120
  assert "$name $label: up" "$@"
  assert "$name $label: our CHILD SA is up, ESP in UDP" retry 60 0.5 up "$name"
  assert "$name $label: our kernel names our own address ($(ours_ts "$name"))" \
    test "$(ours_ts "$name")" = "$PRIVATE/32[gre] <-> ${PEERS[$name]}/32[gre]"
  assert "$name $label: same CHILD SPIs (ours $(spis "$name"), theirs $("$spis_fn"))" \
    retry 10 0.5 same_spis "$name" "$spis_fn"
  assert "$name $label: ping 10.1.0.1 -> $lan over GRE" ping_from a 10.1.0.1 "$lan" 5
  capture_stop
  assert_only_udp_esp "$name $label: only ESP in UDP on the public side" "$IT_WORK/$name-$label.pcap" 10
}
declare -A PEERS=([gre-ls]=$PLUTO [gre-ch]=$CHARON_ADDR)
rv_up() { out=$(rv up "$1" 2>&1) && up_done "$1" "$out"; }

# --- libreswan
cell initiator gre-ls pub 10.2.0.1 pluto_spis rv_up gre-ls
assert "pluto holds its CHILD SA in UDP" holds -q 'encap type espinudp' < <(in_site b ip xfrm state)
assert "pluto terminates" whack_in b --name gre-nat --terminate
assert "our SAs went with pluto's delete" retry 40 0.25 down gre-ls
cell responder gre-ls pub 10.2.0.1 pluto_spis whack_in b --initiate --name gre-nat
# --- strongSwan
cell initiator gre-ch pub2 10.3.0.1 charon_spis rv_up gre-ch
assert "charon's CHILD SA is transport mode in UDP" holds -q 'INSTALLED, TRANSPORT-in-UDP' < <(swanctl_in c --list-sas 2>&1)
swanctl_in c --terminate --ike gre-ch --timeout 10 >/dev/null 2>&1 || true
assert "our SAs went with charon's delete" retry 40 0.25 down gre-ch
cell responder gre-ch pub2 10.3.0.1 charon_spis swanctl_in c --initiate --child gre-ch --timeout 30

# --- IPv6 outer against pluto
children() { test "$(ours "len([c for sa in s['ike_sas'] if sa['name']=='$1' and sa['state']=='ESTABLISHED' for c in sa['children']])")" = 2; }
# our_spis NAME: every CHILD SPI of ours, in and out.
our_spis() { ours "' '.join(c[k] for sa in s['ike_sas'] if sa['name']=='$1' for c in sa['children'] for k in ('spi_in', 'spi_out'))"; }
pluto_children() { test "$(whack_in b --status 2>/dev/null | grep -c "\"$1-v[46]\".*ESTABLISHED_CHILD_SA")" -ge 2; }
check() {
  local n=$1 role=$2 name=${NAME[$1]} spis
  assert "$name ($role): our two CHILD SAs are up" retry 120 0.5 children "$name"
  assert "$name ($role): pluto's two CHILD SAs are up" retry 20 0.5 pluto_children "$name"
  assert "$name ($role): b routes our IPv4 LAN into ipsec$n" \
    ip -n b route replace "10.1.$n.0/24" dev "ipsec$n" src "10.2.$n.1"
  spis=$(our_spis "$name")
  # shellcheck disable=SC2086 # a list of SPIs
  assert "$name ($role): b's kernel holds our SPIs ($spis)" b_kernel_has $spis
  whack_in b --status 2>&1 | grep "\"$name-" | sed 's/^/    [pluto] /' >>"$IT_WORK/pluto-status.log" || true
  assert "$name ($role): ping 6-in-6 fd00:1:$n::1 -> fd00:2:$n::1" ping_from a "fd00:1:$n::1" "fd00:2:$n::1" 3
  assert "$name ($role): ping 4-in-6 10.1.$n.1 -> 10.2.$n.1" ping_from a "10.1.$n.1" "10.2.$n.1" 3
}

capture_start a out6 "$IT_WORK/ipv6.pcap" 300
out=$(rv up x6-i 2>&1) || true
log "routevpn up x6-i: $out"
check 1 initiator
assert "pluto initiates x6-r (IPv6)" whack_in b --initiate --name x6-r-v6
assert "pluto initiates x6-r (IPv4 inside)" whack_in b --initiate --name x6-r-v4
check 2 responder
capture_stop
assert_only_esp46 "only ESP on the outer link" "$IT_WORK/ipv6.pcap" 24
assert "the IKE SAs ran over IPv6" test "$(pcap_count "$IT_WORK/ipv6.pcap" ip6 and udp port 500)" -ge 4
assert "4-in-6 states carry af-unspec on site a" holds -q 'af-unspec' < <(in_site a ip xfrm state)

if grep -q "$PSK" "$IT_WORK/daemon-a.log"; then fail "the PSK appears in the daemon log"; else pass "the PSK never appears in the daemon log"; fi
grep -E 'installed|failed|deleted|unacceptable' "$IT_WORK/daemon-a.log" | sed 's/^/    | /' | tail -20

it_finish
