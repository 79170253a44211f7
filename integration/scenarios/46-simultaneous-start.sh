#!/usr/bin/env bash
# Simultaneous first start: both ends bring the same tunnel up at the same moment, so
# their IKE_SA_INITs (and IKE_AUTHs) cross and each end holds an IKE SA it initiated and
# one it answered. Against charon, against pluto and against another routevpn daemon, for
# ROUNDS rounds each: site a's routevpn daemon starts (its profile's start_action =
# "start", the default, brings the tunnel up at once) while the peer initiates the same
# tunnel, a little later each round (0, 0.3, 0.6 s...) so the exchanges cross at different
# points. Once the ends settle, each must hold exactly one IKE SA and one CHILD SA pair
# (routevpn's status, the peer's own view, and 2 ESP states in each kernel), the same SPIs,
# stay so, and carry pings with none lost; only ESP on the wire. Rounds in which both ends
# initiated (routevpn logs "both ends initiated at once") are counted and printed: charon
# and routevpn cross; pluto 4.10 drops its own initiation once it answers ours, so its
# rounds end with one SA either way. charon 5.9 keeps both SAs of a crossing, never
# deleting the redundant one it initiated: routevpn deletes it after a grace.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/../lib.sh"
it_init 46-simultaneous-start

ROUTEVPN=${ROUTEVPN:-$PWD/target/debug/routevpn}
ROUNDS=${ROUNDS:-3}
modprobe -a ip_vti esp4 xfrm_interface

two_sites 1
rv_sites_init a b
# shellcheck disable=SC2034 # tunnel 1's name, for lib.sh's theirs
NAME=(x sim)

# One suite for all three peers (42's suite 2: pluto's pfs=yes puts the IKE group in
# CREATE_CHILD_SA, so routevpn's ESP proposal names it too).
IKE=aes256gcm16-prfsha512-ecp256
ESP=aes256gcm16-ecp256
# rv_profile SITE LOCAL REMOTE: the tunnel on a routevpn site, started at once.
rv_profile() {
  local here=$2 there=$3
  printf 'kind = "vti"\nlocal = "192.0.2.1%s"\nremote = "192.0.2.1%s"\n' "$here" "$there"
  printf '[ike]\nproposals = ["%s"]\npsk_file = "../secrets/psk"\nstart_action = "start"\n' "$IKE"
  printf '[[child]]\nesp_proposals = ["%s"]\n' "$ESP"
  printf 'local_ts = ["10.%s.1.0/24"]\nremote_ts = ["10.%s.1.0/24"]\n' "$here" "$there"
  printf '[interface]\nname = "sim"\n[[route]]\nto = "10.%s.1.0/24"\nsrc = "10.%s.1.1"\n' "$there" "$here"
} >"$IT_WORK/$1/tunnels/sim.toml"
rv_profile a 1 2

# ike_sas SITE: routevpn's IKE SAs of the tunnel on SITE, "STATE:CHILDREN" each.
ike_sas() {
  rv_at "$1" status --json | python3 -c "import json,sys
s=json.load(sys.stdin)
print(' '.join(sa['state'] + ':' + str(len(sa['children'])) for sa in s['ike_sas'] if sa['name']=='sim'))"
}
# spis_at SITE: routevpn's CHILD SPIs on SITE, "in/out" each.
spis_at() {
  rv_at "$1" status --json | python3 -c "import json,sys
s=json.load(sys.stdin)
print(' '.join(c['spi_in'] + '/' + c['spi_out'] for sa in s['ike_sas'] if sa['name']=='sim' for c in sa['children']))"
}
# charon_view / pluto_view / rvb_view: the peer's IKE SAs and CHILD SAs, "IKE CHILD".
charon_view() {
  local sas
  sas=$(swanctl_in b --list-sas 2>/dev/null || true)
  printf '%s %s' "$(grep -c '^sim: #' <<<"$sas")" "$(grep -c 'INSTALLED' <<<"$sas")"
}
pluto_view() {
  local status
  status=$(whack_in b --status 2>/dev/null || true)
  printf '%s %s' "$(grep -c '"sim".*ESTABLISHED_IKE_SA' <<<"$status")" \
    "$(grep -c '"sim".*ESTABLISHED_CHILD_SA' <<<"$status")"
}
rvb_view() {
  rv_at b status --json | python3 -c "import json,sys
sas=[sa for sa in json.load(sys.stdin)['ike_sas'] if sa['name']=='sim']
print(len(sas), sum(len(sa['children']) for sa in sas if sa['state']=='ESTABLISHED'))"
}
# peer SPIs mirrored to our "in/out"
charon_mirror() {
  local sas
  sas=$(swanctl_in b --list-sas 2>&1 || true)
  printf '%s/%s' "$(sed -n 's/^ *out *\([0-9a-f]\{8\}\).*/\1/p' <<<"$sas" | sed -n 1p)" \
    "$(sed -n 's/^ *in  *\([0-9a-f]\{8\}\).*/\1/p' <<<"$sas" | sed -n 1p)"
}
pluto_mirror() { theirs 1; }
rvb_mirror() { spis_at b | awk -F/ '{ print $2 "/" $1 }'; }

