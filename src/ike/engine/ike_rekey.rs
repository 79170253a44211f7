//! IKE SA rekeying (RFC 7296 section 2.18): a CREATE_CHILD_SA carrying an IKE proposal with
//! the new SPI, a nonce and a key exchange; the new keys come from the old SK_d. Every
//! Child SA moves to the new IKE SA, so the kernel's SAs are untouched and no packet is
//! lost. The old IKE SA retires: the rekey's initiator deletes it over itself, the other
//! side waits for that Delete (or a minute at most).
//!
//! We rekey when the connection's `rekey_time` (minus up to `rand_time`) has run out, or on
//! `routevpn rekey NAME --ike`. A peer's IKE rekey that meets ours in flight is answered as
//! usual (sections 2.8.2 and 2.25.2): both exchanges make a new IKE SA, and the one made by
//! the exchange with the lowest of the four nonces is redundant. Its maker deletes it; the
//! maker of the other deletes the old IKE SA, whose Child SAs move to the survivor.

use std::time::{Duration, Instant};

use crate::ike::codec::{Delete, ExchangeType};
use crate::ike::codec::{
    KeyExchange as KePayload, Nonce, Notify, NotifyType, Payload, PayloadLookup, Proposal,
    SecurityAssociation,
};
use crate::ike::crypto::{
    random, CryptoError, IkeSaKeys, IkeSuite, KeyExchange, Secret, SkCiphers,
};
use crate::ike::select::{additional_methods, in_create_child_sa, select_ike, IkeChoice};
use crate::proposal::{DhGroup, IkeProposal};

use super::events::Event;
use super::followup::{Agreed, Awaiting, Followup};
use super::sa::{IkeSa, Phase, State};
use super::{Engine, EngineError, Fate};

/// How long a replaced IKE SA waits for the peer's Delete.
pub const RETIRED_FOR: Duration = Duration::from_secs(60);

/// A failed or refused IKE rekey is tried again after this long plus up to as much again
/// at random, so two peers that refused each other's rekeys do not meet again.
const IKE_REKEY_RETRY: Duration = Duration::from_secs(10);

/// Our rekey of an IKE SA, until the peer answers.
#[derive(Debug)]
pub struct PendingIkeRekey {
    /// Our SPI of the new IKE SA, whose initiator we are.
    pub spi: u64,
    pub nonce: Vec<u8>,
    pub kex: KeyExchange,
    /// INVALID_KE_PAYLOAD answers so far.
    pub ke_retries: u32,
    /// Answered, with additional key exchanges under way (followup.rs).
    pub followup: Option<Box<Followup<IkeAgreed>>>,
}

/// A new IKE SA agreed in CREATE_CHILD_SA, from either side, until its additional key
/// exchanges are done.
#[derive(Debug)]
pub struct IkeAgreed {
    pub choice: IkeChoice,
    pub nonce_i: Vec<u8>,
    pub nonce_r: Vec<u8>,
    pub spis: (u64, u64),
}

/// What the answer to our IKE rekey led to.
enum IkeAccepted {
    New(Box<IkeSa>),
    Followup(Box<Followup<IkeAgreed>>),
}

/// Why our IKE rekey did not produce a new IKE SA.
enum Refused {
    /// The peer wants another key exchange group (one we offer).
    Group(DhGroup),
    Failed(String),
}

/// What an IKE rekey exchange agreed on, from either side.
struct RekeyExchange<'a> {
    we_initiated: bool,
    choice: IkeChoice,
    shared: &'a Secret,
    nonce_i: &'a [u8],
    nonce_r: &'a [u8],
    /// The new IKE SA's SPIs; the rekey's initiator is its original initiator.
    spis: (u64, u64),
}

fn retry_delay() -> Duration {
    use rand::Rng;
    let jitter = rand::rngs::OsRng.gen_range(0..=IKE_REKEY_RETRY.as_millis() as u64);
    IKE_REKEY_RETRY + Duration::from_millis(jitter)
}

