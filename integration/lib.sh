# shellcheck shell=bash
# Helpers for in-VM kernel scenarios. Source it, then call `it_init NAME`.
#
# Network rule: scenarios only ever send traffic to addresses inside the
# namespaces they create here (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24,
# 10.x) or to loopback.
#
# Every namespace, charon and capture started through these helpers is torn
# down by the EXIT trap, which also prints the "N passed, M failed" line and
# records the counts for run-all.sh.

# -E: the ERR trap must also fire inside helper functions.
set -Eeuo pipefail

CHARON=${CHARON:-/usr/lib/ipsec/charon}
# Explicit plugin list (load_modular = no): the packaged per-plugin
# /etc/strongswan.d snippets are ignored, so the set is the same everywhere.
# openssl brings modp, ecp, x25519 (there is no curve25519 plugin in Debian's
# libstrongswan) and aes-gcm; kdf: see charon_start.
CHARON_PLUGINS=${CHARON_PLUGINS:-"random nonce aes sha1 sha2 hmac kdf gcm gmp openssl pem pkcs1 x509 pubkey kernel-netlink socket-default vici updown"}

IT_PASS=0
IT_FAIL=0
IT_MAIN_PID=$BASHPID
IT_NAME=
IT_WORK=
IT_SITES=()
IT_PIDS=()

log() { printf '[%s] %s\n' "$(date +%T)" "$*"; }

pass() {
  IT_PASS=$((IT_PASS + 1))
  printf 'PASS: %s\n' "$*"
}

fail() {
  IT_FAIL=$((IT_FAIL + 1))
  printf 'FAIL: %s\n' "$*"
}

# assert DESCRIPTION CMD [ARGS...]: run CMD; pass if it succeeds. CMD's output
# is shown only on failure, to keep the log readable.
assert() {
  local desc=$1 out
  shift
  if out=$("$@" 2>&1); then
    pass "$desc"
  else
    fail "$desc (exit $?: $*)"
    [[ -z $out ]] || printf '%s\n' "$out" | sed 's/^/    | /'
  fi
}

# assert_not DESCRIPTION CMD [ARGS...]: pass if CMD fails.
assert_not() {
  local desc=$1
  shift
  if "$@" >/dev/null 2>&1; then fail "$desc (unexpectedly succeeded: $*)"; else pass "$desc"; fi
}

# holds GREP_ARGS...: grep over its whole input, read first. `producer | grep -q` stops
# reading at the first match; a producer still writing then dies of SIGPIPE, and under
# pipefail the check fails (exit 141) although it matched.
holds() {
  local input
  input=$(cat)
  grep "$@" <<<"$input"
}

# retry TRIES DELAY CMD...: for conditions that settle asynchronously
# (daemons coming up, SAs being installed).
retry() {
  local tries=$1 delay=$2 i
  shift 2
  for ((i = 1; i <= tries; i++)); do
    if "$@"; then return 0; fi
    ((i == tries)) || sleep "$delay"
  done
  return 1
}

it_init() {
  IT_NAME=$1
  IT_MAIN_PID=$BASHPID
  IT_WORK=$(mktemp -d "/tmp/it-$IT_NAME.XXXXXX")
  trap 'it_abort "${BASH_SOURCE[0]##*/}:$LINENO${FUNCNAME[0]:+ in ${FUNCNAME[0]}}" "$BASH_COMMAND"' ERR
  trap it_finish EXIT
  log "scenario $IT_NAME (work dir $IT_WORK)"
}

# set -e would end the scenario silently; say where, and count it as a failure.
# Only in the scenario's own shell: with -E the trap also fires inside $(...)
# and would print into the captured value; the failed substitution then
# trips the trap in the main shell anyway.
it_abort() {
  [[ $BASHPID == "$IT_MAIN_PID" ]] || return 0
  fail "aborted at $1: $2"
}

it_cleanup() {
  local pid site
  for pid in "${IT_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${IT_PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  IT_PIDS=()
  for site in "${IT_SITES[@]}"; do
    site_del "$site"
  done
}

it_finish() {
  local rc=$?
  trap - ERR EXIT
  set +e
  if ((rc != 0 && IT_FAIL == 0)); then fail "exited with status $rc"; fi
  it_cleanup
  # Keep logs and captures where the host can read them.
  if [[ -n ${RESULTS_DIR:-} && -d $RESULTS_DIR ]]; then
    rm -rf "${RESULTS_DIR:?}/$IT_NAME"
    mkdir -p "$RESULTS_DIR/$IT_NAME"
    (cd "$IT_WORK" && find . -maxdepth 2 \( -name '*.log' -o -name '*.pcap' -o -name '*.conf' \) \
      -exec cp --parents -t "$RESULTS_DIR/$IT_NAME" {} +)
    printf '%s %d %d\n' "$IT_NAME" "$IT_PASS" "$IT_FAIL" >>"$RESULTS_DIR/counts"
  fi
  echo "$IT_PASS passed, $IT_FAIL failed"
  ((IT_FAIL == 0)) && exit 0
  exit 1
}

