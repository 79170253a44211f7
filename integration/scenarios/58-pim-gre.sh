#!/usr/bin/env bash
# PIM-SM (FRR 8 pimd) over GRE over IPsec between two routevpn sites with the example
# profiles pim-a/pim-b. A multicast source on A's LAN, a receiver on B's LAN that joins
# the group by IGMP; site A is the rendezvous point. PIM neighbors over the GRE device,
# (S,G) and (*,G) state on both gateways and in their kernels, the receiver counts the
# datagrams, and the outer link carries ESP only (no GRE, no multicast, no feed in clear).
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/../lib.sh"
it_init 58-pim-gre

ROUTEVPN=${ROUTEVPN:-$PWD/target/debug/routevpn}
PROFILES=$(cd "$here/../../profiles" && pwd)
modprobe -a ip_gre esp4

GROUP=239.1.2.3
PORT=5001
# Gateways a and b joined by `out` (the profiles' outer addresses); each gateway's LAN is a
# veth to a host: the source (10.1.0.2 behind a) and the receiver (10.2.0.2 behind b).
for site in a b src rcv; do
  site_add "$site"
  in_site "$site" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
link_add a out 192.0.2.41/24 b out 192.0.2.42/24
link_add a lan 10.1.0.1/24 src eth0 10.1.0.2/24
link_add b lan 10.2.0.1/24 rcv eth0 10.2.0.2/24
ip -n src route add default via 10.1.0.1
ip -n rcv route add default via 10.2.0.1
# Multicast routing needs no IPv4 forwarding (pimd turns on mc_forwarding per interface):
# off on both gateways, whatever the VM's default, so that the README's word is tested.
for site in a b; do in_site "$site" sysctl -qw net.ipv4.conf.all.forwarding=0; done
rv_sites_init a b

# The example profiles as shipped, only the key's path changed.
for site in a b; do
  sed -e 's#^psk_file = .*#psk_file = "../secrets/psk"#' "$PROFILES/pim-$site.toml" \
    >"$IT_WORK/$site/tunnels/pim-$site.toml"
done
assert "site a's profile checks" rv_at a check
assert "site b's profile checks" rv_at b check
rv_daemon_at a
rv_daemon_at b
assert "GRE over IPsec carries unicast between the tunnel addresses" \
  retry 30 0.5 ping_from a 169.254.104.1 169.254.104.2 1
multicast_link() { in_site "$1" ip -o link show "$2" | holds -q '[<,]MULTICAST[,>]'; }
assert "gre-to-b is multicast-capable (IFF_MULTICAST)" multicast_link a gre-to-b
assert "gre-to-a is multicast-capable (IFF_MULTICAST)" multicast_link b gre-to-a
# ...which the kernel does not give a point-to-point GRE device by itself.
ip -n a link add gre-by-hand type gre local 192.0.2.41 remote 192.0.2.43
assert_not "a GRE device made by hand with a remote is not multicast-capable" multicast_link a gre-by-hand
ip -n a link del gre-by-hand

