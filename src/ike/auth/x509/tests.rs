//! A small PKI built at test time: CAs, intermediates and end entities with RSA, ECDSA
//! P-256 and Ed25519 keys, fixed validity windows and CRLs.

use openssl::asn1::{Asn1Integer, Asn1Object, Asn1OctetString, Asn1Time};
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{
    BasicConstraints, KeyUsage, SubjectAlternativeName, SubjectKeyIdentifier,
};
use openssl::x509::{X509Builder, X509CrlBuilder, X509Extension, X509Name, X509RevokedBuilder};

use super::*;

const T0: i64 = 1_700_000_000;
const DAY: i64 = 86_400;
/// Inside every certificate's validity window.
const NOW: i64 = T0 + DAY;

#[derive(Clone, Copy)]
pub(crate) enum Alg {
    Rsa,
    P256,
    Ed25519,
}

fn key(alg: Alg) -> PKey<Private> {
    match alg {
        Alg::Rsa => PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap(),
        Alg::P256 => {
            let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
            PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
        }
        Alg::Ed25519 => PKey::generate_ed25519().unwrap(),
    }
}

fn digest_for(key: &PKey<Private>) -> MessageDigest {
    if key.id() == Id::ED25519 {
        MessageDigest::null()
    } else {
        MessageDigest::sha256()
    }
}

pub(crate) struct Issued {
    pub(crate) cert: X509,
    pub(crate) key: PKey<Private>,
}

fn name(cn: &str) -> X509Name {
    let mut name = X509Name::builder().unwrap();
    name.append_entry_by_nid(Nid::COUNTRYNAME, "CH").unwrap();
    name.append_entry_by_nid(Nid::ORGANIZATIONNAME, "Bank")
        .unwrap();
    name.append_entry_by_nid(Nid::COMMONNAME, cn).unwrap();
    name.build()
}

#[derive(Clone, Copy)]
enum Role {
    Ca,
    EndEntity,
    /// An end entity whose key usage is only key encipherment.
    EncipherOnly,
}

struct Spec<'a> {
    cn: &'a str,
    alg: Alg,
    role: Role,
    serial: u32,
    not_before: i64,
    not_after: i64,
}

impl<'a> Spec<'a> {
    fn new(cn: &'a str, alg: Alg, role: Role, serial: u32) -> Self {
        Spec {
            cn,
            alg,
            role,
            serial,
            not_before: T0,
            not_after: T0 + 365 * DAY,
        }
    }
}

fn issue(spec: Spec<'_>, issuer: Option<&Issued>) -> Issued {
    let key = key(spec.alg);
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    let serial = Asn1Integer::from_bn(&BigNum::from_u32(spec.serial).unwrap()).unwrap();
    b.set_serial_number(&serial).unwrap();
    let subject = name(spec.cn);
    b.set_subject_name(&subject).unwrap();
    b.set_issuer_name(issuer.map_or(&subject, |i| i.cert.subject_name()))
        .unwrap();
    b.set_not_before(&Asn1Time::from_unix(spec.not_before).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::from_unix(spec.not_after).unwrap())
        .unwrap();
    b.set_pubkey(&key).unwrap();
    match spec.role {
        Role::Ca => {
            let bc = BasicConstraints::new().critical().ca().build().unwrap();
            b.append_extension(bc).unwrap();
            let ku = KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build();
            b.append_extension(ku.unwrap()).unwrap();
            let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(None, None));
            b.append_extension(ski.unwrap()).unwrap();
        }
        Role::EndEntity | Role::EncipherOnly => {
            let mut ku = KeyUsage::new();
            match spec.role {
                Role::EncipherOnly => ku.key_encipherment(),
                _ => ku.digital_signature(),
            };
            b.append_extension(ku.build().unwrap()).unwrap();
            let san = SubjectAlternativeName::new()
                .dns("vpn.bank.ch")
                .ip("192.0.2.7")
                .ip("2001:db8::7")
                .email("ops@bank.ch")
                .build(&b.x509v3_context(issuer.map(|i| i.cert.as_ref()), None))
                .unwrap();
            b.append_extension(san).unwrap();
        }
    }
    let signer = issuer.map_or(&key, |i| &i.key);
    b.sign(signer, digest_for(signer)).unwrap();
    Issued {
        cert: b.build(),
        key,
    }
}

pub(crate) struct Pki {
    pub(crate) root: Issued,
    pub(crate) intermediate: Issued,
    pub(crate) leaf: Issued,
    dir: tempfile::TempDir,
}

