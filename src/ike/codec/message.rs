//! A whole IKE message: header and payload chain.

use super::encrypted::ProtectedLayout;
use super::error::{DecodeError, EncodeError, ErrorKind, Expected, Location};
use super::header::Header;
use super::payload::{read_chain, write_chain, ChainKind, Payload, PayloadLookup};
use super::reader::Reader;
use super::writer::fit;

/// An IKE message. A protected message ends with an [`Payload::Encrypted`] (or
/// [`Payload::EncryptedFragment`]) payload whose body the crypto module decrypts; its inner
/// chain is then read with [`decode_payloads`](super::decode_payloads).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Message {
    /// `next_payload` and `length` describe `payloads`: [`Message::new`] and
    /// [`Message::decode`] keep them consistent, [`Message::encode`] recomputes them.
    pub header: Header,
    pub payloads: Vec<Payload>,
}

impl Message {
    /// Builds a message, setting the header's `next_payload` and `length` from `payloads`.
    pub fn new(header: Header, payloads: Vec<Payload>) -> Result<Self, EncodeError> {
        let mut message = Message { header, payloads };
        message.header = message.encode_with_header()?.0;
        Ok(message)
    }

    /// Decodes a datagram (without the non-ESP marker). Checks the version is 2.x and the
    /// header length equals the datagram length; the payload chain must fill it exactly.
    pub fn decode(datagram: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(datagram, Location::Header);
        let header = Header::read(&mut r)?;
        if header.major_version() != 2 {
            return Err(r.error_at(
                17,
                "version",
                ErrorKind::UnsupportedMajorVersion {
                    major: header.major_version(),
                    minor: header.minor_version(),
                },
            ));
        }
        if usize::try_from(header.length).ok() != Some(datagram.len()) {
            return Err(r.error_at(
                24,
                "length",
                ErrorKind::BadLength {
                    expected: Expected::Exactly(datagram.len()),
                    got: usize::try_from(header.length).unwrap_or(usize::MAX),
                },
            ));
        }
        let payloads = read_chain(&mut r, header.next_payload, ChainKind::Message)?;
        Ok(Message { header, payloads })
    }

    /// Encodes the message; `next_payload` and `length` are computed, not taken from
    /// `header`. Only hand-built values that cannot be represented fail.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        Ok(self.encode_with_header()?.1)
    }

    fn encode_with_header(&self) -> Result<(Header, Vec<u8>), EncodeError> {
        let mut out = vec![0; Header::LEN];
        let next_payload = write_chain(&mut out, &self.payloads, ChainKind::Message)?;
        let header = Header {
            next_payload,
            length: fit(out.len(), "message length")?,
            ..self.header
        };
        if let Some(slot) = out.get_mut(..Header::LEN) {
            slot.copy_from_slice(&header.encode());
        }
        Ok((header, out))
    }

    /// For a protected message from [`Message::decode`] (or [`Message::new`]): the AAD and
    /// body ranges within its octets. `None` if it does not end with SK / SKF.
    pub fn protected_layout(&self) -> Option<ProtectedLayout> {
        let body_len = match self.payloads.last()? {
            Payload::Encrypted(sk) => sk.body.len(),
            Payload::EncryptedFragment(skf) => skf.body.len(),
            _ => return None,
        };
        ProtectedLayout::ending_with(usize::try_from(self.header.length).ok()?, body_len)
    }
}

