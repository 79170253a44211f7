#!/usr/bin/env bash
# Crash safety and one apply at a time, on a real kernel with manual-key tunnels (VTI, GRE,
# XFRM interface; IPv4 and IPv6 outer):
# (a) `routevpn apply` killed with SIGKILL at random instants over 100+ runs while profiles
#     are added, changed and removed; every 10 runs and at the end one apply converges (the
#     next makes 0 changes), and with every profile removed nothing of routevpn's is left
#     (links, addresses, proto 210 routes, rules, XFRM, nftables table, sysctls);
# (b) three loops of apply / up / down in parallel: no run fails, the end state converges.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/../lib.sh"
it_init 85-crash-safety

ROUTEVPN=${ROUTEVPN:-$PWD/target/debug/routevpn}
KILL_RUNS=${KILL_RUNS:-120}
LOOP_RUNS=${LOOP_RUNS:-50}
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
  local name=$1 mtu=$2
  case $name in
    vti4) cat <<EOF ;;
kind = "vti"
local = "192.0.2.1"
remote = "192.0.2.2"
[ike]
keying = "manual"
manual_keys_file = "../secrets/vti4.keys"
[[child]]
local_ts = ["10.1.1.0/24"]
remote_ts = ["10.2.1.0/24"]
esp_proposals = ["aes128gcm16"]
[interface]
name = "vti4"
addresses = ["10.1.1.1/32"]
mtu = $mtu
[[route]]
to = "10.2.1.0/24"
src = "10.1.1.1"
EOF
    gre4) cat <<EOF ;;
kind = "gre"
local = "192.0.2.1"
remote = "192.0.2.2"
[ike]
keying = "manual"
manual_keys_file = "../secrets/gre4.keys"
[[child]]
esp_proposals = ["aes128gcm16"]
[interface]
name = "gre4"
addresses = ["172.16.85.1/30"]
mtu = $mtu
[[route]]
to = "10.2.2.0/24"
EOF
    xfrm6) cat <<EOF ;;
kind = "xfrm"
local = "2001:db8:85::1"
remote = "2001:db8:85::2"
[ike]
keying = "manual"
manual_keys_file = "../secrets/xfrm6.keys"
[[child]]
local_ts = ["10.1.3.0/24", "fd00:85:1::/64"]
remote_ts = ["10.2.3.0/24", "fd00:85:2::/64"]
esp_proposals = ["aes256gcm16"]
[interface]
name = "xfrm6"
addresses = ["10.1.3.1/32", "fd00:85:1::1/128"]
mtu = $mtu
[[route]]
to = "10.2.3.0/24"
src = "10.1.3.1"
[[route]]
to = "fd00:85:2::/64"
src = "fd00:85:1::1"
EOF
    vti6) cat <<EOF ;;
kind = "vti"
local = "2001:db8:85::1"
remote = "2001:db8:85::2"
[ike]
keying = "manual"
manual_keys_file = "../secrets/vti6.keys"
[[child]]
local_ts = ["fd00:86:1::/64"]
remote_ts = ["fd00:86:2::/64"]
esp_proposals = ["aes128gcm16"]
[interface]
name = "vti6"
addresses = ["fd00:86:1::1/128"]
mtu = $mtu
[[route]]
to = "fd00:86:2::/64"
src = "fd00:86:1::1"
EOF
  esac >"$CONF/$name.toml"
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

# --- how long an apply of every profile takes: the kills land across that span
every_profile
start=$(date +%s%N)
assert "a first apply of every profile" rv apply
span_ms=$((($(date +%s%N) - start) / 1000000))
rm -f "$CONF"/*.toml
assert "teardown before the kills" rv apply
log "a full apply takes ${span_ms} ms; killing ${KILL_RUNS} runs within $((span_ms * 5 / 4)) ms of their start"

# --- (a) SIGKILL at random instants
killed=0 finished=0
for ((run = 1; run <= KILL_RUNS; run++)); do
  shuffle_profiles
  in_site a "$ROUTEVPN" --config-dir "$CONF" --state-dir "$STATE" apply >>"$IT_WORK/apply.log" 2>&1 &
  pid=$!
  delay_ms=$((RANDOM % (span_ms * 5 / 4 + 1)))
  sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
  if kill -9 "$pid" 2>/dev/null; then killed=$((killed + 1)); fi
  if wait "$pid" 2>/dev/null; then finished=$((finished + 1)); fi
  if ((run % 10 == 0)); then converges "after kill run $run"; fi
done
log "runs killed: $killed of $KILL_RUNS ($finished finished before their kill)"
assert "most runs were killed mid-way (killed $killed of $KILL_RUNS)" test $((killed * 2)) -gt "$KILL_RUNS"
shuffle_profiles
converges "after the last kill"
rm -f "$CONF"/*.toml
assert "apply with every profile removed" rv apply
check_clean "after the kills"

# --- (b) three loops in parallel: apply, up/down vti4, down/up xfrm6
every_profile
assert "apply before the parallel loops" rv apply
loop() {
  local i failed=0
  for ((i = 0; i < LOOP_RUNS; i++)); do
    for cmd in "$@"; do
      read -ra words <<<"$cmd"
      rv "${words[@]}" >>"$IT_WORK/loop.log" 2>&1 || { failed=$((failed + 1)); echo "FAILED: $cmd" >>"$IT_WORK/loop.log"; }
    done
  done
  echo "$failed"
}
loop "apply" >"$IT_WORK/loop1" &
p1=$!
loop "down vti4" "up vti4" >"$IT_WORK/loop2" &
p2=$!
loop "up xfrm6" "down xfrm6" >"$IT_WORK/loop3" &
p3=$!
wait "$p1" "$p2" "$p3"
failed=$(($(cat "$IT_WORK/loop1") + $(cat "$IT_WORK/loop2") + $(cat "$IT_WORK/loop3")))
waits=$(grep -c "waiting for another routevpn" "$IT_WORK/loop.log" || true)
log "concurrent runs: $((LOOP_RUNS * 5)), failed: $failed, waited for another: $waits"
assert "no concurrent run failed ($failed of $((LOOP_RUNS * 5)))" test "$failed" = 0
assert "some runs waited for another and said so ($waits)" test "$waits" -gt 0
converges "after the parallel loops"
rm -f "$CONF"/*.toml
assert "apply with every profile removed" rv apply
check_clean "after the parallel loops"

log "summary: runs killed $killed, leaks found $LEAKS, concurrent runs failed $failed"
