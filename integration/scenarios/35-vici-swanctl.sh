#!/usr/bin/env bash
# The real swanctl drives the routevpn daemon over VICI against a charon peer:
# --load-all of a swanctl directory with certificates (x509/, x509ca/, private/) loads
# a run-time VTI connection, --list-certs shows them, --initiate brings it up, both
# sides' --list-sas agree field by field (state, IKE and ESP SPIs, proposals,
# selectors), --terminate ends it at charon too. The key stays out of
# the log and of every file under the daemon's state.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/../lib.sh"
it_init 35-vici-swanctl

ROUTEVPN=${ROUTEVPN:-$PWD/target/debug/routevpn}
modprobe -a ip_vti esp4 dummy
two_sites 1
ip -n b tunnel add vti1 mode vti local 192.0.2.12 remote 192.0.2.11 key 1
in_site b sysctl -qw net.ipv4.conf.vti1.disable_policy=1
ip -n b link set vti1 up
ip -n b route add 10.1.1.0/24 dev vti1 src 10.2.1.1

# --- a CA and one ECDSA certificate per side
K=$IT_WORK/keys
mkdir -p "$K"
ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ec "$K/root.key"
openssl req -x509 -new -key "$K/root.key" -out "$K/root.crt" -days 30 -subj "/O=Test/CN=root" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
for side in a b; do
  ec "$K/$side.key"
  printf 'subjectAltName=DNS:%s.example\nkeyUsage=digitalSignature\n' "$side" >"$K/$side.ext"
  openssl req -new -key "$K/$side.key" -subj "/O=Test/CN=$side.example" 2>/dev/null |
    openssl x509 -req -CA "$K/root.crt" -CAkey "$K/root.key" -CAcreateserial -days 30 \
      -extfile "$K/$side.ext" -out "$K/$side.crt" 2>/dev/null
done
assert "test PKI made" test -s "$K/a.crt" -a -s "$K/b.crt"

mkdir -p "$(charon_dir b)/private"
cp "$K/b.key" "$(charon_dir b)/private/"
charon_start b "connections {
  vici1 {
    version = 2
    local_addrs = 192.0.2.12
    remote_addrs = 192.0.2.11
    proposals = aes128gcm16-prfsha256-ecp256
    local { auth = pubkey
            id = b.example
            certs = $K/b.crt }
    remote { auth = pubkey
             id = a.example
             cacerts = $K/root.crt }
    children {
      vici1 {
        local_ts = 10.2.1.0/24
        remote_ts = 10.1.1.0/24
        esp_proposals = aes128gcm16
        mark_in = 1
        mark_out = 1
        start_action = none
      }
    }
  }
}"
pass "charon started on site b"

# --- routevpn on site a: no profile; everything comes over VICI
rv_site_a_init
rv_daemon_start
S=$IT_WORK/swanctl-a
mkdir -p "$S/x509" "$S/x509ca" "$S/private"
cp "$K/a.crt" "$S/x509/a.pem"
cp "$K/root.crt" "$S/x509ca/root.pem"
cp "$K/a.key" "$S/private/a.key"
chmod 600 "$S/private/a.key"
cat >"$S/swanctl.conf" <<EOF
connections {
  vici1 {
    version = 2
    local_addrs = 192.0.2.11
    remote_addrs = 192.0.2.12
    proposals = aes128gcm16-prfsha256-ecp256
    local { auth = pubkey
            certs = a.pem
            id = a.example }
    remote { auth = pubkey
             id = b.example }
    children {
      vici1 {
        local_ts = 10.1.1.0/24
        remote_ts = 10.2.1.0/24
        esp_proposals = aes128gcm16
        mark_in = 1
        mark_out = 1
        start_action = none
      }
    }
  }
}
EOF
# rvswan --COMMAND [ARGS...]: Debian's swanctl against routevpn's VICI socket.
rvswan() {
  local cmd=$1
  shift
  in_site a env SWANCTL_DIR="$S" swanctl "$cmd" --uri "unix://$A/state/charon.vici" "$@"
}
out=$(rvswan --load-all --file "$S/swanctl.conf" 2>&1) || true
assert "swanctl --load-all loads the key ($out)" holds -q "loaded ECDSA key from '$S/private/a.key'" <<<"$out"
assert "...the certificates" holds -q "loaded certificate from '$S/x509ca/root.pem'" <<<"$out"
assert "...and the connection" holds -q "loaded connection 'vici1'" <<<"$out"
certs=$(rvswan --list-certs 2>&1) || true
assert "--list-certs: our certificate, with its private key ($certs)" \
  holds -q 'subject:  "O=Test, CN=a.example"' <<<"$certs"
