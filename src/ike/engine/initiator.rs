//! The initiator's side of IKE_SA_INIT and IKE_AUTH.

use std::net::SocketAddr;
use std::time::Instant;

use super::config::{Mode, NatTraversal};
use crate::ike::codec::{
    Auth, AuthMethod, Delete, ExchangeType, Flags, Header, Identification,
    KeyExchange as KePayload, Message, Nonce, Notify, NotifyType, Payload, PayloadLookup,
    SecurityAssociation, TrafficSelectors,
};
use crate::ike::crypto::{
    psk_auth, random, signed_octets, verify_psk_auth, IkeSaKeys, IkeSuite, KeyExchange, SkCiphers,
};
use crate::ike::select::{accepts_ike_reply, IkeChoice, KeyExchange as Ke};
use crate::proposal::DhGroup;

use super::child;
use super::config::{show_identity, wire_identity, EngineConnection};
use super::events::{Event, FailureReason};
use super::protect::{self, nat_hash};
use super::retransmit::Outstanding;
use super::sa::{IkeSa, PendingChild, Phase};
use super::{natt, Engine, EngineError, Fate};

/// RFC 7427 hash algorithms we announce: SHA2-256, SHA2-384, SHA2-512.
pub(super) const SIGNATURE_HASHES: [u16; 3] = [2, 3, 4];

/// NAT_DETECTION_SOURCE_IP and _DESTINATION_IP as the sender of a message computes them.
pub(super) fn nat_notifies(
    spi_i: u64,
    spi_r: u64,
    local: SocketAddr,
    remote: SocketAddr,
) -> [Payload; 2] {
    [
        Payload::Notify(Notify::new(
            NotifyType::NatDetectionSourceIp,
            nat_hash(spi_i, spi_r, local),
        )),
        Payload::Notify(Notify::new(
            NotifyType::NatDetectionDestinationIp,
            nat_hash(spi_i, spi_r, remote),
        )),
    ]
}

/// Compares the peer's NAT detection hashes with what it should have seen:
/// `(local_behind_nat, remote_behind_nat)`. Absent notifications detect nothing.
pub(super) fn detect_nat(
    message: &Message,
    spi_i: u64,
    spi_r: u64,
    local: SocketAddr,
    remote: SocketAddr,
) -> (bool, bool) {
    let expected_src = nat_hash(spi_i, spi_r, remote);
    let remote_nat = message
        .notifies()
        .filter(|n| n.notify_type == NotifyType::NatDetectionSourceIp)
        .fold(None, |seen: Option<bool>, n| {
            Some(seen.unwrap_or(false) || n.data == expected_src)
        })
        .is_some_and(|matched| !matched);
    let local_nat = message
        .notify(NotifyType::NatDetectionDestinationIp)
        .is_some_and(|n| n.data != nat_hash(spi_i, spi_r, local));
    (local_nat, remote_nat)
}

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
        }),
        _ => None,
    }
}

