//! The credential files a profile names, examined when it is loaded: secret files as
//! [`super::secrets`] requires, then every key, certificate, CA and CRL parsed, and our
//! key matched against our certificate. Messages name files and say why, never content.

use std::ops::Range;
use std::path::{Path, PathBuf};

use openssl::x509::{X509Crl, X509};

use super::auth::AuthSpans;
use super::diagnostic::{Diagnostic, SourceFile};
use super::file::{self, FileError};
use super::reader::Context;
use super::secrets;
use super::tunnel::Parsed;
use crate::ike::auth::keys::{PrivateKey, PublicKey};
use crate::ike::auth::x509::{CertChain, CertError};
use crate::ike::engine::wire_identity;
use crate::model::{Auth, Dn, Identity, LocalCredential, PeerKey, RemoteCredential};

/// Resolves the credential paths of `parsed` against the profile's directory and examines
/// the files; with a certificate and no `local_id`, our identity becomes its subject.
pub(super) fn check(
    source: &SourceFile,
    parsed: &mut Parsed,
    insecure_secrets: bool,
) -> Vec<Diagnostic> {
    for path in parsed.tunnel.ike.auth.paths_mut() {
        *path = secrets::resolve(source.path(), path);
    }
    let ctx = Context::new(source);
    let mut found = Vec::new();
    check_files(&ctx, parsed, &mut |span, key, path| {
        let problem = secrets::check(source, span.clone(), key, path, insecure_secrets);
        let usable = problem.is_none();
        found.extend(problem);
        usable
    });
    found.extend(ctx.into_diagnostics());
    found
}

/// [`check`] once paths are resolved; `secret` examines a secret file, true if it is fit to read.
fn check_files(
    ctx: &Context<'_>,
    parsed: &mut Parsed,
    secret: &mut dyn FnMut(&Range<usize>, &str, &Path) -> bool,
) {
    let spans = &parsed.spans;
    let ike = match &parsed.tunnel.ike.auth {
        Auth::Manual { keys_file } => {
            secret(&spans.psk_file, "manual_keys_file", keys_file);
            return;
        }
        Auth::Ike(ike) => ike.clone(),
    };
    if let Some(psk) = ike.psk_file() {
        secret(&spans.psk_file, "psk_file", psk);
    }
    if let LocalCredential::PublicKey {
        private_key,
        certificate,
    } = &ike.local
    {
        let key = secret(&spans.auth.private_key, "private_key", private_key)
            .then(|| private_key_in(ctx, &spans.auth.private_key, private_key))
            .flatten();
        let chain = certificate
            .as_ref()
            .and_then(|path| certificate_in(ctx, &spans.auth.certificate, path));
        if let (Some(key), Some(chain)) = (&key, &chain) {
            if let Err(e) = chain.check_private_key(key, &private_key.display().to_string()) {
                ctx.error(
                    spans.auth.certificate.clone(),
                    e.to_string(),
                    Some(
                        "private_key and certificate must be the two halves of one key pair".into(),
                    ),
                );
            }
        }
        if let Some(chain) = &chain {
            our_identity(ctx, parsed, chain);
        }
    }
    let spans = &parsed.spans.auth;
    match &ike.remote {
        RemoteCredential::PublicKey {
            key: PeerKey::File(path),
        } => peer_key_in(ctx, &spans.remote_public_key, path),
        RemoteCredential::Certificate { ca, crl } => trust_files_in(ctx, spans, ca, crl),
        RemoteCredential::Psk { .. }
        | RemoteCredential::PublicKey {
            key: PeerKey::Rfc3110(_),
        } => {}
    }
}

/// The CA certificates and CRLs the peer's certificate is checked against.
fn trust_files_in(ctx: &Context<'_>, spans: &AuthSpans, ca: &[PathBuf], crl: &[PathBuf]) {
    for (path, span) in ca.iter().zip(&spans.ca) {
        let parsed = readable(ctx, span, "ca", path).map(|pem| X509::stack_from_pem(&pem));
        match parsed {
            Some(Ok(certs)) if !certs.is_empty() => {}
            Some(_) => unparsable(ctx, span, "ca", path, "not a PEM certificate file"),
            None => {}
        }
    }
    for (path, span) in crl.iter().zip(&spans.crl) {
        let parsed = readable(ctx, span, "crl", path).map(|pem| X509Crl::from_pem(&pem));
        if let Some(Err(_)) = parsed {
            unparsable(ctx, span, "crl", path, "not a PEM CRL");
        } else if parsed.is_some() && path.to_str().is_none() {
            // OpenSSL's CRL lookup takes the name as UTF-8 (TrustStore::load).
            unparsable(ctx, span, "crl", path, "file name is not UTF-8");
        }
    }
}

