//! Private and public keys for signature authentication, and the key sizes and curves we
//! accept: RSA 2048..=8192 bits, ECDSA on P-256 / P-384 / P-521, Ed25519.
//!
//! Private keys come from PEM files (PKCS#8 `PRIVATE KEY`, PKCS#1 `RSA PRIVATE KEY`, SEC1
//! `EC PRIVATE KEY`; encrypted files are refused). Public keys come from PEM SPKI, DER
//! SPKI (certificates) or libreswan's RFC 3110 `0s…` form. A private key never shows up
//! in `Debug`, errors or logs: only its type and size do.

use std::fmt;
use std::io;
use std::path::Path;

use openssl::base64;
use openssl::bn::BigNum;
use openssl::nid::Nid;
use openssl::pkey::{HasPublic, Id, PKey, PKeyRef, Private, Public};
use openssl::rsa::Rsa;

use crate::ike::crypto::Secret;

pub const RSA_MIN_BITS: u32 = 2048;
pub const RSA_MAX_BITS: u32 = 8192;

/// A NIST curve usable for ECDSA authentication.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Curve {
    P256,
    P384,
    P521,
}

impl Curve {
    fn from_nid(nid: Nid) -> Option<Self> {
        match nid {
            Nid::X9_62_PRIME256V1 => Some(Curve::P256),
            Nid::SECP384R1 => Some(Curve::P384),
            Nid::SECP521R1 => Some(Curve::P521),
            _ => None,
        }
    }

    /// Octets of one coordinate (and of r and s in an RFC 4754 signature).
    pub fn field_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        }
    }
}

/// What a key is, as far as signing and verifying care.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyKind {
    Rsa { bits: u32 },
    Ecdsa(Curve),
    Ed25519,
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyKind::Rsa { bits } => write!(f, "RSA {bits}"),
            KeyKind::Ecdsa(curve) => write!(f, "ECDSA {curve:?}"),
            KeyKind::Ed25519 => f.write_str("Ed25519"),
        }
    }
}

/// Why a key cannot be used. Never contains key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyProblem {
    #[error("cannot read: {0}")]
    Unreadable(#[from] io::Error),
    #[error("encrypted private keys are not supported; store the key unencrypted (mode 0600)")]
    Encrypted,
    #[error("no private key found (expected PEM \"PRIVATE KEY\", \"RSA PRIVATE KEY\" or \"EC PRIVATE KEY\")")]
    NoPrivateKey,
    #[error("no public key found (expected PEM \"PUBLIC KEY\")")]
    NoPublicKey,
    #[error("RSA key of {bits} bits is too small, at least {RSA_MIN_BITS} are required")]
    RsaTooSmall { bits: u32 },
    #[error("RSA key of {bits} bits is too large, at most {RSA_MAX_BITS} are supported")]
    RsaTooLarge { bits: u32 },
    #[error("EC curve {0} is not supported (P-256, P-384 and P-521 are)")]
    UnsupportedCurve(String),
    #[error("{0} keys are not supported (RSA, ECDSA and Ed25519 are)")]
    UnsupportedType(String),
    #[error("RFC 3110 RSA key: {0}")]
    Rfc3110(&'static str),
}

/// A key problem and where the key came from (a file, or `file:line:col` of a profile).
#[derive(Debug, thiserror::Error)]
#[error("{origin}: {problem}")]
pub struct KeyError {
    pub origin: String,
    pub problem: KeyProblem,
}

impl KeyError {
    fn new(origin: &str, problem: KeyProblem) -> Self {
        KeyError {
            origin: origin.to_string(),
            problem,
        }
    }
}

fn kind_of<T: HasPublic>(pkey: &PKeyRef<T>) -> Result<KeyKind, KeyProblem> {
    match pkey.id() {
        Id::RSA => {
            let bits = pkey.bits();
            if bits < RSA_MIN_BITS {
                Err(KeyProblem::RsaTooSmall { bits })
            } else if bits > RSA_MAX_BITS {
                Err(KeyProblem::RsaTooLarge { bits })
            } else {
                Ok(KeyKind::Rsa { bits })
            }
        }
        Id::EC => {
            let nid = (pkey.ec_key().ok()).and_then(|ec| ec.group().curve_name());
            match nid.and_then(Curve::from_nid) {
                Some(curve) => Ok(KeyKind::Ecdsa(curve)),
                None => Err(KeyProblem::UnsupportedCurve(
                    nid.and_then(|n| n.short_name().ok())
                        .unwrap_or("(explicit parameters)")
                        .to_string(),
                )),
            }
        }
        Id::ED25519 => Ok(KeyKind::Ed25519),
        other => Err(KeyProblem::UnsupportedType(id_name(other))),
    }
}

fn id_name(id: Id) -> String {
    match id {
        Id::RSA_PSS => "RSA-PSS (restricted)".into(),
        Id::DSA => "DSA".into(),
        Id::ED448 => "Ed448".into(),
        Id::X25519 => "X25519".into(),
        other => format!("type {}", other.as_raw()),
    }
}

/// Our private key. `Debug` shows only its kind.
pub struct PrivateKey {
    pkey: PKey<Private>,
    kind: KeyKind,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey({})", self.kind)
    }
}

