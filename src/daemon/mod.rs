//! `routevpn daemon`: the thin I/O driver around the sans-I/O IKE engine. It applies the
//! dataplane of every profile, owns the UDP sockets (IKE and NAT-T ports on each local
//! outer address), the control socket and the clock, and turns the engine's kernel actions
//! into XFRM states.
//!
//! ```text
//! UDP sockets ──datagrams──┐
//! control socket ─requests─┼─> one loop ──> Engine ──> transmits ──> UDP sockets
//! signals, timers ─────────┘                       ──> kernel actions ──> XFRM (sas.rs)
//!                                                  ──> events ──> log, waiting `up`s
//! ```

mod accept;
pub mod control;
mod control_server;
pub mod credentials;
mod dataplane;
mod failures;
mod ike_failures;
pub mod ike_log;
mod loaded_conns;
mod local_addresses;
pub mod logging;
pub mod metrics;
mod notify;
mod psk;
pub mod report;
pub mod sa_loss;
pub mod sas;
mod shutdown;
mod sockets;
mod unix_socket;
pub mod vici_config;
pub mod vici_handler;
pub mod vici_server;
mod xfrm_events;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc, oneshot};

use crate::apply::kernel::Kernel;
use crate::apply::netlink::LinuxKernel;
use crate::apply::state::{lock, Paths};
use crate::ike::engine::{Engine, EngineConfig, EngineConnection, Event, IkeSaState, KernelAction};
use crate::model::{StartAction, Tunnel};
use crate::plan::Endpoint;
use crate::profile::{self, Options};
use control::{Request, Response};
use logging::{APPLY, DAEMON, IKE};
use sockets::{Inbound, Sockets};

/// What `routevpn daemon` was started with.
#[derive(Clone, Debug)]
pub struct DaemonOptions {
    pub config_dir: PathBuf,
    pub paths: Paths,
    pub socket: PathBuf,
    pub vici_socket: PathBuf,
    pub profile: Options,
    pub ike_port: u16,
    pub natt_port: u16,
    /// Where to serve Prometheus metrics, if anywhere.
    pub metrics: Option<metrics::server::Address>,
    pub log: logging::Filter,
}

/// VICI events kept for a client that reads them slower than they come; one further
/// behind is disconnected.
const VICI_EVENT_BACKLOG: usize = 1024;

/// How long `up` waits for the CHILD SAs before answering "still negotiating".
const UP_WAIT: Duration = Duration::from_secs(30);

/// An info record about the daemon itself (logging.rs).
fn log(line: impl std::fmt::Display) {
    logging::info(logging::DAEMON, line);
}

/// Logs a notification systemd could not be sent (the daemon runs on regardless).
fn notified(sent: std::io::Result<()>) {
    if let Err(e) = sent {
        logging::warn(logging::SYSTEMD, format_args!("notifying systemd: {e}"));
    }
}

/// The local time as charon's `%T` prints it (`Dec  4 11:00:00 2026`).
fn local_time_text() -> String {
    // SAFETY: time, localtime_r and strftime write only into the buffers given.
    unsafe {
        let now = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&now, &mut tm).is_null() {
            return String::new();
        }
        let mut buf = [0u8; 64];
        let n = libc::strftime(
            buf.as_mut_ptr().cast(),
            buf.len(),
            c"%b %e %H:%M:%S %Y".as_ptr(),
            &tm,
        );
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}

/// Gives the heap's free pages back to the system. Loading and applying many profiles
/// peaks well above what the daemon then keeps; without this its resident size would stay
/// at that peak.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own heap; no pointer of ours is involved.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Runs until SIGTERM or SIGINT; errors are about starting (profiles, sockets, netlink).
pub fn run(options: DaemonOptions) -> Result<(), String> {
    logging::init(options.log.clone(), logging::Sink::Stderr)?;
    // Held for the daemon's life: the CLI then never applies behind its back.
    let _daemon_lock = lock::try_exclusive(&options.paths.daemon_lock(), "daemon")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the runtime: {e}"))?;
    runtime.block_on(async move {
        let (tx, rx) = mpsc::channel(1024);
        let mut daemon = Daemon::start(options, tx).await?;
        daemon.run(rx).await
    })
}