# --- sites: network namespaces -------------------------------------------

site_add() {
  local site=$1
  ip netns add "$site"
  IT_SITES+=("$site")
  ip -n "$site" link set lo up
}

site_del() {
  local site=$1 pids
  # Anything still running in the namespace (charon, tcpdump) goes first.
  pids=$(ip netns pids "$site" 2>/dev/null || true)
  if [[ -n $pids ]]; then
    # shellcheck disable=SC2086 # a list of pids
    kill $pids 2>/dev/null || true
    sleep 0.5
  fi
  # Under run-all, a process keeps the namespace alive until the VM ends, and only the name
  # goes. The kernel cleans namespaces up one batch at a time, and holds every later
  # `ip netns add` and module load while it does: a device that never unregistered there
  # (`out` with 3 references, seen twice, each time just after 75 ended; trigger unknown)
  # stalled the whole run until its timeout.
  if [[ -n ${IT_KEEP_NAMESPACES:-} ]]; then
    setsid ip netns exec "$site" sleep infinity </dev/null >/dev/null 2>&1 &
    local tries=100
    until [[ -n $(ip netns pids "$site" 2>/dev/null) ]] || ((--tries == 0)); do sleep 0.05; done
  fi
  ip netns del "$site" 2>/dev/null || true
  local kept=() s
  for s in "${IT_SITES[@]}"; do [[ $s == "$site" ]] || kept+=("$s"); done
  IT_SITES=("${kept[@]}")
}

# in_site SITE CMD...: run CMD inside SITE's network namespace.
in_site() {
  local site=$1
  shift
  ip netns exec "$site" "$@"
}

# link_add SITE_A IF_A ADDR_A/LEN SITE_B IF_B ADDR_B/LEN: veth pair between
# two sites, addressed and up.
link_add() {
  local sa=$1 ia=$2 aa=$3 sb=$4 ib=$5 ab=$6
  ip link add "$ia" netns "$sa" type veth peer name "$ib" netns "$sb"
  ip -n "$sa" addr add "$aa" dev "$ia"
  ip -n "$sb" addr add "$ab" dev "$ib"
  ip -n "$sa" link set "$ia" up
  ip -n "$sb" link set "$ib" up
}

# lan_add SITE IF ADDR/LEN: a dummy interface standing for a site's LAN.
lan_add() {
  local site=$1 ifname=$2 addr=$3
  ip -n "$site" link add "$ifname" type dummy
  ip -n "$site" addr add "$addr" dev "$ifname"
  ip -n "$site" link set "$ifname" up
}

# ping_from SITE SRC DST [COUNT]: bounded ping, all replies required.
ping_from() {
  local site=$1 src=$2 dst=$3 count=${4:-3}
  in_site "$site" ping -n -q -c "$count" -i 0.2 -W 2 -w 10 -I "$src" "$dst"
}

# --- strongSwan --------------------------------------------------------

charon_dir() { printf '%s/charon-%s' "$IT_WORK" "$1"; }
charon_uri() { printf 'unix://%s/charon.vici' "$(charon_dir "$1")"; }