# one_pair VIEW: exactly one IKE SA with one CHILD SA on each end, 2 ESP states in each
# kernel, and the same SPIs; the state printed for the record when asked.
one_pair() {
  local view=$1
  test "$(ike_sas a)" = "ESTABLISHED:1" && test "$("${view}_view")" = "1 1" &&
    test "$(sa_count a)" = 2 && test "$(sa_count b)" = 2 &&
    test "$(spis_at a)" = "$("${view}_mirror")"
}
describe() {
  printf 'ours: [%s] %s ESP states; %s: %s, %s ESP states; SPIs ours %s, theirs %s' \
    "$(ike_sas a)" "$(sa_count a)" "$1" "$("${1}_view")" "$(sa_count b)" "$(spis_at a)" "$("${1}_mirror")"
}
# settled VIEW: one_pair, and still so 3 s later (a late Delete would show).
settled() { one_pair "$1" && sleep 3 && one_pair "$1"; }
nothing_left() { test "$(sa_count a)" = 0 && test "$(sa_count b)" = 0; }
# crossings: how many crossed initiations site a's daemon settled so far.
crossings() { grep -c "both ends initiated at once" "$IT_WORK/daemon-a.log" 2>/dev/null || true; }

# only_esp FILE: ESP and IKE only on the outer link. Between rounds an end whose daemon
# is stopped answers the other's IKE with ICMP port unreachable: that is no leak; an
# inner packet in clear would be.
only_esp() {
  local esp clear
  esp=$(pcap_count "$1" esp)
  clear=$(pcap_count "$1" ip and not esp and not udp port 500 and not udp port 4500 \
    and not '(' 'icmp[icmptype] == icmp-unreach' and 'icmp[icmpcode] == 3' ')')
  echo "$esp ESP packets, $clear other packets in clear"
  ((esp >= 100 && clear == 0))
}

