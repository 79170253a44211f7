#!/usr/bin/env bash
# Inside the VM: IKEv2 responders under the same load, side by side in one boot. A routevpn
# daemon (N XFRM-interface tunnels, one per initiator address) and a strongSwan charon (one
# connection for the initiators' range, `policies = no` since the daemon installs SAs only
# too) each answer N initiators of examples/ike_load.rs (PSK, CHILD SA installed in the
# kernel), for x25519 and for modp2048, each after an unmeasured warm-up round. Measured on
# the responder process: wall-clock handshakes/s, CPU time per handshake (utime + stime of
# all its threads, so the load generator's own share of the two CPUs does not count), and
# resident memory per IKE SA + CHILD SA (anonymous RSS after the measured round minus
# before it, over N, each read after two quiet seconds).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
. "$repo/integration/lib.sh"
it_init bench-ike
ROUTEVPN=${ROUTEVPN:-$repo/target/release/routevpn}
IKE_LOAD=${IKE_LOAD:-$repo/target/release/examples/ike_load}
N=${N:-256}
CONCURRENCY=${CONCURRENCY:-16}
modprobe -a esp4 xfrm_interface xfrm_user dummy
# Transparent huge pages off: khugepaged folding a responder's heap into 2 MiB pages in the
# background moves resident memory by megabytes at random moments.
echo never >/sys/kernel/mm/transparent_hugepage/enabled

# "name ike-proposal esp-proposal"
SUITES=(
  "x25519 aes256gcm16-prfsha384-x25519 aes256gcm16"
  "modp2048 aes256-sha256-modp2048 aes256-sha256"
)

site_add resp
site_add load
link_add resp out 192.0.2.1/24 load out 192.0.2.2/24
ip -n load route add local 198.18.0.0/22 dev lo
ip -n resp route add 198.18.0.0/22 via 192.0.2.2
PSK=benchmark-psk-0123456789abcdef
printf '%s' "$PSK" >"$IT_WORK/psk"

