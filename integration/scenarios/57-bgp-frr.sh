#!/usr/bin/env bash
# BGP (FRR 8) over two tunnels to one partner: the classic two-tunnel cloud VPN. Our
# gateway a runs routevpn with the example profiles bgp-cloud-1/bgp-cloud-2 (a VTI to each
# of the partner's endpoints p1 and p2, a /30 inside each, on_sa_loss = "withdraw", DPD
# 1 s + 4 s) and bgpd with one session per tunnel (keepalive 3 s, hold 9 s). The partner is
# not routevpn: each endpoint runs charon behind a hand-made VTI and bgpd, and both reach
# one partner LAN whose router (far, also the host pinged) learns our LAN from both by iBGP.
#
#   lan ── a ──br0(wan)── p1, p2 ──br0(vpc)── far
#
# BGP prefers tunnel 1 both ways (local preference on a, AS-path prepending toward p2).
# With 20 pings/s from the LAN host to far, p1 dies: its charon is killed with SIGKILL,
# its kernel's SAs go with it and its VTI goes down (its bgpd stays, so the partner's LAN
# stops using p1 at once, as a cloud's own routing would). DPD gives p1 up, the device
# goes admin-down, bgpd drops the session without waiting for the hold time and the route
# moves to tunnel 2. Then p1's charon returns, routevpn's restart gets through, the
# session comes back and BGP moves the traffic back to tunnel 1. Pings lost, outages and
# the time of each step are measured (ip monitor on a, bgpd's log); the outer segment
# (captured on its own bridge) never carries inner traffic in clear.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/../lib.sh"
it_init 57-bgp-frr

ROUTEVPN=${ROUTEVPN:-$PWD/target/debug/routevpn}
PROFILES=$(cd "$here/../../profiles" && pwd)
modprobe -a ip_vti esp4 bridge

for s in a lan p1 p2 far wan vpc; do
  site_add "$s"
  in_site "$s" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
# segment SITE: br0 in SITE, joined by `joint`; joint SITE IF ADDR/LEN: a veth from SITE's
# IF to the segment.
segment() {
  ip -n "$1" link add br0 type bridge
  ip -n "$1" link set br0 up
}
joint() {
  local seg=$1 site=$2 ifname=$3 addr=$4
  ip link add "$ifname" netns "$site" type veth peer name "$site" netns "$seg"
  ip -n "$seg" link set dev "$site" master br0 up
  ip -n "$site" addr add "$addr" dev "$ifname"
  ip -n "$site" link set "$ifname" up
}
segment wan
segment vpc
# The outer addresses of the example profiles: ours 192.0.2.30, the endpoints
# 203.0.113.31 and .32, on one segment (on-link routes across the two prefixes).
joint wan a out 192.0.2.30/24
ip -n a route add 203.0.113.0/24 dev out
for n in 1 2; do
  joint wan "p$n" out "203.0.113.3$n/24"
  ip -n "p$n" route add 192.0.2.0/24 dev out
  joint vpc "p$n" lan "10.2.0.$n/24"
  in_site "p$n" sysctl -qw net.ipv4.ip_forward=1
done
joint vpc far eth 10.2.0.100/24
link_add a lan 10.1.0.1/24 lan eth 10.1.0.100/24
ip -n lan route add default via 10.1.0.1
in_site a sysctl -qw net.ipv4.ip_forward=1

# --- our side: the example profiles as shipped, only the key's path changed
rv_sites_init a
for n in 1 2; do
  sed -e 's#^psk_file = .*#psk_file = "../secrets/psk"#' "$PROFILES/bgp-cloud-$n.toml" \
    >"$IT_WORK/a/tunnels/bgp-cloud-$n.toml"
done
assert "the BGP cloud profiles check" rv_at a check