/// Our private key, once [`secrets::check`] found its file fit to read.
fn private_key_in(ctx: &Context<'_>, span: &Range<usize>, path: &Path) -> Option<PrivateKey> {
    let shown = path.display();
    let pem = match file::read(path) {
        Ok(pem) => crate::ike::crypto::Secret::new(pem),
        // `check` run by a user other than root: the daemon (root) will read it.
        Err(FileError::Io(e)) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            ctx.warning(
                span.clone(),
                format!("private key {shown}: cannot check the key: {e}"),
                Some("run routevpn check as root to check the key".into()),
            );
            return None;
        }
        Err(e) => {
            ctx.error(span.clone(), format!("private key {shown}: {e}"), None);
            return None;
        }
    };
    PrivateKey::from_pem(pem.expose(), &format!("private key {shown}"))
        .map_err(|e| {
            ctx.error(
                span.clone(),
                e.to_string(),
                Some("RSA 2048-8192, ECDSA P-256/384/521 or Ed25519, PEM, unencrypted".into()),
            )
        })
        .ok()
}

/// The bytes of a public credential file; an unreadable one is an error, never skipped.
fn readable(ctx: &Context<'_>, span: &Range<usize>, key: &str, path: &Path) -> Option<Vec<u8>> {
    file::read(path)
        .map_err(|e| ctx.error(span.clone(), format!("{key} {}: {e}", path.display()), None))
        .ok()
}

fn unparsable(ctx: &Context<'_>, span: &Range<usize>, key: &str, path: &Path, why: &str) {
    ctx.error(
        span.clone(),
        format!("{key} {}: {why}", path.display()),
        None,
    );
}

fn certificate_in(ctx: &Context<'_>, span: &Range<usize>, path: &Path) -> Option<CertChain> {
    let pem = readable(ctx, span, "certificate", path)?;
    CertChain::from_pem(&pem, path)
        .map_err(|e| {
            ctx.error(
                span.clone(),
                format!("certificate {e}"),
                Some("PEM: our certificate first, then its intermediates".into()),
            )
        })
        .ok()
}

/// The peer's raw key from a file: PEM SubjectPublicKeyInfo, or the `0s…` text.
fn peer_key_in(ctx: &Context<'_>, span: &Range<usize>, path: &Path) {
    let Some(bytes) = readable(ctx, span, "remote_public_key", path) else {
        return;
    };
    let origin = format!("remote_public_key {}", path.display());
    let text = String::from_utf8_lossy(&bytes);
    let parsed = match super::auth::rfc3110_text(&text) {
        Some(rfc3110) => PublicKey::from_rfc3110(rfc3110, &origin),
        None => PublicKey::from_pem(&bytes, &origin),
    };
    if let Err(e) = parsed {
        ctx.error(
            span.clone(),
            e.to_string(),
            Some("PEM \"PUBLIC KEY\" (openssl pkey -pubout) or libreswan's 0s… form".into()),
        );
    }
}

/// Our identity with a certificate: its subject by default; a `local_id` it does not
/// name would make the peer refuse us.
fn our_identity(ctx: &Context<'_>, parsed: &mut Parsed, chain: &CertChain) {
    let certificate = parsed.spans.auth.certificate.clone();
    match (&parsed.tunnel.local_id, &parsed.spans.local_id) {
        (Some(id), Some(span)) => {
            if let Err(e) = chain.check_identity(&wire_identity(id)) {
                let why = match e {
                    CertError::IdMismatch { subject, .. } => format!(
                        "local_id {id} is neither the subject nor a subjectAltName of our certificate \"{subject}\""
                    ),
                    other => format!("local_id {id}: {other}"),
                };
                ctx.error(
                    span.clone(),
                    why,
                    Some("leave local_id out to use the certificate's subject".into()),
                );
            }
        }
        _ => match chain.default_identity().ok().and_then(|id| match id {
            crate::ike::codec::Identity::DerAsn1Dn(der) => Dn::from_der(&der),
            _ => None,
        }) {
            Some(dn) => parsed.tunnel.local_id = Some(Identity::Dn(dn)),
            None => ctx.error(
                certificate,
                "certificate: its subject is not a readable DN",
                None,
            ),
        },
    }
}

#[cfg(test)]
mod tests;