/// The IKE proposals a rekey of `sa` can use: as configured with a peer that knows RFC 9370,
/// else without additional key exchanges.
fn rekey_proposals(sa: &IkeSa, proposals: &[IkeProposal]) -> Vec<IkeProposal> {
    if sa.followup_ke {
        proposals.to_vec()
    } else {
        for_create_child(proposals)
    }
}

/// The IKE proposals without additional key exchanges (see [`in_create_child_sa`]). The new
/// SKEYSEED still mixes in the old SK_d, so what the additional exchanges of the first key
/// derivation protected stays protected.
fn for_create_child(proposals: &[IkeProposal]) -> Vec<IkeProposal> {
    (proposals.iter())
        .filter_map(|p| {
            Some(IkeProposal {
                additional: in_create_child_sa(&p.additional)?,
                ..p.clone()
            })
        })
        .collect()
}

/// The answer to the peer's IKE rekey: our choice with the new SPI, our nonce and KE, and
/// the link to the first IKE_FOLLOWUP_KE when additional key exchanges follow.
fn rekey_answer(
    number: u8,
    choice: &IkeChoice,
    spi_r: u64,
    nonce_r: Vec<u8>,
    our_ke: Vec<u8>,
    link: Option<Vec<u8>>,
) -> Vec<Payload> {
    let proposal = Proposal::from_ike(number, &choice.as_proposal(), Some(spi_r));
    let mut answer = vec![
        Payload::SecurityAssociation(SecurityAssociation {
            proposals: vec![proposal],
        }),
        Payload::Nonce(Nonce { data: nonce_r }),
        Payload::KeyExchange(KePayload::new(choice.dh, our_ke)),
    ];
    answer.extend(
        link.map(|link| Payload::Notify(Notify::new(NotifyType::AdditionalKeyExchange, link))),
    );
    answer
}

impl Engine {
    pub(super) fn answer_ike_rekey(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        offer: &SecurityAssociation,
        payloads: &[Payload],
    ) -> Result<Vec<Payload>, Notify> {
        let refuse = |t: NotifyType| Notify::new(t, Vec::new());
        let conn = (self.connection(&sa.connection).cloned())
            .ok_or_else(|| refuse(NotifyType::NoAdditionalSas))?;
        let (Some(nonce_i), Some(ke), Some(old_keys)) =
            (payloads.nonce(), payloads.key_exchange(), sa.keys.as_ref())
        else {
            return Err(refuse(NotifyType::InvalidSyntax));
        };
        let crossing = sa.pending_ike_rekey.is_some();
        if sa.retired_at.is_some()
            || sa.delete_pending
            || sa.pending_rekey.is_some()
            || sa.collided.is_some()
            || (sa.outstanding.is_some() && !crossing)
        {
            // Closing, or busy with a Child SA: the peer tries again (section 2.25).
            return Err(refuse(NotifyType::TemporaryFailure));
        }
        let offered: Vec<(u8, u64, IkeProposal)> = (offer.proposals.iter())
            .filter_map(|p| Some((p.number, p.spi_u64()?, p.ike_transforms()?.supported)))
            .collect();
        let list: Vec<IkeProposal> = offered.iter().map(|(_, _, p)| p.clone()).collect();
        let Some((index, choice)) = select_ike(&rekey_proposals(sa, &conn.config.proposals), &list)
        else {
            return Err(refuse(NotifyType::NoProposalChosen));
        };
        if ke.group != choice.dh.transform_id() {
            return Err(Notify::invalid_ke_payload(choice.dh.transform_id()));
        }
        let (number, spi_i, _) = offered[index];
        let internal = |_| refuse(NotifyType::NoProposalChosen);
        let (our_ke, shared) = KeyExchange::respond(choice.dh, &ke.data)
            .map_err(|_| refuse(NotifyType::InvalidSyntax))?;
        let spi_r = self.unique_spi().map_err(internal)?;
        let nonce_r = random::nonce().map_err(internal)?;
        let methods = additional_methods(&choice.additional);
        if !methods.is_empty() {
            if crossing {
                // Crossing rekeys are settled only without additional exchanges; the peer
                // tries again after ours.
                return Err(refuse(NotifyType::TemporaryFailure));
            }
            let link = random::nonce().map_err(internal)?;
            let agreed = IkeAgreed {
                choice,
                nonce_i: nonce_i.data.clone(),
                nonce_r: nonce_r.clone(),
                spis: (spi_i, spi_r),
            };
            sa.awaiting_followup = Some(Box::new(Awaiting::new(
                Agreed::Ike(agreed),
                &shared,
                methods,
                link.clone(),
            )));
            return Ok(rekey_answer(
                number,
                &choice,
                spi_r,
                nonce_r,
                our_ke,
                Some(link),
            ));
        }
        let exchange = RekeyExchange {
            we_initiated: false,
            choice,
            shared: &shared,
            nonce_i: &nonce_i.data,
            nonce_r: &nonce_r,
            spis: (spi_i, spi_r),
        };
        let mut new = (self.successor(now, sa, old_keys, &exchange)).map_err(internal)?;
        if crossing {
            // Provisional until ours is answered: hidden, no DPD or rekey, quiet if the peer
            // deletes it.
            new.retired_at = Some(now);
            sa.collided = Some(spi_r);
        } else {
            self.hand_over(sa, &mut new, now);
        }
        self.put(new);
        Ok(rekey_answer(number, &choice, spi_r, nonce_r, our_ke, None))
    }

