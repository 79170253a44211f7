//! CREATE_CHILD_SA for Child SAs (RFC 7296 sections 1.3 and 2.8): rekeying make-before-
//! break from either side, with optional PFS, and further Child SAs the peer asks for.
//!
//! The side that starts a rekey installs the new pair when the answer comes, then deletes
//! the old pair with an INFORMATIONAL Delete and removes it from the kernel only once the
//! peer confirmed (the peer keeps sending on the old SA until it installed the new one).
//! Simultaneous rekeys of the same Child SA (section 2.8.1) leave the SA made by the
//! exchange with the lowest of the four nonces redundant; its initiator deletes it, and the
//! other side deletes the old SA.

use std::time::{Duration, Instant};

use super::config::Mode;
use crate::ike::codec::{
    Delete, ExchangeType, KeyExchange as KePayload, Message, Nonce, Notify, NotifyType, Payload,
    PayloadLookup, ProtocolId, SecurityAssociation,
};
use crate::ike::crypto::{random, KeyExchange, Secret};
use crate::ike::select::{additional_methods, KeyExchange as Ke};

use super::child::{self, Keymat, Negotiated};
use super::events::{Event, FailureReason, KernelAction};
use super::followup::{Agreed, Awaiting, ChildAgreed, Followup};
use super::sa::{IkeSa, PendingChild, Phase};
use super::transport_nat::Substitutions;
use super::{Engine, EngineError, Fate};

/// A rekey that failed is tried again after this long (the old SA lives until its hard
/// lifetime).
pub const REKEY_RETRY: Duration = Duration::from_secs(10);

/// Our CREATE_CHILD_SA request for a Child SA, until it is answered.
#[derive(Debug)]
pub struct PendingRekey {
    /// Inbound SPI of the Child SA being replaced; `None` for an additional Child SA.
    pub replaces: Option<u32>,
    pub child: PendingChild,
    pub name: String,
    pub nonce: Vec<u8>,
    pub kex: Option<KeyExchange>,
    /// Answered, with additional key exchanges under way (followup.rs).
    pub followup: Option<Box<Followup<ChildAgreed>>>,
}

/// What a CREATE_CHILD_SA for a Child SA asks for.
struct ChildRequest {
    /// The Child SA being rekeyed (inbound SPI, mode), if any.
    replaces: Option<(u32, Mode)>,
    local_ts: Vec<crate::ike::ts::TsRange>,
    remote_ts: Vec<crate::ike::ts::TsRange>,
    /// How the selectors are named on the wire.
    substitutions: Substitutions,
}

/// A rekey of one of our Child SAs that the peer started while ours of it was under way.
#[derive(Debug)]
pub struct PeerRekey {
    pub old_spi_in: u32,
    pub nonce_i: Vec<u8>,
    pub nonce_r: Vec<u8>,
}

/// A Child SA we agreed to in answer to the peer's CREATE_CHILD_SA, until installed.
#[derive(Debug)]
pub struct Answered {
    /// The configured child's name.
    pub config: String,
    pub negotiated: Negotiated,
    pub spi_in: u32,
    pub nonce_i: Vec<u8>,
    pub nonce_r: Vec<u8>,
    /// Our inbound SPI of the Child SA it replaces, for a rekey.
    pub old_spi_in: Option<u32>,
}

/// What the answer to our CREATE_CHILD_SA led to.
enum Accepted {
    /// The new Child SA is installed; the peer's nonce.
    Installed(Vec<u8>),
    /// Additional key exchanges follow.
    Followup(Box<Followup<ChildAgreed>>),
}

/// The peer's rekey of the same Child SA that crossed ours, if any.
fn take_collision(sa: &mut IkeSa, pending: &PendingRekey) -> Option<PeerRekey> {
    (sa.peer_rekeys.iter())
        .position(|p| Some(p.old_spi_in) == pending.replaces)
        .map(|i| sa.peer_rekeys.remove(i))
}

