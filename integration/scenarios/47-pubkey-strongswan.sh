#!/usr/bin/env bash
# Public-key authentication against charon, routevpn as initiator and responder:
# vti1 with raw RSA keys (charon `pubkeys`), vti2 with ECDSA and vti4 with Ed25519
# certificates from one CA through an intermediate, on a 1280-octet path where IKE_AUTH
# travels in RFC 7383 fragments, gre5 (GRE over IPsec, transport mode) with raw RSA keys.
# Then a certificate from another CA (vti3) and an expired one (vti6) are refused, each
# named as such.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/../lib.sh"
it_init 47-pubkey-strongswan

ROUTEVPN=${ROUTEVPN:-$PWD/target/debug/routevpn}
modprobe -a ip_vti esp4 dummy

site_add a
site_add b
for site in a b; do
  in_site "$site" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
link_add a out 192.0.2.250/24 b out 192.0.2.251/24
# The path of every IKE message: 1280 octets.
ip -n a link set out mtu 1280
ip -n b link set out mtu 1280
lan_add a lan 10.1.0.1/24
lan_add b lan 10.2.0.1/24
# Tunnel N's device: gre5 for tunnel 5, vtiN for the others.
dev() { if (($1 == 5)); then echo gre5; else echo "vti$1"; fi; }
for n in 1 2 3 4 5 6; do
  ip -n a addr add "192.0.2.${n}1/24" dev out
  ip -n b addr add "192.0.2.${n}2/24" dev out
  ip -n a addr add "10.1.$n.1/24" dev lan
  ip -n b addr add "10.2.$n.1/24" dev lan
  if ((n == 5)); then
    ip -n b tunnel add gre5 mode gre local 192.0.2.52 remote 192.0.2.51 ttl 64
    ip -n b addr add 172.16.5.2/30 dev gre5
  else
    ip -n b tunnel add "vti$n" mode vti local "192.0.2.${n}2" remote "192.0.2.${n}1" key "$n"
    in_site b sysctl -qw "net.ipv4.conf.vti$n.disable_policy=1"
  fi
  ip -n b link set "$(dev "$n")" up
  ip -n b route add "10.1.$n.0/24" dev "$(dev "$n")" src "10.2.$n.1"
done

# --- keys and certificates, made now
K=$IT_WORK/keys
mkdir -p "$K"
rsa() { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null; }
ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ed() { openssl genpkey -algorithm ED25519 -out "$1" 2>/dev/null; }
rsa "$K/a-rsa.key"
rsa "$K/b-rsa.key"
openssl pkey -in "$K/a-rsa.key" -pubout -out "$K/a-rsa.pub"
openssl pkey -in "$K/b-rsa.key" -pubout -out "$K/b-rsa.pub"
# ca NAME: a self-signed root; issue KEY CN ISSUER EXT: a certificate for KEY.
ca() {
  ec "$K/$1.key"
  openssl req -x509 -new -key "$K/$1.key" -out "$K/$1.crt" -days 30 -subj "/O=Test/CN=$1" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
}
# DAYS: the certificate's validity (-1: it expired the moment it was made).
issue() {
  local name=$1 cn=$2 issuer=$3 ext=$4 keygen=${5:-ec}
  "$keygen" "$K/$name.key"
  printf '%b\n' "$ext" >"$K/$name.ext"
  openssl req -new -key "$K/$name.key" -subj "/O=Test/CN=$cn" 2>/dev/null |
    openssl x509 -req -CA "$K/$issuer.crt" -CAkey "$K/$issuer.key" -CAcreateserial \
      -days "${DAYS:-30}" -extfile "$K/$name.ext" -out "$K/$name.crt" 2>/dev/null
}
ca root
ca other-root
# An RSA intermediate makes the chain (and each side's IKE_AUTH) too long for 1280 octets.
rsa4096() { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:4096 -out "$1" 2>/dev/null; }
issue sub "Sub CA" root "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign" rsa4096
issue a-ec a.example sub "subjectAltName=DNS:a.example\nkeyUsage=digitalSignature"
issue b-ec b.example sub "subjectAltName=DNS:b.example\nkeyUsage=digitalSignature"
issue a-ed a.example sub "subjectAltName=DNS:a.example\nkeyUsage=digitalSignature" ed
issue b-ed b.example sub "subjectAltName=DNS:b.example\nkeyUsage=digitalSignature" ed
DAYS=-1 issue b-old b.example sub "subjectAltName=DNS:b.example\nkeyUsage=digitalSignature"
cat "$K/a-ec.crt" "$K/sub.crt" >"$K/a-chain.crt"
cat "$K/a-ed.crt" "$K/sub.crt" >"$K/a-ed-chain.crt"
assert "test PKI made" test -s "$K/a-chain.crt" -a -s "$K/b-ec.crt"

