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
//! checks them.

mod psk;

use crate::ike::codec::{Auth, AuthMethod, Identification};
use crate::ike::crypto::{signed_octets, IkeSaKeys, Secret};
use crate::proposal::Prf;

/// Why an AUTH payload could not be built or was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the peer authenticated with method {got}, we expect {expected}")]
    WrongMethod { expected: u8, got: u8 },
    #[error("the AUTH payload does not match")]
    Mismatch,
    #[error("the IKE SA has no keys yet")]
    NoKeys,
    #[error("encoding the ID payload: {0}")]
    Encode(#[from] crate::ike::codec::EncodeError),
}

/// How we authenticate to the peer (swanctl's `local` auth round).
#[derive(Clone, Debug)]
pub enum LocalAuth {
    Psk(Secret),
}

/// How the peer must authenticate to us (swanctl's `remote` auth round).
#[derive(Clone, Debug)]
pub enum RemoteAuth {
    Psk(Secret),
}

/// What a method has to make our AUTH payload. Signature methods will add the hash
/// algorithms the peer announced (RFC 7427 SIGNATURE_HASH_ALGORITHMS).
pub struct Signing<'a> {
    pub prf: Prf,
    pub signed_octets: &'a [u8],
}

/// What a method has to check the peer's AUTH payload. Public-key methods will add the
/// peer's identity and CERT payloads.
pub struct Checking<'a> {
    pub prf: Prf,
    pub signed_octets: &'a [u8],
    pub auth: &'a Auth,
}

/// Makes our AUTH payload.
pub trait Authenticator {
    fn authenticate(&self, signing: &Signing<'_>) -> Result<Auth, AuthError>;
}

/// Checks the peer's AUTH payload.
pub trait Verifier {
    fn verify(&self, checking: &Checking<'_>) -> Result<(), AuthError>;
}

impl Authenticator for LocalAuth {
    fn authenticate(&self, signing: &Signing<'_>) -> Result<Auth, AuthError> {
        match self {
            LocalAuth::Psk(key) => Ok(psk::authenticate(key, signing)),
        }
    }
}

impl Verifier for RemoteAuth {
    fn verify(&self, checking: &Checking<'_>) -> Result<(), AuthError> {
        match self {
            RemoteAuth::Psk(key) => psk::verify(key, checking),
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
}

impl AuthInputs<'_> {
    /// The octets the AUTH payload of the side that sends `id` covers (the initiator's if
    /// `initiator`): its IKE_SA_INIT message, the other side's nonce, its SK_p over its ID.
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
        Ok(signed_octets(
            self.prf,
            message,
            other_nonce,
            sk_p,
            &id_body,
        ))
    }
}

#[cfg(test)]
mod tests;
