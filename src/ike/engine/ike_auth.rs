//! IKE_AUTH (RFC 7296 sections 1.2 and 2.15) for both roles: the initiator's request, the
//! responder's answer and the initiator's processing of it. Both sides build their AUTH
//! payload and check the peer's in one place ([`Engine::our_auth`], [`Engine::peer_auth`]),
//! with the configured authenticators; both become established in [`Engine::establish`];
//! the first Child SA rides along.

use std::time::{Duration, Instant};

use crate::ike::codec::{
    Auth, Certificate, Delete, ExchangeType, Identification, Message, Notify, NotifyType, Payload,
    PayloadLookup, PayloadType, SecurityAssociation,
};
use crate::ike::crypto::random;
use crate::ike::select::KeyExchange as Ke;

use super::authenticators::{AuthError, AuthInputs, Authenticator, Checking, Signing, Verifier};
use super::child::{self, Negotiated};
use super::config::{
    names_identity, show_identity, wire_identity, ChildConfig, EngineConnection, Mode,
};
use super::events::{Event, FailureReason, KernelAction};
use super::sa::{Authenticating, IkeSa, PendingChild, Phase, State};
use super::transport_nat::Substitutions;
use super::{Engine, EngineError, Fate};

/// How long the initiator of the redundant one of two crossed initiations has to delete
/// it before its responder does: the initiator decides as soon as both are established,
/// within a round trip of us.
pub(super) const REDUNDANT_GRACE: Duration = Duration::from_secs(5);

impl Engine {
    /// Our AUTH payload, over our ID payload `id`.
    fn our_auth(
        sa: &IkeSa,
        conn: &EngineConnection,
        id: &Identification,
    ) -> Result<Auth, AuthError> {
        let (inputs, handshake) = Self::auth_inputs(sa).ok_or(AuthError::NoKeys)?;
        let signed_octets = inputs.signed_octets(sa.initiator, id)?;
        conn.local_auth.authenticate(&Signing {
            prf: inputs.prf,
            signed_octets: &signed_octets,
            peer_hashes: handshake.peer.hashes.as_deref(),
        })
    }

    /// Checks the peer's AUTH payload, over its ID payload `id`, with the CERT payloads
    /// that came with it.
    fn peer_auth(
        sa: &IkeSa,
        conn: &EngineConnection,
        id: &Identification,
        auth: &Auth,
        certificates: &[Certificate],
    ) -> Result<String, AuthError> {
        let (inputs, _) = Self::auth_inputs(sa).ok_or(AuthError::NoKeys)?;
        let signed_octets = inputs.signed_octets(!sa.initiator, id)?;
        conn.remote_auth.verify(&Checking {
            prf: inputs.prf,
            signed_octets: &signed_octets,
            auth,
            peer_id: &id.identity,
            certificates,
        })
    }

    fn auth_inputs(sa: &IkeSa) -> Option<(AuthInputs<'_>, &Authenticating)> {
        let State::Auth(handshake) = &sa.state else {
            return None;
        };
        let inputs = AuthInputs {
            prf: sa.choice?.prf,
            init_request: &handshake.request,
            init_response: &handshake.response,
            nonce_i: &sa.nonce_i,
            nonce_r: &sa.nonce_r,
            keys: sa.keys.as_ref()?,
            int_auth: (handshake.intermediate).int_auth(handshake.auth_message_id),
        };
        Some((inputs, handshake))
    }

    /// Our AUTH and the CERT payloads that go with it (`asked`: the peer sent CERTREQ).
    fn our_proof(
        sa: &IkeSa,
        conn: &EngineConnection,
        id: &Identification,
        asked: bool,
    ) -> Result<(Auth, Vec<Payload>), AuthError> {
        let auth = Self::our_auth(sa, conn, id)?;
        let certificates = conn.local_auth.certificates(asked)?;
        Ok((
            auth,
            certificates.into_iter().map(Payload::Certificate).collect(),
        ))
    }

