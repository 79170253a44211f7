//! IKE_FOLLOWUP_KE (RFC 9370 section 2.2.4) for both roles: a CREATE_CHILD_SA for a Child
//! SA that negotiated additional key exchanges is answered with the responder's link data
//! (ADDITIONAL_KEY_EXCHANGE); one IKE_FOLLOWUP_KE per method then carries the link back and
//! the next KE payloads, and the Child SA is installed only after the last, from
//! `prf+(SK_d, g^ir | SK(1) | ... | SK(n) | Ni | Nr)`. Offered only to a peer that announced
//! IKE_INTERMEDIATE (it knows RFC 9370). Rekeys of the IKE SA itself carry no additional
//! exchanges (rekey.rs refuses where they are mandatory).

use std::time::Instant;

use crate::ike::codec::{
    ExchangeType, KeyExchange as KePayload, Message, Notify, NotifyType, Payload, PayloadLookup,
};
use crate::ike::crypto::{random, KeyExchange, Secret};
use crate::ike::select::{additional_methods, KeyExchange as Ke};
use crate::proposal::DhGroup;

use super::child::Negotiated;
use super::rekey::{Answered, PendingRekey};
use super::sa::IkeSa;
use super::{Engine, EngineError, Fate};

/// The secrets so far, concatenated in exchange order, with one more appended.
fn append(secrets: &Secret, next: &Secret) -> Secret {
    Secret::new([secrets.expose(), next.expose()].concat())
}

/// Initiator: our CREATE_CHILD_SA was answered; its additional key exchanges are under way.
#[derive(Debug)]
pub struct Followup {
    negotiated: Negotiated,
    nonce_r: Vec<u8>,
    /// `g^ir | SK(1) | ...` so far.
    secrets: Secret,
    /// Methods still to exchange, the current one first.
    remaining: Vec<DhGroup>,
    /// The responder's link data for the next IKE_FOLLOWUP_KE.
    link: Vec<u8>,
    /// Our key pair for the current exchange.
    kex: Option<KeyExchange>,
}

impl Followup {
    /// What follows an answer that negotiated additional key exchanges.
    pub(super) fn start(
        negotiated: Negotiated,
        nonce_r: &[u8],
        pfs: Option<&Secret>,
        payloads: &[Payload],
    ) -> Result<Box<Followup>, String> {
        let remaining = additional_methods(&negotiated.choice.additional);
        let secrets = pfs.ok_or("additional key exchanges without a PFS group")?;
        let link = link_of(payloads).ok_or("the answer lacks ADDITIONAL_KEY_EXCHANGE")?;
        Ok(Box::new(Followup {
            negotiated,
            nonce_r: nonce_r.to_vec(),
            secrets: Secret::from_slice(secrets.expose()),
            remaining,
            link,
            kex: None,
        }))
    }
}

/// Responder: a Child SA agreed in CREATE_CHILD_SA, waiting for its additional exchanges.
#[derive(Debug)]
pub struct Awaiting {
    answered: Answered,
    secrets: Secret,
    remaining: Vec<DhGroup>,
    /// The link data our last answer carried, which the next request must echo.
    link: Vec<u8>,
}

impl Awaiting {
    pub(super) fn new(
        answered: Answered,
        pfs: &Secret,
        remaining: Vec<DhGroup>,
        link: Vec<u8>,
    ) -> Self {
        Awaiting {
            answered,
            secrets: Secret::from_slice(pfs.expose()),
            remaining,
            link,
        }
    }
}

fn link_of(payloads: &[Payload]) -> Option<Vec<u8>> {
    (payloads.notify(NotifyType::AdditionalKeyExchange))
        .map(|n| n.data.clone())
        .filter(|link| !link.is_empty())
}

fn link_payload(link: &[u8]) -> Payload {
    Payload::Notify(Notify::new(
        NotifyType::AdditionalKeyExchange,
        link.to_vec(),
    ))
}

impl IkeSa {
    /// How CREATE_CHILD_SA proposals are matched on this IKE SA.
    pub(super) fn create_child_ke(&self) -> Ke {
        if self.followup_ke {
            Ke::Followup
        } else {
            Ke::Present
        }
    }
}

impl Engine {
    /// Initiator: the answer negotiated additional key exchanges; the first goes out.
    pub(super) fn start_followup(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        mut pending: PendingRekey,
        followup: Box<Followup>,
    ) -> Fate {
        pending.followup = Some(followup);
        match self.send_followup(now, sa, &mut pending) {
            Ok(()) => {
                sa.pending_rekey = Some(Box::new(pending));
                Fate::Keep
            }
            // The responder holds an agreed Child SA it will forget on its own.
            Err(e) => self.rekey_failed(now, sa, &pending, e.to_string(), false),
        }
    }

