//! IKE_FOLLOWUP_KE (RFC 9370 section 2.2.4) for both roles: a CREATE_CHILD_SA for a Child
//! SA that negotiated additional key exchanges is answered with the responder's link data
//! (ADDITIONAL_KEY_EXCHANGE); one IKE_FOLLOWUP_KE per method then carries the link back and
//! the next KE payloads, and the Child SA is installed only after the last, from
//! `prf+(SK_d, g^ir | SK(1) | ... | SK(n) | Ni | Nr)`; a rekeyed IKE SA likewise, from
//! `SKEYSEED = prf(SK_d (old), g^ir | SK(1) | ... | SK(n) | Ni | Nr)` (ike_rekey.rs).
//! Offered only to a peer that announced IKE_INTERMEDIATE (it knows RFC 9370).

use std::time::Instant;

use crate::ike::codec::{
    ExchangeType, KeyExchange as KePayload, Message, Notify, NotifyType, Payload, PayloadLookup,
};
use crate::ike::crypto::{random, KeyExchange, Secret};
use crate::ike::select::KeyExchange as Ke;
use crate::proposal::DhGroup;

use super::child::Negotiated;
use super::rekey::{Answered, PendingRekey};
use super::sa::IkeSa;
use super::{Engine, EngineError, Fate};

/// The secrets so far, concatenated in exchange order, with one more appended.
fn append(secrets: &Secret, next: &Secret) -> Secret {
    Secret::new([secrets.expose(), next.expose()].concat())
}

/// Initiator: our CREATE_CHILD_SA was answered with `T` (what it agreed on); its additional
/// key exchanges are under way.
#[derive(Debug)]
pub struct Followup<T> {
    pub of: T,
    /// `g^ir | SK(1) | ...` so far.
    pub secrets: Secret,
    /// Methods still to exchange, the current one first.
    remaining: Vec<DhGroup>,
    /// The responder's link data for the next IKE_FOLLOWUP_KE.
    link: Vec<u8>,
    /// Our key pair for the current exchange.
    kex: Option<KeyExchange>,
}

/// A Child SA our CREATE_CHILD_SA agreed on.
#[derive(Debug)]
pub struct ChildAgreed {
    pub negotiated: Negotiated,
    pub nonce_r: Vec<u8>,
}

impl<T> Followup<T> {
    /// What follows an answer that negotiated `remaining` additional key exchanges after
    /// the one whose secret is `pfs`.
    pub(super) fn start(
        of: T,
        remaining: Vec<DhGroup>,
        pfs: Option<&Secret>,
        payloads: &[Payload],
    ) -> Result<Box<Self>, String> {
        let secrets = pfs.ok_or("additional key exchanges without a main one")?;
        let link = link_of(payloads).ok_or("the answer lacks ADDITIONAL_KEY_EXCHANGE")?;
        Ok(Box::new(Followup {
            of,
            secrets: Secret::from_slice(secrets.expose()),
            remaining,
            link,
            kex: None,
        }))
    }

    /// The request for the current method: the link and our KE.
    fn request(&mut self) -> Result<[Payload; 2], EngineError> {
        let group = *self.remaining.first().ok_or(EngineError::NoKeys)?;
        let kex = KeyExchange::new(group)?;
        let payloads = [
            link_payload(&self.link),
            Payload::KeyExchange(KePayload::new(group, kex.public_value().to_vec())),
        ];
        self.kex = Some(kex);
        Ok(payloads)
    }

    /// Takes the responder's KE of the current exchange into the secrets, and the link of
    /// the next one if any is left.
    pub(super) fn take_answer(&mut self, payloads: &[Payload]) -> Result<(), String> {
        if let Some(error) = payloads.error_notify() {
            return Err(format!("the peer answered {:?}", error.notify_type));
        }
        let kex = self.kex.take().ok_or("no key exchange outstanding")?;
        let ke = (payloads.key_exchange())
            .filter(|ke| ke.group == kex.group().transform_id())
            .ok_or("the IKE_FOLLOWUP_KE answer lacks the KE of its method")?;
        let shared = kex.shared_secret(&ke.data).map_err(|e| e.to_string())?;
        self.secrets = append(&self.secrets, &shared);
        self.remaining.remove(0);
        if !self.remaining.is_empty() {
            self.link =
                link_of(payloads).ok_or("the IKE_FOLLOWUP_KE answer lacks the next link")?;
        }
        Ok(())
    }

    pub(super) fn done(&self) -> bool {
        self.remaining.is_empty()
    }
}

/// What the responder agreed on in a CREATE_CHILD_SA with additional key exchanges.
#[derive(Debug)]
pub enum Agreed {
    Child(Answered),
    Ike(super::ike_rekey::IkeAgreed),
}

/// Responder: an SA agreed in CREATE_CHILD_SA, waiting for its additional exchanges.
#[derive(Debug)]
pub struct Awaiting {
    agreed: Agreed,
    secrets: Secret,
    remaining: Vec<DhGroup>,
    /// The link data our last answer carried, which the next request must echo.
    link: Vec<u8>,
}

