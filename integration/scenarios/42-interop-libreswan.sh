#!/usr/bin/env bash
# routevpn's IKEv2 engine against a real libreswan 4.10 pluto (PSK). Site a runs the
# routevpn daemon, site b one pluto. Six cells: every tunnel kind (VTI; GRE over IPsec in
# transport mode; XFRM interface) and every suite (libreswan's defaults against ours; two
# pinned ones) appears in each role, each kind with two suites:
#   routevpn initiates: vti-d (VTI, defaults), gre-1 (GRE, suite 1), xfrm-2 (XFRM, suite 2)
#   pluto initiates:    vti-2 (VTI, suite 2),  gre-d (GRE, defaults), xfrm-1 (XFRM, suite 1)
# Each cell: tunnel up, pings cross, only ESP on the wire, the same CHILD SPIs on both
# sides (routevpn status --json vs whack --status and b's kernel). Then, under 20 pings/s
# through two tunnels: CHILD rekeys and IKE rekeys started by each side, no ping lost.
# Last, pluto is killed (-9) and restarted: routevpn's DPD restart action brings vti-d
# back, and no cleartext crosses the wire meanwhile.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/../lib.sh"
it_init 42-interop-libreswan

ROUTEVPN=${ROUTEVPN:-$PWD/target/debug/routevpn}
modprobe -a ip_vti ip_gre esp4 xfrm_interface dummy

DPD_DELAY=5
DPD_TIMEOUT=15

# Suites: routevpn's IKE and ESP proposals, libreswan's ike= and esp= (empty: defaults),
# and the algorithms routevpn must report. routevpn's ESP proposals carry the IKE SA's
# group: pluto's pfs=yes (its default) adds it to the CREATE_CHILD_SA proposals.
declare -A RV_IKE=([d]="" [1]=aes256-sha256-modp2048 [2]=aes256gcm16-prfsha512-ecp256)
declare -A RV_ESP=([d]="" [1]=aes256-sha256-modp2048 [2]=aes256gcm16-ecp256)
declare -A LS_IKE=([d]="" [1]="aes256-sha2_256;dh14" [2]="aes_gcm256-sha2_512;dh19")
declare -A LS_ESP=([d]="" [1]="aes256-sha2_256" [2]="aes_gcm256")
declare -A WANT_IKE=([1]=AES_CBC_256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048 [2]=AES_GCM_16_256/PRF_HMAC_SHA2_512/ECP_256)
declare -A WANT_ESP=([1]=AES_CBC_256/HMAC_SHA2_256_128 [2]=AES_GCM_16_256)

# Tunnel N: outer 192.0.2.N1 (a) <-> 192.0.2.N2 (b), LANs 10.1.N.0/24 <-> 10.2.N.0/24,
# GRE inner 172.16.N.1/30 <-> .2.
NAME=(x vti-d gre-1 xfrm-2 vti-2 gre-d xfrm-1)
KIND=(x vti gre xfrm vti gre xfrm)
SUITE=(x d 1 2 2 d 1)
ROLE=(x initiator initiator initiator responder responder responder)
TUNNELS=(1 2 3 4 5 6)

two_sites "${TUNNELS[@]}"

rv_site_a_init

# --- routevpn's profiles on site a: the test drives the roles
for n in "${TUNNELS[@]}"; do
  s=${SUITE[$n]}
  {
    printf 'kind = "%s"\nlocal = "192.0.2.%s1"\nremote = "192.0.2.%s2"\n' "${KIND[$n]}" "$n" "$n"
    printf '[ike]\npsk_file = "../secrets/psk"\nstart_action = "none"\nclose_action = "none"\n'
    [[ -z ${RV_IKE[$s]} ]] || printf 'proposals = ["%s"]\n' "${RV_IKE[$s]}"
    if ((n == 1)); then
      printf '[ike.dpd]\ndelay = "%ss"\ntimeout = "%ss"\naction = "restart"\n' "$DPD_DELAY" "$DPD_TIMEOUT"
    fi
    printf '[[child]]\n'
    [[ -z ${RV_ESP[$s]} ]] || printf 'esp_proposals = ["%s"]\n' "${RV_ESP[$s]}"
    if [[ ${KIND[$n]} == gre ]]; then
      printf '[interface]\nname = "%s"\naddresses = ["172.16.%s.1/30"]\n' "${NAME[$n]}" "$n"
    else
      printf 'local_ts = ["10.1.%s.0/24"]\nremote_ts = ["10.2.%s.0/24"]\n' "$n" "$n"
      printf '[interface]\nname = "%s"\n' "${NAME[$n]}"
    fi
    printf '[[route]]\nto = "10.2.%s.0/24"\nsrc = "10.1.%s.1"\n' "$n" "$n"
  } >"$A/tunnels/${NAME[$n]}.toml"