impl PrivateKey {
    /// Reads a PEM private key file; errors name the file, never its content.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let origin = path.display().to_string();
        let pem = crate::file::read(path)
            .map(Secret::new)
            .map_err(|e| KeyError::new(&origin, io::Error::other(e.to_string()).into()))?;
        Self::from_pem(pem.expose(), &origin)
    }

    /// Parses a PEM private key; `origin` says where it came from, for errors.
    pub fn from_pem(pem: &[u8], origin: &str) -> Result<Self, KeyError> {
        let fail = |problem| KeyError::new(origin, problem);
        // PKCS#8 and traditional (OpenSSL `Proc-Type`) encrypted PEM headers.
        if contains(pem, b"BEGIN ENCRYPTED PRIVATE KEY") || contains(pem, b"Proc-Type: 4,ENCRYPTED")
        {
            return Err(fail(KeyProblem::Encrypted));
        }
        // A passphrase callback that supplies none: OpenSSL must never prompt on a terminal.
        let pkey = PKey::private_key_from_pem_callback(pem, |_| Ok(0))
            .map_err(|_| fail(KeyProblem::NoPrivateKey))?;
        let kind = kind_of(&pkey).map_err(fail)?;
        Ok(PrivateKey { pkey, kind })
    }

    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    pub fn public_key(&self) -> PublicKey {
        let der = self.pkey.public_key_to_der();
        let pkey = der.and_then(|der| PKey::public_key_from_der(&der));
        PublicKey {
            // Re-encoding a key OpenSSL just parsed cannot fail short of memory exhaustion.
            #[allow(clippy::expect_used)]
            pkey: pkey.expect("public half of a parsed private key"),
            kind: self.kind,
        }
    }

    pub(crate) fn pkey(&self) -> &PKeyRef<Private> {
        &self.pkey
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A peer's (or our) public key.
#[derive(Clone)]
pub struct PublicKey {
    pkey: PKey<Public>,
    kind: KeyKind,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.kind)
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.pkey.public_eq(&other.pkey)
    }
}

impl PublicKey {
    /// A key OpenSSL already parsed (from a certificate), checked against what we accept.
    pub fn from_pkey(pkey: PKey<Public>) -> Result<Self, KeyProblem> {
        let kind = kind_of(&pkey)?;
        Ok(PublicKey { pkey, kind })
    }

    /// PEM SubjectPublicKeyInfo (`-----BEGIN PUBLIC KEY-----`).
    pub fn from_pem(pem: &[u8], origin: &str) -> Result<Self, KeyError> {
        let pkey = PKey::public_key_from_pem(pem)
            .map_err(|_| KeyError::new(origin, KeyProblem::NoPublicKey))?;
        Self::from_pkey(pkey).map_err(|p| KeyError::new(origin, p))
    }

