//! The payload enum, the generic payload header (RFC 7296 section 3.2) and payload chains:
//! the outer chain of a message and the inner chain of a decrypted SK payload.

use super::delete::Delete;
use super::encrypted::{Encrypted, EncryptedFragment, GENERIC_HEADER_LEN};
use super::error::{DecodeError, EncodeError, ErrorKind, Location};
use super::identity::{Auth, Certificate, Identification};
use super::key_exchange::{KeyExchange, Nonce};
use super::notify::{Notify, NotifyType};
use super::opaque::{Configuration, Eap, UnknownPayload, VendorId};
use super::payload_type::PayloadType;
use super::reader::Reader;
use super::sa::SecurityAssociation;
use super::ts::TrafficSelectors;
use super::writer::LengthSlot;

const CRITICAL: u8 = 0x80;

/// Any IKEv2 payload.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Payload {
    SecurityAssociation(SecurityAssociation),
    KeyExchange(KeyExchange),
    IdInitiator(Identification),
    IdResponder(Identification),
    Certificate(Certificate),
    CertificateRequest(Certificate),
    Auth(Auth),
    Nonce(Nonce),
    Notify(Notify),
    Delete(Delete),
    VendorId(VendorId),
    TsInitiator(TrafficSelectors),
    TsResponder(TrafficSelectors),
    /// SK; only as the last payload of a message.
    Encrypted(Encrypted),
    /// SKF; only as the last payload of a message.
    EncryptedFragment(EncryptedFragment),
    Configuration(Configuration),
    Eap(Eap),
    Unknown(UnknownPayload),
}

impl Payload {
    pub fn payload_type(&self) -> PayloadType {
        match self {
            Payload::SecurityAssociation(_) => PayloadType::SecurityAssociation,
            Payload::KeyExchange(_) => PayloadType::KeyExchange,
            Payload::IdInitiator(_) => PayloadType::IdInitiator,
            Payload::IdResponder(_) => PayloadType::IdResponder,
            Payload::Certificate(_) => PayloadType::Certificate,
            Payload::CertificateRequest(_) => PayloadType::CertificateRequest,
            Payload::Auth(_) => PayloadType::Authentication,
            Payload::Nonce(_) => PayloadType::Nonce,
            Payload::Notify(_) => PayloadType::Notify,
            Payload::Delete(_) => PayloadType::Delete,
            Payload::VendorId(_) => PayloadType::VendorId,
            Payload::TsInitiator(_) => PayloadType::TsInitiator,
            Payload::TsResponder(_) => PayloadType::TsResponder,
            Payload::Encrypted(_) => PayloadType::Encrypted,
            Payload::EncryptedFragment(_) => PayloadType::EncryptedFragment,
            Payload::Configuration(_) => PayloadType::Configuration,
            Payload::Eap(_) => PayloadType::Eap,
            Payload::Unknown(u) => PayloadType::from_u8(u.payload_type),
        }
    }

    /// Decodes the body of a payload of a known, non-encrypted type.
    fn read_body(
        payload_type: PayloadType,
        critical: bool,
        r: &mut Reader<'_>,
    ) -> Result<Self, DecodeError> {
        Ok(match payload_type {
            PayloadType::SecurityAssociation => {
                Payload::SecurityAssociation(SecurityAssociation::read(r)?)
            }
            PayloadType::KeyExchange => Payload::KeyExchange(KeyExchange::read(r)?),
            PayloadType::IdInitiator => Payload::IdInitiator(Identification::read(r)?),
            PayloadType::IdResponder => Payload::IdResponder(Identification::read(r)?),
            PayloadType::Certificate => Payload::Certificate(Certificate::read(r)?),
            PayloadType::CertificateRequest => Payload::CertificateRequest(Certificate::read(r)?),
            PayloadType::Authentication => Payload::Auth(Auth::read(r)?),
            PayloadType::Nonce => Payload::Nonce(Nonce::read(r)?),
            PayloadType::Notify => Payload::Notify(Notify::read(r)?),
            PayloadType::Delete => Payload::Delete(Delete::read(r)?),
            PayloadType::VendorId => Payload::VendorId(VendorId {
                data: r.rest().to_vec(),
            }),
            PayloadType::TsInitiator => Payload::TsInitiator(TrafficSelectors::read(r)?),
            PayloadType::TsResponder => Payload::TsResponder(TrafficSelectors::read(r)?),
            PayloadType::Configuration => Payload::Configuration(Configuration::read(r)?),
            PayloadType::Eap => Payload::Eap(Eap {
                message: r.rest().to_vec(),
            }),
            // Callers handle SK / SKF and the end of the chain before getting here.
            PayloadType::Encrypted
            | PayloadType::EncryptedFragment
            | PayloadType::NoNextPayload => {
                return Err(r.error("payload type", unexpected_type(payload_type)));
            }
            PayloadType::Unknown(payload_type) => Payload::Unknown(UnknownPayload {
                payload_type,
                critical,
                body: r.rest().to_vec(),
            }),
        })
    }

