//! Encrypted (SK, RFC 7296 section 3.14) and Encrypted Fragment (SKF, RFC 7383 section 2.5)
//! payloads: the outer structure only. Encryption and integrity are the crypto module's;
//! this module tells it which octets to authenticate and frames what it produces.

use std::ops::Range;

use super::error::{DecodeError, EncodeError, ErrorKind, Expected};
use super::header::Header;
use super::payload_type::PayloadType;
use super::reader::Reader;
use super::writer::fit;

/// Generic payload header: next payload, critical flag + reserved, payload length.
pub(crate) const GENERIC_HEADER_LEN: usize = 4;
/// Octets of the IKE header's Length field.
const MESSAGE_LENGTH_FIELD: Range<usize> = 24..28;
/// Octets of the Payload Length field of an SK / SKF payload right after the IKE header.
const SK_LENGTH_FIELD: Range<usize> = 30..32;

/// SK payload: the type of the first inner payload and the still-protected body.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Encrypted {
    /// Type of the first payload inside the plaintext ([`PayloadType::NoNextPayload`] for
    /// an empty INFORMATIONAL message).
    pub first_payload: PayloadType,
    /// Initialization Vector || ciphertext (padding and pad length included) || ICV.
    pub body: Vec<u8>,
}

impl Encrypted {
    pub(crate) fn read(first_payload: PayloadType, r: &mut Reader<'_>) -> Self {
        Encrypted {
            first_payload,
            body: r.rest().to_vec(),
        }
    }
}

/// SKF payload: one fragment of an SK payload.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EncryptedFragment {
    /// 1-based.
    pub fragment_number: u16,
    pub total_fragments: u16,
    /// The first inner payload's type in fragment 1, [`PayloadType::NoNextPayload`] in the
    /// others.
    pub first_payload: PayloadType,
    /// IV || ciphertext || ICV of this fragment.
    pub body: Vec<u8>,
}

impl EncryptedFragment {
    pub(crate) fn read(
        first_payload: PayloadType,
        r: &mut Reader<'_>,
    ) -> Result<Self, DecodeError> {
        let number_at = r.offset();
        let fragment_number = r.u16("fragment number")?;
        let total_fragments = r.u16("total fragments")?;
        if fragment_number == 0 || fragment_number > total_fragments {
            return Err(r.error_at(
                number_at,
                "fragment number",
                ErrorKind::BadValue {
                    expected: "1..=total fragments",
                    got: fragment_number.into(),
                },
            ));
        }
        Ok(EncryptedFragment {
            fragment_number,
            total_fragments,
            first_payload,
            body: r.rest().to_vec(),
        })
    }

    pub(crate) fn write_numbers(
        fragment_number: u16,
        total_fragments: u16,
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        if fragment_number == 0 || fragment_number > total_fragments {
            return Err(EncodeError::Invalid {
                field: "fragment number",
                reason: "must be 1..=total fragments",
            });
        }
        out.extend_from_slice(&fragment_number.to_be_bytes());
        out.extend_from_slice(&total_fragments.to_be_bytes());
        Ok(())
    }
}

/// Where the authenticated parts of a protected message lie within its octets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtectedLayout {
    /// IKE header (and any unprotected payloads) plus the SK / SKF payload header: the
    /// Associated Data of an AEAD cipher (RFC 5282 section 5.1).
    pub aad: Range<usize>,
    /// IV || ciphertext || ICV. A plain integrity algorithm covers `0..body.end - icv_len`.
    pub body: Range<usize>,
}

impl ProtectedLayout {
    /// Layout of a message of `total_len` octets whose last payload is SK / SKF with a body
    /// of `body_len` octets.
    pub(crate) fn ending_with(total_len: usize, body_len: usize) -> Option<Self> {
        let body_start = total_len.checked_sub(body_len)?;
        Some(ProtectedLayout {
            aad: 0..body_start,
            body: body_start..total_len,
        })
    }
}

