//! Profiles whose credential files are made at test time: key pairs of every accepted
//! type, a CA and a certificate it issued, a CRL; and files that hold none of these.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use openssl::asn1::{Asn1Object, Asn1OctetString, Asn1Time};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{BasicConstraints, SubjectAlternativeName};
use openssl::x509::{X509Builder, X509CrlBuilder, X509Extension, X509Name, X509};

use crate::model::{Auth, IkeAuth, LocalCredential, PeerKey, RemoteCredential, SendCert};
use crate::profile::{load, Diagnostic, Loaded, Options, Severity};

const HEAD: &str = "kind = \"vti\"\nlocal = \"192.0.2.10\"\nremote = \"198.51.100.30\"\n";
const SUBJECT: &str = "C=CH, O=Bank, CN=vpn.bank.ch";

fn p256() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
}

fn rsa(bits: u32) -> PKey<Private> {
    PKey::from_rsa(Rsa::generate(bits).unwrap()).unwrap()
}

/// A certificate for `key` named `subject` (with subjectAltName vpn.bank.ch), signed by
/// `issuer` (itself when `None`: a CA).
fn certificate(
    subject: &str,
    key: &PKey<Private>,
    issuer: Option<(&X509, &PKey<Private>)>,
) -> X509 {
    let mut name = X509Name::builder().unwrap();
    for part in subject.split(", ") {
        let (attribute, value) = part.split_once('=').unwrap();
        name.append_entry_by_text(attribute, value).unwrap();
    }
    let name = name.build();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(issuer.map_or(&name, |(ca, _)| ca.subject_name()))
        .unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    b.set_pubkey(key).unwrap();
    let extension = match issuer {
        None => BasicConstraints::new().critical().ca().build().unwrap(),
        Some((ca, _)) => SubjectAlternativeName::new()
            .dns("vpn.bank.ch")
            .build(&b.x509v3_context(Some(ca), None))
            .unwrap(),
    };
    b.append_extension(extension).unwrap();
    let signer = issuer.map_or(key, |(_, k)| k);
    b.sign(signer, MessageDigest::sha256()).unwrap();
    b.build()
}

