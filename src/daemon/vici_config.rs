//! Connections and pre-shared keys loaded over VICI (`swanctl --load-all`): run-time
//! configuration like charon's, kept in memory and gone when the daemon restarts. Each
//! connection is mapped by the swanctl.conf importer, with the loaded keys as its
//! `secrets`, into a profile that the daemon validates and applies beside its own.

use std::collections::BTreeMap;
use std::path::Path;

use zeroize::Zeroizing;

use crate::swanctl::import::credentials::{Psk, Store};
use crate::swanctl::import::{self, ImportedProfile};
use crate::swanctl::{vici, Section};
use crate::vici::codec::{Element, Message};

/// Shared key types charon knows and routevpn has no use for.
const OTHER_SHARED: &[&str] = &["EAP", "XAUTH", "NTLM", "PPK", "PIN"];

/// What has been loaded; changed only once the daemon accepted the result.
#[derive(Clone, Default)]
pub struct Loaded {
    /// By name, each as the settings tree its `load-conn` carried.
    conns: BTreeMap<String, Section>,
    /// IKE pre-shared keys by their unique id, in load order of first appearance.
    shared: Vec<(String, Psk)>,
}

/// Names and unique ids only: the keys stay out of every log and message.
impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded")
            .field("conns", &self.conns.keys().collect::<Vec<_>>())
            .field("shared", &self.shared_ids())
            .finish()
    }
}

impl Loaded {
    pub fn has_conn(&self, name: &str) -> bool {
        self.conns.contains_key(name)
    }

    pub fn conn_names(&self) -> impl Iterator<Item = &String> {
        self.conns.keys()
    }

    /// `get-shared`: the unique ids, never a key.
    pub fn shared_ids(&self) -> Vec<String> {
        self.shared.iter().map(|(id, _)| id.clone()).collect()
    }

    /// With the connection of a `load-conn` message added (replacing one of its name).
    pub fn with_conn(&self, message: &Message) -> Result<(String, Loaded), String> {
        let root = vici::connection_tree(message)?;
        let conn = root
            .section("connections")
            .and_then(|c| c.sections.first())
            .ok_or("the message holds no connection")?;
        refuse_file_credentials(conn)?;
        let mut next = self.clone();
        next.conns.insert(conn.name.clone(), root.clone());
        Ok((conn.name.clone(), next))
    }

    /// Without the connection `unload-conn` names.
    pub fn without_conn(&self, message: &Message) -> Result<(String, Loaded), String> {
        let name = message
            .str("name")
            .ok_or("missing connection name to unload")?;
        if !self.conns.contains_key(name) {
            return Err(format!("unloading connection '{name}' failed: not loaded"));
        }
        Ok((name.to_owned(), self.without(name)))
    }

    /// Without the connection `name`, if loaded.
    pub fn without(&self, name: &str) -> Loaded {
        let mut next = self.clone();
        next.conns.remove(name);
        next
    }

    /// With the key of a `load-shared` message (replacing one of the same unique id).
    pub fn with_shared(&self, message: &Message) -> Result<Loaded, String> {
        let kind = message.str("type").ok_or("missing shared key type")?;
        if OTHER_SHARED.iter().any(|k| k.eq_ignore_ascii_case(kind)) {
            return Err(format!(
                "not supported by routevpn: shared key type {kind} (only IKE pre-shared keys)"
            ));
        }
        if !kind.eq_ignore_ascii_case("IKE") {
            return Err(format!("unknown shared key type '{kind}'"));
        }
        let data = message.0.iter().find_map(|e| match e {
            Element::KeyValue(k, v) if k == "data" => Some(v),
            _ => None,
        });
        let data = data
            .filter(|d| !d.is_empty())
            .ok_or("missing shared key data")?;
        let owners = owners(message)?;
        let id = match message.str("id") {
            Some(id) => id.to_owned(),
            None => return Err("missing unique id of the shared key".into()),
        };
        let psk = Psk {
            ids: owners,
            content: hex(data),
        };
        let mut next = self.clone();
        match next.shared.iter_mut().find(|(known, _)| *known == id) {
            Some((_, old)) => *old = psk,
            None => next.shared.push((id, psk)),
        }
        Ok(next)
    }

    /// Without the key `unload-shared` names by its unique id.
    pub fn without_shared(&self, message: &Message) -> Result<Loaded, String> {
        let id = message.str("id").ok_or("unique identifier missing")?;
        let mut next = self.clone();
        let before = next.shared.len();
        next.shared.retain(|(known, _)| known != id);
        if next.shared.len() == before {
            return Err(format!("no shared key found for unique id '{id}'"));
        }
        Ok(next)
    }

    /// Every loaded connection mapped with the loaded keys; those that cannot be (their
    /// key was unloaded) with where and why.
    pub fn mapped(&self) -> Mapped {
        // Nothing is read from files: certificates were refused at load.
        let mut store = Store::empty(Path::new("/nonexistent"));
        store.psks = self.shared.iter().map(|(_, psk)| psk.clone()).collect();
        let mut mapped = Mapped::default();
        for (name, root) in &self.conns {
            let imported = import::import_with(root, &store, import::Options::default());
            let errors: Vec<String> = (imported.diagnostics.iter())
                .filter(|d| d.is_error())
                .map(|d| format!("{}:{}", d.file.display(), d.located_message()))
                .collect();
            if errors.is_empty() {
                mapped.profiles.extend(imported.profiles);
            } else {
                mapped.unusable.push((name.clone(), errors.join("; ")));
            }
        }
        mapped
    }
}

/// The loaded connections as profiles.
#[derive(Debug, Default)]
pub struct Mapped {
    pub profiles: Vec<ImportedProfile>,
    /// Connections that cannot be mapped now, by name, with why.
    pub unusable: Vec<(String, String)>,
}

/// `owners` as a list (swanctl) or a single key.
fn owners(message: &Message) -> Result<Vec<String>, String> {
    let mut owners = Vec::new();
    for element in &message.0 {
        let items: Vec<&[u8]> = match element {
            Element::List(k, items) if k == "owners" => items.iter().map(Vec::as_slice).collect(),
            Element::KeyValue(k, v) if k == "owners" => vec![v.as_slice()],
            _ => continue,
        };
        for item in items {
            let text = std::str::from_utf8(item).map_err(|_| "an owner is not UTF-8")?;
            owners.push(text.to_owned());
        }
    }
    Ok(owners)
}

/// The key as a `psk_file` holds it, `0x` and hex: VICI carries it decoded.
fn hex(data: &[u8]) -> Zeroizing<Vec<u8>> {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = Zeroizing::new(Vec::with_capacity(2 + data.len() * 2));
    text.extend_from_slice(b"0x");
    for b in data {
        text.push(DIGITS[usize::from(b >> 4)]);
        text.push(DIGITS[usize::from(b & 0xf)]);
    }
    text
}

/// Certificates and keys arrive over VICI as data (`load-cert`, `load-key`, or inline in
/// the connection), which routevpn's public-key path reads only from files.
fn refuse_file_credentials(conn: &Section) -> Result<(), String> {
    for round in &conn.sections {
        let is_round = round.name.starts_with("local") || round.name.starts_with("remote");
        if !is_round {
            continue;
        }
        for key in ["certs", "pubkeys", "cacerts"] {
            if round.value(key).is_some() {
                return Err(format!(
                    "{}.{}.{key}: not supported by routevpn over VICI (certificates and \
                     public keys only from profiles or `routevpn import`); use psk",
                    conn.name, round.name
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