    /// Responder: the additional key exchanges of the peer's IKE rekey are done; the new IKE
    /// SA takes over, keyed from all their secrets.
    pub(super) fn install_ike_agreed(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        agreed: &IkeAgreed,
        secrets: &Secret,
    ) -> Result<(), Notify> {
        let internal = || Notify::new(NotifyType::NoProposalChosen, Vec::new());
        let old_keys = sa.keys.as_ref().ok_or_else(internal)?;
        let exchange = RekeyExchange {
            we_initiated: false,
            choice: agreed.choice,
            shared: secrets,
            nonce_i: &agreed.nonce_i,
            nonce_r: &agreed.nonce_r,
            spis: agreed.spis,
        };
        let mut new = (self.successor(now, sa, old_keys, &exchange)).map_err(|_| internal())?;
        self.hand_over(sa, &mut new, now);
        self.put(new);
        Ok(())
    }

    /// When an IKE SA of `connection` established at `now` is to be rekeyed.
    pub(super) fn ike_rekey_schedule(&self, connection: &str, now: Instant) -> Option<Instant> {
        let config = &self.connection(connection)?.config;
        let after = super::config::rekey_after(config.rekey_time, config.rand_time);
        (!after.is_zero()).then(|| now + after)
    }

    /// The IKE rekey timer of `sa`; it waits while a request is outstanding.
    pub(super) fn ike_rekey_deadline(sa: &IkeSa) -> Option<Instant> {
        let idle = sa.phase() == Phase::Established
            && sa.outstanding.is_none()
            && sa.retired_at.is_none()
            && !sa.delete_pending;
        sa.ike_rekey_at.filter(|_| idle)
    }

    /// Operator command: rekey the connection's IKE SA now (`routevpn rekey NAME --ike`).
    pub fn rekey_ike(&mut self, now: Instant, name: &str) -> Result<(), EngineError> {
        self.connection_named(name)?;
        let spis: Vec<u64> = (self.sas.iter())
            .filter(|(_, sa)| {
                sa.connection == name && sa.phase() == Phase::Established && sa.retired_at.is_none()
            })
            .map(|(spi, _)| *spi)
            .collect();
        for spi in spis {
            let Some(mut sa) = self.sas.remove(&spi) else {
                continue;
            };
            sa.ike_rekey_at = Some(now);
            self.run_ike_rekey(now, &mut sa);
            self.put(sa);
        }
        Ok(())
    }

