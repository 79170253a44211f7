#!/usr/bin/env bash
# Crash safety and one apply at a time, on a real kernel with manual-key tunnels (VTI, GRE,
# XFRM interface; IPv4 and IPv6 outer):
# (a) `routevpn apply` killed with SIGKILL at random instants over 100+ runs while profiles
#     are added, changed and removed; every 10 runs and at the end one apply converges (the
#     next makes 0 changes), and with every profile removed nothing of routevpn's is left
#     (links, addresses, proto 210 routes, rules, XFRM, nftables table, sysctls);
# (b) three loops of apply / up / down in parallel: no run fails, the end state converges;
# (c) the daemon (IKE tunnels, IPv4 and IPv6 outer, against a routevpn peer) killed with
#     SIGKILL at random instants while it starts, negotiates and installs SAs: each new daemon
#     removes what the killed one left, the last one holds exactly its tunnels' SAs and
#     converges, and once stopped with every profile removed nothing of routevpn's is left.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/../lib.sh"
it_init 85-crash-safety

ROUTEVPN=${ROUTEVPN:-$PWD/target/debug/routevpn}
KILL_RUNS=${KILL_RUNS:-120}
LOOP_RUNS=${LOOP_RUNS:-20}
# Each phase stops early past its budget (TCG on a loaded host is many times slower).
KILL_BUDGET=${KILL_BUDGET:-240} LOOP_BUDGET=${LOOP_BUDGET:-180}
DAEMON_KILL_RUNS=${DAEMON_KILL_RUNS:-30} DAEMON_KILL_BUDGET=${DAEMON_KILL_BUDGET:-120}
modprobe -a ip_vti ip6_vti ip_gre xfrm_interface esp4 esp6 dummy

site_add a
site_add b
link_add a out 192.0.2.1/24 b out 192.0.2.2/24
in_site a ip addr add 2001:db8:85::1/64 dev out nodad
in_site b ip addr add 2001:db8:85::2/64 dev out nodad

CONF=$IT_WORK/tunnels SECRETS=$IT_WORK/secrets STATE=$IT_WORK/state
mkdir -p "$CONF" "$SECRETS" "$STATE"
chmod 700 "$SECRETS"
rv() { in_site a "$ROUTEVPN" --config-dir "$CONF" --state-dir "$STATE" "$@"; }
hexkey() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }

# keys NAME SPI ENC KEYBYTES: a manual keys file for one tunnel.
keys() {
  cat >"$SECRETS/$1.keys" <<EOF
[[sa]]
direction = "out"
spi = $2
encryption = "$3"
key = "0x$(hexkey "$4")"
[[sa]]
direction = "in"
spi = $(($2 + 0x1000))
encryption = "$3"
key = "0x$(hexkey "$4")"
EOF
  chmod 600 "$SECRETS/$1.keys"
}
keys vti4 0x101 aes128gcm16 20
keys gre4 0x102 aes128gcm16 20
keys xfrm6 0x103 aes256gcm16 36
keys vti6 0x104 aes128gcm16 20

