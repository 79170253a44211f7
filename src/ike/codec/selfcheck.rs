//! One function that decodes untrusted octets every way the engine does and asserts the
//! codec's invariants, shared by the `decode_message` fuzz target and the proptest, so
//! stable CI checks exactly what the fuzzer checks.

// Failing loudly is the point of this module.
#![allow(clippy::expect_used, clippy::panic)]

use super::encrypted::ProtectedLayout;
use super::header::Header;
use super::message::Message;
use super::non_esp::{classify_udp_4500, Udp4500};
use super::payload::{decode_payloads, encode_payloads, Payload};
use super::payload_type::PayloadType;

/// Decodes `data` as a datagram, as a header, as an inner payload chain (first octet = first
/// payload type) and as a port-4500 datagram. Whatever decodes must re-encode to octets of
/// the same length that decode to the same value. Panics only on a codec bug.
pub fn check_decode(data: &[u8]) {
    assert_eq!(Header::decode(data).is_ok(), data.len() >= Header::LEN);
    if let Ok(message) = Message::decode(data) {
        check_message(data, &message);
    }
    if let Some((&first, plaintext)) = data.split_first() {
        check_inner_chain(PayloadType::from_u8(first), plaintext);
    }
    if let Udp4500::Ike(message) = classify_udp_4500(data) {
        assert_eq!(data.get(4..), Some(message));
    }
}

fn check_message(data: &[u8], message: &Message) {
    assert_eq!(
        usize::try_from(message.header.length).ok(),
        Some(data.len())
    );
    let encoded = message.encode().expect("a decoded message re-encodes");
    assert_eq!(encoded.len(), data.len(), "re-encoding changed the length");
    assert_eq!(Message::decode(&encoded).as_ref(), Ok(message));
    if let Some(ProtectedLayout { aad, body }) = message.protected_layout() {
        assert_eq!(body.end, data.len());
        assert_eq!(aad.end, body.start);
        let sk_body = match message.payloads.last() {
            Some(Payload::Encrypted(sk)) => &sk.body,
            Some(Payload::EncryptedFragment(skf)) => &skf.body,
            _ => panic!("protected layout without an SK payload"),
        };
        assert_eq!(data.get(body), Some(sk_body.as_slice()));
    }
}

fn check_inner_chain(first: PayloadType, plaintext: &[u8]) {
    if let Ok(payloads) = decode_payloads(first, plaintext) {
        let (encoded_first, encoded) =
            encode_payloads(&payloads).expect("a decoded chain re-encodes");
        assert_eq!(encoded_first, first);
        assert_eq!(
            encoded.len(),
            plaintext.len(),
            "re-encoding changed the length"
        );
        assert_eq!(
            decode_payloads(encoded_first, &encoded).as_ref(),
            Ok(&payloads)
        );
    }
}