    /// Starts the IKE rekey of `sa` if it is due and nothing else is under way.
    pub(super) fn run_ike_rekey(&mut self, now: Instant, sa: &mut IkeSa) {
        let due = Self::ike_rekey_deadline(sa).is_some_and(|at| at <= now);
        if !due || sa.pending_rekey.is_some() {
            return;
        }
        // The group of the current IKE SA is the one the peer most likely takes.
        let group = sa.choice.map(|c| c.dh);
        if let Err(e) = self.start_ike_rekey(now, sa, group, 0) {
            sa.ike_rekey_at = Some(now + retry_delay());
            self.events.push_back(Event::IkeRekeyFailed {
                name: sa.connection.clone(),
                reason: e.to_string(),
            });
        }
    }

    fn start_ike_rekey(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        group: Option<DhGroup>,
        ke_retries: u32,
    ) -> Result<(), EngineError> {
        let conn = self.connection_named(&sa.connection)?;
        let proposals = rekey_proposals(sa, &conn.config.proposals);
        if proposals.is_empty() {
            return Err(EngineError::AdditionalKeRequired(format!(
                "the IKE SA of {:?}",
                sa.connection
            )));
        }
        let group = group
            .filter(|g| proposals.iter().any(|p| p.dh.contains(g)))
            .or_else(|| proposals.first()?.dh.first().copied())
            .ok_or_else(|| EngineError::NoKeyExchangeGroup(sa.connection.clone()))?;
        let spi = self.unique_spi()?;
        let nonce = random::nonce()?;
        let kex = KeyExchange::new(group)?;
        let payloads = [
            Payload::SecurityAssociation(SecurityAssociation::from_ike_proposals(
                &proposals,
                Some(spi),
            )?),
            Payload::Nonce(Nonce {
                data: nonce.clone(),
            }),
            Payload::KeyExchange(KePayload::new(group, kex.public_value().to_vec())),
        ];
        self.send_request(now, sa, ExchangeType::CreateChildSa, &payloads)?;
        sa.ike_rekey_at = None;
        sa.pending_ike_rekey = Some(Box::new(PendingIkeRekey {
            spi,
            nonce,
            kex,
            ke_retries,
            followup: None,
        }));
        Ok(())
    }

    /// The answer to our IKE rekey: the new IKE SA takes the Child SAs and the old one is
    /// deleted over itself; or the rekey is tried again later.
    pub(super) fn ike_rekey_response(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        pending: PendingIkeRekey,
        payloads: &[Payload],
    ) -> Fate {
        let theirs = (sa.collided.take()).and_then(|spi| self.sas.remove(&spi));
        let outcome = self.accept_ike_rekey(now, sa, &pending, payloads);
        if let Some(theirs) = theirs {
            return match outcome {
                Ok(IkeAccepted::New(ours)) => self.settle_collision(now, sa, *ours, theirs),
                // The peer's rekey stands alone (ours would need additional exchanges,
                // which crossing rekeys do without); the peer deletes the old IKE SA.
                Ok(IkeAccepted::Followup(_)) | Err(_) => self.adopt(now, sa, theirs),
            };
        }
        let reason = match outcome {
            Ok(IkeAccepted::New(new)) => return self.retire(now, sa, *new),
            Ok(IkeAccepted::Followup(followup)) => {
                return self.continue_ike_followup(now, sa, pending, followup)
            }
            Err(Refused::Group(group)) if pending.ke_retries < 2 && !sa.delete_pending => {
                match self.start_ike_rekey(now, sa, Some(group), pending.ke_retries + 1) {
                    Ok(()) => return Fate::Keep,
                    Err(e) => e.to_string(),
                }
            }
            Err(Refused::Group(group)) => {
                format!("the peer keeps asking for another group ({group})")
            }
            Err(Refused::Failed(reason)) => reason,
        };
        self.ike_rekey_failed(now, sa, reason)
    }