# --- the partner's endpoints: charon with a hand-made VTI (key 31 / 32, the kernel's
# default MTU), the partner's end of each /30 .1
partner_vti() {
  local n=$1
  ip -n "p$n" tunnel add vti-a mode vti local "203.0.113.3$n" remote 192.0.2.30 key "3$n"
  in_site "p$n" sysctl -qw net.ipv4.conf.vti-a.disable_policy=1
  ip -n "p$n" addr add "169.254.3$n.1/30" dev vti-a
  ip -n "p$n" link set vti-a up
}
charon_conf() {
  local n=$1
  printf 'connections {\n%s\n}\nsecrets {\n  ike-a { secret = "%s" }\n}\n' \
    "$(swanctl_conn vti-a "203.0.113.3$n" 192.0.2.30 aes256gcm16-prfsha384-ecp384 vti-a "        local_ts = 0.0.0.0/0
        remote_ts = 0.0.0.0/0
        mark_in = 3$n
        mark_out = 3$n
        esp_proposals = aes256gcm16-ecp384")" "$PSK"
}
for n in 1 2; do
  partner_vti "$n"
  assert "charon starts on p$n" charon_start "p$n" "$(charon_conf "$n")"
done

rv_daemon_at a
children_of() {
  rv_at a status --json | python3 -c "import json,sys; s=json.load(sys.stdin); print(sum(len(sa['children']) for sa in s['ike_sas'] if sa['name']=='$1' and sa['state']=='ESTABLISHED'))"
}
tunnel_up() { test "$(children_of "$1")" = 1; }
assert "tunnel 1 negotiated" retry 150 0.2 tunnel_up bgp-cloud-1
assert "tunnel 2 negotiated" retry 150 0.2 tunnel_up bgp-cloud-2

# --- FRR: bgpd and zebra on a, p1, p2 and far. Keepalive 3 s, hold 9 s; a connect retry
# of 2 s, so a session returns as soon as its tunnel does; updates sent at once.
bgp_common() {
  printf 'router bgp %s\n bgp router-id %s\n bgp log-neighbor-changes\n' "$1" "$2"
  printf ' no bgp ebgp-requires-policy\n timers bgp 3 9\n'
  local peer
  for peer in "${@:3}"; do
    printf ' neighbor %s remote-as %s\n neighbor %s timers connect 2\n' "${peer%:*}" "${peer#*:}" "${peer%:*}"
    printf ' neighbor %s advertisement-interval 0\n' "${peer%:*}"
  done
}
# a (AS 65001) announces its LAN; tunnel 1 is preferred both ways: what p1 sends gets
# local preference 200, what goes to p2 gets our AS twice more. Its log in milliseconds
# (the command line's --log target ignores the precision) for the figures.
bgp_a() {
  printf 'log file %s/bgp-events.log\nlog timestamp precision 3\n' "$(frr_dir a)"
  printf 'route-map prefer permit 10\n set local-preference 200\n'
  printf 'route-map prepend permit 10\n set as-path prepend 65001 65001\n'
  bgp_common 65001 10.255.0.1 169.254.31.1:64512 169.254.32.1:64512
  printf ' address-family ipv4 unicast\n  network 10.1.0.0/24\n'
  printf '  neighbor 169.254.31.1 route-map prefer in\n  neighbor 169.254.32.1 route-map prepend out\n'
  printf ' exit-address-family\n'
}
# An endpoint (AS 64512): eBGP over its tunnel, iBGP with the partner LAN's router.
bgp_p() {
  bgp_common 64512 "10.255.0.3$1" "169.254.3$1.2:65001" 10.2.0.100:64512
  printf ' address-family ipv4 unicast\n  network 10.2.0.0/24\n  neighbor 10.2.0.100 next-hop-self\n'
  printf ' exit-address-family\n'
}
assert "FRR (zebra, bgpd) starts on a" frr_start a bgpd "$(bgp_a)"
for n in 1 2; do
  assert "FRR (zebra, bgpd) starts on p$n" frr_start "p$n" bgpd "$(bgp_p "$n")"
done
assert "FRR (zebra, bgpd) starts on far" frr_start far bgpd "$(bgp_common 64512 10.255.0.100 10.2.0.1:64512 10.2.0.2:64512)"

