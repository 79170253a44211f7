//! IKE_INTERMEDIATE (RFC 9242) carrying the additional key exchanges of RFC 9370, for both
//! roles: after IKE_SA_INIT, one exchange per negotiated ADDKE method (initiator SK{KEi},
//! responder SK{KEr}), each protected with the keys of the one before and followed on both
//! sides by `SKEYSEED(n) = prf(SK_d(n-1), SK(n) | Ni | Nr)` and fresh keys. Every message's
//! content is chained into IntAuth, which both AUTH payloads then cover (ike_auth.rs), so a
//! changed IKE_INTERMEDIATE makes authentication fail. IKE_AUTH follows the last one.

use std::time::Instant;

use crate::ike::codec::{
    encode_payloads, ExchangeType, Flags, Header, KeyExchange as KePayload, Message, Payload,
    PayloadLookup, PayloadType,
};
use crate::ike::crypto::{KeyExchange, PrfKey, Secret, SkCiphers};
use crate::proposal::DhGroup;

use super::config::EngineConnection;
use super::events::FailureReason;
use super::sa::{IkeSa, State};
use super::{Engine, EngineError, Fate};

/// The additional key exchanges of a handshake and the IntAuth chains so far.
#[derive(Default)]
pub struct Intermediate {
    /// Methods still to exchange, ADDKE1 first.
    pub pending: Vec<DhGroup>,
    /// Initiator: our key pair for the outstanding exchange.
    pub kex: Option<KeyExchange>,
    /// `IntAuth_iN` and `IntAuth_rN` (RFC 9242 section 3.1); empty before the first.
    pub int_auth_i: Vec<u8>,
    pub int_auth_r: Vec<u8>,
    /// IKE_INTERMEDIATE exchanges completed.
    pub done: u32,
    /// Responder: the keys its last answered request came under, and that request's
    /// message ID, to recognise a retransmission of it in fragments (RFC 7383 section
    /// 2.6.1 wants it checked before the answer is repeated).
    pub answered_under: Option<(u32, SkCiphers)>,
}

impl std::fmt::Debug for Intermediate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Intermediate")
            .field("pending", &self.pending)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl Intermediate {
    pub fn new(pending: Vec<DhGroup>) -> Self {
        Intermediate {
            pending,
            ..Intermediate::default()
        }
    }

    /// What both AUTH payloads append to their signed octets: `IntAuth_iN | IntAuth_rN |
    /// IKE_AUTH_MID`, or nothing when no IKE_INTERMEDIATE took place.
    pub fn int_auth(&self, auth_message_id: u32) -> Vec<u8> {
        if self.done == 0 {
            return Vec::new();
        }
        [
            &self.int_auth_i[..],
            &self.int_auth_r,
            &auth_message_id.to_be_bytes(),
        ]
        .concat()
    }

    /// Chains one message into the sender's IntAuth: `IntAuth_n = prf(SK_p, IntAuth_(n-1) |
    /// A | P)` with the SK_p the message was protected under.
    fn chain(&mut self, from_initiator: bool, sk_p: &PrfKey, data: &[u8]) -> Result<(), String> {
        let previous = if from_initiator {
            &mut self.int_auth_i
        } else {
            &mut self.int_auth_r
        };
        let next = (sk_p.compute_concat(&[previous.as_slice(), data]))
            .map_err(|e| format!("IntAuth: {e}"))?;
        *previous = next.expose().to_vec();
        Ok(())
    }
}

/// RFC 9242 section 3.1.2's `A | P` of an IKE_INTERMEDIATE message: the IKE header and the
/// Encrypted payload's header with the lengths it would have unencrypted (and as if never
/// fragmented), then the inner payloads as sent (`first` is the first one's type).
pub fn int_auth_data(header: &Header, first: PayloadType, inner: &[u8]) -> Result<Vec<u8>, String> {
    let sk_len = 4 + inner.len();
    let mut adjusted = *header;
    adjusted.next_payload = PayloadType::Encrypted;
    adjusted.length = u32::try_from(Header::LEN + sk_len).map_err(|e| e.to_string())?;
    let mut data = adjusted.encode().to_vec();
    data.push(first.to_u8());
    data.push(0);
    data.extend_from_slice(
        &u16::try_from(sk_len)
            .map_err(|e| e.to_string())?
            .to_be_bytes(),
    );
    data.extend_from_slice(inner);
    Ok(data)
}