    fn write_body(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        match self {
            Payload::SecurityAssociation(sa) => sa.write(out),
            Payload::KeyExchange(ke) => ke.write(out),
            Payload::IdInitiator(id) | Payload::IdResponder(id) => id.write(out),
            Payload::Certificate(cert) | Payload::CertificateRequest(cert) => cert.write(out),
            Payload::Auth(auth) => auth.write(out),
            Payload::Nonce(nonce) => nonce.write(out),
            Payload::Notify(notify) => notify.write(out),
            Payload::Delete(delete) => delete.write(out),
            Payload::VendorId(vid) => put_opaque(out, &vid.data),
            Payload::TsInitiator(ts) | Payload::TsResponder(ts) => ts.write(out),
            Payload::Encrypted(sk) => put_opaque(out, &sk.body),
            Payload::EncryptedFragment(skf) => {
                EncryptedFragment::write_numbers(skf.fragment_number, skf.total_fragments, out)?;
                put_opaque(out, &skf.body)
            }
            Payload::Configuration(cp) => cp.write(out),
            Payload::Eap(eap) => put_opaque(out, &eap.message),
            Payload::Unknown(unknown) => {
                if !matches!(
                    PayloadType::from_u8(unknown.payload_type),
                    PayloadType::Unknown(_)
                ) {
                    return Err(EncodeError::Invalid {
                        field: "unknown payload type",
                        reason: "has its own Payload variant",
                    });
                }
                put_opaque(out, &unknown.body)
            }
        }
    }

    /// The Next Payload value this payload writes: the inner chain's first type for SK / SKF.
    fn inner_first_payload(&self) -> Option<PayloadType> {
        match self {
            Payload::Encrypted(sk) => Some(sk.first_payload),
            Payload::EncryptedFragment(skf) => Some(skf.first_payload),
            _ => None,
        }
    }
}

fn put_opaque(out: &mut Vec<u8>, data: &[u8]) -> Result<(), EncodeError> {
    out.extend_from_slice(data);
    Ok(())
}

fn unexpected_type(payload_type: PayloadType) -> ErrorKind {
    ErrorKind::BadValue {
        expected: "a payload allowed here",
        got: payload_type.to_u8().into(),
    }
}

/// Where a chain is: the outer chain may end with SK / SKF, an inner one may not nest them.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChainKind {
    Message,
    Inner,
}

