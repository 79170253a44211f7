//! IKE_SA_INIT (RFC 7296 section 1.2) for both roles: the initiator's request and its
//! retries (COOKIE, INVALID_KE_PAYLOAD), the responder's answer (or refusal, which leaves
//! no state), and the initiator's processing of the answer. Both derive the IKE SA's keys
//! here and compare the NAT detection hashes (natt.rs); the additional key exchanges follow
//! (ike_intermediate.rs), then IKE_AUTH (ike_auth.rs).

use std::net::SocketAddr;
use std::time::Instant;

use crate::ike::auth::signature::{hash_algorithms_notify, our_hashes, DEFAULT_SCHEMES};
use crate::ike::codec::{
    ExchangeType, Flags, Header, KeyExchange as KePayload, Message, Nonce, Notify, NotifyType,
    Payload, PayloadLookup, Proposal, SecurityAssociation,
};
use crate::ike::crypto::{random, IkeSaKeys, IkeSuite, KeyExchange, Secret, SkCiphers};
use crate::ike::select::{
    accepts_ike_reply, additional_methods, select_ike, single_additional, IkeChoice,
};
use crate::proposal::{DhGroup, IkeProposal};

use super::config::{EngineConnection, NatTraversal};
use super::cookie::CookieJar;
use super::dpd::Loss;
use super::events::FailureReason;
use super::fragmentation;
use super::ike_intermediate::Intermediate;
use super::natt::{self, detect_nat, nat_notifies};
use super::retransmit::Outstanding;
use super::sa::{Authenticating, IkeSa, PeerOffers, State};
use super::{Engine, EngineError, Fate};

/// The IKE algorithms of a one-proposal answer, if it names exactly one of each.
pub(super) fn single_ike_choice(sa: &SecurityAssociation) -> Option<IkeChoice> {
    let [proposal] = sa.proposals.as_slice() else {
        return None;
    };
    let t = proposal.ike_transforms()?;
    if !t.unsupported.is_empty() {
        return None;
    }
    let p = t.supported;
    let integrity = match p.integrity.as_slice() {
        [] => None,
        [one] => Some(*one),
        _ => return None,
    };
    match (p.encryption.as_slice(), p.prf.as_slice(), p.dh.as_slice()) {
        ([encryption], [prf], [dh]) => Some(IkeChoice {
            encryption: *encryption,
            integrity,
            prf: *prf,
            dh: *dh,
            additional: single_additional(&p.additional)?,
        }),
        _ => None,
    }
}

/// Whether any IKE or ESP proposal of `conn` names additional key exchanges: then we
/// announce IKE_INTERMEDIATE, which tells the peer we know RFC 9370.
fn wants_additional(conn: &EngineConnection) -> bool {
    let named = |slots: &crate::proposal::AdditionalKes| slots.iter().any(|s| !s.is_empty());
    (conn.config.proposals.iter()).any(|p| named(&p.additional))
        || (conn.config.children.iter())
            .flat_map(|c| &c.esp_proposals)
            .any(|p| named(&p.additional))
}

/// INTERMEDIATE_EXCHANGE_SUPPORTED (RFC 9242 section 3).
fn intermediate_supported() -> Payload {
    Payload::Notify(Notify::new(
        NotifyType::IntermediateExchangeSupported,
        Vec::new(),
    ))
}

/// Both sides' keys from the key exchange's shared secret and the nonces.
pub(super) fn derive(
    choice: &IkeChoice,
    shared: &Secret,
    sa: &IkeSa,
) -> Result<(IkeSaKeys, SkCiphers), String> {
    let suite = IkeSuite::new(choice.encryption, choice.integrity, choice.prf)
        .map_err(|e| e.to_string())?;
    let keys = IkeSaKeys::derive(
        suite,
        shared,
        &sa.nonce_i,
        &sa.nonce_r,
        &sa.spi_i.to_be_bytes(),
        &sa.spi_r.to_be_bytes(),
    )
    .map_err(|e| e.to_string())?;
    let ciphers = SkCiphers::new(&keys, sa.initiator).map_err(|e| e.to_string())?;
    Ok((keys, ciphers))
}

impl Engine {
    /// Our SIGNATURE_HASH_ALGORITHMS, unless RFC 7427 is off.
    fn hash_algorithms(&self) -> Option<Payload> {
        (self.config.signature_authentication)
            .then(|| Payload::Notify(hash_algorithms_notify(&our_hashes(DEFAULT_SCHEMES))))
    }

