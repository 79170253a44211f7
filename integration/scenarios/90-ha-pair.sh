#!/usr/bin/env bash
# A high-availability pair: gateways ga and gb run routevpn with the same profile, whose
# `local` is the virtual address 192.0.2.10 that keepalived (VRRPv3, 0.2 s adverts) moves
# between them, with the LAN's gateway address 10.1.0.1. The partner p runs charon; a LAN
# host (lan, 10.1.0.100) pings a host behind the partner (far, 10.2.0.100) at 100 pps.
#
#   lan ──br0(lan)── ga, gb ──br0(wan)── p ── far
#
# The outer segment is a bridge in a namespace of its own (wan), captured there: on the
# partner's own device the capture would also show the packets charon's kernel decrypted
# (XFRM reinjects them on the device the ESP came in on).
#
# The standby keeps its dataplane (VTI, route, policies) and drops the tunnel's traffic;
# the gateway that gains the address initiates at once with INITIAL_CONTACT, so charon
# drops the old SAs. Gateway A is killed (kill -9 of every process of its: routevpn and
# keepalived), then comes back (its addresses as a reboot leaves them) and takes the
# address back (preemption); last, ga's uplink goes down. Pings lost and the outage are
# measured each time; the outer segment never carries the inner traffic in clear.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/../lib.sh"
it_init 90-ha-pair

ROUTEVPN=${ROUTEVPN:-$PWD/target/debug/routevpn}
KEEPALIVED=${KEEPALIVED:-/usr/sbin/keepalived}
modprobe -a ip_vti esp4 bridge

VIP=192.0.2.10
for s in ga gb p lan far wan; do
  site_add "$s"
  in_site "$s" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