    /// Our IKE rekey failed: it is tried again later.
    fn ike_rekey_failed(&mut self, now: Instant, sa: &mut IkeSa, reason: String) -> Fate {
        sa.ike_rekey_at = Some(now + retry_delay());
        self.events.push_back(Event::IkeRekeyFailed {
            name: sa.connection.clone(),
            reason,
        });
        self.send_deferred_delete(now, sa)
    }

    /// Our IKE rekey's next IKE_FOLLOWUP_KE goes out.
    fn continue_ike_followup(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        mut pending: PendingIkeRekey,
        mut followup: Box<Followup<IkeAgreed>>,
    ) -> Fate {
        if let Err(e) = self.send_followup(now, sa, &mut followup) {
            return self.end_ike_followups(now, sa, Err(e.to_string()));
        }
        pending.followup = Some(followup);
        sa.pending_ike_rekey = Some(Box::new(pending));
        Fate::Keep
    }

    /// The answer to an IKE_FOLLOWUP_KE of our IKE rekey: the next one, or the new IKE SA.
    pub(super) fn ike_followup_response(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        mut pending: PendingIkeRekey,
        payloads: &[Payload],
    ) -> Fate {
        let Some(mut followup) = pending.followup.take() else {
            return Fate::Keep;
        };
        if let Err(reason) = followup.take_answer(payloads) {
            return self.end_ike_followups(now, sa, Err(reason));
        }
        if !followup.done() {
            return self.continue_ike_followup(now, sa, pending, followup);
        }
        let agreed = &followup.of;
        let exchange = RekeyExchange {
            we_initiated: true,
            choice: agreed.choice,
            shared: &followup.secrets,
            nonce_i: &agreed.nonce_i,
            nonce_r: &agreed.nonce_r,
            spis: agreed.spis,
        };
        let Some(old_keys) = sa.keys.as_ref() else {
            return Fate::Remove;
        };
        let new = (self.successor(now, sa, old_keys, &exchange)).map_err(|e| e.to_string());
        self.end_ike_followups(now, sa, new)
    }

    /// Our IKE rekey's followups ended with a new IKE SA or failed. The peer's rekey may have
    /// crossed ours meanwhile (one without additional exchanges, answered provisionally).
    fn end_ike_followups(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        new: Result<IkeSa, String>,
    ) -> Fate {
        let theirs = (sa.collided.take()).and_then(|spi| self.sas.remove(&spi));
        match (new, theirs) {
            (Ok(ours), Some(theirs)) => self.settle_collision(now, sa, ours, theirs),
            (Err(_), Some(theirs)) => self.adopt(now, sa, theirs),
            (Ok(new), None) => self.retire(now, sa, new),
            (Err(reason), None) => self.ike_rekey_failed(now, sa, reason),
        }
    }