impl IkeSa {
    fn intermediate_mut(&mut self) -> Option<&mut Intermediate> {
        match &mut self.state {
            State::Auth(auth) => Some(&mut auth.intermediate),
            _ => None,
        }
    }

    /// Additional key exchanges still to run before IKE_AUTH.
    pub(super) fn intermediate_pending(&self) -> bool {
        matches!(&self.state, State::Auth(auth) if !auth.intermediate.pending.is_empty())
    }

    /// The SK_p of the message's sender under the current keys.
    fn sk_p(&self, from_initiator: bool) -> Result<PrfKey, String> {
        let keys = self.keys.as_ref().ok_or("no keys")?;
        let sk_p = if from_initiator {
            &keys.sk_pi
        } else {
            &keys.sk_pr
        };
        PrfKey::new(keys.suite.prf, sk_p.expose()).map_err(|e| e.to_string())
    }

    /// Chains a message into IntAuth under the keys it was protected with: one we send, as
    /// we encode it.
    fn chain_sent(
        &mut self,
        header: &Header,
        payloads: &[Payload],
        from_initiator: bool,
    ) -> Result<(), String> {
        let (first, inner) = encode_payloads(payloads).map_err(|e| e.to_string())?;
        self.chain_int_auth(header, first, &inner, from_initiator)
    }

    /// Chains a message into IntAuth under the keys it was protected with.
    fn chain_int_auth(
        &mut self,
        header: &Header,
        first: PayloadType,
        inner: &[u8],
        from_initiator: bool,
    ) -> Result<(), String> {
        let data = int_auth_data(header, first, inner)?;
        let sk_p = self.sk_p(from_initiator)?;
        (self.intermediate_mut().ok_or("not in IKE_AUTH")?).chain(from_initiator, &sk_p, &data)
    }

    /// RFC 9370 section 2.2.2: new keys from the additional exchange's shared secret, the
    /// old SK_d and the IKE_SA_INIT nonces and SPIs.
    fn rederive(&mut self, shared: &Secret, answered: Option<u32>) -> Result<(), String> {
        let keys = self.keys.as_ref().ok_or("no keys")?;
        let next = keys
            .rekey(
                keys.suite,
                shared,
                &self.nonce_i,
                &self.nonce_r,
                &self.spi_i.to_be_bytes(),
                &self.spi_r.to_be_bytes(),
            )
            .map_err(|e| e.to_string())?;
        let ciphers = SkCiphers::new(&next, self.initiator).map_err(|e| e.to_string())?;
        let previous = self.ciphers.replace(ciphers);
        self.keys = Some(next);
        let intermediate = self.intermediate_mut().ok_or("not in IKE_AUTH")?;
        intermediate.done += 1;
        intermediate.answered_under = answered.zip(previous);
        Ok(())
    }
}

impl Engine {
    /// Initiator: the next additional key exchange, or IKE_AUTH once none is left.
    pub(super) fn continue_handshake(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        conn: &EngineConnection,
    ) -> Fate {
        let next = (sa.intermediate_mut()).and_then(|i| i.pending.first().copied());
        let sent = match next {
            Some(group) => self.send_intermediate_request(now, sa, group),
            None => self.send_auth_request(now, sa, conn),
        };
        match sent {
            Ok(()) => Fate::Keep,
            Err(EngineError::Auth(e)) => {
                self.fail(&sa.connection, FailureReason::cannot_authenticate(e));
                Fate::Remove
            }
            Err(e) => self.protocol_failure(sa, &e.to_string()),
        }
    }

