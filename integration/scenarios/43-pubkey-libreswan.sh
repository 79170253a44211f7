#!/usr/bin/env bash
# Public-key authentication against libreswan 4.10's pluto, VTI, routevpn as initiator and
# responder:
#   raw RSA keys, exchanged as the libreswan guides do: pluto's key made with
#   `ipsec rsasigkey` into its NSS database and shown with `ipsec showhostkey --left`
#   (pasted into routevpn's remote_public_key), ours shown with `routevpn pubkey
#   --libreswan` (pasted into pluto's rightrsasigkey=): rsa-i (routevpn initiates),
#   rsa-r (pluto initiates);
#   X.509 certificates from one CA (ECDSA P-256, distinguished names as identities; pluto's
#   certificate and key imported into NSS with pk12util): crt-i, crt-r.
# Each cell: both sides established, each saying the peer proved itself with a signature
# (not a PSK), the same CHILD SPIs, pings, only ESP on the wire.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/../lib.sh"
it_init 43-pubkey-libreswan

ROUTEVPN=${ROUTEVPN:-$PWD/target/debug/routevpn}
modprobe -a ip_vti esp4 dummy

# Tunnel N: outer 192.0.2.N1 (a) <-> 192.0.2.N2 (b), LANs 10.1.N.0/24 <-> 10.2.N.0/24.
NAME=(x rsa-i rsa-r crt-i crt-r)
ROLE=(x initiator responder initiator responder)
TUNNELS=(1 2 3 4)

two_sites "${TUNNELS[@]}"

rv_site_a_init
K=$IT_WORK/keys
mkdir -p "$K"

# --- pluto's NSS database: its raw RSA key, and its certificate with the CA
NSS=$(pluto_dir b)/nss
mkdir -p "$NSS"
certutil -N --empty-password -d "sql:$NSS"
ckaid=$(in_pluto_env b "$LIBRESWAN_EXEC/rsasigkey" --nssdir "$NSS" --seeddev /dev/urandom 3072 2>&1 |
  sed -n 's/.*with CKAID \([0-9a-f]*\) .*/\1/p')
assert "pluto's RSA host key generated (CKAID $ckaid)" test -n "$ckaid"
PLUTO_RSA=$(in_pluto_env b "$LIBRESWAN_EXEC/showhostkey" --nssdir "$NSS" --left --ckaid "$ckaid" |
  sed -n 's/^[[:space:]]*leftrsasigkey=//p')
printf 'leftrsasigkey=%s\n' "$PLUTO_RSA" >"$A/secrets/pluto-rsa.pub"

ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ec "$K/ca.key"
openssl req -x509 -new -key "$K/ca.key" -out "$K/ca.crt" -days 30 -subj "/O=Test/CN=Test CA" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
# issue NAME IP: a certificate for site NAME, subject O=Test, CN=NAME, its IP as SAN.
issue() {
  ec "$K/$1.key"
  printf 'subjectAltName=IP:%s\nkeyUsage=critical,digitalSignature\n' "$2" >"$K/$1.ext"
  openssl req -new -key "$K/$1.key" -subj "/O=Test/CN=$1" 2>/dev/null |
    openssl x509 -req -CA "$K/ca.crt" -CAkey "$K/ca.key" -CAcreateserial -days 30 \
      -extfile "$K/$1.ext" -out "$K/$1.crt" 2>/dev/null
}
issue site-a 192.0.2.31
issue site-b 192.0.2.32
certutil -A -d "sql:$NSS" -n test-ca -t "CT,," -i "$K/ca.crt"
openssl pkcs12 -export -inkey "$K/site-b.key" -in "$K/site-b.crt" -name site-b \
  -passout pass: -out "$K/site-b.p12"
assert "pluto's certificate and key imported" pk12util -i "$K/site-b.p12" -d "sql:$NSS" -W ''
install -m 600 "$K/site-a.key" "$A/secrets/site-a.key"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$A/secrets/rsa.key" 2>/dev/null
chmod 600 "$A/secrets/rsa.key"