impl Awaiting {
    pub(super) fn new(
        agreed: Agreed,
        pfs: &Secret,
        remaining: Vec<DhGroup>,
        link: Vec<u8>,
    ) -> Self {
        Awaiting {
            agreed,
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
    /// Initiator: our CHILD SA's answer negotiated additional key exchanges; the next one
    /// goes out.
    pub(super) fn start_followup(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        mut pending: PendingRekey,
        mut followup: Box<Followup<ChildAgreed>>,
    ) -> Fate {
        let sent = (followup.request()).and_then(|payloads| {
            self.send_request(now, sa, ExchangeType::IkeFollowupKe, &payloads)
        });
        pending.followup = Some(followup);
        match sent {
            Ok(()) => {
                sa.pending_rekey = Some(Box::new(pending));
                Fate::Keep
            }
            // The responder holds an agreed Child SA it will forget on its own.
            Err(e) => self.rekey_failed(now, sa, &pending, e.to_string(), false),
        }
    }

    /// Initiator: the next IKE_FOLLOWUP_KE of our IKE rekey.
    pub(super) fn send_followup<T>(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        followup: &mut Followup<T>,
    ) -> Result<(), EngineError> {
        let payloads = followup.request()?;
        self.send_request(now, sa, ExchangeType::IkeFollowupKe, &payloads)
    }

    /// Initiator: the answer to an IKE_FOLLOWUP_KE; the next one, or the new SA.
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
        if let Some(pending) = sa.pending_ike_rekey.take() {
            return self.ike_followup_response(now, sa, *pending, &payloads);
        }
        let Some(mut pending) = sa.pending_rekey.take().map(|p| *p) else {
            return Fate::Keep;
        };
        let Some(mut followup) = pending.followup.take() else {
            return Fate::Keep;
        };
        if let Err(reason) = followup.take_answer(&payloads) {
            return self.rekey_failed(now, sa, &pending, reason, false);
        }
        if !followup.done() {
            return self.start_followup(now, sa, pending, followup);
        }
        let ChildAgreed {
            negotiated,
            nonce_r,
        } = &followup.of;
        let installed = self.install_ours(
            now,
            sa,
            &pending,
            negotiated,
            nonce_r,
            Some(&followup.secrets),
        );
        match installed {
            Ok(()) => self.rekey_done(now, sa, &pending, nonce_r),
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
        match &awaiting.agreed {
            Agreed::Child(answered) => {
                self.install_answered(now, sa, answered, Some(&awaiting.secrets))?;
            }
            Agreed::Ike(agreed) => self.install_ike_agreed(now, sa, agreed, &awaiting.secrets)?,
        }
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9370 section 2.2.4: the secrets go into the key derivation in exchange order,
    /// after the CREATE_CHILD_SA's own: `g^ir | SK(1) | SK(2)`.
    #[test]
    fn each_answer_appends_its_secret_in_order_and_takes_the_next_link() {
        let g_ir = Secret::from_slice(&[7; 32]);
        let first_link = [Payload::Notify(Notify::new(
            NotifyType::AdditionalKeyExchange,
            vec![1],
        ))];
        let methods = vec![DhGroup::MlKem512, DhGroup::Curve25519];
        let mut followup = Followup::start((), methods, Some(&g_ir), &first_link).unwrap();
        let mut expected = g_ir.expose().to_vec();
        for (n, group) in [DhGroup::MlKem512, DhGroup::Curve25519]
            .into_iter()
            .enumerate()
        {
            let [link, Payload::KeyExchange(ke)] = followup.request().unwrap() else {
                panic!("link and KE expected");
            };
            assert_eq!(link, link_payload(&[n as u8 + 1]));
            assert_eq!(ke.group, group.transform_id());
            let (ours, shared) = KeyExchange::respond(group, &ke.data).unwrap();
            expected.extend_from_slice(shared.expose());
            let mut answer = vec![Payload::KeyExchange(KePayload::new(group, ours))];
            answer.push(link_payload(&[n as u8 + 2]));
            followup.take_answer(&answer).unwrap();
            assert!(
                followup.secrets.ct_eq(&expected),
                "after exchange {}",
                n + 1
            );
        }
        assert!(followup.done());
    }

    #[test]
    fn an_answer_without_the_next_link_or_with_another_method_fails() {
        let g_ir = Secret::from_slice(&[7; 32]);
        let link = [link_payload(&[1])];
        let two = vec![DhGroup::Curve25519, DhGroup::Curve25519];
        let mut followup = Followup::start((), two, Some(&g_ir), &link).unwrap();
        let [_, Payload::KeyExchange(ke)] = followup.request().unwrap() else {
            panic!("link and KE expected");
        };
        let (ours, _) = KeyExchange::respond(DhGroup::Curve25519, &ke.data).unwrap();
        let answer = [Payload::KeyExchange(KePayload::new(
            DhGroup::Curve25519,
            ours,
        ))];
        assert!(followup
            .take_answer(&answer)
            .unwrap_err()
            .contains("next link"));
        let mut followup =
            Followup::start((), vec![DhGroup::MlKem768], Some(&g_ir), &link).unwrap();
        followup.request().unwrap();
        let wrong = [Payload::KeyExchange(KePayload::new(
            DhGroup::Curve25519,
            vec![9; 32],
        ))];
        assert!(followup.take_answer(&wrong).is_err());
        assert!(Followup::start((), vec![DhGroup::MlKem768], Some(&g_ir), &[]).is_err());
    }
}
