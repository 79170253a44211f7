//! Negotiation on demand (swanctl's `trap` actions). The dataplane's XFRM policies stay
//! installed with or without SAs (fail closed), so a packet for a tunnel without SAs makes
//! the kernel ask the key manager for them (XFRM_MSG_ACQUIRE, naming the Child SA's reqid)
//! and drops it. A connection with `start_action = trap` answers every such request; one
//! whose `dpd_action` or `close_action` is `trap` does so after that loss, until it is up
//! again or the operator takes it down.

use std::time::Instant;

use super::config::{DpdAction, StartAction};

use super::dpd::Loss;
use super::events::Event;
use super::Engine;

impl Engine {
    /// The kernel found no SA for the policy of the Child SA with `reqid`: negotiate it if
    /// its connection is trapped. Requests for a connection that is already negotiating,
    /// or that is not ours, change nothing.
    pub fn acquire(&mut self, now: Instant, reqid: u32) {
        let Some((name, child, start, close)) = (self.connections.values()).find_map(|c| {
            let child = c.config.children.iter().find(|ch| ch.reqid == reqid)?;
            let (start, close) = (c.config.start_action, c.config.close_action);
            Some((c.name().to_owned(), child.name.clone(), start, close))
        }) else {
            return;
        };
        let armed = start == StartAction::Trap || self.trapped.contains(&name);
        let live = (self.sas.iter())
            .find(|(_, sa)| sa.connection == name && sa.retired_at.is_none() && !sa.rejected())
            .map(|(spi, _)| *spi);
        match live.and_then(|spi| self.sas.remove(&spi)) {
            None if armed => {
                self.events.push_back(Event::Acquired {
                    name: name.clone(),
                    child,
                });
                if let Err(e) = self.initiate(now, &name) {
                    let reason = super::FailureReason::Protocol(format!("trap: {e}"));
                    self.fail(&name, reason);
                }
            }
            // The IKE SA is up but this Child SA is gone (the peer deleted it): ask for it
            // again over the IKE SA, as the next request.
            Some(mut sa) => {
                if sa.misses_child(&child) && (armed || close == StartAction::Trap) {
                    sa.children_to_request.push_back(child.clone());
                    self.events.push_back(Event::Acquired { name, child });
                }
                self.put(sa);
            }
            None => {}
        }
    }

    /// After a loss whose action is `trap`, the next packet for the tunnel negotiates it
    /// again (until it is up or taken down).
    pub(super) fn trap_after(&mut self, name: &str, loss: Loss) {
        let Some(config) = self.connection(name).map(|c| &c.config) else {
            return;
        };
        let trap = match loss {
            Loss::DeadPeer => config.dpd.action == DpdAction::Trap,
            Loss::ClosedByPeer => config.close_action == StartAction::Trap,
            // A trapped connection stays trapped; the next packet tries again.
            Loss::AttemptFailed => false,
        };
        if trap && self.trapped.insert(name.to_owned()) {
            self.events.push_back(Event::Trapped {
                name: name.to_owned(),
            });
        }
    }
}