# Without kdf, charon 5.9.8 fails every IKE_SA with "KDF_PRF with
# PRF_HMAC_SHA2_256 not supported" (openssl does not stand in for it).
# charon_start SITE SWANCTL_CONF_TEXT: start a charon inside SITE with its own
# strongswan.conf, swanctl.conf, VICI socket and a private /run (charon keeps
# its pid file and default sockets there, and refuses to start if another
# charon's pid file is found), then load the connections and secrets.
charon_start() {
  local site=$1 swanctl_text=$2 dir
  dir=$(charon_dir "$site")
  mkdir -p "$dir"
  cat >"$dir/strongswan.conf" <<EOF
charon {
  load_modular = no
  load = $CHARON_PLUGINS
  # Route-based: routes point at the tunnel interface, set by the test.
  install_routes = no
  install_virtual_ip = no
  retransmit_tries = 3
  plugins {
    vici { socket = $(charon_uri "$site") }
  }
  filelog {
    log {
      path = $dir/charon.log
      # filelog is stdio-buffered by default: an abort would lose the tail.
      flush_line = yes
      time_format = %T
      default = 1
      ike = 2
      cfg = 2
      knl = 2
    }
  }
}
# swanctl's default plugin list names plugins Debian does not ship and
# complains about each one; it only needs these to parse its config.
swanctl {
  load = pem pkcs1 x509 pubkey random nonce openssl
  socket = $(charon_uri "$site")
}
EOF
  printf '%s\n' "$swanctl_text" >"$dir/swanctl.conf"
  # unshare -m inside the netns: a private mount namespace whose /run is a
  # fresh tmpfs, so two charons never see each other's pid file or sockets.
  # shellcheck disable=SC2016 # $1/$2 are expanded by the inner sh
  ip netns exec "$site" unshare -m --propagation private sh -c \
    'mount -t tmpfs -o mode=0755 tmpfs /run && exec env STRONGSWAN_CONF="$1" "$2"' \
    charon "$dir/strongswan.conf" "$CHARON" >>"$dir/charon.stdout.log" 2>&1 &
  IT_PIDS+=("$!")
  # ip, unshare, sh and env all exec: this is charon's own pid, for charon_kill.
  printf '%s\n' "$!" >"$dir/pid"
  if ! retry 50 0.2 swanctl_in "$site" --stats >/dev/null 2>&1; then
    echo "charon in $site did not come up; log follows" >&2
    tail -n 30 "$dir/charon.log" "$dir/charon.stdout.log" >&2 || true
    return 1
  fi
  if ! swanctl_in "$site" --load-all --file "$dir/swanctl.conf" >"$dir/load.log" 2>&1; then
    cat "$dir/load.log" >&2
    return 1
  fi
}

# --- a routevpn daemon on site a, the side these scenarios test ------------

# rv_site_a_init: sets A (site a's routevpn directories, made here) and PSK, a fresh
# pre-shared key written to $A/secrets/psk with the modes routevpn insists on.
rv_site_a_init() {
  rv_sites_init a
  A=$IT_WORK/a
}

# --- routevpn on several sites: directories $IT_WORK/SITE/{tunnels,secrets,state} -----

# rv_sites_init SITE...: each SITE's directories, and a fresh pre-shared key $PSK (one for
# all) in SITE/secrets/psk with the modes routevpn insists on.
rv_sites_init() {
  local site
  PSK=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')
  for site; do
    mkdir -p "$IT_WORK/$site/tunnels" "$IT_WORK/$site/secrets" "$IT_WORK/$site/state"
    chmod 700 "$IT_WORK/$site/secrets"
    printf '%s\n' "$PSK" >"$IT_WORK/$site/secrets/psk"
    chmod 600 "$IT_WORK/$site/secrets/psk"
  done
}

# rv_at SITE ARGS...: the routevpn CLI on SITE with SITE's directories.
rv_at() {
  local site=$1
  shift
  in_site "$site" "$ROUTEVPN" --config-dir "$IT_WORK/$site/tunnels" --state-dir "$IT_WORK/$site/state" "$@"
}

# rv_daemon_at SITE: `routevpn daemon` on SITE with SITE's directories, logging to
# $IT_WORK/daemon-SITE.log, its pid in RV_DAEMON[SITE]; passes once it answers. Not to be
# run in a subshell: cleanup needs the pid in IT_PIDS.
declare -A RV_DAEMON=()
rv_daemon_at() {
  local site=$1
  (exec ip netns exec "$site" "$ROUTEVPN" --config-dir "$IT_WORK/$site/tunnels" \
    --state-dir "$IT_WORK/$site/state" daemon >>"$IT_WORK/daemon-$site.log" 2>&1) &
  IT_PIDS+=("$!")
  RV_DAEMON[$site]=$!
  assert "daemon on site $site answers" retry 100 0.2 rv_at "$site" status --json
}

# rv_daemon_start: `routevpn daemon` in site a with profiles in $A/tunnels and state in
# $A/state, logging to $IT_WORK/daemon-a.log; passes once its control socket exists.
# Not to be run in a subshell (such as assert's): cleanup needs the pid in IT_PIDS.
rv_daemon_start() {
  (exec ip netns exec a "$ROUTEVPN" --config-dir "$A/tunnels" --state-dir "$A/state" daemon \
    >"$IT_WORK/daemon-a.log" 2>&1) &
  IT_PIDS+=("$!")
  if retry 100 0.2 test -S "$A/state/routevpn.sock"; then
    pass "routevpn daemon on site a answers"
  else
    fail "routevpn daemon did not start"
    sed 's/^/    | /' "$IT_WORK/daemon-a.log"
  fi
}
# rv ARGS: the routevpn CLI on site a; ours EXPR: EXPR (Python, `s` = status --json).
rv() { in_site a "$ROUTEVPN" --config-dir "$A/tunnels" --state-dir "$A/state" "$@"; }
ours() {
  rv status --json | python3 -c "import json,sys; s=json.load(sys.stdin); print($1)"
}

