//! Property tests: hostile octets never panic, and generated values round-trip exactly.

use std::net::IpAddr;

use proptest::collection::vec;
use proptest::prelude::*;

use super::*;

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..=max)
}

fn ip_pair() -> impl Strategy<Value = (IpAddr, IpAddr)> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<[u8; 4]>()).prop_map(|(a, b)| (IpAddr::from(a), IpAddr::from(b))),
        (any::<[u8; 16]>(), any::<[u8; 16]>())
            .prop_map(|(a, b)| (IpAddr::from(a), IpAddr::from(b))),
    ]
}

/// A protocol ID with an SPI of a size `allowed` accepts for it.
fn protocol_and_spi(
    allowed: fn(ProtocolId) -> Vec<usize>,
) -> impl Strategy<Value = (ProtocolId, Vec<u8>)> {
    any::<u8>()
        .prop_map(ProtocolId::from_u8)
        .prop_flat_map(move |protocol| {
            let sizes = allowed(protocol);
            (
                Just(protocol),
                proptest::sample::select(sizes).prop_flat_map(|n| vec(any::<u8>(), n)),
            )
        })
}

fn proposal_spi_sizes(protocol: ProtocolId) -> Vec<usize> {
    match protocol {
        ProtocolId::Ike => vec![0, 8],
        ProtocolId::Ah | ProtocolId::Esp => vec![4],
        _ => vec![0, 1, 4, 8, 16],
    }
}

fn notify_spi_sizes(protocol: ProtocolId) -> Vec<usize> {
    match protocol {
        ProtocolId::Ike => vec![0, 8],
        ProtocolId::Ah | ProtocolId::Esp => vec![0, 4],
        _ => vec![0, 3, 4, 8],
    }
}

fn attribute() -> impl Strategy<Value = Attribute> {
    let value = prop_oneof![
        any::<u16>().prop_map(AttributeValue::Short),
        bytes(12).prop_map(AttributeValue::Long),
    ];
    (0..=0x7fffu16, value).prop_map(|(attribute_type, value)| Attribute {
        attribute_type,
        value,
    })
}

fn transform() -> impl Strategy<Value = Transform> {
    (any::<u8>(), any::<u16>(), vec(attribute(), 0..3)).prop_map(|(t, id, attributes)| Transform {
        transform_type: TransformType::from_u8(t),
        id,
        attributes,
    })
}

fn security_association() -> impl Strategy<Value = SecurityAssociation> {
    let proposal = (
        any::<u8>(),
        protocol_and_spi(proposal_spi_sizes),
        vec(transform(), 0..6),
    )
        .prop_map(|(number, (protocol, spi), transforms)| Proposal {
            number,
            protocol,
            spi,
            transforms,
        });
    vec(proposal, 1..4).prop_map(|proposals| SecurityAssociation { proposals })
}

fn identity() -> impl Strategy<Value = Identity> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|a| Identity::Address(a.into())),
        any::<[u8; 16]>().prop_map(|a| Identity::Address(a.into())),
        ".{0,30}".prop_map(Identity::Fqdn),
        ".{0,30}".prop_map(Identity::Rfc822),
        bytes(40).prop_map(Identity::DerAsn1Dn),
        bytes(40).prop_map(Identity::KeyId),
        (
            any::<u8>().prop_filter("own variant", |t| ![1, 2, 3, 5, 9, 11].contains(t)),
            bytes(20)
        )
            .prop_map(|(id_type, data)| Identity::Other { id_type, data }),
    ]
}

fn notify() -> impl Strategy<Value = Notify> {
    (protocol_and_spi(notify_spi_sizes), any::<u16>(), bytes(40)).prop_map(
        |((protocol, spi), t, data)| Notify {
            protocol,
            spi,
            notify_type: NotifyType::from_u16(t),
            data,
        },
    )
}

