//! The IKEv2 protocol engine (RFC 7296), sans I/O in the style of quinn-proto: the driver
//! feeds it datagrams, time and operator commands, and polls what to send, what to install
//! in the kernel, what to log and when to call again.
//!
//! ```text
//! driver                       Engine
//!   initiate / terminate  -->  IKE SAs (sa.rs), one per connection and peer
//!   handle_datagram       -->    one module per exchange, each serving both roles:
//!                                  IKE_SA_INIT       ike_init.rs (+ cookie.rs, natt.rs)
//!                                  IKE_INTERMEDIATE  ike_intermediate.rs (RFC 9242/9370)
//!                                  IKE_AUTH          ike_auth.rs -> authenticators/
//!                                  CREATE_CHILD_SA   rekey.rs (Child SAs), ike_rekey.rs
//!                                  IKE_FOLLOWUP_KE   followup.rs (RFC 9370)
//!                                  INFORMATIONAL     informational.rs, dpd.rs
//!   handle_timeout        -->    back-off (retransmit.rs), DPD, rekeys, expiry
//!   poll_transmit         <--  datagrams (SK protection in protect.rs)
//!   poll_action           <--  KernelAction::{InstallChildSa, DeleteChildSa} (child.rs)
//!   poll_event            <--  Event (operator log), status() snapshots
//! ```
//!
//! Configuration ([`EngineConnection`], [`IkeConfig`]) is the engine's own: the plan builds
//! it, and `ike` depends on no layer above it. Authentication is per method and per
//! direction: [`LocalAuth`] makes our AUTH payload, [`RemoteAuth`] checks the peer's.
//!
//! Scope of this slice: IKE_SA_INIT (with INVALID_KE_PAYLOAD retry, NAT detection hashes
//! and COOKIE under load), IKE_AUTH with a pre-shared key and the first Child SA,
//! INFORMATIONAL liveness checks and deletes, retransmission with window size 1, dead peer
//! detection with restart / close actions and retries (dpd.rs), NAT traversal: the move to
//! the NAT-T port, UDP-encapsulated ESP, keepalives, `force`, following a new NAT mapping
//! (natt.rs), transport-mode selectors across a NAT (transport_nat.rs), CREATE_CHILD_SA for Child SAs: rekeying from either side with collisions, and
//! Child SAs the peer adds (rekey.rs); answering the peer's IKE SA rekey and starting IKE
//! SA rekeys, with collisions (ike_rekey.rs); kernel SA expiry reports (expire.rs) and
//! acquires for on-demand negotiation (trap.rs). Not yet: fragmentation, signatures.

mod authenticators;
mod child;
mod config;
mod cookie;
mod dpd;
mod events;
mod expire;
mod followup;
mod fragmentation;
mod ike_auth;
mod ike_init;
mod ike_intermediate;
mod ike_rekey;
mod informational;
mod natt;
mod protect;
mod rekey;
mod retransmit;
mod sa;
mod table;
mod transport_nat;
mod trap;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use crate::ike::codec::{
    max_message_len, ExchangeType, Flags, Header, Message, Notify, NotifyType, Payload,
    PayloadLookup,
};
use crate::ike::crypto::{random, CryptoError, KeyExchange};

pub use authenticators::{LocalAuth, RemoteAuth, SendCert};
pub(crate) use config::{display_list, secs};
pub use config::{
    wire_identity, ChildConfig, Dn, Dpd, DpdAction, EngineConfig, EngineConnection, Identity,
    IkeConfig, KeyId, Mode, NatTraversal, RetransmitConfig, StartAction, CHILD_REKEY_TIME,
    IKE_REKEY_TIME, MAX_REPLAY_WINDOW, REPLAY_WINDOW,
};
pub use cookie::CookieConfig;
pub use dpd::DpdCounters;
pub use events::{
    ChildSaInstall, ChildSaRef, ChildSaStatus, Event, FailureReason, IkeSaState, IkeSaStatus,
    KernelAction, Lifetimes, SaDirection, Selector, Transmit, UdpEncap,
};
pub use protect::ProtectError;