rv_site_a_init
cp "$K/a-rsa.key" "$K/a-ec.key" "$K/a-ed.key" "$A/secrets/"
chmod 600 "$A"/secrets/*
vti_profile() {
  local n=$1
  shift
  cat <<EOF
kind = "vti"
local = "192.0.2.${n}1"
remote = "192.0.2.${n}2"
$(printf '%s\n' "$@" | grep -v '^\[ike\]' | grep '_id = ' || true)
[ike]
proposals = ["aes128gcm16-prfsha256-ecp256"]
$(printf '%s\n' "$@" | grep -v '_id = ' || true)
start_action = "none"
close_action = "none"
[[child]]
esp_proposals = ["aes128gcm16"]
local_ts = ["10.1.$n.0/24"]
remote_ts = ["10.2.$n.0/24"]
[interface]
name = "vti$n"
addresses = ["10.1.$n.1/32"]
[[route]]
to = "10.2.$n.0/24"
src = "10.1.$n.1"
EOF
}
vti_profile 1 "private_key = \"../secrets/a-rsa.key\"" "remote_public_key = \"$K/b-rsa.pub\"" \
  >"$A/tunnels/vti1.toml"
vti_profile 2 'local_id = "a.example"' 'remote_id = "b.example"' \
  "private_key = \"../secrets/a-ec.key\"" "certificate = \"$K/a-chain.crt\"" "ca = [\"$K/root.crt\"]" \
  >"$A/tunnels/vti2.toml"
vti_profile 3 'local_id = "a.example"' 'remote_id = "b.example"' \
  "private_key = \"../secrets/a-ec.key\"" "certificate = \"$K/a-chain.crt\"" "ca = [\"$K/other-root.crt\"]" \
  >"$A/tunnels/vti3.toml"
vti_profile 4 'local_id = "a.example"' 'remote_id = "b.example"' \
  "private_key = \"../secrets/a-ed.key\"" "certificate = \"$K/a-ed-chain.crt\"" "ca = [\"$K/root.crt\"]" \
  >"$A/tunnels/vti4.toml"
vti_profile 6 'local_id = "a.example"' 'remote_id = "b.example"' \
  "private_key = \"../secrets/a-ec.key\"" "certificate = \"$K/a-chain.crt\"" "ca = [\"$K/root.crt\"]" \
  >"$A/tunnels/vti6.toml"
cat >"$A/tunnels/gre5.toml" <<EOF
kind = "gre"
local = "192.0.2.51"
remote = "192.0.2.52"
[ike]
proposals = ["aes128gcm16-prfsha256-ecp256"]
private_key = "../secrets/a-rsa.key"
remote_public_key = "$K/b-rsa.pub"
start_action = "none"
close_action = "none"
[[child]]
esp_proposals = ["aes128gcm16"]
[interface]
name = "gre5"
addresses = ["172.16.5.1/30"]
[[route]]
to = "10.2.5.0/24"
src = "10.1.5.1"
EOF
assert "the profiles check" rv check

# conn N LOCAL_AUTH REMOTE_AUTH: charon's side of tunnel N (GRE: transport mode).
conn() {
  local n=$1 local_auth=$2 remote_auth=$3 ts
  ts="local_ts = 10.2.$n.0/24
        remote_ts = 10.1.$n.0/24
        mark_in = $n
        mark_out = $n"
  if ((n == 5)); then
    ts="local_ts = dynamic[gre]
        remote_ts = dynamic[gre]
        mode = transport"
  fi
  cat <<EOF
  $(dev "$n") {
    version = 2
    local_addrs = 192.0.2.${n}2
    remote_addrs = 192.0.2.${n}1
    proposals = aes128gcm16-prfsha256-ecp256
    local { auth = pubkey
            $local_auth }
    remote { auth = pubkey
             $remote_auth }
    children {
      $(dev "$n") {
        $ts
        esp_proposals = aes128gcm16
        start_action = none
      }
    }
  }
EOF
}
# swanctl loads private keys from the private/ directory next to its swanctl.conf.
mkdir -p "$(charon_dir b)/private"
cp "$K/b-rsa.key" "$K/b-ec.key" "$K/b-ed.key" "$K/b-old.key" "$(charon_dir b)/private/"
charon_start b "connections {
$(conn 1 "id = 192.0.2.12
            pubkeys = $K/b-rsa.pub" "id = 192.0.2.11
             pubkeys = $K/a-rsa.pub")
$(conn 2 "id = b.example
            certs = $K/b-ec.crt" "id = a.example
             cacerts = $K/root.crt")
$(conn 3 "id = b.example
            certs = $K/b-ec.crt" "id = a.example
             cacerts = $K/root.crt")
$(conn 4 "id = b.example
            certs = $K/b-ed.crt" "id = a.example
             cacerts = $K/root.crt")
$(conn 5 "id = 192.0.2.52
            pubkeys = $K/b-rsa.pub" "id = 192.0.2.51
             pubkeys = $K/a-rsa.pub")
$(conn 6 "id = b.example
            certs = $K/b-old.crt" "id = a.example
             cacerts = $K/root.crt")
}
authorities {
  sub { cacert = $K/sub.crt }
}"
pass "charon started on site b"
rv_daemon_start

established() {
  local n=$1 role=$2 name mode=TUNNEL
  name=$(dev "$n")
  if ((n == 5)); then mode=TRANSPORT; fi
  assert "$name ($role): charon's CHILD SA is INSTALLED, $mode" \
    grep -q "INSTALLED, $mode" <<<"$(swanctl_in b --list-sas --ike "$name" 2>&1)"
  assert "$name ($role): ping 10.1.$n.1 -> 10.2.$n.1" ping_from a "10.1.$n.1" "10.2.$n.1" 2
}
for role in initiator responder; do
  capture_start a out "$IT_WORK/$role.pcap" 120
  for n in 1 2 4 5; do
    name=$(dev "$n")
    if [[ $role == initiator ]]; then
      out=$(rv up "$name" 2>&1) || true
      assert "$name: routevpn up as initiator ($out)" grep -q "CHILD SA installed" <<<"$out"
    else
      assert "$name: charon initiates" swanctl_in b --initiate --child "$name" --timeout 30
    fi
    established "$n" "$role"
  done
  capture_stop
  # SKF (payload type 53) right after the IKE header (on 4500, after the non-ESP marker;
  # charon moves there for IKE_AUTH as initiator): fragments, both directions.
  skf='((udp port 500 and udp[24] = 53) or (udp port 4500 and udp[28] = 53))'
  skf_out=$(pcap_count "$IT_WORK/$role.pcap" src 192.0.2.21 and "$skf")
  skf_in=$(pcap_count "$IT_WORK/$role.pcap" dst 192.0.2.21 and "$skf")
  assert "$role round: IKE_AUTH of vti2 fragmented both ways (ours $skf_out, charon's $skf_in)" \
    test "$skf_out" -ge 2 -a "$skf_in" -ge 2
  big=$(pcap_count "$IT_WORK/$role.pcap" 'ip[2:2] > 1280')
  assert "$role round: no IP packet over 1280 octets ($big)" test "$big" = 0
  for n in 1 2 4 5; do
    swanctl_in b --terminate --ike "$(dev "$n")" --timeout 10 >/dev/null 2>&1 || true
  done
  no_states() { test "$(sa_count a)" = 0; }
  assert "$role round: charon's deletes removed every SA on site a" retry 150 0.2 no_states
done
assert "the log says how charon proved itself (RSA, raw key)" \
  grep -q "vti1: IKE SA established.*peer authenticated by rsa-.* signature" "$IT_WORK/daemon-a.log"
assert "...and with a certificate (vti2)" \
  grep -q "vti2: IKE SA established.*with a certificate from a trusted CA" "$IT_WORK/daemon-a.log"
assert "...and with an Ed25519 certificate (vti4)" \
  grep -q "vti4: IKE SA established.*peer authenticated by ed25519 signature.*with a certificate from a trusted CA" "$IT_WORK/daemon-a.log"
assert "...and over GRE with a raw RSA key (gre5)" \
  grep -q "gre5: IKE SA established.*peer authenticated by rsa-.* signature" "$IT_WORK/daemon-a.log"

status=0
out=$(rv up vti3 2>&1) || status=$?
assert "a certificate from a CA we do not trust fails (exit $status): $out" test "$status" -ne 0
assert "...named as such" grep -q "is not issued by a trusted CA" <<<"$out"
status=0
out=$(rv up vti6 2>&1) || status=$?
assert "an expired certificate fails (exit $status): $out" test "$status" -ne 0
assert "...named as such" grep -q "has expired" <<<"$out"
if grep -q "BEGIN" "$IT_WORK/daemon-a.log"; then fail "key material in the daemon log"; else pass "no key material in the daemon log"; fi

it_finish
