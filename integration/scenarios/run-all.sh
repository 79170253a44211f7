#!/usr/bin/env bash
# Run every scenario (NN-*.sh) inside one VM boot and print the total. Each
# scenario appends "name passed failed" to $RESULTS_DIR/counts; one that dies
# before doing so counts as one failure.
#
# 00 (the kernel and the tools) runs first, alone. The rest run in LANES lanes
# (default 2, one per vCPU): a serial run leaves one TCG vCPU mostly idle, and
# CI must stay under 45 minutes. Each lane has its own mount namespace with its
# own /run, so `ip netns` names (/run/netns), pid files and sockets of one lane
# never meet the other's; sites are network namespaces, so the kernel state is
# theirs too. A lane takes the next scenario from one queue, longest first, so
# the lanes end together. A scenario's output is printed whole when it ends.
set -uo pipefail

dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${RESULTS_DIR:=$(mktemp -d)}" "${LANES:=2}"
export RESULTS_DIR
# Deleted sites' namespaces stay alive until the VM ends (lib.sh's site_del says why).
export IT_KEEP_NAMESPACES=1
rm -f "$RESULTS_DIR/counts" "$RESULTS_DIR/summary" "$RESULTS_DIR/timeline"
logs=$RESULTS_DIR/scenario-logs
rm -rf "$logs" && mkdir -p "$logs"

# The longest scenarios (seconds in the whole suite, session 10-11): 85 349, 60 323,
# 46 ~320, 42 225, 49 ~175, 57 119, 44 103, 48 101, 40 85, 75 78, 80 74; the others
# take 12-85.
longest_first=(85 60 46 42 49 57 44 48 40 75 80)

# run_one SCENARIO: runs it with its output in its log, then prints the log
# and a result line (under a lock, so lanes do not interleave).
run_one() {
  local scenario=$1 name rc start line p f
  name=$(basename "$scenario" .sh)
  start=$SECONDS
  echo "$(date +%T) start $name" >>"$RESULTS_DIR/timeline"
  bash "$scenario" </dev/null >"$logs/$name.log" 2>&1
  rc=$?
  # Its devices and namespaces are released by now (or kept: IT_KEEP_NAMESPACES).
  echo "$(date +%T) end $name" >>"$RESULTS_DIR/timeline"
  line=$(grep "^$name " "$RESULTS_DIR/counts" 2>/dev/null | tail -n1)
  if [[ -n $line ]]; then
    read -r _ p f <<<"$line"
  else
    p=0 f=1
  fi
  # A non-zero exit with no failure recorded is still a failure.
  if ((rc != 0 && f == 0)); then f=1; fi
  printf '%s %d %d\n' "$name" "$p" "$f" >>"$RESULTS_DIR/totals"
  {
    flock 9
    echo "=== $name"
    cat "$logs/$name.log"
    echo "=== $name: $p passed, $f failed in $((SECONDS - start))s (exit $rc)"
  } 9>"$logs/.print-lock"
}

# lane N: takes scenarios from the queue until it is empty.
lane() {
  local next
  while :; do
    next=$(flock "$logs/.queue-lock" sh -c 'head -n1 "$1" && sed -i 1d "$1"' _ "$logs/.queue")
    [[ -n $next ]] || return 0
    run_one "$next"
  done
}

# The guest kernel's log and any task stuck in the kernel, streamed to the host as they
# come: a run that hangs (a task blocked in the kernel, a device that never unregisters)
# is killed by the host's timeout before anything here could print it, and the guest's
# /tmp dies with it. The hung-task detector reports after 60 s, not 120.
kernel_log=$RESULTS_DIR/kernel.log
: >"$kernel_log"
echo 60 >/proc/sys/kernel/hung_task_timeout_secs 2>/dev/null || true
dmesg --follow --time-format iso >>"$kernel_log" 2>&1 &
watchers=$!
(
  # Only a task found blocked in two samples a minute apart: 9p reads block briefly.
  seen=
  while sleep 60; do
    now=$(ps -eo pid=,stat=,wchan:32=,args= | awk '$2 ~ /^D/')
    stuck=$(awk 'NR == FNR { if ($1 != "") before[$1] = 1; next } $1 in before' \
      <(printf '%s\n' "$seen") <(printf '%s\n' "$now"))
    [[ -z $stuck ]] || printf '%s blocked in the kernel for a minute or more:\n%s\n' "$(date +%T)" "$stuck"
    seen=$now
  done >>"$kernel_log"
) &
watchers+=" $!"

rm -f "$RESULTS_DIR/totals"
scenarios=("$dir"/[0-9][0-9]-*.sh)
run_one "${scenarios[0]}"
{
  for n in "${longest_first[@]}"; do
    ls "$dir/$n"-*.sh 2>/dev/null
  done
  for s in "${scenarios[@]:1}"; do
    [[ " ${longest_first[*]} " == *" $(basename "$s" | cut -c1-2) "* ]] || echo "$s"
  done
} >"$logs/.queue"

export -f run_one lane
export dir logs
start=$SECONDS
lanes=()
for ((i = 1; i <= LANES; i++)); do
  unshare -m --propagation private bash -c \
    'mount -t tmpfs -o mode=0755 tmpfs /run && lane' &
  lanes+=($!)
done
# A device that never unregisters holds the kernel's namespace cleanup, and with it every
# later `ip netns add` and module load: nothing after it can pass. End the run there and
# name the scenarios that had just ended, instead of hanging until the host's timeout.
wedged=
while :; do
  alive=0
  for pid in "${lanes[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
  ((alive)) || break
  wedged=$(grep -m1 'unregister_netdevice: waiting for' "$kernel_log")
  [[ -z $wedged ]] || break
  sleep 5
done
if [[ -n $wedged ]]; then
  echo "=== the kernel's namespace cleanup is stuck: ${wedged#*unregister_netdevice: }"
  echo "=== the last scenarios to start and end (the kernel reports a device 10 s after it began waiting):"
  tail -n 6 "$RESULTS_DIR/timeline" | sed 's/^/    /'
  kill "${lanes[@]}" 2>/dev/null
else
  wait "${lanes[@]}"
fi
echo "=== lanes done in $((SECONDS - start))s"
# shellcheck disable=SC2086 # a list of pids
kill $watchers 2>/dev/null
# A process killed by a fault says which binary in the kernel log; the shell only says
# "Segmentation fault" with the command it ran.
dmesg | grep -E 'segfault at|general protection|traps:' || true

read -r total_pass total_fail < <(awk '{p += $2; f += $3} END {print p + 0, f + 0}' \
  "$RESULTS_DIR/totals")
# A scenario that never reported (its lane died) is missing from the totals.
missing=$((${#scenarios[@]} - $(wc -l <"$RESULTS_DIR/totals")))
if ((missing > 0)); then
  echo "$missing scenario(s) never finished"
  total_fail=$((total_fail + missing))
fi
echo "namespaces kept alive: $(pgrep -cf '^sleep infinity$'); memory available: $(awk '/MemAvailable/ {print int($2 / 1024) " MiB"}' /proc/meminfo)"
echo "$total_pass passed, $total_fail failed" | tee "$RESULTS_DIR/summary"
((total_fail == 0))