pub(crate) fn pki(root: Alg, intermediate: Alg, leaf: Alg) -> Pki {
    let root = issue(Spec::new("Root CA", root, Role::Ca, 1), None);
    let intermediate = issue(Spec::new("Sub CA", intermediate, Role::Ca, 2), Some(&root));
    let leaf = issue(
        Spec::new("vpn.bank.ch", leaf, Role::EndEntity, 3),
        Some(&intermediate),
    );
    Pki {
        root,
        intermediate,
        leaf,
        dir: tempfile::tempdir().unwrap(),
    }
}

impl Pki {
    pub(crate) fn chain(&self, leaf: &Issued) -> CertChain {
        CertChain {
            end_entity: leaf.cert.clone(),
            intermediates: vec![self.intermediate.cert.clone()],
        }
    }

    fn write(&self, file: &str, pem: &[u8]) -> PathBuf {
        let path = self.dir.path().join(file);
        std::fs::write(&path, pem).unwrap();
        path
    }

    pub(crate) fn store(&self, crls: &[PathBuf]) -> TrustStore {
        let ca = self.write("ca.pem", &self.root.cert.to_pem().unwrap());
        TrustStore::load(&[ca], crls).unwrap()
    }

    /// A CRL of `issuer` revoking the given serials, valid for 30 days from T0.
    fn crl(&self, file: &str, issuer: &Issued, revoked: &[u32]) -> PathBuf {
        let mut b = X509CrlBuilder::new().unwrap();
        b.set_issuer_name(issuer.cert.subject_name()).unwrap();
        b.set_last_update(&Asn1Time::from_unix(T0).unwrap())
            .unwrap();
        b.set_next_update(&Asn1Time::from_unix(T0 + 30 * DAY).unwrap())
            .unwrap();
        for serial in revoked {
            let mut r = X509RevokedBuilder::new().unwrap();
            let serial = Asn1Integer::from_bn(&BigNum::from_u32(*serial).unwrap()).unwrap();
            r.set_serial_number(&serial).unwrap();
            r.set_revocation_date(&Asn1Time::from_unix(T0).unwrap())
                .unwrap();
            b.add_revoked(r.build()).unwrap();
        }
        // OpenSSL 3 wants authorityKeyIdentifier (SEQUENCE { [0] issuer's SKID }) and cRLNumber.
        let skid = issuer.cert.subject_key_id().unwrap().as_slice();
        let akid = [&[0x30, 0x16, 0x80, 0x14][..], skid].concat();
        let akid = Asn1OctetString::new_from_bytes(&akid).unwrap();
        let oid = Asn1Object::from_str("2.5.29.35").unwrap();
        b.append_extension(X509Extension::new_from_der(&oid, false, &akid).unwrap())
            .unwrap();
        let number = Asn1OctetString::new_from_bytes(&[0x02, 0x01, 0x01]).unwrap();
        let oid = Asn1Object::from_str("2.5.29.20").unwrap(); // cRLNumber 1
        b.append_extension(X509Extension::new_from_der(&oid, false, &number).unwrap())
            .unwrap();
        b.sign(&issuer.key, digest_for(&issuer.key)).unwrap();
        self.write(file, &b.build().unwrap().to_pem().unwrap())
    }
}

#[test]
fn good_chains_of_every_key_type_verify() {
    for (root, sub, leaf) in [
        (Alg::Rsa, Alg::Rsa, Alg::Rsa),
        (Alg::P256, Alg::P256, Alg::P256),
        (Alg::Ed25519, Alg::Ed25519, Alg::Ed25519),
        (Alg::Rsa, Alg::P256, Alg::Ed25519),
    ] {
        let pki = pki(root, sub, leaf);
        let store = pki.store(&[]);
        let key = store.verify_at(&pki.chain(&pki.leaf), NOW).unwrap();
        let expected = PublicKey::from_spki_der(&pki.leaf.key.public_key_to_der().unwrap());
        assert_eq!(key, expected.unwrap());
    }
}

#[test]
fn verify_without_fixed_time_uses_the_clock() {
    // Valid from T0 (November 2023) for a year: expired by the time this runs.
    let pki = pki(Alg::P256, Alg::P256, Alg::P256);
    let e = pki.store(&[]).verify(&pki.chain(&pki.leaf)).unwrap_err();
    assert!(matches!(e, CertError::Expired { .. }), "{e}");
}

