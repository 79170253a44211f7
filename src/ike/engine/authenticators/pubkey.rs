//! The peer's signature AUTH payload (any of the methods `auth::signature` knows), checked
//! with a configured raw public key or with the key of the certificate chain the peer sent
//! in CERT payloads, once that chain verifies against our CAs and names the peer's ID.

use super::{AuthError, Checking};
use crate::ike::auth::keys::PublicKey;
use crate::ike::auth::signature::{self, DEFAULT_SCHEMES};
use crate::ike::auth::x509::{CertChain, TrustStore};

pub(super) fn verify(key: &PublicKey, checking: &Checking<'_>) -> Result<String, AuthError> {
    let auth = checking.auth;
    let scheme = signature::verify(
        key,
        auth.method,
        &auth.data,
        checking.signed_octets,
        DEFAULT_SCHEMES,
    )?;
    Ok(format!(
        "{scheme} signature (AUTH method {})",
        auth.method.to_u8()
    ))
}

pub(super) fn verify_certified(
    trust: &TrustStore,
    checking: &Checking<'_>,
) -> Result<String, AuthError> {
    let chain = CertChain::from_payloads(checking.certificates)?;
    let key = trust.verify(&chain)?;
    chain.check_identity(checking.peer_id)?;
    let how = verify(&key, checking)?;
    Ok(format!("{how} with a certificate from a trusted CA"))
}