stop_daemon() {
  local pid=${RV_DAEMON[$1]}
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# round PEER N START_PEER...: site a's daemon starts while START_PEER runs 0.3 x (N-1) s
# later; then the checks; then both ends stop.
round() {
  local peer=$1 n=$2 delay label before lost
  shift 2
  delay=$(awk -v n="$n" 'BEGIN { printf "%.1f", 0.3 * (n - 1) }')
  label="$peer round $n (peer ${delay}s after our start)"
  before=$(crossings)
  (
    sleep "$delay"
    "$@" >>"$IT_WORK/peer-start.log" 2>&1
  ) &
  rv_daemon_at a
  if retry 120 0.5 settled "$peer"; then
    pass "$label: one IKE SA and one CHILD SA pair on each end, same SPIs ($(describe "$peer"))"
  else
    fail "$label: not one SA pair ($(describe "$peer"))"
  fi
  lost=$(in_site a ping -n -q -c 60 -i 0.05 -W 1 -I 10.1.1.1 10.2.1.1 2>&1 | sed -n 's/.* \([0-9.]*\)% packet loss.*/\1/p')
  assert "$label: 60 pings at 20/s, none lost (${lost:-?}% lost)" test "${lost:-x}" = 0
  assert "$label: still one pair after the pings" one_pair "$peer"
  log "$label: initiations crossed: $(($(crossings) - before))"
  stop_daemon a
}

# --- charon: a hand-made VTI on b (mark 1), the connection initiated by swanctl
ip -n b tunnel add sim mode vti local 192.0.2.12 remote 192.0.2.11 key 1
in_site b sysctl -qw net.ipv4.conf.sim.disable_policy=1
ip -n b link set sim up
ip -n b route add 10.1.1.0/24 dev sim src 10.2.1.1
charon_start b "connections {
$(swanctl_conn sim 192.0.2.12 192.0.2.11 "$IKE" sim "        local_ts = 10.2.1.0/24
        remote_ts = 10.1.1.0/24
        esp_proposals = $ESP
        mark_in = 1
        mark_out = 1")
}
secrets {
  ike-all { secret = \"$PSK\" }
}" && pass "charon started on site b"

capture_start a out "$IT_WORK/charon.pcap" 200
for ((n = 1; n <= ROUNDS; n++)); do
  round charon "$n" swanctl_in b --initiate --child sim --timeout 20
  assert "charon round $n: our SIGTERM leaves no SA on either end" retry 40 0.25 nothing_left
done
capture_stop
assert "charon rounds: only ESP and IKE on the outer link ($(only_esp "$IT_WORK/charon.pcap"))" only_esp "$IT_WORK/charon.pcap"
charon_kill b
ip -n b link del sim

# --- pluto: its XFRM interface ipsec1, no updown (the test routes)
pluto_start b "conn sim
  left=192.0.2.12
  right=192.0.2.11
  authby=secret
  ikev2=yes
  auto=add
  ipsec-interface=1
  leftupdown=/bin/true
  leftsubnet=10.2.1.0/24
  rightsubnet=10.1.1.0/24
  ike=aes_gcm256-sha2_512;dh19
  esp=aes_gcm256
" ": PSK \"$PSK\""
pass "pluto started on site b"
# pluto_up_and_routed: pluto initiates (or answers); b routes our LAN into ipsec1.
b_route() { ip -n b link set ipsec1 up 2>/dev/null && ip -n b route replace 10.1.1.0/24 dev ipsec1 src 10.2.1.1; }
pluto_initiate() {
  whack_in b --initiate --asynchronous --name sim
  retry 80 0.25 b_route
}
capture_start a out "$IT_WORK/pluto.pcap" 200
for ((n = 1; n <= ROUNDS; n++)); do
  # the route goes in as soon as ipsec1 exists, whoever initiated
  (retry 80 0.25 b_route) &
  round pluto "$n" pluto_initiate
  assert "pluto round $n: our SIGTERM leaves no SA on either end" retry 40 0.25 nothing_left
done
capture_stop
assert "pluto rounds: only ESP and IKE on the outer link ($(only_esp "$IT_WORK/pluto.pcap"))" only_esp "$IT_WORK/pluto.pcap"
pluto_kill b
ip -n b link del ipsec1 2>/dev/null || true
ip -n b route del 10.1.1.0/24 2>/dev/null || true

# --- routevpn on both ends, both daemons started at once (b's a little later each round)
rv_profile b 2 1
rvb_start() {
  (exec ip netns exec b "$ROUTEVPN" --config-dir "$IT_WORK/b/tunnels" \
    --state-dir "$IT_WORK/b/state" daemon >>"$IT_WORK/daemon-b.log" 2>&1) &
  echo "$!" >"$IT_WORK/daemon-b.pid"
  wait
}
capture_start a out "$IT_WORK/routevpn.pcap" 200
for ((n = 1; n <= ROUNDS; n++)); do
  round rvb "$n" rvb_start
  pid=$(cat "$IT_WORK/daemon-b.pid")
  kill -TERM "$pid" 2>/dev/null || true
  assert "routevpn round $n: both daemons stopped, no SA on either end" retry 40 0.25 nothing_left
done
capture_stop
assert "routevpn rounds: only ESP and IKE on the outer link ($(only_esp "$IT_WORK/routevpn.pcap"))" only_esp "$IT_WORK/routevpn.pcap"

total=$(crossings)
log "rounds in which the initiations crossed (site a's log): $total of $((3 * ROUNDS))"
grep -h "both ends initiated\|deleted by the peer\|initiating again\|IKE SA established" "$IT_WORK"/daemon-*.log | sed 's/^/    | /' | tail -40
if grep -q "$PSK" "$IT_WORK"/daemon-*.log; then fail "the PSK appears in a daemon log"; else pass "the PSK never appears in the daemon logs"; fi

it_finish