# bridge SITE [ADDR/LEN]: br0 in SITE, a segment the gateways join.
bridge() {
  ip -n "$1" link add br0 type bridge
  [[ -z ${2:-} ]] || ip -n "$1" addr add "$2" dev br0
  ip -n "$1" link set br0 up
}
bridge wan
bridge lan 10.1.0.100/24
ip link add out netns p type veth peer name p netns wan
ip -n wan link set p master br0 up
ip -n p addr add 192.0.2.2/24 dev out
ip -n p link set out up
ip -n lan route add default via 10.1.0.1
n=11
for g in ga gb; do
  for seg in out:wan lan:lan; do
    ifname=${seg%%:*} site=${seg#*:}
    ip link add "$ifname" netns "$g" type veth peer name "$g" netns "$site"
    ip -n "$site" link set "$g" master br0 up
    ip -n "$g" link set "$ifname" up
  done
  ip -n "$g" addr add "192.0.2.$n/24" dev out
  ip -n "$g" addr add "10.1.0.$n/24" dev lan
  in_site "$g" sysctl -qw net.ipv4.ip_forward=1
  n=$((n + 1))
done
link_add p lan 10.2.0.1/24 far eth 10.2.0.100/24
ip -n far route add default via 10.2.0.1
in_site p sysctl -qw net.ipv4.ip_forward=1
ip -n p route add 10.1.0.0/24 via "$VIP"

# --- the partner: charon, policy-based, trap policies (its side stays closed too)
rv_sites_init ga gb
charon_start p "$(swanctl_conf ha 192.0.2.2 "$VIP" aes128gcm16-prfsha256-x25519 \
  "net 10.2.0.0/24 10.1.0.0/24 aes128gcm16 trap")"

# --- the gateways: one profile, the same on both
for g in ga gb; do
  cat >"$IT_WORK/$g/tunnels/ha.toml" <<EOF
kind = "vti"
local = "$VIP"
remote = "192.0.2.2"
[ike]
proposals = ["aes128gcm16-prfsha256-x25519"]
psk_file = "../secrets/psk"
[[child]]
local_ts = ["10.1.0.0/24"]
remote_ts = ["10.2.0.0/24"]
esp_proposals = ["aes128gcm16"]
[interface]
name = "vti-ha"
[[route]]
to = "10.2.0.0/24"
EOF
done
# keepalived_start GATEWAY PRIORITY: VRRP only, in the foreground, its own config, and its
# pid files in a private /run (gone with it, as after a reboot: a killed one's would make
# the next refuse to start).
keepalived_start() {
  local g=$1 prio=$2 conf=$IT_WORK/$1/keepalived.conf
  sed -e "s/@ROUTER@/$g/" -e "s/@PRIORITY@/$prio/" -e "s/@VIP@/$VIP/" >"$conf" <<'EOF'
global_defs {
  router_id @ROUTER@
  vrrp_version 3
  enable_script_security
}
vrrp_instance ha {
  state BACKUP
  interface out
  virtual_router_id 51
  priority @PRIORITY@
  advert_int 0.2
  virtual_ipaddress {
    @VIP@/24 dev out
    10.1.0.1/24 dev lan
  }
}
EOF
  # shellcheck disable=SC2016 # expanded by the inner sh
  ip netns exec "$g" unshare -m --propagation private sh -c \
    'mount -t tmpfs -o mode=0755 tmpfs /run && exec "$@"' keepalived \
    "$KEEPALIVED" -n -l -D -G -P -f "$conf" -p /run/keepalived.pid -r /run/vrrp.pid \
    >>"$IT_WORK/keepalived-$g.log" 2>&1 &
  IT_PIDS+=("$!")
}
holds_vip() { in_site "$1" ip -br addr show dev out | holds -qw "$VIP/24"; }
children_on() {
  rv_at "$1" status --json |
    python3 -c "import json,sys; s=json.load(sys.stdin); print(sum(len(sa['children']) for sa in s['ike_sas'] if sa['state']=='ESTABLISHED'))"
}
up_on() { test "$(children_on "$1")" = 1; }
ike_sas_on() { rv_at "$1" status --json | python3 -c "import json,sys; print(len(json.load(sys.stdin)['ike_sas']))"; }
# One CHILD SA pair at the partner: the old gateway's were dropped.
partner_has_one() { test "$(sa_count p)" = 2; }
reaches_far() { in_site lan ping -n -q -c 1 -W 1 10.2.0.100 >/dev/null; }

rv_daemon_at ga
rv_daemon_at gb
keepalived_start ga 200
assert "ga becomes VRRP master" retry 100 0.1 holds_vip ga
keepalived_start gb 100
assert "ga takes the tunnel up when the address arrives" retry 100 0.2 up_on ga
assert "the LAN host reaches the far host through ga" retry 20 0.2 reaches_far

# --- the standby: dataplane applied, IKE silent, its own traffic for the tunnel dropped
assert_not "gb does not hold the address" holds_vip gb
assert "gb logs its tunnel on standby" grep -q "ha: standby: its local address $VIP is not on this host" "$IT_WORK/daemon-gb.log"
assert "gb has no IKE SA" test "$(ike_sas_on gb)" = 0
standby_shown() {
  rv_at gb status --json |
    python3 -c "import json,sys; s=json.load(sys.stdin); assert s['standby']==[{'name':'ha','local':'$VIP'}], s['standby']"
}
assert "gb's status shows the tunnel on standby" standby_shown
# `up` on the standby (an operator's habit, a unit's ExecStartPost) is not a failure.
up_says() { local out; out=$(rv_at gb "$@" 2>&1) && grep -q "$UP_EXPECTED" <<<"$out"; }
UP_EXPECTED="ha: standby: its local address $VIP is not on this host"
assert "up ha on gb succeeds and says it is on standby" up_says up ha
UP_EXPECTED="1 on standby"
assert "up --all on gb succeeds and counts it on standby" up_says up --all
assert "...and gb still has no IKE SA" test "$(ike_sas_on gb)" = 0
assert "gb routes 10.2.0.0/24 into vti-ha" sh -c "ip -n gb route get 10.2.0.100 | grep -qw vti-ha"
capture_start wan br0 "$IT_WORK/standby.pcap" 20
assert_not "gb's own traffic for the tunnel goes nowhere (no SA)" \
  in_site gb ping -n -q -c 5 -i 0.1 -W 1 -I 10.1.0.12 10.2.0.100
capture_stop
inner_clear() { pcap_count "$1" 'ip and net 10.0.0.0/8'; }
assert "...and nothing of it reached the wire" test "$(inner_clear "$IT_WORK/standby.pcap")" = 0

# --- a long TCP stream from the LAN host to the far host, across both switches: a
# pattern at ~100 kB/s; the far host checks every byte and notes the longest stall.
cat >"$IT_WORK/stream-server.py" <<'PY'
import json, socket, sys, time
pattern = bytes(range(251)) * 300
out = sys.argv[1]
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.2.0.100", 5001))
s.listen(1)
open(out + ".listening", "w").close()
c, _ = s.accept()
received, intact, stall, last = 0, True, 0.0, time.monotonic()
while True:
    data = c.recv(65536)
    now = time.monotonic()
    stall, last = max(stall, now - last), now
    if not data:
        break
    off = received % 251
    intact = intact and data == pattern[off:off + len(data)]
    received += len(data)
result = {"received": received, "intact": intact, "stall": round(stall, 2)}
c.sendall(json.dumps(result).encode())
c.close()
json.dump(result, open(out, "w"))
PY
cat >"$IT_WORK/stream-client.py" <<'PY'
import json, os, socket, sys, time
pattern = bytes(range(251)) * 300
stop, out = sys.argv[1], sys.argv[2]
result = {"sent": 0}
try:
    c = socket.create_connection(("10.2.0.100", 5001), timeout=5)
    c.settimeout(None)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 60000)
    while not os.path.exists(stop):
        off = result["sent"] % 251
        c.sendall(pattern[off:off + 1000])
        result["sent"] += 1000
        time.sleep(0.01)
    c.shutdown(socket.SHUT_WR)
    reply = b""
    while chunk := c.recv(4096):
        reply += chunk
    result["server"] = json.loads(reply)
except (OSError, ValueError) as e:
    result["error"] = repr(e)