    fn send_intermediate_request(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        group: DhGroup,
    ) -> Result<(), EngineError> {
        let kex = KeyExchange::new(group)?;
        let payloads = [Payload::KeyExchange(KePayload::new(
            group,
            kex.public_value().to_vec(),
        ))];
        let header = Header::new(
            ExchangeType::IkeIntermediate,
            sa.spi_i,
            sa.spi_r,
            sa.next_request_id,
            Flags {
                initiator: true,
                ..Flags::default()
            },
        );
        sa.chain_sent(&header, &payloads, true)
            .map_err(EngineError::Intermediate)?;
        if let Some(intermediate) = sa.intermediate_mut() {
            intermediate.kex = Some(kex);
        }
        self.send_request(now, sa, ExchangeType::IkeIntermediate, &payloads)
    }

    /// Initiator: the responder's KEr; new keys, then the next exchange or IKE_AUTH.
    pub(super) fn intermediate_response(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        message: &Message,
        bytes: &[u8],
    ) -> Fate {
        let Some(conn) = self.connection(&sa.connection).cloned() else {
            return Fate::Remove;
        };
        let Ok(opened) = sa.open_whole(message, bytes) else {
            return Fate::Keep;
        };
        let payloads = &opened.payloads;
        if let Some(error) = payloads.error_notify() {
            let reason = FailureReason::PeerError {
                notify: error.notify_type.to_u16(),
            };
            self.fail(&sa.connection, reason);
            return Fate::Remove;
        }
        let Some(intermediate) = sa.intermediate_mut() else {
            return Fate::Remove;
        };
        let (Some(kex), Some(ke)) = (intermediate.kex.take(), payloads.key_exchange()) else {
            return self.protocol_failure(sa, "IKE_INTERMEDIATE response lacks KE");
        };
        if ke.group != kex.group().transform_id() {
            return self.protocol_failure(sa, "IKE_INTERMEDIATE answered with another method");
        }
        intermediate.pending.remove(0);
        let step = (kex.shared_secret(&ke.data))
            .map_err(|e| format!("additional key exchange {}: {e}", kex.group()))
            .and_then(|shared| {
                sa.chain_int_auth(
                    &message.header,
                    opened.first_payload,
                    &opened.plaintext,
                    false,
                )?;
                sa.rederive(&shared, None)
            });
        if let Err(what) = step {
            return self.protocol_failure(sa, &what);
        }
        sa.outstanding = None;
        self.continue_handshake(now, sa, &conn)
    }