#[test]
fn unknown_ca_and_missing_intermediate() {
    let pki = pki(Alg::P256, Alg::P256, Alg::P256);
    let other_root = issue(Spec::new("Other Root", Alg::P256, Role::Ca, 1), None);
    let other = pki.write("other.pem", &other_root.cert.to_pem().unwrap());
    let other = TrustStore::load(&[other], &[]).unwrap();
    let e = other.verify_at(&pki.chain(&pki.leaf), NOW).unwrap_err();
    assert!(matches!(e, CertError::UnknownCa { .. }), "{e}");
    // A CA of the same name with another key: the signature check fails.
    let twin = self::pki(Alg::P256, Alg::P256, Alg::P256);
    let e = twin
        .store(&[])
        .verify_at(&pki.chain(&pki.leaf), NOW)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "certificate \"C=CH, O=Bank, CN=Sub CA\" is not acceptable: certificate signature failure"
    );
    let alone = CertChain {
        end_entity: pki.leaf.cert.clone(),
        intermediates: vec![],
    };
    let e = pki.store(&[]).verify_at(&alone, NOW).unwrap_err();
    assert_eq!(
        e.to_string(),
        "certificate \"C=CH, O=Bank, CN=vpn.bank.ch\" is not issued by a trusted CA"
    );
    // A self-signed end entity is not a CA we trust either.
    let selfsigned = issue(
        Spec::new("vpn.bank.ch", Alg::P256, Role::EndEntity, 9),
        None,
    );
    let chain = CertChain {
        end_entity: selfsigned.cert,
        intermediates: vec![],
    };
    assert!(matches!(
        pki.store(&[]).verify_at(&chain, NOW),
        Err(CertError::UnknownCa { .. })
    ));
}

#[test]
fn validity_dates() {
    let pki = pki(Alg::P256, Alg::P256, Alg::P256);
    let store = pki.store(&[]);
    let chain = pki.chain(&pki.leaf);
    assert!(matches!(
        store.verify_at(&chain, T0 + 400 * DAY),
        Err(CertError::Expired { .. })
    ));
    assert!(matches!(
        store.verify_at(&chain, T0 - DAY),
        Err(CertError::NotYetValid { .. })
    ));
    // An end entity that expired while its CAs are still valid: the error names it.
    let mut spec = Spec::new("old.bank.ch", Alg::P256, Role::EndEntity, 4);
    spec.not_after = T0 + 10 * DAY;
    let old = issue(spec, Some(&pki.intermediate));
    let e = store
        .verify_at(&pki.chain(&old), T0 + 20 * DAY)
        .unwrap_err();
    assert_eq!(
        e,
        CertError::Expired {
            subject: "C=CH, O=Bank, CN=old.bank.ch".into()
        }
    );
}

#[test]
fn revocation_by_crl() {
    let pki = pki(Alg::Rsa, Alg::P256, Alg::P256);
    let chain = pki.chain(&pki.leaf);
    let revoked = pki.crl("revoked.pem", &pki.intermediate, &[3]);
    let e = pki.store(&[revoked]).verify_at(&chain, NOW).unwrap_err();
    assert_eq!(
        e,
        CertError::Revoked {
            subject: "C=CH, O=Bank, CN=vpn.bank.ch".into()
        }
    );
    let clean = pki.crl("clean.pem", &pki.intermediate, &[77]);
    assert!(pki.store(&[clean]).verify_at(&chain, NOW).is_ok());
    // CRLs given but none from the issuing CA: the check fails, it is not skipped.
    let root_only = pki.crl("root.pem", &pki.root, &[]);
    let e = pki.store(&[root_only]).verify_at(&chain, NOW).unwrap_err();
    assert!(matches!(e, CertError::Invalid { .. }), "{e}");
}