    /// What the peer's IKE_SA_INIT offers; its hashes count only if RFC 7427 is on here.
    fn peer_offers(&self, message: &Message) -> PeerOffers {
        let mut offers = PeerOffers::of(message);
        if !self.config.signature_authentication {
            offers.hashes = None;
        }
        offers
    }

    // The initiator.

    /// Sends (or, after COOKIE or INVALID_KE_PAYLOAD, sends again) the IKE_SA_INIT request
    /// with the key exchange and cookie of the SA's `InitSent` state. The SPI and nonce
    /// stay; message ID 0 is reused.
    pub(super) fn send_init_request(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        conn: &EngineConnection,
    ) -> Result<(), EngineError> {
        let State::InitSent(init) = &mut sa.state else {
            return Err(EngineError::PastInit);
        };
        let kex = &init.kex;
        let cookie =
            (init.cookie.clone()).map(|c| Payload::Notify(Notify::new(NotifyType::Cookie, c)));
        let mut payloads: Vec<Payload> = cookie.into_iter().collect();
        payloads.extend([
            Payload::SecurityAssociation(SecurityAssociation::from_ike_proposals(
                &conn.config.proposals,
                None,
            )?),
            Payload::KeyExchange(KePayload::new(kex.group(), kex.public_value().to_vec())),
            Payload::Nonce(Nonce {
                data: sa.nonce_i.clone(),
            }),
        ]);
        let [mut source, destination] = nat_notifies(sa.spi_i, 0, sa.local, sa.remote);
        if let (NatTraversal::Force, Payload::Notify(n)) = (conn.config.nat_traversal, &mut source)
        {
            n.data = natt::forced_source_hash();
        }
        payloads.extend([
            source,
            destination,
            Payload::Notify(fragmentation::supported()),
        ]);
        if wants_additional(conn) {
            payloads.push(intermediate_supported());
        }
        payloads.extend(self.hash_algorithms());
        let header = Header::new(
            ExchangeType::IkeSaInit,
            sa.spi_i,
            0,
            0,
            Flags {
                initiator: true,
                ..Flags::default()
            },
        );
        let datagram = Message::new(header, payloads)?.encode()?;
        init.request = datagram.clone();
        sa.outstanding = Some(Outstanding::new(
            now,
            0,
            vec![datagram.clone()],
            &self.config.retransmit,
        ));
        sa.next_request_id = 1;
        self.transmit(sa, datagram);
        Ok(())
    }

