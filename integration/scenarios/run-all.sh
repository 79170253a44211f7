#!/usr/bin/env bash
# Run every scenario (NN-*.sh, in order) inside one VM boot and print the
# total. Each scenario appends "name passed failed" to $RESULTS_DIR/counts;
# one that dies before doing so counts as one failure.
set -uo pipefail

dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${RESULTS_DIR:=$(mktemp -d)}"
export RESULTS_DIR
rm -f "$RESULTS_DIR/counts" "$RESULTS_DIR/summary"

total_pass=0 total_fail=0
for scenario in "$dir"/[0-9][0-9]-*.sh; do
  name=$(basename "$scenario" .sh)
  echo "=== $name"
  start=$SECONDS
  bash "$scenario"
  rc=$?
  line=$(grep "^$name " "$RESULTS_DIR/counts" 2>/dev/null | tail -n1)
  if [[ -n $line ]]; then
    read -r _ p f <<<"$line"
  else
    p=0 f=1
  fi
  # A non-zero exit with no failure recorded is still a failure.
  if ((rc != 0 && f == 0)); then f=1; fi
  total_pass=$((total_pass + p)) total_fail=$((total_fail + f))
  echo "=== $name: $p passed, $f failed in $((SECONDS - start))s (exit $rc)"
done

echo "$total_pass passed, $total_fail failed" | tee "$RESULTS_DIR/summary"
((total_fail == 0))