#[test]
fn end_entity_must_be_allowed_to_sign_and_issuers_must_be_cas() {
    let pki = pki(Alg::P256, Alg::P256, Alg::P256);
    let store = pki.store(&[]);
    let spec = Spec::new("enc.bank.ch", Alg::P256, Role::EncipherOnly, 5);
    let enc = issue(spec, Some(&pki.intermediate));
    let e = store.verify_at(&pki.chain(&enc), NOW).unwrap_err();
    assert_eq!(
        e.to_string(),
        "certificate \"C=CH, O=Bank, CN=enc.bank.ch\" is not acceptable: key usage does not allow digital signatures"
    );
    // An end entity used as an intermediate CA.
    let fake_ca = issue(
        Spec::new("Fake CA", Alg::P256, Role::EndEntity, 6),
        Some(&pki.root),
    );
    let below = issue(
        Spec::new("x.bank.ch", Alg::P256, Role::EndEntity, 7),
        Some(&fake_ca),
    );
    let chain = CertChain {
        end_entity: below.cert,
        intermediates: vec![fake_ca.cert],
    };
    let e = store.verify_at(&chain, NOW).unwrap_err();
    assert!(matches!(e, CertError::Invalid { .. }), "{e}");
}

#[test]
fn identities_match_subject_dn_and_alt_names() {
    let pki = pki(Alg::P256, Alg::P256, Alg::P256);
    let chain = pki.chain(&pki.leaf);
    let dn =
        |text: &str| Identity::DerAsn1Dn(DistinguishedName::parse(text).unwrap().to_der().unwrap());
    let spki = pki.leaf.key.public_key_to_der().unwrap();
    let good = [
        dn("C=CH, O=Bank, CN=vpn.bank.ch"),
        dn("CN=vpn.bank.ch, O=Bank, C=CH"),
        chain.default_identity().unwrap(),
        Identity::Fqdn("VPN.bank.ch".into()),
        Identity::Rfc822("ops@bank.ch".into()),
        Identity::Address("192.0.2.7".parse().unwrap()),
        Identity::Address("2001:db8::7".parse().unwrap()),
        Identity::KeyId(sha1(&spki)),
    ];
    for id in good {
        chain
            .check_identity(&id)
            .unwrap_or_else(|e| panic!("{id:?}: {e}"));
    }
    let bad = [
        dn("C=CH, O=Bank, CN=other.bank.ch"),
        dn("C=CH, CN=vpn.bank.ch"),
        Identity::DerAsn1Dn(vec![0x30, 0x03, 1, 2]),
        Identity::Fqdn("bank.ch".into()),
        Identity::Rfc822("root@bank.ch".into()),
        Identity::Address("192.0.2.8".parse().unwrap()),
        Identity::KeyId(vec![0; 20]),
        Identity::Other {
            id_type: 12,
            data: vec![],
        },
    ];
    for id in bad {
        assert!(
            matches!(chain.check_identity(&id), Err(CertError::IdMismatch { .. })),
            "{id:?}"
        );
    }
    let e = chain
        .check_identity(&Identity::Fqdn("evil.example".into()))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "peer ID fqdn:evil.example matches neither the subject nor a subjectAltName of \"C=CH, O=Bank, CN=vpn.bank.ch\""
    );
    assert_eq!(
        chain.default_identity().unwrap(),
        Identity::DerAsn1Dn(pki.leaf.cert.subject_name().to_der().unwrap())
    );
}

#[test]
fn cert_payloads_round_trip_and_garbage_is_malformed() {
    let pki = pki(Alg::Ed25519, Alg::Ed25519, Alg::Ed25519);
    let chain = pki.chain(&pki.leaf);
    let payloads = chain.payloads().unwrap();
    assert_eq!(payloads.len(), 2);
    assert!(payloads.iter().all(|p| p.encoding == X509_SIGNATURE));
    let mut with_other = vec![CertPayload {
        encoding: 11,
        data: vec![1, 2, 3],
    }];
    with_other.extend(payloads.clone());
    let back = CertChain::from_payloads(&with_other).unwrap();
    assert_eq!(back.end_entity.to_der().unwrap(), payloads[0].data);
    assert!(pki.store(&[]).verify_at(&back, NOW).is_ok());

    let der = &payloads[0].data;
    for data in [
        der[..der.len() / 2].to_vec(),
        vec![0x30, 0x82, 0xff],
        b"garbage".to_vec(),
        vec![],
    ] {
        let bad = [CertPayload {
            encoding: X509_SIGNATURE,
            data,
        }];
        assert!(matches!(
            CertChain::from_payloads(&bad),
            Err(CertError::Malformed(_))
        ));
    }
    let bad_intermediate = [
        payloads[0].clone(),
        CertPayload {
            encoding: X509_SIGNATURE,
            data: vec![0x30, 0],
        },
    ];
    assert!(matches!(
        CertChain::from_payloads(&bad_intermediate),
        Err(CertError::Malformed(_))
    ));
    let e = CertChain::from_payloads(&with_other[..1]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "malformed certificate: no X.509 CERT payload"
    );
}