# bgp_state SITE PEER: bgpd's state of the session to PEER ("Established", "Active", ...).
bgp_state() {
  vtysh_in "$1" -c "show bgp neighbor $2 json" | python3 -c '
import json, sys
print(json.load(sys.stdin).get(sys.argv[1], {}).get("bgpState", ""))' "$2"
}
established() { test "$(bgp_state "$1" "$2")" = Established; }
# route_via SITE PREFIX DEV [GATEWAY]: SITE's route to PREFIX is BGP's, through DEV alone.
route_via() {
  local route
  route=$(in_site "$1" ip -o route show "$2" proto bgp)
  [[ $route == "$2 "*" via ${4:-}"*" dev $3 "* && $route != *nexthop* ]]
}
assert "a's session over tunnel 1 is Established" retry 150 0.2 established a 169.254.31.1
assert "a's session over tunnel 2 is Established" retry 150 0.2 established a 169.254.32.1
far_established() { established far 10.2.0.1 && established far 10.2.0.2; }
assert "far's sessions to p1 and p2 are Established" retry 150 0.2 far_established
assert "a learned 10.2.0.0/24 by BGP, through tunnel 1 (local preference)" retry 100 0.2 route_via a 10.2.0.0/24 vti-bgp-1
assert "far learned 10.1.0.0/24 by BGP, through p1 (the shorter AS path)" retry 100 0.2 route_via far 10.1.0.0/24 eth 10.2.0.1
lan_for_a() { in_site a ip -o route show 10.2.0.0/24 | holds -v 'proto bgp' | holds -q .; }
assert_not "no other route for the partner's LAN (routevpn installed none)" lan_for_a

# --- the run: the outer segment captured, a's links and routes followed with timestamps,
# 20 pings/s from the LAN host to far throughout.
capture_start wan br0 "$IT_WORK/outer.pcap" 900
ip netns exec a ip -ts monitor link route >"$IT_WORK/monitor-a.log" 2>&1 &
IT_PIDS+=("$!")
# Not through in_site: $! must be ping itself.
ip netns exec lan ping -n -D -i 0.05 -W 1 10.2.0.100 >"$IT_WORK/ping.log" 2>&1 &
ping_pid=$!
IT_PIDS+=("$ping_pid")
assert "pings answered through tunnel 1" retry 50 0.1 grep -q 'bytes from' "$IT_WORK/ping.log"

tx() { in_site a cat "/sys/class/net/$1/statistics/tx_packets"; }
tx_reached() { test "$(tx "$1")" -ge "$2"; }
# carries DEV OTHER: DEV takes the pings (40 more packets) while OTHER takes at most a few
# (BGP keepalives).
carries() {
  local dev0 other0
  dev0=$(tx "$1") other0=$(tx "$2")
  retry 100 0.1 tx_reached "$1" $((dev0 + 40)) && test "$(tx "$2")" -le $((other0 + 5))
}
assert "tunnel 1 carries the pings, tunnel 2 does not" carries vti-bgp-1 vti-bgp-2
# doctor NAME: routevpn doctor on a's tunnel NAME, its output kept in doctor-NAME.log.
doctor() {
  local out=$IT_WORK/doctor-$1.log status=0
  rv_at a doctor "$1" --interval 1 --frr-dir "$(frr_dir a)" >"$out" 2>&1 || status=$?
  sed "s/^/    [doctor] /" "$out"
  return "$status"
}
for n in 1 2; do
  assert "doctor finds no error on tunnel $n" doctor "bgp-cloud-$n"
done

now() { date +%s.%N; }
# --- p1 dies: charon crashed, its kernel's SAs and policies gone, its VTI down.
t_kill=$(now)
log "p1 dies"
charon_kill p1
ip -n p1 xfrm state flush
ip -n p1 xfrm policy flush
ip -n p1 link set vti-a down
assert "failover: a's route moves to tunnel 2" retry 600 0.1 route_via a 10.2.0.0/24 vti-bgp-2
assert "failover: far's route moves to p2" retry 300 0.1 route_via far 10.1.0.0/24 eth 10.2.0.2
tunnel_gone() { test "$(children_of "$1")" = 0; }
assert "failover: DPD gave p1 up (tunnel 1 has no CHILD SA)" retry 300 0.1 tunnel_gone bgp-cloud-1
link_down() { ! in_site a ip -br link show "$1" | holds -qw UP; }
assert "failover: tunnel 1's device is down" link_down vti-bgp-1
assert_not "failover: a's session over tunnel 1 is down" established a 169.254.31.1
assert "failover: tunnel 2 carries the pings" carries vti-bgp-2 vti-bgp-1
assert "failover: the session over tunnel 2 stayed Established" established a 169.254.32.1
doctor bgp-cloud-1 >/dev/null || true
assert "failover: doctor says tunnel 1's device is down for lack of a CHILD SA" \
  grep -q "the tunnel device vti-bgp-1 is down and its routes withdrawn: it has no CHILD SA" "$IT_WORK/doctor-bgp-cloud-1.log"
