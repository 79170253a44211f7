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
fn a_certificate_that_does_not_parse_is_refused_where_it_is() {
    let message = Message::new().section(
        "gw",
        Message::new().section("local", Message::new().list("certs", ["-----BEGIN"])),
    );
    let Err(error) = Loaded::default().with_conn(&message) else {
        panic!("a broken certificate accepted");
    };
    assert_eq!(error, "gw.local.certs: parsing X509 certificate failed");
}

fn load_key(kind: &str, der: Vec<u8>) -> Message {
    Message(vec![
        Element::KeyValue("type".into(), kind.as_bytes().to_vec()),
        Element::KeyValue("data".into(), der),
    ])
}

/// Keys as swanctl sends them (RSA PKCS#1, ECDSA SEC1, Ed25519 PKCS#8, all DER) are kept
/// in memory files as PKCS#8 PEM, under the id of their public key; refused ones say why
/// and never show the data.
#[test]
fn private_keys_load_from_swanctl_encodings_into_memory() {
    use openssl::ec::{EcGroup, EcKey};
    use openssl::nid::Nid;
    use openssl::pkey::PKey;
    use openssl::rsa::Rsa;
    let rsa = Rsa::generate(2048).unwrap();
    let ec = EcKey::generate(&EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap()).unwrap();
    let ed = PKey::generate_ed25519().unwrap();
    let loaded = Loaded::default();
    let (rsa_id, loaded) =
        (loaded.with_key(&load_key("rsa", rsa.private_key_to_der().unwrap()))).unwrap();
    let (_, loaded) =
        (loaded.with_key(&load_key("ecdsa", ec.private_key_to_der().unwrap()))).unwrap();
    let (_, loaded) =
        (loaded.with_key(&load_key("ed25519", ed.private_key_to_der().unwrap()))).unwrap();
    let (again, loaded) =
        (loaded.with_key(&load_key("rsa", rsa.private_key_to_der().unwrap()))).unwrap();
    assert_eq!(again, rsa_id);
    assert_eq!(loaded.key_ids().len(), 3);
    let first = &loaded.keys[0];
    let own = format!("/proc/{}/fd", std::process::id());
    assert!(first.file.path().starts_with(own));
    let pem = std::fs::read(first.file.path()).unwrap();
    let back = PKey::private_key_from_pem(&pem).unwrap();
    assert!(back.public_eq(&PKey::from_rsa(rsa.clone()).unwrap()));
    // Sealed: not even the daemon can change it.
    let mut writer = (std::fs::OpenOptions::new().append(true))
        .open(first.file.path())
        .unwrap();
    assert!(std::io::Write::write_all(&mut writer, b"x").is_err());

    let garbage = load_key("rsa", b"not a key but secret text".to_vec());
    let error = loaded.with_key(&garbage).unwrap_err();
    assert_eq!(
        error,
        "loading private key of type 'rsa' failed: not a valid rsa key"
    );
    let (rest, _) = loaded
        .without_key(&Message::new().kv("id", &rsa_id))
        .map(|l| (l.key_ids(), ()))
        .unwrap();
    assert!(!rest.contains(&rsa_id));
    assert!(loaded.without_key(&Message::new().kv("id", "00")).is_err());
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