/// The unencrypted frame of an outgoing SK / SKF message: the IKE header and the SK header,
/// with lengths set for the body the crypto module will append.
///
/// AEAD: `let aad = frame.set_body_len(n)?.to_vec();` encrypt with it, then
/// `frame.finish(&body)`. CBC + HMAC: set the length the same way, compute the ICV over
/// `aad || IV || ciphertext`, then `finish`.
#[derive(Clone, Debug)]
pub struct SkFrame {
    bytes: Vec<u8>,
    sk_header_len: usize,
    promised_body_len: Option<usize>,
}

impl SkFrame {
    /// Frame of a message with one SK payload; `header.next_payload` and `length` are set here.
    pub fn new(header: &Header, first_payload: PayloadType) -> Self {
        Self::build(header, PayloadType::Encrypted, first_payload, &[])
    }

    /// Frame of one fragment (RFC 7383).
    pub fn fragment(
        header: &Header,
        first_payload: PayloadType,
        fragment_number: u16,
        total_fragments: u16,
    ) -> Result<Self, EncodeError> {
        let mut numbers = Vec::with_capacity(4);
        EncryptedFragment::write_numbers(fragment_number, total_fragments, &mut numbers)?;
        Ok(Self::build(
            header,
            PayloadType::EncryptedFragment,
            first_payload,
            &numbers,
        ))
    }

    fn build(
        header: &Header,
        sk_type: PayloadType,
        first_payload: PayloadType,
        extra: &[u8],
    ) -> Self {
        let header = Header {
            next_payload: sk_type,
            ..*header
        };
        let mut bytes = header.encode().to_vec();
        bytes.extend_from_slice(&[first_payload.to_u8(), 0, 0, 0]);
        bytes.extend_from_slice(extra);
        let mut frame = SkFrame {
            sk_header_len: GENERIC_HEADER_LEN.saturating_add(extra.len()),
            bytes,
            promised_body_len: None,
        };
        // Header and SK header alone always fit their length fields.
        let _ = frame.write_lengths(0);
        frame
    }

    fn write_lengths(&mut self, body_len: usize) -> Result<(), EncodeError> {
        let sk_len: u16 = fit(
            self.sk_header_len.saturating_add(body_len),
            "SK payload length",
        )?;
        let total: u32 = fit(self.bytes.len().saturating_add(body_len), "message length")?;
        if let Some(field) = self.bytes.get_mut(MESSAGE_LENGTH_FIELD) {
            field.copy_from_slice(&total.to_be_bytes());
        }
        if let Some(field) = self.bytes.get_mut(SK_LENGTH_FIELD) {
            field.copy_from_slice(&sk_len.to_be_bytes());
        }
        Ok(())
    }

    /// Sets both length fields for a body of `body_len` octets and returns the AAD (the
    /// whole frame). Must be called before authenticating: lengths are covered by the ICV.
    pub fn set_body_len(&mut self, body_len: usize) -> Result<&[u8], EncodeError> {
        self.write_lengths(body_len)?;
        self.promised_body_len = Some(body_len);
        Ok(&self.bytes)
    }

    /// The frame as it stands: the AAD once [`SkFrame::set_body_len`] was called.
    pub fn aad(&self) -> &[u8] {
        &self.bytes
    }

    /// Seals `plaintext` into this frame: sets the lengths for a body of `sealed_len`
    /// octets, has `seal(aad, plaintext)` make the body, appends it. One path for SK and
    /// SKF; `seal` is the crypto module's (`SkCiphers::seal`), `sealed_len` its
    /// `sealed_len(plaintext.len())`.
    pub fn seal_with<E: From<EncodeError>>(
        mut self,
        plaintext: &[u8],
        sealed_len: usize,
        seal: impl FnOnce(&[u8], &[u8]) -> Result<Vec<u8>, E>,
    ) -> Result<Vec<u8>, E> {
        self.set_body_len(sealed_len)?;
        let body = seal(&self.bytes, plaintext)?;
        Ok(self.finish(&body)?)
    }