/// Reads a payload chain starting with `first` until No Next Payload; the chain must use up
/// the reader exactly.
pub(crate) fn read_chain(
    r: &mut Reader<'_>,
    first: PayloadType,
    kind: ChainKind,
) -> Result<Vec<Payload>, DecodeError> {
    let mut payloads = Vec::new();
    let mut current = first;
    while current != PayloadType::NoNextPayload {
        r.set_location(Location::Payload(current));
        let start = r.offset();
        let next = PayloadType::from_u8(r.u8("next payload")?);
        let critical = r.u8("critical flag")? & CRITICAL != 0;
        let len = usize::from(r.u16("payload length")?);
        let mut body = r.framed(
            start.saturating_add(2),
            GENERIC_HEADER_LEN,
            len,
            "payload length",
        )?;
        if current.is_encrypted() {
            if kind == ChainKind::Inner {
                return Err(r.error_at(start, "payload type", unexpected_type(current)));
            }
            // SK / SKF ends the outer chain: its Next Payload names the first inner payload,
            // so it must be the last payload and reach the end of the message.
            payloads.push(if current == PayloadType::Encrypted {
                Payload::Encrypted(Encrypted::read(next, &mut body))
            } else {
                Payload::EncryptedFragment(EncryptedFragment::read(next, &mut body)?)
            });
            r.finish("data after the SK payload")?;
            return Ok(payloads);
        }
        let payload = Payload::read_body(current, critical, &mut body)?;
        body.finish("payload body")?;
        payloads.push(payload);
        current = next;
    }
    r.finish("data after the last payload")?;
    Ok(payloads)
}

/// Writes a payload chain; returns the type of its first payload for the preceding Next
/// Payload field.
pub(crate) fn write_chain(
    out: &mut Vec<u8>,
    payloads: &[Payload],
    kind: ChainKind,
) -> Result<PayloadType, EncodeError> {
    for (i, payload) in payloads.iter().enumerate() {
        let following = payloads.get(i.saturating_add(1));
        let next = match (payload.inner_first_payload(), following) {
            (Some(_), _) if kind == ChainKind::Inner => {
                return Err(EncodeError::Invalid {
                    field: "SK payload",
                    reason: "cannot be nested in another SK payload",
                });
            }
            (Some(_), Some(_)) => {
                return Err(EncodeError::Invalid {
                    field: "SK payload",
                    reason: "must be the last payload of the message",
                });
            }
            (Some(inner), None) => inner,
            (None, Some(next)) => next.payload_type(),
            (None, None) => PayloadType::NoNextPayload,
        };
        let start = out.len();
        out.push(next.to_u8());
        let critical = matches!(payload, Payload::Unknown(u) if u.critical);
        out.push(if critical { CRITICAL } else { 0 });
        let len = LengthSlot::reserve(out, start, "payload length");
        payload.write_body(out)?;
        len.close(out)?;
    }
    Ok(payloads
        .first()
        .map_or(PayloadType::NoNextPayload, Payload::payload_type))
}

/// Decodes the inner payload chain of a decrypted SK payload (padding already removed).
/// Offsets in errors count from the start of `plaintext`.
pub fn decode_payloads(
    first_payload: PayloadType,
    plaintext: &[u8],
) -> Result<Vec<Payload>, DecodeError> {
    let mut r = Reader::new(plaintext, Location::Payload(first_payload));
    read_chain(&mut r, first_payload, ChainKind::Inner)
}

/// Encodes a payload chain to be encrypted into an SK payload; returns the type of the
/// first payload (the SK payload's Next Payload) and the plaintext.
pub fn encode_payloads(payloads: &[Payload]) -> Result<(PayloadType, Vec<u8>), EncodeError> {
    let mut out = Vec::new();
    let first = write_chain(&mut out, payloads, ChainKind::Inner)?;
    Ok((first, out))
}

/// Lookups over a payload list, for a [`Message`](super::Message) as for a decrypted inner
/// chain.
pub trait PayloadLookup {
    fn payload_list(&self) -> &[Payload];

    fn payloads_of(&self, payload_type: PayloadType) -> impl Iterator<Item = &Payload> {
        (self.payload_list().iter()).filter(move |p| p.payload_type() == payload_type)
    }

    fn notifies(&self) -> impl Iterator<Item = &Notify> {
        self.payload_list().iter().filter_map(|p| match p {
            Payload::Notify(n) => Some(n),
            _ => None,
        })
    }

    /// The first notification of this type.
    fn notify(&self, notify_type: NotifyType) -> Option<&Notify> {
        self.notifies().find(|n| n.notify_type == notify_type)
    }

