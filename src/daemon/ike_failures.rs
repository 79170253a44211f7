//! Each tunnel's last failed IKE negotiation, for `status --json` and `doctor`: the reason
//! (never a secret) and when, until a CHILD SA of the tunnel is installed again.

use std::collections::BTreeMap;
use std::time::Instant;

use super::control::IkeFailure;

#[derive(Debug, Default)]
pub struct LastFailures {
    by_tunnel: BTreeMap<String, (String, Instant)>,
}

impl LastFailures {
    pub fn failed(&mut self, name: &str, reason: impl ToString, at: Instant) {
        self.by_tunnel
            .insert(name.to_string(), (reason.to_string(), at));
    }

    /// A tunnel that works again has no failure to report.
    pub fn succeeded(&mut self, name: &str) {
        self.by_tunnel.remove(name);
    }

    pub fn reports(&self, now: Instant) -> Vec<IkeFailure> {
        (self.by_tunnel.iter())
            .map(|(name, (reason, at))| IkeFailure {
                name: name.clone(),
                reason: reason.clone(),
                secs_ago: now.saturating_duration_since(*at).as_secs(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_last_failure_is_kept_until_the_tunnel_works() {
        let start = Instant::now();
        let mut failures = LastFailures::default();
        failures.failed("a", "no proposal chosen", start);
        failures.failed("a", "authentication failed", start + Duration::from_secs(1));
        let reports = failures.reports(start + Duration::from_secs(4));
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].reason, "authentication failed");
        assert_eq!(reports[0].secs_ago, 3);
        failures.succeeded("a");
        assert!(failures.reports(start).is_empty());
    }
}
