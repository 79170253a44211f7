//! X.509 certificates: our certificate chain, the CAs we trust and their CRLs, verification
//! of the chain a peer sends in CERT payloads, and whether the peer's IKE identity is the
//! certificate's (subject DN or subjectAltName).
//!
//! Verification is OpenSSL's (`X509_verify_cert`): signatures, validity dates, basic
//! constraints and CA key usage along the chain; with CRLs, the end entity's revocation
//! (`CRL_CHECK`: a CA without a CRL then fails the check, never passes it). We add that an
//! end entity with a key usage extension must allow digital signatures. The verification
//! time can be fixed ([`TrustStore::verify_at`]) for tests and for an engine with its own
//! clock. Not done: OCSP, CRL fetching, certificate policies, name constraints beyond
//! OpenSSL's own, extended key usage checks, and matching an FQDN ID against the subject's
//! CN (only subjectAltName DNS entries count, as RFC 4945 section 3.1.2 prefers).

pub mod dn;

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use openssl::hash::{hash, MessageDigest};
use openssl::ssl::SslFiletype;
use openssl::stack::Stack;
use openssl::x509::store::{X509Lookup, X509Store, X509StoreBuilder};
use openssl::x509::verify::{X509VerifyFlags, X509VerifyParam};
use openssl::x509::{X509Crl, X509KeyUsage, X509Ref, X509StoreContext, X509VerifyResult, X509};

use self::dn::DistinguishedName;
use super::der::Der;
use super::keys::{PrivateKey, PublicKey};
use crate::ike::codec::{Certificate as CertPayload, Identity};

const X509_SIGNATURE: u8 = CertPayload::X509_SIGNATURE;

// X509_V_ERR_* codes (x509_vfy.h) that map to our own error kinds.
const UNABLE_TO_GET_ISSUER_CERT: i32 = 2;
const CERT_NOT_YET_VALID: i32 = 9;
const CERT_HAS_EXPIRED: i32 = 10;
const DEPTH_ZERO_SELF_SIGNED_CERT: i32 = 18;
const SELF_SIGNED_CERT_IN_CHAIN: i32 = 19;
const UNABLE_TO_GET_ISSUER_CERT_LOCALLY: i32 = 20;
const UNABLE_TO_VERIFY_LEAF_SIGNATURE: i32 = 21;
const CERT_REVOKED: i32 = 23;
const CERT_UNTRUSTED: i32 = 27;

/// Why a certificate (chain) is not accepted. `subject` is the DN of the certificate the
/// problem is with.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("certificate \"{subject}\" is not issued by a trusted CA")]
    UnknownCa { subject: String },
    #[error("certificate \"{subject}\" has expired")]
    Expired { subject: String },
    #[error("certificate \"{subject}\" is not valid yet")]
    NotYetValid { subject: String },
    #[error("certificate \"{subject}\" is revoked")]
    Revoked { subject: String },
    #[error("peer ID {id} matches neither the subject nor a subjectAltName of \"{subject}\"")]
    IdMismatch { id: String, subject: String },
    #[error("malformed certificate: {0}")]
    Malformed(String),
    /// Any other verification failure, with OpenSSL's reason.
    #[error("certificate \"{subject}\" is not acceptable: {reason}")]
    Invalid { subject: String, reason: String },
    #[error("{origin}: {reason}")]
    Load { origin: String, reason: String },
}

fn load_error(origin: &Path, reason: impl fmt::Display) -> CertError {
    CertError::Load {
        origin: origin.display().to_string(),
        reason: reason.to_string(),
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, CertError> {
    // Regular files only, bounded: a FIFO or device named as a CA must not hang the daemon.
    crate::file::read(path).map_err(|e| load_error(path, format!("cannot read: {e}")))
}

fn subject_of(cert: &X509Ref) -> String {
    DistinguishedName::from_name(cert.subject_name()).to_string()
}

/// An end-entity certificate and the intermediates that lead to a CA.
#[derive(Clone)]
pub struct CertChain {
    pub end_entity: X509,
    pub intermediates: Vec<X509>,
}

impl fmt::Debug for CertChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CertChain({:?} + {} intermediates)",
            subject_of(&self.end_entity),
            self.intermediates.len()
        )
    }
}

impl CertChain {
    /// Our certificate from a PEM file: the end entity first, intermediates after it.
    pub fn load(path: &Path) -> Result<Self, CertError> {
        Self::from_pem(&read_file(path)?, path)
    }

