//! strongSwan's own `swanctl` drives routevpn's VICI socket: the daemon's server and
//! command handler in front of an engine that negotiates with a second engine over a
//! simulated network (the host kernel cannot install ESP SAs; the "kernel" here holds the
//! SAs the engine asked for, with zero counters). Each output is checked field by field
//! against the engine's state.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::peers::{connection, dpd, engine, Pair, A, B, TO_B};
use routevpn::apply::status::SaStatus;
use routevpn::daemon::credentials::authenticators;
use routevpn::daemon::vici_config::Loaded;
use routevpn::daemon::vici_handler::{self, Backend, Deferred, Initiations};
use routevpn::daemon::vici_server::{self, Call, Counters, Limits};
use routevpn::ike::engine::{
    DpdAction, Engine, EngineConfig, EngineConnection, KernelAction, StartAction,
};
use routevpn::swanctl::import::ImportedProfile;
use routevpn::swanctl::install;
use routevpn::vici::codec::{self, Element, Message, Packet};
use routevpn::vici::messages::{self, Stats};
use tokio::sync::{broadcast, mpsc};

const SWANCTL: &str = "/usr/sbin/swanctl";

/// Side a of the pair, served over VICI.
struct Harness {
    pair: Pair,
    kernel: Vec<SaStatus>,
    initiations: Initiations,
    events: broadcast::Sender<(String, Message)>,
    /// How many of side a's recorded events and actions were handled.
    seen: (usize, usize),
    loaded: Loaded,
    /// Where the loaded connections' profiles are written, one directory per change.
    loaded_dir: tempfile::TempDir,
    /// Times the loaded connections were applied, and checked.
    changes: usize,
    checks: usize,
    deferred: Deferred,
}

impl Backend for Harness {
    fn engine(&mut self) -> &mut Engine {
        &mut self.pair.engines[0]
    }

    fn ike_port(&self) -> u16 {
        500
    }

    fn kernel_sas(&mut self) -> Result<Vec<SaStatus>, String> {
        Ok(self.kernel.clone())
    }

    fn stats(&self) -> Stats {
        Stats {
            running_secs: 100,
            since: "Dec  4 11:00:00 2026".into(),
            queued: 0,
        }
    }

    fn initiations(&mut self) -> &mut Initiations {
        &mut self.initiations
    }

    fn loaded(&mut self) -> &mut Loaded {
        &mut self.loaded
    }

    /// Side a's own connection stands for a profile.
    fn profile_defines(&self, name: &str) -> bool {
        name == TO_B
    }

    fn check(&mut self, profiles: &[ImportedProfile]) -> Result<(), String> {
        self.checks += 1;
        self.installed(profiles, &format!("check-{}", self.checks))
            .map(drop)
    }

    /// As the daemon does, without a kernel: the profiles installed and loaded as
    /// `routevpn check` would, planned, and their IKE connections given to the engine.
    fn configure(
        &mut self,
        profiles: Vec<ImportedProfile>,
        unloaded: &[String],
    ) -> Result<(), String> {
        self.changes += 1;
        let tunnels = self.installed(&profiles, &self.changes.to_string())?;
        let plan = routevpn::plan::build(&tunnels, &Default::default());
        let now = self.pair.now;
        let engine = &mut self.pair.engines[0];
        // As the daemon's reload: the engine forgets what is no longer configured (one
        // unloaded, or left out as its key was unloaded).
        let kept: Vec<&str> = profiles.iter().map(|p| p.name.as_str()).collect();
        let mut gone: Vec<&str> = (self.loaded.conn_names())
            .map(String::as_str)
            .filter(|n| !kept.contains(n))
            .collect();
        gone.extend(unloaded.iter().map(String::as_str));
        for name in gone {
            let _ = engine.remove_connection(now, name);
        }
        for t in &plan.tunnels {
            let auth = t
                .ike
                .auth
                .as_ref()
                .ok_or("a loaded connection without IKE")?;
            let routevpn::plan::Endpoint::Address(local_addr) = t.ike.local else {
                return Err("the test's connections name local_addrs".into());
            };
            let (local_auth, remote_auth) = authenticators(auth)?;
            engine.add_connection(EngineConnection {
                config: t.ike.connection.clone(),
                local_addr,
                local_auth,
                remote_auth,
            });
        }
        Ok(())
    }

    fn deferred(&mut self) -> &mut Deferred {
        &mut self.deferred
    }
}

impl Harness {
    /// `profiles` installed in `sub` of the loaded directory and loaded as the daemon does.
    fn installed(
        &self,
        profiles: &[ImportedProfile],
        sub: &str,
    ) -> Result<Vec<routevpn::model::Tunnel>, String> {
        let out = self.loaded_dir.path().join(sub);
        let options = install::Options {
            out: out.clone(),
            force: false,
            dry_run: false,
            profile: routevpn::profile::Options {
                insecure_secrets: true,
            },
        };
        install::install(profiles, &options).map_err(|e| format!("{e:?}"))?;
        let loaded = routevpn::profile::load(&[out], options.profile);
        loaded.tunnels.ok_or(format!("{:?}", loaded.diagnostics))
    }
}

/// Side b's connection to side a (PSK).
fn peer() -> EngineConnection {
    connection(
        false,
        dpd(30, 150, DpdAction::Restart),
        StartAction::None,
        StartAction::None,
    )
}

impl Harness {
    fn new(events: broadcast::Sender<(String, Message)>, b: EngineConnection) -> Harness {
        let a = connection(
            true,
            dpd(30, 150, DpdAction::Restart),
            StartAction::None,
            StartAction::None,
        );
        Harness {
            pair: Pair::new(
                engine(EngineConfig::default(), a),
                engine(EngineConfig::default(), b),
            ),
            kernel: Vec::new(),
            initiations: Initiations::default(),
            events,
            seen: (0, 0),
            loaded: Loaded::default(),
            loaded_dir: tempfile::tempdir().unwrap(),
            changes: 0,
            checks: 0,
            deferred: Deferred::default(),
        }
    }