struct Daemon {
    options: DaemonOptions,
    kernel: LinuxKernel,
    engine: Engine,
    sockets: Sockets,
    inbound: mpsc::Sender<Inbound>,
    tunnels: Vec<Tunnel>,
    enabled: BTreeSet<String>,
    installed: sas::Installed,
    /// Tunnels the kernel refused, left out until their retry.
    failing: failures::Failing,
    /// Tunnels with on_sa_loss = "withdraw" and no CHILD SA, as the last apply planned them.
    without_sas: BTreeSet<String>,
    /// Each tunnel's last failed negotiation, until it works again.
    ike_failures: ike_failures::LastFailures,
    /// Tunnels whose credential files could not be used at the last apply, and why.
    unusable_credentials: BTreeMap<String, String>,
    /// The profiles the last apply applied (a failing tunnel falls back to its own).
    applied: Vec<Tunnel>,
    /// The reqids of the IKE tunnels' children, with the mark and if_id their SAs carry.
    ike_children: sas::Children,
    /// `up` requests waiting for their tunnel's CHILD SA (or its failure).
    waiters: BTreeMap<String, Vec<oneshot::Sender<Response>>>,
    metrics: metrics::Recorder,
    systemd: notify::Notifier,
    /// Something changed what the STATUS line says (an event, an apply).
    status_changed: bool,
    /// VICI `initiate`s waiting likewise.
    initiations: vici_handler::Initiations,
    /// Connections and keys loaded over VICI (run-time only).
    vici_loaded: vici_config::Loaded,
    vici_deferred: vici_handler::Deferred,
    /// What the daemon raises to VICI clients registered for events.
    vici_events: broadcast::Sender<(String, crate::vici::codec::Message)>,
    /// The host's addresses, followed (local_addresses.rs).
    present: local_addresses::Present,
    /// The IKE tunnels' static `local` addresses, as the last apply planned them.
    locals: BTreeMap<String, IpAddr>,
    /// IKE tunnels whose `local` is not on this host: an HA standby's (local_addresses.rs).
    standby: BTreeSet<String>,
    started: Instant,
    /// The start as charon's `stats` prints it.
    started_text: String,
}

impl Daemon {
    async fn start(
        options: DaemonOptions,
        inbound: mpsc::Sender<Inbound>,
    ) -> Result<Daemon, String> {
        let kernel = LinuxKernel::open()
            .map_err(|e| format!("netlink: {e} (root or CAP_NET_ADMIN is needed)"))?;
        let present = local_addresses::listen(inbound.clone())
            .map_err(|e| format!("following the host's addresses: {e}"))?;
        let engine = Engine::new(EngineConfig {
            ike_port: options.ike_port,
            natt_port: options.natt_port,
            ..EngineConfig::default()
        });
        let mut daemon = Daemon {
            sockets: Sockets::new(options.ike_port, options.natt_port),
            options,
            kernel,
            engine,
            inbound,
            tunnels: Vec::new(),
            enabled: BTreeSet::new(),
            installed: sas::Installed::default(),
            failing: failures::Failing::default(),
            without_sas: BTreeSet::new(),
            ike_failures: ike_failures::LastFailures::default(),
            unusable_credentials: BTreeMap::new(),
            applied: Vec::new(),
            ike_children: sas::Children::default(),
            waiters: BTreeMap::new(),
            metrics: metrics::Recorder::default(),
            systemd: notify::Notifier::from_env()?,
            status_changed: false,
            initiations: vici_handler::Initiations::default(),
            vici_loaded: vici_config::Loaded::default(),
            vici_deferred: vici_handler::Deferred::default(),
            vici_events: broadcast::channel(VICI_EVENT_BACKLOG).0,
            present,
            locals: BTreeMap::new(),
            standby: BTreeSet::new(),
            started: Instant::now(),
            started_text: local_time_text(),
        };
        daemon.forget_loaded()?;
        daemon.reload(true)?;
        // A daemon killed before could not remove its SAs; no IKE SA owns them now.
        daemon.sweep_orphans()?;
        xfrm_events::listen(daemon.inbound.clone()).map_err(|e| format!("XFRM reports: {e}"))?;
        let limits = control_server::Limits::default();
        control_server::listen(&daemon.options.socket, daemon.inbound.clone(), limits)
            .map_err(|e| format!("control socket {}: {e}", daemon.options.socket.display()))?;
        if let Some(address) = &daemon.options.metrics {
            let limits = metrics::server::Limits::default();
            metrics::server::listen(address, daemon.inbound.clone(), limits)
                .map_err(|e| format!("metrics listener {address}: {e}"))?;
            log(format_args!("serving metrics on {address}"));
        }
        let vici = &daemon.options.vici_socket;
        let vici_limits = vici_server::Limits::default();
        vici_server::listen(
            vici,
            daemon.inbound.clone(),
            daemon.vici_events.clone(),
            vici_limits,
        )
        .map_err(|e| format!("VICI socket {}: {e}", vici.display()))?;
        log(format_args!(
            "listening on {} and {} (VICI) (IKE port {}, NAT-T port {}), {} tunnel(s)",
            daemon.options.socket.display(),
            daemon.options.vici_socket.display(),
            daemon.options.ike_port,
            daemon.options.natt_port,
            daemon.tunnels.len()
        ));
        let names: Vec<String> = daemon.tunnels.iter().map(|t| t.name.clone()).collect();
        for name in &names {
            daemon.start_tunnel(name);
        }
        daemon.drain();
        let status = daemon.status_line();
        notified(daemon.systemd.ready(status));
        Ok(daemon)
    }

