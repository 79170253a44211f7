//! routevpn's engine against a real strongSwan charon on this host, for what the IKE SA
//! itself computes with the new algorithms: SKEYSEED and prf+ with the AES-XCBC / AES-CMAC
//! PRFs (XCBC's nonce rule included), the SK payload with AES-CTR, AES-CCM, AES-GCM-8/12 and
//! ChaCha20-Poly1305, and the ECP-521, Curve448 and MODP-6144/8192 exchanges. Each cell is
//! an IKE_SA_INIT + IKE_AUTH, once started by the engine and once by charon, that both
//! sides must authenticate: the engine reports the IKE SA established only after verifying
//! charon's AUTH, and charon lists it established only after verifying ours. (The host kernel has no ESP algorithms, so charon cannot
//! install the Child SA; the ESP side is scenario 48's, in the VM.)
//!
//! Needs root (a network namespace of its own, which charon and the engine's socket share,
//! on loopback only) and charon with the `ccm ctr chapoly xcbc cmac` plugins
//! (integration/test installs them).

use std::fs;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use routevpn::ike::crypto::Secret;
use routevpn::ike::engine::{
    ChildConfig, Engine, EngineConfig, EngineConnection, Event, IkeConfig,
};
use routevpn::profile::parse_traffic_selector;
use routevpn::proposal::{parse_esp, parse_ike};

const CHARON: &str = "/usr/lib/ipsec/charon";
const SWANCTL: &str = "/usr/sbin/swanctl";
/// charon's IKE port; 500 and 4500 stay free for nothing else to collide with.
const CHARON_PORT: u16 = 15500;
const PSK: &str = "host-interop-psk-4f1c9a7e20b35d68";
const PLUGINS: &str = "random nonce aes sha1 sha2 hmac kdf gcm ccm ctr chapoly xcbc cmac \
gmp openssl pem pkcs1 x509 pubkey kernel-netlink socket-default vici";

/// IKE proposal of each cell; the ESP proposal only has to be acceptable to both.
const CELLS: &[&str] = &[
    "aes128ctr-aesxcbc-modp2048",
    "aes256ctr-aescmac-ecp521",
    "aes128-aesxcbc-curve448",
    "chacha20poly1305-prfaesxcbc-x25519",
    "aes256ccm16-prfaescmac-ecp384",
    "aes128ccm8-prfsha256-curve448",
    "aes192ccm12-prfaesxcbc-ecp256",
    "aes256gcm8-prfsha384-modp6144",
    "aes128gcm12-prfaescmac-modp8192",
];

/// Who starts the handshake: each cell runs once in each role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// The engine initiates.
    Initiator,
    /// charon initiates, the engine answers.
    Responder,
}

const ROLES: [Role; 2] = [Role::Initiator, Role::Responder];

/// The connection name of cell `n` in `role`, the same on both sides.
fn name(role: Role, n: usize) -> String {
    match role {
        Role::Initiator => format!("init{n}"),
        Role::Responder => format!("resp{n}"),
    }
}

/// Our address for cell `n` in `role`; charon is 127.0.0.1.
fn ours(role: Role, n: usize) -> String {
    match role {
        Role::Initiator => format!("127.0.1.{}", n + 1),
        Role::Responder => format!("127.0.2.{}", n + 1),
    }
}

fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!("{program} {args:?} failed: {text}"))
    }
}

/// charon in the calling thread's network namespace, with its own configuration, VICI
/// socket and a private /run; killed (by its pid) when dropped.
struct Charon {
    child: Child,
    dir: tempfile::TempDir,
}

impl Charon {
    fn uri(dir: &Path) -> String {
        format!("unix://{}/charon.vici", dir.display())
    }