done

# --- pluto's side on site b. VTI: libreswan's routed VTI (mark=, vti-interface=: its updown
# makes the device and the route); XFRM: ipsec-interface= (pluto makes ipsecN, updown the
# route); GRE: the test makes the GRE device, pluto protects it in transport mode.
conn_text() {
  local n=$1 s=${SUITE[$1]}
  printf 'conn %s\n  left=192.0.2.%s2\n  right=192.0.2.%s1\n' "${NAME[$n]}" "$n" "$n"
  printf '  authby=secret\n  ikev2=yes\n  auto=add\n'
  [[ -z ${LS_IKE[$s]} ]] || printf '  ike=%s\n' "${LS_IKE[$s]}"
  [[ -z ${LS_ESP[$s]} ]] || printf '  esp=%s\n' "${LS_ESP[$s]}"
  case ${KIND[$n]} in
    vti)
      printf '  leftsubnet=10.2.%s.0/24\n  rightsubnet=10.1.%s.0/24\n' "$n" "$n"
      printf '  mark=%s/0xffffffff\n  vti-interface=lsvti%s\n  vti-routing=yes\n' "$n" "$n"
      ;;
    xfrm)
      printf '  leftsubnet=10.2.%s.0/24\n  rightsubnet=10.1.%s.0/24\n' "$n" "$n"
      printf '  ipsec-interface=%s\n' "$n"
      ;;
    gre)
      printf '  type=transport\n  leftprotoport=gre\n  rightprotoport=gre\n'
      ;;
  esac
  printf '\n'
}
conns=$(for n in "${TUNNELS[@]}"; do conn_text "$n"; done)
secrets=": PSK \"$PSK\""
for n in "${TUNNELS[@]}"; do
  [[ ${KIND[$n]} == gre ]] || continue
  ip -n b tunnel add "${NAME[$n]}" mode gre local "192.0.2.${n}2" remote "192.0.2.${n}1" ttl 64
  ip -n b addr add "172.16.$n.2/30" dev "${NAME[$n]}"
  ip -n b link set "${NAME[$n]}" up
  ip -n b route add "10.1.$n.0/24" dev "${NAME[$n]}" src "10.2.$n.1"
done
pluto_start b "$conns" "$secrets"
pass "pluto started on site b with ${#TUNNELS[@]} connections"

rv_daemon_start
check_cell() {
  local n=$1 name=${NAME[$1]} role=${ROLE[$1]} s=${SUITE[$1]} ike esp
  ike=$(ours "$(sa_of "$name")['ike']")
  esp=$(ours "$(sa_of "$name")['children'][0]['esp']")
  if [[ $s == d ]]; then
    log "$name: defaults negotiated IKE $ike, ESP $esp"
  else
    assert "$name ($role): IKE $ike is the pinned ${WANT_IKE[$s]}" test "$ike" = "${WANT_IKE[$s]}"
    assert "$name ($role): ESP $esp is the pinned ${WANT_ESP[$s]}" test "$esp" = "${WANT_ESP[$s]}"
  fi
  pluto_cell_checks "$n" "$name ($role)"
}

for role in initiator responder; do
  capture_start a out "$IT_WORK/$role.pcap" 180
  for n in "${TUNNELS[@]}"; do
    [[ ${ROLE[$n]} == "$role" ]] || continue
    name=${NAME[$n]}
    if [[ $role == initiator ]]; then
      out=$(rv up "$name" 2>&1) || true
      assert "$name: routevpn up as initiator ($out)" up_done "$name" "$out"
    else
      assert "$name: pluto initiates" whack_in b --initiate --name "$name"
    fi
    check_cell "$n"
  done
  capture_stop
  assert_only_esp "$role round: only ESP on the outer link" "$IT_WORK/$role.pcap" 18
  assert "$role round: 6 SPIs on the wire" test "$(pcap_spis "$IT_WORK/$role.pcap")" -ge 6
done