t_failed_over=$(now)

# --- p1 returns: its VTI up, charon restarted with its connection (it waits, as before).
# routevpn is still restarting the tunnel (IKE_SA_INIT retransmitted 4, 11, 24, 47, 89 s
# after DPD's restart): the next retransmission brings it back.
t_back=$(now)
log "p1 returns"
ip -n p1 link set vti-a up
assert "charon restarts on p1" charon_start p1 "$(charon_conf 1)"
# within SECONDS CMD...: CMD succeeds before SECONDS have passed (polled: under TCG one
# look at the daemon's status takes a good part of a second).
within() {
  local until=$(($(date +%s) + $1))
  shift
  until "$@"; do
    (($(date +%s) < until)) || return 1
    sleep 0.2
  done
}
# routevpn restarted the tunnel when DPD gave up, with p1 still dead: its IKE_SA_INIT is
# retransmitted 4, 11, 24, 47 and 89 s later, and the next one reaches the new charon.
tunnel_back() { test "$(children_of "$1")" -ge 1; }
assert "way back: routevpn brings tunnel 1 back by itself" within 120 tunnel_back bgp-cloud-1
log "way back: tunnel 1 has $(children_of bgp-cloud-1) CHILD SA(s)"
rv_at a status 2>&1 | sed 's/^/    [status a] /'
if ! tunnel_back bgp-cloud-1; then
  # What each side saw, on the console: a VM that is stopped takes its files with it.
  tail -n 60 "$IT_WORK/daemon-a.log" | sed 's/^/    [daemon a] /'
  tail -n 60 "$(charon_dir p1)/charon.log" | sed 's/^/    [charon p1] /'
  # The rest of the way back, measured all the same: charon initiates.
  swanctl_in p1 --initiate --child vti-a --timeout 30 >/dev/null 2>&1 || true
  assert "way back: tunnel 1 negotiated again (charon initiating)" within 60 tunnel_back bgp-cloud-1
fi
assert "way back: a's session over tunnel 1 is Established" retry 150 0.2 established a 169.254.31.1
assert "way back: a's route returns to tunnel 1" retry 200 0.1 route_via a 10.2.0.0/24 vti-bgp-1
assert "way back: far's route returns to p1" retry 200 0.1 route_via far 10.1.0.0/24 eth 10.2.0.1
assert "way back: tunnel 1 carries the pings again" carries vti-bgp-1 vti-bgp-2
t_end=$(now)
kill -INT "$ping_pid"
wait "$ping_pid" || true
capture_stop

