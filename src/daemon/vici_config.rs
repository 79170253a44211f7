//! Connections and pre-shared keys loaded over VICI (`swanctl --load-all`): run-time
//! configuration like charon's, kept in memory and gone when the daemon restarts. Each
//! connection is mapped by the swanctl.conf importer, with the loaded keys as its
//! `secrets`, into a profile that the daemon validates and applies beside its own.
//! Private keys and certificates stay in memory ([`memory_file`]); the profiles name them
//! by their `/proc/PID/fd` paths.

mod loaded_creds;
mod memory_file;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use zeroize::Zeroizing;

use crate::swanctl::import::credentials::{Psk, Store};
use crate::swanctl::import::{self, ImportedProfile};
use crate::swanctl::{vici, Section};
use crate::vici::codec::{Element, Message};
pub use loaded_creds::{CertFlag, LoadedCert, LoadedKey};
use memory_file::MemoryFile;

/// Shared key types charon knows and routevpn has no use for.
const OTHER_SHARED: &[&str] = &["EAP", "XAUTH", "NTLM", "PPK", "PIN"];

/// What has been loaded; changed only once the daemon accepted the result.
#[derive(Clone, Default)]
pub struct Loaded {
    /// By name, each as the settings tree its `load-conn` carried.
    conns: BTreeMap<String, LoadedConn>,
    /// IKE pre-shared keys by their unique id, in load order of first appearance.
    shared: Vec<(String, Psk)>,
    /// Private keys of `load-key`, in load order.
    keys: Vec<LoadedKey>,
    /// Certificates of `load-cert`, in load order.
    certs: Vec<LoadedCert>,
    /// Certification authorities of `load-authority`, by name.
    authorities: BTreeMap<String, LoadedCert>,
}

/// A connection as its `load-conn` carried it: the credentials it held inline are kept
/// as long as it is.
#[derive(Clone)]
struct LoadedConn {
    tree: Section,
    certs: Vec<LoadedCert>,
    /// `pubkeys`, kept alive for the paths the tree names.
    _public_keys: Vec<Arc<MemoryFile>>,
}