    /// [`CertChain::load`] of a file already read; `path` names it in errors.
    pub fn from_pem(pem: &[u8], path: &Path) -> Result<Self, CertError> {
        let certs = X509::stack_from_pem(pem)
            .map_err(|_| load_error(path, "not a PEM certificate file"))?;
        let mut certs = certs.into_iter();
        let end_entity = certs
            .next()
            .ok_or_else(|| load_error(path, "no certificate in the file"))?;
        Ok(CertChain {
            end_entity,
            intermediates: certs.collect(),
        })
    }

    /// The peer's chain from its CERT payloads: the first X.509 one is the end entity
    /// (RFC 7296 section 3.6), other encodings are skipped.
    pub fn from_payloads(payloads: &[CertPayload]) -> Result<Self, CertError> {
        let mut certs = payloads
            .iter()
            .filter(|p| p.encoding == X509_SIGNATURE)
            .map(|p| {
                X509::from_der(&p.data).map_err(|_| {
                    CertError::Malformed(format!(
                        "CERT payload of {} octets is not DER X.509",
                        p.data.len()
                    ))
                })
            });
        let end_entity = certs
            .next()
            .ok_or_else(|| CertError::Malformed("no X.509 CERT payload".into()))??;
        Ok(CertChain {
            end_entity,
            intermediates: certs.collect::<Result<_, _>>()?,
        })
    }

    /// CERT payloads for the chain, end entity first.
    pub fn payloads(&self) -> Result<Vec<CertPayload>, CertError> {
        std::iter::once(&self.end_entity)
            .chain(&self.intermediates)
            .map(|cert| {
                let data = cert
                    .to_der()
                    .map_err(|e| CertError::Malformed(e.to_string()))?;
                Ok(CertPayload::x509(data))
            })
            .collect()
    }

    /// The end entity's public key, checked against the key types and sizes we accept.
    pub fn public_key(&self) -> Result<PublicKey, CertError> {
        let pkey = (self.end_entity.public_key())
            .map_err(|_| CertError::Malformed("unreadable public key".into()))?;
        PublicKey::from_pkey(pkey).map_err(|e| CertError::Invalid {
            subject: subject_of(&self.end_entity),
            reason: e.to_string(),
        })
    }

    /// Fails unless `key` is the private key of the end entity: a key file that does not
    /// belong to the certificate would make every AUTH fail at the peer.
    pub fn check_private_key(&self, key: &PrivateKey, key_origin: &str) -> Result<(), CertError> {
        let matches = (self.end_entity.public_key()).is_ok_and(|ours| ours.public_eq(key.pkey()));
        if matches {
            Ok(())
        } else {
            Err(CertError::Load {
                origin: key_origin.to_string(),
                reason: format!(
                    "private key does not belong to certificate \"{}\"",
                    subject_of(&self.end_entity)
                ),
            })
        }
    }

    /// Our default local ID with a certificate: its subject DN (ID_DER_ASN1_DN).
    pub fn default_identity(&self) -> Result<Identity, CertError> {
        let der = (self.end_entity.subject_name().to_der())
            .map_err(|e| CertError::Malformed(e.to_string()))?;
        Ok(Identity::DerAsn1Dn(der))
    }

    /// Fails with [`CertError::IdMismatch`] unless `id` names this end entity: its subject
    /// DN (order and spacing tolerant), a subjectAltName (DNS and email case-insensitive,
    /// IP exact) or, for ID_KEY_ID, the SHA-1 of its SubjectPublicKeyInfo or public key.
    pub fn check_identity(&self, id: &Identity) -> Result<(), CertError> {
        if identity_matches(&self.end_entity, id) {
            Ok(())
        } else {
            Err(CertError::IdMismatch {
                id: describe(id),
                subject: subject_of(&self.end_entity),
            })
        }
    }
}

/// The subject DN of the DER certificate `der` as text (`O=Test, CN=ca`); None if it
/// does not parse.
pub fn certificate_subject(der: &[u8]) -> Option<String> {
    X509::from_der(der).ok().map(|cert| subject_of(&cert))
}

/// Whether the DER certificate `der` is named by `id` (as [`identity_matches`]); a
/// certificate that does not parse is named by nothing.
pub fn certificate_named_by(der: &[u8], id: &Identity) -> bool {
    X509::from_der(der).is_ok_and(|cert| identity_matches(&cert, id))
}

