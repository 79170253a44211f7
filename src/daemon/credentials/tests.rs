use std::path::PathBuf;

use openssl::pkey::PKey;

use super::*;
use crate::ike::auth::x509::tests::{pki, Alg};

fn write(dir: &tempfile::TempDir, name: &str, content: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, content).unwrap();
    path
}

fn raw_keys(private_key: PathBuf, key: PeerKey) -> IkeAuth {
    IkeAuth {
        local: LocalCredential::PublicKey {
            private_key,
            certificate: None,
        },
        remote: RemoteCredential::PublicKey { key },
        send_cert: SendCert::Never,
    }
}

#[test]
fn raw_keys_load_from_pem_and_libreswan_files_and_inline_text() {
    let dir = tempfile::tempdir().unwrap();
    let ours = PKey::generate_ed25519().unwrap();
    let key_file = write(&dir, "ours.key", &ours.private_key_to_pem_pkcs8().unwrap());
    let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
    let theirs = PublicKey::from_pem(&rsa.public_key_to_pem().unwrap(), "test").unwrap();
    let rfc3110 = theirs.to_rfc3110().unwrap();
    let pem_file = write(&dir, "theirs.pem", &rsa.public_key_to_pem().unwrap());
    let showhostkey = format!("\tleftrsasigkey={rfc3110}\n");
    let rfc3110_file = write(&dir, "theirs.0s", showhostkey.as_bytes());
    for key in [
        PeerKey::File(pem_file),
        PeerKey::File(rfc3110_file),
        PeerKey::Rfc3110(rfc3110.clone()),
    ] {
        let (local, remote) = authenticators(&raw_keys(key_file.clone(), key.clone())).unwrap();
        assert!(
            matches!(local, LocalAuth::Signature { chain: None, .. }),
            "{local:?}"
        );
        let RemoteAuth::PublicKey { key: loaded } = remote else {
            panic!("{key:?}: {remote:?}");
        };
        assert!(loaded == theirs, "{key:?}");
    }
}

#[test]
fn a_certificate_comes_with_its_key_and_the_peer_is_checked_against_the_cas() {
    let pki = pki(Alg::P256, Alg::P256, Alg::Ed25519);
    let dir = tempfile::tempdir().unwrap();
    let chain_pem = [
        pki.leaf.cert.to_pem().unwrap(),
        pki.intermediate.cert.to_pem().unwrap(),
    ]
    .concat();
    let certificate = Some(write(&dir, "ours.crt", &chain_pem));
    let key_pem = pki.leaf.key.private_key_to_pem_pkcs8().unwrap();
    let private_key = write(&dir, "ours.key", &key_pem);
    let ca = write(&dir, "ca.crt", &pki.root.cert.to_pem().unwrap());
    let auth = IkeAuth {
        local: LocalCredential::PublicKey {
            private_key: private_key.clone(),
            certificate: certificate.clone(),
        },
        remote: RemoteCredential::Certificate {
            ca: vec![ca],
            crl: vec![],
        },
        send_cert: SendCert::Always,
    };
    let (local, remote) = authenticators(&auth).unwrap();
    let LocalAuth::Signature {
        chain: Some(chain),
        send_cert: EngineSendCert::Always,
        ..
    } = local
    else {
        panic!("{local:?}");
    };
    assert_eq!(chain.intermediates.len(), 1);
    assert!(matches!(remote, RemoteAuth::Certificate { .. }));
    // A key that is not the certificate's is refused before anything is sent.
    let other = PKey::generate_ed25519().unwrap();
    let other_key = write(
        &dir,
        "other.key",
        &other.private_key_to_pem_pkcs8().unwrap(),
    );
    let mismatched = IkeAuth {
        local: LocalCredential::PublicKey {
            private_key: other_key,
            certificate,
        },
        ..auth
    };
    let error = authenticators(&mismatched).unwrap_err();
    assert!(
        error.contains("other.key") && error.contains("does not belong to certificate"),
        "{error}"
    );
}

#[test]
fn unusable_files_are_errors_that_name_them_and_never_show_content() {
    let dir = tempfile::tempdir().unwrap();
    let secret_text =
        "-----BEGIN PRIVATE KEY-----\nc2VjcmV0IG1hdGVyaWFs\n-----END PRIVATE KEY-----\n";
    let garbage_key = write(&dir, "garbage.key", secret_text.as_bytes());
    let good_key = write(
        &dir,
        "good.key",
        &PKey::generate_ed25519()
            .unwrap()
            .private_key_to_pem_pkcs8()
            .unwrap(),
    );
    let missing = dir.path().join("missing.pem");
    let cases = [
        (
            raw_keys(garbage_key, PeerKey::Rfc3110("0sAQAB".into())),
            "garbage.key",
        ),
        // A path that names no file may be the key itself, pasted: not shown.
        (
            raw_keys(missing.clone(), PeerKey::Rfc3110("0sAQAB".into())),
            "private key <redacted>",
        ),
        (
            raw_keys(good_key.clone(), PeerKey::File(missing.clone())),
            "remote_public_key",
        ),
        (
            IkeAuth {
                remote: RemoteCredential::Certificate {
                    ca: vec![missing],
                    crl: vec![],
                },
                ..raw_keys(good_key, PeerKey::Rfc3110(String::new()))
            },
            "missing.pem",
        ),
    ];
    for (auth, named) in cases {
        let error = authenticators(&auth).unwrap_err();
        assert!(error.contains(named), "{named}: {error}");
        assert!(!error.contains("c2VjcmV0"), "{error}");
    }
}
