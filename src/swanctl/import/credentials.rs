//! What charon would load besides the connections: the `secrets` section and the
//! `swanctl/` directory layout beside the configuration (`x509/`, `x509ca/`, `x509crl/`,
//! `pubkey/`, `private/`, `rsa/`, `ecdsa/`, `pkcs8/`).

use std::path::{Path, PathBuf};

use openssl::pkey::{PKey, Private, Public};
use openssl::x509::X509;
use zeroize::Zeroizing;

use super::Report;
use crate::file;
use crate::swanctl::tree::{Location, Section};

/// A pre-shared key of `secrets.ike-*`: the identities it is for (none: any).
#[derive(Clone)]
pub struct Psk {
    pub ids: Vec<String>,
    /// As routevpn's `psk_file` holds it: the text, or `0x` and hex.
    pub content: Zeroizing<Vec<u8>>,
}

pub struct Store {
    pub dir: PathBuf,
    pub psks: Vec<Psk>,
    /// Private key files: `secrets.private-*` (and `rsa-*`, `ecdsa-*`, `pkcs8-*`) and the
    /// key directories.
    pub private_keys: Vec<PathBuf>,
    pub cas: Vec<PathBuf>,
    pub crls: Vec<PathBuf>,
}

const KEY_DIRS: [&str; 4] = ["private", "rsa", "ecdsa", "pkcs8"];

impl Store {
    /// No keys, certificates or directories: connections whose credentials came another
    /// way (over VICI), or none.
    pub fn empty(dir: &Path) -> Store {
        Store {
            dir: dir.to_path_buf(),
            psks: Vec::new(),
            private_keys: Vec::new(),
            cas: Vec::new(),
            crls: Vec::new(),
        }
    }

    /// Reads `secrets` (every entry it cannot carry is reported) and lists the directories.
    pub fn load(root: &Section, dir: &Path, report: &mut Report) -> Store {
        let mut store = Store {
            dir: dir.to_path_buf(),
            psks: Vec::new(),
            private_keys: Vec::new(),
            cas: list(&dir.join("x509ca"), report),
            crls: list(&dir.join("x509crl"), report),
        };
        for sub in KEY_DIRS {
            store.private_keys.extend(list(&dir.join(sub), report));
        }
        if let Some(secrets) = root.section("secrets") {
            for (key, value) in &secrets.values {
                report.unsupported(&value.at, format!("secrets.{key}: not a section"));
            }
            for entry in &secrets.sections {
                store.entry(entry, report);
            }
        }
        store
    }

    fn entry(&mut self, entry: &Section, report: &mut Report) {
        let kind = entry.name.split('-').next().unwrap_or_default();
        match kind {
            "ike" => {
                let mut ids = Vec::new();
                let mut secret = None;
                for (key, value) in &entry.values {
                    if key == "secret" {
                        secret = Some(value);
                    } else if key == "id" || key.starts_with("id-") {
                        ids.push(value.text.clone());
                    } else {
                        report.unsupported(&value.at, format!("secrets.{}.{key}", entry.name));
                    }
                }
                match secret.map(|s| (psk_content(&s.text), s)) {
                    Some((Ok(content), _)) => self.psks.push(Psk { ids, content }),
                    Some((Err(why), s)) => {
                        report.error(&s.at, format!("secrets.{}.secret: {why}", entry.name))
                    }
                    None => report.error(&entry.at, format!("secrets.{}: no `secret`", entry.name)),
                }
            }
            "private" | "rsa" | "ecdsa" | "pkcs8" => {
                for (key, value) in &entry.values {
                    match key.as_str() {
                        "file" => {
                            let path = self.dir.join(kind).join(&value.text);
                            self.private_keys.push(path);
                        }
                        "secret" => report.unsupported(
                            &value.at,
                            format!("secrets.{}.secret: encrypted private keys (routevpn reads unencrypted PEM)", entry.name),
                        ),
                        _ => report.unsupported(&value.at, format!("secrets.{}.{key}", entry.name)),
                    }
                }
            }
            _ => report.unsupported(
                &entry.at,
                format!(
                    "secrets.{}: routevpn has only IKE pre-shared keys and private keys",
                    entry.name
                ),
            ),
        }
    }

    /// The pre-shared key charon would pick for these identities: one naming either, else
    /// one naming none. The first of equals, as written.
    pub fn psk_for(&self, local: &str, remote: &str) -> Option<&Psk> {
        let named = |p: &&Psk| p.ids.iter().any(|id| id == local || id == remote);
        let both =
            |p: &&Psk| p.ids.iter().any(|id| id == local) && p.ids.iter().any(|id| id == remote);
        (self.psks.iter().find(both))
            .or_else(|| self.psks.iter().find(named))
            .or_else(|| self.psks.iter().find(|p| p.ids.is_empty()))
    }

    /// The private key file whose public key is `public`.
    pub fn private_key_for(&self, public: &PKey<Public>) -> Option<&Path> {
        self.private_keys
            .iter()
            .find(|path| read_private(path).is_some_and(|key| key.public_eq(public)))
            .map(PathBuf::as_path)
    }
}

/// strongSwan's secret forms: `0x` hex stays (routevpn reads it alike), `0s` base64 becomes
/// hex, anything else is the key's text.
fn psk_content(text: &str) -> Result<Zeroizing<Vec<u8>>, &'static str> {
    if text.is_empty() {
        return Err("empty secret");
    }
    if let Some(b64) = text.strip_prefix("0s") {
        let bytes = Zeroizing::new(
            openssl::base64::decode_block(b64).map_err(|_| "invalid base64 after 0s")?,
        );
        let mut hex = Zeroizing::new(b"0x".to_vec());
        for b in bytes.iter() {
            hex.extend_from_slice(format!("{b:02x}").as_bytes());
        }
        return Ok(hex);
    }
    Ok(Zeroizing::new(text.as_bytes().to_vec()))
}

/// Regular files in `dir`, sorted; a missing directory holds none, an unreadable one is an error.
fn list(dir: &Path, report: &mut Report) -> Vec<PathBuf> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            report.error(&Location::new(dir, 0, 0), format!("cannot read: {e}"));
            return Vec::new();
        }
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    files.sort();
    files
}

fn read_private(path: &Path) -> Option<PKey<Private>> {
    let bytes = Zeroizing::new(file::read(path).ok()?);
    PKey::private_key_from_pem(&bytes)
        .or_else(|_| PKey::private_key_from_der(&bytes))
        .ok()
}

/// The public key of a certificate file (PEM or DER).
pub fn certificate_key(path: &Path) -> Result<PKey<Public>, String> {
    let bytes = file::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    X509::from_pem(&bytes)
        .or_else(|_| X509::from_der(&bytes))
        .and_then(|cert| cert.public_key())
        .map_err(|_| format!("{} is no X.509 certificate", path.display()))
}

/// A raw public key file (PEM or DER SubjectPublicKeyInfo).
pub fn public_key(path: &Path) -> Result<PKey<Public>, String> {
    let bytes = file::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    PKey::public_key_from_pem(&bytes)
        .or_else(|_| PKey::public_key_from_der(&bytes))
        .map_err(|_| format!("{} is no public key", path.display()))
}