# swanctl_conf NAME LOCAL REMOTE IKE CHILD...: swanctl.conf text for one connection with
# PSK $PSK and the addresses as identities; each CHILD is "name local_ts remote_ts esp
# start_action" (tunnel mode, policy-based on charon's side).
swanctl_conf() {
  local name=$1 local=$2 remote=$3 ike=$4 child cname lts rts esp start
  shift 4
  printf 'connections {\n  %s {\n    version = 2\n' "$name"
  printf '    local_addrs = %s\n    remote_addrs = %s\n    proposals = %s\n' "$local" "$remote" "$ike"
  printf '    local { auth = psk\n            id = %s }\n' "$local"
  printf '    remote { auth = psk\n             id = %s }\n    children {\n' "$remote"
  for child in "$@"; do
    read -r cname lts rts esp start <<<"$child"
    printf '      %s {\n        local_ts = %s\n        remote_ts = %s\n' "$cname" "$lts" "$rts"
    printf '        esp_proposals = %s\n        start_action = %s\n      }\n' "$esp" "$start"
  done
  printf '    }\n  }\n}\nsecrets {\n  ike-all { secret = "%s" }\n}\n' "$PSK"
}

# crash PID_FILE: SIGKILL the daemon whose pid PID_FILE holds, as a crash or power loss
# would: no DELETE reaches the peer.
crash() {
  local pid
  pid=$(cat "$1")
  kill -KILL "$pid"
  wait "$pid" 2>/dev/null || true
}

# charon_kill SITE: crash SITE's charon.
charon_kill() { crash "$(charon_dir "$1")/pid"; }

# swanctl_in SITE --COMMAND [ARGS...]: swanctl against SITE's charon. The
# command must come first: swanctl only parses --uri/--file after it.
swanctl_in() {
  local site=$1 cmd=$2 dir
  shift 2
  dir=$(charon_dir "$site")
  STRONGSWAN_CONF=$dir/strongswan.conf ip netns exec "$site" \
    swanctl "$cmd" --uri "$(charon_uri "$site")" "$@"
}

# --- packet capture ----------------------------------------------------

# capture_start SITE IF FILE [SECONDS]: tcpdump IF into FILE in the
# background, for at most SECONDS (default 30); returns once it listens.
capture_start() {
  local site=$1 ifname=$2 file=$3 secs=${4:-30}
  # -Z root: tcpdump otherwise drops to user tcpdump before opening FILE.
  # Started directly (not through a shell function) so that $! is tcpdump's
  # own process chain (ip and timeout exec or forward signals) and
  # capture_stop reaches it.
  # --immediate-mode: without it packets wait in the ring buffer and the
  # last ones are lost when the capture is stopped.
  ip netns exec "$site" timeout "$secs" tcpdump -n -U --immediate-mode -Z root -i "$ifname" -w "$file" \
    2>"$file.log" &
  IT_PIDS+=("$!")
  IT_CAPTURE_PID=$!
  retry 50 0.1 grep -q 'listening on' "$file.log"
}

# capture_stop: end the last capture. SIGTERM, not SIGINT: background jobs
# of a non-interactive shell start with SIGINT ignored.
capture_stop() {
  sleep 0.3
  kill -TERM "$IT_CAPTURE_PID" 2>/dev/null || true
  wait "$IT_CAPTURE_PID" 2>/dev/null || true
}

# capture_for SITE IF FILE SECONDS: capture for exactly SECONDS (blocking).
capture_for() {
  capture_start "$@"
  wait "$IT_CAPTURE_PID" 2>/dev/null || true
}

pcap_count() {
  local file=$1
  shift
  tcpdump -n -r "$file" "$@" 2>/dev/null | wc -l
}

# pcap_spis FILE: number of distinct ESP SPIs in the capture.
# sa_count SITE [SRC]: ESP SAs on SITE, whose outer source matches the extended regex SRC
# if given. `ip xfrm state` also lists the kernel's acquire states (SPI 0, no keys), made
# whenever a packet meets a policy without SA (a fail-closed ping does): they are not SAs.
sa_count() {
  local site=$1 src=${2:-.*}
  in_site "$site" ip xfrm state | awk -v src="^($src)\$" '
    /^src / { wanted = ($2 ~ src) }
    /^\tproto esp spi / && wanted && $4 !~ /^0x00000000/ { n++ }
    END { print n + 0 }'
}