    /// The first error notification, which makes a response a failure.
    fn error_notify(&self) -> Option<&Notify> {
        self.notifies().find(|n| n.notify_type.is_error())
    }

    fn security_association(&self) -> Option<&SecurityAssociation> {
        first(self.payload_list(), |p| match p {
            Payload::SecurityAssociation(sa) => Some(sa),
            _ => None,
        })
    }

    fn key_exchange(&self) -> Option<&KeyExchange> {
        first(self.payload_list(), |p| match p {
            Payload::KeyExchange(ke) => Some(ke),
            _ => None,
        })
    }

    fn nonce(&self) -> Option<&Nonce> {
        first(self.payload_list(), |p| match p {
            Payload::Nonce(nonce) => Some(nonce),
            _ => None,
        })
    }

    fn id_initiator(&self) -> Option<&Identification> {
        first(self.payload_list(), |p| match p {
            Payload::IdInitiator(id) => Some(id),
            _ => None,
        })
    }

    fn id_responder(&self) -> Option<&Identification> {
        first(self.payload_list(), |p| match p {
            Payload::IdResponder(id) => Some(id),
            _ => None,
        })
    }

    fn auth(&self) -> Option<&Auth> {
        first(self.payload_list(), |p| match p {
            Payload::Auth(auth) => Some(auth),
            _ => None,
        })
    }

    fn ts_initiator(&self) -> Option<&TrafficSelectors> {
        first(self.payload_list(), |p| match p {
            Payload::TsInitiator(ts) => Some(ts),
            _ => None,
        })
    }

    fn ts_responder(&self) -> Option<&TrafficSelectors> {
        first(self.payload_list(), |p| match p {
            Payload::TsResponder(ts) => Some(ts),
            _ => None,
        })
    }

    fn deletes(&self) -> impl Iterator<Item = &Delete> {
        self.payload_list().iter().filter_map(|p| match p {
            Payload::Delete(d) => Some(d),
            _ => None,
        })
    }

    fn encrypted(&self) -> Option<&Encrypted> {
        first(self.payload_list(), |p| match p {
            Payload::Encrypted(sk) => Some(sk),
            _ => None,
        })
    }

    fn encrypted_fragment(&self) -> Option<&EncryptedFragment> {
        first(self.payload_list(), |p| match p {
            Payload::EncryptedFragment(skf) => Some(skf),
            _ => None,
        })
    }

    /// The first payload of an unknown type with the critical bit set: the engine answers
    /// UNSUPPORTED_CRITICAL_PAYLOAD carrying its type (RFC 7296 section 2.5).
    fn unsupported_critical(&self) -> Option<&UnknownPayload> {
        first(self.payload_list(), |p| match p {
            Payload::Unknown(u) if u.critical => Some(u),
            _ => None,
        })
    }
}

fn first<'a, T>(
    payloads: &'a [Payload],
    pick: impl Fn(&'a Payload) -> Option<&'a T>,
) -> Option<&'a T> {
    payloads.iter().find_map(pick)
}

impl PayloadLookup for [Payload] {
    fn payload_list(&self) -> &[Payload] {
        self
    }
}