    fn accept_ike_rekey(
        &mut self,
        now: Instant,
        sa: &IkeSa,
        pending: &PendingIkeRekey,
        payloads: &[Payload],
    ) -> Result<IkeAccepted, Refused> {
        let conn = self
            .connection(&sa.connection)
            .cloned()
            .ok_or_else(|| Refused::Failed("the connection is gone".into()))?;
        if let Some(error) = payloads.error_notify() {
            let proposals = for_create_child(&conn.config.proposals);
            let offered = |g: &DhGroup| proposals.iter().any(|p| p.dh.contains(g));
            let requested = (error.requested_group())
                .and_then(DhGroup::from_transform)
                .filter(|g| *g != pending.kex.group() && offered(g));
            return Err(match requested {
                Some(group) => Refused::Group(group),
                None => Refused::Failed(format!("the peer answered {:?}", error.notify_type)),
            });
        }
        let failed = |reason: &str| Refused::Failed(reason.to_string());
        let (Some(offer), Some(nonce_r), Some(ke), Some(old_keys)) = (
            payloads.security_association(),
            payloads.nonce(),
            payloads.key_exchange(),
            sa.keys.as_ref(),
        ) else {
            return Err(failed("the answer lacks an SA, nonce or key exchange"));
        };
        let [proposal] = offer.proposals.as_slice() else {
            return Err(failed("the answer must hold exactly one proposal"));
        };
        let spi_r = proposal
            .spi_u64()
            .filter(|spi| *spi != 0)
            .ok_or_else(|| failed("the answer's proposal has no IKE SPI"))?;
        let theirs = proposal
            .ike_transforms()
            .ok_or_else(|| failed("the answer's proposal is not an IKE proposal"))?
            .supported;
        let (_, choice) = select_ike(&rekey_proposals(sa, &conn.config.proposals), &[theirs])
            .ok_or_else(|| failed("the peer chose a proposal we did not offer"))?;
        if choice.dh != pending.kex.group() || ke.group != choice.dh.transform_id() {
            return Err(failed("the answer's key exchange is not of our group"));
        }
        let shared = (pending.kex.shared_secret(&ke.data))
            .map_err(|_| failed("the peer's key exchange value is invalid"))?;
        let methods = additional_methods(&choice.additional);
        if !methods.is_empty() {
            let agreed = IkeAgreed {
                choice,
                nonce_i: pending.nonce.clone(),
                nonce_r: nonce_r.data.clone(),
                spis: (pending.spi, spi_r),
            };
            return (Followup::start(agreed, methods, Some(&shared), payloads))
                .map(IkeAccepted::Followup)
                .map_err(Refused::Failed);
        }
        let exchange = RekeyExchange {
            we_initiated: true,
            choice,
            shared: &shared,
            nonce_i: &pending.nonce,
            nonce_r: &nonce_r.data,
            spis: (pending.spi, spi_r),
        };
        let new = (self.successor(now, sa, old_keys, &exchange))
            .map_err(|e| Refused::Failed(e.to_string()))?;
        Ok(IkeAccepted::New(Box::new(new)))
    }

    /// The IKE SA that replaces `old`: keys from the old SK_d (section 2.18), the old one's
    /// addresses and NAT state, no Child SAs yet.
    fn successor(
        &self,
        now: Instant,
        old: &IkeSa,
        old_keys: &IkeSaKeys,
        exchange: &RekeyExchange<'_>,
    ) -> Result<IkeSa, CryptoError> {
        let choice = exchange.choice;
        let suite = IkeSuite::new(choice.encryption, choice.integrity, choice.prf)?;
        let (spi_i, spi_r) = exchange.spis;
        let keys = old_keys.rekey(
            suite,
            exchange.shared,
            exchange.nonce_i,
            exchange.nonce_r,
            &spi_i.to_be_bytes(),
            &spi_r.to_be_bytes(),
        )?;
        let ciphers = SkCiphers::new(&keys, exchange.we_initiated)?;
        let mut new = IkeSa::new(
            old.connection.clone(),
            exchange.we_initiated,
            State::Established,
            (old.local, old.remote),
        );
        (new.spi_i, new.spi_r) = (spi_i, spi_r);
        new.choice = Some(choice);
        new.nonce_i = exchange.nonce_i.to_vec();
        new.nonce_r = exchange.nonce_r.to_vec();
        new.keys = Some(keys);
        new.ciphers = Some(ciphers);
        new.udp_encap = old.udp_encap;
        // Fragmentation (RFC 7383) is announced only in IKE_SA_INIT: successors keep it.
        new.fragmentation = old.fragmentation;
        // What the peer announced in IKE_SA_INIT holds for the SA's successors.
        new.followup_ke = old.followup_ke;
        (new.local_behind_nat, new.remote_behind_nat) =
            (old.local_behind_nat, old.remote_behind_nat);
        new.established_at = Some(now);
        new.last_heard = Some(now);
        new.ike_rekey_at = self.ike_rekey_schedule(&old.connection, now);
        new.children_to_request = old.children_to_request.clone();
        Ok(new)
    }