    /// DER SubjectPublicKeyInfo.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyProblem> {
        Self::from_pkey(PKey::public_key_from_der(der).map_err(|_| KeyProblem::NoPublicKey)?)
    }

    /// libreswan's `0s…` RSA public key: base64 of the RFC 3110 RDATA (exponent length in
    /// one octet, or zero and two octets; exponent; modulus). ASCII whitespace is ignored.
    pub fn from_rfc3110(text: &str, origin: &str) -> Result<Self, KeyError> {
        let fail = |reason| KeyError::new(origin, KeyProblem::Rfc3110(reason));
        let Some(b64) = text.trim().strip_prefix("0s") else {
            return Err(fail("must start with \"0s\" (base64)"));
        };
        let b64: String = b64.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let blob = base64::decode_block(&b64).map_err(|_| fail("invalid base64"))?;
        let (e, n) = split_rfc3110(&blob).map_err(fail)?;
        let rsa = BigNum::from_slice(e)
            .and_then(|e| Ok((e, BigNum::from_slice(n)?)))
            .and_then(|(e, n)| Rsa::from_public_components(n, e))
            .and_then(PKey::from_rsa)
            .map_err(|_| fail("not a usable RSA key"))?;
        Self::from_pkey(rsa).map_err(|p| KeyError::new(origin, p))
    }

    /// The `0s…` form of an RSA key, as `ipsec showhostkey` prints it; `None` for others.
    pub fn to_rfc3110(&self) -> Option<String> {
        let rsa = self.pkey.rsa().ok()?;
        Some(rfc3110_encode(&rsa.e().to_vec(), &rsa.n().to_vec()))
    }

    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// PEM SubjectPublicKeyInfo, what strongSwan reads from `swanctl/pubkey/`.
    pub fn to_pem(&self) -> String {
        let pem = self.pkey.public_key_to_pem().unwrap_or_default();
        String::from_utf8_lossy(&pem).into_owned()
    }

    /// DER SubjectPublicKeyInfo; CERTREQ hashes it (RFC 7296 section 3.7).
    pub fn spki_der(&self) -> Vec<u8> {
        self.pkey.public_key_to_der().unwrap_or_default()
    }

    pub(crate) fn pkey(&self) -> &PKeyRef<Public> {
        &self.pkey
    }
}

/// Splits RFC 3110 RDATA into exponent and modulus; leading zero octets are prohibited.
fn split_rfc3110(blob: &[u8]) -> Result<(&[u8], &[u8]), &'static str> {
    let (e_len, rest) = match blob {
        [0, hi, lo, rest @ ..] => (usize::from(u16::from_be_bytes([*hi, *lo])), rest),
        [0, ..] => return Err("truncated exponent length"),
        [len, rest @ ..] => (usize::from(*len), rest),
        [] => return Err("empty"),
    };
    if e_len == 0 || e_len > rest.len() {
        return Err("exponent length does not fit the key");
    }
    let (e, n) = rest.split_at(e_len);
    match (e.first(), n.first()) {
        (Some(0), _) => Err("exponent has a leading zero octet"),
        (_, None) => Err("modulus is missing"),
        (_, Some(0)) => Err("modulus has a leading zero octet"),
        _ => Ok((e, n)),
    }
}

