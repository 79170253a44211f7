//! Pre-shared key authentication (RFC 7296 section 2.15, method 2: shared key MIC); the
//! MIC itself is computed in `crypto::auth`.

use super::{expect_method, AuthError};
use crate::ike::codec::{Auth, AuthMethod};
use crate::ike::crypto::{psk_auth, verify_psk_auth, Secret};
use crate::proposal::Prf;

pub(super) fn authenticate(prf: Prf, key: &Secret, signed_octets: &[u8]) -> Auth {
    Auth {
        method: AuthMethod::SharedKeyMic,
        data: psk_auth(prf, key, signed_octets),
    }
}

pub(super) fn verify(
    prf: Prf,
    key: &Secret,
    signed_octets: &[u8],
    auth: &Auth,
) -> Result<(), AuthError> {
    expect_method(AuthMethod::SharedKeyMic, auth)?;
    verify_psk_auth(prf, key, signed_octets, &auth.data).map_err(|_| AuthError::Mismatch)
}