    /// Handles a call as the daemon does, lets the engines talk, then carries out side a's
    /// kernel actions and raises its events.
    fn serve(&mut self, call: Call) {
        let now = self.pair.now;
        vici_handler::handle(self, call, now);
        self.pair.settle();
        let record = &self.pair.records[0];
        for (_, action) in &record.actions[self.seen.1..] {
            match action {
                KernelAction::InstallChildSa(i) => {
                    for d in [&i.inbound, &i.outbound] {
                        self.kernel.push(SaStatus {
                            reqid: i.reqid,
                            spi: d.spi,
                            src: d.src,
                            dst: d.dst,
                            algorithms: String::new(),
                            bytes: 0,
                            packets: 0,
                            age: 0,
                        });
                    }
                }
                KernelAction::DeleteChildSa(c) => self
                    .kernel
                    .retain(|k| k.spi != c.inbound_spi && k.spi != c.outbound_spi),
                KernelAction::ActivateOutbound(_) => {}
            }
        }
        let events: Vec<_> = record.events[self.seen.0..]
            .iter()
            .map(|(_, e)| e.clone())
            .collect();
        self.seen = (record.events.len(), record.actions.len());
        for event in &events {
            self.initiations.on_event(event);
            for raised in vici_handler::raised(event, &self.pair.engines[0], &self.kernel, now) {
                let _ = self.events.send(raised);
            }
        }
    }
}

struct Served {
    harness: Harness,
    calls: mpsc::Receiver<Call>,
    socket: PathBuf,
    counters: Arc<Counters>,
    /// swanctl's `SWANCTL_DIR` (`x509/`, `private/`, …), when not its default.
    swanctl_dir: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

/// A runtime for the server, whose loop the test itself runs (the engines stay on it).
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn start() -> Served {
    start_with(peer())
}

/// Side a served over VICI, side b with connection `b`.
fn start_with(b: EngineConnection) -> Served {
    assert!(
        Path::new(SWANCTL).exists(),
        "{SWANCTL} is missing: integration/test installs strongswan-swanctl"
    );
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("charon.vici");
    let (tx, calls) = mpsc::channel(16);
    let (events, _) = broadcast::channel(1024);
    let counters = vici_server::listen(&socket, tx, events.clone(), Limits::default()).unwrap();
    Served {
        harness: Harness::new(events, b),
        calls,
        socket,
        counters,
        swanctl_dir: None,
        _dir: dir,
    }
}

fn swanctl(socket: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(SWANCTL);
    command
        .args(args)
        .arg("--uri")
        .arg(format!("unix://{}", socket.display()))
        .stdin(Stdio::null());
    command
}

impl Served {
    /// Runs swanctl to its end, serving its calls meanwhile.
    async fn output(&mut self, args: &[&str]) -> Output {
        let mut command = swanctl(&self.socket, args);
        if let Some(dir) = &self.swanctl_dir {
            command.env("SWANCTL_DIR", dir);
        }
        let mut done = tokio::task::spawn_blocking(move || command.output().unwrap());
        loop {
            tokio::select! {
                Some(call) = self.calls.recv() => self.harness.serve(call),
                output = &mut done => break output.unwrap(),
            }
        }
    }

    /// Sends one request as a plain VICI client; the packet that answers it.
    async fn request(&mut self, command: &str, message: Message) -> Packet {
        let request = Packet::Request {
            command: command.into(),
            message,
        };
        let bytes = codec::encode_packet(&request).unwrap();
        let socket = self.socket.clone();
        let mut done = tokio::task::spawn_blocking(move || {
            use std::io::{Read, Write};
            let mut stream = std::os::unix::net::UnixStream::connect(socket).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            stream.write_all(&bytes).unwrap();
            let mut length = [0u8; 4];
            stream.read_exact(&mut length).unwrap();
            let mut body = vec![0; u32::from_be_bytes(length) as usize];
            stream.read_exact(&mut body).unwrap();
            codec::decode_packet(&body).unwrap()
        });
        loop {
            tokio::select! {
                Some(call) = self.calls.recv() => self.harness.serve(call),
                packet = &mut done => break packet.unwrap(),
            }
        }
    }