    fn start() -> Charon {
        let dir = tempfile::tempdir().unwrap();
        let uri = Self::uri(dir.path());
        let log = dir.path().join("charon.log");
        fs::write(
            dir.path().join("strongswan.conf"),
            format!(
                "charon {{
  load_modular = no
  load = {PLUGINS}
  port = {CHARON_PORT}
  port_nat_t = {}
  install_routes = no
  retransmit_tries = 2
  plugins {{ vici {{ socket = {uri} }} }}
  filelog {{ log {{ path = {} \n flush_line = yes \n default = 1 \n ike = 2 \n cfg = 2 }} }}
}}
swanctl {{
  load = pem pkcs1 x509 pubkey random nonce openssl
  socket = {uri}
}}
",
                CHARON_PORT + 1,
                log.display()
            ),
        )
        .unwrap();
        let mut connections = String::new();
        for (role, (n, ike)) in ROLES
            .iter()
            .flat_map(|r| CELLS.iter().enumerate().map(move |c| (*r, c)))
        {
            connections += &format!(
                "  {name} {{
    version = 2
    # MOBIKE would move an initiating charon to port 4500 at once; the engine listens
    # on 500 only here.
    mobike = no
    local_addrs = 127.0.0.1
    remote_addrs = {peer}
    proposals = {ike}
    local {{ auth = psk
            id = 127.0.0.1 }}
    remote {{ auth = psk
             id = {peer} }}
    children {{ net {{ local_ts = 10.2.0.0/16
                      remote_ts = 10.1.0.0/16
                      esp_proposals = aes128gcm16 }} }}
  }}
