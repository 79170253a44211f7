//! The responder's side of IKE_SA_INIT and IKE_AUTH.

use std::net::SocketAddr;
use std::time::Instant;

use super::config::Mode;
use crate::ike::codec::{
    Auth, AuthMethod, ExchangeType, Flags, Header, Identification, KeyExchange as KePayload,
    Message, Nonce, Notify, NotifyType, Payload, PayloadLookup, Proposal, SecurityAssociation,
    TrafficSelectors,
};
use crate::ike::crypto::{psk_auth, random, signed_octets, verify_psk_auth, KeyExchange};
use crate::ike::select::{select_ike, KeyExchange as Ke};
use crate::proposal::{DhGroup, IkeProposal};

use super::child::{self, address_ranges};
use super::config::{show_identity, wire_identity, EngineConnection};
use super::cookie::CookieJar;
use super::events::{Event, FailureReason, KernelAction};
use super::initiator::{derive, detect_nat, nat_notifies, SIGNATURE_HASHES};
use super::sa::{IkeSa, Phase};
use super::{Engine, Fate};

impl Engine {
    /// Connections for a peer, by the addresses the datagram travelled between.
    fn candidates(&self, local: SocketAddr, remote: SocketAddr) -> Vec<EngineConnection> {
        (self.connections.values())
            .filter(|c| c.config.remote == remote.ip() && c.local_addr == local.ip())
            .cloned()
            .collect()
    }