# --- rekeys under 20 pings/s through gre-1 and xfrm-2 (PFS: both pinned suites). Each
# rekey is logged with its time, and each lost ping (ping -O) is laid next to the last
# rekey of its tunnel before it, so a loss names the exchange that caused it.
count() { grep -c "$1" "$IT_WORK/daemon-a.log" || true; }
pings() {
  in_site a ping -n -D -O -i 0.05 -c 1200 -W 2 -I "10.1.$1.1" "10.2.$1.1" >"$IT_WORK/ping-$1.txt" 2>&1
}
# rekey N WHO WHAT CMD...: run CMD (a rekey of tunnel N) and log it with its start time.
rekey() {
  local n=$1 who=$2 what=$3
  shift 3
  printf '%s %s %s rekeys the %s SA\n' "$(date +%s.%N)" "${NAME[$n]}" "$who" "$what" >>"$IT_WORK/rekeys.log"
  assert "$who rekeys ${NAME[$n]}'s $what SA" "$@"
}
# lost_pings N: "seq S sent at T, D s after: REKEY" for each lost ping of tunnel N: seqs
# ping -O reported outstanding (as it sent the next one) and never answered.
lost_pings() {
  python3 - "$IT_WORK/ping-$1.txt" "$IT_WORK/rekeys.log" "${NAME[$1]}" <<'PY'
import re, sys
events = [l.split(" ", 2) for l in open(sys.argv[2]) if l.split(" ")[1] == sys.argv[3]]
text = open(sys.argv[1]).read()
answered = set(re.findall(r"icmp_seq=(\d+) ttl=", text))
for t, seq in re.findall(r"\[([0-9.]+)\] no answer yet for icmp_seq=(\d+)", text):
    if seq in answered:
        continue
    t = float(t)
    before = [e for e in events if float(e[0]) <= t]
    after = f"{t - float(before[-1][0]):.2f}s after: {before[-1][2].strip()}" if before else "before any rekey"
    print(f"seq {seq} sent at {t:.2f}, {after}")
PY
}
# no_state_drops SITE: the kernel's count of ESP packets it dropped for want of an SA.
# shellcheck disable=SC2016 # awk program
no_state_drops() { in_site "$1" awk '$1 == "XfrmInNoStates" { print $2 }' /proc/net/xfrm_stat; }
before_2=$(spis gre-1) before_3=$(spis xfrm-2)
drops_a=$(no_state_drops a) drops_b=$(no_state_drops b)
pings 2 &
ping_2=$!
pings 3 &
ping_3=$!
capture_start a out "$IT_WORK/rekey.pcap" 120
sleep 3
rekey 2 routevpn CHILD rv rekey gre-1
rekey 3 pluto CHILD whack_in b --rekey-ipsec --name xfrm-2
sleep 3
rekey 2 pluto CHILD whack_in b --rekey-ipsec --name gre-1
rekey 3 routevpn CHILD rv rekey xfrm-2
sleep 3
rekey 2 routevpn IKE rv rekey gre-1 --ike
rekey 3 pluto IKE whack_in b --rekey-ike --name xfrm-2
sleep 3
rekey 2 pluto IKE whack_in b --rekey-ike --name gre-1
rekey 3 routevpn IKE rv rekey xfrm-2 --ike
sleep 3
# and a CHILD rekey over each side's new IKE SA
rekey 2 routevpn CHILD rv rekey gre-1
rekey 3 pluto CHILD whack_in b --rekey-ipsec --name xfrm-2
wait "$ping_2" || true
wait "$ping_3" || true
capture_stop
# pluto 4.10, as the responder of a CHILD rekey, sends on its new outbound SA as soon as
# it answers, before routevpn (the initiator) can have the matching inbound SA: it needs
# pluto's nonce and KE from that answer. The replies pluto sends meanwhile are dropped by
# a's kernel (XfrmInNoStates). Every other rekey must lose nothing, and b's kernel must
# never see ESP it has no SA for (routevpn never sends too early).
lost_total=0
for n in 2 3; do
  summary=$(grep 'packets transmitted' "$IT_WORK/ping-$n.txt" || echo "no ping summary")
  assert "${NAME[$n]}: 1200 pings at 20/s through the rekeys ($summary)" \
    grep -q '1200 packets transmitted' <<<"$summary"
  lost=$(lost_pings "$n")
  [[ -z $lost ]] || while read -r line; do echo "    ${NAME[$n]} lost $line"; done <<<"$lost"
  others=$(grep -vc 'after: routevpn rekeys the CHILD SA' <<<"$lost" || true)
  [[ -n $lost ]] || others=0
  assert "${NAME[$n]}: no ping lost but right after a CHILD rekey routevpn started ($others others)" \
    test "$others" = 0
  lost_total=$((lost_total + $(grep -c . <<<"$lost" || true)))
  assert "${NAME[$n]}: pluto holds the same CHILD SA after the rekeys" retry 10 1 same "$n"
done
drops_a=$(($(no_state_drops a) - drops_a)) drops_b=$(($(no_state_drops b) - drops_b))
log "lost pings: $lost_total; ESP dropped for want of an SA: $drops_a by a, $drops_b by b"
assert "b's kernel had an SA for every ESP packet routevpn sent ($drops_b dropped)" test "$drops_b" = 0
assert "each lost ping is a reply a's kernel could not decrypt yet ($lost_total lost, $drops_a dropped)" \
  test "$lost_total" -le "$drops_a"
