#!/usr/bin/env bash
# The netlink backends' own tests, including the ones that need tunnel drivers the host
# lacks (vti, gre, xfrm interfaces, ESP): the test binaries built on the host, run here.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/../lib.sh"
it_init 10-netlink-tests

modprobe -a ip_vti ip6_vti ip_gre ip6_gre xfrm_interface esp4 esp6 xfrm_user

list=$RESULTS_DIR/test-binaries
if [[ ! -s $list ]]; then
  fail "no test binaries listed in $list (integration/test builds them)"
  exit 1
fi
while read -r bin; do
  name=$(basename "$bin")
  # One thread: each test moves itself into a fresh network namespace.
  if "$bin" --include-ignored --test-threads=1 >"$IT_WORK/$name.log" 2>&1; then
    pass "$name: $(grep -E '^test result' "$IT_WORK/$name.log" | tail -n1)"
  else
    fail "$name"
    tail -n 40 "$IT_WORK/$name.log" | sed 's/^/    | /'
  fi
done <"$list"
