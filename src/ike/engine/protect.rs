//! SK payload protection of whole messages, SKF fragments of messages too long for the path
//! (RFC 7383), and NAT detection hashes.

use std::net::{IpAddr, SocketAddr};

use crate::ike::codec::{
    decode_payloads, encode_payloads, fragment, EncryptedFragment, Header, Message, Payload,
    PayloadLookup, PayloadType, SkFrame,
};
use crate::ike::crypto::SkCiphers;

/// Why a protected message could not be built or opened. Received messages that fail are
/// dropped (RFC 7296 section 2.21.2), so the details only go to debug logs.
#[derive(Debug, thiserror::Error)]
pub enum ProtectError {
    #[error("encoding: {0}")]
    Encode(#[from] crate::ike::codec::EncodeError),
    #[error("decoding the inner payloads: {0:?}")]
    Decode(crate::ike::codec::DecodeError),
    #[error("crypto: {0}")]
    Crypto(#[from] crate::ike::crypto::CryptoError),
    #[error("not a protected message")]
    NotProtected,
}

/// IKE header and SK payload header.
const SK_OVERHEAD: usize = Header::LEN + 4;

/// Builds the datagrams of a protected message with `payloads` inside: one SK message or,
/// if `max_len` is given and that message would be longer, SKF fragments of at most
/// `max_len` octets each.
pub fn seal(
    ciphers: &mut SkCiphers,
    header: Header,
    payloads: &[Payload],
    max_len: Option<usize>,
) -> Result<Vec<Vec<u8>>, ProtectError> {
    let (first, plaintext) = encode_payloads(payloads)?;
    let sealed_len = |ciphers: &SkCiphers, n: usize| ciphers.outbound.sealed_len(n);
    let whole_len = SK_OVERHEAD.saturating_add(sealed_len(ciphers, plaintext.len()));
    let frames = match max_len.filter(|max| whole_len > *max) {
        None => vec![(SkFrame::new(&header, first), plaintext.as_slice())],
        Some(max) => fragment(&header, first, &plaintext, max, |n| sealed_len(ciphers, n))?
            .into_iter()
            .map(|f| (f.frame, f.plaintext))
            .collect(),
    };
    (frames.into_iter())
        .map(|(frame, part)| {
            let len = sealed_len(ciphers, part.len());
            frame.seal_with(part, len, |aad, p| {
                Ok::<_, ProtectError>(ciphers.seal(aad, p)?)
            })
        })
        .collect()
}

/// Checks and decrypts the SK or SKF payload of a received message: its plaintext.
fn decrypt(
    ciphers: &mut SkCiphers,
    message: &Message,
    datagram: &[u8],
) -> Result<Vec<u8>, ProtectError> {
    let layout = message
        .protected_layout()
        .ok_or(ProtectError::NotProtected)?;
    let aad = datagram.get(layout.aad).ok_or(ProtectError::NotProtected)?;
    let body = datagram
        .get(layout.body)
        .ok_or(ProtectError::NotProtected)?;
    Ok(ciphers.open(aad, body)?)
}

/// A received protected message opened: its inner payloads, and the octets they came in
/// (what IKE_INTERMEDIATE's IntAuth covers, exactly as the peer encoded them).
#[derive(Debug)]
pub struct Opened {
    pub payloads: Vec<Payload>,
    pub first_payload: PayloadType,
    pub plaintext: Vec<u8>,
}

impl Opened {
    pub fn decode(first_payload: PayloadType, plaintext: Vec<u8>) -> Result<Self, ProtectError> {
        let payloads = decode_payloads(first_payload, &plaintext).map_err(ProtectError::Decode)?;
        Ok(Opened {
            payloads,
            first_payload,
            plaintext,
        })
    }
}

/// Checks and decrypts a received protected message; returns its inner payloads.
#[cfg(test)]
pub fn open(
    ciphers: &mut SkCiphers,
    message: &Message,
    datagram: &[u8],
) -> Result<Vec<Payload>, ProtectError> {
    open_whole(ciphers, message, datagram).map(|opened| opened.payloads)
}

/// [`open`], keeping the plaintext.
pub fn open_whole(
    ciphers: &mut SkCiphers,
    message: &Message,
    datagram: &[u8],
) -> Result<Opened, ProtectError> {
    let sk = message.encrypted().ok_or(ProtectError::NotProtected)?;
    let plaintext = decrypt(ciphers, message, datagram)?;
    Opened::decode(sk.first_payload, plaintext)
}

/// Checks and decrypts one received fragment (RFC 7383 section 2.6: each on its own,
/// before it is kept): its SKF payload and plaintext part.
pub fn open_fragment<'m>(
    ciphers: &mut SkCiphers,
    message: &'m Message,
    datagram: &[u8],
) -> Result<(&'m EncryptedFragment, Vec<u8>), ProtectError> {
    let skf = message
        .encrypted_fragment()
        .ok_or(ProtectError::NotProtected)?;
    Ok((skf, decrypt(ciphers, message, datagram)?))
}

/// NAT_DETECTION_*_IP data: `SHA-1(SPIi | SPIr | IP | Port)` (RFC 7296 section 2.23).
pub fn nat_hash(spi_i: u64, spi_r: u64, addr: SocketAddr) -> Vec<u8> {
    let mut input = Vec::with_capacity(8 + 8 + 16 + 2);
    input.extend_from_slice(&spi_i.to_be_bytes());
    input.extend_from_slice(&spi_r.to_be_bytes());
    match addr.ip() {
        IpAddr::V4(a) => input.extend_from_slice(&a.octets()),
        IpAddr::V6(a) => input.extend_from_slice(&a.octets()),
    }
    input.extend_from_slice(&addr.port().to_be_bytes());
    openssl::sha::sha1(&input).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ike::codec::{ExchangeType, Flags, Notify, NotifyType};
    use crate::ike::crypto::{IkeSaKeys, IkeSuite, Secret};
    use crate::proposal::{Encryption, Integrity, Prf};

    fn pair(suite: IkeSuite) -> (SkCiphers, SkCiphers) {
        let gir = Secret::from_slice(&[7; 32]);
        let keys = IkeSaKeys::derive(suite, &gir, &[1; 32], &[2; 32], &[3; 8], &[4; 8]).unwrap();
        (
            SkCiphers::new(&keys, true).unwrap(),
            SkCiphers::new(&keys, false).unwrap(),
        )
    }

    #[test]
    fn seal_then_open_both_cipher_kinds() {
        let suites = [
            IkeSuite::new(Encryption::AesGcm16(128), None, Prf::HmacSha256).unwrap(),
            IkeSuite::new(
                Encryption::AesCbc(256),
                Some(Integrity::HmacSha256_128),
                Prf::HmacSha256,
            )
            .unwrap(),
        ];
        for suite in suites {
            let (mut i, mut r) = pair(suite);
            let header = Header::new(ExchangeType::Informational, 1, 2, 5, Flags::default());
            let payloads = vec![Payload::Notify(Notify::new(
                NotifyType::InitialContact,
                vec![],
            ))];
            let [datagram] = seal(&mut i, header, &payloads, None)
                .unwrap()
                .try_into()
                .unwrap();
            let message = Message::decode(&datagram).unwrap();
            assert_eq!(message.header.message_id, 5);
            assert_eq!(open(&mut r, &message, &datagram).unwrap(), payloads);
            // The sender's own inbound keys are the other direction's.
            assert!(open(&mut i, &message, &datagram).is_err());
            let mut tampered = datagram.clone();
            let last = tampered.len() - 1;
            tampered[last] ^= 1;
            let message = Message::decode(&tampered).unwrap();
            assert!(open(&mut r, &message, &tampered).is_err());
            // Empty INFORMATIONAL.
            let [datagram] = seal(&mut r, header, &[], Some(100))
                .unwrap()
                .try_into()
                .unwrap();
            let message = Message::decode(&datagram).unwrap();
            assert!(open(&mut i, &message, &datagram).unwrap().is_empty());
        }
    }

    #[test]
    fn nat_hash_covers_spis_address_and_port() {
        let a: SocketAddr = "192.0.2.1:500".parse().unwrap();
        let b: SocketAddr = "192.0.2.1:4500".parse().unwrap();
        let h = nat_hash(1, 0, a);
        assert_eq!(h.len(), 20);
        assert_ne!(h, nat_hash(1, 0, b));
        assert_ne!(h, nat_hash(1, 2, a));
        // The hash input is SPIi | SPIr | address | port, all in network order.
        let mut input = vec![0u8; 7];
        input.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 0, 192, 0, 2, 1, 1, 0xf4]);
        assert_eq!(h, openssl::sha::sha1(&input).to_vec());
    }
}