#[test]
fn loading_names_the_file() {
    let pki = pki(Alg::P256, Alg::P256, Alg::P256);
    let mut pem = pki.leaf.cert.to_pem().unwrap();
    pem.extend(pki.intermediate.cert.to_pem().unwrap());
    let ours = CertChain::load(&pki.write("ours.pem", &pem)).unwrap();
    assert_eq!(ours.intermediates.len(), 1);
    assert!(pki.store(&[]).verify_at(&ours, NOW).is_ok());

    let garbage = pki.write("garbage.pem", b"not a certificate");
    let missing = pki.dir.path().join("missing.pem");
    let e = CertChain::load(&garbage).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{}: no certificate in the file", garbage.display())
    );
    let e = TrustStore::load(std::slice::from_ref(&missing), &[]).unwrap_err();
    assert!(e
        .to_string()
        .starts_with(&format!("{}: cannot read", missing.display())));
    let ca = pki.write("ca.pem", &pki.root.cert.to_pem().unwrap());
    let e =
        TrustStore::load(std::slice::from_ref(&ca), std::slice::from_ref(&garbage)).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{}: not a PEM CRL", garbage.display())
    );
    let e = TrustStore::load(std::slice::from_ref(&garbage), &[]).unwrap_err();
    assert!(e.to_string().starts_with(&garbage.display().to_string()));
    assert!(TrustStore::load(&[], &[]).is_err());
    use std::os::unix::ffi::OsStrExt;
    let crl = pki.crl("clean.pem", &pki.intermediate, &[]);
    let odd = pki
        .dir
        .path()
        .join(std::ffi::OsStr::from_bytes(b"crl-\xff.pem"));
    std::fs::copy(&crl, &odd).unwrap();
    let e = TrustStore::load(std::slice::from_ref(&ca), std::slice::from_ref(&odd)).unwrap_err();
    assert!(
        e.to_string().ends_with(": CRL file name is not UTF-8"),
        "{e}"
    );
}

#[test]
fn certificate_request_hashes_each_ca_key() {
    let pki = pki(Alg::Rsa, Alg::P256, Alg::P256);
    let store = pki.store(&[]);
    let spki = pki.root.key.public_key_to_der().unwrap();
    let request = store.certificate_request();
    assert_eq!(request.encoding, 4);
    assert_eq!(request.data, sha1(&spki));
    assert_eq!(request.ca_hashes().unwrap().len(), 1);
}

#[test]
fn our_private_key_must_belong_to_our_certificate() {
    let pki = pki(Alg::P256, Alg::P256, Alg::Rsa);
    let chain = pki.chain(&pki.leaf);
    let pem = pki.leaf.key.private_key_to_pem_pkcs8().unwrap();
    let ours = PrivateKey::from_pem(&pem, "leaf.key").unwrap();
    chain.check_private_key(&ours, "leaf.key").unwrap();
    let pem = pki.intermediate.key.private_key_to_pem_pkcs8().unwrap();
    let other = PrivateKey::from_pem(&pem, "sub.key").unwrap();
    let e = chain
        .check_private_key(&other, "/etc/routevpn/sub.key")
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "/etc/routevpn/sub.key: private key does not belong to certificate \"C=CH, O=Bank, CN=vpn.bank.ch\""
    );
}

/// A FIFO named as a CA, a certificate or a private key is refused at once: the daemon
/// loads these on its event loop, where a blocking open would stop every tunnel.
#[test]
fn credential_files_that_are_not_regular_files_are_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("ca.pem");
    crate::file::mkfifo(&fifo);
    let (tx, rx) = std::sync::mpsc::channel();
    let path = fifo.clone();
    std::thread::spawn(move || {
        let ca = TrustStore::load(std::slice::from_ref(&path), &[]).map(|_| ());
        let cert = CertChain::load(&path).map(|_| ());
        let key = crate::ike::auth::keys::PrivateKey::load(&path).map(|_| ());
        let _ = tx.send((ca.is_err(), cert.is_err(), key.map_err(|e| e.to_string())));
    });
    // A blocked open never answers; the FIFO's writer side is never opened here.
    let (ca, cert, key) = rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("loading a FIFO blocked");
    assert!(ca && cert, "a FIFO was accepted as a certificate file");
    let key = key.unwrap_err();
    assert!(key.contains("a FIFO"), "{key}");
}