/// Names and unique ids only: the keys stay out of every log and message.
impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded")
            .field("conns", &self.conns.keys().collect::<Vec<_>>())
            .field("shared", &self.shared_ids())
            .field("keys", &self.key_ids())
            .field("certs", &self.certs.len())
            .field("authorities", &self.authorities.keys().collect::<Vec<_>>())
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

    /// `get-keys`: the loaded private keys' ids (SHA-1 of the public key, hex).
    pub fn key_ids(&self) -> Vec<String> {
        self.keys.iter().map(|k| k.id.clone()).collect()
    }

    /// `list-certs`: those of `load-cert`, the authorities' and those connections carry,
    /// each once.
    pub fn certs(&self) -> Vec<&LoadedCert> {
        let inline = self.conns.values().flat_map(|c| &c.certs);
        let mut listed: Vec<&LoadedCert> = Vec::new();
        for cert in (self.certs.iter())
            .chain(self.authorities.values())
            .chain(inline)
        {
            if !listed.iter().any(|known| known.der == cert.der) {
                listed.push(cert);
            }
        }
        listed
    }

    /// Whether a loaded private key belongs to `cert`.
    pub fn has_private_key(&self, cert: &LoadedCert) -> bool {
        self.keys.iter().any(|k| k.public.public_eq(&cert.public))
    }

    /// With the connection of a `load-conn` message added (replacing one of its name).
    pub fn with_conn(&self, message: &Message) -> Result<(String, Loaded), String> {
        let mut certs = Vec::new();
        let mut public_keys = Vec::new();
        let mut keep = |key: &str, data: &[u8]| {
            let file = match key {
                "pubkeys" => loaded_creds::public_key(data)?,
                _ => {
                    let flag = if key == "cacerts" {
                        CertFlag::Ca
                    } else {
                        CertFlag::None
                    };
                    let cert = loaded_creds::certificate(data, flag)?;
                    certs.push(cert.clone());
                    return Ok(cert.file.path().to_string_lossy().into_owned());
                }
            };
            let path = file.path().to_string_lossy().into_owned();
            public_keys.push(file);
            Ok(path)
        };
        let tree = vici::connection_tree(message, &mut keep)?;
        let name = (tree.section("connections"))
            .and_then(|c| c.sections.first())
            .map(|conn| conn.name.clone())
            .ok_or("the message holds no connection")?;
        let mut next = self.clone();
        let conn = LoadedConn {
            tree,
            certs,
            _public_keys: public_keys,
        };
        next.conns.insert(name.clone(), conn);
        Ok((name, next))
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

    /// With the private key of a `load-key` message (one already loaded stays once).
    pub fn with_key(&self, message: &Message) -> Result<(String, Loaded), String> {
        let key = loaded_creds::key(message)?;
        let mut next = self.clone();
        let id = key.id.clone();
        if !next.keys.iter().any(|k| k.id == id) {
            next.keys.push(key);
        }
        Ok((id, next))
    }

    /// Without the private key `unload-key` names by its id.
    pub fn without_key(&self, message: &Message) -> Result<Loaded, String> {
        let id = message.str("id").ok_or("key id missing")?;
        let mut next = self.clone();
        next.keys.retain(|k| k.id != id);
        if next.keys.len() == self.keys.len() {
            return Err(format!("unloading private key with id {id} failed"));
        }
        Ok(next)
    }

    /// With the certificate of a `load-cert` message (one already loaded stays once).
    pub fn with_cert(&self, message: &Message) -> Result<Loaded, String> {
        let cert = loaded_creds::cert(message)?;
        let mut next = self.clone();
        if !next
            .certs
            .iter()
            .any(|c| c.der == cert.der && c.flag == cert.flag)
        {
            next.certs.push(cert);
        }
        Ok(next)
    }

    /// `clear-creds`: without the keys, certificates and shared keys loaded on their own
    /// (a connection's inline certificates stay with it; authorities too, as charon's).
    pub fn without_creds(&self) -> Loaded {
        Loaded {
            conns: self.conns.clone(),
            authorities: self.authorities.clone(),
            ..Loaded::default()
        }
    }

    /// `get-authorities`: the loaded authorities' names.
    pub fn authority_names(&self) -> Vec<String> {
        self.authorities.keys().cloned().collect()
    }

    /// `list-authorities`: each loaded authority (or the one `name` names) with its CA
    /// certificate.
    pub fn authorities(&self, name: Option<&str>) -> Vec<(&String, &LoadedCert)> {
        (self.authorities.iter())
            .filter(|(n, _)| name.is_none_or(|wanted| wanted == n.as_str()))
            .collect()
    }

    /// With the authority of a `load-authority` message (replacing one of its name): its
    /// `cacert` becomes a trusted CA like a `load-cert` of flag CA. What routevpn would
    /// have to fetch or ask a token for is refused, never dropped.
    pub fn with_authority(&self, message: &Message) -> Result<Loaded, String> {
        let (name, body) = match message.0.as_slice() {
            [Element::Section(name, body)] => (name, body),
            _ => return Err("a load-authority message holds exactly one section".into()),
        };
        let mut cacert = None;
        for element in &body.0 {
            match element {
                Element::KeyValue(key, data) if key == "cacert" => {
                    cacert = Some(loaded_creds::certificate(data, CertFlag::Ca)?);
                }
                // Set but empty: nothing asked.
                Element::List(_, items) if items.is_empty() => {}
                Element::KeyValue(_, value) if value.is_empty() => {}
                Element::KeyValue(key, _) | Element::List(key, _) | Element::Section(key, _) => {
                    return Err(format!(
                        "authority {name}: {key}: not supported by routevpn (it fetches \
                         nothing and reads no token: give the CA as cacert, CRLs as files \
                         of a profile's crl)"
                    ))
                }
            }
        }
        let cacert = cacert.ok_or_else(|| format!("authority {name}: cacert missing"))?;
        let mut next = self.clone();
        next.authorities.insert(name.clone(), cacert);
        Ok(next)
    }

    /// Without the authority `unload-authority` names.
    pub fn without_authority(&self, message: &Message) -> Result<Loaded, String> {
        let name = message
            .str("name")
            .ok_or("missing authority name to unload")?;
        let mut next = self.clone();
        if next.authorities.remove(name).is_none() {
            return Err(format!("unloading authority '{name}' failed"));
        }
        Ok(next)
    }

    /// Every loaded connection mapped with the loaded keys; those that cannot be (their
    /// key was unloaded) with where and why.
    pub fn mapped(&self) -> Mapped {
        // Nothing is read from the host's files: credentials are in memory files.
        let mut store = Store::empty(Path::new("/nonexistent"));
        store.psks = self.shared.iter().map(|(_, psk)| psk.clone()).collect();
        store.private_keys = self.keys.iter().map(|k| k.file.path()).collect();
        store.cas = (self.certs.iter())
            .filter(|c| c.flag == CertFlag::Ca)
            .chain(self.authorities.values())
            .map(|c| c.file.path())
            .collect();
        let mut mapped = Mapped::default();
        for (name, LoadedConn { tree: root, .. }) in &self.conns {
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

#[cfg(test)]
mod tests;