    /// What systemd shows for the daemon ("3 tunnel(s), 3 established").
    fn status_line(&self) -> String {
        let established: BTreeSet<String> = (self.engine.status().into_iter())
            .filter(|s| s.state == IkeSaState::Established && !s.children.is_empty())
            .map(|s| s.name)
            .collect();
        let failing = self.failing.reports(Instant::now()).len();
        let manual = (self.enabled.iter())
            .filter(|n| !self.ike_tunnel(n) && self.failing.error(n).is_none())
            .count();
        notify::status_line(self.tunnels.len(), established.len(), manual, failing)
    }

    /// Initiates `name` or waits for its traffic, as its start_action says, unless it has
    /// an IKE SA already (it kept running on its previous profile).
    fn start_tunnel(&mut self, name: &str) {
        let running = self.engine.status().iter().any(|s| s.name == name);
        if running || !self.engine_knows(name) || self.failing.error(name).is_some() {
            return;
        }
        let Some(t) = self.tunnels.iter().find(|t| t.name == name) else {
            return;
        };
        match t.ike.start_action {
            StartAction::Start => {
                let _ = self.engine.initiate(Instant::now(), name);
            }
            StartAction::Trap => logging::info(
                IKE,
                format_args!(
                    "{name}: negotiating when traffic for it arrives (start_action = trap)"
                ),
            ),
            StartAction::None => {}
        }
    }

    fn engine_knows(&self, name: &str) -> bool {
        self.engine.status().iter().any(|s| s.name == name) || self.ike_tunnel(name)
    }

    fn ike_tunnel(&self, name: &str) -> bool {
        (self.tunnels.iter())
            .any(|t| t.name == name && matches!(t.ike.auth, crate::model::Auth::Ike(_)))
    }

    /// Loads the profiles, applies the enabled tunnels' dataplane and (re)configures the
    /// engine and sockets. At start every tunnel is enabled.
    fn reload(&mut self, starting: bool) -> Result<(), String> {
        self.yield_to_profiles()?;
        let loaded = profile::load(&self.profile_dirs(), self.options.profile);
        for d in &loaded.diagnostics {
            logging::warn(APPLY, d);
        }
        let tunnels = loaded
            .tunnels
            .ok_or_else(|| "the profiles have errors (routevpn check)".to_string())?;
        let names: BTreeSet<String> = tunnels.iter().map(|t| t.name.clone()).collect();
        if starting {
            self.enabled = names.clone();
        } else {
            self.enabled.retain(|n| names.contains(n));
        }
        // Tunnels whose profile went away: tell their peers first.
        let now = Instant::now();
        // The engine forgets them too: a connection left in it would still answer the
        // peer with its old credentials.
        for gone in self.tunnels.iter().filter(|t| !names.contains(&t.name)) {
            let _ = self.engine.remove_connection(now, &gone.name);
        }
        self.tunnels = tunnels;
        self.failing.retain(&self.enabled);
        // The operator may have fixed what failed: try those tunnels now.
        self.failing.retry_all_now(now);
        let applied = self.apply();
        release_free_memory();
        applied
    }