    /// Initiator: IDi, AUTH, IDr (the identity we expect) and the first configured Child SA.
    pub(super) fn send_auth_request(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        conn: &EngineConnection,
    ) -> Result<(), EngineError> {
        let idi = Identification::new(wire_identity(&conn.local_identity()));
        let idr = Identification::new(wire_identity(&conn.remote_identity()));
        if let State::Auth(handshake) = &mut sa.state {
            handshake.auth_message_id = sa.next_request_id;
        }
        let asked = Self::auth_inputs(sa).is_some_and(|(_, h)| h.peer.certificate_requested);
        let (auth, certificates) = Self::our_proof(sa, conn, &idi, asked)?;
        let mut payloads = vec![Payload::IdInitiator(idi)];
        payloads.extend(certificates);
        if self.first_contact(conn) {
            payloads.push(Payload::Notify(Notify::new(
                NotifyType::InitialContact,
                Vec::new(),
            )));
        }
        payloads.extend(
            conn.remote_auth
                .certificate_request()
                .map(Payload::CertificateRequest),
        );
        payloads.extend([Payload::IdResponder(idr), Payload::Auth(auth)]);
        if let Some(child) = conn.config.children.first() {
            let spi_in = random::esp_spi()?;
            let (local_ts, remote_ts) = (conn.local_ts(child), conn.remote_ts(child));
            let offer = SecurityAssociation::from_esp_proposals(
                &child::without_dh(&child.esp_proposals),
                spi_in,
            )?;
            let substitutions = Substitutions::initiator(sa, conn, child.mode);
            let (tsi, tsr) = substitutions.wire(&local_ts, &remote_ts);
            payloads.extend(child::payloads(child.mode, offer, [], &tsi, &tsr));
            if let State::Auth(handshake) = &mut sa.state {
                handshake.first_child = Some(PendingChild {
                    index: 0,
                    spi_in,
                    local_ts,
                    remote_ts,
                    substitutions,
                });
            }
        }
        self.send_request(now, sa, ExchangeType::IkeAuth, &payloads)
    }

    /// Responder: authenticates the initiator, picks the connection by the identities,
    /// answers with our ID and AUTH and the first Child SA (or why there is none).
    pub(super) fn auth_request(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        message: &Message,
        bytes: &[u8],
    ) -> Fate {
        let message_id = message.header.message_id;
        if sa.rejected() {
            return Fate::Keep;
        }
        if let State::Auth(handshake) = &mut sa.state {
            handshake.auth_message_id = message_id;
        }
        let Some(payloads) = self.open_request(sa, message, bytes) else {
            return Fate::Keep;
        };
        let (Some(idi), Some(auth)) = (payloads.id_initiator(), payloads.auth()) else {
            let reason = FailureReason::AuthenticationFailed {
                peer_id: None,
                why: Some("IKE_AUTH request lacks IDi or AUTH".into()),
            };
            return self.reject_auth(sa, message_id, reason);
        };
        let peer_id = Some(show_identity(&idi.identity));
        // The connection is the one whose peer identity (and, if asked for, our own) match.
        let wanted_idr = payloads.id_responder();
        let conn = (self.candidates(sa.local, sa.remote).into_iter()).find(|c| {
            names_identity(&idi.identity, &c.remote_identity())
                && wanted_idr.is_none_or(|idr| names_identity(&idr.identity, &c.local_identity()))
        });
        let Some(conn) = conn else {
            let why = Some("no connection expects this identity".to_owned());
            let reason = FailureReason::AuthenticationFailed { peer_id, why };
            return self.reject_auth(sa, message_id, reason);
        };
        let certificates = certificates(&payloads);
        let peer_auth = match Self::peer_auth(sa, &conn, idi, auth, &certificates) {
            Ok(how) => how,
            Err(e) => {
                let why = Some(e.to_string());
                let reason = FailureReason::AuthenticationFailed { peer_id, why };
                return self.reject_auth(sa, message_id, reason);
            }
        };
        sa.connection = conn.name().to_owned();
        if payloads.notify(NotifyType::InitialContact).is_some() {
            self.forget_older_sas(sa);
        }
        let idr = Identification::new(wire_identity(&conn.local_identity()));
        let asked = payloads
            .payloads_of(PayloadType::CertificateRequest)
            .next()
            .is_some()
            || Self::auth_inputs(sa).is_some_and(|(_, h)| h.peer.certificate_requested);
        let (auth, certificates) = match Self::our_proof(sa, &conn, &idr, asked) {
            Ok(proof) => proof,
            Err(e) => {
                let reason = FailureReason::cannot_authenticate(e);
                return self.reject_auth(sa, message_id, reason);
            }
        };
        let mut response = vec![Payload::IdResponder(idr)];
        response.extend(certificates);
        response.push(Payload::Auth(auth));
        let (child_answer, installed) = self.answer_first_child(sa, &conn, &payloads);
        response.extend(child_answer);
        if self
            .send_response(sa, ExchangeType::IkeAuth, message_id, &response)
            .is_err()
        {
            return Fate::Remove;
        }
        self.establish(now, sa, peer_auth);
        if let Some((child, negotiated, spi_in)) = installed {
            self.install_first_child(now, sa, &conn, &child, &negotiated, spi_in);
        }
        self.settle_crossed_initiations(now, sa)
    }

