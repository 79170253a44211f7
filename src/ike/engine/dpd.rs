//! Dead peer detection and what follows a lost or closed IKE SA: a liveness check after
//! `dpd.delay` without an authenticated message from the peer, the SA given up after
//! `dpd.timeout` without an answer, then `dpd.action` (restart re-initiates, trap waits for
//! traffic: trap.rs), and `close_action` when the peer deletes the IKE SA. Connections that
//! should be up (start_action = start, or restarted) keep being retried while the peer is
//! away.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::config::{DpdAction, StartAction};
use crate::ike::codec::ExchangeType;

use super::events::{Event, FailureReason};
use super::sa::{IkeSa, Phase};
use super::{Engine, Fate};

/// Wait before initiating again after an attempt gave up (strongSwan's keyingtries with a
/// retry interval, without an upper bound on tries: the operator asked for the tunnel).
pub const RETRY_INTERVAL: Duration = Duration::from_secs(30);

/// Liveness checks of one connection since the engine started, for the metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DpdCounters {
    pub probes: u64,
    /// Peers given up because a liveness check went unanswered.
    pub timeouts: u64,
}

/// Why an IKE SA went away, for deciding what to do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loss {
    /// An established SA whose peer stopped answering.
    DeadPeer,
    /// An attempt that never got established.
    AttemptFailed,
    /// The peer deleted the IKE SA.
    ClosedByPeer,
}

impl IkeSa {
    /// When the next liveness check is due, if DPD is on and nothing else is outstanding.
    pub fn dpd_due(&self, delay: Duration) -> Option<Instant> {
        if delay.is_zero() || self.phase() != Phase::Established || self.outstanding.is_some() {
            return None;
        }
        Some(self.last_heard.or(self.established_at)? + delay)
    }

    /// When an unanswered liveness check makes us give the peer up.
    pub fn dpd_expiry(&self, timeout: Duration) -> Option<Instant> {
        self.dpd_probe_sent.map(|sent| sent + timeout)
    }
}

impl Engine {
    /// The DPD timers of `sa` (its connection's settings), for `next_timeout`.
    pub(super) fn dpd_deadline(&self, sa: &IkeSa) -> Option<Instant> {
        let dpd = self.connection(&sa.connection)?.config.dpd;
        match (sa.dpd_due(dpd.delay), sa.dpd_expiry(dpd.timeout)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Runs the DPD timers of `sa`: gives it up or sends a liveness check.
    pub(super) fn run_dpd(&mut self, now: Instant, sa: &mut IkeSa) -> Fate {
        let Some(dpd) = self.connection(&sa.connection).map(|c| c.config.dpd) else {
            return Fate::Keep;
        };
        if sa.dpd_expiry(dpd.timeout).is_some_and(|at| at <= now) {
            self.count_dpd(&sa.connection, |c| c.timeouts += 1);
            self.delete_children(sa);
            self.fail(
                &sa.connection,
                FailureReason::PeerNotResponding { after: dpd.timeout },
            );
            self.after_loss(now, &sa.connection, Loss::DeadPeer);
            return Fate::Remove;
        }
        let due = sa.dpd_due(dpd.delay).is_some_and(|at| at <= now) && !sa.delete_pending;
        if due && (self.send_request(now, sa, ExchangeType::Informational, &[])).is_ok() {
            sa.dpd_probe_sent = Some(now);
            self.count_dpd(&sa.connection, |c| c.probes += 1);
        }
        Fate::Keep
    }

    pub(super) fn count_dpd(&mut self, name: &str, count: impl FnOnce(&mut DpdCounters)) {
        count(self.dpd_counters.entry(name.to_owned()).or_default());
    }

    /// Liveness checks sent and peers given up, by connection.
    pub fn dpd_counters(&self) -> &BTreeMap<String, DpdCounters> {
        &self.dpd_counters
    }

    /// Decides what follows the loss of an IKE SA of `name` and schedules it.
    pub(super) fn after_loss(&mut self, now: Instant, name: &str, loss: Loss) {
        let Some(config) = self.connection(name).map(|c| c.config.clone()) else {
            return;
        };
        let restart = match loss {
            Loss::DeadPeer => config.dpd.action == DpdAction::Restart,
            Loss::ClosedByPeer => config.close_action == StartAction::Start,
            // A connection that should be up keeps trying; a manual `up` failed for good.
            Loss::AttemptFailed => config.start_action == StartAction::Start,
        };
        if !restart {
            self.trap_after(name, loss);
            return;
        }
        let at = match loss {
            // Restart at once: the peer may already be back (it rebooted) or answer soon.
            Loss::DeadPeer | Loss::ClosedByPeer => now,
            Loss::AttemptFailed => now + RETRY_INTERVAL,
        };
        self.events.push_back(Event::Restarting {
            name: name.to_owned(),
            after: at.saturating_duration_since(now),
        });
        self.pending_initiations.retain(|(_, n)| n != name);
        self.pending_initiations.push((at, name.to_owned()));
    }

    /// Starts the connections whose restart is due.
    pub(super) fn run_pending_initiations(&mut self, now: Instant) {
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending_initiations)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        self.pending_initiations = later;
        for (_, name) in due {
            if let Err(e) = self.initiate(now, &name) {
                self.fail(&name, FailureReason::Protocol(format!("restart: {e}")));
            }
        }
    }
}