    /// Applies the enabled tunnels' dataplane and gives the engine their connections. A
    /// tunnel the kernel refuses is left out (its IKE SA and SAs go) and retried later.
    fn apply(&mut self) -> Result<(), String> {
        let paths = &self.options.paths;
        // One apply at a time across the CLI and the daemon (the state lock).
        let _held = lock::exclusive(&paths.apply_lock(), "daemon", |m| logging::info(APPLY, m))
            .map_err(|e| format!("apply: {e}"))?;
        let started = Instant::now();
        let without_sas = sa_loss::without_sas(&self.tunnels, &self.enabled, &self.installed);
        let applied = dataplane::apply_each(
            &mut self.kernel,
            &self.tunnels,
            &self.enabled,
            &without_sas,
            paths,
            &mut self.failing,
            &self.applied,
            Instant::now(),
        )
        .map_err(|e| format!("apply: {e}"))?;
        let dataplane::Applied {
            outcome,
            plan,
            tunnels,
            recovered,
            failed,
        } = applied;
        self.applied = tunnels;
        self.without_sas = without_sas;
        self.status_changed = true;
        (self.metrics).applied(started.elapsed(), outcome.writes as u64);
        for (name, error, wait, kept) in &failed {
            let what = if *kept {
                "keeps its previous profile"
            } else {
                "left out"
            };
            logging::error(
                APPLY,
                format_args!("{name}: {what}, retrying in {} s: {error}", wait.as_secs()),
            );
            if !kept {
                self.drop_connection(name);
            }
        }
        for warning in &outcome.warnings {
            logging::warn(APPLY, warning);
        }
        if outcome.writes > 0 {
            logging::info(
                APPLY,
                format_args!(
                    "dataplane: {} changes ({} created, {} updated, {} deleted)",
                    outcome.writes, outcome.created, outcome.updated, outcome.deleted
                ),
            );
        }
        self.unusable_credentials.clear();
        self.locals.clear();
        for t in &plan.tunnels {
            let Some(auth) = &t.ike.auth else {
                continue;
            };
            let local_addr = match t.ike.local {
                Endpoint::Address(a) => {
                    self.locals.insert(t.name.clone(), a);
                    a
                }
                Endpoint::DefaultRoute => match self.kernel.egress(t.ike.remote) {
                    Ok(e) => e.source,
                    Err(e) => {
                        logging::error(
                            APPLY,
                            format_args!("{}: no route to the peer {}: {e}", t.name, t.ike.remote),
                        );
                        continue;
                    }
                },
            };
            let (local_auth, remote_auth) = match credentials::authenticators(auth) {
                Ok(authenticators) => authenticators,
                Err(e) => {
                    logging::error(IKE, format_args!("{}: {e}", t.name));
                    self.unusable_credentials.insert(t.name.clone(), e);
                    continue;
                }
            };
            if let Err(e) = self.sockets.bind(local_addr, &self.inbound) {
                logging::error(IKE, format_args!("{}: {e}", t.name));
                continue;
            }
            if !self.present.contains(&local_addr) {
                self.stand_by(&t.name, local_addr);
                continue;
            }
            self.standby.remove(&t.name);
            self.engine.add_connection(EngineConnection {
                config: t.ike.connection.clone(),
                local_addr,
                local_auth,
                remote_auth,
            });
        }
        let locals = &self.locals;
        self.standby.retain(|name| locals.contains_key(name));
        self.ike_children = sas::children(&plan);
        if !recovered.is_empty() {
            // Their reqids were not swept at start.
            if let Err(e) = self.sweep_orphans() {
                logging::error(APPLY, e);
            }
        }
        for (name, attempts) in &recovered {
            logging::info(
                APPLY,
                format_args!("{name}: dataplane applied after {attempts} failed attempt(s)"),
            );
            self.start_tunnel(name);
        }
        Ok(())
    }

    /// What `up` says of a tunnel on standby; None for one that is not.
    fn standby_line(&self, name: &str) -> Option<String> {
        let local = self
            .locals
            .get(name)
            .filter(|_| self.standby.contains(name))?;
        Some(standby_message(name, *local))
    }

    /// Keeps `name` out of the engine while its `local` is not on this host: nothing could
    /// be sent from it, and its dataplane (applied) drops the tunnel's traffic meanwhile.
    /// IKE SAs it had are abandoned: the gateway now holding the address takes over.
    fn stand_by(&mut self, name: &str, local: IpAddr) {
        if self.engine.connections().any(|c| c.name() == name) {
            let _ = self.engine.abandon_connection(name);
        }
        if self.standby.insert(name.to_owned()) {
            logging::info(IKE, standby_message(name, local));
        }
    }