    /// An unprotected IKE_SA_INIT error response that leaves no state behind.
    fn refuse_init(&mut self, local: SocketAddr, remote: SocketAddr, spi_i: u64, notify: Notify) {
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

    /// Under load, admits only requests that echo a cookie we made for this initiator; the
    /// others are answered with a fresh cookie and leave no state (RFC 7296 section 2.6).
    fn cookie_admits(
        &mut self,
        now: Instant,
        message: &Message,
        nonce_i: &[u8],
        (local, remote): (SocketAddr, SocketAddr),
        spi_i: u64,
    ) -> bool {
        if !self.review_cookies(now) {
            return true;
        }
        let Some(jar) = self.cookies.as_mut() else {
            return true;
        };
        // The cookie must be the first payload of the retried request.
        let echoed = match message.payloads.first() {
            Some(Payload::Notify(n)) if n.notify_type == NotifyType::Cookie => Some(&n.data),
            _ => None,
        };
        if echoed.is_some_and(|c| jar.verify(c, nonce_i, remote.ip(), spi_i)) {
            return true;
        }
        if let Ok(cookie) = jar.make(now, nonce_i, remote.ip(), spi_i) {
            self.refuse_init(
                local,
                remote,
                spi_i,
                Notify::new(NotifyType::Cookie, cookie),
            );
        }
        false
    }

    /// Decides from the current load whether IKE_SA_INIT needs a cookie, telling the
    /// operator when that changes; true while cookies are required.
    pub(super) fn review_cookies(&mut self, now: Instant) -> bool {
        let config = self.config.cookies;
        let Some(jar) = self.cookies.as_mut() else {
            return false;
        };
        jar.roll(now);
        // During a flood nothing changes: spare counting the half-open SAs per datagram.
        if jar.engaged() && jar.rate() >= config.rate_threshold {
            return true;
        }
        let half_open = (self.sas.values())
            .filter(|sa| !sa.initiator && sa.phase == Phase::Auth)
            .count();
        let Some(jar) = self.cookies.as_mut() else {
            return false;
        };
        let (required, changed) = jar.decide(&config, half_open);
        if changed {
            let requests_per_second = jar.rate();
            self.events.push_back(Event::CookiesRequired {
                engaged: required,
                half_open,
                requests_per_second,
            });
        }
        required
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
            if sa.init_request == bytes && sa.phase == Phase::Auth {
                let payload = sa.init_response.clone();
                self.transmits.push_back(super::Transmit {
                    local,
                    remote,
                    payload,
                });
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
        let offered: Vec<(u8, IkeProposal)> = (sa_payload.proposals.iter())
            .filter_map(|p| Some((p.number, p.ike_transforms()?.supported)))
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
        let (Ok(spi_r), Ok(nonce_r), Ok(kex)) = (
            self.unique_spi(),
            random::nonce(),
            KeyExchange::new(choice.dh),
        ) else {
            return;
        };
        let mut sa = IkeSa::new(conn.name().to_owned(), false, local, remote);
        sa.spi_i = spi_i;
        sa.spi_r = spi_r;
        sa.nonce_i = nonce.data.clone();
        sa.nonce_r = nonce_r;
        let Ok((keys, ciphers)) = derive(&choice, &kex, &ke.data, &sa) else {
            // An invalid public value: nothing to answer that the peer could trust.
            return;
        };
        // The request's hashes were computed before our SPI existed.
        (sa.local_behind_nat, sa.remote_behind_nat) = detect_nat(message, spi_i, 0, local, remote);
        let number = offered.get(index).map_or(1, |(n, _)| *n);
        let mut payloads = vec![
            Payload::SecurityAssociation(SecurityAssociation {
                proposals: vec![Proposal::from_ike(number, &choice.as_proposal(), None)],
            }),
            Payload::KeyExchange(KePayload::new(choice.dh, kex.public_value().to_vec())),
            Payload::Nonce(Nonce {
                data: sa.nonce_r.clone(),
            }),
        ];
        payloads.extend(nat_notifies(spi_i, spi_r, local, remote));
        payloads.push(Payload::Notify(Notify::signature_hash_algorithms(
            &SIGNATURE_HASHES,
        )));
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
        sa.init_request = bytes.to_vec();
        sa.init_response = datagram.clone();
        sa.last_response = Some((0, datagram.clone()));
        sa.expected_request_id = 1;
        sa.expires_at = Some(now + self.config.half_open_timeout);
        self.transmit(&sa, datagram);
        self.put(sa);
    }

    /// Answers AUTHENTICATION_FAILED. The SA stays until its half-open expiry, only to
    /// answer a retransmitted request from the cache: if our answer is lost, the initiator
    /// still learns why instead of timing out.
    fn reject_auth(&mut self, sa: &mut IkeSa, message_id: u32, peer_id: Option<String>) -> Fate {
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
        self.fail(
            &sa.connection,
            FailureReason::AuthenticationFailed { peer_id },
        );
        sa.rejected = true;
        Fate::Keep
    }

    pub(super) fn auth_request(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        message: &Message,
        bytes: &[u8],
    ) -> Fate {
        let message_id = message.header.message_id;
        if sa.rejected {
            return Fate::Keep;
        }
        let Some(choice) = sa.choice else {
            return Fate::Remove;
        };
        let Some(payloads) = self.open_request(sa, message, bytes) else {
            return Fate::Keep;
        };
        let (Some(idi), Some(auth)) = (payloads.id_initiator(), payloads.auth()) else {
            return self.reject_auth(sa, message_id, None);
        };
        let peer_id = Some(show_identity(&idi.identity));
        // The connection is the one whose peer identity (and, if asked for, our own) match.
        let wanted_idr = payloads.id_responder();
        let conn = (self.candidates(sa.local, sa.remote).into_iter()).find(|c| {
            wire_identity(&c.remote_identity()) == idi.identity
                && wanted_idr.is_none_or(|idr| idr.identity == wire_identity(&c.local_identity()))
        });
        let Some(conn) = conn else {
            return self.reject_auth(sa, message_id, peer_id);
        };
        let verified = auth.method == AuthMethod::SharedKeyMic
            && match (sa.keys.as_ref(), idi.auth_octets()) {
                (Some(keys), Ok(id_body)) => {
                    let octets = signed_octets(
                        choice.prf,
                        &sa.init_request,
                        &sa.nonce_r,
                        &keys.sk_pi,
                        &id_body,
                    );
                    verify_psk_auth(choice.prf, &conn.psk, &octets, &auth.data).is_ok()
                }
                _ => false,
            };
        if !verified {
            return self.reject_auth(sa, message_id, peer_id);
        }
        sa.connection = conn.name().to_owned();
        if payloads.notify(NotifyType::InitialContact).is_some() {
            self.forget_older_sas(sa);
        }
        let idr = Identification::new(wire_identity(&conn.local_identity()));
        let (Some(keys), Ok(idr_body)) = (sa.keys.as_ref(), idr.auth_octets()) else {
            return Fate::Remove;
        };
        let octets = signed_octets(
            choice.prf,
            &sa.init_response,
            &sa.nonce_i,
            &keys.sk_pr,
            &idr_body,
        );
        let mut response = vec![
            Payload::IdResponder(idr),
            Payload::Auth(Auth {
                method: AuthMethod::SharedKeyMic,
                data: psk_auth(choice.prf, &conn.psk, &octets),
            }),
        ];
        let mut installed = None;
        if let (Some(sa_payload), Some(tsi), Some(tsr)) = (
            payloads.security_association(),
            payloads.ts_initiator(),
            payloads.ts_responder(),
        ) {
            let transport = payloads.notify(NotifyType::UseTransportMode).is_some();
            let request = child::Request {
                sa: sa_payload,
                tsi,
                tsr,
                transport,
                ke: Ke::Absent,
                only: None,
            };
            match child::responder_negotiate(&conn, &request) {
                Ok((child, negotiated, number)) => match random::esp_spi() {
                    Ok(spi_in) => {
                        if negotiated.mode == Mode::Transport {
                            response.push(Payload::Notify(Notify::new(
                                NotifyType::UseTransportMode,
                                Vec::new(),
                            )));
                        }
                        response.extend([
                            Payload::SecurityAssociation(SecurityAssociation {
                                proposals: vec![Proposal::from_esp(
                                    number,
                                    &negotiated.choice.as_proposal(),
                                    spi_in,
                                )],
                            }),
                            // TSi is the initiator's side, our remote one.
                            Payload::TsInitiator(TrafficSelectors::new(address_ranges(
                                &negotiated.remote_ts,
                            ))),
                            Payload::TsResponder(TrafficSelectors::new(address_ranges(
                                &negotiated.local_ts,
                            ))),
                        ]);
                        installed = Some((child.clone(), negotiated, spi_in));
                    }
                    Err(_) => {
                        response.push(Payload::Notify(Notify::new(
                            NotifyType::TemporaryFailure,
                            Vec::new(),
                        )));
                    }
                },
                Err((_, reason)) => {
                    let notify = match reason {
                        FailureReason::TsUnacceptable { .. } => NotifyType::TsUnacceptable,
                        _ => NotifyType::NoProposalChosen,
                    };
                    response.push(Payload::Notify(Notify::new(notify, Vec::new())));
                    self.fail(conn.name(), reason);
                }
            }
        }
        if self
            .send_response(sa, ExchangeType::IkeAuth, message_id, &response)
            .is_err()
        {
            return Fate::Remove;
        }
        sa.phase = Phase::Established;
        sa.established_at = Some(now);
        self.trapped.remove(&sa.connection);
        sa.ike_rekey_at = self.ike_rekey_schedule(&sa.connection, now);
        sa.expires_at = None;
        self.events.push_back(Event::Established {
            name: sa.connection.clone(),
            initiator: false,
            local: sa.local,
            remote: sa.remote,
            ike: choice.to_string(),
        });
        if let Some((child_cfg, n, spi_in)) = installed {
            let (ni, nr) = (sa.nonce_i.clone(), sa.nonce_r.clone());
            let keymat = child::Keymat {
                ni: &ni,
                nr: &nr,
                pfs: None,
                we_initiated: false,
            };
            match child::install(sa, &conn, &child_cfg, &n, spi_in, keymat, now) {
                Ok((install, event)) => {
                    self.actions
                        .push_back(KernelAction::InstallChildSa(Box::new(install)));
                    self.events.push_back(event);
                }
                Err(e) => self.fail(&sa.connection, FailureReason::Protocol(e.to_string())),
            }
        }
        Fate::Keep
    }

    /// INITIAL_CONTACT: the peer has no other IKE SA with us any more (it restarted), so
    /// ours with it, and their Child SAs, are stale.
    fn forget_older_sas(&mut self, current: &IkeSa) {
        let stale: Vec<u64> = (self.sas.iter())
            .filter(|(_, sa)| {
                sa.connection == current.connection
                    && sa.remote.ip() == current.remote.ip()
                    && sa.phase != Phase::Auth
            })
            .map(|(spi, _)| *spi)
            .collect();
        for spi in stale {
            if let Some(mut sa) = self.sas.remove(&spi) {
                self.delete_children(&mut sa);
                self.events.push_back(Event::Deleted {
                    name: sa.connection.clone(),
                    by_peer: true,
                });
            }
        }
    }
}
