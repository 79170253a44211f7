use super::*;

/// A `load-conn` message as swanctl sends it for a PSK connection to 198.51.100.2.
fn conn(name: &str, child: Message) -> Message {
    Message::new().section(
        name,
        Message::new()
            .list("local_addrs", ["192.0.2.1"])
            .list("remote_addrs", ["198.51.100.2"])
            .section("local", Message::new().kv("auth", "psk").kv("id", "gw-a"))
            .section("remote", Message::new().kv("auth", "psk").kv("id", "gw-b"))
            .section("children", Message::new().section("net", child)),
    )
}

fn vti_child() -> Message {
    Message::new()
        .list("local_ts", ["10.1.0.0/16"])
        .list("remote_ts", ["10.2.0.0/16"])
        .kv("mark_in", "0x52")
        .kv("mark_out", "0x52")
}

fn shared(id: &str, owners: &[&str], key: &[u8]) -> Message {
    Message(vec![
        Element::KeyValue("type".into(), b"IKE".to_vec()),
        Element::KeyValue("data".into(), key.to_vec()),
        Element::List(
            "owners".into(),
            owners.iter().map(|o| o.as_bytes().to_vec()).collect(),
        ),
        Element::KeyValue("id".into(), id.as_bytes().to_vec()),
    ])
}

#[test]
fn a_loaded_connection_takes_the_key_its_identities_own() {
    let loaded = Loaded::default()
        .with_shared(&shared("ike-other", &["someone-else"], b"wrong"))
        .unwrap()
        .with_shared(&shared("ike-gw", &["gw-b"], b"s3cret"))
        .unwrap();
    let (name, loaded) = loaded.with_conn(&conn("gw", vti_child())).unwrap();
    assert_eq!(name, "gw");
    let mapped = loaded.mapped();
    assert!(mapped.unusable.is_empty(), "{:?}", mapped.unusable);
    let profiles = mapped.profiles;
    let [profile] = profiles.as_slice() else {
        panic!("one profile expected: {profiles:?}");
    };
    assert!(profile.text.contains("kind = \"vti\""), "{}", profile.text);
    let [secret] = profile.secrets.as_slice() else {
        panic!("one secret expected");
    };
    assert_eq!(secret.content.as_slice(), b"0x733363726574");
    assert_eq!(loaded.shared_ids(), ["ike-other", "ike-gw"]);
}

#[test]
fn a_connection_without_its_key_is_refused_with_where_and_why() {
    let (_, loaded) = Loaded::default()
        .with_conn(&conn("gw", vti_child()))
        .unwrap();
    let [(_, error)] = loaded.mapped().unusable.try_into().unwrap();
    assert!(
        error.starts_with("vici:load-conn:2:1: no secrets.ike-* for identities gw-a and gw-b"),
        "{error}"
    );
}

#[test]
fn an_option_routevpn_cannot_carry_is_refused_by_name() {
    let loaded = Loaded::default()
        .with_shared(&shared("ike-gw", &[], b"k"))
        .unwrap();
    let child = vti_child().kv("mode", "beet");
    let (_, loaded) = loaded.with_conn(&conn("gw", child)).unwrap();
    let [(_, error)] = loaded.mapped().unusable.try_into().unwrap();
    assert!(error.contains("mode = beet"), "{error}");
}

#[test]
fn keys_are_replaced_and_unloaded_by_unique_id_and_never_shown() {
    let loaded = Loaded::default()
        .with_shared(&shared("ike-gw", &["gw-b"], b"first"))
        .unwrap()
        .with_shared(&shared("ike-gw", &["gw-b"], b"second"))
        .unwrap();
    assert_eq!(loaded.shared_ids(), ["ike-gw"]);
    let unload = Message::new().kv("id", "ike-gw");
    assert!(loaded
        .without_shared(&unload)
        .unwrap()
        .shared_ids()
        .is_empty());
    let error = Loaded::default().without_shared(&unload).unwrap_err();
    assert_eq!(error, "no shared key found for unique id 'ike-gw'");
}

#[test]
fn other_shared_key_types_are_refused_clearly() {
    for kind in ["EAP", "XAUTH", "PPK"] {
        let mut message = shared("x", &[], b"k");
        message.0[0] = Element::KeyValue("type".into(), kind.as_bytes().to_vec());
        let error = Loaded::default().with_shared(&message).unwrap_err();
        assert!(
            error.contains(&format!("shared key type {kind}")),
            "{error}"
        );
    }
}

#[test]
fn certificates_over_vici_are_refused_clearly() {
    let message = Message::new().section(
        "gw",
        Message::new().section("local", Message::new().list("certs", ["-----BEGIN"])),
    );
    let Err(error) = Loaded::default().with_conn(&message) else {
        panic!("certificates accepted");
    };
    assert!(
        error.starts_with("gw.local.certs: not supported"),
        "{error}"
    );
}

#[test]
fn unloading_removes_only_the_named_connection() {
    let (_, loaded) = Loaded::default()
        .with_conn(&conn("one", vti_child()))
        .unwrap();
    let (_, loaded) = loaded.with_conn(&conn("two", vti_child())).unwrap();
    let (name, left) = loaded
        .without_conn(&Message::new().kv("name", "one"))
        .unwrap();
    assert_eq!(name, "one");
    assert_eq!(left.conn_names().collect::<Vec<_>>(), ["two"]);
    let Err(error) = left.without_conn(&Message::new().kv("name", "one")) else {
        panic!("unloaded twice");
    };
    assert_eq!(error, "unloading connection 'one' failed: not loaded");
}