fn delete() -> impl Strategy<Value = Delete> {
    prop_oneof![
        Just(Delete::ike_sa()),
        vec(any::<u32>(), 0..5).prop_map(|spis| Delete::esp(&spis)),
        (1..8u8, 0..4usize).prop_flat_map(|(size, count)| {
            vec(vec(any::<u8>(), usize::from(size)), count).prop_map(move |spis| Delete {
                protocol: ProtocolId::Other(200),
                spi_size: size,
                spis,
            })
        }),
    ]
}

fn traffic_selectors() -> impl Strategy<Value = TrafficSelectors> {
    // ip_pair gives both ends the same family, as the wire format requires.
    let range = (any::<u8>(), any::<u16>(), any::<u16>(), ip_pair()).prop_map(
        |(ip_protocol, start_port, end_port, (start_address, end_address))| {
            TrafficSelector::Range(AddressRange {
                ip_protocol,
                start_port,
                end_port,
                start_address,
                end_address,
            })
        },
    );
    let unknown = (
        any::<u8>().prop_filter("address range", |t| *t != 7 && *t != 8),
        any::<u8>(),
        bytes(20),
    )
        .prop_map(|(ts_type, second_octet, data)| TrafficSelector::Unknown {
            ts_type,
            second_octet,
            data,
        });
    vec(prop_oneof![4 => range, 1 => unknown], 0..5)
        .prop_map(|selectors| TrafficSelectors { selectors })
}

fn unknown_payload() -> impl Strategy<Value = UnknownPayload> {
    let unknown_type = any::<u8>().prop_filter("known type", |t| {
        matches!(PayloadType::from_u8(*t), PayloadType::Unknown(_))
    });
    (unknown_type, any::<bool>(), bytes(30)).prop_map(|(payload_type, critical, body)| {
        UnknownPayload {
            payload_type,
            critical,
            body,
        }
    })
}

/// Any payload but SK / SKF.
fn plain_payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        security_association().prop_map(Payload::SecurityAssociation),
        (any::<u16>(), bytes(300))
            .prop_map(|(group, data)| Payload::KeyExchange(KeyExchange { group, data })),
        identity().prop_map(|i| Payload::IdInitiator(Identification::new(i))),
        identity().prop_map(|i| Payload::IdResponder(Identification::new(i))),
        (any::<u8>(), bytes(50))
            .prop_map(|(encoding, data)| Payload::Certificate(Certificate { encoding, data })),
        (any::<u8>(), bytes(50)).prop_map(|(encoding, data)| Payload::CertificateRequest(
            Certificate { encoding, data }
        )),
        (any::<u8>(), bytes(64)).prop_map(|(m, data)| Payload::Auth(Auth {
            method: AuthMethod::from_u8(m),
            data
        })),
        vec(any::<u8>(), 16..=256).prop_map(|data| Payload::Nonce(Nonce { data })),
        notify().prop_map(Payload::Notify),
        delete().prop_map(Payload::Delete),
        bytes(30).prop_map(|data| Payload::VendorId(VendorId { data })),
        traffic_selectors().prop_map(Payload::TsInitiator),
        traffic_selectors().prop_map(Payload::TsResponder),
        (any::<u8>(), bytes(30)).prop_map(|(cfg_type, attributes)| Payload::Configuration(
            Configuration {
                cfg_type,
                attributes
            }
        )),
        bytes(30).prop_map(|message| Payload::Eap(Eap { message })),
        unknown_payload().prop_map(Payload::Unknown),
    ]
}

fn sk_payload() -> impl Strategy<Value = Payload> {
    let first = any::<u8>().prop_map(PayloadType::from_u8);
    prop_oneof![
        (first.clone(), bytes(100)).prop_map(|(first_payload, body)| Payload::Encrypted(
            Encrypted {
                first_payload,
                body
            }
        )),
        (first, 1..=u16::MAX, bytes(100)).prop_flat_map(|(first_payload, total, body)| {
            (1..=total).prop_map(move |number| {
                Payload::EncryptedFragment(EncryptedFragment {
                    fragment_number: number,
                    total_fragments: total,
                    first_payload,
                    body: body.clone(),
                })
            })
        }),
    ]
}