/// Of two crossing rekeys of one SA, the exchange that used the lowest of the four nonces
/// made the redundant SA (sections 2.8.1 and 2.8.2). Nonces compare as octet strings, a
/// shorter prefix first (as strongSwan's chunk_compare).
pub(super) fn ours_redundant(ours: [&[u8]; 2], theirs: [&[u8]; 2]) -> bool {
    let lowest = ours.into_iter().chain(theirs).min();
    lowest.is_some_and(|low| ours.contains(&low))
}

impl Engine {
    /// Operator command: rekey every Child SA of the connection now (`routevpn rekey`).
    pub fn rekey_children(&mut self, now: Instant, name: &str) -> Result<(), EngineError> {
        self.connection_named(name)?;
        let spis: Vec<u64> = (self.sas.iter())
            .filter(|(_, sa)| sa.connection == name && sa.phase() == Phase::Established)
            .map(|(spi, _)| *spi)
            .collect();
        for spi in spis {
            let Some(mut sa) = self.sas.remove(&spi) else {
                continue;
            };
            for child in sa.children.iter_mut().filter(|c| !c.superseded) {
                child.rekey_at = Some(now);
            }
            self.run_rekeys(now, &mut sa);
            self.put(sa);
        }
        Ok(())
    }

    /// The earliest rekey or expiry among `sa`'s Child SAs. A rekey waits for the request
    /// window, so it counts only while nothing is outstanding.
    pub(super) fn child_deadline(sa: &IkeSa) -> Option<Instant> {
        let idle = sa.phase() == Phase::Established && sa.outstanding.is_none();
        // Further Child SAs are asked for as soon as the window is free.
        let request = (idle && !sa.children_to_request.is_empty())
            .then_some(sa.established_at)
            .flatten();
        (sa.children.iter())
            .flat_map(|c| [c.rekey_at.filter(|_| idle), c.expire_at])
            .flatten()
            .chain(request)
            .min()
    }

    /// Drops Child SAs past their hard lifetime and starts the first rekey that is due.
    pub(super) fn run_rekeys(&mut self, now: Instant, sa: &mut IkeSa) {
        let expired: Vec<u32> = (sa.children.iter())
            .filter(|c| c.expire_at.is_some_and(|at| at <= now))
            .map(|c| c.spi_in)
            .collect();
        self.remove_children(sa, &expired);
        if sa.phase() != Phase::Established
            || sa.outstanding.is_some()
            || sa.delete_pending
            || sa.retired_at.is_some()
        {
            return;
        }
        let due = (sa.children.iter())
            .position(|c| !c.superseded && c.rekey_at.is_some_and(|at| at <= now));
        if let Some(index) = due {
            if let Err(e) = self.start_child_rekey(now, sa, index) {
                let child = &mut sa.children[index];
                child.rekey_at = Some(now + REKEY_RETRY);
                self.events.push_back(Event::RekeyFailed {
                    name: sa.connection.clone(),
                    child: child.name.clone(),
                    reason: e.to_string(),
                });
            }
        } else if let Some(name) = sa.children_to_request.pop_front() {
            let config = (self.connection(&sa.connection))
                .and_then(|c| c.config.children.iter().find(|c| c.name == name))
                .cloned();
            // No longer configured, or the peer made it already.
            let Some(config) = config.filter(|_| !sa.children.iter().any(|c| c.name == name))
            else {
                return;
            };
            if let Err(e) = self.start_additional_child(now, sa, &config) {
                self.fail(
                    &sa.connection,
                    FailureReason::Protocol(format!("asking for CHILD SA {name}: {e}")),
                );
            }
        }
    }

    /// Forgets the Child SAs with these inbound SPIs and tells the kernel to remove them.
    pub(super) fn remove_children(&mut self, sa: &mut IkeSa, spis_in: &[u32]) {
        if spis_in.is_empty() {
            return;
        }
        // Replacements start sending before the old pair goes, so no moment lacks an
        // outbound SA.
        let mut activate = Vec::new();
        for child in &mut sa.children {
            if child
                .outbound_after
                .is_some_and(|old| spis_in.contains(&old))
            {
                child.outbound_after = None;
                activate.push(child.spi_in);
            }
        }
        for child in sa.children.iter().filter(|c| activate.contains(&c.spi_in)) {
            self.actions
                .push_back(KernelAction::ActivateOutbound(sa.child_ref(child)));
        }
        for r in sa.child_refs() {
            if spis_in.contains(&r.inbound_spi) {
                self.actions.push_back(KernelAction::DeleteChildSa(r));
            }
        }
        sa.children.retain(|c| !spis_in.contains(&c.spi_in));
        self.events.push_back(Event::ChildDeleted {
            name: sa.connection.clone(),
            spis_in: spis_in.to_vec(),
        });
    }