/// Both sides' keys from the key exchange and nonces.
pub(super) fn derive(
    choice: &IkeChoice,
    kex: &KeyExchange,
    peer_public: &[u8],
    sa: &IkeSa,
) -> Result<(IkeSaKeys, SkCiphers), String> {
    let shared = kex
        .shared_secret(peer_public)
        .map_err(|e| format!("key exchange: {e}"))?;
    let suite = IkeSuite::new(choice.encryption, choice.integrity, choice.prf)
        .map_err(|e| e.to_string())?;
    let keys = IkeSaKeys::derive(
        suite,
        &shared,
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
    /// Sends (or, after INVALID_KE_PAYLOAD, sends again) the IKE_SA_INIT request with a key
    /// exchange for `group`. The SPI and nonce stay; message ID 0 is reused.
    pub(super) fn send_init_request(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        conn: &EngineConnection,
        group: DhGroup,
    ) -> Result<(), EngineError> {
        // A retry after COOKIE keeps the key exchange (RFC 7296 2.6: "all other payloads
        // unchanged"); one after INVALID_KE_PAYLOAD needs the new group.
        let kex = match sa.kex.take() {
            Some(kex) if kex.group() == group => kex,
            _ => KeyExchange::new(group)?,
        };
        let cookie =
            (sa.cookie.clone()).map(|c| Payload::Notify(Notify::new(NotifyType::Cookie, c)));
        let mut payloads: Vec<Payload> = cookie.into_iter().collect();
        payloads.extend([
            Payload::SecurityAssociation(SecurityAssociation::from_ike_proposals(
                &conn.config.proposals,
                None,
            )?),
            Payload::KeyExchange(KePayload::new(group, kex.public_value().to_vec())),
            Payload::Nonce(Nonce {
                data: sa.nonce_i.clone(),
            }),
        ]);
        let [mut source, destination] = nat_notifies(sa.spi_i, 0, sa.local, sa.remote);
        if let (NatTraversal::Force, Payload::Notify(n)) = (conn.config.nat_traversal, &mut source)
        {
            n.data = natt::forced_source_hash();
        }
        payloads.extend([source, destination]);
        payloads.push(Payload::Notify(Notify::signature_hash_algorithms(
            &SIGNATURE_HASHES,
        )));
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
        sa.kex = Some(kex);
        sa.init_request = datagram.clone();
        sa.outstanding = Some(Outstanding::new(
            now,
            0,
            datagram.clone(),
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
            return Fate::Remove;
        }
        let (Some(sa_payload), Some(ke), Some(nonce)) = (
            message.security_association(),
            message.key_exchange(),
            message.nonce(),
        ) else {
            return self.protocol_failure(sa, "IKE_SA_INIT response lacks SA, KE or Nonce");
        };
        let Some(choice) =
            single_ike_choice(sa_payload).filter(|c| accepts_ike_reply(&conn.config.proposals, c))
        else {
            return self.protocol_failure(sa, "the peer chose IKE algorithms we did not offer");
        };
        let Some(kex) = sa.kex.take() else {
            return Fate::Remove;
        };
        if ke.group != choice.dh.transform_id() || kex.group() != choice.dh {
            return self.protocol_failure(sa, "KE group differs from the chosen group");
        }
        if !(random::NONCE_MIN_LEN..=random::NONCE_MAX_LEN).contains(&nonce.data.len())
            || message.header.responder_spi == 0
        {
            return self.protocol_failure(sa, "bad nonce length or responder SPI");
        }
        sa.spi_r = message.header.responder_spi;
        sa.nonce_r = nonce.data.clone();
        let (keys, ciphers) = match derive(&choice, &kex, &ke.data, sa) {
            Ok(k) => k,
            Err(what) => return self.protocol_failure(sa, &what),
        };
        (sa.local_behind_nat, sa.remote_behind_nat) =
            detect_nat(message, sa.spi_i, sa.spi_r, sa.local, sa.remote);
        self.float_to_natt(sa, conn.config.nat_traversal);
        sa.choice = Some(choice);
        sa.keys = Some(keys);
        sa.ciphers = Some(ciphers);
        sa.init_response = bytes.to_vec();
        sa.outstanding = None;
        sa.phase = Phase::Auth;
        match self.send_auth_request(now, sa, &conn) {
            Ok(()) => Fate::Keep,
            Err(e) => self.protocol_failure(sa, &e.to_string()),
        }
    }

    /// The responder is under load and wants its cookie echoed (RFC 7296 section 2.6).
    fn retry_with_cookie(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        conn: &EngineConnection,
        cookie: &[u8],
    ) -> Fate {
        let group = sa.kex.as_ref().map(KeyExchange::group);
        match group {
            // A few rounds at most: a responder that keeps changing its mind (or a forger
            // racing the real one) must not keep us busy for ever.
            Some(group) if (1..=64).contains(&cookie.len()) && sa.cookie_retries < 3 => {
                sa.cookie_retries += 1;
                sa.cookie = Some(cookie.to_vec());
                match self.send_init_request(now, sa, conn, group) {
                    Ok(()) => Fate::Keep,
                    Err(e) => self.protocol_failure(sa, &e.to_string()),
                }
            }
            _ => self.protocol_failure(sa, "the responder keeps asking for cookies"),
        }
    }

    fn retry_with_group(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        conn: &EngineConnection,
        requested: Option<u16>,
    ) -> Fate {
        let current = sa.kex.as_ref().map(KeyExchange::group);
        let group = requested.and_then(DhGroup::from_transform).filter(|g| {
            Some(*g) != current && conn.config.proposals.iter().any(|p| p.dh.contains(g))
        });
        match group {
            // One retry per group we have: a peer cannot keep us bouncing.
            Some(group) if sa.ke_retries < 8 => {
                sa.ke_retries += 1;
                match self.send_init_request(now, sa, conn, group) {
                    Ok(()) => Fate::Keep,
                    Err(e) => self.protocol_failure(sa, &e.to_string()),
                }
            }
            _ => {
                self.fail(
                    &sa.connection,
                    FailureReason::InvalidKePayload {
                        requested: requested.unwrap_or(0),
                    },
                );
                Fate::Remove
            }
        }
    }

    pub(super) fn protocol_failure(&mut self, sa: &mut IkeSa, what: &str) -> Fate {
        self.delete_children(sa);
        self.fail(&sa.connection, FailureReason::Protocol(what.to_owned()));
        Fate::Remove
    }

    fn send_auth_request(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        conn: &EngineConnection,
    ) -> Result<(), EngineError> {
        let (Some(keys), Some(choice)) = (sa.keys.as_ref(), sa.choice) else {
            return Err(EngineError::NoKeys);
        };
        let idi = Identification::new(wire_identity(&conn.local_identity()));
        let idr = Identification::new(wire_identity(&conn.remote_identity()));
        let octets = signed_octets(
            choice.prf,
            &sa.init_request,
            &sa.nonce_r,
            &keys.sk_pi,
            &idi.auth_octets()?,
        );
        let auth = Auth {
            method: AuthMethod::SharedKeyMic,
            data: psk_auth(choice.prf, &conn.psk, &octets),
        };
        let mut payloads = vec![
            Payload::IdInitiator(idi),
            Payload::Notify(Notify::new(NotifyType::InitialContact, Vec::new())),
            Payload::IdResponder(idr),
            Payload::Auth(auth),
        ];
        if let Some(child) = conn.config.children.first() {
            let spi_in = random::esp_spi()?;
            let (local_ts, remote_ts) = (conn.local_ts(child), conn.remote_ts(child));
            if child.mode == Mode::Transport {
                payloads.push(Payload::Notify(Notify::new(
                    NotifyType::UseTransportMode,
                    Vec::new(),
                )));
            }
            payloads.extend([
                Payload::SecurityAssociation(SecurityAssociation::from_esp_proposals(
                    &child::without_dh(&child.esp_proposals),
                    spi_in,
                )?),
                Payload::TsInitiator(TrafficSelectors::new(child::address_ranges(&local_ts))),
                Payload::TsResponder(TrafficSelectors::new(child::address_ranges(&remote_ts))),
            ]);
            sa.pending_child = Some(PendingChild {
                index: 0,
                spi_in,
                local_ts,
                remote_ts,
            });
        }
        self.send_request(now, sa, ExchangeType::IkeAuth, &payloads)
    }

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
        let (Some(ciphers), Some(choice)) = (sa.ciphers.as_mut(), sa.choice) else {
            return Fate::Remove;
        };
        let Ok(payloads) = protect::open(ciphers, message, bytes) else {
            return Fate::Keep;
        };
        sa.outstanding = None;
        if payloads.notify(NotifyType::AuthenticationFailed).is_some() {
            self.fail(
                &sa.connection,
                FailureReason::AuthenticationFailed { peer_id: None },
            );
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
        let verified = idr.identity == wire_identity(&conn.remote_identity())
            && auth.method == AuthMethod::SharedKeyMic
            && match (sa.keys.as_ref(), idr.auth_octets()) {
                (Some(keys), Ok(id_body)) => {
                    let octets = signed_octets(
                        choice.prf,
                        &sa.init_response,
                        &sa.nonce_i,
                        &keys.sk_pr,
                        &id_body,
                    );
                    verify_psk_auth(choice.prf, &conn.psk, &octets, &auth.data).is_ok()
                }
                _ => false,
            };
        if !verified {
            // The responder may consider the SA established: tell it (RFC 7296 section
            // 2.21.2), once, since we forget the SA now.
            let notify = [Payload::Notify(Notify::new(
                NotifyType::AuthenticationFailed,
                Vec::new(),
            ))];
            let _ = self.send_request(now, sa, ExchangeType::Informational, &notify);
            self.fail(
                &sa.connection,
                FailureReason::AuthenticationFailed { peer_id },
            );
            return Fate::Remove;
        }
        sa.phase = Phase::Established;
        sa.established_at = Some(now);
        self.trapped.remove(&sa.connection);
        sa.ike_rekey_at = self.ike_rekey_schedule(&sa.connection, now);
        sa.children_to_request = (conn.config.children.iter().skip(1))
            .map(|c| c.name.clone())
            .collect();
        self.events.push_back(Event::Established {
            name: sa.connection.clone(),
            initiator: true,
            local: sa.local,
            remote: sa.remote,
            ike: choice.to_string(),
        });
        if let Some(pending) = sa.pending_child.take() {
            self.first_child_answer(now, sa, &conn, pending, &payloads);
        }
        Fate::Keep
    }

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
        let negotiated = match child::initiator_accepts(child, &pending, payloads, Ke::Absent) {
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
        let (ni, nr) = (sa.nonce_i.clone(), sa.nonce_r.clone());
        let keymat = child::Keymat {
            ni: &ni,
            nr: &nr,
            pfs: None,
            we_initiated: true,
        };
        match child::install(sa, conn, child, &negotiated, pending.spi_in, keymat, now) {
            Ok((install, event)) => {
                self.actions
                    .push_back(super::KernelAction::InstallChildSa(Box::new(install)));
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proposal::parse_ike;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn nat_detection_compares_both_hashes() {
        let (us, them) = (addr("192.0.2.1:500"), addr("198.51.100.2:500"));
        let header = Header::new(ExchangeType::IkeSaInit, 1, 2, 0, Flags::default());
        // The peer computed its hashes from its own view: source = it, destination = us.
        let honest = Message::new(header, nat_notifies(1, 2, them, us).to_vec()).unwrap();
        assert_eq!(detect_nat(&honest, 1, 2, us, them), (false, false));
        // It saw us behind a NAT.
        let translated = Message::new(
            header,
            nat_notifies(1, 2, them, addr("203.0.113.5:40000")).to_vec(),
        )
        .unwrap();
        assert_eq!(detect_nat(&translated, 1, 2, us, them), (true, false));
        // It is behind a NAT itself.
        let hidden = Message::new(
            header,
            nat_notifies(1, 2, addr("10.0.0.2:500"), us).to_vec(),
        )
        .unwrap();
        assert_eq!(detect_nat(&hidden, 1, 2, us, them), (false, true));
        let silent = Message::new(header, vec![]).unwrap();
        assert_eq!(detect_nat(&silent, 1, 2, us, them), (false, false));
    }

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