# pim_config TUNNEL_DEVICE [LAN_LINE...]: PIM on the tunnel and the LAN, the static RP
# (site a's LAN address) for 239/8, hellos every second (the neighbor in seconds).
pim_config() {
  local tunnel=$1
  shift
  printf 'ip pim rp 10.1.0.1 239.0.0.0/8\n'
  printf 'interface %s\n ip pim\n ip pim hello 1 10\n' "$tunnel"
  printf 'interface lan\n ip pim\n'
  if (($#)); then printf ' %s\n' "$@"; fi
}
assert "FRR (zebra, pimd) starts on site a" frr_start a pimd "$(pim_config gre-to-b)"
# The receiver's LAN: IGMP, with short queries so that a lost report is asked for again.
assert "FRR (zebra, pimd) starts on site b" frr_start b pimd \
  "$(pim_config gre-to-a 'ip igmp' 'ip igmp query-interval 5' 'ip igmp query-max-response-time 20')"

# pim_json SITE COMMAND INNER OUTER FIELD=VALUE...: pimd's COMMAND (`show ip ... json`:
# objects keyed by OUTER, a group or an interface, then INNER, a source or a neighbor) has
# an entry [OUTER][INNER] whose FIELDs hold VALUEs; FIELD "oil" names an outgoing
# interface. INNER "*" is (*,G): "*" or "0.0.0.0" as the FRR version writes it.
pim_json() {
  vtysh_in "$1" -c "$2" | python3 -c '
import json, sys
inner, outer, *wanted = sys.argv[1:]
entries = json.load(sys.stdin).get(outer, {})
def holds(entry):
    for item in wanted:
        field, value = item.split("=", 1)
        if field == "oil" and value not in entry.get("oil", {}):
            return False
        if field != "oil" and entry.get(field) != value:
            return False
    return True
names = ["*", "0.0.0.0"] if inner == "*" else [inner]
sys.exit(0 if any(holds(entries[name]) for name in names if name in entries) else 1)' "${@:3}"
}
pim_neighbor() { pim_json "$1" 'show ip pim neighbor json' "$3" "$2"; }
assert "PIM neighbor 169.254.104.2 over gre-to-b (site a)" retry 150 0.2 pim_neighbor a gre-to-b 169.254.104.2
assert "PIM neighbor 169.254.104.1 over gre-to-a (site b)" retry 150 0.2 pim_neighbor b gre-to-a 169.254.104.1

# pim_state TAG: what pimd and the kernels hold, kept in the results (pim-TAG-SITE.log).
pim_state() {
  local site cmd
  for site in a b; do
    {
      for cmd in 'show ip pim neighbor' 'show ip pim rp-info' 'show ip pim upstream' \
        'show ip pim rpf' 'show ip mroute' 'show ip igmp groups' 'show ip route'; do
        printf '# %s\n' "$cmd"
        vtysh_in "$site" -c "$cmd" 2>&1 || true
      done
      printf '# ip mroute show\n'
      in_site "$site" ip mroute show 2>&1 || true
    } >"$IT_WORK/pim-$1-$site.log"
  done
}
# receiver GROUP: a host on b's LAN joined to GROUP on its LAN interface, one line per
# distinct datagram (source and sequence number) in rcv-GROUP.out, written as it arrives.
receiver() {
  in_site rcv python3 -u -c '
import socket, sys
group, port, ifaddr = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((group, port))
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton(group) + socket.inet_aton(ifaddr))
print("joined", file=sys.stderr, flush=True)
seen = set()
while True:
    data, (source, _) = s.recvfrom(2048)
    words = data.split()
    if len(words) == 2 and words[0] == b"feed" and words[1] not in seen:
        seen.add(words[1])
        print(source, words[1].decode(), flush=True)
' "$1" "$PORT" 10.2.0.2 >"$IT_WORK/rcv-$1.out" 2>"$IT_WORK/rcv-$1.log" &
  IT_PIDS+=("$!")
  retry 50 0.2 grep -q joined "$IT_WORK/rcv-$1.log"
}
# sender GROUP: the source on a's LAN sends numbered datagrams to GROUP, 10 per second for
# at most a minute, TTL 8 (two routers on the way); its pid in SENDER.
sender() {
  in_site src python3 -u -c '
import socket, sys, time
group, port, ifaddr = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 8)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(ifaddr))
for n in range(600):
    s.sendto(b"feed %d" % n, (group, port))
    print(n, flush=True)
    time.sleep(0.1)
' "$1" "$PORT" 10.1.0.2 >"$IT_WORK/src-$1.out" 2>"$IT_WORK/src-$1.log" &
  SENDER=$!
  IT_PIDS+=("$SENDER")
}
sender_stop() {
  kill "$SENDER" 2>/dev/null || true
  wait "$SENDER" 2>/dev/null || true
}
received() { wc -l <"$IT_WORK/rcv-$1.out"; }
received_at_least() { (($(received "$1") >= $2)); }

assert "the receiver joins $GROUP on its LAN" receiver "$GROUP"
# IGMP reaches pimd on b: (*,G) joined toward the RP, upstream through the tunnel.
assert "site b: (*,$GROUP) joined toward the RP through gre-to-a (IGMP join)" \
  retry 150 0.2 pim_json b 'show ip pim upstream json' '*' "$GROUP" joinState=Joined inboundInterface=gre-to-a

capture_start a out "$IT_WORK/pim.pcap" 120
sender "$GROUP"
assert "the receiver gets at least 20 datagrams of the feed" retry 600 0.2 received_at_least "$GROUP" 20
sender_stop
log "received $(received "$GROUP") distinct datagrams of $(wc -l <"$IT_WORK/src-$GROUP.out") sent"
from_source() { test "$(cut -d' ' -f1 "$IT_WORK/rcv-$GROUP.out" | sort -u)" = 10.1.0.2; }
assert "...all from the source 10.1.0.2" from_source
mroute() { pim_json "$1" 'show ip mroute json' "${@:2}"; }
assert "site a: pimd's (10.1.0.2,$GROUP) from the source's LAN into gre-to-b" \
  retry 50 0.2 mroute a 10.1.0.2 "$GROUP" iif=lan oil=gre-to-b
