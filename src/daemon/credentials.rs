//! The engine's authenticators for a tunnel, from the credential files its profile names.
//! The profile check examined them already; they are read again here, when the tunnel is
//! applied, since they may have changed since. Our private key is a secret file like
//! `psk_file` (read the same way, its path shown redacted). Errors name the file and say
//! why, never its content; nothing unreadable becomes "no authentication".

use std::path::Path;
use std::sync::Arc;

use super::psk;
use crate::ike::auth::keys::{PrivateKey, PublicKey};
use crate::ike::auth::x509::{CertChain, TrustStore};
use crate::ike::crypto::Secret;
use crate::ike::engine::{LocalAuth, RemoteAuth, SendCert as EngineSendCert};
use crate::model::{IkeAuth, LocalCredential, PeerKey, RemoteCredential, SendCert};
use crate::profile::{file, rfc3110_text, shown_secret_path};

/// How we authenticate and how the peer must, as the engine runs them.
pub fn authenticators(auth: &IkeAuth) -> Result<(LocalAuth, RemoteAuth), String> {
    Ok((local(&auth.local, auth.send_cert)?, remote(&auth.remote)?))
}

fn local(credential: &LocalCredential, send_cert: SendCert) -> Result<LocalAuth, String> {
    match credential {
        LocalCredential::Psk { file } => Ok(LocalAuth::Psk(read_psk(file)?)),
        LocalCredential::PublicKey {
            private_key,
            certificate,
        } => {
            let key = private_key_at(private_key)?;
            let origin = format!("private key {}", shown_secret_path(private_key));
            let chain = match certificate {
                Some(path) => {
                    // Through the profile reader: a FIFO or device in its place cannot block.
                    let pem = file::read(path)
                        .map_err(|e| format!("certificate {}: {e}", path.display()))?;
                    let chain = CertChain::from_pem(&pem, path).map_err(|e| e.to_string())?;
                    chain
                        .check_private_key(&key, &origin)
                        .map_err(|e| e.to_string())?;
                    Some(chain)
                }
                None => None,
            };
            Ok(LocalAuth::Signature {
                key: Arc::new(key),
                chain,
                send_cert: match send_cert {
                    SendCert::Always => EngineSendCert::Always,
                    SendCert::IfAsked => EngineSendCert::IfAsked,
                    SendCert::Never => EngineSendCert::Never,
                },
            })
        }
    }
}

/// Our private key, read as a secret file; errors name it redacted, never its content.
pub fn private_key_at(path: &Path) -> Result<PrivateKey, String> {
    let origin = format!("private key {}", shown_secret_path(path));
    let pem = file::read(path)
        .map(Secret::new)
        .map_err(|e| format!("{origin}: {e}"))?;
    PrivateKey::from_pem(pem.expose(), &origin).map_err(|e| e.to_string())
}

fn remote(credential: &RemoteCredential) -> Result<RemoteAuth, String> {
    match credential {
        RemoteCredential::Psk { file } => Ok(RemoteAuth::Psk(read_psk(file)?)),
        RemoteCredential::PublicKey { key } => Ok(RemoteAuth::PublicKey {
            key: peer_key(key)?,
        }),
        RemoteCredential::Certificate { ca, crl } => {
            let trust = TrustStore::load(ca, crl).map_err(|e| e.to_string())?;
            Ok(RemoteAuth::Certificate {
                trust: Arc::new(trust),
            })
        }
    }
}

fn read_psk(path: &Path) -> Result<Secret, String> {
    psk::read(path).map_err(|e| e.to_string())
}

/// The peer's raw key: a PEM SPKI or libreswan `0s…` file, or the `0s…` text itself.
fn peer_key(key: &PeerKey) -> Result<PublicKey, String> {
    let parsed = match key {
        PeerKey::Rfc3110(text) => {
            let text = rfc3110_text(text).unwrap_or(text);
            PublicKey::from_rfc3110(text, "remote_public_key")
        }
        PeerKey::File(path) => {
            let origin = format!("remote_public_key {}", path.display());
            let bytes = file::read(path).map_err(|e| format!("{origin}: {e}"))?;
            match rfc3110_text(&String::from_utf8_lossy(&bytes)) {
                Some(text) => PublicKey::from_rfc3110(text, &origin),
                None => PublicKey::from_pem(&bytes, &origin),
            }
        }
    };
    parsed.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests;