assert "...and the CA" holds -q 'subject:  "O=Test, CN=root"' <<<"$certs"
assert "...one private key" test "$(grep -c 'has private key' <<<"$certs")" = 1
conns=$(rvswan --list-conns 2>&1) || true
assert "--list-conns lists vici1 ($conns)" holds -q '^vici1: IKEv2' <<<"$conns"
applied() { test -e "$A/state/vici-conns/vici1.toml"; }
assert "the connection's profile is applied" retry 50 0.2 applied

assert "swanctl --initiate over routevpn's VICI" rvswan --initiate --child vici1 --timeout 30
ours=$(rvswan --list-sas --ike vici1 2>&1) || true
theirs=$(swanctl_in b --list-sas --ike vici1 2>&1) || true
log "routevpn: $ours"
log "charon: $theirs"
# Each field from one side's --list-sas; charon's local is our remote and its in our out.
ike_spis() { sed -n 's/.*IKEv2, \([0-9a-f]*\)_i\*\{0,1\} \([0-9a-f]*\)_r\*\{0,1\}.*/\1 \2/p' | sed -n 1p; }
state() { sed -n 's/^vici1: #[0-9]*, \([A-Z_]*\),.*/\1/p' | sed -n 1p; }
ike_proposal() { grep -Eo '^ +AES_GCM[^ ]*/PRF[^ ]*' | tr -d ' ' | sed -n 1p; }
esp() { grep -Eo 'ESP:[^ ]*' | sed -n 1p; }
child_spis() { awk '/^ +in /{i=$2} /^ +out /{o=$2} END{gsub(",", "", i); gsub(",", "", o); print i, o}'; }
selectors() { awk '/^ +local /{l=$2} /^ +remote /{r=$2} END{print l, r}'; }
reversed() { awk '{print $2, $1}'; }
assert "both ESTABLISHED ($(state <<<"$ours") / $(state <<<"$theirs"))" \
  test "$(state <<<"$ours")" = ESTABLISHED -a "$(state <<<"$theirs")" = ESTABLISHED
assert "same IKE SPIs ($(ike_spis <<<"$ours"))" test "$(ike_spis <<<"$ours")" = "$(ike_spis <<<"$theirs")"
assert "IKE SPIs shown" test -n "$(ike_spis <<<"$ours")"
assert "same IKE proposal ($(ike_proposal <<<"$ours"))" \
  test "$(ike_proposal <<<"$ours")" = "$(ike_proposal <<<"$theirs")" -a -n "$(ike_proposal <<<"$ours")"
assert "same ESP proposal ($(esp <<<"$ours"))" test "$(esp <<<"$ours")" = "$(esp <<<"$theirs")" -a -n "$(esp <<<"$ours")"
assert "ESP SPIs mirrored ($(child_spis <<<"$ours") / $(child_spis <<<"$theirs"))" \
  test "$(child_spis <<<"$ours")" = "$(child_spis <<<"$theirs" | reversed)"
assert "selectors mirrored ($(selectors <<<"$ours"))" \
  test "$(selectors <<<"$ours")" = "10.1.1.0/24 10.2.1.0/24" -a "$(selectors <<<"$theirs")" = "10.2.1.0/24 10.1.1.0/24"
assert "swanctl --terminate over routevpn's VICI" rvswan --terminate --ike vici1 --timeout 10
gone() { ! swanctl_in b --list-sas --ike vici1 2>/dev/null | holds -q ESTABLISHED; }
assert "charon's IKE SA is gone too" retry 50 0.2 gone

keyline=$(sed -n 2p "$K/a.key")
assert_not "the private key is not in the daemon log" grep -qF "$keyline" "$IT_WORK/daemon-a.log"
assert_not "...nor in any file under the state directory" grep -rqF "$keyline" "$A/state"
it_finish