impl PayloadLookup for Vec<Payload> {
    fn payload_list(&self) -> &[Payload] {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ike::codec::error::Expected;

    #[test]
    fn inner_chain_round_trip_and_lookup() {
        let payloads = vec![
            Payload::Notify(Notify::new(NotifyType::InitialContact, vec![])),
            Payload::Nonce(Nonce { data: vec![5; 16] }),
            Payload::VendorId(VendorId {
                data: b"routevpn".to_vec(),
            }),
        ];
        let (first_type, bytes) = encode_payloads(&payloads).unwrap();
        assert_eq!(first_type, PayloadType::Notify);
        #[rustfmt::skip]
        let expected_head = [
            40, 0, 0, 8, 0, 0, 0x40, 0x00, // Notify, next Nonce, INITIAL_CONTACT
            43, 0, 0, 20, // Nonce header, next Vendor ID
        ];
        assert_eq!(&bytes[..12], &expected_head);
        let decoded = decode_payloads(first_type, &bytes).unwrap();
        assert_eq!(decoded, payloads);
        assert!(decoded.notify(NotifyType::InitialContact).is_some());
        assert!(decoded.notify(NotifyType::Cookie).is_none());
        assert_eq!(decoded.nonce().unwrap().data.len(), 16);
        assert_eq!(decoded.payloads_of(PayloadType::VendorId).count(), 1);
        assert!(decoded.error_notify().is_none());
    }

    #[test]
    fn empty_chain() {
        assert_eq!(
            encode_payloads(&[]).unwrap(),
            (PayloadType::NoNextPayload, vec![])
        );
        assert_eq!(
            decode_payloads(PayloadType::NoNextPayload, &[]).unwrap(),
            vec![]
        );
        let e = decode_payloads(PayloadType::NoNextPayload, &[0]).unwrap_err();
        assert_eq!(e.kind, ErrorKind::TrailingBytes { count: 1 });
    }

    #[test]
    fn payload_length_is_checked_against_what_remains() {
        let e = decode_payloads(PayloadType::VendorId, &[0, 0, 0, 9, 1, 2, 3, 4]).unwrap_err();
        assert_eq!(e.location, Location::Payload(PayloadType::VendorId));
        assert_eq!((e.field, e.offset), ("payload length", 2));
        assert_eq!(
            e.kind,
            ErrorKind::BadLength {
                expected: Expected::Between(4, 8),
                got: 9
            }
        );
        let e = decode_payloads(PayloadType::VendorId, &[0, 0, 0, 3]).unwrap_err();
        assert_eq!(
            e.kind,
            ErrorKind::BadLength {
                expected: Expected::AtLeast(4),
                got: 3
            }
        );
        let e = decode_payloads(PayloadType::VendorId, &[0, 0, 0]).unwrap_err();
        assert_eq!(e.field, "payload length");
    }

    #[test]
    fn body_must_be_used_up_by_fixed_size_payloads() {
        // A TS payload whose selectors end before the payload does.
        let bytes = [0, 0, 0, 9, 0, 0, 0, 0, 0xaa];
        let e = decode_payloads(PayloadType::TsInitiator, &bytes).unwrap_err();
        assert_eq!(e.location, Location::Payload(PayloadType::TsInitiator));
    }

    #[test]
    fn unknown_payload_keeps_critical_bit() {
        let bytes = [0, 0x80, 0, 6, 0xab, 0xcd];
        let decoded = decode_payloads(PayloadType::Unknown(200), &bytes).unwrap();
        let unknown = decoded.unsupported_critical().unwrap();
        assert_eq!(unknown.payload_type, 200);
        assert_eq!(unknown.body, [0xab, 0xcd]);
        assert_eq!(
            encode_payloads(&decoded).unwrap(),
            (PayloadType::Unknown(200), bytes.to_vec())
        );
        // Known payloads ignore a critical bit on receipt and send it clear.
        let decoded = decode_payloads(PayloadType::VendorId, &[0, 0x80, 0, 4]).unwrap();
        assert_eq!(encode_payloads(&decoded).unwrap().1, [0, 0, 0, 4]);
        assert!(decoded.unsupported_critical().is_none());
        let shadow = Payload::Unknown(UnknownPayload {
            payload_type: 41,
            critical: false,
            body: vec![],
        });
        assert!(encode_payloads(&[shadow]).is_err());
    }

    #[test]
    fn sk_cannot_nest() {
        let e = decode_payloads(PayloadType::Encrypted, &[0, 0, 0, 4]).unwrap_err();
        assert_eq!(e.field, "payload type");
        let sk = Payload::Encrypted(Encrypted {
            first_payload: PayloadType::NoNextPayload,
            body: vec![],
        });
        assert!(encode_payloads(&[sk]).is_err());
    }
}
