#!/usr/bin/env bash
# Inside the VM integration/demo boots: load the tunnel drivers and run the demo.
set -euo pipefail
modprobe -a ip_vti ip_gre esp4 dummy veth
exec "${ROUTEVPN:-$PWD/target/release/routevpn}" demo