    /// Responder: the answer payloads for the Child SA an IKE_AUTH request proposes, and
    /// what to install once the answer is sent.
    fn answer_first_child(
        &mut self,
        sa: &IkeSa,
        conn: &EngineConnection,
        payloads: &[Payload],
    ) -> (Vec<Payload>, Option<(ChildConfig, Negotiated, u32)>) {
        let (Some(offer), Some(tsi), Some(tsr)) = (
            payloads.security_association(),
            payloads.ts_initiator(),
            payloads.ts_responder(),
        ) else {
            return (Vec::new(), None);
        };
        let request = child::Request {
            sa: offer,
            tsi,
            tsr,
            transport: payloads.notify(NotifyType::UseTransportMode).is_some(),
            ke: Ke::Absent,
            only: None,
            nat: sa.nat_sides(Mode::Transport),
        };
        let notify = |t| vec![Payload::Notify(Notify::new(t, Vec::new()))];
        match child::responder_negotiate(conn, &request) {
            Ok((child, negotiated, number)) => match random::esp_spi() {
                Ok(spi_in) => {
                    let answer = child::answer(&negotiated, number, spi_in, []);
                    (answer, Some((child.clone(), negotiated, spi_in)))
                }
                Err(_) => (notify(NotifyType::TemporaryFailure), None),
            },
            Err((_, reason)) => {
                let refusal = child::refusal(&reason);
                self.fail(conn.name(), reason);
                (notify(refusal), None)
            }
        }
    }

    /// Answers AUTHENTICATION_FAILED. The SA stays until its half-open expiry, only to
    /// answer a retransmitted request from the cache: if our answer is lost, the initiator
    /// still learns why instead of timing out.
    fn reject_auth(&mut self, sa: &mut IkeSa, message_id: u32, reason: FailureReason) -> Fate {
        let notify = [Payload::Notify(Notify::new(
            NotifyType::AuthenticationFailed,
            Vec::new(),
        ))];
        if self
            .send_response(sa, ExchangeType::IkeAuth, message_id, &notify)
            .is_err()
        {
            return Fate::Remove;
        }
        self.fail(&sa.connection, reason);
        if let State::Auth(handshake) = &mut sa.state {
            handshake.rejected = true;
        }
        Fate::Keep
    }

    /// Initiator: the responder's IKE_AUTH answer.
    pub(super) fn auth_response(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        message: &Message,
        bytes: &[u8],
    ) -> Fate {
        let Some(conn) = self.connection(&sa.connection).cloned() else {
            return Fate::Remove;
        };
        if sa.ciphers.is_none() {
            return Fate::Remove;
        }
        let Ok(payloads) = sa.open(message, bytes) else {
            return Fate::Keep;
        };
        sa.outstanding = None;
        if payloads.notify(NotifyType::AuthenticationFailed).is_some() {
            self.fail(&sa.connection, FailureReason::refused_by_peer());
            return Fate::Remove;
        }
        let (Some(idr), Some(auth)) = (payloads.id_responder(), payloads.auth()) else {
            let reason = match payloads.error_notify() {
                Some(n) => FailureReason::PeerError {
                    notify: n.notify_type.to_u16(),
                },
                None => FailureReason::Protocol("IKE_AUTH response lacks IDr or AUTH".into()),
            };
            self.fail(&sa.connection, reason);
            return Fate::Remove;
        };
        let peer_id = Some(show_identity(&idr.identity));
        let verified = if names_identity(&idr.identity, &conn.remote_identity()) {
            Self::peer_auth(sa, &conn, idr, auth, &certificates(&payloads))
                .map_err(|e| e.to_string())
        } else {
            Err("the peer's identity is not the one configured".into())
        };
        let peer_auth = match verified {
            Ok(how) => how,
            Err(why) => {
                // The responder may consider the SA established: tell it (RFC 7296 section
                // 2.21.2), once, since we forget the SA now.
                let notify = [Payload::Notify(Notify::new(
                    NotifyType::AuthenticationFailed,
                    Vec::new(),
                ))];
                let _ = self.send_request(now, sa, ExchangeType::Informational, &notify);
                self.fail(
                    &sa.connection,
                    FailureReason::AuthenticationFailed {
                        peer_id,
                        why: Some(why),
                    },
                );
                return Fate::Remove;
            }
        };
        let first_child = match &mut sa.state {
            State::Auth(handshake) => handshake.first_child.take(),
            _ => None,
        };
        self.establish(now, sa, peer_auth);
        sa.children_to_request = (conn.config.children.iter().skip(1))
            .map(|c| c.name.clone())
            .collect();
        if let Some(pending) = first_child {
            self.first_child_answer(now, sa, &conn, pending, &payloads);
        }
        self.settle_crossed_initiations(now, sa)
    }