    pub(super) fn init_response(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        message: &Message,
        bytes: &[u8],
    ) -> Fate {
        let Some(conn) = self.connection(&sa.connection).cloned() else {
            return Fate::Remove;
        };
        if let Some(notify) = message.notify(NotifyType::Cookie) {
            return self.retry_with_cookie(now, sa, &conn, &notify.data);
        }
        if let Some(notify) = message.notify(NotifyType::InvalidKePayload) {
            return self.retry_with_group(now, sa, &conn, notify.requested_group());
        }
        if let Some(error) = message.error_notify() {
            let reason = match error.notify_type {
                NotifyType::NoProposalChosen => FailureReason::NoProposalChosen {
                    ours: conn.proposal_strings(),
                    theirs: None,
                },
                other => FailureReason::PeerError {
                    notify: other.to_u16(),
                },
            };
            self.fail(&sa.connection, reason);
            // Tried again like an unanswered attempt: a peer that restarts answers before
            // its configuration is loaded (charon before `swanctl --load-all`), and a
            // tunnel that should be up must not stay down for that.
            self.after_loss(now, &sa.connection.clone(), Loss::AttemptFailed);
            return Fate::Remove;
        }
        let (Some(sa_payload), Some(ke), Some(nonce)) = (
            message.security_association(),
            message.key_exchange(),
            message.nonce(),
        ) else {
            return self.protocol_failure(sa, "IKE_SA_INIT response lacks SA, KE or Nonce");
        };
        let answer = single_ike_choice(sa_payload);
        let Some(choice) = answer.filter(|c| accepts_ike_reply(&conn.config.proposals, c)) else {
            // A peer without RFC 9370 ignores the transform types it does not know.
            let without_additional: Vec<IkeProposal> = (conn.config.proposals.iter())
                .map(|p| IkeProposal {
                    additional: Default::default(),
                    ..p.clone()
                })
                .collect();
            let what = if answer.is_some_and(|c| accepts_ike_reply(&without_additional, &c)) {
                "the peer's answer lacks the additional key exchanges our proposals require \
(it may not support RFC 9370)"
            } else {
                "the peer chose IKE algorithms we did not offer"
            };
            return self.protocol_failure(sa, what);
        };
        let State::InitSent(init) = &sa.state else {
            return Fate::Remove;
        };
        if ke.group != choice.dh.transform_id() || init.kex.group() != choice.dh {
            return self.protocol_failure(sa, "KE group differs from the chosen group");
        }
        if !(random::NONCE_MIN_LEN..=random::NONCE_MAX_LEN).contains(&nonce.data.len())
            || message.header.responder_spi == 0
        {
            return self.protocol_failure(sa, "bad nonce length or responder SPI");
        }
        let additional = additional_methods(&choice.additional);
        if !additional.is_empty()
            && message
                .notify(NotifyType::IntermediateExchangeSupported)
                .is_none()
        {
            return self.protocol_failure(
                sa,
                "the peer chose additional key exchanges without IKE_INTERMEDIATE support",
            );
        }
        sa.spi_r = message.header.responder_spi;
        sa.nonce_r = nonce.data.clone();
        let State::InitSent(init) = &sa.state else {
            return Fate::Remove;
        };
        let derived = (init.kex.shared_secret(&ke.data))
            .map_err(|e| format!("key exchange: {e}"))
            .and_then(|shared| derive(&choice, &shared, sa));
        let State::InitSent(init) = &mut sa.state else {
            return Fate::Remove;
        };
        let request = std::mem::take(&mut init.request);
        // The DH private value goes with the InitSent state.
        sa.state = State::Auth(Box::new(Authenticating {
            request,
            response: bytes.to_vec(),
            first_child: None,
            half_open_until: None,
            rejected: false,
            peer: self.peer_offers(message),
            intermediate: Intermediate::new(additional),
            auth_message_id: 0,
        }));
        let (keys, ciphers) = match derived {
            Ok(k) => k,
            Err(what) => return self.protocol_failure(sa, &what),
        };
        (sa.local_behind_nat, sa.remote_behind_nat) =
            detect_nat(message, sa.spi_i, sa.spi_r, sa.local, sa.remote);
        self.float_to_natt(sa, conn.config.nat_traversal);
        sa.choice = Some(choice);
        sa.keys = Some(keys);
        sa.ciphers = Some(ciphers);
        sa.fragmentation = message
            .notify(NotifyType::Ikev2FragmentationSupported)
            .is_some();
        // We announced it only with additional key exchanges configured.
        sa.followup_ke = wants_additional(&conn)
            && message
                .notify(NotifyType::IntermediateExchangeSupported)
                .is_some();
        sa.outstanding = None;
        self.continue_handshake(now, sa, &conn)
    }

    /// The responder is under load and wants its cookie echoed (RFC 7296 section 2.6).
    /// The retry keeps the key exchange ("all other payloads unchanged").
    fn retry_with_cookie(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        conn: &EngineConnection,
        cookie: &[u8],
    ) -> Fate {
        let State::InitSent(init) = &mut sa.state else {
            return Fate::Remove;
        };
        // A few rounds at most: a responder that keeps changing its mind (or a forger
        // racing the real one) must not keep us busy for ever.
        if !(1..=64).contains(&cookie.len()) || init.cookie_retries >= 3 {
            return self.protocol_failure(sa, "the responder keeps asking for cookies");
        }
        init.cookie_retries += 1;
        init.cookie = Some(cookie.to_vec());
        self.resend_init_request(now, sa, conn)
    }

    /// The responder wants a key exchange in another of our groups.
    fn retry_with_group(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        conn: &EngineConnection,
        requested: Option<u16>,
    ) -> Fate {
        let State::InitSent(init) = &mut sa.state else {
            return Fate::Remove;
        };
        let current = init.kex.group();
        let group = requested
            .and_then(DhGroup::from_transform)
            .filter(|g| *g != current && conn.config.proposals.iter().any(|p| p.dh.contains(g)));
        // One retry per group we have: a peer cannot keep us bouncing.
        let Some(group) = group.filter(|_| init.ke_retries < 8) else {
            self.fail(
                &sa.connection,
                FailureReason::InvalidKePayload {
                    requested: requested.unwrap_or(0),
                },
            );
            return Fate::Remove;
        };
        match KeyExchange::new(group) {
            Ok(kex) => {
                init.ke_retries += 1;
                init.kex = kex;
            }
            Err(e) => return self.protocol_failure(sa, &e.to_string()),
        }
        self.resend_init_request(now, sa, conn)
    }