impl PayloadLookup for Message {
    fn payload_list(&self) -> &[Payload] {
        &self.payloads
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ike::codec::encrypted::{Encrypted, EncryptedFragment, SkFrame};
    use crate::ike::codec::header::{ExchangeType, Flags};
    use crate::ike::codec::notify::{Notify, NotifyType};
    use crate::ike::codec::payload_type::PayloadType;

    fn informational(payloads: Vec<Payload>) -> Message {
        let header = Header::new(
            ExchangeType::Informational,
            0x1111,
            0x2222,
            7,
            Flags {
                initiator: true,
                ..Flags::default()
            },
        );
        Message::new(header, payloads).unwrap()
    }

    #[test]
    fn new_fills_in_next_payload_and_length() {
        let m = informational(vec![Payload::Notify(Notify::new(
            NotifyType::Cookie,
            vec![1; 8],
        ))]);
        assert_eq!(m.header.next_payload, PayloadType::Notify);
        assert_eq!(m.header.length, 28 + 8 + 8);
        let bytes = m.encode().unwrap();
        assert_eq!(bytes.len(), 44);
        assert_eq!(Message::decode(&bytes).unwrap(), m);
    }

    #[test]
    fn length_must_equal_datagram() {
        let bytes = informational(vec![]).encode().unwrap();
        let mut longer = bytes.clone();
        longer.push(0);
        let e = Message::decode(&longer).unwrap_err();
        assert_eq!(
            (e.location, e.field, e.offset),
            (Location::Header, "length", 24)
        );
        assert_eq!(
            e.kind,
            ErrorKind::BadLength {
                expected: Expected::Exactly(29),
                got: 28
            }
        );
        let mut shorter_claim = longer;
        shorter_claim[27] = 29;
        shorter_claim.push(0);
        assert!(Message::decode(&shorter_claim).is_err());
    }

    #[test]
    fn other_major_versions_are_reported_as_such() {
        let mut bytes = informational(vec![]).encode().unwrap();
        bytes[17] = 0x30;
        let e = Message::decode(&bytes).unwrap_err();
        assert!(e.is_unsupported_version());
        assert_eq!(
            e.kind,
            ErrorKind::UnsupportedMajorVersion { major: 3, minor: 0 }
        );
        // Minor versions are ignored (RFC 7296 section 2.5).
        bytes[17] = 0x21;
        assert_eq!(Message::decode(&bytes).unwrap().header.minor_version(), 1);
    }

    #[test]
    fn sk_message_layout_matches_the_frame() {
        let header = informational(vec![]).header;
        let mut frame = SkFrame::new(&header, PayloadType::Delete);
        let aad = frame.set_body_len(48).unwrap().to_vec();
        let datagram = frame.finish(&[0x5a; 48]).unwrap();
        let m = Message::decode(&datagram).unwrap();
        assert_eq!(
            m.payloads,
            [Payload::Encrypted(Encrypted {
                first_payload: PayloadType::Delete,
                body: vec![0x5a; 48]
            })]
        );
        let layout = m.protected_layout().unwrap();
        assert_eq!(&datagram[layout.aad.clone()], aad.as_slice());
        assert_eq!(layout.body, 32..80);
        assert_eq!(m.encode().unwrap(), datagram);
        assert!(informational(vec![]).protected_layout().is_none());
    }

    #[test]
    fn skf_message_round_trips() {
        let header = informational(vec![]).header;
        let mut frame = SkFrame::fragment(&header, PayloadType::NoNextPayload, 2, 2).unwrap();
        frame.set_body_len(20).unwrap();
        let datagram = frame.finish(&[1; 20]).unwrap();
        let m = Message::decode(&datagram).unwrap();
        let skf = m.encrypted_fragment().unwrap();
        assert_eq!(
            *skf,
            EncryptedFragment {
                fragment_number: 2,
                total_fragments: 2,
                first_payload: PayloadType::NoNextPayload,
                body: vec![1; 20],
            }
        );
        assert_eq!(m.protected_layout().unwrap().aad, 0..36);
        let mut bad = datagram.clone();
        bad[33] = 3; // fragment 3 of 2
        assert_eq!(Message::decode(&bad).unwrap_err().field, "fragment number");
    }

    #[test]
    fn sk_must_be_last() {
        let sk = Payload::Encrypted(Encrypted {
            first_payload: PayloadType::NoNextPayload,
            body: vec![],
        });
        let notify = Payload::Notify(Notify::new(NotifyType::Cookie, vec![]));
        let header = informational(vec![]).header;
        assert!(Message::new(header, vec![sk.clone(), notify.clone()]).is_err());
        let m = Message::new(header, vec![notify, sk]).unwrap();
        let mut bytes = m.encode().unwrap();
        // Stretch the message by four octets the SK payload does not cover.
        bytes.extend_from_slice(&[0, 0, 0, 4]);
        let len = bytes.len() as u32;
        bytes[24..28].copy_from_slice(&len.to_be_bytes());
        let e = Message::decode(&bytes).unwrap_err();
        assert_eq!(e.field, "data after the SK payload");
        assert_eq!(e.kind, ErrorKind::TrailingBytes { count: 4 });
    }
}