fn header() -> impl Strategy<Value = Header> {
    (
        any::<u64>(),
        any::<u64>(),
        0x20..=0x2fu8,
        any::<u8>(),
        any::<u8>(),
        any::<u32>(),
    )
        .prop_map(
            |(spi_i, spi_r, version, exchange, flags, message_id)| Header {
                version,
                ..Header::new(
                    ExchangeType::from_u8(exchange),
                    spi_i,
                    spi_r,
                    message_id,
                    Flags::from_u8(flags),
                )
            },
        )
}

fn message() -> impl Strategy<Value = Message> {
    (
        header(),
        vec(plain_payload(), 0..6),
        proptest::option::of(sk_payload()),
    )
        .prop_map(|(header, mut payloads, sk)| {
            payloads.extend(sk);
            Message::new(header, payloads).expect("generated messages are encodable")
        })
}

/// A valid message with a few octets overwritten and possibly cut short: reaches deeper
/// than random octets, which rarely get past the header checks.
fn mutated_message() -> impl Strategy<Value = Vec<u8>> {
    (
        message(),
        vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        any::<bool>(),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(m, edits, cut, cut_at)| {
            let mut bytes = m.encode().expect("generated messages are encodable");
            for (at, value) in edits {
                let i = at.index(bytes.len());
                bytes[i] = value;
            }
            if cut {
                bytes.truncate(cut_at.index(bytes.len() + 1));
                if bytes.len() >= Header::LEN {
                    patch_message_length(&mut bytes).expect("long enough");
                }
            }
            bytes
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_octets_never_panic(data in bytes(2048)) {
        check_decode(&data);
    }

    #[test]
    fn random_octets_behind_a_valid_header_never_panic(
        next in any::<u8>(), body in bytes(600)
    ) {
        let header = Header::new(ExchangeType::IkeAuth, 1, 2, 3, Flags::default());
        let mut data = Header { next_payload: PayloadType::from_u8(next), ..header }.encode().to_vec();
        data.extend_from_slice(&body);
        patch_message_length(&mut data).unwrap();
        check_decode(&data);
    }

    #[test]
    fn mutated_messages_never_panic(data in mutated_message()) {
        check_decode(&data);
    }
}

/// An IKE proposal with random additional key exchange slots (RFC 9370), NONE included.
fn proposal_with_additional_kes() -> impl Strategy<Value = crate::proposal::IkeProposal> {
    use crate::proposal::{DhGroup, IkeProposal, ADDITIONAL_KE_SLOTS};
    let method = prop_oneof![
        Just(None),
        (0..DhGroup::ALL.len()).prop_map(|i| Some(DhGroup::ALL[i]))
    ];
    vec(vec(method, 0..3), ADDITIONAL_KE_SLOTS).prop_map(|slots| {
        let mut p = IkeProposal {
            additional: Default::default(),
            ..crate::proposal::parse_ike("aes256gcm16-prfsha256-mlkem768", false).unwrap()
        };
        for (slot, methods) in p.additional.iter_mut().zip(slots) {
            for m in methods {
                if !slot.contains(&m) {
                    slot.push(m);
                }
            }
        }
        p
    })
}

proptest! {
    #[test]
    fn transform_types_round_trip(t in any::<u8>()) {
        prop_assert_eq!(TransformType::from_u8(t).to_u8(), t);
    }

    #[test]
    fn any_sa_payload_reads_back_without_panicking(sa in security_association()) {
        for p in &sa.proposals {
            let _ = p.ike_transforms();
            let _ = p.esp_transforms();
        }
    }

    #[test]
    fn additional_key_exchanges_round_trip(p in proposal_with_additional_kes()) {
        let sa = SecurityAssociation { proposals: vec![Proposal::from_ike(1, &p, None)] };
        let header = Header::new(ExchangeType::IkeSaInit, 1, 0, 0, Flags::default());
        let bytes = Message::new(header, vec![Payload::SecurityAssociation(sa)])
            .unwrap()
            .encode()
            .unwrap();
        let back = Message::decode(&bytes).unwrap();
        let Some(Payload::SecurityAssociation(sa)) = back.payloads.first() else {
            panic!("no SA payload");
        };
        let read = sa.proposals[0].ike_transforms().unwrap();
        prop_assert_eq!(read.supported, p);
        prop_assert!(read.unsupported.is_empty());
        // Cut anywhere, the message is refused, never a panic.
        for cut in 0..bytes.len() {
            let mut cut = bytes[..cut].to_vec();
            if cut.len() >= Header::LEN {
                patch_message_length(&mut cut).unwrap();
            }
            check_decode(&cut);
        }
    }
}

proptest! {
    #[test]
    fn messages_round_trip(m in message()) {
        let bytes = m.encode().unwrap();
        prop_assert_eq!(bytes.len(), m.header.length as usize);
        prop_assert_eq!(Message::decode(&bytes), Ok(m.clone()));
        check_decode(&bytes);
    }

    #[test]
    fn inner_chains_round_trip(payloads in vec(plain_payload(), 0..8)) {
        let (first, bytes) = encode_payloads(&payloads).unwrap();
        prop_assert_eq!(decode_payloads(first, &bytes), Ok(payloads));
    }

    #[test]
    fn headers_round_trip(h in header(), next in any::<u8>(), length in any::<u32>()) {
        let h = Header { next_payload: PayloadType::from_u8(next), length, ..h };
        prop_assert_eq!(Header::decode(&h.encode()), Ok(h));
    }

    #[test]
    fn sk_frames_decode_to_their_layout(
        h in header(), first in any::<u8>(), body in bytes(200), fragment in any::<bool>()
    ) {
        let first = PayloadType::from_u8(first);
        let mut frame = if fragment {
            SkFrame::fragment(&h, first, 1, 1).unwrap()
        } else {
            SkFrame::new(&h, first)
        };
        let aad = frame.set_body_len(body.len()).unwrap().to_vec();
        let datagram = frame.finish(&body).unwrap();
        let m = Message::decode(&datagram).unwrap();
        let layout = m.protected_layout().unwrap();
        prop_assert_eq!(&datagram[layout.aad.clone()], aad.as_slice());
        prop_assert_eq!(&datagram[layout.body], body.as_slice());
    }
}

/// Fragments of a chain, sealed with a CBC-like overhead, delivered with duplicates and in
/// any order, reassemble to the chain. 84 octets is the smallest budget with room for one
/// octet of plaintext (28 header + 8 SKF header + 16 IV + 16 padded block + 16 ICV).
fn shuffled_delivery() -> impl Strategy<Value = (Vec<u8>, usize, Vec<prop::sample::Index>)> {
    (
        bytes(3000),
        84..1500usize,
        vec(any::<prop::sample::Index>(), 0..100),
    )
}

proptest! {
    #[test]
    fn fragments_reassemble_whatever_the_order((plaintext, budget, picks) in shuffled_delivery()) {
        let sealed_len = |n: usize| 16 + (n / 16 + 1) * 16 + 16;
        let header = Header::new(ExchangeType::IkeAuth, 1, 2, 9, Flags::default());
        let fragments = fragment(&header, PayloadType::Nonce, &plaintext, budget, sealed_len).unwrap();
        let total = fragments.len();
        let mut reassembler = Reassembler::new(9, ReassemblyLimits { max_fragments: u16::MAX, max_bytes: 4096 });
        let skf = |i: usize| EncryptedFragment {
            fragment_number: i as u16 + 1,
            total_fragments: total as u16,
            first_payload: if i == 0 { PayloadType::Nonce } else { PayloadType::NoNextPayload },
            body: vec![],
        };
        // Random deliveries (duplicates included), then each fragment once in reverse.
        let order = picks.iter().map(|p| p.index(total)).chain((0..total).rev());
        let mut completed = None;
        for i in order {
            let outcome = reassembler.add(9, &skf(i), fragments[i].plaintext.to_vec());
            if let Reassembly::Complete { first_payload, plaintext } = outcome {
                prop_assert!(completed.is_none());
                completed = Some((first_payload, plaintext));
            }
        }
        prop_assert_eq!(completed, Some((PayloadType::Nonce, plaintext)));
    }
}