pcap_spis() {
  { tcpdump -n -r "$1" esp 2>/dev/null || true; } | { grep -o 'spi=0x[0-9a-f]*' || true; } | sort -u | wc -l
}

# assert_only_esp DESC FILE [MIN_ESP]: the capture holds at least MIN_ESP
# (default 1) ESP packets and no cleartext ICMP (nor any other cleartext IP
# traffic besides IKE on UDP 500/4500).
assert_only_esp() {
  local desc=$1 file=$2 min=${3:-1} esp icmp other
  esp=$(pcap_count "$file" esp)
  icmp=$(pcap_count "$file" icmp)
  other=$(pcap_count "$file" ip and not esp and not udp port 500 and not udp port 4500)
  if ((esp >= min && icmp == 0 && other == 0)); then
    pass "$desc ($esp ESP packets, no cleartext)"
  else
    fail "$desc (esp=$esp, wanted >= $min; icmp=$icmp other-cleartext=$other)"
    tcpdump -n -r "$file" 2>/dev/null | head -n 20 | sed 's/^/    | /' || true
  fi
}

# assert_only_udp_esp DESC FILE MIN: at least MIN ESP-in-UDP datagrams on port 4500, no
# plain ESP (protocol 50) and no cleartext traffic besides IKE.
assert_only_udp_esp() {
  local desc=$1 file=$2 min=$3 udp esp other
  udp=$(pcap_count "$file" udp port 4500 and greater 100)
  esp=$(pcap_count "$file" ip proto 50)
  other=$(pcap_count "$file" ip and not udp port 500 and not udp port 4500)
  if ((udp >= min && esp == 0 && other == 0)); then
    pass "$desc ($udp ESP-in-UDP datagrams, no plain ESP, no cleartext)"
  else
    fail "$desc (udp/4500=$udp, wanted >= $min; esp=$esp other=$other)"
    { tcpdump -n -r "$file" 2>/dev/null || true; } | sed -n '1,20s/^/    | /p'
  fi
}

# --- IPv6 on the wire and inside (45-ipv6-strongswan) ------------------------
# Scenarios are IPv4-only unless they call site_ipv6. Addresses stay inside the
# namespaces: 2001:db8::/32 outside, fd00::/8 for LANs.

# site_ipv6 SITE: IPv6 on in SITE, quiet and immediate: no router solicitations,
# no autoconfiguration, no DAD wait. Call before link_add / lan_add: new devices
# take the "default" settings.
site_ipv6() {
  local site=$1 conf
  for conf in all default; do
    in_site "$site" sysctl -qw "net.ipv6.conf.$conf.disable_ipv6=0" \
      "net.ipv6.conf.$conf.accept_dad=0" "net.ipv6.conf.$conf.accept_ra=0" \
      "net.ipv6.conf.$conf.router_solicitations=0" "net.ipv6.conf.$conf.autoconf=0"
  done
}

# Cleartext ICMP and ICMPv6 echo (requests and replies): what must never cross an
# outer link protected by ESP. ip6[40] is the ICMPv6 type when no extension header
# sits in between, as for ping.
PCAP_CLEAR_ECHO='icmp[icmptype] = icmp-echo or icmp[icmptype] = icmp-echoreply or (icmp6 and (ip6[40] = 128 or ip6[40] = 129))'

# ESP of either family, also behind IPv6 extension headers (ip6gre adds a
# destination option, the tunnel encapsulation limit, before transport-mode ESP).
PCAP_ESP46='esp or ip6 protochain 50'

# assert_only_esp46 DESC FILE [MIN_ESP]: at least MIN_ESP (default 1) ESP packets of
# either family, no cleartext echo, and no other cleartext traffic besides IKE and
# ICMPv6 control (neighbour discovery, MLD).
assert_only_esp46() {
  local desc=$1 file=$2 min=${3:-1} esp echo other
  esp=$(pcap_count "$file" "$PCAP_ESP46")
  echo=$(pcap_count "$file" "$PCAP_CLEAR_ECHO")
  other=$(pcap_count "$file" "(ip or ip6) and not ($PCAP_ESP46) and not udp port 500 and not udp port 4500 and not icmp6")
  if ((esp >= min && echo == 0 && other == 0)); then
    pass "$desc ($esp ESP packets, no cleartext)"
  else
    fail "$desc (esp=$esp, wanted >= $min; cleartext echo=$echo other=$other)"
    { tcpdump -n -r "$file" 2>/dev/null || true; } | sed -n '1,20s/^/    | /p'
  fi
}