    /// Both roles, once the peer is authenticated (and, as responder, answered): what
    /// only the handshake needed (IKE_SA_INIT messages, half-open expiry) goes with it.
    fn establish(&mut self, now: Instant, sa: &mut IkeSa, peer_auth: String) {
        sa.state = State::Established;
        sa.established_at = Some(now);
        self.trapped.remove(&sa.connection);
        sa.ike_rekey_at = self.ike_rekey_schedule(&sa.connection, now);
        self.events.push_back(Event::Established {
            name: sa.connection.clone(),
            initiator: sa.initiator,
            local: sa.local,
            remote: sa.remote,
            ike: sa.choice.map(|c| c.to_string()).unwrap_or_default(),
            peer_auth,
        });
    }

    /// Initiator: the responder's answer for the Child SA we proposed.
    fn first_child_answer(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        conn: &EngineConnection,
        pending: PendingChild,
        payloads: &[Payload],
    ) {
        let Some(child) = conn.config.children.get(pending.index) else {
            return;
        };
        let nat = sa.nat_sides(child.mode);
        let negotiated = match child::initiator_accepts(child, &pending, payloads, Ke::Absent, nat)
        {
            Ok(n) => n,
            Err(reason) => {
                // If the responder did create the Child SA, it must go again.
                if payloads.security_association().is_some() {
                    self.delete_refused_child(now, sa, pending.spi_in);
                }
                self.fail(&sa.connection, reason);
                return;
            }
        };
        if child.mode == Mode::Transport && negotiated.mode != Mode::Transport {
            self.delete_refused_child(now, sa, pending.spi_in);
            self.fail(
                &sa.connection,
                FailureReason::ModeMismatch {
                    child: child.name.clone(),
                    ours: child.mode,
                },
            );
            return;
        }
        self.install_first_child(now, sa, conn, child, &negotiated, pending.spi_in);
    }

    /// Both roles: the Child SA negotiated in IKE_AUTH, keyed from the IKE_SA_INIT nonces.
    fn install_first_child(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        conn: &EngineConnection,
        child: &ChildConfig,
        negotiated: &Negotiated,
        spi_in: u32,
    ) {
        let (ni, nr) = (sa.nonce_i.clone(), sa.nonce_r.clone());
        let keymat = child::Keymat {
            ni: &ni,
            nr: &nr,
            pfs: None,
            we_initiated: sa.initiator,
        };
        match child::install(sa, conn, child, negotiated, spi_in, keymat, now) {
            Ok((install, event)) => {
                self.actions
                    .push_back(KernelAction::InstallChildSa(Box::new(install)));
                self.events.push_back(event);
            }
            Err(e) => self.fail(&sa.connection, FailureReason::Protocol(e.to_string())),
        }
    }

    /// Asks the responder to delete a Child SA it created but we refuse; our inbound SPI
    /// names it (RFC 7296 section 3.11).
    fn delete_refused_child(&mut self, now: Instant, sa: &mut IkeSa, spi_in: u32) {
        let delete = [Payload::Delete(Delete::esp(&[spi_in]))];
        if let Err(e) = self.send_request(now, sa, ExchangeType::Informational, &delete) {
            self.fail(&sa.connection, FailureReason::Protocol(e.to_string()));
        }
    }

