//! Keys and a small PKI made at test time, with validity windows around the real clock
//! (the engine verifies certificates "now"): a root CA, an intermediate, end entities
//! whose subjectAltName is a DNS name, and CRLs.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use openssl::asn1::{Asn1Integer, Asn1Object, Asn1OctetString, Asn1Time};
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{
    BasicConstraints, KeyUsage, SubjectAlternativeName, SubjectKeyIdentifier,
};
use openssl::x509::{
    X509Builder, X509CrlBuilder, X509Extension, X509Name, X509RevokedBuilder, X509,
};
use routevpn::ike::auth::keys::PrivateKey;
use routevpn::ike::auth::x509::{CertChain, TrustStore};

pub const DAY: i64 = 86_400;

pub fn now() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(since.as_secs()).unwrap()
}

#[derive(Clone, Copy, Debug)]
pub enum Alg {
    Rsa2048,
    P256,
    P384,
    P521,
    Ed25519,
}

pub fn openssl_key(alg: Alg) -> PKey<Private> {
    let ec = |nid| {
        let group = EcGroup::from_curve_name(nid).unwrap();
        PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
    };
    match alg {
        Alg::Rsa2048 => PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap(),
        Alg::P256 => ec(Nid::X9_62_PRIME256V1),
        Alg::P384 => ec(Nid::SECP384R1),
        Alg::P521 => ec(Nid::SECP521R1),
        Alg::Ed25519 => PKey::generate_ed25519().unwrap(),
    }
}

/// The engine's view of an OpenSSL private key.
pub fn private_key(key: &PKey<Private>) -> Arc<PrivateKey> {
    let pem = key.private_key_to_pem_pkcs8().unwrap();
    Arc::new(PrivateKey::from_pem(&pem, "test key").unwrap())
}

pub struct Issued {
    pub cert: X509,
    pub key: PKey<Private>,
}

/// What to issue: an end entity for `dns` (subjectAltName) unless `ca`.
pub struct Spec<'a> {
    pub cn: &'a str,
    pub alg: Alg,
    pub ca: bool,
    pub dns: &'a str,
    pub serial: u32,
    /// Validity, in seconds relative to now.
    pub from: i64,
    pub until: i64,
}

impl<'a> Spec<'a> {
    pub fn ca(cn: &'a str, serial: u32) -> Self {
        Spec {
            cn,
            alg: Alg::P256,
            ca: true,
            dns: "",
            serial,
            from: -DAY,
            until: 30 * DAY,
        }
    }

    pub fn end_entity(dns: &'a str, alg: Alg, serial: u32) -> Self {
        Spec {
            cn: dns,
            alg,
            ca: false,
            dns,
            ..Spec::ca(dns, serial)
        }
    }
}

fn digest_for(key: &PKey<Private>) -> MessageDigest {
    if key.id() == Id::ED25519 {
        MessageDigest::null()
    } else {
        MessageDigest::sha256()
    }
}

fn serial_number(serial: u32) -> Asn1Integer {
    Asn1Integer::from_bn(&BigNum::from_u32(serial).unwrap()).unwrap()
}

fn time(relative: i64) -> Asn1Time {
    Asn1Time::from_unix(now() + relative).unwrap()
}

pub fn issue(spec: Spec<'_>, issuer: Option<&Issued>) -> Issued {
    let key = openssl_key(spec.alg);
    let mut name = X509Name::builder().unwrap();
    name.append_entry_by_nid(Nid::ORGANIZATIONNAME, "Test")
        .unwrap();
    name.append_entry_by_nid(Nid::COMMONNAME, spec.cn).unwrap();
    let subject = name.build();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&serial_number(spec.serial)).unwrap();
    b.set_subject_name(&subject).unwrap();
    b.set_issuer_name(issuer.map_or(&subject, |i| i.cert.subject_name()))
        .unwrap();
    b.set_not_before(&time(spec.from)).unwrap();
    b.set_not_after(&time(spec.until)).unwrap();
    b.set_pubkey(&key).unwrap();
    if spec.ca {
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
    } else {
        let ku = KeyUsage::new().digital_signature().build().unwrap();
        b.append_extension(ku).unwrap();
        let san = SubjectAlternativeName::new()
            .dns(spec.dns)
            .build(&b.x509v3_context(issuer.map(|i| i.cert.as_ref()), None))
            .unwrap();
        b.append_extension(san).unwrap();
    }
    let signer = issuer.map_or(&key, |i| &i.key);
    b.sign(signer, digest_for(signer)).unwrap();
    Issued {
        cert: b.build(),
        key,
    }
}

/// A root CA and an intermediate under it; files go to a directory of their own.
pub struct Pki {
    pub root: Issued,
    pub intermediate: Issued,
    pub dir: tempfile::TempDir,
}

impl Pki {
    pub fn new(name: &str) -> Pki {
        let root = issue(Spec::ca(&format!("{name} Root CA"), 1), None);
        let intermediate = issue(Spec::ca(&format!("{name} Sub CA"), 2), Some(&root));
        Pki {
            root,
            intermediate,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// An end entity issued by the intermediate.
    pub fn issue(&self, spec: Spec<'_>) -> Issued {
        issue(spec, Some(&self.intermediate))
    }

    pub fn chain(&self, leaf: &Issued) -> CertChain {
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

    /// Trust in our root, with these CRLs.
    pub fn trust(&self, crls: &[PathBuf]) -> Arc<TrustStore> {
        let ca = self.write("ca.pem", &self.root.cert.to_pem().unwrap());
        Arc::new(TrustStore::load(&[ca], crls).unwrap())
    }

    /// The intermediate's CRL (the end entity's issuer), revoking `revoked`.
    pub fn crls(&self, revoked: &[u32]) -> Vec<PathBuf> {
        vec![self.crl("sub.crl", &self.intermediate, revoked)]
    }

    fn crl(&self, file: &str, issuer: &Issued, revoked: &[u32]) -> PathBuf {
        let mut b = X509CrlBuilder::new().unwrap();
        b.set_issuer_name(issuer.cert.subject_name()).unwrap();
        b.set_last_update(&time(-DAY)).unwrap();
        b.set_next_update(&time(30 * DAY)).unwrap();
        for serial in revoked {
            let mut r = X509RevokedBuilder::new().unwrap();
            r.set_serial_number(&serial_number(*serial)).unwrap();
            r.set_revocation_date(&time(-DAY)).unwrap();
            b.add_revoked(r.build()).unwrap();
        }
        // OpenSSL 3 wants authorityKeyIdentifier and cRLNumber.
        let skid = issuer.cert.subject_key_id().unwrap().as_slice();
        let akid = [&[0x30, 0x16, 0x80, 0x14][..], skid].concat();
        let extension = |oid: &str, der: &[u8]| {
            let oid = Asn1Object::from_str(oid).unwrap();
            let value = Asn1OctetString::new_from_bytes(der).unwrap();
            X509Extension::new_from_der(&oid, false, &value).unwrap()
        };
        b.append_extension(extension("2.5.29.35", &akid)).unwrap();
        b.append_extension(extension("2.5.29.20", &[0x02, 0x01, 0x01]))
            .unwrap();
        b.sign(&issuer.key, digest_for(&issuer.key)).unwrap();
        self.write(file, &b.build().unwrap().to_pem().unwrap())
    }
}