assert "gre-1: new SPIs (were $before_2, now $(spis gre-1))" test "$(spis gre-1)" != "$before_2"
assert "xfrm-2: new SPIs (were $before_3, now $(spis xfrm-2))" test "$(spis xfrm-2)" != "$before_3"
assert "gre-1: 3 CHILD rekeys ($(count 'gre-1/gre-1: CHILD SA rekeyed'))" \
  test "$(count 'gre-1/gre-1: CHILD SA rekeyed')" = 3
assert "xfrm-2: 3 CHILD rekeys ($(count 'xfrm-2/xfrm-2: CHILD SA rekeyed'))" \
  test "$(count 'xfrm-2/xfrm-2: CHILD SA rekeyed')" = 3
assert "4 IKE rekeys ($(count 'IKE SA rekeyed'))" test "$(count 'IKE SA rekeyed')" = 4
assert "no IKE SA deleted or restarted, no rekey failed" \
  test "$(count 'IKE SA deleted\|initiating again\|rekeying failed\|rekeying the IKE SA failed')" = 0
assert_only_esp "only ESP on the outer link during the rekeys" "$IT_WORK/rekey.pcap" 2000
# the rekeyed SAs are gone: one CHILD SA per tunnel left in a's kernel (6 tunnels x 2)
settled() { test "$(sa_count a)" = 12; }
assert "old SAs removed: 12 states on site a" retry 25 0.2 settled

# --- pluto crashes; DPD on vti-d restarts the tunnel once pluto is back
stale=$(ours "$(sa_of vti-d)['spi_i']")
capture_start a out "$IT_WORK/dpd.pcap" 120
in_site a ping -n -q -i 0.2 -c 250 -W 1 -I 10.1.1.1 10.2.1.1 >"$IT_WORK/ping-dpd.txt" 2>&1 &
ping_dpd=$!
sleep 2
restarts=$(count 'vti-d: initiating again')
pluto_kill b
killed_at=$(date +%s)
assert_not "kill -9 left no pluto running in b" pluto_running_in b
# When routevpn gives the peer up: pluto_start below takes ~20 s under TCG (NSS).
(
  for ((i = 0; i < 300; i++)); do
    if (($(count 'vti-d: initiating again') > restarts)); then
      date +%s >"$IT_WORK/dpd-detected"
      exit 0
    fi
    sleep 0.2
  done
) &
IT_PIDS+=("$!")
# What `ipsec start` does before pluto: the dead pluto's kernel state goes.
in_site b ip xfrm state flush
in_site b ip xfrm policy flush
pluto_start b "$conns" "$secrets"
back() {
  test "$(ours "$(sa_of vti-d)['state'] + ' ' + $(sa_of vti-d)['spi_i']")" != "ESTABLISHED $stale" &&
    test "$(ours "$(sa_of vti-d)['state']")" = ESTABLISHED && ping_from a 10.1.1.1 10.2.1.1 1
}
# pluto's updown makes the VTI and its route in ~20 s under TCG before it answers IKE_AUTH.
assert "vti-d back by itself after pluto's crash" retry 160 0.5 back
took=$(($(date +%s) - killed_at))
detected=$(($(cat "$IT_WORK/dpd-detected" 2>/dev/null || echo 9999999999) - killed_at))
limit=$((DPD_DELAY + DPD_TIMEOUT + 3))
assert "routevpn restarted vti-d within DPD delay + timeout + 3 s (${detected}s <= ${limit}s; up again after ${took}s)" \
  test "$detected" -le "$limit"
assert "routevpn's log tells why" grep -q "vti-d: peer not responding" "$IT_WORK/daemon-a.log"
assert "vti-d: pluto holds the same CHILD SA after the restart" retry 10 1 same 1
kill "$ping_dpd" 2>/dev/null || true
wait "$ping_dpd" 2>/dev/null || true
capture_stop
# While pluto is down b's kernel answers the liveness checks with ICMP port unreachable
# (UDP 500); anything else in clear would be a leak.
no_leak() {
  local file=$1 esp clear
  esp=$(pcap_count "$file" esp)
  clear=$(pcap_count "$file" ip and not esp and not udp port 500 and not udp port 4500 \
    and not '(' 'icmp[icmptype] == icmp-unreach' and 'icmp[icmpcode] == 3' ')')
  echo "$esp ESP packets, $clear other packets in clear"
  ((esp >= 10 && clear == 0))
}
assert "no cleartext while pluto was down ($(no_leak "$IT_WORK/dpd.pcap"))" no_leak "$IT_WORK/dpd.pcap"

if grep -q "$PSK" "$IT_WORK/daemon-a.log"; then fail "the PSK appears in the daemon log"; else pass "the PSK never appears in the daemon log"; fi
grep -E 'rekeyed|removed|failed|deleted|not responding|initiating' "$IT_WORK/daemon-a.log" | sed 's/^/    | /' | tail -30

it_finish