# swanctl_conn NAME LOCAL REMOTE IKE CHILD_NAME CHILD_BODY: one connection of
# swanctl.conf's `connections` (PSK, the addresses as identities) whose single child
# holds CHILD_BODY (local_ts, remote_ts, esp_proposals, mark / if_id, mode...).
swanctl_conn() {
  local name=$1 local=$2 remote=$3 ike=$4 child=$5 body=$6
  printf '  %s {\n    version = 2\n' "$name"
  printf '    local_addrs = %s\n    remote_addrs = %s\n    proposals = %s\n' "$local" "$remote" "$ike"
  printf '    local { auth = psk\n            id = %s }\n' "$local"
  printf '    remote { auth = psk\n             id = %s }\n' "$remote"
  printf '    children {\n      %s {\n%s\n        start_action = none\n      }\n    }\n  }\n' \
    "$child" "$body"
}

# ping_size_from SITE SRC DST SIZE: one ping of SIZE payload bytes, never fragmented.
ping_size_from() {
  local site=$1 src=$2 dst=$3 size=$4
  in_site "$site" ping -n -c 1 -W 3 -M do -s "$size" -I "$src" "$dst"
}

# two_sites [N...]: sites a and b, IPv4 only (router solicitations from tunnel devices
# would cross in clear), joined by link `out` (192.0.2.250 on a, .251 on b), LANs
# 10.1.0.1/24 (a) and 10.2.0.1/24 (b); for each tunnel N, outer addresses 192.0.2.N1 (a)
# and 192.0.2.N2 (b) and LAN addresses 10.1.N.1 and 10.2.N.1.
two_sites() {
  local site n
  site_add a
  site_add b
  for site in a b; do
    in_site "$site" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  done
  link_add a out 192.0.2.250/24 b out 192.0.2.251/24
  lan_add a lan 10.1.0.1/24
  lan_add b lan 10.2.0.1/24
  for n; do
    ip -n a addr add "192.0.2.${n}1/24" dev out
    ip -n b addr add "192.0.2.${n}2/24" dev out
    ip -n a addr add "10.1.$n.1/24" dev lan
    ip -n b addr add "10.2.$n.1/24" dev lan
  done
}

# alg_cell_profile N IKE ESP: routevpn's profile for the algorithm cells of 48 and 49 on
# site a: VTI alg$N over tunnel N's addresses (two_sites), IKE and ESP pinned to the cell's
# proposals (MODP-1536 under allow_legacy), routevpn never starting or restarting it itself.
alg_cell_profile() {
  local n=$1 ike=$2 esp=$3 legacy=""
  [[ $ike == *modp1536* ]] && legacy="allow_legacy = true"
  cat >"$A/tunnels/alg$n.toml" <<EOF
kind = "vti"
local = "192.0.2.${n}1"
remote = "192.0.2.${n}2"
[ike]
proposals = ["$ike"]
psk_file = "../secrets/psk"
start_action = "none"
close_action = "none"
$legacy
[[child]]
esp_proposals = ["$esp"]
local_ts = ["10.1.$n.0/24"]
remote_ts = ["10.2.$n.0/24"]
[interface]
name = "alg$n"
[[route]]
to = "10.2.$n.0/24"
src = "10.1.$n.1"
EOF
}

# --- libreswan (pluto) -------------------------------------------------
# integration/setup unpacks Debian's libreswan here (it conflicts with the strongSwan
# packages). Each pluto gets its own config, secrets, NSS database, control socket and
# log under the scenario's work dir.

LIBRESWAN_DIR=${LIBRESWAN_DIR:-/opt/routevpn-it/libreswan}
LIBRESWAN_EXEC=$LIBRESWAN_DIR/usr/libexec/ipsec

pluto_dir() { printf '%s/pluto-%s' "$IT_WORK" "$1"; }

# libreswan_link_libexec: libreswan's scripts (`ipsec`, `_updown`) hard-code
# /usr/libexec/ipsec. In the VM /usr is a throw-away overlay, so a symlink there points
# it at the unpacked tree. Refused outside the VM: it would change the host's /usr.
libreswan_link_libexec() {
  if [[ $(findmnt -n -o FSTYPE /usr) != overlay ]]; then
    echo "/usr is not the VM's overlay: run this scenario through integration/vm" >&2
    return 1
  fi
  [[ -e /usr/libexec/ipsec && ! -L /usr/libexec/ipsec ]] && {
    echo "/usr/libexec/ipsec exists and is not ours" >&2
    return 1
  }
  mkdir -p /usr/libexec
  ln -sfn "$LIBRESWAN_EXEC" /usr/libexec/ipsec
}

