//! The outstanding request of an IKE SA (window size 1) and its back-off.

use std::time::{Duration, Instant};

use super::config::RetransmitConfig;

/// Our request awaiting its response.
#[derive(Clone, Debug)]
pub struct Outstanding {
    pub message_id: u32,
    /// The request as sent: one datagram, or all its fragments.
    pub datagrams: Vec<Vec<u8>>,
    first_sent: Instant,
    sends: u32,
    next_at: Instant,
}

/// What to do when the timer fires.
#[derive(Debug, PartialEq, Eq)]
pub enum Timer {
    Resend,
    /// The exchange failed; the request was first sent this long ago.
    GiveUp(Duration),
}

impl Outstanding {
    /// A request sent (for the first time) at `now`.
    pub fn new(
        now: Instant,
        message_id: u32,
        datagrams: Vec<Vec<u8>>,
        cfg: &RetransmitConfig,
    ) -> Self {
        Outstanding {
            message_id,
            datagrams,
            first_sent: now,
            sends: 1,
            next_at: now + cfg.interval(0),
        }
    }

    pub fn deadline(&self) -> Instant {
        self.next_at
    }

    /// Called at or after [`Outstanding::deadline`].
    pub fn on_timeout(&mut self, now: Instant, cfg: &RetransmitConfig) -> Timer {
        if self.sends > cfg.tries {
            return Timer::GiveUp(now.saturating_duration_since(self.first_sent));
        }
        // Scheduled from the deadline, not from `now`, so late polling does not stretch it.
        self.next_at += cfg.interval(self.sends);
        self.sends += 1;
        Timer::Resend
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_retransmits_then_give_up() {
        let cfg = RetransmitConfig::default();
        let t0 = Instant::now();
        let mut o = Outstanding::new(t0, 0, vec![vec![1]], &cfg);
        let mut resends = Vec::new();
        loop {
            let at = o.deadline();
            match o.on_timeout(at, &cfg) {
                Timer::Resend => resends.push(at - t0),
                Timer::GiveUp(after) => {
                    assert_eq!(after, at - t0);
                    break;
                }
            }
        }
        let secs: Vec<f64> = resends.iter().map(Duration::as_secs_f64).collect();
        let expected = [4.0, 11.2, 24.16, 47.488, 89.4784];
        assert_eq!(secs.len(), expected.len());
        for (got, want) in secs.iter().zip(expected) {
            assert!((got - want).abs() < 1e-6, "{secs:?}");
        }
    }
}