    /// The host's addresses changed: tunnels whose `local` appeared are taken over at once,
    /// those whose `local` went stand by (see local_addresses.rs).
    fn addresses_changed(&mut self, present: local_addresses::Present) {
        let changes = local_addresses::changes(&self.locals, &self.present, &present);
        self.present = present;
        if changes == local_addresses::Changes::default() {
            return;
        }
        // Adds the connections of the tunnels that came, abandons those that went.
        if let Err(e) = self.apply() {
            logging::error(APPLY, format_args!("following the local addresses: {e}"));
        }
        for name in &changes.appeared {
            logging::info(
                IKE,
                format_args!("{name}: its local address appeared: taking over"),
            );
            self.start_tunnel(name);
        }
    }

    /// Deletes the SAs of the IKE tunnels' children that no IKE SA of ours owns.
    fn sweep_orphans(&mut self) -> Result<(), String> {
        let swept = (self.installed)
            .sweep_orphans(&mut self.kernel, &self.ike_children)
            .map_err(|e| format!("removing SAs left by an earlier daemon: {e}"))?;
        if swept > 0 {
            logging::info(
                APPLY,
                format_args!("removed {swept} SA(s) left by an earlier daemon"),
            );
        }
        Ok(())
    }

    /// Forgets `name`'s IKE SA (telling the peer) and removes its SAs.
    fn drop_connection(&mut self, name: &str) {
        let _ = self.engine.remove_connection(Instant::now(), name);
        for e in self.installed.remove_connection(&mut self.kernel, name) {
            logging::error(IKE, format_args!("{name}: removing its SAs: {e}"));
        }
    }

    /// Retries the failed tunnels whose time has come.
    fn retry_failed(&mut self) {
        let now = Instant::now();
        if self.failing.next_retry().is_some_and(|at| at <= now) {
            if let Err(e) = self.apply() {
                logging::error(APPLY, format_args!("retrying the failed tunnels: {e}"));
            }
        }
    }

