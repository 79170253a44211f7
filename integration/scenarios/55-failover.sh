#!/usr/bin/env bash
# Primary/backup tunnels with on_sa_loss = "withdraw" between two routevpn daemons (the
# two-tunnel cloud VPN): both VTIs carry 10.70.0.0/16, the primary with the lower metric.
# When the primary loses its CHILD SA (the peer takes it down; later, the peer goes silent
# and DPD gives up) its device goes down and its route is withdrawn: traffic moves to the
# backup, a CLI apply changes nothing behind the daemon's back, and when the primary is
# back so is its route. Failover and failback times are printed.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/../lib.sh"
it_init 55-failover

ROUTEVPN=${ROUTEVPN:-$PWD/target/debug/routevpn}
modprobe -a ip_vti esp4 dummy

site_add a
site_add b
link_add a out 192.0.2.1/24 b out 192.0.2.2/24
for i in 11 21; do
  ip -n a addr add 192.0.2.$i/24 dev out
  ip -n b addr add 192.0.2.$((i + 1))/24 dev out
done
lan_add a lan 10.1.0.1/24
lan_add b lan 10.70.1.1/24

# profile SITE NAME LOCAL REMOTE LOCAL_NET REMOTE_NET METRIC
profile() {
  local dir=$IT_WORK/$1
  cat >"$dir/tunnels/$2.toml" <<EOF
kind = "vti"
local = "192.0.2.$3"
remote = "192.0.2.$4"
on_sa_loss = "withdraw"
[ike]
proposals = ["aes128gcm16-prfsha256-x25519"]
psk_file = "../secrets/psk"
dpd = { delay = "2s", timeout = "8s", action = "restart" }
[[child]]
local_ts = ["$5"]
remote_ts = ["$6"]
esp_proposals = ["aes128gcm16"]
[interface]
name = "$2"
[[route]]
to = "$6"
metric = $7
EOF
}
rv_sites_init a b
profile a vti-p 11 12 10.1.0.0/24 10.70.0.0/16 100
profile a vti-s 21 22 10.1.0.0/24 10.70.0.0/16 200
profile b vti-p 12 11 10.70.0.0/16 10.1.0.0/24 100
profile b vti-s 22 21 10.70.0.0/16 10.1.0.0/24 200

assert "the primary/backup profiles check" rv_at a check
rv_daemon_at a
rv_daemon_at b
children_on() {
  rv_at "$1" status --json |
    python3 -c "import json,sys; s=json.load(sys.stdin); print(sum(len(sa['children']) for sa in s['ike_sas'] if sa['name']=='$2' and sa['state']=='ESTABLISHED'))"
}
both_up() { test "$(children_on a vti-p)/$(children_on a vti-s)" = 1/1; }
assert "both tunnels negotiated" retry 150 0.2 both_up
via() { in_site a ip route get 10.70.1.1 | grep -o 'dev [a-z-]*' | cut -d' ' -f2; }
routed_via() { test "$(via)" = "$1"; }
assert "10.70/16 goes through the primary" retry 50 0.2 routed_via vti-p
assert "ping through the primary" ping_from a 10.1.0.1 10.70.1.1 3
link_up() { in_site a ip -br link show "$1" | holds -qw UP; }

# moved_to DEV STARTED LABEL [TRIES]: waits until 10.70/16 leaves through DEV (TRIES
# lookups 0.1 s apart); logs how long it took.
moved_to() {
  local dev=$1 started=$2 label=$3 tries=${4:-300} ms
  if retry "$tries" 0.1 routed_via "$dev"; then
    ms=$((($(date +%s%N) - started) / 1000000))
    log "$label: traffic through $dev after $ms ms"
    pass "$label: 10.70/16 moved to $dev (${ms} ms)"
  else
    fail "$label: 10.70/16 still goes through $(via)"
  fi
}

# --- the peer takes the primary down: its DELETE withdraws our primary
t=$(date +%s%N)
assert "site b takes vti-p down" rv_at b down vti-p
moved_to vti-s "$t" "peer's delete"
assert "...vti-p is down on site a" sh -c "! ip -n a -br link show vti-p | grep -qw UP"
assert "ping through the backup" ping_from a 10.1.0.1 10.70.1.1 3
# With the daemon running, `apply` has it reload; the plan knows the primary is withdrawn.
applied_keeps() { rv_at a apply >/dev/null && routed_via "$1"; }
assert "a CLI apply (a daemon reload) keeps the primary withdrawn" applied_keeps vti-s
assert "...and its device down" sh -c "! ip -n a -br link show vti-p | grep -qw UP"
t=$(date +%s%N)
assert "site b brings vti-p up again" rv_at b up vti-p
moved_to vti-p "$t" "failback"
assert "...vti-p is up on site a" link_up vti-p
assert "ping through the primary again" ping_from a 10.1.0.1 10.70.1.1 3

# --- the primary's far end goes silent (IKE and ESP from a's primary address dropped on
# b): DPD gives up and the backup takes over; the primary returns when the path does.
in_site b nft -f - <<'NFT'
table inet blackout {
  chain input { type filter hook input priority -10; ip saddr 192.0.2.11 drop; }
}
NFT
t=$(date +%s%N)
moved_to vti-s "$t" "silent peer (DPD 2 s + 8 s)"
assert "ping through the backup while the primary's path is dead" ping_from a 10.1.0.1 10.70.1.1 3
in_site b nft delete table inet blackout
t=$(date +%s%N)
# Restarts after a failed attempt come every 30 s.
moved_to vti-p "$t" "path back (DPD restart, retries)" 900
assert "ping through the primary at the end" ping_from a 10.1.0.1 10.70.1.1 3
assert "a CLI apply after all that keeps the primary" applied_keeps vti-p