    fn send_followup(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        pending: &mut PendingRekey,
    ) -> Result<(), EngineError> {
        let followup = pending.followup.as_mut().ok_or(EngineError::NoKeys)?;
        let group = *followup.remaining.first().ok_or(EngineError::NoKeys)?;
        let kex = KeyExchange::new(group)?;
        let payloads = [
            link_payload(&followup.link),
            Payload::KeyExchange(KePayload::new(group, kex.public_value().to_vec())),
        ];
        followup.kex = Some(kex);
        self.send_request(now, sa, ExchangeType::IkeFollowupKe, &payloads)
    }

    /// Initiator: the answer to an IKE_FOLLOWUP_KE; the next one, or the new Child SA.
    pub(super) fn followup_response(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        message: &Message,
        bytes: &[u8],
    ) -> Fate {
        let Ok(payloads) = sa.open(message, bytes) else {
            return Fate::Keep;
        };
        sa.outstanding = None;
        let Some(mut pending) = sa.pending_rekey.take().map(|p| *p) else {
            return Fate::Keep;
        };
        let Some(mut followup) = pending.followup.take() else {
            return Fate::Keep;
        };
        if let Err(reason) = take_answer(&mut followup, &payloads) {
            return self.rekey_failed(now, sa, &pending, reason, false);
        }
        if !followup.remaining.is_empty() {
            let Some(link) = link_of(&payloads) else {
                let reason = "the IKE_FOLLOWUP_KE answer lacks the next link".to_owned();
                return self.rekey_failed(now, sa, &pending, reason, false);
            };
            followup.link = link;
            return self.start_followup(now, sa, pending, followup);
        }
        let installed = self.install_ours(
            now,
            sa,
            &pending,
            &followup.negotiated,
            &followup.nonce_r,
            Some(&followup.secrets),
        );
        match installed {
            Ok(()) => self.rekey_done(now, sa, &pending, &followup.nonce_r),
            Err(reason) => self.rekey_failed(now, sa, &pending, reason, true),
        }
    }

    /// Responder: the initiator's next KE for a Child SA we agreed to.
    pub(super) fn followup_request(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        message: &Message,
        bytes: &[u8],
    ) -> Fate {
        self.answer_request(now, sa, message, bytes, Self::answer_followup)
    }

    fn answer_followup(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        payloads: &[Payload],
    ) -> Result<Vec<Payload>, Notify> {
        let refuse = |t: NotifyType| Notify::new(t, Vec::new());
        // Whatever the outcome, an exchange is answered once: a refused one is forgotten.
        let mut awaiting = (sa.awaiting_followup.take())
            .filter(|a| link_of(payloads).is_some_and(|link| link == a.link))
            .ok_or_else(|| refuse(NotifyType::StateNotFound))?;
        let group = *awaiting
            .remaining
            .first()
            .ok_or_else(|| refuse(NotifyType::StateNotFound))?;
        let ke = (payloads.key_exchange())
            .filter(|ke| ke.group == group.transform_id())
            .ok_or_else(|| Notify::invalid_ke_payload(group.transform_id()))?;
        let (ours, shared) =
            KeyExchange::respond(group, &ke.data).map_err(|_| refuse(NotifyType::InvalidSyntax))?;
        awaiting.secrets = append(&awaiting.secrets, &shared);
        awaiting.remaining.remove(0);
        let mut answer = vec![Payload::KeyExchange(KePayload::new(group, ours))];
        if !awaiting.remaining.is_empty() {
            let link = random::nonce().map_err(|_| refuse(NotifyType::TemporaryFailure))?;
            answer.insert(0, link_payload(&link));
            awaiting.link = link;
            sa.awaiting_followup = Some(awaiting);
            return Ok(answer);
        }
        self.install_answered(now, sa, &awaiting.answered, Some(&awaiting.secrets))?;
        Ok(answer)
    }
}

/// Takes the responder's KE of the current exchange into the secrets.
fn take_answer(followup: &mut Followup, payloads: &[Payload]) -> Result<(), String> {
    if let Some(error) = payloads.error_notify() {
        return Err(format!("the peer answered {:?}", error.notify_type));
    }
    let kex = followup.kex.take().ok_or("no key exchange outstanding")?;
    let ke = (payloads.key_exchange())
        .filter(|ke| ke.group == kex.group().transform_id())
        .ok_or("the IKE_FOLLOWUP_KE answer lacks the KE of its method")?;
    let shared = kex.shared_secret(&ke.data).map_err(|e| e.to_string())?;
    followup.secrets = append(&followup.secrets, &shared);
    followup.remaining.remove(0);
    Ok(())
}
