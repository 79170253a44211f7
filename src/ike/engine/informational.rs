//! INFORMATIONAL exchanges: liveness checks and deletes.

use crate::ike::codec::{
    Delete, ExchangeType, Message, NotifyType, Payload, PayloadLookup, ProtocolId,
};

use std::time::Instant;

use super::dpd::Loss;
use super::events::{Event, FailureReason};
use super::sa::{IkeSa, Phase, State};
use super::{Engine, Fate};

impl Engine {
    pub(super) fn informational_request(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        message: &Message,
        bytes: &[u8],
    ) -> Fate {
        let message_id = message.header.message_id;
        let Some(payloads) = self.open_request(sa, message, bytes) else {
            return Fate::Keep;
        };
        if payloads.notify(NotifyType::AuthenticationFailed).is_some() {
            // The initiator could not verify our AUTH (RFC 7296 section 2.21.2).
            let _ = self.send_response(sa, ExchangeType::Informational, message_id, &[]);
            self.delete_children(sa);
            self.fail(&sa.connection, FailureReason::refused_by_peer());
            return Fate::Remove;
        }
        let deletes_ike = payloads.deletes().any(|d| d.protocol == ProtocolId::Ike);
        if let Some(theirs) = (sa.collided.take())
            .filter(|_| deletes_ike)
            .and_then(|spi| self.sas.remove(&spi))
        {
            // Crossing IKE rekeys: the peer's won and it deleted the old IKE SA before
            // answering ours (section 2.8.2), so the IKE SA it made takes the Child SAs.
            let _ = self.send_response(sa, ExchangeType::Informational, message_id, &[]);
            self.adopt(now, sa, theirs);
            return Fate::Remove;
        }
        if sa.retired_at.is_some() && deletes_ike {
            // The old IKE SA of a rekey: its Child SAs live on in the new one.
            let _ = self.send_response(sa, ExchangeType::Informational, message_id, &[]);
            return Fate::Remove;
        }
        if deletes_ike {
            // Answer (empty), then forget the IKE SA and with it every Child SA.
            let _ = self.send_response(sa, ExchangeType::Informational, message_id, &[]);
            self.delete_children(sa);
            self.events.push_back(Event::Deleted {
                name: sa.connection.clone(),
                by_peer: true,
            });
            if !self.carried_elsewhere(sa) {
                self.after_loss(now, &sa.connection.clone(), Loss::ClosedByPeer);
            }
            return Fate::Remove;
        }
        // Child SA deletes name the peer's inbound SPIs, i.e. our outbound ones; we answer
        // with our inbound SPIs of the same pairs.
        let doomed: Vec<u32> = (payloads.deletes())
            .filter(|d| d.protocol == ProtocolId::Esp)
            .flat_map(|d| d.spis_u32().collect::<Vec<_>>())
            .collect();
        let ours: Vec<u32> = (sa.children.iter())
            .filter(|c| doomed.contains(&c.spi_out))
            .map(|c| c.spi_in)
            .collect();
        let mut answer = Vec::new();
        if !ours.is_empty() {
            self.remove_children(sa, &ours);
            answer.push(Payload::Delete(Delete::esp(&ours)));
        }
        // Anything else (an empty request is a liveness check) gets an empty answer.
        let _ = self.send_response(sa, ExchangeType::Informational, message_id, &answer);
        Fate::Keep
    }

    pub(super) fn informational_response(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        message: &Message,
        bytes: &[u8],
    ) -> Fate {
        if sa.open(message, bytes).is_err() {
            return Fate::Keep;
        }
        sa.outstanding = None;
        if sa.phase() == Phase::Deleting && sa.retired_at.is_some() {
            // The IKE SA we rekeyed is gone; its Child SAs live on under the new one.
            return Fate::Remove;
        }
        if sa.phase() == Phase::Deleting {
            self.delete_children(sa);
            self.events.push_back(Event::Deleted {
                name: sa.connection.clone(),
                by_peer: false,
            });
            return Fate::Remove;
        }
        let answered = std::mem::take(&mut sa.pending_deletes);
        self.remove_children(sa, &answered);
        self.send_deferred_delete(now, sa)
    }

    /// `terminate` came while a request was outstanding: now that it is answered, send
    /// the IKE SA's Delete.
    pub(super) fn send_deferred_delete(&mut self, now: Instant, sa: &mut IkeSa) -> Fate {
        if std::mem::take(&mut sa.delete_pending) {
            return self.request_ike_delete(now, sa);
        }
        Fate::Keep
    }

    /// Deletes an established IKE SA: sends its Delete now, or once the outstanding
    /// request is answered (window size 1). Its Child SAs go when the peer answers.
    pub(super) fn request_ike_delete(&mut self, now: Instant, sa: &mut IkeSa) -> Fate {
        sa.children_to_request.clear();
        if sa.outstanding.is_some() {
            sa.delete_pending = true;
            return Fate::Keep;
        }
        let delete = [Payload::Delete(Delete::ike_sa())];
        if self
            .send_request(now, sa, ExchangeType::Informational, &delete)
            .is_err()
        {
            // Without a way to tell the peer, still forget the SA locally.
            self.delete_children(sa);
            self.events.push_back(Event::Deleted {
                name: sa.connection.clone(),
                by_peer: false,
            });
            return Fate::Remove;
        }
        sa.state = State::Deleting;
        Fate::Keep
    }

    /// Another IKE SA with the same peer (established or being negotiated; not a refused
    /// one that only repeats its answer) carries the connection of `sa`, so losing `sa`
    /// needs no restart.
    pub(super) fn carried_elsewhere(&self, sa: &IkeSa) -> bool {
        (self.sas.values()).any(|other| {
            other.connection == sa.connection
                && other.remote.ip() == sa.remote.ip()
                && other.phase() != Phase::Deleting
                && other.retired_at.is_none()
                && !other.rejected()
        })
    }
}