",
                name = name(role, n),
                peer = ours(role, n)
            );
        }
        fs::write(
            dir.path().join("swanctl.conf"),
            format!(
                "connections {{\n{connections}}}\nsecrets {{ ike-all {{ secret = \"{PSK}\" }} }}\n"
            ),
        )
        .unwrap();
        // A private /run: charon keeps its pid file there and refuses to start beside
        // another charon's.
        let child = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c"])
            .arg("mount -t tmpfs -o mode=0755 tmpfs /run && exec \"$0\"")
            .arg(CHARON)
            .env("STRONGSWAN_CONF", dir.path().join("strongswan.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start charon");
        let charon = Charon { child, dir };
        let conf = charon.dir.path().join("strongswan.conf");
        // swanctl finds charon's socket in the same strongswan.conf.
        let swanctl = |args: &[&str]| {
            Command::new(SWANCTL)
                .args(args)
                .env("STRONGSWAN_CONF", &conf)
                .output()
        };
        let mut last = String::new();
        let up = (0..100).any(|_| {
            let out = swanctl(&["--stats"]).expect("run swanctl");
            if out.status.success() {
                return true;
            }
            last = String::from_utf8_lossy(&out.stderr).into_owned();
            std::thread::sleep(Duration::from_millis(100));
            false
        });
        assert!(
            up,
            "charon did not come up (swanctl: {last}): {}",
            charon.log()
        );
        let file = charon.dir.path().join("swanctl.conf");
        let loaded = swanctl(&["--load-all", "--file", file.to_str().unwrap()]).unwrap();
        assert!(
            loaded.status.success(),
            "swanctl --load-all: {}",
            String::from_utf8_lossy(&loaded.stdout)
        );
        charon
    }

    /// `swanctl --initiate` for `name`, in the background: it returns only once charon's
    /// Child SA failed (this kernel has no ESP), which is not what the test waits for.
    fn initiate(&self, name: &str) -> Reaped {
        let child = Command::new(SWANCTL)
            .args([
                "--initiate",
                "--child",
                "net",
                "--ike",
                name,
                "--timeout",
                "20",
            ])
            .env("STRONGSWAN_CONF", self.dir.path().join("strongswan.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run swanctl --initiate");
        Reaped(child)
    }

    /// Waits (up to 10 s) until charon lists `name`'s IKE SA as established.
    fn established(&self, name: &str) -> Result<(), String> {
        let guard = Instant::now() + Duration::from_secs(10);
        loop {
            let sas = self.list_sas(name);
            if sas.contains("ESTABLISHED") {
                return Ok(());
            }
            if Instant::now() > guard {
                return Err(format!("charon lists no established IKE SA:\n{sas}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("charon.log")).unwrap_or_default()
    }

    fn list_sas(&self, name: &str) -> String {
        let out = Command::new(SWANCTL)
            .args(["--list-sas", "--ike", name])
            .env("STRONGSWAN_CONF", self.dir.path().join("strongswan.conf"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// A helper process, killed (by its pid) and reaped when dropped.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Charon {
    fn drop(&mut self) {
        // The pid is charon's own: unshare and sh exec it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn connection(role: Role, n: usize, ike: &str) -> EngineConnection {
    let ts = |net: &str| vec![parse_traffic_selector(net).unwrap()];
    let esp = vec![parse_esp("aes128gcm16", false).unwrap()];
    let child = ChildConfig::new("net", ts("10.1.0.0/16"), ts("10.2.0.0/16"), esp);
    let remote = "127.0.0.1".parse().unwrap();
    let ike = vec![parse_ike(ike, true).unwrap()];
    let mut config = IkeConfig::new(&name(role, n), remote, ike, vec![child]);
    config.remote_port = CHARON_PORT;
    EngineConnection::with_psk(
        config,
        ours(role, n).parse().unwrap(),
        Secret::from_slice(PSK.as_bytes()),
    )
}

/// Runs one cell's handshake over a real socket until the engine reports the IKE SA
/// established (Ok with its algorithms) or failed (Err), with a 20 s guard. As responder,
/// charon is asked to initiate (`swanctl --initiate`, reaped before returning).
fn handshake(charon: &Charon, role: Role, n: usize, ike: &str) -> Result<String, String> {
    let local: SocketAddr = format!("{}:500", ours(role, n)).parse().unwrap();
    let socket = UdpSocket::bind(local).map_err(|e| format!("bind {local}: {e}"))?;
    let mut engine = Engine::new(EngineConfig::default());
    engine.add_connection(connection(role, n, ike));
    let _initiator = match role {
        Role::Initiator => {
            engine
                .initiate(Instant::now(), &name(role, n))
                .map_err(|e| e.to_string())?;
            None
        }
        Role::Responder => Some(charon.initiate(&name(role, n))),
    };
    let guard = Instant::now() + Duration::from_secs(20);
    let mut buf = vec![0u8; 65536];
    while Instant::now() < guard {
        while let Some(t) = engine.poll_transmit() {
            socket
                .send_to(&t.payload, t.remote)
                .map_err(|e| e.to_string())?;
        }
        while let Some(event) = engine.poll_event() {
            match event {
                Event::Established { ike, .. } => return Ok(ike),
                Event::Failed { reason, .. } => return Err(reason.to_string()),
                _ => {}
            }
        }
        let now = Instant::now();
        let wait = engine
            .next_timeout()
            .map_or(Duration::from_millis(200), |t| {
                t.saturating_duration_since(now)
            })
            .clamp(Duration::from_millis(1), Duration::from_millis(200));
        socket.set_read_timeout(Some(wait)).unwrap();
        match socket.recv_from(&mut buf) {
            Ok((len, from)) => engine.handle_datagram(Instant::now(), local, from, &buf[..len]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                engine.handle_timeout(Instant::now());
            }
            Err(e) => return Err(format!("recv: {e}")),
        }
    }
    Err("no answer within 20 s".into())
}

#[test]
fn ike_sas_with_the_new_algorithms_authenticate_against_charon() {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test runs charon in a network namespace of its own and needs root, \
         as integration/test gives it"
    );
    assert!(
        Path::new(CHARON).exists() && Path::new(SWANCTL).exists(),
        "charon and swanctl are needed: integration/test installs strongswan-charon, \
         strongswan-swanctl and the standard and extra plugins"
    );
    // This thread (and what it spawns) moves into a new network namespace: charon and our
    // sockets meet on its loopback and nowhere else.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(
        rc,
        0,
        "unshare(CLONE_NEWNET): {}",
        io::Error::last_os_error()
    );
    // All of 127.0.0.0/8 is local on lo: each cell binds an address of its own there.
    run("ip", &["link", "set", "lo", "up"]).unwrap();
    let charon = Charon::start();
    let mut failures = Vec::new();
    for role in ROLES {
        for (n, ike) in CELLS.iter().enumerate() {
            let expected = parse_ike(ike, true).unwrap().to_string();
            let outcome = handshake(&charon, role, n, ike).and_then(|chosen| {
                if chosen != expected {
                    return Err(format!("chose {chosen}, expected {expected}"));
                }
                charon.established(&name(role, n))
            });
            if let Err(why) = outcome {
                failures.push(format!("{ike} ({role:?}): {why}"));
            }
        }
    }
    let log: PathBuf = charon.dir.path().join("charon.log");
    assert!(
        failures.is_empty(),
        "{}\n--- charon log ({}) tail:\n{}",
        failures.join("\n"),
        log.display(),
        charon
            .log()
            .lines()
            .rev()
            .take(400)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