/// A directory of credential files and profiles.
struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new() -> Self {
        Site {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Writes `name` root-only (mode 0600; the tests run as root or with insecure secrets).
    fn write(&self, name: &str, content: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    }

    fn key(&self, name: &str, key: &PKey<Private>) -> PathBuf {
        self.write(name, &key.private_key_to_pem_pkcs8().unwrap())
    }

    fn load(&self, profile: &str) -> Loaded {
        let path = self.write("t.toml", format!("{HEAD}{profile}").as_bytes());
        load(
            &[path],
            Options {
                insecure_secrets: true,
            },
        )
    }

    /// `line:column: message` of every diagnostic of `severity`.
    fn said(&self, profile: &str, severity: Severity) -> Vec<String> {
        let loaded = self.load(profile);
        let shown = (loaded.diagnostics.iter())
            .filter(|d| d.severity == severity)
            .map(Diagnostic::located_message);
        let dir = self.dir.path().display().to_string();
        shown.map(|m| m.replace(&dir, "{dir}")).collect()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn auth(loaded: &Loaded) -> IkeAuth {
    let tunnels = loaded
        .tunnels
        .as_ref()
        .unwrap_or_else(|| panic!("{:?}", loaded.diagnostics));
    match &tunnels[0].ike.auth {
        Auth::Ike(auth) => auth.clone(),
        Auth::Manual { .. } => panic!("manual keying"),
    }
}

/// An empty CRL of `ca`, PEM (the builder insists on a key identifier and a CRL number).
fn crl(ca: &X509, ca_key: &PKey<Private>) -> Vec<u8> {
    let mut crl = X509CrlBuilder::new().unwrap();
    crl.set_issuer_name(ca.subject_name()).unwrap();
    crl.set_last_update(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    crl.set_next_update(&Asn1Time::days_from_now(7).unwrap())
        .unwrap();
    let key_identifier: &[u8] = &[0x30, 0x03, 0x80, 0x01, 0x01];
    for (oid, der) in [
        ("2.5.29.35", key_identifier),
        ("2.5.29.20", &[0x02, 0x01, 0x01]),
    ] {
        let oid = Asn1Object::from_str(oid).unwrap();
        let der = Asn1OctetString::new_from_bytes(der).unwrap();
        crl.append_extension(X509Extension::new_from_der(&oid, false, &der).unwrap())
            .unwrap();
    }
    crl.sign(ca_key, MessageDigest::sha256()).unwrap();
    crl.build().unwrap().to_pem().unwrap()
}

/// A CA, our key and our certificate from it, written as ca.pem, our.key and our.pem.
fn bank(site: &Site) -> (X509, PKey<Private>) {
    let ca_key = p256();
    let ca = certificate("C=CH, O=Bank, CN=Bank Root CA", &ca_key, None);
    let ours = rsa(2048);
    let cert = certificate(SUBJECT, &ours, Some((&ca, &ca_key)));
    site.write("ca.pem", &ca.to_pem().unwrap());
    site.key("our.key", &ours);
    site.write("our.pem", &cert.to_pem().unwrap());
    (ca, ca_key)
}

#[test]
fn a_certificate_and_its_key_load_and_name_us_by_its_subject() {
    let site = Site::new();
    let (ca, ca_key) = bank(&site);
    site.write("bank.crl", &crl(&ca, &ca_key));
    let loaded = site.load(
        "remote_id = \"C=CH, O=Partner, CN=gw.partner.ch\"\n[ike]\nprivate_key = \"our.key\"\n\
         certificate = \"our.pem\"\nca = [\"ca.pem\"]\ncrl = [\"bank.crl\"]\nsend_cert = \"always\"\n",
    );
    assert_eq!(loaded.diagnostics, vec![]);
    assert_eq!(
        auth(&loaded),
        IkeAuth {
            local: LocalCredential::PublicKey {
                private_key: site.path("our.key"),
                certificate: Some(site.path("our.pem")),
            },
            remote: RemoteCredential::Certificate {
                ca: vec![site.path("ca.pem")],
                crl: vec![site.path("bank.crl")],
            },
            send_cert: SendCert::Always,
        }
    );
    let tunnel = &loaded.tunnels.unwrap()[0];
    assert_eq!(tunnel.local_id.as_ref().unwrap().to_string(), SUBJECT);
    assert_eq!(
        tunnel.remote_id.to_string(),
        "C=CH, O=Partner, CN=gw.partner.ch"
    );
}

#[test]
fn a_certificate_of_another_key_is_refused() {
    let site = Site::new();
    bank(&site);
    site.key("other.key", &p256());
    let errors = site.said(
        "remote_id = \"vpn.partner.ch\"\n[ike]\nprivate_key = \"other.key\"\ncertificate = \"our.pem\"\nca = \"ca.pem\"\n",
        Severity::Error,
    );
    assert_eq!(
        errors,
        [format!(
            "7:15: {{dir}}/other.key: private key does not belong to certificate \"{SUBJECT}\""
        )]
    );
}

#[test]
fn local_id_must_be_named_by_our_certificate() {
    let site = Site::new();
    bank(&site);
    let profile = |local_id: &str| {
        format!(
            "local_id = \"{local_id}\"\nremote_id = \"vpn.partner.ch\"\n[ike]\nprivate_key = \"our.key\"\n\
             certificate = \"our.pem\"\nca = \"ca.pem\"\n"
        )
    };
    for named in [SUBJECT, "CN=vpn.bank.ch, O=Bank, C=CH", "vpn.bank.ch"] {
        assert_eq!(
            site.said(&profile(named), Severity::Error),
            Vec::<String>::new(),
            "{named}"
        );
    }
    assert_eq!(
        site.said(&profile("vpn.other.ch"), Severity::Error),
        [format!(
            "4:12: local_id vpn.other.ch is neither the subject nor a subjectAltName of our certificate \"{SUBJECT}\""
        )]
    );
}

#[test]
fn raw_public_keys_load_from_pem_and_libreswan_files() {
    let site = Site::new();
    site.key("our.key", &PKey::generate_ed25519().unwrap());
    let peer = rsa(2048);
    site.write("peer.pem", &peer.public_key_to_pem().unwrap());
    let public =
        crate::ike::auth::keys::PublicKey::from_pem(&peer.public_key_to_pem().unwrap(), "t")
            .unwrap();
    let rfc3110 = public.to_rfc3110().unwrap();
    site.write(
        "peer.0s",
        format!("    leftrsasigkey={rfc3110}\n").as_bytes(),
    );
    for (file, inline) in [("peer.pem", false), ("peer.0s", false), ("", true)] {
        let value = if inline {
            format!("rightrsasigkey={rfc3110}")
        } else {
            file.to_string()
        };
        let loaded = site.load(&format!(
            "[ike]\nprivate_key = \"our.key\"\nremote_public_key = \"{value}\"\n"
        ));
        assert_eq!(loaded.diagnostics, vec![], "{value}");
        let expected = if inline {
            PeerKey::Rfc3110(rfc3110.clone())
        } else {
            PeerKey::File(site.path(file))
        };
        assert_eq!(
            auth(&loaded).remote,
            RemoteCredential::PublicKey { key: expected }
        );
    }
}

#[test]
fn keys_of_no_accepted_kind_are_named_with_why() {
    let site = Site::new();
    site.key("small.key", &rsa(1024));
    site.write(
        "private-as-public.pem",
        &p256().private_key_to_pem_pkcs8().unwrap(),
    );
    site.write(
        "encrypted.key",
        b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n",
    );
    let errors = site.said(
        "[ike]\nprivate_key = \"small.key\"\nremote_public_key = \"private-as-public.pem\"\n",
        Severity::Error,
    );
    assert_eq!(
        errors,
        [
            "5:15: private key {dir}/small.key: RSA key of 1024 bits is too small, at least 2048 are required",
            "6:21: remote_public_key {dir}/private-as-public.pem: no public key found (expected PEM \"PUBLIC KEY\")",
        ]
    );
    let errors = site.said(
        "[ike]\nprivate_key = \"encrypted.key\"\nremote_public_key = \"private-as-public.pem\"\n",
        Severity::Error,
    );
    assert_eq!(
        errors[0],
        "5:15: private key {dir}/encrypted.key: encrypted private keys are not supported; store the key unencrypted (mode 0600)"
    );
    let all: String = site
        .load("[ike]\nprivate_key = \"private-as-public.pem\"\nremote_public_key = \"small.key\"\n")
        .diagnostics
        .iter()
        .map(|d| format!("{d:?}"))
        .collect();
    assert!(!all.contains("BEGIN") && !all.contains("MII"), "{all}");
}

#[test]
fn credentials_the_methods_do_not_use_are_warned_about() {
    let site = Site::new();
    site.key("our.key", &p256());
    site.write("k.psk", b"0x00112233445566778899aabbccddeeff\n");
    let inline =
        crate::ike::auth::keys::PublicKey::from_pem(&rsa(2048).public_key_to_pem().unwrap(), "t")
            .unwrap()
            .to_rfc3110()
            .unwrap();
    let warnings = site.said(
        &format!("[ike]\nauth = \"pubkey\"\npsk_file = \"k.psk\"\nprivate_key = \"our.key\"\nremote_public_key = \"{inline}\"\ncrl = \"x.crl\"\n"),
        Severity::Warning,
    );
    assert_eq!(
        warnings,
        [
            "6:1: `psk_file` is not used: neither side uses a pre-shared key",
            "9:1: `crl` is not used: CRLs are checked only with ca",
        ]
    );
    // We sign, the peer answers with the PSK: both are used.
    let loaded = site.load("[ike]\nauth = \"pubkey\"\nremote_auth = \"psk\"\npsk_file = \"k.psk\"\nprivate_key = \"our.key\"\n");
    assert_eq!(loaded.diagnostics, vec![]);
    assert_eq!(
        auth(&loaded).remote,
        RemoteCredential::Psk {
            file: site.path("k.psk")
        }
    );
    let warnings = site.said(
        "[ike]\nauth = \"psk\"\npsk_file = \"k.psk\"\nprivate_key = \"our.key\"\n",
        Severity::Warning,
    );
    assert_eq!(warnings, ["7:1: `private_key` is not used: auth = \"psk\""]);
}

#[test]
fn the_plan_shows_a_private_key_path_only_once_it_names_a_file() {
    let site = Site::new();
    let inline =
        crate::ike::auth::keys::PublicKey::from_pem(&rsa(2048).public_key_to_pem().unwrap(), "t")
            .unwrap()
            .to_rfc3110()
            .unwrap();
    let profile =
        |key: &str| format!("[ike]\nprivate_key = \"{key}\"\nremote_public_key = \"{inline}\"\n");
    let pasted = "MC4CAQAwBQYDK2VwBCIEIPasted";
    let loaded = site.load(&profile(pasted));
    let plan = crate::plan::build(&loaded.tunnels.unwrap(), &crate::plan::Context::default());
    let json = serde_json::to_value(&plan).unwrap();
    let local = &json["tunnels"][0]["ike"]["auth"]["local"];
    assert_eq!(local["private_key"], "<redacted>");
    assert_eq!(local["method"], "public_key");
    assert!(!crate::plan::render_text(&plan).contains(pasted));
    assert!(!json.to_string().contains(pasted));

    let path = site.key("our.key", &p256());
    let loaded = site.load(&profile("our.key"));
    let plan = crate::plan::build(&loaded.tunnels.unwrap(), &crate::plan::Context::default());
    let json = serde_json::to_value(&plan).unwrap();
    assert_eq!(
        json["tunnels"][0]["ike"]["auth"]["local"]["private_key"],
        path.display().to_string()
    );
    assert!(crate::plan::render_text(&plan).contains(&format!(
        "local key {}, remote key 0s… (inline)",
        path.display()
    )));
    assert!(Path::new(&path).exists());
}

#[test]
fn a_crl_whose_path_openssl_cannot_take_is_refused() {
    use std::os::unix::ffi::OsStrExt;
    // TOML is UTF-8; a path becomes something else only through the profile's directory.
    let site = Site::new();
    let (ca, ca_key) = bank(&site);
    let dir = site
        .dir
        .path()
        .join(std::ffi::OsStr::from_bytes(b"latin1-\xe9"));
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("bank.crl"), crl(&ca, &ca_key)).unwrap();
    let profile = dir.join("t.toml");
    let text = format!(
        "{HEAD}remote_id = \"vpn.partner.ch\"\n[ike]\nprivate_key = \"{}\"\nca = \"{}\"\ncrl = \"bank.crl\"\n",
        site.path("our.key").display(),
        site.path("ca.pem").display()
    );
    std::fs::write(&profile, text).unwrap();
    let loaded = load(
        &[profile],
        Options {
            insecure_secrets: true,
        },
    );
    let errors: Vec<String> = loaded.errors().map(|d| d.message.clone()).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].ends_with("/bank.crl: file name is not UTF-8"),
        "{errors:?}"
    );
}