use retransmit::{Outstanding, Timer};
use sa::{IkeSa, InitSent, Phase, State};

/// The standard ports, the defaults of [`EngineConfig`].
pub const IKE_PORT: u16 = 500;
pub const NATT_PORT: u16 = 4500;

/// Why an operator command could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("no connection named {0:?}")]
    UnknownConnection(String),
    #[error("connection {0:?} has no IKE proposal with a key exchange group")]
    NoKeyExchangeGroup(String),
    #[error("crypto: {0}")]
    Crypto(#[from] CryptoError),
    #[error("encoding a message: {0}")]
    Encode(#[from] crate::ike::codec::EncodeError),
    #[error("protecting a message: {0}")]
    Protect(#[from] ProtectError),
    #[error("the IKE SA has no keys yet")]
    NoKeys,
    #[error("the IKE SA is past IKE_SA_INIT")]
    PastInit,
    #[error("authentication: {0}")]
    Auth(#[from] authenticators::AuthError),
    #[error("IKE_INTERMEDIATE: {0}")]
    Intermediate(String),
    /// Refused rather than done with a weaker key exchange than configured: the SA whose
    /// proposals require additional key exchanges a CREATE_CHILD_SA to this peer cannot carry.
    #[error(
        "{0} needs additional key exchanges, and the peer did not announce RFC 9370 \
(INTERMEDIATE_EXCHANGE_SUPPORTED), so CREATE_CHILD_SA cannot carry them: not rekeyed rather \
than weakened"
    )]
    AdditionalKeRequired(String),
}

/// Whether an IKE SA survives the processing of a message or timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Keep,
    Remove,
}

/// The engine: every connection and IKE SA of one routevpn instance.
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    /// By name: timers look their connection up for every IKE SA on every event.
    connections: BTreeMap<String, EngineConnection>,
    /// IKE SAs by our own SPI, with their deadlines (table.rs).
    sas: table::SaTable,
    transmits: VecDeque<Transmit>,
    actions: VecDeque<KernelAction>,
    events: VecDeque<Event>,
    /// Made on the first IKE_SA_INIT request (its secret needs the clock and randomness).
    cookies: Option<cookie::CookieJar>,
    /// Connections to initiate again at the given time (dpd.rs).
    pending_initiations: Vec<(Instant, String)>,
    /// Connections that negotiate when traffic for them arrives, after a loss whose action
    /// is `trap` (trap.rs).
    trapped: BTreeSet<String>,
    dpd_counters: BTreeMap<String, DpdCounters>,
}

impl Engine {
    pub fn new(config: EngineConfig) -> Self {
        Engine {
            config,
            connections: BTreeMap::new(),
            sas: table::SaTable::default(),
            transmits: VecDeque::new(),
            actions: VecDeque::new(),
            events: VecDeque::new(),
            cookies: None,
            pending_initiations: Vec::new(),
            trapped: BTreeSet::new(),
            dpd_counters: BTreeMap::new(),
        }
    }

    /// Adds a connection, replacing one of the same name (its SAs' timers follow the new
    /// settings).
    pub fn add_connection(&mut self, connection: EngineConnection) {
        let name = connection.name().to_owned();
        self.connections.insert(name.clone(), connection);
        self.refresh_timers(&name);
    }

    /// The SPIs of every IKE SA of the connection `name`.
    fn spis_of(&self, name: &str) -> Vec<u64> {
        (self.sas.iter())
            .filter(|(_, sa)| sa.connection == name)
            .map(|(spi, _)| *spi)
            .collect()
    }

    /// Recomputes the deadlines of `name`'s SAs, which depend on its settings (DPD).
    fn refresh_timers(&mut self, name: &str) {
        let spis = self.spis_of(name);
        for spi in spis {
            if let Some(sa) = self.sas.remove(&spi) {
                self.put(sa);
            }
        }
    }

