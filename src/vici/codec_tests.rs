use proptest::prelude::*;

use super::*;

/// The example message of strongSwan's vici README, byte for byte.
#[test]
fn decodes_the_documented_example() {
    let mut bytes = vec![KEY_VALUE, 4];
    bytes.extend_from_slice(b"key1");
    bytes.extend_from_slice(&[0, 6]);
    bytes.extend_from_slice(b"value1");
    bytes.extend_from_slice(&[SECTION_START, 8]);
    bytes.extend_from_slice(b"section1");
    bytes.extend_from_slice(&[LIST_START, 5]);
    bytes.extend_from_slice(b"list1");
    bytes.extend_from_slice(&[LIST_ITEM, 0, 5]);
    bytes.extend_from_slice(b"item1");
    bytes.extend_from_slice(&[LIST_END, SECTION_END]);
    let expected = Message::new()
        .kv("key1", "value1")
        .section("section1", Message::new().list("list1", ["item1"]));
    assert_eq!(decode_message(&bytes), Ok(expected.clone()));
    assert_eq!(encode_message(&expected), Ok(bytes));
}

#[test]
fn packets_carry_their_type_and_name() {
    let request = Packet::Request {
        command: "list-sas".into(),
        message: Message::new().kv("noblock", "yes"),
    };
    let bytes = encode_packet(&request).unwrap();
    assert_eq!(
        &bytes[..5],
        &[0, 0, 0, (bytes.len() - 4) as u8, CMD_REQUEST]
    );
    assert_eq!(&bytes[5..14], b"\x08list-sas");
    assert_eq!(decode_packet(&bytes[4..]), Ok(request));
    assert_eq!(encode_packet(&Packet::Confirm), Ok(vec![0, 0, 0, 1, 5]));
}

#[test]
fn malformed_input_is_a_located_error() {
    assert_eq!(
        decode_message(&[KEY_VALUE, 4, b'k']),
        Err(DecodeError::Truncated(2))
    );
    assert_eq!(
        decode_message(&[SECTION_END]),
        Err(DecodeError::UnbalancedEnd(0))
    );
    assert_eq!(
        decode_message(&[SECTION_START, 1, b's']),
        Err(DecodeError::Unclosed(1))
    );
    assert_eq!(
        decode_message(&[LIST_ITEM, 0, 0]),
        Err(DecodeError::StrayItem(0))
    );
    assert_eq!(
        decode_message(&[LIST_START, 1, b'l', KEY_VALUE]),
        Err(DecodeError::NotAnItem(3))
    );
    assert_eq!(
        decode_message(&[KEY_VALUE, 1, 0xff, 0, 0]),
        Err(DecodeError::Name(1))
    );
    assert_eq!(
        decode_message(&[9]),
        Err(DecodeError::ElementType { kind: 9, at: 0 })
    );
    assert_eq!(decode_packet(&[8]), Err(DecodeError::PacketType(8)));
    assert_eq!(decode_packet(&[]), Err(DecodeError::Truncated(0)));
    let deep: Vec<u8> = [SECTION_START, 1, b's'].repeat(MAX_DEPTH + 1);
    assert_eq!(
        decode_message(&deep),
        Err(DecodeError::TooDeep(3 * MAX_DEPTH))
    );
}

#[test]
fn what_does_not_fit_is_not_encoded() {
    let long_name = "n".repeat(256);
    assert_eq!(
        encode_message(&Message::new().kv(&long_name, "")),
        Err(EncodeError::Name(256))
    );
    let long_value = "v".repeat(65536);
    assert_eq!(
        encode_message(&Message::new().kv("k", &long_value)),
        Err(EncodeError::Value(65536))
    );
    let huge = (0..10).fold(Message::new(), |m, _| m.kv("k", "v".repeat(60_000)));
    assert!(matches!(
        encode_packet(&Packet::Response(huge)),
        Err(EncodeError::TooLarge(_))
    ));
}

fn name() -> impl Strategy<Value = String> {
    "[a-z_-]{0,12}"
}

fn message() -> impl Strategy<Value = Message> {
    let leaf = prop_oneof![
        (name(), prop::collection::vec(any::<u8>(), 0..40))
            .prop_map(|(k, v)| Element::KeyValue(k, v)),
        (
            name(),
            prop::collection::vec(prop::collection::vec(any::<u8>(), 0..20), 0..4)
        )
            .prop_map(|(k, items)| Element::List(k, items)),
    ];
    let element = leaf.prop_recursive(4, 64, 6, |inner| {
        (name(), prop::collection::vec(inner, 0..6))
            .prop_map(|(k, elements)| Element::Section(k, Message(elements)))
    });
    prop::collection::vec(element, 0..8).prop_map(Message)
}

proptest! {
    #[test]
    fn messages_round_trip(message in message(), command in name()) {
        let bytes = encode_message(&message).unwrap();
        prop_assert_eq!(decode_message(&bytes), Ok(message.clone()));
        let packet = Packet::Event { name: command, message };
        let framed = encode_packet(&packet).unwrap();
        prop_assert_eq!(decode_packet(&framed[4..]), Ok(packet));
    }

    #[test]
    fn any_bytes_decode_or_fail_without_panicking(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        check_decode(&bytes);
    }

    #[test]
    fn mutated_messages_decode_or_fail_without_panicking(
        message in message(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = encode_message(&message).unwrap();
        for (at, value) in flips {
            if !bytes.is_empty() {
                let i = at.index(bytes.len());
                bytes[i] = value;
            }
        }
        check_decode(&bytes);
    }
}