# profile NAME MTU: writes the profile (MTU varies to change it between runs).
profile() {
  local name=$1 mtu=$2 kind=vti l=192.0.2.1 r=192.0.2.2 esp=aes128gcm16 lts='' rts='' addrs
  local routes=() route to src
  case $name in
    vti4) lts='"10.1.1.0/24"' rts='"10.2.1.0/24"' addrs='"10.1.1.1/32"'
      routes=("10.2.1.0/24 10.1.1.1") ;;
    gre4) kind=gre addrs='"172.16.85.1/30"' routes=("10.2.2.0/24") ;;
    xfrm6) kind=xfrm l=2001:db8:85::1 r=2001:db8:85::2 esp=aes256gcm16
      lts='"10.1.3.0/24", "fd00:85:1::/64"' rts='"10.2.3.0/24", "fd00:85:2::/64"'
      addrs='"10.1.3.1/32", "fd00:85:1::1/128"'
      routes=("10.2.3.0/24 10.1.3.1" "fd00:85:2::/64 fd00:85:1::1") ;;
    vti6) l=2001:db8:85::1 r=2001:db8:85::2 lts='"fd00:86:1::/64"' rts='"fd00:86:2::/64"'
      addrs='"fd00:86:1::1/128"' routes=("fd00:86:2::/64 fd00:86:1::1") ;;
  esac
  {
    printf 'kind = "%s"\nlocal = "%s"\nremote = "%s"\n' "$kind" "$l" "$r"
    printf '[ike]\nkeying = "manual"\nmanual_keys_file = "../secrets/%s.keys"\n' "$name"
    printf '[[child]]\nesp_proposals = ["%s"]\n' "$esp"
    if [[ -n $lts ]]; then printf 'local_ts = [%s]\nremote_ts = [%s]\n' "$lts" "$rts"; fi
    printf '[interface]\nname = "%s"\naddresses = [%s]\nmtu = %d\n' "$name" "$addrs" "$mtu"
    for route in "${routes[@]}"; do
      read -r to src <<<"$route"
      printf '[[route]]\nto = "%s"\n' "$to"
      if [[ -n $src ]]; then printf 'src = "%s"\n' "$src"; fi
    done
  } >"$CONF/$name.toml"
}
ALL=(vti4 gre4 xfrm6 vti6)
every_profile() { for n in "${ALL[@]}"; do profile "$n" 1400; done; }
# A random set of profiles (each present with probability 3/4), random MTUs.
shuffle_profiles() {
  rm -f "$CONF"/*.toml
  for n in "${ALL[@]}"; do
    if ((RANDOM % 4)); then profile "$n" $((1300 + RANDOM % 4 * 20)); fi
  done
}
export ROUTEVPN_TIMINGS=1
changes() { rv apply 2>>"$IT_WORK/apply.log" | sed -n 's/^apply: \([0-9]*\) change.*/\1/p'; }

# What the site holds that routevpn must give back exactly as found.
snapshot() {
  {
    echo "# links"
    in_site a ip -br link | awk '{print $1}' | sort
    echo "# addresses"
    in_site a ip -br addr | sort
    echo "# routes proto 210"
    in_site a ip route show table all proto 210
    in_site a ip -6 route show table all proto 210
    echo "# rules"
    in_site a ip rule
    in_site a ip -6 rule
    echo "# xfrm"
    in_site a ip xfrm policy
    in_site a ip xfrm state
    echo "# nftables"
    in_site a nft list tables
    echo "# sysctls"
    in_site a sysctl net.ipv6.conf.all.forwarding net.ipv4.ip_forward
    in_site a sysctl -a 2>/dev/null | grep -E '^net\.ipv[46]\.conf\.(all|default|out)\.' | sort
  } 2>&1
}
BEFORE=$IT_WORK/before.txt
snapshot >"$BEFORE"

# leaks LABEL: counts the lines that differ from the snapshot taken before the first apply.
LEAKS=0
check_clean() {
  snapshot >"$IT_WORK/after-$1.txt"
  local n
  n=$(diff "$BEFORE" "$IT_WORK/after-$1.txt" | grep -c '^[<>]' || true)
  LEAKS=$((LEAKS + n))
  if ((n == 0)); then
    pass "$1: nothing of routevpn's left"
  else
    fail "$1: $n lines differ from before: $(diff "$BEFORE" "$IT_WORK/after-$1.txt" | grep '^[<>]' | head -8 | tr '\n' ';')"
  fi
}

# converges LABEL: one apply, then a second that makes 0 changes.
converges() {
  local first second
  first=$(changes)
  second=$(changes)
  if [[ -n $first && $second == 0 ]]; then
    pass "$1: apply converges ($first changes, then 0)"
  else
    fail "$1: apply made '$first' then '$second' changes (see apply.log)"
  fi
}

# --- how long an apply of every profile takes once the binary and modules are warm: the
# kills land across that span
every_profile
assert "a first apply of every profile" rv apply
rm -f "$CONF"/*.toml
assert "teardown before the kills" rv apply
every_profile
start=$(date +%s%N)
assert "a timed apply of every profile" rv apply
span_ms=$((($(date +%s%N) - start) / 1000000))
log "a full apply takes ${span_ms} ms; killing up to ${KILL_RUNS} runs (budget ${KILL_BUDGET} s)"

# --- (a) SIGKILL at random instants. Half the runs die at a uniform instant of the whole
# run (mostly start-up under TCG), half at a random instant once the run has recorded its
# intent, i.e. among its kernel writes.
FIFO=$IT_WORK/nap.fifo
mkfifo "$FIFO"
exec 9<>"$FIFO"
nap_ms() { read -r -t "$(printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)))" -u 9 || true; }
killed=0 writing=0 finished=0 t0=$SECONDS
for ((run = 1; run <= KILL_RUNS && SECONDS - t0 < KILL_BUDGET; run++)); do
  shuffle_profiles
  : >"$IT_WORK/started"
  in_site a "$ROUTEVPN" --config-dir "$CONF" --state-dir "$STATE" apply >>"$IT_WORK/apply.log" 2>&1 &
  pid=$!
  if ((run % 2)); then
    nap_ms $((RANDOM % (span_ms / 2 + 1)))
  else
    while kill -0 "$pid" 2>/dev/null && ! [[ $STATE/state.json -nt $IT_WORK/started ]]; do nap_ms 10; done
    nap_ms $((RANDOM % (span_ms / 20 + 1)))
  fi
  # Recorded before the kill lands: did the run get as far as its kernel writes?
  intent=0
  if [[ $STATE/state.json -nt $IT_WORK/started ]]; then intent=1; fi
  kill -9 "$pid" 2>/dev/null || true
  # Only a run that dies of the SIGKILL (status 137) counts as killed.
  status=0
  wait "$pid" 2>/dev/null || status=$?
  if ((status == 137)); then
    killed=$((killed + 1)) writing=$((writing + intent))
  else
    finished=$((finished + 1))
  fi
  if ((run % 25 == 0)); then converges "after kill run $run"; fi
done
runs=$((run - 1))
log "runs killed: $killed of $runs ($writing after recording their intent, $finished finished first) in $((SECONDS - t0)) s"
# How many die mid-way depends on the host's speed; some must have died among their writes.
assert "runs were killed among their kernel writes ($writing of $runs)" test "$writing" -gt 0
shuffle_profiles
converges "after the last kill"
rm -f "$CONF"/*.toml
assert "apply with every profile removed" rv apply
check_clean "after the kills"

# --- (b) three loops in parallel: apply, up/down vti4, down/up xfrm6
every_profile
assert "apply before the parallel loops" rv apply
loop() {
  local i failed=0 runs=0
  for ((i = 0; i < LOOP_RUNS && SECONDS - t0 < LOOP_BUDGET; i++)); do
    for cmd in "$@"; do
      read -ra words <<<"$cmd"
      runs=$((runs + 1))
      rv "${words[@]}" >>"$IT_WORK/loop.log" 2>&1 || { failed=$((failed + 1)); echo "FAILED: $cmd" >>"$IT_WORK/loop.log"; }
    done
  done
  echo "$runs $failed"
}
t0=$SECONDS
loop "apply" >"$IT_WORK/loop1" &
p1=$!
loop "down vti4" "up vti4" >"$IT_WORK/loop2" &
p2=$!
loop "up xfrm6" "down xfrm6" >"$IT_WORK/loop3" &
p3=$!
wait "$p1" "$p2" "$p3"
concurrent=0 failed=0
for f in "$IT_WORK"/loop[123]; do
  read -r r n <"$f"
  concurrent=$((concurrent + r)) failed=$((failed + n))
done
waits=$(grep -c "waiting for another routevpn" "$IT_WORK/loop.log" || true)
log "concurrent runs: $concurrent, failed: $failed, waited for another: $waits, in $((SECONDS - t0)) s"
assert "no concurrent run failed ($failed of $concurrent)" test "$failed" = 0
assert "some runs waited for another and said so ($waits)" test "$waits" -gt 0
converges "after the parallel loops"
rm -f "$CONF"/*.toml
assert "apply with every profile removed" rv apply
check_clean "after the parallel loops"

# --- (c) the daemon killed at random instants. Site a's daemon initiates two IKE tunnels
# (a VTI over IPv4, an XFRM interface over IPv6 carrying both families); site b's daemon
# answers (start and close action none: it never initiates) and stays up throughout.
PSK=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')
# ike_site SITE L4 R4 L6 R6 LNET RNET START: the IKE profiles and PSK of one site.
ike_site() {
  local site=$1 l4=$2 r4=$3 l6=$4 r6=$5 ln=$6 rn=$7 start=$8 dir=$IT_WORK/d-$1
  mkdir -p "$dir/tunnels" "$dir/secrets" "$dir/state"
  chmod 700 "$dir/secrets"
  printf '%s\n' "$PSK" >"$dir/secrets/psk"
  chmod 600 "$dir/secrets/psk"
  cat >"$dir/tunnels/ike4.toml" <<EOF
kind = "vti"
local = "$l4"
remote = "$r4"
[ike]
proposals = ["aes128gcm16-prfsha256-x25519"]
psk_file = "../secrets/psk"
start_action = "$start"
close_action = "$start"
[[child]]
local_ts = ["10.$ln.7.0/24"]
remote_ts = ["10.$rn.7.0/24"]
esp_proposals = ["aes128gcm16"]
[interface]
name = "ike4"
addresses = ["10.$ln.7.1/32"]
[[route]]
to = "10.$rn.7.0/24"
src = "10.$ln.7.1"
EOF
  cat >"$dir/tunnels/ike6.toml" <<EOF
kind = "xfrm"
local = "$l6"
remote = "$r6"
[ike]
proposals = ["aes256gcm16-prfsha384-ecp256"]
psk_file = "../secrets/psk"
start_action = "$start"
close_action = "$start"
[[child]]
local_ts = ["10.$ln.8.0/24", "fd00:87:$ln::/64"]
remote_ts = ["10.$rn.8.0/24", "fd00:87:$rn::/64"]
esp_proposals = ["aes256gcm16"]
[interface]
name = "ike6"
addresses = ["10.$ln.8.1/32", "fd00:87:$ln::1/128"]
[[route]]
to = "10.$rn.8.0/24"
src = "10.$ln.8.1"
[[route]]
to = "fd00:87:$rn::/64"
src = "fd00:87:$ln::1"
EOF
}
ike_site a 192.0.2.1 192.0.2.2 2001:db8:85::1 2001:db8:85::2 1 2 start
ike_site b 192.0.2.2 192.0.2.1 2001:db8:85::2 2001:db8:85::1 2 1 none
rvd() {
  local site=$1
  shift
  in_site "$site" "$ROUTEVPN" --config-dir "$IT_WORK/d-$site/tunnels" --state-dir "$IT_WORK/d-$site/state" "$@"
}
# daemon_run SITE: starts SITE's daemon; DAEMON_PID is the daemon itself (exec all the way).
daemon_run() {
  (exec ip netns exec "$1" "$ROUTEVPN" --config-dir "$IT_WORK/d-$1/tunnels" \
    --state-dir "$IT_WORK/d-$1/state" daemon >>"$IT_WORK/daemon-$1.log" 2>&1) &
  DAEMON_PID=$!
  IT_PIDS+=("$DAEMON_PID")
}
installed() {
  rvd a status --json 2>/dev/null | python3 -c '
import json, sys
s = json.load(sys.stdin)
print(sum(c["state"] == "INSTALLED" for sa in s["ike_sas"] if sa["state"] == "ESTABLISHED" for c in sa["children"]))'
}
both_installed() { test "$(installed)" = 2; }
daemon_run b
DAEMON_B=$DAEMON_PID
if retry 100 0.2 rvd b status --json >/dev/null 2>&1; then pass "site b's daemon answers"; else fail "site b's daemon did not start"; fi
# How long a daemon takes from its start to both tunnels installed: the kills land across it.
start=$(date +%s%N)
daemon_run a
assert "a first daemon brings both tunnels up" retry 300 0.1 both_installed
daemon_ms=$((($(date +%s%N) - start) / 1000000))
assert "both SA pairs are in site a's kernel" test "$(sa_count a)" = 4
log "a daemon takes ${daemon_ms} ms to install both tunnels; killing up to ${DAEMON_KILL_RUNS} daemons (budget ${DAEMON_KILL_BUDGET} s)"
daemon_killed=0 with_sas=0 t0=$SECONDS
for ((run = 1; run <= DAEMON_KILL_RUNS && SECONDS - t0 < DAEMON_KILL_BUDGET; run++)); do
  kill -KILL "$DAEMON_PID" 2>/dev/null || true
  wait "$DAEMON_PID" 2>/dev/null || true
  daemon_run a
  # A uniform instant over 1.5 times the start-up span: some kills find everything up.
  nap_ms $((RANDOM * daemon_ms * 3 / 2 / 32768))
  if kill -0 "$DAEMON_PID" 2>/dev/null; then
    daemon_killed=$((daemon_killed + 1))
    if (($(sa_count a) > 0)); then with_sas=$((with_sas + 1)); fi
  fi
done
kill -KILL "$DAEMON_PID" 2>/dev/null || true
wait "$DAEMON_PID" 2>/dev/null || true
log "daemons killed: $daemon_killed of $((run - 1)) ($with_sas with SAs in the kernel) in $((SECONDS - t0)) s"
assert "daemons were killed with SAs in the kernel ($with_sas)" test "$with_sas" -gt 0
daemon_run a
assert "the daemon after the kills brings both tunnels up" retry 300 0.1 both_installed
exactly_ours() { test "$(sa_count a)/$(sa_count b)" = 4/4; }
if retry 100 0.2 exactly_ours; then
  pass "after the kills each site holds exactly its 4 SAs (none left by a killed daemon)"
else
  fail "after the kills: site a holds $(sa_count a) SAs, site b $(sa_count b), wanted 4/4"
fi
assert "ping over the IPv4 tunnel" ping_from a 10.1.7.1 10.2.7.1
assert "IPv4 over the IPv6 tunnel" ping_from a 10.1.8.1 10.2.8.1
assert "IPv6 over the IPv6 tunnel" ping_from a fd00:87:1::1 fd00:87:2::1
kill -TERM "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null || true
no_sas() { test "$(sa_count a)/$(sa_count b)" = 0/0; }
if retry 100 0.2 no_sas; then pass "a stopped daemon leaves no SA on either site"; else fail "SAs left after the stop: $(sa_count a)/$(sa_count b)"; fi
# The stopped daemon leaves its fail-closed dataplane, which must be exactly the plan.
d_changes=$(rvd a apply 2>>"$IT_WORK/apply.log" | sed -n 's/^apply: \([0-9]*\) change.*/\1/p')
assert "the dataplane left by the last daemon is the plan (an apply makes '$d_changes' changes)" test "$d_changes" = 0
rm -f "$IT_WORK/d-a/tunnels"/*.toml
assert "apply with every profile removed" rvd a apply
check_clean "after the daemon kills"
kill -TERM "$DAEMON_B"
wait "$DAEMON_B" 2>/dev/null || true

log "summary: runs killed $killed ($writing among their kernel writes), leaks found $LEAKS, concurrent runs failed $failed of $concurrent, daemons killed $daemon_killed ($with_sas with SAs in the kernel)"
