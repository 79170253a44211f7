//! A VICI `load-conn` message as the settings tree swanctl.conf parses into, so that a
//! connection loaded over VICI goes through the same import mapping as one imported from a
//! file. swanctl sends a connection as the file's section, its comma lists as VICI lists.
//!
//! A VICI message has no lines: each key's location is the connection's pseudo-file
//! `vici:load-conn` and the key's ordinal in the message (depth first) as its line, so
//! that the importer's located errors still point at one key.

use std::path::Path;

use super::import::{self, credentials::Store};
use super::tree::{Location, Section, Value};
use crate::vici::codec::{self, Element, Message};

/// The pseudo-file the keys of a loaded connection are located in.
pub const ORIGIN: &str = "vici:load-conn";

/// Keys whose items swanctl sends as the files' content, not their names.
const CREDENTIAL_KEYS: [&str; 3] = ["certs", "cacerts", "pubkeys"];

/// Keeps a credential an auth round carries (its key, its content) where the importer can
/// read it; the file name the tree holds instead.
pub type Credentials<'a> = dyn FnMut(&str, &[u8]) -> Result<String, String> + 'a;

/// `root { connections { NAME { … } } }` of a `load-conn` message, which holds exactly
/// one section: the connection.
pub fn connection_tree(
    message: &Message,
    credentials: &mut Credentials<'_>,
) -> Result<Section, String> {
    let (name, body) = match message.0.as_slice() {
        [Element::Section(name, body)] => (name, body),
        _ => return Err("a load-conn message holds exactly one section, the connection".into()),
    };
    let mut counter = Counter(1);
    let root_at = counter.next();
    let mut connection = Section::new(name.clone(), counter.next());
    fill(&mut connection, body, &mut counter, name, credentials)?;
    let mut connections = Section::new("connections", root_at.clone());
    connections.add_section(connection);
    let mut root = Section::new("", root_at);
    root.add_section(connections);
    Ok(root)
}

/// Numbers the elements in the order they were sent.
struct Counter(usize);

impl Counter {
    fn next(&mut self) -> Location {
        let at = Location::new(Path::new(ORIGIN), self.0, 1);
        self.0 += 1;
        at
    }
}

fn fill(
    section: &mut Section,
    message: &Message,
    counter: &mut Counter,
    path: &str,
    credentials: &mut Credentials<'_>,
) -> Result<(), String> {
    let is_round = section.name.starts_with("local") || section.name.starts_with("remote");
    for element in &message.0 {
        match element {
            Element::Section(name, body) => {
                let mut sub = Section::new(name.clone(), counter.next());
                fill(
                    &mut sub,
                    body,
                    counter,
                    &format!("{path}.{name}"),
                    credentials,
                )?;
                section.add_section(sub);
            }
            Element::KeyValue(key, value)
                if is_round && CREDENTIAL_KEYS.contains(&key.as_str()) =>
            {
                let at = counter.next();
                let text = kept(std::slice::from_ref(value), path, key, credentials)?;
                section.set(key.clone(), Value { text, at });
            }
            Element::List(key, items) if is_round && CREDENTIAL_KEYS.contains(&key.as_str()) => {
                let at = counter.next();
                let text = kept(items, path, key, credentials)?;
                section.set(key.clone(), Value { text, at });
            }
            Element::KeyValue(key, value) => {
                let text = utf8(value, path, key)?.to_owned();
                let at = counter.next();
                section.set(key.clone(), Value { text, at });
            }
            Element::List(key, items) => {
                let at = counter.next();
                let mut texts = Vec::with_capacity(items.len());
                for item in items {
                    let text = utf8(item, path, key)?;
                    // The tree's lists are comma-separated: an item holding a comma
                    // would become two.
                    if text.contains(',') {
                        return Err(format!("{path}.{key}: list item \"{text}\" holds a comma"));
                    }
                    texts.push(text);
                }
                let text = texts.join(", ");
                section.set(key.clone(), Value { text, at });
            }
        }
    }
    Ok(())
}

/// Maps `data`, decoded as a VICI message, as `load-conn` would: for the fuzz target and
/// the tests, any outcome but a panic. The store is empty and points nowhere, so no file
/// of the host is read.
pub fn check_untrusted(data: &[u8]) {
    let Ok(message) = codec::decode_message(data) else {
        return;
    };
    let mut nowhere = |_: &str, _: &[u8]| Ok("/nonexistent/credential".to_owned());
    if let Ok(root) = connection_tree(&message, &mut nowhere) {
        let store = Store::empty(Path::new("/nonexistent"));
        let _ = import::import_with(&root, &store, import::Options::default());
    }
}

