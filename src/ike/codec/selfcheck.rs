//! One function that decodes untrusted octets every way the engine does and asserts the
//! codec's invariants, shared by the `decode_message` fuzz target and the proptest, so
//! stable CI checks exactly what the fuzzer checks.

// Failing loudly is the point of this module.
#![allow(clippy::expect_used, clippy::panic)]

use super::encrypted::{EncryptedFragment, ProtectedLayout};
use super::fragments::{Reassembler, Reassembly, ReassemblyLimits};
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
    check_reassembly(data);
}

/// Feeds `data` to a [`Reassembler`] as fragment records (number, total: one octet each;
/// a length octet; that many plaintext octets) and checks it never holds more than its
/// limits.
fn check_reassembly(data: &[u8]) {
    let limits = ReassemblyLimits {
        max_fragments: 8,
        max_bytes: 256,
    };
    let mut reassembler = Reassembler::new(0, limits);
    let mut rest = data;
    while let [number, total, len, tail @ ..] = rest {
        let take = usize::from(*len).min(tail.len());
        let (plaintext, tail) = tail.split_at(take);
        rest = tail;
        let skf = EncryptedFragment {
            fragment_number: (*number).into(),
            total_fragments: (*total).into(),
            first_payload: PayloadType::Nonce,
            body: Vec::new(),
        };
        let outcome = reassembler.add(0, &skf, plaintext.to_vec());
        assert!(reassembler.held_bytes() <= limits.max_bytes);
        if let Reassembly::Complete { plaintext, .. } = outcome {
            assert!(plaintext.len() <= limits.max_bytes);
            assert!(skf.total_fragments <= limits.max_fragments);
        }
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