    /// Responder: answers the initiator's KEi for the next negotiated method with KEr, then
    /// moves to the new keys.
    pub(super) fn intermediate_request(
        &mut self,
        sa: &mut IkeSa,
        message: &Message,
        bytes: &[u8],
    ) -> Fate {
        let Some(opened) = self.open_request_whole(sa, message, bytes) else {
            return Fate::Keep;
        };
        let payloads = &opened.payloads;
        let Some(group) = (sa.intermediate_mut()).and_then(|i| i.pending.first().copied()) else {
            // IKE_INTERMEDIATE for anything else is not ours to answer (RFC 9242 allows
            // other uses, none of which we offer).
            return self.protocol_failure(sa, "unexpected IKE_INTERMEDIATE request");
        };
        let Some(ke) = payloads
            .key_exchange()
            .filter(|k| k.group == group.transform_id())
        else {
            return self.protocol_failure(sa, "IKE_INTERMEDIATE request lacks the negotiated KE");
        };
        let Ok((ours, shared)) = KeyExchange::respond(group, &ke.data) else {
            return self.protocol_failure(sa, "invalid additional key exchange data");
        };
        let answer = [Payload::KeyExchange(KePayload::new(group, ours))];
        let h = message.header;
        let response_header = Header::new(
            ExchangeType::IkeIntermediate,
            sa.spi_i,
            sa.spi_r,
            h.message_id,
            Flags {
                response: true,
                ..Flags::default()
            },
        );
        let chained = sa
            .chain_int_auth(&h, opened.first_payload, &opened.plaintext, true)
            .and_then(|()| sa.chain_sent(&response_header, &answer, false));
        if let Err(what) = chained {
            return self.protocol_failure(sa, &what);
        }
        if let Err(e) = self.send_response(sa, ExchangeType::IkeIntermediate, h.message_id, &answer)
        {
            return self.protocol_failure(sa, &e.to_string());
        }
        if let Some(intermediate) = sa.intermediate_mut() {
            intermediate.pending.remove(0);
        }
        match sa.rederive(&shared, Some(h.message_id)) {
            Ok(()) => Fate::Keep,
            Err(what) => self.protocol_failure(sa, &what),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ike::codec::Notify;
    use crate::ike::codec::NotifyType;
    use crate::proposal::Prf;

    fn header(message_id: u32) -> Header {
        Header::new(
            ExchangeType::IkeIntermediate,
            0x0102030405060708,
            0x1112131415161718,
            message_id,
            Flags {
                initiator: true,
                ..Flags::default()
            },
        )
    }

    #[test]
    fn int_auth_data_is_the_message_as_if_unencrypted() {
        let payloads = [Payload::Notify(Notify::new(NotifyType::Cookie, vec![9; 4]))];
        let (first, inner) = encode_payloads(&payloads).unwrap();
        let data = int_auth_data(&header(1), first, &inner).unwrap();
        // 28-octet IKE header, 4-octet SK header, then the inner payloads.
        assert_eq!(data.len(), 28 + 4 + inner.len());
        assert_eq!(data[16], 46, "next payload: SK, even if sent in fragments");
        assert_eq!(data[18], 43, "exchange type IKE_INTERMEDIATE");
        assert_eq!(
            u32::from_be_bytes(data[24..28].try_into().unwrap()),
            32 + 12
        );
        assert_eq!(
            data[28], 41,
            "the SK header names the first inner payload (N)"
        );
        assert_eq!(u16::from_be_bytes([data[30], data[31]]), 4 + 12);
        assert_eq!(&data[32..], inner.as_slice());
    }

    #[test]
    fn int_auth_chains_every_message_and_the_auth_message_id() {
        let key = PrfKey::new(Prf::HmacSha256, &[5; 32]).unwrap();
        let mut a = Intermediate::new(vec![DhGroup::MlKem768]);
        assert!(
            a.int_auth(2).is_empty(),
            "nothing before the first exchange"
        );
        a.chain(true, &key, b"request").unwrap();
        a.chain(false, &key, b"response").unwrap();
        a.done = 1;
        let expected_i = key.compute_concat(&[b"", b"request"]).unwrap();
        assert_eq!(a.int_auth_i, expected_i.expose());
        let whole = a.int_auth(2);
        assert_eq!(whole.len(), 32 + 32 + 4);
        assert_eq!(&whole[64..], &[0, 0, 0, 2]);
        // One octet of either message changes IntAuth, and so what AUTH signs.
        let mut b = Intermediate::new(vec![]);
        b.chain(true, &key, b"requesT").unwrap();
        b.chain(false, &key, b"response").unwrap();
        b.done = 1;
        assert_ne!(b.int_auth(2), whole);
        assert_ne!(a.int_auth(3), whole);
    }

    mod tampered {
        use std::net::{IpAddr, SocketAddr};

        use super::super::super::config::{ChildConfig, EngineConfig, EngineConnection, IkeConfig};
        use super::super::super::events::{Event, FailureReason};
        use super::super::super::{protect, Engine, Transmit};
        use super::*;
        use crate::ike::ts::TrafficSelector;
        use crate::proposal::{parse_esp, parse_ike};

        const A: &str = "192.0.2.1";
        const B: &str = "198.51.100.2";

        fn side(local: &str, remote: &str) -> Engine {
            let ip = |s: &str| s.parse::<IpAddr>().unwrap();
            let any = vec![TrafficSelector {
                net: Some("10.0.0.0/8".parse().unwrap()),
                protocol: None,
                ports: None,
            }];
            let esp = vec![parse_esp("aes128gcm16", false).unwrap()];
            let child = ChildConfig::new("net", any.clone(), any, esp);
            let ike = parse_ike("aes256gcm16-prfsha256-x25519-ke1_mlkem768", false).unwrap();
            let config = IkeConfig::new("peer", ip(remote), vec![ike], vec![child]);
            let secret = Secret::from_slice(b"intermediate-test-psk");
            let mut engine = Engine::new(EngineConfig::default());
            engine.add_connection(EngineConnection::with_psk(config, ip(local), secret));
            engine
        }

        fn deliver(now: Instant, from: &mut Engine, to: &mut Engine) -> usize {
            let sent: Vec<Transmit> = std::iter::from_fn(|| from.poll_transmit()).collect();
            for t in &sent {
                to.handle_datagram(now, t.remote, t.local, &t.payload);
            }
            sent.len()
        }

        /// Runs `f` on the engine's only IKE SA.
        fn with_sa<T>(engine: &mut Engine, f: impl FnOnce(&mut IkeSa) -> T) -> T {
            let spi = *engine.sas.iter().next().unwrap().0;
            let mut sa = engine.sas.remove(&spi).unwrap();
            let out = f(&mut sa);
            engine.put(sa);
            out
        }

        /// A party holding the keys (a compromised key exchange, say) adds a status
        /// notification to the initiator's IKE_INTERMEDIATE: the responder processes the
        /// message as before, since the KE payload is untouched, but IntAuth now differs
        /// between the sides, so the initiator's AUTH does not verify. Sealed again unchanged,
        /// the same message goes through.
        fn run(tamper: bool) -> (Engine, Engine) {
            let now = Instant::now();
            let (mut a, mut b) = (side(A, B), side(B, A));
            a.initiate(now, "peer").unwrap();
            deliver(now, &mut a, &mut b);
            deliver(now, &mut b, &mut a);
            let request = a.poll_transmit().unwrap();
            let message = Message::decode(&request.payload).unwrap();
            assert_eq!(message.header.exchange, ExchangeType::IkeIntermediate);
            let mut payloads = with_sa(&mut b, |sa| {
                protect::open(sa.ciphers.as_mut().unwrap(), &message, &request.payload)
            })
            .unwrap();
            if tamper {
                payloads.push(Payload::Notify(Notify::new(
                    NotifyType::Unknown(40000),
                    vec![1],
                )));
            }
            let [resealed] = with_sa(&mut a, |sa| {
                protect::seal(
                    sa.ciphers.as_mut().unwrap(),
                    message.header,
                    &payloads,
                    None,
                )
            })
            .unwrap()
            .try_into()
            .unwrap();
            let to: SocketAddr = request.remote;
            b.handle_datagram(now, to, request.local, &resealed);
            while deliver(now, &mut b, &mut a) + deliver(now, &mut a, &mut b) > 0 {}
            (a, b)
        }

        fn events(engine: &mut Engine) -> Vec<Event> {
            std::iter::from_fn(|| engine.poll_event()).collect()
        }

        #[test]
        fn a_changed_ike_intermediate_makes_auth_fail() {
            let (mut a, mut b) = run(false);
            assert!(events(&mut a)
                .iter()
                .any(|e| matches!(e, Event::Established { .. })));
            assert!(events(&mut b)
                .iter()
                .any(|e| matches!(e, Event::Established { .. })));
            let (mut a, mut b) = run(true);
            let refused = events(&mut b).into_iter().any(|e| {
                matches!(
                    e,
                    Event::Failed {
                        reason: FailureReason::AuthenticationFailed { .. },
                        ..
                    }
                )
            });
            assert!(refused, "the responder refuses the initiator's AUTH");
            assert!(!events(&mut a)
                .iter()
                .any(|e| matches!(e, Event::Established { .. })));
            assert_eq!(b.status().len(), 0, "{:?}", b.status());
        }
    }
}