    /// Appends the body and returns the datagram. Fails if the body is not the length
    /// promised to [`SkFrame::set_body_len`], since the peer would reject the ICV.
    pub fn finish(mut self, body: &[u8]) -> Result<Vec<u8>, EncodeError> {
        if let Some(promised) = self.promised_body_len.filter(|n| *n != body.len()) {
            return Err(EncodeError::BadLength {
                field: "SK body",
                expected: Expected::Exactly(promised),
                got: body.len(),
            });
        }
        self.write_lengths(body.len())?;
        self.bytes.extend_from_slice(body);
        Ok(self.bytes)
    }
}

/// Rewrites the Length field of the IKE header with the actual length of `message`.
pub fn patch_message_length(message: &mut [u8]) -> Result<(), EncodeError> {
    let total: u32 = fit(message.len(), "message length")?;
    match message.get_mut(MESSAGE_LENGTH_FIELD) {
        Some(field) => {
            field.copy_from_slice(&total.to_be_bytes());
            Ok(())
        }
        None => Err(EncodeError::BadLength {
            field: "message",
            expected: Expected::AtLeast(Header::LEN),
            got: message.len(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ike::codec::header::{ExchangeType, Flags};

    fn header() -> Header {
        Header::new(
            ExchangeType::IkeAuth,
            1,
            2,
            1,
            Flags {
                initiator: true,
                ..Flags::default()
            },
        )
    }

    #[test]
    fn frame_sets_lengths_for_the_promised_body() {
        let mut frame = SkFrame::new(&header(), PayloadType::IdInitiator);
        let aad = frame.set_body_len(100).unwrap().to_vec();
        assert_eq!(aad.len(), 32);
        assert_eq!(aad[16], 46); // next payload: SK
        assert_eq!(&aad[24..28], &132u32.to_be_bytes());
        assert_eq!(&aad[28..32], &[35, 0, 0, 104]); // inner IDi, SK length 104
        let datagram = frame.finish(&[0xee; 100]).unwrap();
        assert_eq!(datagram.len(), 132);
        assert_eq!(&datagram[..32], aad.as_slice());
    }

    #[test]
    fn finish_refuses_a_body_of_another_length() {
        let mut frame = SkFrame::new(&header(), PayloadType::IdInitiator);
        frame.set_body_len(10).unwrap();
        assert!(frame.finish(&[0; 11]).is_err());
        let mut frame = SkFrame::new(&header(), PayloadType::IdInitiator);
        assert!(frame.set_body_len(65_532).is_err());
        // Without a promise, finish sets the lengths for what it gets.
        let frame = SkFrame::new(&header(), PayloadType::NoNextPayload);
        let datagram = frame.finish(&[1; 20]).unwrap();
        assert_eq!(&datagram[28..32], &[0, 0, 0, 24]);
    }

    #[test]
    fn fragment_frame_carries_numbers_in_the_aad() {
        let mut frame = SkFrame::fragment(&header(), PayloadType::NoNextPayload, 2, 3).unwrap();
        let aad = frame.set_body_len(8).unwrap();
        assert_eq!(aad.len(), 36);
        assert_eq!(aad[16], 53);
        assert_eq!(&aad[28..36], &[0, 0, 0, 16, 0, 2, 0, 3]);
        assert!(SkFrame::fragment(&header(), PayloadType::NoNextPayload, 0, 3).is_err());
        assert!(SkFrame::fragment(&header(), PayloadType::NoNextPayload, 4, 3).is_err());
    }

    #[test]
    fn patch_length() {
        let mut message = vec![0u8; 40];
        patch_message_length(&mut message).unwrap();
        assert_eq!(&message[24..28], &[0, 0, 0, 40]);
        assert!(patch_message_length(&mut [0u8; 27]).is_err());
    }

    #[test]
    fn layout_of_a_protected_message() {
        let layout = ProtectedLayout::ending_with(132, 100).unwrap();
        assert_eq!((layout.aad, layout.body), (0..32, 32..132));
        assert!(ProtectedLayout::ending_with(10, 11).is_none());
    }
}
