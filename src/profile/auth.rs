//! `[ike]` authentication: the method each side proves itself with (`auth`, `remote_auth`)
//! and the credentials it needs, as paths. The files are examined when the profile is
//! loaded ([`super::credentials`]); an inline `0s…` key is checked here.

use std::ops::Range;

use super::fields::choice;
use super::reader::{Section, Val};
use crate::ike::auth::keys::PublicKey;
use crate::model::{Auth, IkeAuth, LocalCredential, PeerKey, RemoteCredential, SendCert};

/// Where the credential keys are, for the file checks.
#[derive(Clone, Debug, Default)]
pub struct AuthSpans {
    pub private_key: Range<usize>,
    pub certificate: Range<usize>,
    pub remote_public_key: Range<usize>,
    pub ca: Vec<Range<usize>>,
    pub crl: Vec<Range<usize>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Psk,
    PublicKey,
}

const METHODS: &[(&str, Method)] = &[("psk", Method::Psk), ("pubkey", Method::PublicKey)];

const PSK_HINT: &str = "psk_file = \"/etc/routevpn/secrets/<tunnel>.psk\" (root-owned, mode 0600)";

/// What libreswan's `ipsec showhostkey --left` / `--right` print before the key: pasted
/// lines are accepted whole.
const SHOWHOSTKEY_PREFIXES: &[&str] = &["leftrsasigkey=", "rightrsasigkey="];

/// The `0s…` text of a pasted key, without the `leftrsasigkey=` prefix, if it is one.
pub(crate) fn rfc3110_text(value: &str) -> Option<&str> {
    let text = value.trim();
    let text = (SHOWHOSTKEY_PREFIXES.iter())
        .find_map(|p| text.strip_prefix(p))
        .unwrap_or(text);
    text.starts_with("0s").then_some(text)
}

/// `auth`, `remote_auth` and their credentials. `auth` defaults to the method whose
/// credential is present; `remote_auth` to `auth`.
pub(super) fn read_auth(
    section: &Section<'_>,
    psk_span: &mut Range<usize>,
    spans: &mut AuthSpans,
) -> Option<Auth> {
    let ctx = section.ctx;
    let psk_file = section.string("psk_file");
    let private_key = section.string("private_key");
    let certificate = section.string("certificate");
    let remote_key = section.string("remote_public_key");
    let ca = section.strings("ca");
    let crl = section.strings("crl").unwrap_or_default();
    if let Some(v) = &psk_file {
        *psk_span = v.span.clone();
    }
    let span_of = |v: &Option<Val<&str>>| v.as_ref().map_or(0..0, |v| v.span.clone());
    spans.private_key = span_of(&private_key);
    spans.certificate = span_of(&certificate);
    spans.remote_public_key = span_of(&remote_key);
    spans.ca = ca.iter().flatten().map(|v| v.span.clone()).collect();
    spans.crl = crl.iter().map(|v| v.span.clone()).collect();

    let local = if section.contains("auth") {
        choice(section, "auth", METHODS, Method::Psk)?
    } else {
        match (&psk_file, &private_key) {
            (Some(_), Some(key)) => {
                ctx.error(
                    key.span.clone(),
                    "both psk_file and private_key are set: which one authenticates us?",
                    Some("choose with auth = \"psk\" or auth = \"pubkey\"".into()),
                );
                return None;
            }
            (None, Some(_)) => Method::PublicKey,
            _ => Method::Psk,
        }
    };
    let remote = choice(section, "remote_auth", METHODS, local)?;
    let send_cert = choice(
        section,
        "send_cert",
        &[
            ("always", SendCert::Always),
            ("ifasked", SendCert::IfAsked),
            ("never", SendCert::Never),
        ],
        SendCert::IfAsked,
    );
    warn_unused(section, local, remote);

    let psk = match (&psk_file, local == Method::Psk || remote == Method::Psk) {
        (Some(v), true) => Some(v.value),
        (None, true) => {
            section.missing("psk_file", Some(PSK_HINT.into()));
            None
        }
        (_, false) => None,
    };
    let local_credential = match local {
        Method::Psk => psk.map(|file| LocalCredential::Psk { file: file.into() }),
        Method::PublicKey => match &private_key {
            Some(key) => Some(LocalCredential::PublicKey {
                private_key: key.value.into(),
                certificate: certificate.as_ref().map(|c| c.value.into()),
            }),
            None => {
                section.missing(
                    "private_key",
                    Some("private_key = \"/etc/routevpn/secrets/<tunnel>.key\" (PEM, root-owned, mode 0600)".into()),
                );
                None
            }
        },
    };
    let remote_credential = match remote {
        Method::Psk => psk.map(|file| RemoteCredential::Psk { file: file.into() }),
        Method::PublicKey => remote_public_key(section, remote_key.as_ref(), ca.as_deref(), &crl),
    };
    if send_cert == Some(SendCert::Always) && certificate.is_none() {
        ctx.error(
            section
                .value_span("send_cert")
                .unwrap_or(section.span.clone()),
            "send_cert = \"always\" but there is no certificate to send",
            Some("set certificate, or remove send_cert".into()),
        );
        return None;
    }
    Some(Auth::Ike(IkeAuth {
        local: local_credential?,
        remote: remote_credential?,
        send_cert: send_cert?,
    }))
}