/// The names the credentials `items` are kept under, as the tree's comma list.
fn kept(
    items: &[Vec<u8>],
    path: &str,
    key: &str,
    credentials: &mut Credentials<'_>,
) -> Result<String, String> {
    let mut names = Vec::with_capacity(items.len());
    for item in items {
        names.push(credentials(key, item).map_err(|e| format!("{path}.{key}: {e}"))?);
    }
    Ok(names.join(", "))
}

fn utf8<'a>(bytes: &'a [u8], path: &str, key: &str) -> Result<&'a str, String> {
    std::str::from_utf8(bytes).map_err(|_| format!("{path}.{key}: the value is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(_: &str, _: &[u8]) -> Result<String, String> {
        Err("no credentials in this test".into())
    }

    fn conn(body: Message) -> Message {
        Message::new().section("gw", body)
    }

    #[test]
    fn sections_values_and_lists_become_the_tree_swanctl_conf_gives() {
        let body = Message::new()
            .list("remote_addrs", ["192.0.2.1"])
            .list(
                "proposals",
                ["aes256-sha256-modp2048", "aes128-sha256-x25519"],
            )
            .section("local", Message::new().kv("auth", "psk").kv("id", "a"))
            .section(
                "children",
                Message::new().section(
                    "net",
                    Message::new()
                        .list("remote_ts", ["10.2.0.0/16", "10.3.0.0/16"])
                        .kv("if_id_in", 7),
                ),
            );
        let root = connection_tree(&conn(body), &mut refused).unwrap();
        let gw = root.section("connections").unwrap().section("gw").unwrap();
        assert_eq!(gw.value("remote_addrs").unwrap().items(), ["192.0.2.1"]);
        assert_eq!(
            gw.value("proposals").unwrap().items(),
            ["aes256-sha256-modp2048", "aes128-sha256-x25519"]
        );
        assert_eq!(gw.section("local").unwrap().value("id").unwrap().text, "a");
        let net = gw.section("children").unwrap().section("net").unwrap();
        assert_eq!(
            net.value("remote_ts").unwrap().items(),
            ["10.2.0.0/16", "10.3.0.0/16"]
        );
        let if_id = net.value("if_id_in").unwrap();
        assert_eq!(if_id.text, "7");
        // Located by ordinal: root, connection, remote_addrs, proposals, local, auth, id,
        // children, net, remote_ts, if_id_in.
        assert_eq!(
            (if_id.at.file.as_ref(), if_id.at.line),
            (Path::new(ORIGIN), 11)
        );
    }

    /// Every byte of a realistic `load-conn` message replaced by a few values: mapped or
    /// refused, never a panic.
    #[test]
    fn mutated_connections_map_or_fail_without_panicking() {
        let child = Message::new()
            .list("local_ts", ["10.1.0.0/16"])
            .list("remote_ts", ["10.2.0.0/16"])
            .kv("mark_in", "0x52")
            .kv("mark_out", "0x52")
            .list("esp_proposals", ["aes128gcm16"]);
        let body = Message::new()
            .list("remote_addrs", ["198.51.100.2"])
            .section("local", Message::new().kv("auth", "psk").kv("id", "a"))
            .section("remote", Message::new().kv("auth", "psk"))
            .section("children", Message::new().section("net", child));
        let bytes = codec::encode_message(&conn(body)).unwrap();
        check_untrusted(&bytes);
        for i in 0..bytes.len() {
            for value in [0, 1, 2, 3, 4, 5, 6, b',', b'.', 0xff] {
                let mut mutated = bytes.clone();
                mutated[i] = value;
                check_untrusted(&mutated);
            }
        }
    }

    #[test]
    fn a_message_that_is_not_one_connection_is_refused() {
        assert!(connection_tree(&Message::new(), &mut refused).is_err());
        assert!(connection_tree(&Message::new().kv("gw", "x"), &mut refused).is_err());
        let two = conn(Message::new()).section("other", Message::new());
        assert!(connection_tree(&two, &mut refused).is_err());
    }

    #[test]
    fn values_that_the_tree_cannot_hold_are_refused_by_key() {
        let bad = conn(Message(vec![Element::KeyValue("id".into(), vec![0xff])]));
        assert_eq!(
            connection_tree(&bad, &mut refused).unwrap_err(),
            "gw.id: the value is not UTF-8"
        );
        let comma = conn(Message::new().list("local_ts", ["10.0.0.0/8,10.1.0.0/16"]));
        assert!(connection_tree(&comma, &mut refused)
            .unwrap_err()
            .starts_with("gw.local_ts: list item"));
    }
}
