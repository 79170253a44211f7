//! A realistic IKE_SA_INIT request laid out by hand from the RFC 7296 diagrams:
//! HDR, SA (AES-CBC-256 / HMAC-SHA2-256-128 / PRF-HMAC-SHA2-256 / MODP-2048), KE (256
//! octets), Ni (32 octets), N(NAT_DETECTION_SOURCE_IP), N(NAT_DETECTION_DESTINATION_IP),
//! N(SIGNATURE_HASH_ALGORITHMS).

use super::*;
use crate::proposal::{parse_ike, DhGroup};

const TOTAL_LEN: usize = 28 + 48 + 264 + 36 + 28 + 28 + 16;

fn request_bytes() -> Vec<u8> {
    let mut m = Vec::new();
    #[rustfmt::skip]
    m.extend_from_slice(&[
        // IKE header
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, // initiator SPI
        0, 0, 0, 0, 0, 0, 0, 0,                         // responder SPI: not yet known
        33, 0x20, 34, 0x08,                             // next SA, v2.0, IKE_SA_INIT, I flag
        0, 0, 0, 0,                                     // message ID 0
        0, 0, (TOTAL_LEN >> 8) as u8, TOTAL_LEN as u8,  // length 448
        // SA payload
        34, 0, 0, 48,                                   // next KE, length 48
        0, 0, 0, 44, 1, 1, 0, 4,                        // last proposal, #1, IKE, no SPI, 4 transforms
        3, 0, 0, 12, 1, 0, 0, 12, 0x80, 14, 0x01, 0x00, // ENCR_AES_CBC, key length 256
        3, 0, 0, 8, 3, 0, 0, 12,                        // AUTH_HMAC_SHA2_256_128
        3, 0, 0, 8, 2, 0, 0, 5,                         // PRF_HMAC_SHA2_256
        0, 0, 0, 8, 4, 0, 0, 14,                        // last: DH group 14 (MODP-2048)
        // KE payload
        40, 0, 0x01, 0x08, 0, 14, 0, 0,                 // next Nonce, length 264, group 14
    ]);
    m.extend((0..=255u8).rev()); // 256-octet public value
    m.extend_from_slice(&[41, 0, 0, 36]); // Nonce: next Notify, length 36
    m.extend(0x80..0xa0u8); // 32-octet nonce
    #[rustfmt::skip]
    m.extend_from_slice(&[
        41, 0, 0, 28, 0, 0, 0x40, 0x04,                 // N(NAT_DETECTION_SOURCE_IP)
    ]);
    m.extend_from_slice(&[0x11; 20]); // SHA-1 of SPIs, address and port
    m.extend_from_slice(&[41, 0, 0, 28, 0, 0, 0x40, 0x05]); // N(NAT_DETECTION_DESTINATION_IP)
    m.extend_from_slice(&[0x22; 20]);
    #[rustfmt::skip]
    m.extend_from_slice(&[
        0, 0, 0, 16, 0, 0, 0x40, 0x2f,                  // last: N(SIGNATURE_HASH_ALGORITHMS)
        0, 2, 0, 3, 0, 4, 0, 5,                         // SHA2-256, -384, -512, Identity
    ]);
    m
}

fn expected_message() -> Message {
    let header = Header::new(
        ExchangeType::IkeSaInit,
        0x0011_2233_4455_6677,
        0,
        0,
        Flags {
            initiator: true,
            ..Flags::default()
        },
    );
    let mut proposal = Proposal::from_ike(
        1,
        &parse_ike("aes256-sha256-prfsha256-modp2048", false).unwrap(),
        None,
    );
    // The vector orders INTEG before PRF, as many implementations do; order is kept.
    proposal.transforms.swap(1, 2);
    let payloads = vec![
        Payload::SecurityAssociation(SecurityAssociation {
            proposals: vec![proposal],
        }),
        Payload::KeyExchange(KeyExchange::new(
            DhGroup::Modp2048,
            (0..=255u8).rev().collect(),
        )),
        Payload::Nonce(Nonce {
            data: (0x80..0xa0u8).collect(),
        }),
        Payload::Notify(Notify::new(
            NotifyType::NatDetectionSourceIp,
            vec![0x11; 20],
        )),
        Payload::Notify(Notify::new(
            NotifyType::NatDetectionDestinationIp,
            vec![0x22; 20],
        )),
        Payload::Notify(Notify::signature_hash_algorithms(&[2, 3, 4, 5])),
    ];
    Message::new(header, payloads).unwrap()
}

