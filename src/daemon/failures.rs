//! Tunnels whose dataplane the kernel refused: until their retry is due (5 s after the
//! first failure, doubling up to 5 minutes) they keep the profile they last applied with,
//! if any, or are left out of the applies.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::control::TunnelFailure;
use crate::model::Tunnel;

const FIRST_RETRY: Duration = Duration::from_secs(5);
const LAST_RETRY: Duration = Duration::from_secs(300);

#[derive(Clone, Debug)]
struct Failure {
    error: String,
    attempts: u32,
    retry_at: Instant,
    /// The profile the tunnel last applied with, applied meanwhile.
    kept: Option<Tunnel>,
}

#[derive(Debug, Default)]
pub struct Failing {
    by_tunnel: BTreeMap<String, Failure>,
}

/// The wait after `attempts` failures in a row.
fn backoff(attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(16);
    (FIRST_RETRY * 2u32.pow(doublings)).min(LAST_RETRY)
}

impl Failing {
    /// Records another failure of `tunnel`, which keeps `kept` until its retry; returns the
    /// wait before its next attempt.
    pub fn record(
        &mut self,
        tunnel: &str,
        error: String,
        kept: Option<Tunnel>,
        now: Instant,
    ) -> Duration {
        let attempts = self.by_tunnel.get(tunnel).map_or(0, |f| f.attempts) + 1;
        let wait = backoff(attempts);
        self.by_tunnel.insert(
            tunnel.to_owned(),
            Failure {
                error,
                attempts,
                retry_at: now + wait,
                kept,
            },
        );
        wait
    }

    /// Forgets `tunnel`; returns how many attempts had failed.
    pub fn clear(&mut self, tunnel: &str) -> Option<u32> {
        self.by_tunnel.remove(tunnel).map(|f| f.attempts)
    }

    /// Waiting for its retry.
    pub fn waiting(&self, tunnel: &str, now: Instant) -> bool {
        self.by_tunnel.get(tunnel).is_some_and(|f| f.retry_at > now)
    }

    pub fn kept(&self, tunnel: &str) -> Option<&Tunnel> {
        self.by_tunnel.get(tunnel)?.kept.as_ref()
    }

    pub fn error(&self, tunnel: &str) -> Option<&str> {
        self.by_tunnel.get(tunnel).map(|f| f.error.as_str())
    }

    /// The tunnels of `enabled` to apply now: all but those waiting for their retry with
    /// no earlier profile to keep.
    pub fn to_apply(&self, enabled: &BTreeSet<String>, now: Instant) -> BTreeSet<String> {
        (enabled.iter())
            .filter(|n| !self.waiting(n, now) || self.kept(n).is_some())
            .cloned()
            .collect()
    }

    pub fn retry_all_now(&mut self, now: Instant) {
        for failure in self.by_tunnel.values_mut() {
            failure.retry_at = now;
        }
    }

    pub fn next_retry(&self) -> Option<Instant> {
        self.by_tunnel.values().map(|f| f.retry_at).min()
    }

    /// Keeps only the tunnels still enabled.
    pub fn retain(&mut self, enabled: &BTreeSet<String>) {
        self.by_tunnel.retain(|n, _| enabled.contains(n));
    }

    pub fn reports(&self, now: Instant) -> Vec<TunnelFailure> {
        (self.by_tunnel.iter())
            .map(|(name, f)| TunnelFailure {
                name: name.clone(),
                error: f.error.clone(),
                attempts: f.attempts,
                kept_previous: f.kept.is_some(),
                retry_in_secs: f.retry_at.saturating_duration_since(now).as_secs(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_from_5_s_doubling_to_5_minutes() {
        let waits: Vec<u64> = (1..=9).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(backoff(u32::MAX), LAST_RETRY);
    }

    #[test]
    fn a_failing_tunnel_waits_for_its_retry() {
        let now = Instant::now();
        let enabled: BTreeSet<String> = ["a", "b"].map(String::from).into();
        let mut failing = Failing::default();
        assert_eq!(
            failing.record("a", "refused".into(), None, now),
            FIRST_RETRY
        );
        assert_eq!(failing.to_apply(&enabled, now), ["b".to_string()].into());
        assert_eq!(failing.to_apply(&enabled, now + FIRST_RETRY), enabled);
        assert_eq!(
            failing.record("a", "refused".into(), None, now),
            FIRST_RETRY * 2
        );
        let report = &failing.reports(now)[0];
        assert_eq!((report.attempts, report.retry_in_secs), (2, 10));
        assert_eq!(failing.clear("a"), Some(2));
        assert_eq!(failing.next_retry(), None);
    }
}