# in_pluto_env SITE CMD...: CMD in SITE with libreswan's sbin first in PATH (strongSwan's
# starter also installs an `ipsec`; pluto's updown runs `ipsec _updown`).
in_pluto_env() {
  local site=$1
  shift
  ip netns exec "$site" env PATH="$LIBRESWAN_DIR/usr/sbin:$PATH" "$@"
}

# pluto_start SITE CONN_TEXT SECRETS_TEXT: start a pluto inside SITE with CONN_TEXT
# (ipsec.conf conn sections; "config setup" is added here) and SECRETS_TEXT
# (ipsec.secrets), then add every conn with auto=add. Passes once whack answers.
pluto_start() {
  local site=$1 conns=$2 secrets=$3 dir
  dir=$(pluto_dir "$site")
  [[ -L /usr/libexec/ipsec ]] || libreswan_link_libexec
  mkdir -p "$dir/nss" "$dir/run" "$dir/ipsec.d"
  [[ -e $dir/nss/cert9.db ]] || certutil -N --empty-password -d "sql:$dir/nss"
  # A restarted pluto must not find the old one's pid file or socket.
  rm -f "$dir/run/pluto.pid" "$dir/run/pluto.ctl"
  printf 'config setup\n  logappend=yes\n\n%s\n' "$conns" >"$dir/ipsec.conf"
  printf '%s\n' "$secrets" >"$dir/ipsec.secrets"
  chmod 600 "$dir/ipsec.secrets"
  # Not through in_pluto_env: a backgrounded function is a subshell, and $! would be its
  # pid, not pluto's.
  ip netns exec "$site" env PATH="$LIBRESWAN_DIR/usr/sbin:$PATH" "$LIBRESWAN_EXEC/pluto" \
    --nofork --config "$dir/ipsec.conf" --secretsfile "$dir/ipsec.secrets" --nssdir "$dir/nss" --ipsecdir "$dir/ipsec.d" \
    --rundir "$dir/run" --dumpdir "$dir/run" --logfile "$dir/pluto.log" --no-dnssec \
    >>"$dir/pluto.stdout.log" 2>&1 &
  IT_PIDS+=("$!")
  # ip and env exec: this is pluto's own pid, for pluto_kill.
  printf '%s\n' "$!" >"$dir/pid"
  if ! retry 50 0.2 whack_in "$site" --status >/dev/null 2>&1; then
    echo "pluto in $site did not come up; log follows" >&2
    tail -n 30 "$dir/pluto.log" "$dir/pluto.stdout.log" >&2 || true
    return 1
  fi
  if ! in_pluto_env "$site" ipsec addconn --config "$dir/ipsec.conf" \
    --ctlsocket "$dir/run/pluto.ctl" --autoall >"$dir/addconn.log" 2>&1; then
    cat "$dir/addconn.log" >&2
    return 1
  fi
}

# pluto_kill SITE: crash SITE's pluto; its kernel state stays behind.
pluto_kill() { crash "$(pluto_dir "$1")/pid"; }

# pluto_running_in SITE: some process in SITE is a pluto.
pluto_running_in() {
  local pid
  for pid in $(ip netns pids "$1"); do
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) != pluto ]] || return 0
  done
  return 1
}

# whack_in SITE ARGS...: `ipsec whack` against SITE's pluto.
whack_in() {
  local site=$1
  shift
  in_pluto_env "$site" ipsec whack --ctlsocket "$(pluto_dir "$site")/run/pluto.ctl" "$@"
}

# --- routevpn on site a against a peer on site b, tunnel N between 192.0.2.N1 (a) and
# 192.0.2.N2 (b) named ${NAME[N]} (the libreswan scenarios' convention).
sa_of() { printf 'next(sa for sa in s["ike_sas"] if sa["name"]=="%s")' "$1"; }
# spis NAME: our "in/out" CHILD SPIs; theirs N: pluto's newest, mirrored ("their out/their
# in"), from whack --status lines such as `#2: "vti-d" esp.1a2b3c4d@192.0.2.11 ...`.
spis() {
  ours "' '.join(c['spi_in'] + '/' + c['spi_out'] for sa in s['ike_sas'] if sa['name']=='$1' for c in sa['children'])"
}
theirs() {
  local n=$1
  whack_in b --status 2>/dev/null | grep "\"${NAME[$n]}\" esp\." | tail -n1 |
    sed -n "s/.*esp\.\([0-9a-f]*\)@192\.0\.2\.${n}1 esp\.\([0-9a-f]*\)@192\.0\.2\.${n}2.*/\1 \2/p" |
    { read -r o i && printf '%08x/%08x' "0x$o" "0x$i"; }
}
# b_kernel_has SPI...: b's kernel holds an SA with each SPI.
b_kernel_has() {
  local states spi
  states=$(in_site b ip xfrm state)
  for spi; do grep -q "spi 0x$spi " <<<"$states" || return 1; done
}
same() { test "$(spis "${NAME[$1]}")" = "$(theirs "$1")"; }