/// How the peer proves itself with a signature: one pinned key, or a certificate from `ca`.
fn remote_public_key(
    section: &Section<'_>,
    key: Option<&Val<&str>>,
    ca: Option<&[Val<&str>]>,
    crl: &[Val<&str>],
) -> Option<RemoteCredential> {
    let ctx = section.ctx;
    match (key, ca) {
        (Some(_), Some(ca)) => {
            ctx.error(
                section.key_span("ca").unwrap_or(ca.first()?.span.clone()),
                "remote_public_key and ca are both set: the peer proves itself with one pinned key or with a certificate",
                Some("keep remote_public_key for a raw key (libreswan's rsasigkey), ca for certificates".into()),
            );
            None
        }
        (Some(key), None) => match rfc3110_text(key.value) {
            Some(text) => match PublicKey::from_rfc3110(text, "remote_public_key") {
                Ok(_) => {
                    let text: String = text.chars().filter(|c| !c.is_whitespace()).collect();
                    Some(RemoteCredential::PublicKey {
                        key: PeerKey::Rfc3110(text),
                    })
                }
                Err(e) => {
                    ctx.error(
                        key.span.clone(),
                        format!("remote_public_key: {}", e.problem),
                        Some("paste the key as `ipsec showhostkey` prints it: 0sAwEAA…".into()),
                    );
                    None
                }
            },
            None => Some(RemoteCredential::PublicKey {
                key: PeerKey::File(key.value.into()),
            }),
        },
        (None, Some([])) => {
            ctx.error(
                section.value_span("ca").unwrap_or(section.span.clone()),
                "`ca` in [ike] is empty",
                Some("list the PEM files of the CAs that issue the peer's certificate".into()),
            );
            None
        }
        (None, Some(ca)) => Some(RemoteCredential::Certificate {
            ca: ca.iter().map(|v| v.value.into()).collect(),
            crl: crl.iter().map(|v| v.value.into()).collect(),
        }),
        (None, None) => {
            let span = (section.value_span("remote_auth"))
                .or(section.value_span("auth"))
                .or(section.key_span("private_key"))
                .unwrap_or(section.span.clone());
            ctx.error(
                span,
                "the peer authenticates with a public key, but neither remote_public_key nor ca says which",
                Some("set remote_public_key (the peer's raw key: PEM or 0s…) or ca (the CAs of its certificate)".into()),
            );
            None
        }
    }
}

/// Credentials that the chosen methods do not use: the profile says something it does not do.
fn warn_unused(section: &Section<'_>, local: Method, remote: Method) {
    let name = |m| match m {
        Method::Psk => "psk",
        Method::PublicKey => "pubkey",
    };
    let groups: [(&[&str], bool, String); 4] = [
        (
            &["psk_file"],
            local != Method::Psk && remote != Method::Psk,
            "neither side uses a pre-shared key".into(),
        ),
        (
            &["private_key", "certificate"],
            local != Method::PublicKey,
            format!("auth = \"{}\"", name(local)),
        ),
        (
            &["remote_public_key", "ca"],
            remote != Method::PublicKey,
            format!("the peer uses {}", name(remote)),
        ),
        (
            &["crl"],
            !section.contains("ca"),
            "CRLs are checked only with ca".into(),
        ),
    ];
    let unused = groups
        .iter()
        .filter(|(_, is_unused, _)| *is_unused)
        .flat_map(|(keys, _, why)| keys.iter().map(move |key| (key, why)));
    for (key, why) in unused {
        if let Some(span) = section.key_span(key) {
            section.ctx.warning(
                span,
                format!("`{key}` is not used: {why}"),
                Some(format!("remove `{key}`, or check auth / remote_auth")),
            );
        }
    }
}

/// A peer with a CA-issued certificate is known by the name in it: any certificate from
/// that CA would do otherwise, so `remote_id` must say which (swanctl requires it too).
pub(super) fn require_remote_id(top: &Section<'_>, auth: &Auth, spans: &AuthSpans) {
    let Auth::Ike(IkeAuth {
        remote: RemoteCredential::Certificate { .. },
        ..
    }) = auth
    else {
        return;
    };
    if !top.contains("remote_id") {
        top.ctx.error(
            spans.ca.first().cloned().unwrap_or(top.span.clone()),
            "with ca, remote_id is required: it names the peer whose certificate is accepted",
            Some("set remote_id to the peer certificate's subject (\"C=CH, O=Bank, CN=vpn.bank.ch\") or a subjectAltName (vpn.bank.ch)".into()),
        );
    }
}