    async fn run(&mut self, mut rx: mpsc::Receiver<Inbound>) -> Result<(), String> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
        let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
        let mut hup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
        let watchdog = self.systemd.watchdog;
        let mut next_ping = tokio::time::Instant::now();
        loop {
            let far = Instant::now() + Duration::from_secs(3600);
            let next = [self.engine.next_timeout(), self.failing.next_retry()];
            let deadline =
                tokio::time::Instant::from_std(next.into_iter().flatten().min().unwrap_or(far));
            let vici_due = self.vici_deferred.due();
            let vici_apply = tokio::time::Instant::from_std(vici_due.unwrap_or(far));
            tokio::select! {
                message = rx.recv() => match message {
                    Some(Inbound::Datagram { local, remote, bytes }) => {
                        ike_log::received(local, remote, &bytes);
                        self.engine.handle_datagram(Instant::now(), local, remote, &bytes);
                    }
                    Some(Inbound::Control { request, reply }) => self.control(request, reply),
                    Some(Inbound::Expired { destination, spi, hard }) => {
                        self.engine.child_sa_expired(Instant::now(), destination, spi, hard);
                    }
                    Some(Inbound::Acquired { reqid }) => self.engine.acquire(Instant::now(), reqid),
                    Some(Inbound::Metrics { reply }) => {
                        let _ = reply.send(self.exposition());
                    }
                    Some(Inbound::Vici(call)) => vici_handler::handle(self, call, Instant::now()),
                    Some(Inbound::LocalAddresses(present)) => self.addresses_changed(present),
                    // Exits without deleting the SAs, as after a crash: the service manager
                    // restarts the daemon, which sweeps them and negotiates afresh.
                    Some(Inbound::Stopped { what, error }) => {
                        return Err(format!("{what} stopped being followed: {error}"));
                    }
                    None => return Err("all sockets closed".into()),
                },
                () = tokio::time::sleep_until(deadline) => {
                    self.engine.handle_timeout(Instant::now());
                    self.retry_failed();
                }
                () = tokio::time::sleep_until(vici_apply), if vici_due.is_some() => {
                    vici_handler::apply_deferred(self);
                }
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => {
                    notified(self.systemd.reloading());
                    if let Err(e) = self.reload(false) {
                        logging::error(DAEMON, format_args!("reload: {e}"));
                    }
                    let status = self.status_line();
                    notified(self.systemd.ready(status));
                }
                // From this loop: if it hangs, the pings stop and systemd steps in.
                () = tokio::time::sleep_until(next_ping), if watchdog.is_some() => {
                    notified(self.systemd.watchdog_ping());
                    next_ping = tokio::time::Instant::now() + watchdog.unwrap_or_default();
                }
            }
            self.drain();
            if std::mem::take(&mut self.status_changed) {
                let status = self.status_line();
                notified(self.systemd.status(status));
            }
        }
        notified(self.systemd.stopping());
        self.shutdown(&mut rx).await;
        Ok(())
    }

    /// Installs and removes the SAs the engine asks for.
    fn kernel_actions(&mut self) {
        while let Some(action) = self.engine.poll_action() {
            ike_log::action(&action);
            match action {
                KernelAction::InstallChildSa(install) => {
                    let window = sas::replay_window(&self.tunnels, &install);
                    if let Err(e) = self.installed.install(&mut self.kernel, &install, window) {
                        logging::error(
                            IKE,
                            format_args!(
                                "{}: installing the CHILD SA failed: {e}",
                                install.connection
                            ),
                        );
                        let _ = self.engine.terminate(Instant::now(), &install.connection);
                        self.answer(
                            &install.connection,
                            Response::error(format!("installing the SAs failed: {e}")),
                        );
                    }
                }
                KernelAction::ActivateOutbound(child) => {
                    if let Err(e) = self.installed.activate_outbound(&mut self.kernel, &child) {
                        logging::error(
                            IKE,
                            format_args!(
                                "{}: installing the new outbound SA failed: {e}",
                                child.connection
                            ),
                        );
                    }
                }
                KernelAction::DeleteChildSa(child) => {
                    for e in self.installed.remove(&mut self.kernel, &child) {
                        logging::error(
                            IKE,
                            format_args!("{}: removing a CHILD SA: {e}", child.connection),
                        );
                    }
                }
            }
        }
    }

    /// Applies again when a tunnel with on_sa_loss = "withdraw" lost its last CHILD SA or
    /// got one back: its routes and device follow. Returns whether it applied.
    fn follow_sas(&mut self) -> bool {
        let now = sa_loss::without_sas(&self.tunnels, &self.enabled, &self.installed);
        if now == self.without_sas {
            return false;
        }
        for name in now.symmetric_difference(&self.without_sas) {
            let what = if now.contains(name) {
                "no CHILD SA left: routes withdrawn, device down"
            } else {
                "CHILD SA installed: device up, routes restored"
            };
            logging::info(
                APPLY,
                format_args!("{name}: {what} (on_sa_loss = withdraw)"),
            );
        }
        if let Err(e) = self.apply() {
            logging::error(APPLY, format_args!("following the SAs: {e}"));
            // Taken as done, or drain would loop on the same failure: the next change of
            // the set, a reload or an `up` applies again.
            self.without_sas = now;
        }
        true
    }

    /// Carries out what the engine produced: datagrams, kernel actions, events.
    fn drain(&mut self) {
        loop {
            self.kernel_actions();
            if !self.follow_sas() {
                break;
            }
        }
        // After the actions: a new SA must be in the kernel before the message that lets
        // the peer use it leaves.
        while let Some(t) = self.engine.poll_transmit() {
            ike_log::sent(&t);
            if let Err(e) = self.sockets.send(&t) {
                logging::warn(IKE, format_args!("sending to {}: {e}", t.remote));
            }
        }
        while let Some(event) = self.engine.poll_event() {
            self.status_changed = true;
            ike_log::event(&event);
            self.metrics.event(&event, std::time::SystemTime::now());
            self.initiations.on_event(&event);
            if self.vici_events.receiver_count() > 0 {
                self.raise(&event);
            }
            match &event {
                Event::ChildInstalled { name, .. } => {
                    self.ike_failures.succeeded(name);
                    self.answer(
                        name,
                        Response::ok(format!("{name}: CHILD SA installed ({event})")),
                    );
                }
                Event::Failed { name, reason } => {
                    self.ike_failures.failed(name, reason, Instant::now());
                    self.answer(name, Response::error(format!("{name}: {reason}")));
                }
                _ => {}
            }
        }
    }

    /// Enables every tunnel, applies once, and initiates the IKE tunnels not established:
    /// one apply for all, where an `up` per tunnel would apply each time.
    fn up_all(&mut self, now: Instant) -> Response {
        self.enabled = self.tunnels.iter().map(|t| t.name.clone()).collect();
        self.failing.retry_all_now(now);
        if let Err(e) = self.apply() {
            return Response::error(e);
        }
        let status = self.engine.status();
        let mut negotiating = Vec::new();
        let mut problems = Vec::new();
        let names: Vec<String> = (self.tunnels.iter())
            .filter(|t| self.ike_tunnel(&t.name) && !self.standby.contains(&t.name))
            .map(|t| t.name.clone())
            .collect();
        for name in names {
            let why = (self.failing.error(&name))
                .or(self.unusable_credentials.get(&name).map(String::as_str));
            if let Some(error) = why {
                problems.push(format!("{name}: {error}"));
                continue;
            }
            let sa = status.iter().find(|s| s.name == name);
            if sa.is_none() {
                if let Err(e) = self.engine.initiate(now, &name) {
                    problems.push(format!("{name}: {e}"));
                    continue;
                }
            }
            negotiating.push(name);
        }
        let mut response = if problems.is_empty() {
            let mut message = format!(
                "{} tunnel(s) up, {} negotiated by IKE",
                self.enabled.len(),
                negotiating.len()
            );
            if !self.standby.is_empty() {
                message += &format!(
                    ", {} on standby (local address not on this host)",
                    self.standby.len()
                );
            }
            Response::ok(message)
        } else {
            Response::error(problems.join("; "))
        };
        response.negotiating = negotiating;
        response
    }

    /// The metrics now; the kernel's SA counters that cannot be read make it an error.
    fn exposition(&mut self) -> Result<String, String> {
        let kernel = (self.kernel.sa_status()).map_err(|e| format!("reading the SAs: {e}"))?;
        let sas = report::build(&self.engine.status(), &kernel, Instant::now());
        let tunnels: Vec<String> = self.tunnels.iter().map(|t| t.name.clone()).collect();
        let ike_tunnels: Vec<String> = (tunnels.iter())
            .filter(|n| self.ike_tunnel(n))
            .cloned()
            .collect();
        let snapshot = metrics::Snapshot {
            tunnels: &tunnels,
            ike_tunnels: &ike_tunnels,
            sas: &sas,
            dpd: self.engine.dpd_counters(),
            failing: &self.failing.reports(Instant::now()),
            now: std::time::SystemTime::now(),
        };
        Ok(metrics::render(&self.metrics, &snapshot))
    }

    /// Raises `event` to the VICI clients registered for events.
    fn raise(&mut self, event: &Event) {
        let now = Instant::now();
        let kernel = match self.kernel.sa_status() {
            Ok(kernel) => kernel,
            Err(e) => {
                // The SA-shaped events would show SAs without their kernel state.
                log(format_args!("reading the SAs for VICI events: {e}"));
                let _ = self.vici_events.send(vici_handler::log_event(event));
                return;
            }
        };
        for raised in vici_handler::raised(event, &self.engine, &kernel, now) {
            let _ = self.vici_events.send(raised);
        }
    }

    fn answer(&mut self, name: &str, response: Response) {
        for waiter in self.waiters.remove(name).unwrap_or_default() {
            let _ = waiter.send(response.clone());
        }
    }

    fn control(&mut self, request: Request, reply: oneshot::Sender<Response>) {
        let now = Instant::now();
        match request {
            Request::Status => {
                // Counters that cannot be read are an error, not "no SA".
                let kernel = match self.kernel.sa_status() {
                    Ok(kernel) => kernel,
                    Err(e) => {
                        let _ = reply.send(Response::error(format!("reading the SAs: {e}")));
                        return;
                    }
                };
                let mut response = Response::ok("");
                response.ike_sas = report::build(&self.engine.status(), &kernel, now);
                response.failures = self.failing.reports(now);
                response.ike_failures = self.ike_failures.reports(now);
                response.standby = (self.standby.iter())
                    .filter_map(|name| {
                        let local = self.locals.get(name)?.to_string();
                        Some(control::StandbyTunnel {
                            name: name.clone(),
                            local,
                        })
                    })
                    .collect();
                response.runtime_conns = (self.vici_loaded.conn_names())
                    .map(|name| control::RuntimeConn {
                        name: name.clone(),
                        applied: self.tunnels.iter().any(|t| t.name == *name),
                    })
                    .collect();
                let _ = reply.send(response);
            }
            Request::Reload => {
                let response = match self.reload(false) {
                    Ok(()) => Response::ok("reloaded"),
                    Err(e) => Response::error(e),
                };
                let _ = reply.send(response);
            }
            Request::Up { name, wait } => {
                if !self.tunnels.iter().any(|t| t.name == name) {
                    let _ = reply.send(Response::error(format!(
                        "no profile defines tunnel \"{name}\""
                    )));
                    return;
                }
                self.enabled.insert(name.clone());
                // `up` tries a failed tunnel at once.
                self.failing.clear(&name);
                if let Err(e) = self.apply() {
                    let _ = reply.send(Response::error(e));
                    return;
                }
                if let Some(error) = self.failing.error(&name) {
                    let _ = reply.send(Response::error(format!("{name}: {error}")));
                    return;
                }
                if let Some(error) = self.unusable_credentials.get(&name) {
                    let _ = reply.send(Response::error(format!("{name}: {error}")));
                    return;
                }
                if !self.ike_tunnel(&name) {
                    let _ = reply.send(Response::ok(format!("{name}: up (manual keys)")));
                    return;
                }
                // Not an error: the other gateway of an HA pair holds the address.
                if let Some(standby) = self.standby_line(&name) {
                    let _ = reply.send(Response::ok(standby));
                    return;
                }
                let established =
                    (self.engine.status().iter()).any(|s| s.name == name && !s.children.is_empty());
                if established {
                    let _ = reply.send(Response::ok(format!("{name}: already established")));
                    return;
                }
                if let Err(e) = self.engine.initiate(now, &name) {
                    let _ = reply.send(Response::error(format!("{name}: {e}")));
                    return;
                }
                if wait {
                    self.waiters.entry(name).or_default().push(reply);
                } else {
                    let _ = reply.send(Response::ok(format!("{name}: initiating")));
                }
            }
            Request::UpAll => {
                let _ = reply.send(self.up_all(now));
            }
            Request::Down { name } => {
                self.drop_connection(&name);
                self.enabled.remove(&name);
                self.failing.retain(&self.enabled);
                let response = match self.apply() {
                    Ok(()) => Response::ok(format!("{name}: down")),
                    Err(e) => Response::error(e),
                };
                self.answer(&name, Response::error(format!("{name}: taken down")));
                let _ = reply.send(response);
            }
            Request::Rekey { name, ike } => {
                let (result, what) = if ike {
                    (self.engine.rekey_ike(now, &name), "IKE SA")
                } else {
                    (self.engine.rekey_children(now, &name), "CHILD SAs")
                };
                let response = match result {
                    Ok(()) => Response::ok(format!("{name}: rekeying its {what}")),
                    Err(e) => Response::error(format!("{name}: {e}")),
                };
                let _ = reply.send(response);
            }
        }
    }
}

