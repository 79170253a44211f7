//! Pre-shared key authentication (RFC 7296 section 2.15, method 2: shared key MIC); the
//! MIC itself is computed in `crypto::auth`.

use super::{expect_method, AuthError, Checking, Signing};
use crate::ike::codec::{Auth, AuthMethod};
use crate::ike::crypto::{psk_auth, verify_psk_auth, Secret};

pub(super) fn authenticate(key: &Secret, signing: &Signing<'_>) -> Result<Auth, AuthError> {
    Ok(Auth {
        method: AuthMethod::SharedKeyMic,
        data: psk_auth(signing.prf, key, signing.signed_octets)?,
    })
}

pub(super) fn verify(key: &Secret, checking: &Checking<'_>) -> Result<(), AuthError> {
    let Checking {
        prf,
        signed_octets,
        auth,
        ..
    } = *checking;
    expect_method(AuthMethod::SharedKeyMic, auth)?;
    verify_psk_auth(prf, key, signed_octets, &auth.data).map_err(|_| AuthError::Mismatch)
}
