use super::*;
use crate::ike::codec::{
    decode_payloads, encode_payloads, ExchangeType, Flags, Message, Nonce, Payload, PayloadLookup,
};
use crate::ike::crypto::{IkeSaKeys, IkeSuite, Secret, SkCiphers};
use crate::proposal::{Encryption, Integrity, Prf};

fn header() -> Header {
    Header::new(ExchangeType::IkeAuth, 1, 2, 1, Flags::default())
}

/// AES-CBC + HMAC-SHA-256-128: IV 16, padded to 16 with a pad length octet, ICV 16.
fn cbc_sealed_len(len: usize) -> usize {
    16 + (len / 16 + 1) * 16 + 16
}

fn skf(number: u16, total: u16, first: PayloadType) -> EncryptedFragment {
    EncryptedFragment {
        fragment_number: number,
        total_fragments: total,
        first_payload: first,
        body: vec![],
    }
}

#[test]
fn message_budget_per_rfc_7383_defaults() {
    assert_eq!(
        max_message_len(IPV6_DEFAULT_MTU, true, true),
        1280 - 40 - 8 - 4
    );
    assert_eq!(
        max_message_len(IPV4_DEFAULT_MTU, false, false),
        576 - 20 - 8
    );
    assert_eq!(max_message_len(10, false, true), 0);
}

#[test]
fn fragments_are_as_large_as_fit_and_no_more() {
    let plaintext = vec![0xab; 3000];
    let max = max_message_len(IPV4_DEFAULT_MTU, false, true);
    let fragments = fragment(
        &header(),
        PayloadType::IdInitiator,
        &plaintext,
        max,
        cbc_sealed_len,
    )
    .unwrap();
    let chunk = fragments[0].plaintext.len();
    // 544 - 28 - 8 = 508 for the body: 16 IV + 16 ICV leave 476, 29 blocks = 464, so 463.
    assert_eq!(chunk, 463);
    assert!(28 + 8 + cbc_sealed_len(chunk) <= max);
    assert!(28 + 8 + cbc_sealed_len(chunk + 1) > max);
    assert_eq!(fragments.len(), 3000_usize.div_ceil(463));
    let joined: Vec<u8> = fragments
        .iter()
        .flat_map(|f| f.plaintext.to_vec())
        .collect();
    assert_eq!(joined, plaintext);
    for (i, f) in fragments.iter().enumerate() {
        let aad = f.frame.aad();
        assert_eq!(aad[16], 53, "SKF");
        let first = if i == 0 { 35 } else { 0 };
        assert_eq!(aad[28], first);
        assert_eq!(&aad[32..36], &[0, i as u8 + 1, 0, fragments.len() as u8]);
    }
    // An empty chain is one empty fragment; an MTU without room is an error.
    let one = fragment(
        &header(),
        PayloadType::NoNextPayload,
        &[],
        max,
        cbc_sealed_len,
    )
    .unwrap();
    assert_eq!((one.len(), one[0].plaintext.len()), (1, 0));
    assert!(fragment(
        &header(),
        PayloadType::Nonce,
        &plaintext,
        80,
        cbc_sealed_len
    )
    .is_err());
    // 28 + 8 + 48 (IV, one padded block, ICV): the smallest budget with room for plaintext,
    // up to 15 octets of it.
    let at_least = fragment(&header(), PayloadType::Nonce, &[1; 16], 84, cbc_sealed_len).unwrap();
    assert_eq!(at_least.len(), 2);
    assert_eq!(at_least[0].plaintext.len(), 15);
    assert!(fragment(&header(), PayloadType::Nonce, &[1; 16], 83, cbc_sealed_len).is_err());
    // More than 65535 fragments do not fit the field.
    let huge = vec![0; 70_000];
    // A budget of 37 octets and a cipher without overhead: one octet per fragment.
    let e = fragment(&header(), PayloadType::Nonce, &huge, 37, |n| n).unwrap_err();
    assert!(matches!(
        e,
        EncodeError::TooLong {
            field: "total fragments",
            ..
        }
    ));
}