json.dump(result, open(out, "w"))
PY
ip netns exec far python3 "$IT_WORK/stream-server.py" "$IT_WORK/stream-server.json" &
IT_PIDS+=("$!")
assert "the far host listens" retry 50 0.1 test -e "$IT_WORK/stream-server.json.listening"
ip netns exec lan python3 "$IT_WORK/stream-client.py" "$IT_WORK/stream-stop" "$IT_WORK/stream-client.json" &
IT_PIDS+=("$!")

# measure LABEL PING_LOG: pings lost and the longest gap between replies.
measure() {
  python3 - "$2" "$1" <<'PY'
import re, sys
path, label = sys.argv[1], sys.argv[2]
text = open(path).read()
stamps = [float(t) for t in re.findall(r"^\[(\d+\.\d+)\] \d+ bytes from", text, re.M)]
m = re.search(r"(\d+) packets transmitted, (\d+) received", text)
sent, got = int(m.group(1)), int(m.group(2))
gap = max((b - a for a, b in zip(stamps, stamps[1:])), default=0.0)
print(f"{label}: {sent} pings at 100/s, {sent - got} lost, traffic again after {gap:.2f} s")
PY
}
# switch LABEL ACTION NEW_MASTER OLD_MASTER: 100 pps from the LAN host and a capture of
# the outer segment around ACTION; waits until NEW_MASTER carries the traffic.
switch() {
  local label=$1 action=$2 new=$3 pings=$IT_WORK/ping-$1.log pcap=$IT_WORK/$1.pcap ping_pid figures
  capture_start wan br0 "$pcap" 120
  # Not through in_site: $! must be ping itself (a subshell would ignore SIGINT).
  ip netns exec lan ping -n -D -i 0.01 -W 1 10.2.0.100 >"$pings" 2>&1 &
  ping_pid=$!
  IT_PIDS+=("$ping_pid")
  assert "$label: pings answered before" retry 50 0.1 grep -q 'bytes from' "$pings"
  log "$label: $action"
  "$action"
  assert "$label: $new holds the address" retry 100 0.1 holds_vip "$new"
  assert "$label: $new brings the tunnel up" retry 150 0.1 up_on "$new"
  assert "$label: the partner keeps only $new's SAs (INITIAL_CONTACT)" retry 100 0.1 partner_has_one
  assert "$label: the LAN host reaches the far host" retry 50 0.1 reaches_far
  sleep 1 # a second of traffic after the switch, in the figures
  kill -INT "$ping_pid"
  wait "$ping_pid" || true
  capture_stop
  figures=$(measure "$label" "$pings")
  log "$figures"
  pass "$figures"
  assert "$label: no inner packet in clear on the outer segment" test "$(inner_clear "$pcap")" = 0
  local esp
  esp=$(pcap_count "$pcap" esp)
  assert "$label: ESP carried the traffic ($esp packets)" test "$esp" -gt 100
}

kill_ga() {
  local pids
  pids=$(ip netns pids ga)
  # shellcheck disable=SC2086 # a list of pids
  kill -KILL $pids
}
switch failover kill_ga gb ga
assert "gb logs the takeover" grep -q "ha: its local address appeared: taking over" "$IT_WORK/daemon-gb.log"

# --- gateway A comes back: as after a reboot, without the addresses keepalived had
# added (its SAs are the restarted daemon's to sweep), routevpn first, then keepalived,
# which preempts with its higher priority.
stood_by_twice() { test "$(grep -c 'ha: standby' "$IT_WORK/daemon-ga.log")" = 2; }
return_ga() {
  ip -n ga addr del "$VIP/24" dev out 2>/dev/null || true
  ip -n ga addr del 10.1.0.1/24 dev lan 2>/dev/null || true
  rv_daemon_at ga
  assert "ga's restarted routevpn stands by" retry 50 0.1 stood_by_twice
  keepalived_start ga 200
}
switch failback return_ga ga gb
no_ike_sa() { test "$(ike_sas_on "$1")" = 0; }
assert "gb abandoned its IKE SA when the address left" retry 50 0.1 no_ike_sa gb
assert "gb sent nothing from the address it lost" sh -c "! grep -q 'sending to' '$IT_WORK/daemon-gb.log'"

# --- ga's uplink goes down: keepalived on ga sees its interface fail (FAULT) and removes
# the addresses, gb stops hearing adverts and takes over; ga's routevpn abandons its SAs.
uplink_down_ga() { ip -n ga link set out down; }
switch uplink-down uplink_down_ga gb ga
assert "ga abandoned its IKE SA when the address left" retry 50 0.1 no_ike_sa ga

# --- the TCP stream: the same connection across both switches, every byte in order.
touch "$IT_WORK/stream-stop"
assert "the TCP stream ends" retry 300 0.1 test -s "$IT_WORK/stream-client.json"
stream_figures() {
  python3 - "$IT_WORK/stream-client.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
s = r.get("server", {})
print(f"TCP stream: {r['sent']} bytes sent, {s.get('received')} received intact={s.get('intact')}, "
      f"longest stall {s.get('stall')} s, error={r.get('error')}")
sys.exit(0 if "error" not in r and s.get("received") == r["sent"] and s.get("intact") else 1)
PY
}
if figures=$(stream_figures); then pass "$figures"; else fail "$figures"; fi
log "$figures"