    /// Both rekeys of `old` completed (section 2.8.2): the IKE SA made by the exchange with
    /// the lowest of the four nonces is redundant and deleted by the side that made it.
    fn settle_collision(
        &mut self,
        now: Instant,
        old: &mut IkeSa,
        ours: IkeSa,
        mut theirs: Box<IkeSa>,
    ) -> Fate {
        let ours_redundant = super::rekey::ours_redundant(
            [&ours.nonce_i, &ours.nonce_r],
            [&theirs.nonce_i, &theirs.nonce_r],
        );
        if ours_redundant {
            // The peer's won: it deletes the old IKE SA, we the redundant one we made.
            let fate = self.adopt(now, old, theirs);
            self.delete_redundant(now, ours);
            return fate;
        }
        self.events.push_back(Event::IkeRekeysCrossed {
            name: old.connection.clone(),
            ours_kept: true,
        });
        // The peer deletes its redundant IKE SA; it stays quiet until then.
        theirs.retired_at = Some(now);
        self.put(theirs);
        self.retire(now, old, ours)
    }

    /// The peer's rekey of `old` replaces it: the Child SAs move to `new`, and `old` waits
    /// for the peer's Delete.
    pub(super) fn adopt(&mut self, now: Instant, old: &mut IkeSa, mut new: Box<IkeSa>) -> Fate {
        self.events.push_back(Event::IkeRekeysCrossed {
            name: old.connection.clone(),
            ours_kept: false,
        });
        new.retired_at = None;
        new.last_heard = Some(now);
        self.hand_over(old, &mut new, now);
        old.pending_ike_rekey = None;
        if self.pass_on_terminate(now, old, &mut new) == Fate::Keep {
            self.put(new);
        }
        Fate::Keep
    }

    /// A `terminate` that came during the rekey of `old` now concerns `new`, which replaced
    /// it: `new`'s Delete goes out. `Remove` if `new` is gone already (nothing could be sent).
    fn pass_on_terminate(&mut self, now: Instant, old: &mut IkeSa, new: &mut IkeSa) -> Fate {
        if !std::mem::take(&mut old.delete_pending) {
            return Fate::Keep;
        }
        new.delete_pending = true;
        self.send_deferred_delete(now, new)
    }

    /// Deletes a new IKE SA that lost a collision, over itself; it never had Child SAs.
    fn delete_redundant(&mut self, now: Instant, mut redundant: IkeSa) {
        redundant.retired_at = Some(now);
        let delete = [Payload::Delete(Delete::ike_sa())];
        if (self.send_request(now, &mut redundant, ExchangeType::Informational, &delete)).is_ok() {
            redundant.state = State::Deleting;
            self.put(redundant);
        }
    }

    /// `new` replaces `old`: it takes the Child SAs, `old` retires.
    fn hand_over(&mut self, old: &mut IkeSa, new: &mut IkeSa, now: Instant) {
        new.children = std::mem::take(&mut old.children);
        old.retired_at = Some(now);
        self.events.push_back(Event::IkeRekeyed {
            name: old.connection.clone(),
            old: (old.spi_i, old.spi_r),
            new: (new.spi_i, new.spi_r),
        });
    }

    /// Moves `sa`'s Child SAs to `new`, which replaces it, and deletes `sa` over itself.
    fn retire(&mut self, now: Instant, sa: &mut IkeSa, mut new: IkeSa) -> Fate {
        self.hand_over(sa, &mut new, now);
        if self.pass_on_terminate(now, sa, &mut new) == Fate::Remove {
            return Fate::Remove;
        }
        self.put(new);
        let delete = [Payload::Delete(Delete::ike_sa())];
        match self.send_request(now, sa, ExchangeType::Informational, &delete) {
            Ok(()) => {
                sa.state = State::Deleting;
                Fate::Keep
            }
            Err(_) => Fate::Remove,
        }
    }
}