#[test]
fn sealed_fragments_decrypt_and_reassemble_in_any_order() {
    let suite = IkeSuite::new(
        Encryption::AesCbc(128),
        Some(Integrity::HmacSha256_128),
        Prf::HmacSha256,
    )
    .unwrap();
    let keys = IkeSaKeys::derive(
        suite,
        &Secret::from_slice(&[7; 32]),
        &[1; 32],
        &[2; 32],
        &[3; 8],
        &[4; 8],
    )
    .unwrap();
    let mut initiator = SkCiphers::new(&keys, true).unwrap();
    let mut responder = SkCiphers::new(&keys, false).unwrap();
    let payloads: Vec<Payload> = (0..6)
        .map(|i| Payload::Nonce(Nonce { data: vec![i; 200] }))
        .collect();
    let (first, plaintext) = encode_payloads(&payloads).unwrap();
    let max = max_message_len(IPV4_DEFAULT_MTU, false, true);
    let fragments = fragment(&header(), first, &plaintext, max, |n| {
        initiator.outbound.sealed_len(n)
    })
    .unwrap();
    assert_eq!(fragments.len(), 3);
    let mut datagrams = Vec::new();
    for f in fragments {
        let sealed_len = initiator.outbound.sealed_len(f.plaintext.len());
        let datagram = f
            .frame
            .seal_with(f.plaintext, sealed_len, |aad, pt| {
                initiator
                    .seal(aad, pt)
                    .map_err(Box::<dyn std::error::Error>::from)
            })
            .unwrap();
        assert!(datagram.len() <= max);
        datagrams.push(datagram);
    }
    let mut reassembler = Reassembler::new(1, ReassemblyLimits::default());
    let order = [2, 0, 2, 1];
    let mut outcomes = Vec::new();
    for i in order {
        let message = Message::decode(&datagrams[i]).unwrap();
        let skf = message.encrypted_fragment().unwrap();
        let layout = message.protected_layout().unwrap();
        let opened = responder
            .open(&datagrams[i][layout.aad], &datagrams[i][layout.body])
            .unwrap();
        outcomes.push(reassembler.add(message.header.message_id, skf, opened));
    }
    assert_eq!(outcomes[0], Reassembly::Incomplete);
    assert_eq!(outcomes[1], Reassembly::Incomplete);
    assert_eq!(outcomes[2], Reassembly::Ignored(Ignored::Duplicate));
    let Reassembly::Complete {
        first_payload,
        plaintext,
    } = &outcomes[3]
    else {
        panic!("{:?}", outcomes[3]);
    };
    assert_eq!(
        decode_payloads(*first_payload, plaintext).unwrap(),
        payloads
    );
    assert_eq!(reassembler.held_bytes(), 0);
}

#[test]
fn reassembly_rules() {
    let limits = ReassemblyLimits {
        max_fragments: 4,
        max_bytes: 10,
    };
    let mut r = Reassembler::new(7, limits);
    let nonce = PayloadType::Nonce;
    let none = PayloadType::NoNextPayload;
    assert_eq!(
        r.add(8, &skf(1, 2, nonce), vec![1]),
        Reassembly::Ignored(Ignored::OtherMessage)
    );
    assert_eq!(
        r.add(7, &skf(0, 2, nonce), vec![1]),
        Reassembly::Ignored(Ignored::BadNumber)
    );
    assert_eq!(
        r.add(7, &skf(3, 2, none), vec![1]),
        Reassembly::Ignored(Ignored::BadNumber)
    );
    assert_eq!(
        r.add(7, &skf(2, 2, none), vec![2, 2]),
        Reassembly::Incomplete
    );
    // The sender re-fragmented smaller: the coarse fragment is dropped, the old split
    // ignored from now on.
    assert_eq!(r.add(7, &skf(3, 3, none), vec![3]), Reassembly::Incomplete);
    assert_eq!(r.held_bytes(), 1);
    assert_eq!(
        r.add(7, &skf(1, 2, nonce), vec![1]),
        Reassembly::Ignored(Ignored::StaleTotal)
    );
    assert_eq!(r.add(7, &skf(1, 3, nonce), vec![1]), Reassembly::Incomplete);
    assert_eq!(
        r.add(7, &skf(2, 3, nonce), vec![2]),
        Reassembly::Complete {
            first_payload: nonce,
            plaintext: vec![1, 2, 3]
        }
    );
    assert_eq!(
        r.add(7, &skf(2, 3, none), vec![2]),
        Reassembly::Ignored(Ignored::Duplicate)
    );

    // Limits: too many fragments or octets drop everything held.
    let mut r = Reassembler::new(7, limits);
    assert_eq!(
        r.add(7, &skf(1, 2, nonce), vec![0; 6]),
        Reassembly::Incomplete
    );
    assert_eq!(
        r.add(7, &skf(2, 2, none), vec![0; 5]),
        Reassembly::Ignored(Ignored::TooLarge)
    );
    assert_eq!(r.held_bytes(), 0);
    assert_eq!(
        r.add(7, &skf(2, 2, none), vec![0; 4]),
        Reassembly::Incomplete
    );
    assert_eq!(
        r.add(7, &skf(1, 5, nonce), vec![0]),
        Reassembly::Ignored(Ignored::TooManyFragments)
    );
    assert_eq!(r.held_bytes(), 0);
}