    /// Deletes the connection's IKE SAs (telling the peer) and forgets the connection, so
    /// that the peer's attempts are no longer answered (`routevpn down`).
    pub fn remove_connection(&mut self, now: Instant, name: &str) -> Result<(), EngineError> {
        self.terminate(now, name)?;
        self.connections.remove(name);
        self.refresh_timers(name);
        Ok(())
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_action(&mut self) -> Option<KernelAction> {
        self.actions.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Engine::handle_timeout`] must be called next.
    pub fn next_timeout(&self) -> Option<Instant> {
        let restarts = self.pending_initiations.iter().map(|(at, _)| *at);
        let cookie_review = self
            .cookies
            .as_ref()
            .and_then(cookie::CookieJar::next_review);
        #[cfg(debug_assertions)]
        for (sa, stored) in self.sas.deadlines() {
            debug_assert_eq!(stored, self.deadline(sa), "stale timer: {sa:?}");
        }
        (self.sas.next_deadline())
            .into_iter()
            .chain(restarts)
            .chain(cookie_review)
            .min()
    }

    /// Stores `sa` (back) in the table with its next deadline.
    fn put(&mut self, sa: impl Into<Box<IkeSa>>) {
        let mut sa = sa.into();
        if sa.phase() == Phase::Established {
            sa.go_idle();
        }
        let deadline = self.deadline(&sa);
        self.sas.insert(sa, deadline);
    }

    /// The earliest timer of `sa`: retransmission, half-open expiry or DPD.
    fn deadline(&self, sa: &IkeSa) -> Option<Instant> {
        if let Some(at) = sa.retired_at {
            // Only the retransmission of our Delete of it, if any, runs meanwhile.
            return [Some(at + ike_rekey::RETIRED_FOR), sa.next_deadline()]
                .into_iter()
                .flatten()
                .min();
        }
        sa.next_deadline()
            .into_iter()
            .chain(sa.redundant_until)
            .chain(self.dpd_deadline(sa))
            .chain(Self::child_deadline(sa))
            .chain(Self::ike_rekey_deadline(sa))
            .chain(sa.keepalive_due())
            .min()
    }

    /// Every IKE SA held, half-open and retired ones included (status shows neither).
    pub fn ike_sa_count(&self) -> usize {
        self.sas.len()
    }

    pub fn status(&self) -> Vec<IkeSaStatus> {
        let mut all: Vec<IkeSaStatus> = (self.sas.values())
            .filter(|sa| !sa.rejected() && sa.retired_at.is_none())
            .map(IkeSa::status)
            .collect();
        all.sort_by(|a, b| (&a.name, a.spi_i).cmp(&(&b.name, b.spi_i)));
        all
    }

    /// The configured connections, by name.
    pub fn connections(&self) -> impl Iterator<Item = &EngineConnection> {
        self.connections.values()
    }

    fn connection(&self, name: &str) -> Option<&EngineConnection> {
        self.connections.get(name)
    }

    fn connection_named(&self, name: &str) -> Result<EngineConnection, EngineError> {
        self.connection(name)
            .cloned()
            .ok_or_else(|| EngineError::UnknownConnection(name.to_owned()))
    }

    /// A fresh SPI not used by any of our IKE SAs.
    fn unique_spi(&self) -> Result<u64, CryptoError> {
        loop {
            let spi = u64::from_be_bytes(random::ike_spi()?);
            if !self.sas.contains_key(&spi) {
                return Ok(spi);
            }
        }
    }

    fn fail(&mut self, name: &str, reason: FailureReason) {
        self.events.push_back(Event::Failed {
            name: name.to_owned(),
            reason,
        });
    }

    /// Drops the IKE SA `spi` at once, its Child SAs with it, sending nothing.
    fn forget_sa(&mut self, spi: u64, by_peer: bool) {
        if let Some(mut sa) = self.sas.remove(&spi) {
            self.delete_children(&mut sa);
            self.events.push_back(Event::Deleted {
                name: sa.connection.clone(),
                by_peer,
            });
        }
    }

    /// Emits the deletion of every Child SA of `sa` (before the IKE SA is forgotten).
    fn delete_children(&mut self, sa: &mut IkeSa) {
        for child in sa.child_refs() {
            self.actions.push_back(KernelAction::DeleteChildSa(child));
        }
        sa.children.clear();
    }

    /// Starts the connection `name`: sends IKE_SA_INIT. Over an established IKE SA, asks
    /// for the configured Child SAs it lacks (one expired, or the peer deleted it) instead.
    /// Does nothing more if the connection already has an IKE SA being set up or
    /// established.
    pub fn initiate(&mut self, now: Instant, name: &str) -> Result<(), EngineError> {
        let conn = self.connection_named(name)?;
        let children: Vec<String> = (conn.config.children.iter())
            .map(|c| c.name.clone())
            .collect();
        let lacking: Vec<u64> = (self.sas.iter())
            .filter(|(_, sa)| sa.connection == name && children.iter().any(|c| sa.misses_child(c)))
            .map(|(spi, _)| *spi)
            .collect();
        for spi in lacking {
            if let Some(mut sa) = self.sas.remove(&spi) {
                for child in &children {
                    if sa.misses_child(child) {
                        sa.children_to_request.push_back(child.clone());
                    }
                }
                // Re-inserted: its deadline now includes the request.
                self.put(sa);
            }
        }
        // A refused responder SA lingers only to repeat its answer: it does not count.
        let active =
            |sa: &IkeSa| sa.connection == name && sa.phase() != Phase::Deleting && !sa.rejected();
        if self.sas.values().any(active) {
            return Ok(());
        }
        let group = (conn.config.proposals.first())
            .and_then(|p| p.dh.first().copied())
            .ok_or_else(|| EngineError::NoKeyExchangeGroup(name.to_owned()))?;
        let init = InitSent::new(KeyExchange::new(group)?);
        let mut sa = IkeSa::new(
            name.to_owned(),
            true,
            State::InitSent(Box::new(init)),
            (
                SocketAddr::new(conn.local_addr, self.config.ike_port),
                SocketAddr::new(conn.config.remote, conn.config.remote_port),
            ),
        );
        sa.spi_i = self.unique_spi()?;
        sa.nonce_i = random::nonce()?;
        self.send_init_request(now, &mut sa, &conn)?;
        self.put(sa);
        Ok(())
    }

    /// Deletes every IKE SA of the connection `name`: established ones with an
    /// INFORMATIONAL Delete (their Child SAs are removed when the peer answers or the
    /// request times out), half-open ones at once.
    pub fn terminate(&mut self, now: Instant, name: &str) -> Result<(), EngineError> {
        let spis = self.stop_starting(name)?;
        for spi in spis {
            let Some(mut sa) = self.sas.remove(&spi) else {
                continue;
            };
            match sa.phase() {
                Phase::Established => {
                    if self.request_ike_delete(now, &mut sa) == Fate::Keep {
                        self.put(sa);
                    }
                }
                Phase::Deleting => {
                    self.put(sa);
                }
                Phase::InitSent | Phase::Auth => {
                    self.events.push_back(Event::Deleted {
                        name: sa.connection.clone(),
                        by_peer: false,
                    });
                }
            }
        }
        Ok(())
    }

    /// Cancels `name`'s pending restarts and traps; returns its IKE SAs' SPIs.
    fn stop_starting(&mut self, name: &str) -> Result<Vec<u64>, EngineError> {
        self.connection_named(name)?;
        self.pending_initiations.retain(|(_, n)| n != name);
        self.trapped.remove(name);
        Ok(self.spis_of(name))
    }

    /// Forgets the connection `name` and its IKE SAs without a word to the peer, removing
    /// their Child SAs: the local address they used is gone (an HA gateway that lost the
    /// virtual address), so nothing could be sent from it, and a Delete kept retransmitted
    /// would only linger. The gateway that took the address over sends INITIAL_CONTACT.
    pub fn abandon_connection(&mut self, name: &str) -> Result<(), EngineError> {
        let spis = self.stop_starting(name)?;
        for spi in spis {
            self.forget_sa(spi, false);
        }
        self.connections.remove(name);
        Ok(())
    }

    /// Sends an empty INFORMATIONAL request to check that the peer is alive; it fails the
    /// IKE SA with [`FailureReason::PeerNotResponding`] if no answer comes.
    pub fn check_liveness(&mut self, now: Instant, name: &str) -> Result<(), EngineError> {
        let spis: Vec<u64> = (self.sas.iter())
            .filter(|(_, sa)| {
                sa.connection == name
                    && sa.phase() == Phase::Established
                    && sa.outstanding.is_none()
                    && !sa.delete_pending
            })
            .map(|(spi, _)| *spi)
            .collect();
        for spi in spis {
            if let Some(mut sa) = self.sas.remove(&spi) {
                let result = self.send_request(now, &mut sa, ExchangeType::Informational, &[]);
                self.put(sa);
                result?;
            }
        }
        Ok(())
    }

    /// A datagram received on `local` from `remote` (UDP payload, no non-ESP marker).
    /// Malformed, unexpected and unauthenticated messages are dropped.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        bytes: &[u8],
    ) {
        let Ok(message) = Message::decode(bytes) else {
            return;
        };
        let h = message.header;
        if h.exchange == ExchangeType::IkeSaInit && !h.flags.response {
            if h.responder_spi == 0 && h.message_id == 0 && h.flags.initiator {
                self.responder_init(now, local, remote, &message, bytes);
            }
            return;
        }
        // The original initiator's messages carry its flag; we are then the responder.
        let our_spi = if h.flags.initiator {
            h.responder_spi
        } else {
            h.initiator_spi
        };
        let Some(mut sa) = self.sas.remove(&our_spi) else {
            return;
        };
        let spis_match = sa.initiator != h.flags.initiator
            && h.initiator_spi == sa.spi_i
            && (h.responder_spi == sa.spi_r || sa.phase() == Phase::InitSent);
        let progress = |sa: &IkeSa| {
            (
                sa.expected_request_id,
                sa.outstanding.as_ref().map(|o| o.message_id),
            )
        };
        let before = progress(&sa);
        let moved_from = spis_match
            .then(|| self.follow_addresses(&mut sa, local, remote))
            .flatten();
        let whole = || message.encrypted_fragment().is_none();
        let fate = if !spis_match || !(whole() || self.collect_fragment(&mut sa, &message, bytes)) {
            Fate::Keep
        } else if h.flags.response {
            self.handle_response(now, &mut sa, &message, bytes)
        } else {
            self.handle_request(now, &mut sa, &message, bytes)
        };
        // Only an authenticated message moves the message IDs on: proof of life for DPD
        // (a replayed or forged datagram cannot postpone the check). The peer's requests
        // show it is alive, but only an answer shows it hears us: on a path dead one way,
        // an unanswered check must still end the SA after dpd.timeout.
        if progress(&sa) != before {
            sa.last_heard = Some(now);
            if h.flags.response {
                sa.dpd_probe_sent = None;
            }
        } else if let Some((local, remote, udp_encap)) = moved_from {
            (sa.local, sa.remote, sa.udp_encap) = (local, remote, udp_encap);
        }
        self.run_pending_initiations(now);
        if fate == Fate::Keep {
            self.put(sa);
        }
    }

    fn handle_response(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        message: &Message,
        bytes: &[u8],
    ) -> Fate {
        let h = message.header;
        if sa.outstanding.as_ref().map(|o| o.message_id) != Some(h.message_id) {
            return Fate::Keep;
        }
        match (sa.phase(), h.exchange) {
            (Phase::InitSent, ExchangeType::IkeSaInit) if sa.initiator => {
                self.init_response(now, sa, message, bytes)
            }
            (Phase::Auth, ExchangeType::IkeIntermediate) if sa.initiator => {
                self.intermediate_response(now, sa, message, bytes)
            }
            (Phase::Auth, ExchangeType::IkeAuth) if sa.initiator => {
                self.auth_response(now, sa, message, bytes)
            }
            (Phase::Established | Phase::Deleting, ExchangeType::Informational) => {
                self.informational_response(now, sa, message, bytes)
            }
            (Phase::Established | Phase::Deleting, ExchangeType::CreateChildSa) => {
                self.create_child_response(now, sa, message, bytes)
            }
            (Phase::Established | Phase::Deleting, ExchangeType::IkeFollowupKe) => {
                self.followup_response(now, sa, message, bytes)
            }
            _ => Fate::Keep,
        }
    }

    fn handle_request(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        message: &Message,
        bytes: &[u8],
    ) -> Fate {
        let h = message.header;
        if let Some((id, response)) = &sa.last_response {
            if *id == h.message_id {
                // A retransmitted request: answer again without processing it.
                self.transmits
                    .extend(transmits(sa.local, sa.remote, response));
                return Fate::Keep;
            }
        }
        if h.message_id != sa.expected_request_id {
            return Fate::Keep;
        }
        match (sa.phase(), h.exchange) {
            (Phase::Auth, ExchangeType::IkeIntermediate) if !sa.initiator => {
                self.intermediate_request(sa, message, bytes)
            }
            // IKE_AUTH waits for every negotiated additional key exchange (RFC 9370).
            (Phase::Auth, ExchangeType::IkeAuth) if !sa.initiator && !sa.intermediate_pending() => {
                self.auth_request(now, sa, message, bytes)
            }
            (Phase::Established | Phase::Deleting, ExchangeType::Informational) => {
                self.informational_request(now, sa, message, bytes)
            }
            (Phase::Established, ExchangeType::CreateChildSa) => {
                self.create_child_request(now, sa, message, bytes)
            }
            (Phase::Established, ExchangeType::IkeFollowupKe) => {
                self.followup_request(now, sa, message, bytes)
            }
            _ => Fate::Keep,
        }
    }

    /// Timers: retransmissions, give-ups and half-open expiry.
    pub fn handle_timeout(&mut self, now: Instant) {
        for spi in self.sas.due(now) {
            let Some(mut sa) = self.sas.remove(&spi) else {
                continue;
            };
            if self.run_timers(now, &mut sa) == Fate::Keep {
                self.put(sa);
            }
        }
        self.run_pending_initiations(now);
        if self
            .cookies
            .as_ref()
            .and_then(cookie::CookieJar::next_review)
            .is_some_and(|at| at <= now)
        {
            self.review_cookies(now);
        }
    }

    fn run_timers(&mut self, now: Instant, sa: &mut IkeSa) -> Fate {
        if sa.half_open_until().is_some_and(|at| at <= now) {
            return Fate::Remove;
        }
        if let Some(at) = sa.retired_at {
            // Replaced by a rekey: forgotten quietly once its Delete is answered, given up
            // on, or (when the peer rekeyed) never sent.
            if at + ike_rekey::RETIRED_FOR <= now {
                return Fate::Remove;
            }
            let retransmit = self.config.retransmit;
            if let Some(outstanding) = sa.outstanding.as_mut().filter(|o| o.deadline() <= now) {
                match outstanding.on_timeout(now, &retransmit) {
                    Timer::Resend => {
                        let again = transmits(sa.local, sa.remote, &outstanding.datagrams);
                        self.transmits.extend(again);
                    }
                    Timer::GiveUp(_) => return Fate::Remove,
                }
            }
            return Fate::Keep;
        }
        let retransmit = self.config.retransmit;
        while let Some(outstanding) = sa.outstanding.as_mut() {
            if outstanding.deadline() > now {
                break;
            }
            match outstanding.on_timeout(now, &retransmit) {
                Timer::Resend => {
                    let again = transmits(sa.local, sa.remote, &outstanding.datagrams);
                    self.transmits.extend(again);
                }
                Timer::GiveUp(after) => {
                    let phase = sa.phase();
                    self.delete_children(sa);
                    if phase == Phase::Deleting {
                        self.events.push_back(Event::Deleted {
                            name: sa.connection.clone(),
                            by_peer: false,
                        });
                    } else {
                        if phase == Phase::Established && sa.dpd_probe_sent.is_some() {
                            self.count_dpd(&sa.connection, |c| c.timeouts += 1);
                        }
                        self.fail(&sa.connection, FailureReason::PeerNotResponding { after });
                        let loss = if phase == Phase::Established {
                            dpd::Loss::DeadPeer
                        } else {
                            dpd::Loss::AttemptFailed
                        };
                        self.after_loss(now, &sa.connection.clone(), loss);
                    }
                    return Fate::Remove;
                }
            }
        }
        if sa.redundant_until.is_some_and(|at| at <= now) && sa.phase() == Phase::Established {
            // The peer kept the crossed initiation it should have deleted.
            sa.redundant_until = None;
            return self.request_ike_delete(now, sa);
        }
        self.run_keepalive(now, sa);
        self.run_rekeys(now, sa);
        self.run_ike_rekey(now, sa);
        self.run_dpd(now, sa)
    }

    fn protocol_failure(&mut self, sa: &mut IkeSa, what: &str) -> Fate {
        self.delete_children(sa);
        self.fail(&sa.connection, FailureReason::Protocol(what.to_owned()));
        Fate::Remove
    }

    fn transmit(&mut self, sa: &IkeSa, payload: Vec<u8>) {
        self.transmits.push_back(Transmit {
            local: sa.local,
            remote: sa.remote,
            payload,
        });
    }

    /// The longest protected message we send on `sa` unfragmented: `None` unless both
    /// sides support RFC 7383; else what fits `fragment_size` octets of IP packet.
    fn max_message_len(&self, sa: &IkeSa) -> Option<usize> {
        let marker = sa.local.port() != self.config.ike_port;
        (sa.fragmentation)
            .then(|| max_message_len(self.config.fragment_size, sa.remote.is_ipv6(), marker))
    }

    /// Opens a protected request. One carrying a critical payload we do not know is
    /// answered with UNSUPPORTED_CRITICAL_PAYLOAD and goes no further (RFC 7296 2.5).
    fn open_request(
        &mut self,
        sa: &mut IkeSa,
        message: &Message,
        bytes: &[u8],
    ) -> Option<Vec<Payload>> {
        Some(self.open_request_whole(sa, message, bytes)?.payloads)
    }

    /// [`Self::open_request`], keeping the plaintext.
    fn open_request_whole(
        &mut self,
        sa: &mut IkeSa,
        message: &Message,
        bytes: &[u8],
    ) -> Option<protect::Opened> {
        let opened = sa.open_whole(message, bytes).ok()?;
        if let Some(unknown) = opened.payloads.unsupported_critical() {
            let notify = [Payload::Notify(Notify::new(
                NotifyType::UnsupportedCriticalPayload,
                vec![unknown.payload_type],
            ))];
            let h = message.header;
            let _ = self.send_response(sa, h.exchange, h.message_id, &notify);
            return None;
        }
        Some(opened)
    }

    /// Opens a request and answers it in its exchange with `answer`'s payloads, or with the
    /// notification it refuses it with.
    fn answer_request(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        message: &Message,
        bytes: &[u8],
        answer: impl FnOnce(&mut Self, Instant, &mut IkeSa, &[Payload]) -> Result<Vec<Payload>, Notify>,
    ) -> Fate {
        let h = message.header;
        let Some(payloads) = self.open_request(sa, message, bytes) else {
            return Fate::Keep;
        };
        let payloads =
            answer(self, now, sa, &payloads).unwrap_or_else(|n| vec![Payload::Notify(n)]);
        let _ = self.send_response(sa, h.exchange, h.message_id, &payloads);
        Fate::Keep
    }

    /// Sends a protected request with our next message ID and arms its retransmission.
    fn send_request(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        exchange: ExchangeType,
        payloads: &[Payload],
    ) -> Result<(), EngineError> {
        let header = Header::new(
            exchange,
            sa.spi_i,
            sa.spi_r,
            sa.next_request_id,
            Flags {
                initiator: sa.initiator,
                ..Flags::default()
            },
        );
        let max_len = self.max_message_len(sa);
        let ciphers = sa.ciphers.as_mut().ok_or(EngineError::NoKeys)?;
        let datagrams = protect::seal(ciphers, header, payloads, max_len)?;
        self.transmits
            .extend(transmits(sa.local, sa.remote, &datagrams));
        sa.outstanding = Some(Outstanding::new(
            now,
            sa.next_request_id,
            datagrams,
            &self.config.retransmit,
        ));
        sa.next_request_id = sa.next_request_id.wrapping_add(1);
        Ok(())
    }

    /// Sends a protected response and keeps it for retransmitted requests.
    fn send_response(
        &mut self,
        sa: &mut IkeSa,
        exchange: ExchangeType,
        message_id: u32,
        payloads: &[Payload],
    ) -> Result<(), EngineError> {
        let header = Header::new(
            exchange,
            sa.spi_i,
            sa.spi_r,
            message_id,
            Flags {
                initiator: sa.initiator,
                response: true,
                ..Flags::default()
            },
        );
        let max_len = self.max_message_len(sa);
        let ciphers = sa.ciphers.as_mut().ok_or(EngineError::NoKeys)?;
        let datagrams = protect::seal(ciphers, header, payloads, max_len)?;
        self.transmits
            .extend(transmits(sa.local, sa.remote, &datagrams));
        sa.last_response = Some((message_id, datagrams));
        sa.expected_request_id = message_id.wrapping_add(1);
        Ok(())
    }
}

/// One [`Transmit`] per datagram (a message or its fragments), in order.
fn transmits(
    local: SocketAddr,
    remote: SocketAddr,
    datagrams: &[Vec<u8>],
) -> impl Iterator<Item = Transmit> + '_ {
    (datagrams.iter()).map(move |payload| Transmit {
        local,
        remote,
        payload: payload.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_for_unknown_connections_fail() {
        let mut engine = Engine::new(EngineConfig::default());
        let now = Instant::now();
        assert!(matches!(
            engine.initiate(now, "nope"),
            Err(EngineError::UnknownConnection(_))
        ));
        assert!(matches!(
            engine.terminate(now, "nope"),
            Err(EngineError::UnknownConnection(_))
        ));
        assert!(engine.poll_transmit().is_none() && engine.next_timeout().is_none());
    }

    #[test]
    fn datagrams_without_a_matching_sa_or_connection_are_ignored() {
        let mut engine = Engine::new(EngineConfig::default());
        let now = Instant::now();
        let (l, r) = (
            "192.0.2.1:500".parse().unwrap(),
            "198.51.100.2:500".parse().unwrap(),
        );
        for bytes in [&[][..], &[0u8; 28][..], &[0xff; 100][..]] {
            engine.handle_datagram(now, l, r, bytes);
        }
        // A well-formed IKE_AUTH request for an SA we do not have.
        let header = Header::new(
            ExchangeType::IkeAuth,
            5,
            6,
            1,
            Flags {
                initiator: true,
                ..Flags::default()
            },
        );
        let bytes = Message::new(header, vec![]).unwrap().encode().unwrap();
        engine.handle_datagram(now, l, r, &bytes);
        // An IKE_SA_INIT request from a peer no connection names.
        let header = Header::new(ExchangeType::IkeSaInit, 5, 0, 0, header.flags);
        let bytes = Message::new(header, vec![]).unwrap().encode().unwrap();
        engine.handle_datagram(now, l, r, &bytes);
        assert!(engine.poll_transmit().is_none());
        assert!(engine.poll_event().is_none());
        assert!(engine.status().is_empty());
    }
}