fn rfc3110_encode(e: &[u8], n: &[u8]) -> String {
    let mut blob = Vec::with_capacity(3 + e.len() + n.len());
    match u8::try_from(e.len()) {
        Ok(len) => blob.push(len),
        Err(_) => {
            blob.push(0);
            blob.extend_from_slice(&u16::try_from(e.len()).unwrap_or(u16::MAX).to_be_bytes());
        }
    }
    blob.extend_from_slice(e);
    blob.extend_from_slice(n);
    format!("0s{}", base64::encode_block(&blob))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use openssl::ec::{EcGroup, EcKey};

    pub(crate) fn rsa_key(bits: u32) -> PrivateKey {
        let pem = Rsa::generate(bits).unwrap().private_key_to_pem().unwrap();
        PrivateKey::from_pem(&pem, "test").unwrap()
    }

    pub(crate) fn ec_key(curve: Curve) -> PrivateKey {
        let nid = match curve {
            Curve::P256 => Nid::X9_62_PRIME256V1,
            Curve::P384 => Nid::SECP384R1,
            Curve::P521 => Nid::SECP521R1,
        };
        let ec = EcKey::generate(&EcGroup::from_curve_name(nid).unwrap()).unwrap();
        PrivateKey::from_pem(&ec.private_key_to_pem().unwrap(), "test").unwrap()
    }

    pub(crate) fn ed25519_key() -> PrivateKey {
        let pem = PKey::generate_ed25519()
            .unwrap()
            .private_key_to_pem_pkcs8()
            .unwrap();
        PrivateKey::from_pem(&pem, "test").unwrap()
    }

    #[test]
    fn loads_pkcs8_pkcs1_and_sec1() {
        let rsa = Rsa::generate(2048).unwrap();
        let pkcs1 = rsa.private_key_to_pem().unwrap();
        assert!(String::from_utf8_lossy(&pkcs1).contains("BEGIN RSA PRIVATE KEY"));
        let pkcs8 = PKey::from_rsa(rsa)
            .unwrap()
            .private_key_to_pem_pkcs8()
            .unwrap();
        assert!(String::from_utf8_lossy(&pkcs8).contains("BEGIN PRIVATE KEY"));
        for pem in [pkcs1, pkcs8] {
            let key = PrivateKey::from_pem(&pem, "k.pem").unwrap();
            assert_eq!(key.kind(), KeyKind::Rsa { bits: 2048 });
        }
        let ec = EcKey::generate(&EcGroup::from_curve_name(Nid::SECP384R1).unwrap()).unwrap();
        let sec1 = ec.private_key_to_pem().unwrap();
        assert!(String::from_utf8_lossy(&sec1).contains("BEGIN EC PRIVATE KEY"));
        let key = PrivateKey::from_pem(&sec1, "k.pem").unwrap();
        assert_eq!(key.kind(), KeyKind::Ecdsa(Curve::P384));
        let ec8 = PKey::from_ec_key(ec)
            .unwrap()
            .private_key_to_pem_pkcs8()
            .unwrap();
        assert_eq!(
            PrivateKey::from_pem(&ec8, "k.pem").unwrap().kind(),
            KeyKind::Ecdsa(Curve::P384)
        );
        assert_eq!(ed25519_key().kind(), KeyKind::Ed25519);
        assert_eq!(ec_key(Curve::P521).kind(), KeyKind::Ecdsa(Curve::P521));
    }

    #[test]
    fn refuses_small_rsa_odd_curves_and_other_types() {
        let pem = Rsa::generate(1024).unwrap().private_key_to_pem().unwrap();
        let e = PrivateKey::from_pem(&pem, "/etc/routevpn/small.pem").unwrap_err();
        assert!(matches!(e.problem, KeyProblem::RsaTooSmall { bits: 1024 }));
        assert_eq!(
            e.to_string(),
            "/etc/routevpn/small.pem: RSA key of 1024 bits is too small, at least 2048 are required"
        );
        let ec = EcKey::generate(&EcGroup::from_curve_name(Nid::SECP224R1).unwrap()).unwrap();
        let e = PrivateKey::from_pem(&ec.private_key_to_pem().unwrap(), "k").unwrap_err();
        assert_eq!(
            e.to_string(),
            "k: EC curve secp224r1 is not supported (P-256, P-384 and P-521 are)"
        );
        let x = PKey::generate_x25519()
            .unwrap()
            .private_key_to_pem_pkcs8()
            .unwrap();
        let e = PrivateKey::from_pem(&x, "k").unwrap_err();
        assert!(matches!(e.problem, KeyProblem::UnsupportedType(ref t) if t == "X25519"));
    }

    #[test]
    fn refuses_encrypted_and_garbage_without_showing_content() {
        let rsa = Rsa::generate(2048).unwrap();
        let pem = rsa
            .private_key_to_pem_passphrase(openssl::symm::Cipher::aes_128_cbc(), b"pw")
            .unwrap();
        let e = PrivateKey::from_pem(&pem, "k").unwrap_err();
        assert!(matches!(e.problem, KeyProblem::Encrypted));
        let pkcs8 = PKey::from_rsa(rsa)
            .unwrap()
            .private_key_to_pem_pkcs8_passphrase(openssl::symm::Cipher::aes_128_cbc(), b"pw")
            .unwrap();
        assert!(matches!(
            PrivateKey::from_pem(&pkcs8, "k").unwrap_err().problem,
            KeyProblem::Encrypted
        ));
        let garbage = b"-----BEGIN PRIVATE KEY-----\nc2VjcmV0c2VjcmV0\n-----END PRIVATE KEY-----\n";
        let e = PrivateKey::from_pem(garbage, "k").unwrap_err();
        assert!(matches!(e.problem, KeyProblem::NoPrivateKey));
        assert!(!e.to_string().contains("c2VjcmV0"));
        let public_only = include_bytes!("testdata/rsa2048_pub.pem");
        assert!(PrivateKey::from_pem(public_only, "k").is_err());
    }

    #[test]
    fn load_names_the_file_and_debug_hides_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing.pem");
        let e = PrivateKey::load(&path).unwrap_err();
        assert!(e
            .to_string()
            .starts_with(&format!("{}: cannot read", path.display())));
        let key = ec_key(Curve::P256);
        let pem = key.pkey().private_key_to_pem_pkcs8().unwrap();
        std::fs::write(&path, &pem).unwrap();
        let loaded = PrivateKey::load(&path).unwrap();
        assert_eq!(format!("{loaded:?}"), "PrivateKey(ECDSA P256)");
        assert_eq!(loaded.public_key(), key.public_key());
    }

    #[test]
    fn rfc3110_fixed_vector_matches_the_pem_key() {
        // The `0s` string was made from `openssl rsa -text` output of the same key by a
        // separate script, not by `rfc3110_encode`.
        let text = include_str!("testdata/rsa2048_pub.0s");
        let from_0s = PublicKey::from_rfc3110(text, "p:3:14").unwrap();
        let from_pem =
            PublicKey::from_pem(include_bytes!("testdata/rsa2048_pub.pem"), "pem").unwrap();
        assert_eq!(from_0s, from_pem);
        assert_eq!(from_0s.kind(), KeyKind::Rsa { bits: 2048 });
        assert_eq!(from_pem.to_rfc3110().unwrap(), text.trim());
    }

    #[test]
    fn rfc3110_round_trips_generated_keys() {
        for bits in [2048, 3072] {
            let rsa = Rsa::generate(bits).unwrap();
            let text = rfc3110_encode(&rsa.e().to_vec(), &rsa.n().to_vec());
            let key = PublicKey::from_rfc3110(&text, "p").unwrap();
            let pkey = PKey::from_rsa(rsa).unwrap();
            let der = pkey.public_key_to_der().unwrap();
            assert_eq!(key, PublicKey::from_spki_der(&der).unwrap());
            // libreswan splits long values; whitespace is ignored.
            let (head, tail) = text.split_at(40);
            assert_eq!(
                PublicKey::from_rfc3110(&format!("{head}\n  {tail}"), "p").unwrap(),
                key
            );
        }
    }

    #[test]
    fn rfc3110_long_exponent_form() {
        // An exponent of 256 octets needs the three-octet length form.
        let mut e = vec![0u8; 256];
        e[0] = 1;
        e[255] = 1;
        let n = Rsa::generate(2048).unwrap().n().to_vec();
        let text = rfc3110_encode(&e, &n);
        let blob = base64::decode_block(&text[2..]).unwrap();
        assert_eq!(&blob[..3], &[0, 1, 0]);
        assert_eq!(split_rfc3110(&blob).unwrap(), (e.as_slice(), n.as_slice()));
    }

    #[test]
    fn rfc3110_errors() {
        let cases: [(&[u8], &str); 6] = [
            (&[], "empty"),
            (&[0, 1], "truncated exponent length"),
            (&[3, 1, 0], "exponent length does not fit the key"),
            (&[1, 3], "modulus is missing"),
            (&[1, 0, 5], "exponent has a leading zero octet"),
            (&[1, 3, 0, 5], "modulus has a leading zero octet"),
        ];
        for (blob, reason) in cases {
            assert_eq!(split_rfc3110(blob), Err(reason), "{blob:?}");
        }
        let e = PublicKey::from_rfc3110("AwEAAQ==", "a.toml:4:17").unwrap_err();
        assert_eq!(
            e.to_string(),
            "a.toml:4:17: RFC 3110 RSA key: must start with \"0s\" (base64)"
        );
        assert!(PublicKey::from_rfc3110("0s!!!", "p").is_err());
        // A valid encoding of a 1024-bit key is refused for its size.
        let rsa = Rsa::generate(1024).unwrap();
        let e = PublicKey::from_rfc3110(&rfc3110_encode(&rsa.e().to_vec(), &rsa.n().to_vec()), "p")
            .unwrap_err();
        assert!(matches!(e.problem, KeyProblem::RsaTooSmall { bits: 1024 }));
    }
}
