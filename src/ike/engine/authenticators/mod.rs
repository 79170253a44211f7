//! How each side proves its identity in IKE_AUTH (RFC 7296 section 2.15), one module per
//! authentication method, used alike by initiator and responder (as strongSwan's
//! `authenticators/`). Our method and the one the peer must use are configured apart
//! ([`LocalAuth`], [`RemoteAuth`]): a peer may answer a signature with a PSK MIC.
//!
//! ```text
//! SignedOctets = RealMessage | Nonce of the other side | prf(SK_p, RestOfIDPayload)
//! ```
//!
//! [`AuthInputs::signed_octets`] builds them for either side; each method only signs or
//! checks them: [`psk`] (shared key MIC), [`signature`] (our RFC 7427 or classic signature
//! and CERT payloads), [`pubkey`] (the peer's signature, with a configured raw key or the
//! key of a certificate chain verified against our CAs).

mod psk;
mod pubkey;
mod signature;

use std::sync::Arc;

use crate::ike::auth::keys::{PrivateKey, PublicKey};
use crate::ike::auth::signature::{SignatureError, SignatureHash};
use crate::ike::auth::x509::{CertChain, CertError, TrustStore};
use crate::ike::codec::{Auth, AuthMethod, Certificate, Identification, Identity};
use crate::ike::crypto::{signed_octets, IkeSaKeys, Secret};
use crate::proposal::Prf;

pub use signature::SendCert;

/// Why an AUTH payload could not be built or was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the peer authenticated with method {got}, we expect {expected}")]
    WrongMethod { expected: u8, got: u8 },
    #[error("the pre-shared key MIC does not match: check that both sides use the same pre-shared key and identities")]
    Mismatch,
    /// Making our signature or checking the peer's: wrong signature, no shared hash, ...
    #[error("{0}")]
    Signature(#[from] SignatureError),
    /// The peer's certificate chain: unknown CA, expired, revoked, ID mismatch, garbage.
    #[error("{0}")]
    Certificate(#[from] CertError),
    #[error("the IKE SA has no keys yet")]
    NoKeys,
    #[error("encoding the ID payload: {0}")]
    Encode(#[from] crate::ike::codec::EncodeError),
    /// Computing a PRF for the AUTH payload failed (OpenSSL).
    #[error("computing the AUTH payload: {0}")]
    Crypto(#[from] crate::ike::crypto::CryptoError),
}

/// How we authenticate to the peer (swanctl's `local` auth round).
#[derive(Clone, Debug)]
pub enum LocalAuth {
    Psk(Secret),
    /// A signature with our private key; with `chain`, the certificate (and intermediates)
    /// that vouch for it go in CERT payloads as `send_cert` says.
    Signature {
        key: Arc<PrivateKey>,
        chain: Option<CertChain>,
        send_cert: SendCert,
    },
}

/// How the peer must authenticate to us (swanctl's `remote` auth round).
#[derive(Clone, Debug)]
pub enum RemoteAuth {
    Psk(Secret),
    /// A signature by this raw public key (`remote_public_key`); CERT payloads are ignored.
    PublicKey {
        key: PublicKey,
    },
    /// A signature by the key of a certificate the peer sends, verified against `trust`
    /// and naming the peer's ID (subject DN or subjectAltName).
    Certificate {
        trust: Arc<TrustStore>,
    },
}

impl RemoteAuth {
    /// Our CERTREQ payload: only when we verify certificates, naming our CAs.
    pub fn certificate_request(&self) -> Option<Certificate> {
        match self {
            RemoteAuth::Certificate { trust } => Some(trust.certificate_request()),
            RemoteAuth::Psk(_) | RemoteAuth::PublicKey { .. } => None,
        }
    }
}

/// What a method has to make our AUTH payload.
pub struct Signing<'a> {
    pub prf: Prf,
    pub signed_octets: &'a [u8],
    /// The hashes the peer announced in SIGNATURE_HASH_ALGORITHMS (RFC 7427), if it did.
    pub peer_hashes: Option<&'a [SignatureHash]>,
}

/// What a method has to check the peer's AUTH payload.
pub struct Checking<'a> {
    pub prf: Prf,
    pub signed_octets: &'a [u8],
    pub auth: &'a Auth,
    /// The identity the peer claims in its ID payload.
    pub peer_id: &'a Identity,
    /// The bodies of the peer's CERT payloads, in order.
    pub certificates: &'a [Certificate],
}

/// Makes our AUTH payload.
pub trait Authenticator {
    fn authenticate(&self, signing: &Signing<'_>) -> Result<Auth, AuthError>;
}

/// Checks the peer's AUTH payload; says how the peer proved itself, for the log.
pub trait Verifier {
    fn verify(&self, checking: &Checking<'_>) -> Result<String, AuthError>;
}

impl Authenticator for LocalAuth {
    fn authenticate(&self, signing: &Signing<'_>) -> Result<Auth, AuthError> {
        match self {
            LocalAuth::Psk(key) => psk::authenticate(key, signing),
            LocalAuth::Signature { key, .. } => signature::authenticate(key, signing),
        }
    }
}

impl Verifier for RemoteAuth {
    fn verify(&self, checking: &Checking<'_>) -> Result<String, AuthError> {
        match self {
            RemoteAuth::Psk(key) => psk::verify(key, checking).map(|()| "pre-shared key".into()),
            RemoteAuth::PublicKey { key } => pubkey::verify(key, checking),
            RemoteAuth::Certificate { trust } => pubkey::verify_certified(trust, checking),
        }
    }
}

/// Fails unless the peer used `expected`.
fn expect_method(expected: AuthMethod, auth: &Auth) -> Result<(), AuthError> {
    if auth.method == expected {
        Ok(())
    } else {
        Err(AuthError::WrongMethod {
            expected: expected.to_u8(),
            got: auth.method.to_u8(),
        })
    }
}

/// What IKE_SA_INIT left for the AUTH payloads of both sides.
pub struct AuthInputs<'a> {
    pub prf: Prf,
    pub init_request: &'a [u8],
    pub init_response: &'a [u8],
    pub nonce_i: &'a [u8],
    pub nonce_r: &'a [u8],
    pub keys: &'a IkeSaKeys,
    /// RFC 9242's IntAuth, appended to both sides' signed octets; empty without
    /// IKE_INTERMEDIATE.
    pub int_auth: Vec<u8>,
}

impl AuthInputs<'_> {
    /// The octets the AUTH payload of the side that sends `id` covers (the initiator's if
    /// `initiator`): its IKE_SA_INIT message, the other side's nonce, its SK_p over its ID,
    /// and IntAuth.
    pub fn signed_octets(
        &self,
        initiator: bool,
        id: &Identification,
    ) -> Result<Vec<u8>, AuthError> {
        let (message, other_nonce, sk_p) = if initiator {
            (self.init_request, self.nonce_r, &self.keys.sk_pi)
        } else {
            (self.init_response, self.nonce_i, &self.keys.sk_pr)
        };
        let id_body = id.auth_octets()?;
        let mut octets = signed_octets(self.prf, message, other_nonce, sk_p, &id_body)?;
        octets.extend_from_slice(&self.int_auth);
        Ok(octets)
    }
}

#[cfg(test)]
mod tests;