    fn start_child_rekey(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        index: usize,
    ) -> Result<(), EngineError> {
        let conn = self.connection_named(&sa.connection)?;
        let old = &mut sa.children[index];
        let Some(config) = conn.config.children.iter().find(|c| c.name == old.name) else {
            // The child left the configuration: let it run out rather than renew it.
            old.rekey_at = None;
            return Ok(());
        };
        old.rekey_at = None;
        let request = ChildRequest {
            replaces: Some((old.spi_in, old.mode)),
            local_ts: old.local_ranges.clone(),
            remote_ts: old.remote_ranges.clone(),
            substitutions: old.substitutions,
        };
        self.request_child(now, sa, config, request)
    }

    /// Asks the peer for the configured Child SA `config` in a CREATE_CHILD_SA of its own
    /// (the IKE SA's first Child SA came with IKE_AUTH).
    pub(super) fn start_additional_child(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        config: &super::config::ChildConfig,
    ) -> Result<(), EngineError> {
        let conn = self.connection_named(&sa.connection)?;
        let request = ChildRequest {
            replaces: None,
            local_ts: conn.local_ts(config),
            remote_ts: conn.remote_ts(config),
            substitutions: Substitutions::initiator(sa, &conn, config.mode),
        };
        self.request_child(now, sa, config, request)
    }

    fn request_child(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        config: &super::config::ChildConfig,
        request: ChildRequest,
    ) -> Result<(), EngineError> {
        let spi_in = random::esp_spi()?;
        let nonce = random::nonce()?;
        let proposals = match sa.create_child_ke() {
            Ke::Followup => config.esp_proposals.clone(),
            _ => child::for_create_child(&config.esp_proposals),
        };
        if proposals.is_empty() {
            return Err(EngineError::AdditionalKeRequired(format!(
                "CHILD SA {:?}",
                config.name
            )));
        }
        let group = proposals.first().and_then(|p| p.dh.first().copied());
        let kex = group.map(KeyExchange::new).transpose()?;
        let mut payloads = Vec::new();
        if let Some((old_spi_in, _)) = request.replaces {
            payloads.push(Payload::Notify(Notify::for_child(
                NotifyType::RekeySa,
                ProtocolId::Esp,
                old_spi_in,
                Vec::new(),
            )));
        }
        let mode = request.replaces.map_or(config.mode, |(_, mode)| mode);
        let offer = SecurityAssociation::from_esp_proposals(&proposals, spi_in)?;
        let nonce_payload = Payload::Nonce(Nonce {
            data: nonce.clone(),
        });
        let ke = (group.zip(kex.as_ref())).map(|(group, kex)| {
            Payload::KeyExchange(KePayload::new(group, kex.public_value().to_vec()))
        });
        let (tsi, tsr) = (request.substitutions).wire(&request.local_ts, &request.remote_ts);
        payloads.extend(child::payloads(
            mode,
            offer,
            std::iter::once(nonce_payload).chain(ke),
            &tsi,
            &tsr,
        ));
        let pending = PendingRekey {
            replaces: request.replaces.map(|(spi, _)| spi),
            child: PendingChild {
                index: 0,
                spi_in,
                local_ts: request.local_ts,
                remote_ts: request.remote_ts,
                substitutions: request.substitutions,
            },
            name: config.name.clone(),
            nonce,
            kex,
            followup: None,
        };
        self.send_request(now, sa, ExchangeType::CreateChildSa, &payloads)?;
        sa.pending_rekey = Some(Box::new(pending));
        Ok(())
    }