fn identity_matches(cert: &X509Ref, id: &Identity) -> bool {
    let alt_names = cert.subject_alt_names();
    let mut alt_names = alt_names.iter().flatten();
    match id {
        Identity::DerAsn1Dn(der) => DistinguishedName::from_der(der)
            .is_some_and(|dn| dn.matches(&DistinguishedName::from_name(cert.subject_name()))),
        Identity::Fqdn(name) => {
            alt_names.any(|n| n.dnsname().is_some_and(|d| d.eq_ignore_ascii_case(name)))
        }
        Identity::Rfc822(email) => {
            alt_names.any(|n| n.email().is_some_and(|e| e.eq_ignore_ascii_case(email)))
        }
        Identity::Address(address) => {
            alt_names.any(|n| n.ipaddress().is_some_and(|ip| ip_equals(ip, address)))
        }
        Identity::KeyId(key_id) => key_ids(cert).iter().any(|k| k == key_id),
        Identity::Other { .. } => false,
    }
}

fn ip_equals(octets: &[u8], address: &IpAddr) -> bool {
    match address {
        IpAddr::V4(a) => octets == a.octets(),
        IpAddr::V6(a) => octets == a.octets(),
    }
}

/// SHA-1 of the SubjectPublicKeyInfo and of the subjectPublicKey bits, the key IDs
/// strongSwan and libreswan use.
fn key_ids(cert: &X509Ref) -> Vec<Vec<u8>> {
    let Ok(spki) = cert.public_key().and_then(|k| k.public_key_to_der()) else {
        return vec![];
    };
    let mut ids = vec![sha1(&spki)];
    let mut outer = Der::new(&spki);
    if let Some(mut content) = outer.read(super::der::SEQUENCE).map(Der::new) {
        let bits = content
            .read(super::der::SEQUENCE)
            .and_then(|_| content.read(0x03));
        if let Some((_unused_bits, key)) = bits.and_then(<[u8]>::split_first) {
            ids.push(sha1(key));
        }
    }
    ids
}

fn sha1(data: &[u8]) -> Vec<u8> {
    hash(MessageDigest::sha1(), data)
        .map(|d| d.to_vec())
        .unwrap_or_default()
}

/// An identity for messages: the DN as text, names and addresses as they are.
pub fn describe(id: &Identity) -> String {
    match id {
        Identity::Address(a) => a.to_string(),
        Identity::Fqdn(name) => format!("fqdn:{name}"),
        Identity::Rfc822(email) => format!("email:{email}"),
        Identity::DerAsn1Dn(der) => match DistinguishedName::from_der(der) {
            Some(dn) => format!("\"{dn}\""),
            None => "(unparsable DN)".into(),
        },
        Identity::KeyId(key) => format!(
            "keyid:{}",
            key.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ),
        Identity::Other { id_type, .. } => format!("(ID type {id_type})"),
    }
}

/// The CAs we trust and the CRLs we check against.
pub struct TrustStore {
    anchors: Vec<X509>,
    crl_files: Vec<PathBuf>,
    store: X509Store,
}

impl fmt::Debug for TrustStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let subjects: Vec<String> = self.anchors.iter().map(|c| subject_of(c)).collect();
        write!(
            f,
            "TrustStore({subjects:?}, {} CRL files)",
            self.crl_files.len()
        )
    }
}

impl TrustStore {
    /// Loads CA certificates (PEM files, one or more each) and CRL files (PEM). Every file
    /// must contain at least one certificate / CRL: an unreadable one is an error.
    pub fn load(ca_files: &[PathBuf], crl_files: &[PathBuf]) -> Result<Self, CertError> {
        let mut anchors = Vec::new();
        for path in ca_files {
            let certs = X509::stack_from_pem(&read_file(path)?)
                .map_err(|_| load_error(path, "not a PEM certificate file"))?;
            if certs.is_empty() {
                return Err(load_error(path, "no certificate in the file"));
            }
            anchors.extend(certs);
        }
        for path in crl_files {
            X509Crl::from_pem(&read_file(path)?).map_err(|_| load_error(path, "not a PEM CRL"))?;
            // OpenSSL's CRL lookup takes the name as UTF-8 and would panic otherwise.
            if path.to_str().is_none() {
                return Err(load_error(path, "CRL file name is not UTF-8"));
            }
        }
        Self::new(anchors, crl_files.to_vec())
    }

    fn new(anchors: Vec<X509>, crl_files: Vec<PathBuf>) -> Result<Self, CertError> {
        if anchors.is_empty() {
            return Err(CertError::Load {
                origin: "ca".into(),
                reason: "no trusted CA certificate given".into(),
            });
        }
        let store = build_store(&anchors, &crl_files, None)?;
        Ok(TrustStore {
            anchors,
            crl_files,
            store,
        })
    }