#[test]
fn decodes_field_by_field() {
    let bytes = request_bytes();
    assert_eq!(bytes.len(), TOTAL_LEN);
    let m = Message::decode(&bytes).unwrap();
    assert_eq!(m.header.initiator_spi, 0x0011_2233_4455_6677);
    assert_eq!(m.header.responder_spi, 0);
    assert_eq!(m.header.exchange, ExchangeType::IkeSaInit);
    assert!(m.header.flags.initiator && !m.header.flags.response);
    assert_eq!(m.header.length as usize, TOTAL_LEN);
    assert_eq!(m.payloads.len(), 6);

    let sa = m.security_association().unwrap();
    assert_eq!(sa.proposals.len(), 1);
    let offered = sa.proposals[0].ike_transforms().unwrap();
    assert_eq!(
        offered.supported,
        parse_ike("aes256-sha256-prfsha256-modp2048", false).unwrap()
    );
    assert!(offered.unsupported.is_empty());

    let ke = m.key_exchange().unwrap();
    assert_eq!(
        (ke.dh_group(), ke.data.len()),
        (Some(DhGroup::Modp2048), 256)
    );
    assert_eq!(ke.data.len(), DhGroup::Modp2048.public_len());
    assert_eq!(m.nonce().unwrap().data.len(), 32);
    assert_eq!(
        m.notify(NotifyType::NatDetectionSourceIp).unwrap().data,
        [0x11; 20]
    );
    assert_eq!(
        m.notify(NotifyType::NatDetectionDestinationIp)
            .unwrap()
            .data,
        [0x22; 20]
    );
    let hashes = m.notify(NotifyType::SignatureHashAlgorithms).unwrap();
    assert_eq!(hashes.hash_algorithms(), Some(vec![2, 3, 4, 5]));
    assert!(m.notify(NotifyType::Cookie).is_none());
    assert!(m.error_notify().is_none());
    assert!(m.unsupported_critical().is_none());
    assert!(m.protected_layout().is_none());
}

#[test]
fn built_message_matches_the_vector_octet_for_octet() {
    let bytes = request_bytes();
    let built = expected_message();
    assert_eq!(Message::decode(&bytes).unwrap(), built);
    assert_eq!(built.encode().unwrap(), bytes);
}

#[test]
fn over_udp_4500() {
    let datagram = add_non_esp_marker(&request_bytes());
    let Udp4500::Ike(message) = classify_udp_4500(&datagram) else {
        panic!("not recognised as IKE");
    };
    assert_eq!(Message::decode(message).unwrap(), expected_message());
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = request_bytes();
    for len in 0..bytes.len() {
        assert!(Message::decode(&bytes[..len]).is_err(), "prefix {len}");
        // Even with the length field adjusted to the truncated size.
        let mut cut = bytes[..len].to_vec();
        if len >= Header::LEN {
            patch_message_length(&mut cut).unwrap();
            assert!(Message::decode(&cut).is_err(), "patched prefix {len}");
        }
    }
}

#[test]
fn every_single_octet_change_decodes_or_fails_cleanly() {
    let bytes = request_bytes();
    for at in 0..bytes.len() {
        for value in [0x00, 0x01, 0x03, 0x7f, 0x80, 0xff] {
            let mut mutated = bytes.clone();
            mutated[at] = value;
            selfcheck::check_decode(&mutated);
        }
    }
}

#[test]
fn errors_point_at_the_field() {
    let mut bytes = request_bytes();
    bytes[76 + 2] = 0x02; // KE length 520: more than is left
    let e = Message::decode(&bytes).unwrap_err();
    assert_eq!(e.location, Location::Payload(PayloadType::KeyExchange));
    assert_eq!((e.field, e.offset), ("payload length", 78));
    assert_eq!(
        e.to_string(),
        "KE payload, payload length at offset 78: bad length: expected 4..=372, got 520"
    );

    let mut bytes = request_bytes();
    bytes[340 + 3] = 12; // Nonce of 8 octets
    bytes.drain(352..376);
    patch_message_length(&mut bytes).unwrap();
    let e = Message::decode(&bytes).unwrap_err();
    assert_eq!(e.location, Location::Payload(PayloadType::Nonce));
    assert_eq!(
        e.kind,
        ErrorKind::BadLength {
            expected: Expected::Between(16, 256),
            got: 8
        }
    );
}