    /// The answer to our rekey request.
    pub(super) fn create_child_response(
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
            return self.ike_rekey_response(now, sa, *pending, &payloads);
        }
        let Some(pending) = sa.pending_rekey.take().map(|p| *p) else {
            return Fate::Keep;
        };
        let accepted = self.accept_rekey(now, sa, &pending, &payloads);
        match accepted {
            Ok(Accepted::Installed(nonce_r)) => self.rekey_done(now, sa, &pending, &nonce_r),
            Ok(Accepted::Followup(followup)) => self.start_followup(now, sa, pending, followup),
            Err(reason) => {
                let peer_made_sa = payloads.security_association().is_some();
                self.rekey_failed(now, sa, &pending, reason, peer_made_sa)
            }
        }
    }

    /// Our rekey's new Child SA is installed: the old one goes, or ours if the peer's
    /// crossing rekey won.
    pub(super) fn rekey_done(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        pending: &PendingRekey,
        nonce_r: &[u8],
    ) -> Fate {
        let collision = take_collision(sa, pending);
        let ours_redundant = collision.as_ref().is_some_and(|peer| {
            ours_redundant([&pending.nonce, nonce_r], [&peer.nonce_i, &peer.nonce_r])
        });
        if sa.delete_pending {
            // The whole IKE SA goes: its Delete takes every Child SA along.
            return self.send_deferred_delete(now, sa);
        }
        if ours_redundant {
            // The peer's exchange won: it deletes the old SA, we our new one, and stop using
            // it at once (the peer never sent on it: its outbound half waits for the old SA
            // to go).
            self.remove_children(sa, &[pending.child.spi_in]);
            let delete = [Payload::Delete(Delete::esp(&[pending.child.spi_in]))];
            let _ = self.send_request(now, sa, ExchangeType::Informational, &delete);
        } else if let Some(old) =
            (pending.replaces).filter(|old| sa.children.iter().any(|c| c.spi_in == *old))
        {
            self.delete_child_sas(now, sa, vec![old]);
        } else {
            // A new Child SA, or the peer deleted the old one meanwhile: nothing left to
            // delete.
            return self.send_deferred_delete(now, sa);
        }
        Fate::Keep
    }

    /// Our rekey failed for `reason`; `peer_made_sa`: the peer made a Child SA we will not
    /// use, which our SPI names.
    pub(super) fn rekey_failed(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        pending: &PendingRekey,
        reason: String,
        peer_made_sa: bool,
    ) -> Fate {
        let collision = take_collision(sa, pending);
        // The old SA stays; try again later unless the peer replaced it already.
        if let Some(old) =
            (sa.children.iter_mut()).find(|c| Some(c.spi_in) == pending.replaces && !c.superseded)
        {
            if collision.is_none() {
                old.rekey_at = Some(now + REKEY_RETRY);
            }
        }
        if pending.replaces.is_some() {
            self.events.push_back(Event::RekeyFailed {
                name: sa.connection.clone(),
                child: pending.name.clone(),
                reason,
            });
        } else {
            let why = format!("CHILD SA {} not created: {reason}", pending.name);
            self.fail(&sa.connection, FailureReason::Protocol(why));
        }
        if peer_made_sa && !sa.delete_pending {
            // The peer made a Child SA we will not use: our SPI names it.
            let delete = [Payload::Delete(Delete::esp(&[pending.child.spi_in]))];
            let _ = self.send_request(now, sa, ExchangeType::Informational, &delete);
            return Fate::Keep;
        }
        self.send_deferred_delete(now, sa)
    }

    /// Checks the answer and installs the new Child SA (the peer's nonce), or, with
    /// additional key exchanges negotiated, returns what the first IKE_FOLLOWUP_KE needs.
    fn accept_rekey(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        pending: &PendingRekey,
        payloads: &[Payload],
    ) -> Result<Accepted, String> {
        if let Some(error) = payloads.error_notify() {
            return Err(format!("the peer answered {:?}", error.notify_type));
        }
        let (_, config) = self.child_config(sa, &pending.name)?;
        let config = &config;
        let nat = sa.nat_sides(config.mode);
        let negotiated =
            child::initiator_accepts(config, &pending.child, payloads, sa.create_child_ke(), nat)
                .map_err(|reason| reason.to_string())?;
        let nonce_r = payloads
            .nonce()
            .ok_or("no nonce in the answer")?
            .data
            .clone();
        let pfs = match (&pending.kex, negotiated.choice.dh) {
            (None, None) => None,
            (Some(kex), Some(group)) if kex.group() == group => {
                let ke = (payloads.key_exchange())
                    .filter(|ke| ke.group == group.transform_id())
                    .ok_or("no key exchange of the chosen group in the answer")?;
                Some(kex.shared_secret(&ke.data).map_err(|e| e.to_string())?)
            }
            _ => return Err("the answer's PFS group is not the one we sent".into()),
        };
        if negotiated.mode != config.mode {
            return Err(format!(
                "the peer changed the mode to {:?}",
                negotiated.mode
            ));
        }
        let methods = additional_methods(&negotiated.choice.additional);
        if !methods.is_empty() {
            let agreed = ChildAgreed {
                negotiated,
                nonce_r,
            };
            let followup = Followup::start(agreed, methods, pfs.as_ref(), payloads)?;
            return Ok(Accepted::Followup(followup));
        }
        self.install_ours(now, sa, pending, &negotiated, &nonce_r, pfs.as_ref())?;
        Ok(Accepted::Installed(nonce_r))
    }

    /// The connection of `sa` and its configured child `name`.
    fn child_config(
        &self,
        sa: &IkeSa,
        name: &str,
    ) -> Result<(super::EngineConnection, super::config::ChildConfig), String> {
        let conn = (self.connection(&sa.connection).cloned()).ok_or("the connection is gone")?;
        let config = (conn.config.children.iter())
            .find(|c| c.name == name)
            .cloned()
            .ok_or("the child is no longer configured")?;
        Ok((conn, config))
    }

    /// Installs the Child SA of our CREATE_CHILD_SA; `pfs`: the shared secrets of its key
    /// exchanges, concatenated (RFC 9370 section 2.2.4).
    pub(super) fn install_ours(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        pending: &PendingRekey,
        negotiated: &Negotiated,
        nonce_r: &[u8],
        pfs: Option<&Secret>,
    ) -> Result<(), String> {
        let (conn, config) = self.child_config(sa, &pending.name)?;
        let config = &config;
        let keymat = Keymat {
            ni: &pending.nonce,
            nr: nonce_r,
            pfs,
            we_initiated: true,
        };
        self.install_rekeyed(
            now,
            sa,
            &conn,
            config,
            negotiated,
            pending.child.spi_in,
            keymat,
            pending.replaces,
        )
        .map_err(|e| e.to_string())
    }

    /// Installs a Child SA made by CREATE_CHILD_SA and logs it as a rekey of `old_spi_in`.
    #[allow(clippy::too_many_arguments)]
    fn install_rekeyed(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        conn: &super::EngineConnection,
        config: &super::config::ChildConfig,
        negotiated: &Negotiated,
        spi_in: u32,
        keymat: Keymat<'_>,
        old_spi_in: Option<u32>,
    ) -> Result<(), crate::ike::crypto::CryptoError> {
        let we_initiated = keymat.we_initiated;
        let (mut install, installed) =
            child::install(sa, conn, config, negotiated, spi_in, keymat, now)?;
        if !we_initiated && old_spi_in.is_some() {
            install.defer_outbound = true;
            if let Some(new) = sa.children.last_mut() {
                new.outbound_after = old_spi_in;
            }
        }
        self.actions
            .push_back(KernelAction::InstallChildSa(Box::new(install)));
        let event = match old_spi_in {
            Some(old_spi_in) => Event::ChildRekeyed {
                name: sa.connection.clone(),
                child: config.name.clone(),
                esp: negotiated.choice.to_string(),
                old_spi_in,
                spi_in,
                spi_out: negotiated.spi_out,
            },
            None => installed,
        };
        self.events.push_back(event);
        Ok(())
    }

    /// Sends a Delete for our inbound SPIs; the SAs go from the kernel once it is answered.
    pub(super) fn delete_child_sas(&mut self, now: Instant, sa: &mut IkeSa, spis_in: Vec<u32>) {
        for child in sa
            .children
            .iter_mut()
            .filter(|c| spis_in.contains(&c.spi_in))
        {
            child.superseded = true;
            child.rekey_at = None;
        }
        let delete = [Payload::Delete(Delete::esp(&spis_in))];
        match self.send_request(now, sa, ExchangeType::Informational, &delete) {
            Ok(()) => sa.pending_deletes = spis_in,
            // Without a way to tell the peer, remove them here; its hard lifetime does the rest.
            Err(_) => self.remove_children(sa, &spis_in),
        }
    }

    /// A CREATE_CHILD_SA request from the peer: a rekey of one of our Child SAs or a new
    /// Child SA, or a rekey of the IKE SA itself (ike_rekey.rs).
    pub(super) fn create_child_request(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        message: &Message,
        bytes: &[u8],
    ) -> Fate {
        self.answer_request(now, sa, message, bytes, Self::answer_create_child)
    }

    fn answer_create_child(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        payloads: &[Payload],
    ) -> Result<Vec<Payload>, Notify> {
        let refuse = |t: NotifyType| Notify::new(t, Vec::new());
        let conn = (self.connection(&sa.connection).cloned())
            .ok_or_else(|| refuse(NotifyType::NoAdditionalSas))?;
        let offer = payloads
            .security_association()
            .ok_or_else(|| refuse(NotifyType::InvalidSyntax))?;
        if offer.proposals.iter().any(|p| p.ike_transforms().is_some()) {
            return self.answer_ike_rekey(now, sa, offer, payloads);
        }
        let (Some(offer), Some(tsi), Some(tsr), Some(nonce_i)) = (
            payloads.security_association(),
            payloads.ts_initiator(),
            payloads.ts_responder(),
            payloads.nonce(),
        ) else {
            return Err(refuse(NotifyType::InvalidSyntax));
        };
        let rekeyed = payloads.notify(NotifyType::RekeySa).map(|n| n.spi_u32());
        let old = match rekeyed {
            None => None,
            Some(None) => return Err(refuse(NotifyType::InvalidSyntax)),
            // The peer names its inbound SPI, our outbound one.
            Some(Some(spi)) => match sa.children.iter().find(|c| c.spi_out == spi) {
                None => {
                    return Err(Notify::for_child(
                        NotifyType::ChildSaNotFound,
                        ProtocolId::Esp,
                        spi,
                        Vec::new(),
                    ))
                }
                // Already replaced or being deleted (section 2.25).
                Some(c) if c.superseded => return Err(refuse(NotifyType::TemporaryFailure)),
                Some(c) => Some((c.spi_in, c.name.clone())),
            },
        };
        let request = child::Request {
            sa: offer,
            tsi,
            tsr,
            transport: payloads.notify(NotifyType::UseTransportMode).is_some(),
            ke: sa.create_child_ke(),
            only: old.as_ref().map(|(_, name)| name.as_str()),
            nat: sa.nat_sides(Mode::Transport),
        };
        let (config, negotiated, number) =
            child::responder_negotiate(&conn, &request).map_err(|(_, reason)| {
                let notify = child::refusal(&reason);
                self.events.push_back(Event::RekeyFailed {
                    name: sa.connection.clone(),
                    child: old.as_ref().map_or_else(String::new, |(_, n)| n.clone()),
                    reason: format!("refused the peer's CREATE_CHILD_SA: {reason}"),
                });
                refuse(notify)
            })?;
        let internal = |_| refuse(NotifyType::NoProposalChosen);
        let (our_ke, pfs): (Option<Vec<u8>>, Option<Secret>) = match negotiated.choice.dh {
            None => (None, None),
            Some(group) => {
                let Some(ke) = payloads
                    .key_exchange()
                    .filter(|k| k.group == group.transform_id())
                else {
                    return Err(Notify::invalid_ke_payload(group.transform_id()));
                };
                let (ours, secret) = KeyExchange::respond(group, &ke.data)
                    .map_err(|_| refuse(NotifyType::InvalidSyntax))?;
                (Some(ours), Some(secret))
            }
        };
        let spi_in = random::esp_spi().map_err(internal)?;
        let nonce_r = random::nonce().map_err(internal)?;
        let nonce_payload = Payload::Nonce(Nonce {
            data: nonce_r.clone(),
        });
        let ke = (negotiated.choice.dh.zip(our_ke))
            .map(|(group, ours)| Payload::KeyExchange(KePayload::new(group, ours)));
        let keying = std::iter::once(nonce_payload).chain(ke);
        let answered = Answered {
            config: config.name.clone(),
            negotiated,
            spi_in,
            nonce_i: nonce_i.data.clone(),
            nonce_r,
            old_spi_in: old.map(|(spi, _)| spi),
        };
        let methods = additional_methods(&answered.negotiated.choice.additional);
        if let (false, Some(pfs)) = (methods.is_empty(), pfs.as_ref()) {
            let link = random::nonce().map_err(internal)?;
            let notify = Notify::new(NotifyType::AdditionalKeyExchange, link.clone());
            let keying = keying.chain([Payload::Notify(notify)]);
            let answer = child::answer(&answered.negotiated, number, spi_in, keying);
            let awaiting = Awaiting::new(Agreed::Child(answered), pfs, methods, link);
            sa.awaiting_followup = Some(Box::new(awaiting));
            return Ok(answer);
        }
        let answer = child::answer(&answered.negotiated, number, spi_in, keying);
        self.install_answered(now, sa, &answered, pfs.as_ref())?;
        Ok(answer)
    }

    /// Installs the Child SA we answered for, with the concatenated shared secrets of its
    /// key exchanges (`pfs`), and notes a rekey that crossed ours.
    pub(super) fn install_answered(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        answered: &Answered,
        pfs: Option<&Secret>,
    ) -> Result<(), Notify> {
        let internal = |_| Notify::new(NotifyType::NoProposalChosen, Vec::new());
        let conn = (self.connection(&sa.connection).cloned())
            .ok_or_else(|| Notify::new(NotifyType::NoAdditionalSas, Vec::new()))?;
        let config = (conn.config.children.iter())
            .find(|c| c.name == answered.config)
            .cloned()
            .ok_or_else(|| Notify::new(NotifyType::NoProposalChosen, Vec::new()))?;
        let keymat = Keymat {
            ni: &answered.nonce_i,
            nr: &answered.nonce_r,
            pfs,
            we_initiated: false,
        };
        self.install_rekeyed(
            now,
            sa,
            &conn,
            &config,
            &answered.negotiated,
            answered.spi_in,
            keymat,
            answered.old_spi_in,
        )
        .map_err(internal)?;
        if let Some(old_spi_in) = answered.old_spi_in {
            if let Some(c) = sa.children.iter_mut().find(|c| c.spi_in == old_spi_in) {
                // The peer replaces it and deletes it.
                c.rekey_at = None;
            }
            if sa
                .pending_rekey
                .as_ref()
                .is_some_and(|p| p.replaces == Some(old_spi_in))
            {
                sa.peer_rekeys.push(PeerRekey {
                    old_spi_in,
                    nonce_i: answered.nonce_i.clone(),
                    nonce_r: answered.nonce_r.clone(),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::ours_redundant;

    #[test]
    fn the_exchange_with_the_lowest_nonce_made_the_redundant_sa() {
        let (low, mid, high, top) = (
            &[0x01, 0xff][..],
            &[0x02][..],
            &[0x02, 0x00][..],
            &[0xfe][..],
        );
        // The lowest nonce may be either side's initiator or responder nonce.
        assert!(ours_redundant([low, top], [mid, high]));
        assert!(ours_redundant([top, low], [high, mid]));
        assert!(!ours_redundant([mid, high], [low, top]));
        assert!(!ours_redundant([high, top], [top, low]));
        // A shorter prefix sorts first.
        assert!(ours_redundant([mid, top], [high, top]));
    }
}