# up_done NAME OUTPUT: `routevpn up NAME` printed OUTPUT; pluto's updown (~20 s for a VTI
# under TCG) can outlast the wait of `routevpn up`, while the daemon keeps negotiating.
child_up() { test "$(ours "len([c for sa in s['ike_sas'] if sa['name']=='$1' and sa['state']=='ESTABLISHED' for c in sa['children']])")" = 1; }
up_done() {
  grep -q "CHILD SA installed" <<<"$2" && return 0
  grep -q "still negotiating" <<<"$2" && retry 60 0.5 child_up "$1"
}

# pluto_cell_checks N LABEL: tunnel N is established on both sides with the same CHILD
# SPIs, b's kernel holds them, pings cross, and pluto counted the ESP bytes.
pluto_cell_checks() {
  local n=$1 name=${NAME[$1]} label=$2 status in out
  status=$(whack_in b --status 2>&1 || true)
  printf '%s\n' "$status" | grep "\"$name\"" | sed "s/^/    [pluto] /" >>"$IT_WORK/pluto-status.log"
  assert "$label: pluto's IKE SA is established" grep -q "\"$name\".*ESTABLISHED_IKE_SA" <<<"$status"
  assert "$label: pluto's CHILD SA is established" grep -q "\"$name\".*ESTABLISHED_CHILD_SA" <<<"$status"
  assert "$label: same CHILD SPIs (ours $(spis "$name"), pluto's $(theirs "$n"))" same "$n"
  in=$(spis "$name")
  out=${in#*/} in=${in%/*}
  assert "$label: b's kernel holds both SAs ($in, $out)" b_kernel_has "$in" "$out"
  assert "$label: ping 10.1.$n.1 -> 10.2.$n.1" ping_from a "10.1.$n.1" "10.2.$n.1" 3
  assert "$label: pluto counted the ESP bytes" \
    grep -q "\"$name\".*inBytes=[1-9]" <(whack_in b --trafficstatus 2>&1)
}

# --- FRR (routing daemons per site) ------------------------------------------
# Each site's zebra and protocol daemon run as user frr with their own config, pid
# files, zserv socket and vty sockets under frr_dir SITE; they die with the site's
# namespace (site_del kills what runs in it).

FRR_DAEMONS=${FRR_DAEMONS:-/usr/lib/frr}
frr_dir() { printf '%s/frr-%s' "$IT_WORK" "$1"; }

# frr_start SITE DAEMON CONFIG_TEXT: zebra and DAEMON (ospfd, bgpd, pimd) in SITE.
frr_start() {
  local site=$1 daemon=$2 config=$3 dir d
  dir=$(frr_dir "$site")
  mkdir -p "$dir"
  # mktemp made the work dir 0700; user frr must reach its own directory below it.
  chmod 711 "$IT_WORK"
  printf 'hostname %s\n' "$site" >"$dir/zebra.conf"
  printf '%s\n' "$config" >"$dir/$daemon.conf"
  chown -R frr:frr "$dir"
  for d in zebra "$daemon"; do
    in_site "$site" "$FRR_DAEMONS/$d" -d -u frr -g frr -f "$dir/$d.conf" -i "$dir/$d.pid" \
      -z "$dir/zserv.api" --vty_socket "$dir" --log "file:$dir/$d.log" || return 1
    retry 50 0.2 test -S "$dir/$d.vty" || return 1
  done
}

# vtysh_in SITE ARGS...: FRR's shell on SITE's daemons.
vtysh_in() {
  local site=$1
  shift
  vtysh --vty_socket "$(frr_dir "$site")" "$@"
}

# ospf_neighbor_state SITE DEVICE: the state of SITE's OSPF neighbor on DEVICE
# ("Full/-", "ExStart/-", ...), empty if none.
ospf_neighbor_state() {
  vtysh_in "$1" -c 'show ip ospf neighbor json' | python3 -c '
import json, sys
for entries in json.load(sys.stdin).get("neighbors", {}).values():
    for n in entries:
        if n.get("ifaceName", "").split(":")[0] == sys.argv[1]:
            print(n.get("nbrState") or n.get("state"))' "$2"
}
ospf_state_is() { [[ $(ospf_neighbor_state "$1" "$2") == "$3"* ]]; }