    /// Runs swanctl, which must succeed; its output.
    async fn run(&mut self, args: &[&str]) -> String {
        let output = self.output(args).await;
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert!(
            output.status.success(),
            "swanctl {args:?}: {:?}\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    /// Runs swanctl, which must fail; what it printed on stderr, without the noise of
    /// plugins Debian does not ship.
    async fn fail(&mut self, args: &[&str]) -> String {
        let output = self.output(args).await;
        assert!(!output.status.success(), "swanctl {args:?} succeeded");
        let stderr = String::from_utf8(output.stderr).unwrap();
        stderr
            .lines()
            .filter(|l| !l.starts_with("plugin '"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Starts a swanctl that listens for events, and waits until it registered for its
    /// `events` (a registration is in force as soon as it is counted).
    async fn monitor(&mut self, args: &[&str], events: u64) -> std::process::Child {
        let before = self.counters.registrations.load(Ordering::Relaxed);
        let child = swanctl(&self.socket, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.serve_until(|s| s.counters.registrations.load(Ordering::Relaxed) >= before + events)
            .await;
        child
    }

    /// Serves calls until `done` holds (bounded).
    async fn serve_until(&mut self, done: impl Fn(&Served) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !done(self) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "condition not reached in 20 s"
            );
            if let Ok(Some(call)) =
                tokio::time::timeout(Duration::from_millis(20), self.calls.recv()).await
            {
                self.harness.serve(call);
            }
        }
    }
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

#[test]
fn swanctl_drives_routevpn_over_vici() {
    let runtime = runtime();
    runtime.block_on(async {
        let mut s = start();
        let started = Instant::now();

        let version = s.run(&["--version", "--daemon"]).await;
        let uname = Command::new("uname")
            .args(["-s", "-r", "-m"])
            .output()
            .unwrap();
        let uname: Vec<String> = String::from_utf8(uname.stdout)
            .unwrap()
            .split_whitespace()
            .map(String::from)
            .collect();
        assert_eq!(
            version.trim_end(),
            format!(
                "strongSwan {} routevpn ({}, {}, {})",
                env!("CARGO_PKG_VERSION"),
                uname[0],
                uname[1],
                uname[2]
            )
        );

        let stats = s.run(&["--stats"]).await;
        assert_eq!(
            lines(&stats)[..5],
            [
                "uptime: 100 seconds, since Dec  4 11:00:00 2026",
                "worker threads: 1 total, 0 idle, working: 0/0/1/0",
                "job queues: 0/0/0/0",
                "jobs scheduled: ",
                "IKE_SAs: 0 total, 0 half-open",
            ]
        );

        let conns = s.run(&["--list-conns"]).await;
        assert_eq!(
            lines(&conns),
            [
                "to-b: IKEv2, no reauthentication, rekeying every 14400s, dpd delay 30s",
                &format!("  local:  {A}"),
                &format!("  remote: {B}"),
                "  local pre-shared key authentication:",
                &format!("    id: {A}"),
                "  remote pre-shared key authentication:",
                &format!("    id: {B}"),
                "  net: TUNNEL, rekeying every 3600s, dpd action is start",
                "    local:  10.1.0.0/16",
                "    remote: 10.2.0.0/16",
            ]
        );

        // `swanctl --log` and `--monitor-sa` print what the daemon raises while they run.
        let log = s.monitor(&["--log"], 1).await;
        let monitor = s.monitor(&["--monitor-sa"], 2).await;

        let initiated = s.run(&["--initiate", "--child", "net"]).await;
        let sa = s.harness.pair.engines[0].status().remove(0);
        let child = &sa.children[0];
        // The connection's log lines (control-log), then the outcome.
        assert_eq!(
            lines(&initiated),
            [
                &format!(
                    "[IKE] to-b: IKE SA established as initiator {A}:500 <-> {B}:500 \
                     (AES_GCM_16_128/PRF_HMAC_SHA2_256/CURVE_25519; peer authenticated by pre-shared key)"
                ),
                &format!(
                    "[IKE] to-b/net: CHILD SA installed, Tunnel mode, AES_GCM_16_128, SPIs in {:08x} out {:08x}",
                    child.spi_in, child.spi_out
                ),
                "initiate completed successfully",
            ]
        );

        let sas = s.run(&["--list-sas"]).await;
        let rekey_in = sa
            .rekey_at
            .unwrap()
            .saturating_duration_since(s.harness.pair.now)
            .as_secs();
        let child_rekey = child
            .rekey_at
            .unwrap()
            .saturating_duration_since(s.harness.pair.now)
            .as_secs();
        let child_life = child
            .expire_at
            .unwrap()
            .saturating_duration_since(s.harness.pair.now)
            .as_secs();
        assert_eq!(
            lines(&sas),
            [
                &format!(
                    "{TO_B}: #{}, ESTABLISHED, IKEv2, {:016x}_i* {:016x}_r",
                    sa.unique_id, sa.spi_i, sa.spi_r
                ),
                &format!("  local  '{A}' @ {A}[500]"),
                &format!("  remote '{B}' @ {B}[500]"),
                "  AES_GCM_16-128/PRF_HMAC_SHA2_256/CURVE_25519",
                &format!("  established 0s ago, rekeying in {rekey_in}s"),
                &format!(
                    "  net: #{}, reqid {}, INSTALLED, TUNNEL, ESP:AES_GCM_16-128",
                    child.unique_id, child.reqid
                ),
                &format!(
                    "    installed 0s ago, rekeying in {child_rekey}s, expires in {child_life}s"
                ),
                &format!(
                    "    in  {:08x} (0x52000001/0xffffffff),      0 bytes,     0 packets",
                    child.spi_in
                ),
                &format!(
                    "    out {:08x} (0x52000001/0xffffffff),      0 bytes,     0 packets",
                    child.spi_out
                ),
                "    local  10.1.0.0/16",
                "    remote 10.2.0.0/16",
            ]
        );
        let stats = s.run(&["--stats"]).await;
        assert!(stats.contains("IKE_SAs: 1 total, 0 half-open\n"), "{stats}");

        let mut raised = s.harness.events.subscribe();
        let rekeyed = s.run(&["--rekey", "--ike", TO_B]).await;
        assert!(
            rekeyed.contains("rekey completed successfully"),
            "{rekeyed}"
        );
        let new_sa = s.harness.pair.engines[0].status().remove(0);
        assert_ne!((new_sa.spi_i, new_sa.unique_id), (sa.spi_i, sa.unique_id));
        // charon's ike-rekey: the old SA (as far as the engine still knows it) and the new.
        let ike_rekey = std::iter::from_fn(|| raised.try_recv().ok())
            .find(|(name, _)| name == "ike-rekey")
            .expect("an ike-rekey event")
            .1;
        let pair = ike_rekey.get_section(TO_B).unwrap();
        let old = pair.get_section("old").unwrap();
        let new = pair.get_section("new").unwrap();
        let spi_i = format!("{:016x}", sa.spi_i);
        assert_eq!(old.str("initiator-spi"), Some(spi_i.as_str()));
        let new_id = new_sa.unique_id.to_string();
        assert_eq!(new.str("uniqueid"), Some(new_id.as_str()));
        assert_eq!(new.str("state"), Some("ESTABLISHED"));

        let terminated = s.run(&["--terminate", "--ike", TO_B]).await;
        assert!(
            terminated.contains("terminate completed successfully"),
            "{terminated}"
        );
        assert!(s.harness.pair.engines[0].status().is_empty());
        let none = s.run(&["--list-sas"]).await;
        assert_eq!(none, "");

        let logged = stop(log).await;
        let logged = lines(&logged);
        assert!(
            logged
                .iter()
                .any(|l| l.starts_with("00[IKE] to-b: IKE SA established as initiator")),
            "{logged:#?}"
        );
        assert!(
            logged
                .iter()
                .any(|l| l.starts_with("00[IKE] to-b: IKE SA rekeyed")),
            "{logged:#?}"
        );
        assert!(
            logged
                .iter()
                .any(|l| l.starts_with("00[IKE] to-b: IKE SA deleted")),
            "{logged:#?}"
        );
        // child-updown, as swanctl prints it (ike-updown carries no CHILD SA, so it
        // prints nothing, as with charon).
        let monitored = stop(monitor).await;
        let monitored = lines(&monitored);
        assert_eq!(
            monitored[..2],
            [
                &format!(
                    "{TO_B}: #{}, ESTABLISHED, IKEv2, {:016x}_i* {:016x}_r",
                    sa.unique_id, sa.spi_i, sa.spi_r
                ),
                &format!("  local  '{A}' @ {A}[500]"),
            ]
        );
        assert!(
            monitored.contains(&&*format!(
                "  net: #{}, reqid {}, INSTALLED, TUNNEL, ESP:AES_GCM_16-128",
                child.unique_id, child.reqid
            )),
            "{monitored:#?}"
        );
        assert!(started.elapsed() < Duration::from_secs(60));
    });
}

/// Ends a `swanctl --log` or `--monitor-sa` with SIGINT, as an operator's Ctrl-C does
/// (it then flushes its output); what it printed.
async fn stop(child: std::process::Child) -> String {
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: kill only signals our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(output.status.signal(), None, "{:?}", output.status);
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn what_routevpn_does_not_do_is_answered_clearly() {
    let runtime = runtime();
    runtime.block_on(async {
        let mut s = start();
        let none = s.fail(&["--terminate", "--ike", TO_B]).await;
        assert!(
            none.contains("no matching SAs to terminate found"),
            "{none}"
        );
        let child = s.fail(&["--terminate", "--child", "net"]).await;
        assert!(
            child.contains("not supported by routevpn: terminating a single CHILD_SA"),
            "{child}"
        );
        let unknown = s.fail(&["--initiate", "--child", "no-such-child"]).await;
        assert!(
            unknown.contains("CHILD_SA config 'no-such-child' not found"),
            "{unknown}"
        );
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("swanctl.conf");
        std::fs::write(&conf, TO_B_SWANCTL).unwrap();
        let loaded = s
            .fail(&["--load-conns", "--file", conf.to_str().unwrap()])
            .await;
        assert!(
            loaded.contains(
                "loading connection 'to-b' failed: connection 'to-b': a profile defines \
                 tunnel 'to-b' (profiles win over loaded connections)"
            ),
            "{loaded}"
        );
        std::fs::write(&conf, NAMED_PEER_SWANCTL).unwrap();
        let named = s
            .fail(&["--load-conns", "--file", conf.to_str().unwrap()])
            .await;
        assert!(
            named.contains(
                "loading connection 'named' failed: vici:load-conn:3:1: remote_addrs \
                 \"vpn.example.com\": routevpn takes one IP address (names are not resolved): \
                 not supported by routevpn;"
            ),
            "{named}"
        );
        let redirect = s
            .fail(&["--redirect", "--ike", TO_B, "--gateway", "192.0.2.99"])
            .await;
        assert!(
            redirect.contains("not supported by routevpn: redirect"),
            "{redirect}"
        );
    });
}

#[test]
fn get_conns_lists_the_connections_and_unknown_commands_are_unknown() {
    runtime().block_on(async {
        let mut s = start();
        // Like charon's: the connections loaded over VICI only, not the profiles.
        let conns = s.request("get-conns", Message::new()).await;
        let expected = Message(vec![Element::List("conns".into(), vec![])]);
        assert_eq!(conns, Packet::Response(expected));
        let unknown = s.request("no-such-command", Message::new()).await;
        assert_eq!(unknown, Packet::Unknown);
        let certs = s.request("list-certs", Message::new()).await;
        assert_eq!(certs, Packet::Response(Message::new()));
    });
}

const CHARON: &str = "/usr/lib/ipsec/charon";

/// charon in a network and mount namespace of its own, with its own strongswan.conf and
/// VICI socket; killed when dropped.
struct Charon {
    process: std::process::Child,
    socket: PathBuf,
    conf: PathBuf,
}

impl Charon {
    fn start(dir: &Path) -> Charon {
        assert!(
            unsafe { libc::geteuid() } == 0,
            "this test needs root (CI runs as root): charon runs in a network namespace"
        );
        let socket = dir.join("charon.vici");
        let conf = dir.join("strongswan.conf");
        let uri = format!("unix://{}", socket.display());
        std::fs::write(
            &conf,
            format!(
                "charon {{\n  load_modular = no\n  load = random nonce aes sha1 sha2 hmac kdf gcm \
                 gmp openssl pem pkcs1 x509 pubkey kernel-netlink socket-default vici\n  \
                 plugins {{\n    vici {{ socket = {uri} }}\n  }}\n}}\n\
                 swanctl {{\n  load = pem pkcs1 x509 pubkey random nonce openssl\n  socket = {uri}\n}}\n"
            ),
        )
        .unwrap();
        // A private /run: charon keeps its pid file there and refuses to start beside
        // another charon's.
        let process = Command::new("unshare")
            .args(["-n", "-m", "--propagation", "private", "sh", "-c"])
            .arg(r#"mount -t tmpfs -o mode=0755 tmpfs /run && exec env STRONGSWAN_CONF="$1" "$2""#)
            .args(["charon", conf.to_str().unwrap(), CHARON])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let charon = Charon {
            process,
            socket,
            conf,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !charon.swanctl(&["--stats"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "charon did not answer on its VICI socket in 20 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        charon
    }

    fn swanctl(&self, args: &[&str]) -> Output {
        swanctl(&self.socket, args)
            .env("STRONGSWAN_CONF", &self.conf)
            .output()
            .unwrap()
    }
}

impl Drop for Charon {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// The peers' connection "to-b" as charon would be given it in a swanctl.conf.
const TO_B_SWANCTL: &str = r#"
connections {
  to-b {
    version = 2
    local_addrs = 192.0.2.1
    remote_addrs = 198.51.100.2
    proposals = aes128gcm16-prfsha256-x25519
    rekey_time = 14400
    dpd_delay = 30
    dpd_timeout = 150
    local {
      auth = psk
      id = 192.0.2.1
    }
    remote {
      auth = psk
      id = 198.51.100.2
    }
    children {
      net {
        local_ts = 10.1.0.0/16
        remote_ts = 10.2.0.0/16
        esp_proposals = aes128gcm16
        mode = tunnel
        rekey_time = 3600
        dpd_action = restart
        start_action = none
        mark_in = 0x52000001
        mark_out = 0x52000001
      }
    }
  }
}
secrets {
  ike-to-b {
    id-a = 192.0.2.1
    id-b = 198.51.100.2
    secret = peers-test-psk-0123456789
  }
}
"#;

/// A connection the mapping cannot express: routevpn does not resolve names.
const NAMED_PEER_SWANCTL: &str = r#"
connections {
  named {
    remote_addrs = vpn.example.com
    local { auth = psk }
    remote { auth = psk }
    children { net { remote_ts = 10.9.0.0/16 } }
  }
}
"#;

/// A policy-based connection (no mark, no if_id) to side b, with identities of its own
/// (so a key of its own, [`POLICY_SECRET`]).
const LOADED_POLICY: &str = r#"
  loaded-policy {
    version = 2
    local_addrs = 192.0.2.1
    remote_addrs = 198.51.100.2
    proposals = aes256-sha256-modp2048
    local {
      auth = psk
      id = policy-local
    }
    remote {
      auth = psk
      id = policy-peer
    }
    children {
      lan {
        local_ts = 10.1.0.0/16
        remote_ts = 10.3.0.0/16
        esp_proposals = aes256-sha256
      }
    }
  }"#;

const POLICY_SECRET: &str = r#"
  ike-policy {
    id-a = policy-local
    id-b = policy-peer
    secret = policy-psk-0123456789
  }"#;

/// The peers' connection as `loaded-vti` (marked, VTI-like) with its key, for
/// `swanctl --load-all`; with `policy`, [`LOADED_POLICY`] and its key too.
fn loaded_swanctl(policy: bool) -> String {
    let vti = TO_B_SWANCTL
        .replace("to-b {", "loaded-vti {")
        .replace("0x52000001", "0x52000002");
    if !policy {
        return vti;
    }
    (vti.replacen(
        "connections {",
        &format!("connections {{{LOADED_POLICY}"),
        1,
    ))
    .replacen("secrets {", &format!("secrets {{{POLICY_SECRET}"), 1)
}

/// [`loaded_swanctl`] with `loaded-clash` first: loaded-vti again, so with its mark.
fn clashing_swanctl() -> String {
    let vti = loaded_swanctl(false);
    let body = &vti[vti.find("  loaded-vti {").unwrap()..vti.find("\n}\nsecrets").unwrap()];
    let clash = body.replace("loaded-vti {", "loaded-clash {");
    loaded_swanctl(true).replacen("connections {", &format!("connections {{\n{clash}"), 1)
}

/// The lines of one connection's block in `swanctl --list-conns` output.
fn conn_block<'a>(output: &'a str, name: &str) -> Vec<&'a str> {
    let mut lines = output
        .lines()
        .skip_while(|l| !l.starts_with(&format!("{name}: ")));
    let head = lines.next().into_iter();
    head.chain(lines.take_while(|l| l.starts_with(' ')))
        .collect()
}

#[test]
fn swanctl_load_all_configures_run_time_connections_as_charon_takes_them() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("swanctl.conf");
    std::fs::write(&conf, loaded_swanctl(true)).unwrap();
    let conf = conf.to_str().unwrap();
    let charon = Charon::start(dir.path());
    let theirs = charon.swanctl(&["--load-all", "--file", conf]);
    assert!(theirs.status.success(), "{theirs:?}");
    let theirs = String::from_utf8(charon.swanctl(&["--list-conns"]).stdout).unwrap();

    runtime().block_on(async {
        let mut s = start();
        let first = s.run(&["--load-all", "--file", conf]).await;
        for expected in [
            "loaded ike secret 'ike-loaded-vti'",
            "loaded ike secret 'ike-policy'",
            "loaded connection 'loaded-policy'",
            "loaded connection 'loaded-vti'",
            "successfully loaded 2 connections, 0 unloaded",
        ] {
            assert!(
                first.contains(expected),
                "{expected}:
{first}"
            );
        }
        // Checked and answered one by one, applied once: before the first request that
        // reads the result.
        assert_eq!((s.harness.checks, s.harness.changes), (2, 0));
        let ours = s.run(&["--list-conns"]).await;
        assert_eq!(s.harness.changes, 1, "one apply for the whole --load-all");
        for name in ["loaded-vti", "loaded-policy"] {
            let (o, t) = (conn_block(&ours, name), conn_block(&theirs, name));
            assert!(
                !o.is_empty(),
                "{name} not listed:
{ours}"
            );
            assert_eq!(
                o, t,
                "ours:
{ours}
charon's:
{theirs}"
            );
        }
        // The profile's connection is listed beside them.
        assert!(!conn_block(&ours, TO_B).is_empty(), "{ours}");

        // Idempotent: the same file again changes nothing.
        let again = s.run(&["--load-all", "--file", conf]).await;
        assert!(
            again.contains("successfully loaded 2 connections, 0 unloaded"),
            "{again}"
        );
        assert_eq!(s.run(&["--list-conns"]).await, ours);
        let shared = s.request("get-shared", Message::new()).await;
        let ids = vec![b"ike-policy".to_vec(), b"ike-loaded-vti".to_vec()];
        let keys = Element::List("keys".into(), ids);
        assert_eq!(shared, Packet::Response(Message(vec![keys])));

        // A connection that the profiles' checks refuse beside the others (it takes
        // loaded-vti's mark) is refused with their reason, and nothing loaded changes.
        let clash_path = dir.path().join("clash.conf");
        std::fs::write(&clash_path, clashing_swanctl()).unwrap();
        let refused = s
            .fail(&["--load-all", "--file", clash_path.to_str().unwrap()])
            .await;
        assert!(
            refused.contains("loading connection 'loaded-clash' failed: ")
                && refused.contains("mark 0x52000002 is already used by"),
            "{refused}"
        );
        let conns = s.request("get-conns", Message::new()).await;
        let names = vec![b"loaded-policy".to_vec(), b"loaded-vti".to_vec()];
        let expected = Message(vec![Element::List("conns".into(), names)]);
        assert_eq!(conns, Packet::Response(expected));
        assert_eq!(s.run(&["--list-conns"]).await, ours);

        // The loaded connection authenticates with the loaded key against side b.
        let up = s
            .run(&["--initiate", "--ike", "loaded-vti", "--child", "net"])
            .await;
        assert!(up.contains("initiate completed successfully"), "{up}");
        let sas = s.run(&["--list-sas", "--ike", "loaded-vti"]).await;
        assert!(sas.contains("loaded-vti: #"), "{sas}");
        assert!(sas.contains("ESTABLISHED"), "{sas}");

        // Its key unloaded, loaded-policy stays loaded but is left out (charon keeps it
        // and cannot authenticate it); a key for it brings it back.
        let unload = Message::new().kv("id", "ike-policy");
        let unloaded = s.request("unload-shared", unload).await;
        assert_eq!(unloaded, Packet::Response(messages::outcome(Ok(()))));
        assert!(conn_block(&s.run(&["--list-conns"]).await, "loaded-policy").is_empty());
        let conns = s.request("get-conns", Message::new()).await;
        let names = vec![b"loaded-policy".to_vec(), b"loaded-vti".to_vec()];
        let expected = Message(vec![Element::List("conns".into(), names)]);
        assert_eq!(conns, Packet::Response(expected));
        let reloaded = s.run(&["--load-creds", "--file", conf]).await;
        assert!(
            reloaded.contains("loaded ike secret 'ike-policy'"),
            "{reloaded}"
        );
        assert_eq!(s.run(&["--list-conns"]).await, ours);

        // A file without loaded-policy unloads it, as charon's swanctl does.
        std::fs::write(dir.path().join("fewer.conf"), loaded_swanctl(false)).unwrap();
        let fewer_path = dir.path().join("fewer.conf");
        let dropped = s
            .run(&["--load-all", "--file", fewer_path.to_str().unwrap()])
            .await;
        assert!(
            dropped.contains("successfully loaded 1 connections, 1 unloaded"),
            "{dropped}"
        );
        let left = s.run(&["--list-conns"]).await;
        assert!(conn_block(&left, "loaded-policy").is_empty(), "{left}");
        assert!(!conn_block(&left, "loaded-vti").is_empty(), "{left}");
    });
}

#[test]
fn list_conns_prints_what_charon_prints_for_the_same_connection() {
    let dir = tempfile::tempdir().unwrap();
    let charon = Charon::start(dir.path());
    let swanctl_conf = dir.path().join("swanctl.conf");
    std::fs::write(&swanctl_conf, TO_B_SWANCTL).unwrap();
    let loaded = charon.swanctl(&["--load-all", "--file", swanctl_conf.to_str().unwrap()]);
    assert!(
        loaded.status.success(),
        "{}",
        String::from_utf8_lossy(&loaded.stdout)
    );
    let theirs = String::from_utf8(charon.swanctl(&["--list-conns"]).stdout).unwrap();

    let runtime = runtime();
    let ours = runtime.block_on(async { start().run(&["--list-conns"]).await });
    assert!(!ours.is_empty());
    for (line, (o, t)) in ours.lines().zip(theirs.lines()).enumerate() {
        assert_eq!(
            o,
            t,
            "line {}:\nours:\n{ours}\ncharon's:\n{theirs}",
            line + 1
        );
    }
    assert_eq!(
        ours.lines().count(),
        theirs.lines().count(),
        "ours:\n{ours}\ncharon's:\n{theirs}"
    );
}

/// The daemon itself (in a network namespace of its own, with no tunnel: the host kernel
/// has no VTI or XFRM interfaces) serves VICI beside its control socket, survives a
/// malformed packet and removes the socket when it stops.
#[test]
fn the_daemon_serves_vici_survives_bad_packets_and_forgets_loaded_connections() {
    use std::io::{Read, Write};
    use std::os::unix::fs::PermissionsExt;
    assert!(
        unsafe { libc::geteuid() } == 0,
        "this test needs root (CI runs as root): the daemon runs in a network namespace"
    );
    let dir = tempfile::tempdir().unwrap();
    let (config, state) = (dir.path().join("profiles"), dir.path().join("state"));
    std::fs::create_dir(&config).unwrap();
    let socket = state.join("charon.vici");
    let stats = || swanctl(&socket, &["--stats"]).output().unwrap();
    let log = dir.path().join("daemon.log");
    let start_daemon = || start_daemon(&config, &state, &log);
    let daemon = start_daemon();
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    let mut bad = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    bad.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    bad.write_all(&[0, 0, 0, 3, 0, 200, b'x']).unwrap();
    let mut answer = Vec::new();
    bad.read_to_end(&mut answer).unwrap();
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.contains("malformed VICI packet: truncated at byte 2"),
        "{text:?}"
    );

    let after = stats();
    assert!(after.status.success());
    let after = String::from_utf8(after.stdout).unwrap();
    assert!(after.contains("IKE_SAs: 0 total, 0 half-open"), "{after}");
    let sas = swanctl(&socket, &["--list-sas"]).output().unwrap();
    assert!(sas.status.success());
    assert_eq!(String::from_utf8(sas.stdout).unwrap(), "");

    // Connections loaded over VICI: profiles and keys beside the daemon's state, a
    // connection the file drops unloaded, all forgotten by a restart.
    let conf = dir.path().join("swanctl.conf");
    let load_all = |text: String| {
        std::fs::write(&conf, text).unwrap();
        let output = swanctl(&socket, &["--load-all", "--file", conf.to_str().unwrap()])
            .output()
            .unwrap();
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert!(output.status.success(), "{stdout}");
        stdout
    };
    let loaded = load_all(loaded_swanctl(true));
    assert!(
        loaded.contains("successfully loaded 2 connections"),
        "{loaded}"
    );
    let conns = state.join("vici-conns");
    // Applied once the burst of requests ends.
    wait_until("the loaded connections applied", || {
        conns.join("loaded-policy.toml").exists()
    });
    let key = std::fs::metadata(conns.join("secrets/loaded-vti.psk")).unwrap();
    assert_eq!(key.permissions().mode() & 0o777, 0o600);
    assert!(conns.join("loaded-policy.toml").exists());
    std::fs::write(&conf, clashing_swanctl()).unwrap();
    let clash = swanctl(&socket, &["--load-conns", "--file", conf.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&clash.stderr);
    let clash_profile = conns.join("loaded-clash.toml");
    let refused = format!("{}:", clash_profile.display());
    assert!(stderr.contains(&refused), "{stderr}");
    assert!(!stderr.contains("vici-conns.new"), "{stderr}");
    assert!(!clash_profile.exists());
    let fewer = load_all(loaded_swanctl(false));
    assert!(fewer.contains("1 connections, 1 unloaded"), "{fewer}");
    wait_until("loaded-policy unloaded", || {
        !conns.join("loaded-policy.toml").exists()
    });
    assert!(conns.join("loaded-vti.toml").exists());

    // A profile of a loaded connection's name, added later, wins at the next reload.
    std::fs::create_dir(config.join("secrets")).unwrap();
    for file in ["loaded-vti.toml", "secrets/loaded-vti.psk"] {
        std::fs::copy(conns.join(file), config.join(file)).unwrap();
    }
    let pid = i32::try_from(daemon.id()).unwrap();
    // SAFETY: kill only signals our own child, the daemon (unshare execs it).
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    while conns.join("loaded-vti.toml").exists() {
        assert!(Instant::now() < deadline, "the loaded connection stayed");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::write(&conf, loaded_swanctl(false)).unwrap();
    let refused = swanctl(&socket, &["--load-conns", "--file", conf.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("a profile defines tunnel 'loaded-vti'"),
        "{stderr}"
    );

    stop_daemon(daemon);
    assert!(!socket.exists(), "the VICI socket is removed at exit");
    let daemon = start_daemon();
    let left: Vec<_> = std::fs::read_dir(&conns).unwrap().collect();
    assert!(
        left.is_empty(),
        "a restart forgets loaded connections: {left:?}"
    );
    stop_daemon(daemon);
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("loaded-vti"), "{log}");
    // The key, as text or as the hex it is kept in, never reaches the log.
    for secret in ["peers-test-psk", "7065657273"] {
        assert!(!log.contains(secret), "{log}");
    }
}

/// The routevpn daemon in a network namespace of its own, once its VICI socket answers.
fn start_daemon(config: &Path, state: &Path, log: &Path) -> std::process::Child {
    let socket = state.join("charon.vici");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut daemon = Command::new("unshare");
    daemon
        .arg("-n")
        .arg(env!("CARGO_BIN_EXE_routevpn"))
        .arg("--config-dir")
        .arg(config)
        .arg("--state-dir")
        .arg(state)
        .arg("daemon")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    let mut daemon = daemon.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !swanctl(&socket, &["--stats"])
        .output()
        .unwrap()
        .status
        .success()
    {
        assert!(daemon.try_wait().unwrap().is_none(), "the daemon exited");
        assert!(Instant::now() < deadline, "no VICI answer in 20 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    daemon
}

fn stop_daemon(mut daemon: std::process::Child) {
    let pid = i32::try_from(daemon.id()).unwrap();
    // SAFETY: kill only signals our own child, the daemon (unshare execs it).
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    assert!(daemon.wait().unwrap().success());
}

/// Side a's connection to side b with certificates: `a.pem` and its key as swanctl finds
/// them in `x509/` and `private/`, b's certificate checked against `x509ca/`.
const LOADED_CERT_SWANCTL: &str = r#"
connections {
  loaded-cert {
    version = 2
    local_addrs = 192.0.2.1
    remote_addrs = 198.51.100.2
    proposals = aes128gcm16-prfsha256-x25519
    local {
      auth = pubkey
      certs = a.pem
      id = a.example
    }
    remote {
      auth = pubkey
      id = b.example
    }
    children {
      net {
        local_ts = 10.1.0.0/16
        remote_ts = 10.2.0.0/16
        esp_proposals = aes128gcm16
        mark_in = 0x52000003
        mark_out = 0x52000003
      }
    }
  }
}
"#;

/// A swanctl directory for [`LOADED_CERT_SWANCTL`]: `x509/a.pem`, `x509ca/root.pem`,
/// `private/a.key`, from a PKI of its own; and b's certificate from the same root.
struct Creds {
    dir: tempfile::TempDir,
    a_cert: common::pki::Issued,
    b_cert: common::pki::Issued,
    root_pem: PathBuf,
}

impl Creds {
    fn new() -> Creds {
        use common::pki::{issue, Alg, Pki, Spec};
        let pki = Pki::new("Vici");
        let a_cert = issue(
            Spec::end_entity("a.example", Alg::P256, 10),
            Some(&pki.root),
        );
        let b_cert = issue(
            Spec::end_entity("b.example", Alg::P256, 11),
            Some(&pki.root),
        );
        let dir = tempfile::tempdir().unwrap();
        let write = |file: &str, bytes: &[u8]| {
            let path = dir.path().join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, bytes).unwrap();
            path
        };
        write("swanctl.conf", LOADED_CERT_SWANCTL.as_bytes());
        write("x509/a.pem", &a_cert.cert.to_pem().unwrap());
        let root_pem = write("x509ca/root.pem", &pki.root.cert.to_pem().unwrap());
        write(
            "private/a.key",
            &a_cert.key.private_key_to_pem_pkcs8().unwrap(),
        );
        Creds {
            dir,
            a_cert,
            b_cert,
            root_pem,
        }
    }

    /// The private key as text and bytes that must never appear anywhere.
    fn secret_forms(&self) -> Vec<Vec<u8>> {
        let key = &self.a_cert.key;
        let der = key.private_key_to_der().unwrap();
        vec![
            key.private_key_to_pem_pkcs8().unwrap()[28..92].to_vec(),
            key.ec_key().unwrap().private_key_to_pem().unwrap()[31..95].to_vec(),
            openssl::base64::encode_block(&der).as_bytes()[..64].to_vec(),
            der,
        ]
    }
}

/// Fails if any of `texts` holds any of `secrets`.
fn assert_no_secret(texts: &[Vec<u8>], secrets: &[Vec<u8>]) {
    for text in texts {
        for secret in secrets {
            assert!(
                !text.windows(secret.len()).any(|w| w == secret.as_slice()),
                "the private key leaked: {}",
                String::from_utf8_lossy(text)
            );
        }
    }
}

#[test]
fn swanctl_load_all_brings_keys_and_certificates_that_authenticate_and_stay_in_memory() {
    use common::pki::private_key;
    use routevpn::ike::auth::x509::{CertChain, TrustStore};
    use routevpn::ike::engine::{Identity, LocalAuth, RemoteAuth, SendCert};

    let creds = Creds::new();
    let (dir, a_cert, b_cert) = (&creds.dir, &creds.a_cert, &creds.b_cert);
    let conf = dir.path().join("swanctl.conf");
    let key_pem = a_cert.key.private_key_to_pem_pkcs8().unwrap();
    let mut b = peer();
    b.config.local_id = Some(Identity::Fqdn("b.example".into()));
    b.config.remote_id = Identity::Fqdn("a.example".into());
    b.config.children[0].mark = Some(0x52000003);
    b.local_auth = LocalAuth::Signature {
        key: private_key(&b_cert.key),
        chain: Some(CertChain {
            end_entity: b_cert.cert.clone(),
            intermediates: Vec::new(),
        }),
        send_cert: SendCert::Always,
    };
    b.remote_auth = RemoteAuth::Certificate {
        trust: Arc::new(TrustStore::load(std::slice::from_ref(&creds.root_pem), &[]).unwrap()),
    };

    runtime().block_on(async {
        let mut s = start_with(b);
        s.swanctl_dir = Some(dir.path().to_path_buf());
        let conf = conf.to_str().unwrap();
        let loaded = s.run(&["--load-all", "--file", conf]).await;
        for expected in [
            "loaded certificate from '",
            "x509/a.pem'",
            "x509ca/root.pem'",
            "loaded ECDSA key from '",
            "loaded connection 'loaded-cert'",
            "successfully loaded 1 connections, 0 unloaded",
        ] {
            assert!(loaded.contains(expected), "{expected}:\n{loaded}");
        }
        let certs = s.run(&["--list-certs"]).await;
        for expected in [
            "subject:  \"O=Test, CN=a.example\"",
            "subject:  \"O=Test, CN=Vici Root CA\"",
            "has private key",
        ] {
            assert!(certs.contains(expected), "{expected}:\n{certs}");
        }
        assert_eq!(certs.matches("has private key").count(), 1, "{certs}");
        // By subject, as charon: the DN (order and spacing aside) picks one.
        let one = s
            .run(&["--list-certs", "--subject", "CN=a.example,O=Test"])
            .await;
        assert!(one.contains("subject:  \"O=Test, CN=a.example\""), "{one}");
        assert_eq!(one.matches("subject:").count(), 1, "{one}");
        let none = s.run(&["--list-certs", "--subject", "CN=nobody"]).await;
        assert!(!none.contains("subject:"), "{none}");
        let conns = s.run(&["--list-conns"]).await;
        assert!(!conn_block(&conns, "loaded-cert").is_empty(), "{conns}");

        // Authenticates with the loaded key and certificate, and checks b's against the
        // loaded CA.
        let up = s
            .run(&["--initiate", "--ike", "loaded-cert", "--child", "net"])
            .await;
        assert!(up.contains("initiate completed successfully"), "{up}");
        let sas = s.run(&["--list-sas", "--ike", "loaded-cert"]).await;
        assert!(sas.contains("ESTABLISHED"), "{sas}");
        assert!(sas.contains("b.example"), "{sas}");

        // The private key appears in no answer and in no file the daemon writes.
        let mut seen: Vec<Vec<u8>> = Vec::new();
        for command in [
            "list-certs",
            "get-keys",
            "list-conns",
            "get-conns",
            "list-sas",
        ] {
            let packet = s.request(command, Message::new()).await;
            seen.push(codec::encode_packet(&packet).unwrap());
        }
        for args in [&["--list-certs"][..], &["--list-conns"], &["--list-sas"]] {
            seen.push(s.run(args).await.into_bytes());
        }
        seen.push(format!("{:?}", s.harness.loaded).into_bytes());
        for entry in walk(s.harness.loaded_dir.path()) {
            seen.push(std::fs::read(entry).unwrap());
        }
        let mut secrets = creds.secret_forms();
        secrets.push(key_pem.clone());
        assert_no_secret(&seen, &secrets);
        // The key id swanctl keeps is the one get-keys lists (a stale one is unloaded).
        let again = s.run(&["--load-creds", "--file", conf]).await;
        assert!(again.contains("loaded ECDSA key from '"), "{again}");
        let Packet::Response(keys) = s.request("get-keys", Message::new()).await else {
            panic!("get-keys answered no response");
        };
        let [Element::List(_, ids)] = keys.0.as_slice() else {
            panic!("{keys:?}");
        };
        assert_eq!(ids.len(), 1);
    });
}

/// `swanctl --load-authorities`: the CA of an `authorities` section becomes a listed and
/// trusted authority; one that asks routevpn to fetch CRLs is refused, naming the option;
/// a file without it unloads it.
#[test]
fn swanctl_load_authorities_takes_a_ca_and_refuses_what_it_would_fetch() {
    let creds = Creds::new();
    let dir = creds.dir.path();
    let file = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let with_ca = file(
        "authorities.conf",
        "authorities {\n  vici-root {\n    cacert = root.pem\n  }\n}\n",
    );
    let fetching = file(
        "fetching.conf",
        "authorities {\n  fetching {\n    cacert = root.pem\n    \
         crl_uris = http://crl.example/root.crl\n  }\n}\n",
    );
    let without = file("none.conf", "authorities {\n}\n");
    runtime().block_on(async {
        let mut s = start();
        s.swanctl_dir = Some(dir.to_path_buf());
        let loaded = s.run(&["--load-authorities", "--file", &with_ca]).await;
        assert!(loaded.contains("loaded authority 'vici-root'"), "{loaded}");
        let listed = s.run(&["--list-authorities"]).await;
        assert!(listed.contains("vici-root"), "{listed}");
        assert!(listed.contains("O=Test, CN=Vici Root CA"), "{listed}");
        let certs = s.run(&["--list-certs", "--flag", "CA"]).await;
        assert!(
            certs.contains("subject:  \"O=Test, CN=Vici Root CA\""),
            "{certs}"
        );
        let Packet::Response(names) = s.request("get-authorities", Message::new()).await else {
            panic!("get-authorities answered no response");
        };
        assert_eq!(
            names,
            Message::new().list("authorities", ["vici-root"]),
            "{names:?}"
        );

        let refused = s.output(&["--load-authorities", "--file", &fetching]).await;
        let text = String::from_utf8_lossy(&refused.stdout).into_owned()
            + &String::from_utf8_lossy(&refused.stderr);
        assert!(
            text.contains("crl_uris: not supported by routevpn"),
            "{text}"
        );

        let unloaded = s.run(&["--load-authorities", "--file", &without]).await;
        assert!(unloaded.contains("unloaded"), "{unloaded}");
        let listed = s.run(&["--list-authorities"]).await;
        assert!(!listed.contains("vici-root"), "{listed}");
    });
}

/// Waits (bounded) until `done` holds.
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within 20 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// The real daemon takes a connection with certificates from `swanctl --load-all`: its
/// profile names the key and certificates by the daemon's memory files, `routevpn status`
/// lists it beside the profiles, and the key reaches no file and no log line.
#[test]
fn the_daemon_keeps_loaded_keys_in_memory_and_status_lists_loaded_connections() {
    assert!(
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() } == 0,
        "this test needs root (CI runs as root): the daemon runs in a network namespace"
    );
    let creds = Creds::new();
    let dir = tempfile::tempdir().unwrap();
    let (config, state) = (dir.path().join("profiles"), dir.path().join("state"));
    std::fs::create_dir(&config).unwrap();
    let log = dir.path().join("daemon.log");
    let daemon = start_daemon(&config, &state, &log);
    let socket = state.join("charon.vici");
    let conf = creds.dir.path().join("swanctl.conf");
    let loaded = swanctl(&socket, &["--load-all", "--file", conf.to_str().unwrap()])
        .env("SWANCTL_DIR", creds.dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&loaded.stdout);
    assert!(loaded.status.success(), "{stdout}");
    assert!(
        stdout.contains("loaded connection 'loaded-cert'"),
        "{stdout}"
    );
    let profile = state.join("vici-conns/loaded-cert.toml");
    wait_until("loaded-cert applied", || profile.exists());
    let text = std::fs::read_to_string(&profile).unwrap();
    let memory = format!("private_key = \"/proc/{}/fd/", daemon.id());
    assert!(text.contains(&memory), "{text}");

    let routevpn = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_routevpn"))
            .arg("--config-dir")
            .arg(&config)
            .arg("--state-dir")
            .arg(&state)
            .args(args)
            .output()
            .unwrap();
        String::from_utf8(output.stdout).unwrap()
    };
    let json = routevpn(&["status", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        json["runtime_conns"],
        serde_json::json!([{"name": "loaded-cert", "applied": true}])
    );
    let plain = routevpn(&["status"]);
    assert!(
        plain.contains("Run-time connections (loaded over VICI, gone when the daemon restarts):\n  loaded-cert: applied\n"),
        "{plain}"
    );
    stop_daemon(daemon);

    let mut seen = vec![std::fs::read(&log).unwrap()];
    seen.extend(walk(&state).iter().map(|f| std::fs::read(f).unwrap()));
    assert_no_secret(&seen, &creds.secret_forms());
}
