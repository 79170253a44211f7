//! Our signature AUTH payload (RFC 7427 method 14 when the peer announced hash algorithms,
//! else the classic method of our key: 1 for RSA, 9/10/11 for ECDSA) and the CERT payloads
//! that vouch for our key. Ed25519 has no classic method: without the peer's hashes we
//! cannot sign with it, and say so.

use super::{AuthError, LocalAuth, Signing};
use crate::ike::auth::keys::PrivateKey;
use crate::ike::auth::signature::{self, Signing as How, DEFAULT_SCHEMES};
use crate::ike::codec::{Auth, AuthMethod, Certificate};

/// When we send our certificate chain in CERT payloads (swanctl's `send_cert`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SendCert {
    Always,
    /// Only if the peer sent CERTREQ (strongSwan's default).
    #[default]
    IfAsked,
    Never,
}

pub(super) fn authenticate(key: &PrivateKey, signing: &Signing<'_>) -> Result<Auth, AuthError> {
    let octets = signing.signed_octets;
    match signature::select(key.kind(), signing.peer_hashes, DEFAULT_SCHEMES)? {
        How::Digital(scheme) => Ok(Auth {
            method: AuthMethod::DigitalSignature,
            data: signature::sign(key, scheme, octets)?,
        }),
        How::Classic(_) => {
            let (method, data) = signature::sign_classic(key, octets)?;
            Ok(Auth { method, data })
        }
    }
}

impl LocalAuth {
    /// The CERT payloads to send with our AUTH; `asked`: the peer sent CERTREQ.
    pub fn certificates(&self, asked: bool) -> Result<Vec<Certificate>, AuthError> {
        match self {
            LocalAuth::Signature {
                chain: Some(chain),
                send_cert,
                ..
            } if *send_cert == SendCert::Always || (*send_cert == SendCert::IfAsked && asked) => {
                Ok(chain.payloads()?)
            }
            _ => Ok(Vec::new()),
        }
    }
}