    /// Both ends initiated the connection at once: `current` and another established IKE
    /// SA (each with its Child SAs) now carry it. As for crossing Child SA rekeys (RFC 7296
    /// section 2.8.1), the one with the lowest of the four nonces goes, so both ends reach
    /// the same verdict; its initiator deletes it, so one Delete is sent. The other end,
    /// its responder, does not restart the connection on that Delete: another IKE SA
    /// carries it ([`Engine::carried_elsewhere`]). A peer without this rule (charon 5.9)
    /// keeps both, so the responder deletes it after [`REDUNDANT_GRACE`].
    fn settle_crossed_initiations(&mut self, now: Instant, current: &mut IkeSa) -> Fate {
        let twin = (self.sas.iter())
            .find(|(_, sa)| {
                sa.connection == current.connection
                    && sa.remote.ip() == current.remote.ip()
                    && sa.phase() == Phase::Established
                    && sa.retired_at.is_none()
                    && sa.redundant_until.is_none()
                    && sa.pending_ike_rekey.is_none()
                    && sa.collided.is_none()
                    && !sa.delete_pending
            })
            .map(|(spi, _)| *spi);
        let Some(mut twin) = twin.and_then(|spi| self.sas.remove(&spi)) else {
            return Fate::Keep;
        };
        let lowest_nonce = |sa: &IkeSa| std::cmp::min(sa.nonce_i.clone(), sa.nonce_r.clone());
        let current_goes = lowest_nonce(current) < lowest_nonce(&twin);
        let (doomed, kept): (&mut IkeSa, &IkeSa) = if current_goes {
            (current, &twin)
        } else {
            (&mut twin, current)
        };
        self.events.push_back(Event::InitiationsCrossed {
            name: kept.connection.clone(),
            ours_kept: kept.initiator,
        });
        let fate = if doomed.initiator {
            self.request_ike_delete(now, doomed)
        } else {
            doomed.redundant_until = Some(now + REDUNDANT_GRACE);
            Fate::Keep
        };
        // The twin goes back to the table unless it was itself forgotten at once.
        if current_goes || fate == Fate::Keep {
            self.put(twin);
        }
        if current_goes {
            fate
        } else {
            Fate::Keep
        }
    }

    /// Whether our IKE_AUTH may carry INITIAL_CONTACT: it tells the peer that every other
    /// IKE SA between our two identities is stale (RFC 7296 section 2.4), and charon drops
    /// them across its connections. So only when we hold no established IKE SA between
    /// the same identities, whichever connection it belongs to.
    fn first_contact(&self, conn: &EngineConnection) -> bool {
        let ids = (conn.local_identity(), conn.remote_identity());
        !(self.sas.values()).any(|sa| {
            sa.phase() == Phase::Established
                && (self.connection(&sa.connection))
                    .is_some_and(|c| (c.local_identity(), c.remote_identity()) == ids)
        })
    }

    /// INITIAL_CONTACT: the peer has no other IKE SA with us any more (it restarted), so
    /// ours with it, and their Child SAs, are stale. Not one established after `current`
    /// began: initiations crossed, and the peer's instance negotiated it (it is live).
    fn forget_older_sas(&mut self, current: &IkeSa) {
        let established_before = |sa: &IkeSa| match (sa.established_at, current.began_at) {
            (Some(established), Some(began)) => established < began,
            _ => true,
        };
        let stale: Vec<u64> = (self.sas.iter())
            .filter(|(_, sa)| {
                sa.connection == current.connection
                    && sa.remote.ip() == current.remote.ip()
                    && sa.phase() != Phase::Auth
                    && established_before(sa)
            })
            .map(|(spi, _)| *spi)
            .collect();
        for spi in stale {
            self.forget_sa(spi, true);
        }
    }
}

/// The bodies of the CERT payloads among `payloads`, in order.
fn certificates(payloads: &[Payload]) -> Vec<Certificate> {
    (payloads.iter())
        .filter_map(|p| match p {
            Payload::Certificate(c) => Some(c.clone()),
            _ => None,
        })
        .collect()
}