impl vici_handler::Backend for Daemon {
    fn engine(&mut self) -> &mut Engine {
        &mut self.engine
    }

    fn ike_port(&self) -> u16 {
        self.options.ike_port
    }

    fn kernel_sas(&mut self) -> Result<Vec<crate::apply::status::SaStatus>, String> {
        self.kernel.sa_status().map_err(|e| e.to_string())
    }

    fn stats(&self) -> crate::vici::messages::Stats {
        crate::vici::messages::Stats {
            running_secs: self.started.elapsed().as_secs(),
            since: self.started_text.clone(),
            queued: self.inbound.max_capacity() - self.inbound.capacity(),
        }
    }

    fn initiations(&mut self) -> &mut vici_handler::Initiations {
        &mut self.initiations
    }

    fn loaded(&mut self) -> &mut vici_config::Loaded {
        &mut self.vici_loaded
    }

    fn profile_defines(&self, name: &str) -> bool {
        self.tunnels.iter().any(|t| t.name == name) && !self.vici_loaded.has_conn(name)
    }

    fn check(
        &mut self,
        profiles: &[crate::swanctl::import::ImportedProfile],
    ) -> Result<(), String> {
        self.check_loaded(profiles)
    }

    fn configure(
        &mut self,
        profiles: Vec<crate::swanctl::import::ImportedProfile>,
        unloaded: &[String],
    ) -> Result<(), String> {
        self.configure_loaded(profiles, unloaded)
    }

    fn deferred(&mut self) -> &mut vici_handler::Deferred {
        &mut self.vici_deferred
    }
}

fn standby_message(name: &str, local: IpAddr) -> String {
    format!("{name}: standby: its local address {local} is not on this host; negotiating when it appears")
}