    fn resend_init_request(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        conn: &EngineConnection,
    ) -> Fate {
        match self.send_init_request(now, sa, conn) {
            Ok(()) => Fate::Keep,
            Err(e) => self.protocol_failure(sa, &e.to_string()),
        }
    }

    // The responder.

    /// Connections for a peer, by the addresses the datagram travelled between.
    pub(super) fn candidates(
        &self,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Vec<EngineConnection> {
        (self.connections.values())
            .filter(|c| c.config.remote == remote.ip() && c.local_addr == local.ip())
            .cloned()
            .collect()
    }

    /// An unprotected IKE_SA_INIT error response that leaves no state behind.
    pub(super) fn refuse_init(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        spi_i: u64,
        notify: Notify,
    ) {
        let header = Header::new(
            ExchangeType::IkeSaInit,
            spi_i,
            0,
            0,
            Flags {
                response: true,
                ..Flags::default()
            },
        );
        if let Ok(datagram) =
            Message::new(header, vec![Payload::Notify(notify)]).and_then(|m| m.encode())
        {
            self.transmits.push_back(super::Transmit {
                local,
                remote,
                payload: datagram,
            });
        }
    }

    pub(super) fn responder_init(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        message: &Message,
        bytes: &[u8],
    ) {
        let spi_i = message.header.initiator_spi;
        if self.cookies.is_none() {
            self.cookies = CookieJar::new(now).ok();
        }
        if let Some(jar) = self.cookies.as_mut() {
            jar.count_request(now);
        }
        // At once, whoever sends: a flood from unknown sources is load too.
        self.review_cookies(now);
        // A retransmitted request of a half-open SA gets the same answer again.
        if let Some(sa) =
            (self.sas.values()).find(|sa| !sa.initiator && sa.spi_i == spi_i && sa.remote == remote)
        {
            if let State::Auth(auth) = &sa.state {
                if auth.request == bytes {
                    let payload = auth.response.clone();
                    self.transmits.push_back(super::Transmit {
                        local,
                        remote,
                        payload,
                    });
                }
            }
            return;
        }
        let Some(conn) = self.candidates(local, remote).into_iter().next() else {
            return;
        };
        if let Some(unknown) = message.unsupported_critical() {
            let data = vec![unknown.payload_type];
            let notify = Notify::new(NotifyType::UnsupportedCriticalPayload, data);
            self.refuse_init(local, remote, spi_i, notify);
            return;
        }
        let (Some(sa_payload), Some(ke), Some(nonce)) = (
            message.security_association(),
            message.key_exchange(),
            message.nonce(),
        ) else {
            self.refuse_init(
                local,
                remote,
                spi_i,
                Notify::new(NotifyType::InvalidSyntax, vec![]),
            );
            return;
        };
        if !self.cookie_admits(now, message, &nonce.data, (local, remote), spi_i) {
            return;
        }
        // Additional key exchanges need IKE_INTERMEDIATE (RFC 9370 section 2.2.1): without
        // the initiator's notify they are not on offer.
        let intermediate = message
            .notify(NotifyType::IntermediateExchangeSupported)
            .is_some();
        let offered: Vec<(u8, IkeProposal)> = (sa_payload.proposals.iter())
            .filter_map(|p| Some((p.number, p.ike_transforms()?.supported)))
            .map(|(number, mut p)| {
                if !intermediate {
                    p.additional = Default::default();
                }
                (number, p)
            })
            .collect();
        let list: Vec<IkeProposal> = offered.iter().map(|(_, p)| p.clone()).collect();
        let Some((index, mut choice)) = select_ike(&conn.config.proposals, &list) else {
            self.refuse_init(
                local,
                remote,
                spi_i,
                Notify::new(NotifyType::NoProposalChosen, vec![]),
            );
            self.fail(
                conn.name(),
                FailureReason::NoProposalChosen {
                    ours: conn.proposal_strings(),
                    theirs: Some(list.iter().map(ToString::to_string).collect()),
                },
            );
            return;
        };
        // Spare the initiator a round trip when the group of its KE payload is also
        // acceptable in the proposal we matched (RFC 7296 section 1.2 lets us choose).
        if let Some(group) = DhGroup::from_transform(ke.group).filter(|g| *g != choice.dh) {
            let with_group = (list.get(index))
                .filter(|p| p.dh.contains(&group))
                .map(|p| IkeProposal {
                    dh: vec![group],
                    ..p.clone()
                });
            if let Some((_, c)) = with_group.and_then(|p| select_ike(&conn.config.proposals, &[p]))
            {
                choice = c;
            }
        }
        if ke.group != choice.dh.transform_id() {
            let wanted = choice.dh.transform_id();
            self.refuse_init(local, remote, spi_i, Notify::invalid_ke_payload(wanted));
            return;
        }
        if !(random::NONCE_MIN_LEN..=random::NONCE_MAX_LEN).contains(&nonce.data.len()) {
            self.refuse_init(
                local,
                remote,
                spi_i,
                Notify::new(NotifyType::InvalidSyntax, vec![]),
            );
            return;
        }
        let (Ok(spi_r), Ok(nonce_r)) = (self.unique_spi(), random::nonce()) else {
            return;
        };
        let Ok((our_ke, shared)) = KeyExchange::respond(choice.dh, &ke.data) else {
            // An invalid public value: nothing to answer that the peer could trust.
            return;
        };
        let handshake = Authenticating {
            request: bytes.to_vec(),
            response: Vec::new(),
            first_child: None,
            half_open_until: Some(now + self.config.half_open_timeout),
            rejected: false,
            peer: self.peer_offers(message),
            intermediate: Intermediate::new(additional_methods(&choice.additional)),
            auth_message_id: 0,
        };
        let state = State::Auth(Box::new(handshake));
        let mut sa = IkeSa::new(conn.name().to_owned(), false, state, (local, remote));
        sa.spi_i = spi_i;
        sa.spi_r = spi_r;
        sa.nonce_i = nonce.data.clone();
        sa.nonce_r = nonce_r;
        sa.began_at = Some(now);
        let Ok((keys, ciphers)) = derive(&choice, &shared, &sa) else {
            return;
        };
        // The request's hashes were computed before our SPI existed.
        (sa.local_behind_nat, sa.remote_behind_nat) = detect_nat(message, spi_i, 0, local, remote);
        let number = offered.get(index).map_or(1, |(n, _)| *n);
        let mut payloads = vec![
            Payload::SecurityAssociation(SecurityAssociation {
                proposals: vec![Proposal::from_ike(number, &choice.as_proposal(), None)],
            }),
            Payload::KeyExchange(KePayload::new(choice.dh, our_ke)),
            Payload::Nonce(Nonce {
                data: sa.nonce_r.clone(),
            }),
        ];
        // The connection is not final until IKE_AUTH names the peer, but its CAs are the
        // best guess of what the peer's certificate must chain to.
        payloads.extend(
            conn.remote_auth
                .certificate_request()
                .map(Payload::CertificateRequest),
        );
        payloads.extend(nat_notifies(spi_i, spi_r, local, remote));
        // Offered only to an initiator that offered it (RFC 7383 section 2.3).
        sa.fragmentation = message
            .notify(NotifyType::Ikev2FragmentationSupported)
            .is_some();
        if sa.fragmentation {
            payloads.push(Payload::Notify(fragmentation::supported()));
        }
        if intermediate {
            payloads.push(intermediate_supported());
        }
        sa.followup_ke = intermediate;
        payloads.extend(self.hash_algorithms());
        let header = Header::new(
            ExchangeType::IkeSaInit,
            spi_i,
            spi_r,
            0,
            Flags {
                response: true,
                ..Flags::default()
            },
        );
        let Ok(datagram) = Message::new(header, payloads).and_then(|m| m.encode()) else {
            return;
        };
        sa.choice = Some(choice);
        sa.keys = Some(keys);
        sa.ciphers = Some(ciphers);
        if let State::Auth(auth) = &mut sa.state {
            auth.response = datagram.clone();
        }
        sa.last_response = Some((0, vec![datagram.clone()]));
        sa.expected_request_id = 1;
        self.transmit(&sa, datagram);
        self.put(sa);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proposal::parse_ike;

    #[test]
    fn answer_must_hold_one_proposal_with_one_algorithm_each() {
        let one = parse_ike("aes128gcm16-prfsha256-ecp256", true).unwrap();
        let sa = SecurityAssociation::from_ike_proposals(std::slice::from_ref(&one), None).unwrap();
        let choice = single_ike_choice(&sa).unwrap();
        assert_eq!(choice.as_proposal(), one);
        let many = parse_ike("aes128-aes256-sha256-modp2048", true).unwrap();
        let sa = SecurityAssociation::from_ike_proposals(&[many], None).unwrap();
        assert!(single_ike_choice(&sa).is_none());
        let sa = SecurityAssociation::from_ike_proposals(&[one.clone(), one], None).unwrap();
        assert!(single_ike_choice(&sa).is_none());
    }
}
