//! Private keys and certificates loaded over VICI (`load-key`, `load-cert`, and the
//! `certs` / `cacerts` / `pubkeys` a `load-conn` carries inline), each held as a
//! [`MemoryFile`] in the PEM form the profile's key and certificate files have.

use std::sync::Arc;

use openssl::ec::EcKey;
use openssl::hash::{hash, MessageDigest};
use openssl::pkey::{PKey, Private, Public};
use openssl::rsa::Rsa;
use openssl::x509::X509;
use zeroize::Zeroizing;

use super::memory_file::MemoryFile;
use crate::ike::auth::keys::PrivateKey;
use crate::vici::codec::{Element, Message};

/// A private key, never shown: only its id (the SHA-1 of its public key) is.
#[derive(Clone, Debug)]
pub struct LoadedKey {
    pub id: String,
    pub public: PKey<Public>,
    pub file: Arc<MemoryFile>,
}

/// Whether a certificate was loaded as a CA's (`flag = CA`, `cacerts`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertFlag {
    None,
    Ca,
}

impl CertFlag {
    pub fn name(self) -> &'static str {
        match self {
            CertFlag::None => "NONE",
            CertFlag::Ca => "CA",
        }
    }
}

#[derive(Clone, Debug)]
pub struct LoadedCert {
    pub flag: CertFlag,
    pub der: Vec<u8>,
    pub public: PKey<Public>,
    pub file: Arc<MemoryFile>,
}

/// The key of a `load-key` message: `type` (`rsa`, `ecdsa`, `ed25519`, or `any` for
/// PKCS#8) and its DER (or PEM) encoding in `data`.
pub fn key(message: &Message) -> Result<LoadedKey, String> {
    let kind = message.str("type").ok_or("missing private key type")?;
    let data = Zeroizing::new(data(message).ok_or("missing private key data")?.to_vec());
    let pem = data.starts_with(b"-----BEGIN");
    let parsed: Result<PKey<Private>, _> = match kind.to_ascii_lowercase().as_str() {
        _ if pem => PKey::private_key_from_pem(&data),
        "rsa" => Rsa::private_key_from_der(&data).and_then(PKey::from_rsa),
        "ecdsa" => EcKey::private_key_from_der(&data).and_then(PKey::from_ec_key),
        "ed25519" | "any" => PKey::private_key_from_der(&data),
        other => {
            return Err(format!(
                "unsupported private key type '{other}' (rsa, ecdsa, ed25519 or any)"
            ))
        }
    };
    let key = parsed.map_err(|_| {
        format!("loading private key of type '{kind}' failed: not a valid {kind} key")
    })?;
    let pkcs8 = Zeroizing::new(
        key.private_key_to_pem_pkcs8()
            .map_err(|e| format!("encoding a private key: {e}"))?,
    );
    // The engine's rules for our key (sizes, curves) now rather than at the first signature.
    PrivateKey::from_pem(&pkcs8, &format!("{kind} private key")).map_err(|e| e.to_string())?;
    let spki = key.public_key_to_der().map_err(|e| e.to_string())?;
    let public = PKey::public_key_from_der(&spki).map_err(|e| e.to_string())?;
    Ok(LoadedKey {
        id: key_id(&spki)?,
        public,
        file: Arc::new(MemoryFile::new(&pkcs8)?),
    })
}

/// The certificate of a `load-cert` message: `type = X509`, `flag` `CA` or `NONE`.
pub fn cert(message: &Message) -> Result<LoadedCert, String> {
    let kind = message.str("type").ok_or("certificate type missing")?;
    if !kind.eq_ignore_ascii_case("X509") {
        return Err(format!(
            "not supported by routevpn: certificate type {kind} (only X509)"
        ));
    }
    let flag = match message.str("flag").unwrap_or("NONE") {
        f if f.eq_ignore_ascii_case("NONE") => CertFlag::None,
        f if f.eq_ignore_ascii_case("CA") => CertFlag::Ca,
        other => {
            return Err(format!(
                "not supported by routevpn: X.509 certificate flag {other} (CA or NONE)"
            ))
        }
    };
    certificate(data(message).ok_or("missing certificate data")?, flag)
}

/// A certificate, DER or PEM, as a PEM file.
pub fn certificate(data: &[u8], flag: CertFlag) -> Result<LoadedCert, String> {
    let cert = X509::from_der(data)
        .or_else(|_| X509::from_pem(data))
        .map_err(|_| "parsing X509 certificate failed".to_owned())?;
    let pem = cert.to_pem().map_err(|e| e.to_string())?;
    Ok(LoadedCert {
        flag,
        der: cert.to_der().map_err(|e| e.to_string())?,
        public: cert.public_key().map_err(|e| e.to_string())?,
        file: Arc::new(MemoryFile::new(&pem)?),
    })
}

/// A raw public key (`pubkeys`), DER or PEM SubjectPublicKeyInfo, as a PEM file.
pub fn public_key(data: &[u8]) -> Result<Arc<MemoryFile>, String> {
    let key = PKey::public_key_from_der(data)
        .or_else(|_| PKey::public_key_from_pem(data))
        .map_err(|_| "parsing public key failed".to_owned())?;
    let pem = key.public_key_to_pem().map_err(|e| e.to_string())?;
    Ok(Arc::new(MemoryFile::new(&pem)?))
}

fn data(message: &Message) -> Option<&[u8]> {
    message.0.iter().find_map(|e| match e {
        Element::KeyValue(k, v) if k == "data" && !v.is_empty() => Some(v.as_slice()),
        _ => None,
    })
}

fn key_id(spki: &[u8]) -> Result<String, String> {
    let digest = hash(MessageDigest::sha1(), spki).map_err(|e| e.to_string())?;
    Ok(digest.iter().map(|b| format!("{b:02x}")).collect())
}