# The initiators' addresses, in the order ike_load walks them; a first, unmeasured round
# as large from other addresses warms each responder up. The first handshakes in a fresh
# VM pay for loading the kernel's crypto modules and for code translation, which would
# count against whichever responder runs first, and each responder's first SAs pay for its
# one-time setup (library initialisation, tables). The measured round shows the cost of N
# more tunnels.
mapfile -t SOURCES < <(python3 -c "
import ipaddress, itertools
print(*itertools.islice(ipaddress.ip_network('198.18.0.0/22').hosts(), $N), sep='\n')")
WARMUP_NET=198.18.2.0/23
WARMUP=${WARMUP:-$N}
mapfile -t -O "${#SOURCES[@]}" SOURCES < <(python3 -c "
import ipaddress, itertools
print(*itertools.islice(ipaddress.ip_network('$WARMUP_NET').hosts(), $WARMUP), sep='\n')")

rv_profiles() {
  local ike=$1 esp=$2 dir=$IT_WORK/rv k src
  # The state stays: the previous suite's daemon left its devices (a stopped daemon keeps
  # the dataplane), which the next one takes over as its own.
  rm -rf "$dir/tunnels"
  mkdir -p "$dir/tunnels" "$dir/state"
  printf '%s' "$PSK" >"$dir/psk"
  chmod 600 "$dir/psk"
  for ((k = 0; k < ${#SOURCES[@]}; k++)); do
    src=${SOURCES[$k]}
    cat >"$dir/tunnels/i$k.toml" <<TOML
kind = "xfrm"
local = "192.0.2.1"
remote = "$src"
[ike]
proposals = ["$ike"]
psk_file = "../psk"
start_action = "none"
close_action = "none"
[ike.dpd]
delay = "0s"
[[child]]
local_ts = ["192.0.2.1/32"]
remote_ts = ["$src/32"]
esp_proposals = ["$esp"]
[interface]
name = "xi$k"
TOML
  done
}

charon_text() {
  cat <<CONF
connections {
  load {
    version = 2
    local_addrs = 192.0.2.1
    remote_addrs = 198.18.0.0/22
    proposals = $1
    local { auth = psk }
    remote { auth = psk }
    children {
      load {
        local_ts = dynamic
        remote_ts = dynamic
        esp_proposals = $2
        policies = no
      }
    }
  }
}
secrets {
  ike-all { secret = "$PSK" }
}
CONF
}

# cpu_ticks PID: utime + stime of every thread; rss_kb PID: resident anonymous memory (the
# heap; code pages the first handshakes bring in are file-backed and shared), counted from
# the page tables: /proc/PID/status lags by up to 64 pages per thread on this kernel.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk '/^Anonymous:/ {print $2}' "/proc/$1/smaps_rollup"; }

# measure NAME PID IKE ESP: runs the load against the responder PID, prints a result line.
measure() {
  local name=$1 pid=$2 ike=$3 esp=$4 cpu0 rss0 cpu1 rss1 out
  in_site load "$IKE_LOAD" --responder 192.0.2.1 --sources "$WARMUP_NET" --count "$WARMUP" \
    --concurrency "$CONCURRENCY" --ike "$ike" --esp "$esp" --psk-file "$IT_WORK/psk" --timeout 300 >/dev/null
  # Both responders get two quiet seconds before each reading.
  sleep 2
  cpu0=$(cpu_ticks "$pid") rss0=$(rss_kb "$pid")
  out=$(in_site load "$IKE_LOAD" --responder 192.0.2.1 --sources 198.18.0.0/22 --count "$N" \
    --concurrency "$CONCURRENCY" --ike "$ike" --esp "$esp" --psk-file "$IT_WORK/psk" --timeout 300)
  cpu1=$(cpu_ticks "$pid")
  sleep 2
  rss1=$(rss_kb "$pid")
  python3 - "$name" "$out" "$cpu0" "$cpu1" "$rss0" "$rss1" "$(getconf CLK_TCK)" <<'PY'
import json, sys
name, out, cpu0, cpu1, rss0, rss1, hz = sys.argv[1:]
r = json.loads(out)
done = r["done"]
cpu = (int(cpu1) - int(cpu0)) / int(hz)
print(json.dumps({
    "responder": name, "done": done, "failed": r["failed"], "first_error": r["first_error"],
    "rate": done / r["seconds"] if r["seconds"] else 0,
    "cpu_ms": 1000 * cpu / done if done else None,
    "kb_per_sa": (int(rss1) - int(rss0)) / done if done else None,
    "rss_kb": [int(rss0), int(rss1)],
}))
PY
}

results=()
for suite in "${SUITES[@]}"; do
  read -r label ike esp <<<"$suite"

  rv_profiles "$ike" "$esp"
  ip netns exec resp "$ROUTEVPN" --config-dir "$IT_WORK/rv/tunnels" --state-dir "$IT_WORK/rv/state" \
    --insecure-secrets daemon >"$IT_WORK/rv-$label.log" 2>&1 &
  rv_pid=$!
  IT_PIDS+=("$rv_pid")
  if ! retry 600 0.5 test -S "$IT_WORK/rv/state/routevpn.sock"; then
    sed 's/^/    | /' "$IT_WORK/rv-$label.log"
    exit 1
  fi
  results+=("$label $(measure routevpn "$rv_pid" "$ike" "$esp")")
  log "${results[-1]}"
  kill -TERM "$rv_pid"
  wait "$rv_pid" || true
  ip -n resp xfrm state flush

  charon_start resp "$(charon_text "$ike" "$esp")"
  results+=("$label $(measure charon "$(cat "$(charon_dir resp)/pid")" "$ike" "$esp")")
  log "${results[-1]}"
  charon_kill resp
  ip -n resp xfrm state flush
done

python3 - "$N" "$CONCURRENCY" "${results[@]}" <<'PY'
import json, sys
n, conc, *lines = sys.argv[1:]
rows = {}
for line in lines:
    label, js = line.split(" ", 1)
    r = json.loads(js)
    rows.setdefault(label, {})[r["responder"]] = r
print(f"{n} initiators, {conc} in flight; CHILD SAs installed in the kernel by both responders")
print(f"{'suite':9} {'responder':9} {'done':>5} {'handshakes/s':>13} {'CPU ms/handshake':>17} {'KB per IKE+CHILD SA':>20}")
for label, pair in rows.items():
    for who in ("routevpn", "charon"):
        r = pair.get(who)
        if not r:
            continue
        cpu = f"{r['cpu_ms']:.2f}" if r["cpu_ms"] is not None else "-"
        kb = f"{r['kb_per_sa']:.1f}" if r["kb_per_sa"] is not None else "-"
        print(f"{label:9} {who:9} {r['done']:>5} {r['rate']:>13.1f} {cpu:>17} {kb:>20}")
        if r["failed"]:
            print(f"          {r['failed']} failed: {r['first_error']}")
    rv, ch = pair.get("routevpn"), pair.get("charon")
    if rv and ch and rv["done"] and ch["done"]:
        print(f"{label:9} ratio     rate {rv['rate'] / ch['rate']:.2f}x, "
              f"CPU per handshake {ch['cpu_ms'] / rv['cpu_ms']:.2f}x less, "
              f"memory per SA {rv['kb_per_sa'] / ch['kb_per_sa']:.2f} of charon's")
PY
it_finish