# --- the figures: pings lost and the longest gap per phase (from ping -D), and the time
# of each step after the event (ip monitor on a, bgpd's log on a).
figures() {
  python3 - "$IT_WORK" "$t_kill" "$t_failed_over" "$t_back" "$t_end" "$(frr_dir a)/bgp-events.log" <<'PY'
import re, sys, time
from datetime import datetime
work, t_kill, t_over, t_back, t_end, bgp_log = sys.argv[1], *map(float, sys.argv[2:6]), sys.argv[6]
replies = [(float(t), int(s)) for t, s in
           re.findall(r"^\[(\d+\.\d+)\] \d+ bytes from \S+ icmp_seq=(\d+)", open(f"{work}/ping.log").read(), re.M)]

def phase(t0, t1):
    """Pings lost among those sent between the last reply before t0 and the last before
    t1, the longest gap between replies, and when replies resumed after it."""
    before = [s for t, s in replies if t < t0]
    inside = [(t, s) for t, s in replies if t0 <= t < t1]
    first, last = (before[-1] if before else 0), (inside[-1][1] if inside else 0)
    lost = (last - first) - len({s for _, s in inside if s > first})
    stamps = [t for t, s in replies if t < t0][-1:] + [t for t, _ in inside]
    gaps = [(b - a, b) for a, b in zip(stamps, stamps[1:])]
    gap, resumed = max(gaps, default=(0.0, t0))
    return lost, last - first, gap, resumed - t0

def stamp(text):
    """Local time as ip -ts ("2026-12-04T22:30:01.123456") or FRR ("2026/12/04 22:30:01.123")
    write it, in seconds since the epoch."""
    whole, _, fraction = text.replace("/", "-").replace(" ", "T").partition(".")
    return time.mktime(datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").timetuple()) + float("0." + (fraction or "0"))

def monitor(t0, pattern):
    for line in open(f"{work}/monitor-a.log"):
        m = re.match(r"\[(\S+)\] (.*)", line)
        if m and re.search(pattern, m.group(2)):
            t = stamp(m.group(1))
            if t >= t0:
                return t - t0
    return None

def bgp(t0, what):
    for line in open(bgp_log):
        m = re.match(r"(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d(?:\.\d+)?) .*%ADJCHANGE: neighbor 169\.254\.31\.1\S* in vrf \S+ (Up|Down)(.*)", line)
        if m and m.group(2) == what:
            t = stamp(m.group(1))
            if t >= t0:
                return t - t0, m.group(3).strip()
    return None, ""

def s(x):
    return "-" if x is None else f"{x:.2f} s"

# (label, start, end, tunnel 1's link event, its session event, the device the route moves to)
for label, t0, t1, link, session, dev in (
        ("failover (p1 killed)", t_kill, t_over, r"<(?![^>]*\bUP\b)", "Down", "vti-bgp-2"),
        ("way back (p1's charon restarted)", t_back, t_end, r"<[^>]*\bUP\b", "Up", "vti-bgp-1")):
    lost, sent, gap, resumed = phase(t0, t1)
    link_at = monitor(t0, r"vti-bgp-1[^:]*: " + link)
    route_at = monitor(t0, rf"^10\.2\.0\.0/24 .*dev {dev} ")
    bgp_at, why = bgp(t0, session)
    why = f" ({why})" if why else ""
    # An outage (a gap of a second or more at 20 pings/s) is also dated from the event.
    again = f", traffic again {resumed:.2f} s after it" if gap >= 1 else ""
    print(f"{label}: {lost} of {sent} pings lost, no reply for {gap:.2f} s{again}; "
          f"tunnel 1 {session.lower()} {s(link_at)}, BGP session {session.lower()} {s(bgp_at)}{why}, route to {dev} {s(route_at)}")
PY
}
if figures >"$IT_WORK/figures.log" 2>&1; then
  while read -r line; do
    log "$line"
    pass "$line"
  done <"$IT_WORK/figures.log"
else
  fail "the figures could not be computed"
  sed 's/^/    | /' "$IT_WORK/figures.log"
fi
# outage SECONDS_MAX: the failover's longest gap, bounded by DPD (1 + 4 s) + the hold time
# (9 s) with room for TCG and a neighbour scenario.
outage_within() {
  local gap
  gap=$(sed -n 's/^failover.* no reply for \([0-9.]*\) s.*/\1/p' "$IT_WORK/figures.log")
  [[ -n $gap ]] && python3 -c "import sys; sys.exit(0 if $gap <= $1 else 1)"
}
assert "failover: traffic flowed again within 30 s (DPD 5 s + hold 9 s, with room)" outage_within 30
assert "the figures were measured" test "$(grep -c ' pings lost' "$IT_WORK/figures.log")" = 2

inner_clear() { pcap_count "$1" 'ip and (net 10.0.0.0/8 or net 169.254.0.0/16 or tcp port 179)'; }
assert "no inner packet (LAN, BGP) in clear on the outer segment" test "$(inner_clear "$IT_WORK/outer.pcap")" = 0
esp=$(pcap_count "$IT_WORK/outer.pcap" esp)
assert "ESP carried the traffic ($esp packets)" test "$esp" -gt 400

# --- FRR's default the example configuration turns off: with `bgp ebgp-requires-policy`
# an eBGP peer without route-maps both ways is Established and exchanges nothing. doctor
# names it (tunnel 2's peer has a route-map out only).
vtysh_in a -c 'configure terminal' -c 'router bgp 65001' -c 'bgp ebgp-requires-policy' >/dev/null
doctor bgp-cloud-2 >/dev/null || true
assert "doctor names the peer whose routes ebgp-requires-policy discards" \
  grep -q "BGP peer 169.254.32.1 on vti-bgp-2 is Established but FRR discards every route" "$IT_WORK/doctor-bgp-cloud-2.log"
vtysh_in a -c 'configure terminal' -c 'router bgp 65001' -c 'no bgp ebgp-requires-policy' >/dev/null
assert "...and no error once it is off again" doctor bgp-cloud-2
