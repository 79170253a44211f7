//! `routevpn pubkey NAME`: our public key for the partner, from the tunnel's private key, in
//! PEM (strongSwan) or libreswan's `0s…` form; never anything of the private key.

use std::path::Path;
use std::process::{Command, Output};

use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use routevpn::ike::auth::keys::PublicKey;

fn write_secret(path: &Path, bytes: &[u8]) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, bytes).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A config dir with tunnel `t` signing with `ours` (and a PSK tunnel `p`).
fn config(dir: &Path, ours: &PKey<Private>) {
    let peer = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    write_secret(
        &dir.join("t.key"),
        &ours.private_key_to_pem_pkcs8().unwrap(),
    );
    std::fs::write(dir.join("peer.pem"), peer.public_key_to_pem().unwrap()).unwrap();
    write_secret(&dir.join("p.psk"), b"0x0123456789abcdef0123456789abcdef");
    let tunnel = |name: &str, mark: u32, auth: &str| {
        format!(
            "kind = \"vti\"\nlocal = \"192.0.2.1\"\nremote = \"198.51.100.{mark}\"\n\
             [ike]\nproposals = [\"aes128gcm16-prfsha256-ecp256\"]\n{auth}\n\
             [[child]]\nlocal_ts = [\"10.1.{mark}.0/24\"]\nremote_ts = [\"10.2.{mark}.0/24\"]\n\
             esp_proposals = [\"aes128gcm16\"]\n[interface]\nname = \"vti-{name}\"\n"
        )
    };
    let d = dir.display();
    let signed = format!(
        "auth = \"pubkey\"\nprivate_key = \"{d}/t.key\"\nremote_public_key = \"{d}/peer.pem\""
    );
    std::fs::write(dir.join("t.toml"), tunnel("t", 1, &signed)).unwrap();
    let psk = format!("psk_file = \"{d}/p.psk\"");
    std::fs::write(dir.join("p.toml"), tunnel("p", 2, &psk)).unwrap();
}

fn pubkey(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_routevpn"))
        .arg("--config-dir")
        .arg(dir)
        .arg("--insecure-secrets")
        .arg("pubkey")
        .args(args)
        .output()
        .expect("run routevpn")
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap()
}

#[test]
fn prints_an_rsa_key_in_pem_and_in_libreswan_form() {
    let dir = tempfile::tempdir().unwrap();
    let ours = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    config(dir.path(), &ours);
    let expected = PublicKey::from_pem(&ours.public_key_to_pem().unwrap(), "ours").unwrap();

    let out = pubkey(dir.path(), &["t"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, ours.public_key_to_pem().unwrap());

    let out = pubkey(dir.path(), &["t", "--libreswan"]);
    assert!(out.status.success(), "{out:?}");
    let line = text(&out.stdout).trim_end();
    let form = line.strip_prefix("leftrsasigkey=").expect(line);
    assert_eq!(PublicKey::from_rfc3110(form, "printed").unwrap(), expected);
}

#[test]
fn refuses_what_has_no_key_or_no_libreswan_form_without_showing_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let ours = PKey::generate_ed25519().unwrap();
    config(dir.path(), &ours);
    let out = pubkey(dir.path(), &["t", "--libreswan"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(text(&out.stderr).contains("Ed25519"), "{out:?}");
    assert!(out.stdout.is_empty());

    for (name, why) in [("p", "without a private key"), ("x", "no tunnel named")] {
        let out = pubkey(dir.path(), &[name]);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(text(&out.stderr).contains(why), "{name}: {out:?}");
        assert!(!text(&out.stderr).contains("0123456789abcdef"), "{out:?}");
    }

    // An unreadable key is an error naming the file, not an empty answer.
    std::fs::write(dir.path().join("t.key"), b"not a key").unwrap();
    let out = pubkey(dir.path(), &["t"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stdout.is_empty());
    assert!(!text(&out.stderr).contains("not a key"), "{out:?}");
}