# --- routevpn's profiles on site a
for n in "${TUNNELS[@]}"; do
  {
    printf 'kind = "vti"\nlocal = "192.0.2.%s1"\nremote = "192.0.2.%s2"\n' "$n" "$n"
    [[ ${NAME[$n]} != crt-* ]] || printf 'remote_id = "O=Test, CN=site-b"\n'
    printf '[ike]\nauth = "pubkey"\nstart_action = "none"\nclose_action = "none"\n'
    case ${NAME[$n]} in
      rsa-*)
        printf 'private_key = "../secrets/rsa.key"\nremote_public_key = "../secrets/pluto-rsa.pub"\n'
        ;;
      crt-*)
        printf 'private_key = "../secrets/site-a.key"\ncertificate = "%s"\nca = ["%s"]\n' \
          "$K/site-a.crt" "$K/ca.crt"
        ;;
    esac
    printf '[[child]]\nlocal_ts = ["10.1.%s.0/24"]\nremote_ts = ["10.2.%s.0/24"]\n' "$n" "$n"
    printf '[interface]\nname = "%s"\n' "${NAME[$n]}"
    printf '[[route]]\nto = "10.2.%s.0/24"\nsrc = "10.1.%s.1"\n' "$n" "$n"
  } >"$A/tunnels/${NAME[$n]}.toml"
done
assert "routevpn check accepts the profiles" rv check
OUR_RSA=$(rv pubkey rsa-i --libreswan | sed -n 's/^leftrsasigkey=//p')
assert "routevpn pubkey --libreswan prints our key in 0s form" test "${OUR_RSA:0:2}" = 0s

# --- pluto's side on site b: libreswan's routed VTI (mark=, vti-interface=).
conn_text() {
  local n=$1
  printf 'conn %s\n  left=192.0.2.%s2\n  right=192.0.2.%s1\n' "${NAME[$n]}" "$n" "$n"
  printf '  ikev2=yes\n  auto=add\n'
  printf '  leftsubnet=10.2.%s.0/24\n  rightsubnet=10.1.%s.0/24\n' "$n" "$n"
  printf '  mark=%s/0xffffffff\n  vti-interface=lsvti%s\n  vti-routing=yes\n' "$n" "$n"
  case ${NAME[$n]} in
    rsa-*)
      printf '  authby=rsasig\n  leftrsasigkey=%s\n  rightrsasigkey=%s\n' "$PLUTO_RSA" "$OUR_RSA"
      ;;
    crt-*)
      # authby names the key type: with the default (rsasig) pluto labels its ECDSA
      # signature RSA-PSS.
      printf '  authby=ecdsa\n  leftcert=site-b\n  leftid=%%fromcert\n  rightid="O=Test, CN=site-a"\n'
      printf '  rightca=%%same\n'
      ;;
  esac
  printf '\n'
}
conns=$(for n in "${TUNNELS[@]}"; do conn_text "$n"; done)
pluto_start b "$conns" ""
pass "pluto started on site b with ${#TUNNELS[@]} connections"
rv_daemon_start

# signed N: both sides say the peer of tunnel N proved itself with a signature.
signed() {
  local name=${NAME[$1]}
  grep -q "$name: IKE SA established.*peer authenticated by .*signature" "$IT_WORK/daemon-a.log" &&
    grep "\"$name\".*established IKE SA; authenticated peer" "$(pluto_dir b)/pluto.log" |
    holds -vq 'authby=secret'
}

for role in initiator responder; do
  capture_start a out "$IT_WORK/$role.pcap" 120
  for n in "${TUNNELS[@]}"; do
    [[ ${ROLE[$n]} == "$role" ]] || continue
    name=${NAME[$n]}
    if [[ $role == initiator ]]; then
      out=$(rv up "$name" 2>&1) || true
      assert "$name: routevpn up as initiator ($out)" up_done "$name" "$out"
    else
      assert "$name: pluto initiates" whack_in b --initiate --name "$name"
      assert "$name: routevpn installed the CHILD SA" retry 60 0.5 child_up "$name"
    fi
    assert "$name ($role): each side authenticated the other by signature" signed "$n"
    pluto_cell_checks "$n" "$name ($role)"
  done
  capture_stop
  assert_only_esp "$role round: only ESP on the outer link" "$IT_WORK/$role.pcap" 6
done
grep "established IKE SA; authenticated peer" "$(pluto_dir b)/pluto.log" | sed 's/^/    [pluto] /' || true