    /// Our CERTREQ payload: the SHA-1 of each CA's SubjectPublicKeyInfo.
    pub fn certificate_request(&self) -> CertPayload {
        let hashes: Vec<[u8; 20]> = (self.anchors.iter())
            .filter_map(|ca| ca.public_key().and_then(|k| k.public_key_to_der()).ok())
            .map(|spki| openssl::sha::sha1(&spki))
            .collect();
        CertPayload::x509_request(&hashes)
    }

    /// Verifies `chain` now; returns the end entity's public key.
    pub fn verify(&self, chain: &CertChain) -> Result<PublicKey, CertError> {
        verify_with(&self.store, chain)
    }

    /// Verifies `chain` at `unix_time` (seconds); CRL files are read again.
    pub fn verify_at(&self, chain: &CertChain, unix_time: i64) -> Result<PublicKey, CertError> {
        let store = build_store(&self.anchors, &self.crl_files, Some(unix_time))?;
        verify_with(&store, chain)
    }
}

fn build_store(
    anchors: &[X509],
    crl_files: &[PathBuf],
    time: Option<i64>,
) -> Result<X509Store, CertError> {
    let internal = |e: openssl::error::ErrorStack| CertError::Load {
        origin: "trust store".into(),
        reason: e.to_string(),
    };
    let mut builder = X509StoreBuilder::new().map_err(internal)?;
    for ca in anchors {
        builder.add_cert(ca.clone()).map_err(internal)?;
    }
    if !crl_files.is_empty() {
        let lookup = builder.add_lookup(X509Lookup::file()).map_err(internal)?;
        for path in crl_files {
            lookup
                .load_crl_file(path, SslFiletype::PEM)
                .map_err(|_| load_error(path, "not a PEM CRL"))?;
        }
        builder
            .set_flags(X509VerifyFlags::CRL_CHECK)
            .map_err(internal)?;
    }
    if let Some(time) = time {
        let mut param = X509VerifyParam::new().map_err(internal)?;
        param.set_time(time);
        if !crl_files.is_empty() {
            param
                .set_flags(X509VerifyFlags::CRL_CHECK)
                .map_err(internal)?;
        }
        builder.set_param(&param).map_err(internal)?;
    }
    Ok(builder.build())
}

fn verify_with(store: &X509Store, chain: &CertChain) -> Result<PublicKey, CertError> {
    let malformed = |e: openssl::error::ErrorStack| CertError::Malformed(e.to_string());
    let mut intermediates = Stack::new().map_err(malformed)?;
    for cert in &chain.intermediates {
        intermediates.push(cert.clone()).map_err(malformed)?;
    }
    let mut context = X509StoreContext::new().map_err(malformed)?;
    let outcome = context
        .init(store, &chain.end_entity, &intermediates, |ctx| {
            let ok = ctx.verify_cert()?;
            let failed_at = ctx.current_cert().map(subject_of);
            Ok((ok, ctx.error(), failed_at))
        })
        .map_err(malformed)?;
    match outcome {
        (true, _, _) => {}
        (false, result, failed_at) => {
            let subject = failed_at.unwrap_or_else(|| subject_of(&chain.end_entity));
            return Err(classify(result, subject));
        }
    }
    let allows_signing = (chain.end_entity.key_usage()).is_none_or(|ku| {
        ku.intersects(X509KeyUsage::DIGITAL_SIGNATURE | X509KeyUsage::NON_REPUDIATION)
    });
    if !allows_signing {
        return Err(CertError::Invalid {
            subject: subject_of(&chain.end_entity),
            reason: "key usage does not allow digital signatures".into(),
        });
    }
    chain.public_key()
}

fn classify(result: X509VerifyResult, subject: String) -> CertError {
    match result.as_raw() {
        CERT_HAS_EXPIRED => CertError::Expired { subject },
        CERT_NOT_YET_VALID => CertError::NotYetValid { subject },
        CERT_REVOKED => CertError::Revoked { subject },
        UNABLE_TO_GET_ISSUER_CERT
        | UNABLE_TO_GET_ISSUER_CERT_LOCALLY
        | UNABLE_TO_VERIFY_LEAF_SIGNATURE
        | DEPTH_ZERO_SELF_SIGNED_CERT
        | SELF_SIGNED_CERT_IN_CHAIN
        | CERT_UNTRUSTED => CertError::UnknownCa { subject },
        _ => CertError::Invalid {
            subject,
            reason: result.error_string().to_string(),
        },
    }
}

#[cfg(test)]
pub(crate) mod tests;