sg_or_starg_b() {
  mroute b 10.1.0.2 "$GROUP" iif=gre-to-a oil=lan || mroute b '*' "$GROUP" iif=gre-to-a oil=lan
}
assert "site b: pimd's (10.1.0.2,$GROUP) or (*,$GROUP) from gre-to-a to the LAN" sg_or_starg_b
# kernel_mroute SITE SOURCE_RE IIF OIF: the kernel's multicast forwarding cache has the
# feed's entry resolved from IIF to OIF (what pimd installed, what forwarded the datagrams).
kernel_mroute() {
  in_site "$1" ip mroute show | holds -Eq "^\($2, ?${GROUP//./\\.}\) +Iif: $3 +Oifs:.* $4"
}
assert "site a's kernel forwards (10.1.0.2,$GROUP) from lan to gre-to-b" \
  kernel_mroute a '10\.1\.0\.2' lan gre-to-b
assert "site b's kernel forwards (10.1.0.2 or *,$GROUP) from gre-to-a to lan" \
  kernel_mroute b '(10\.1\.0\.2|0\.0\.0\.0)' gre-to-a lan
capture_stop
assert_only_esp "outer link carries ESP only" "$IT_WORK/pim.pcap" 20
# GRE is IP protocol 47, PIM 103, IGMP 2 (pcap's names for the last two do not parse here).
for filter in 'ip proto 47' 'ip multicast' "udp port $PORT" 'ip proto 103 or ip proto 2'; do
  assert "...no '$filter' in clear on the outer link" test "$(pcap_count "$IT_WORK/pim.pcap" "$filter")" = 0
done

pim_state feed

# doctor SITE: `routevpn doctor` on SITE's tunnel, reading SITE's pimd, into DOCTOR.
doctor() {
  DOCTOR=$(rv_at "$1" doctor "pim-$1" --interval 2 --frr-dir "$(frr_dir "$1")" 2>&1 || true)
  printf '%s\n' "$DOCTOR" | sed "s/^/    [doctor $1] /"
}
# Nothing to say about either side (rp_filter, sysctls, routes, MTU, PIM...).
for site in a b; do
  doctor "$site"
  assert "doctor on site $site: no problem found" holds -q "checked pim-$site: no problem found" <<<"$DOCTOR"
done

# --- the trap: an RPF route that names only the device --------------------------------
# Site b's route to a's LAN without `via`: pimd takes the RP's own address as the next hop,
# finds no PIM neighbor there and sends no join. A new group joined on b never reaches a.
GROUP2=239.1.2.4
sed -i '/^via = /d' "$IT_WORK/b/tunnels/pim-b.toml"
assert "site b applies its route without gateway" rv_at b apply
no_gateway() { in_site b ip -o route show 10.1.0.0/24 proto 210 | holds -Eq '^10\.1\.0\.0/24 dev gre-to-a '; }
assert "...and the kernel has 10.1.0.0/24 dev gre-to-a, no via" retry 50 0.2 no_gateway
doctor b
assert "doctor on site b names the route without gateway and the PIM neighbor to use" \
  holds -q 'warning: pim-b: PIM runs on gre-to-a (neighbor 169.254.104.1), but the route to 10.1.0.0/24 names no gateway' <<<"$DOCTOR"
assert "...with the fix" holds -q 'fix: add via = "169.254.104.1" (the PIM neighbor) to that \[\[route\]\]' <<<"$DOCTOR"
assert "the receiver joins $GROUP2" receiver "$GROUP2"
assert "site b: IGMP made (*,$GROUP2)" retry 150 0.2 pim_json b 'show ip pim upstream json' '*' "$GROUP2"
sender "$GROUP2"
# An absence: a join is sent as soon as the upstream state exists; 5 s leave it ample time.
sleep 5
assert_not "site a got no join for $GROUP2 (no (*,$GROUP2) upstream state)" \
  pim_json a 'show ip pim upstream json' '*' "$GROUP2"
assert "...and the receiver none of its datagrams" test "$(received "$GROUP2")" = 0
# The fix doctor gives: the example profile as shipped, with its gateway.
sed -e 's#^psk_file = .*#psk_file = "../secrets/psk"#' "$PROFILES/pim-b.toml" >"$IT_WORK/b/tunnels/pim-b.toml"
assert "site b applies the route with its gateway again" rv_at b apply
assert "site a now has the join for $GROUP2" retry 150 0.2 pim_json a 'show ip pim upstream json' '*' "$GROUP2"
assert "the receiver gets at least 20 datagrams of $GROUP2" retry 600 0.2 received_at_least "$GROUP2" 20
sender_stop
doctor b
assert "doctor on site b: no problem found again" holds -q "checked pim-b: no problem found" <<<"$DOCTOR"

pim_state end
