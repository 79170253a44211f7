use super::*;
use crate::ike::codec::Identity;
use crate::ike::crypto::IkeSuite;
use crate::proposal::{Encryption, Integrity};

fn secret(byte: u8) -> Secret {
    Secret::new(vec![byte; 32])
}

fn keys() -> IkeSaKeys {
    let suite = IkeSuite::new(
        Encryption::AesCbc(128),
        Some(Integrity::HmacSha256_128),
        Prf::HmacSha256,
    )
    .unwrap();
    IkeSaKeys {
        suite,
        sk_d: secret(1),
        sk_ai: secret(2),
        sk_ar: secret(3),
        sk_ei: secret(4),
        sk_er: secret(5),
        sk_pi: secret(6),
        sk_pr: secret(7),
    }
}

fn id(name: &str) -> Identification {
    Identification::new(Identity::Fqdn(name.into()))
}

#[test]
fn each_side_signs_its_message_the_other_nonce_and_its_own_id_key() {
    let keys = keys();
    let inputs = AuthInputs {
        prf: Prf::HmacSha256,
        init_request: b"request",
        init_response: b"response",
        nonce_i: b"nonce i",
        nonce_r: b"nonce r",
        keys: &keys,
        int_auth: Vec::new(),
    };
    let (idi, idr) = (id("i.example"), id("r.example"));
    let expected = |message: &[u8], other_nonce: &[u8], sk_p: &Secret, id: &Identification| {
        let id_body = id.auth_octets().unwrap();
        signed_octets(Prf::HmacSha256, message, other_nonce, sk_p, &id_body).unwrap()
    };
    let expected_i = expected(b"request", b"nonce r", &keys.sk_pi, &idi);
    let expected_r = expected(b"response", b"nonce i", &keys.sk_pr, &idr);
    assert_eq!(inputs.signed_octets(true, &idi).unwrap(), expected_i);
    assert_eq!(inputs.signed_octets(false, &idr).unwrap(), expected_r);
    assert_ne!(expected_i, expected_r);
}

fn sign(auth: &LocalAuth, signed_octets: &[u8]) -> Auth {
    let signing = Signing {
        prf: Prf::HmacSha256,
        signed_octets,
        peer_hashes: None,
    };
    auth.authenticate(&signing).unwrap()
}

fn check(verifier: &RemoteAuth, signed_octets: &[u8], auth: &Auth) -> Result<String, AuthError> {
    verifier.verify(&checking(signed_octets, auth, &[]))
}

#[test]
fn psk_auth_verifies_with_the_same_key_only() {
    let octets = b"signed octets";
    let auth = sign(&LocalAuth::Psk(secret(9)), octets);
    assert_eq!(auth.method, AuthMethod::SharedKeyMic);
    assert!(check(&RemoteAuth::Psk(secret(9)), octets, &auth).is_ok());
    assert!(matches!(
        check(&RemoteAuth::Psk(secret(8)), octets, &auth),
        Err(AuthError::Mismatch)
    ));
    assert!(matches!(
        check(&RemoteAuth::Psk(secret(9)), b"other octets", &auth),
        Err(AuthError::Mismatch)
    ));
}

#[test]
fn a_psk_verifier_refuses_other_methods_even_with_the_right_mic() {
    let octets = b"signed octets";
    let mut auth = sign(&LocalAuth::Psk(secret(9)), octets);
    auth.method = AuthMethod::DigitalSignature;
    assert!(matches!(
        check(&RemoteAuth::Psk(secret(9)), octets, &auth),
        Err(AuthError::WrongMethod {
            expected: 2,
            got: 14
        })
    ));
}

fn checking<'a>(
    signed_octets: &'a [u8],
    auth: &'a Auth,
    certificates: &'a [Certificate],
) -> Checking<'a> {
    Checking {
        prf: Prf::HmacSha256,
        signed_octets,
        auth,
        peer_id: &PEER_ID,
        certificates,
    }
}

static PEER_ID: Identity = Identity::Address(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));

#[test]
fn rsa_pkcs1_signatures_from_peers_that_prefer_them_verify() {
    // strongSwan signs RSA with PKCS#1 v1.5 unless told to use PSS.
    use crate::ike::auth::signature::{sign, Digest, SignatureScheme};
    let key = crate::ike::auth::keys::tests::rsa_key(2048);
    let octets = b"signed octets";
    let scheme = SignatureScheme::RsaPkcs1(Digest::Sha256);
    let auth = Auth {
        method: AuthMethod::DigitalSignature,
        data: sign(&key, scheme, octets).unwrap(),
    };
    let verifier = RemoteAuth::PublicKey {
        key: key.public_key(),
    };
    let how = verifier.verify(&checking(octets, &auth, &[])).unwrap();
    assert_eq!(how, "rsa-pkcs1-sha256 signature (AUTH method 14)");
    let tampered = checking(b"other octets", &auth, &[]);
    assert!(matches!(
        verifier.verify(&tampered),
        Err(AuthError::Signature(SignatureError::DoesNotVerify))
    ));
}

#[test]
fn a_garbage_certificate_is_malformed_before_any_signature_check() {
    use crate::ike::auth::x509::tests::{pki, Alg};
    let trust = Arc::new(pki(Alg::P256, Alg::P256, Alg::P256).store(&[]));
    let auth = Auth {
        method: AuthMethod::DigitalSignature,
        data: vec![0; 70],
    };
    let garbage = [Certificate::x509(vec![0x30, 0x03, 0x02, 0x01])];
    let verifier = RemoteAuth::Certificate { trust };
    let result = verifier.verify(&checking(b"octets", &auth, &garbage));
    assert!(
        matches!(
            &result,
            Err(AuthError::Certificate(CertError::Malformed(_)))
        ),
        "{result:?}"
    );
}

#[test]
fn send_cert_decides_when_our_chain_goes_out() {
    use crate::ike::auth::x509::tests::{pki, Alg};
    let pki = pki(Alg::P256, Alg::P256, Alg::P256);
    let chain = pki.chain(&pki.leaf);
    let key = Arc::new(crate::ike::auth::keys::tests::ec_key(
        crate::ike::auth::keys::Curve::P256,
    ));
    let count = |send_cert, asked| {
        let auth = LocalAuth::Signature {
            key: key.clone(),
            chain: Some(chain.clone()),
            send_cert,
        };
        auth.certificates(asked).unwrap().len()
    };
    // End entity and intermediate, or nothing.
    assert_eq!(
        [false, true].map(|asked| count(SendCert::Always, asked)),
        [2, 2]
    );
    assert_eq!(
        [false, true].map(|asked| count(SendCert::IfAsked, asked)),
        [0, 2]
    );
    assert_eq!(
        [false, true].map(|asked| count(SendCert::Never, asked)),
        [0, 0]
    );
    let bare = LocalAuth::Signature {
        key,
        chain: None,
        send_cert: SendCert::Always,
    };
    assert!(bare.certificates(true).unwrap().is_empty());
}

#[test]
fn no_hash_the_key_can_use_is_no_shared_signature_hash() {
    use crate::ike::auth::signature::SignatureHash;
    let key = Arc::new(crate::ike::auth::keys::tests::ed25519_key());
    let auth = LocalAuth::Signature {
        key,
        chain: None,
        send_cert: SendCert::Never,
    };
    let signing = |peer_hashes| Signing {
        prf: Prf::HmacSha256,
        signed_octets: b"octets",
        peer_hashes,
    };
    let only_sha2: &[SignatureHash] = &[SignatureHash::Sha256, SignatureHash::Sha512];
    let refused = auth.authenticate(&signing(Some(only_sha2)));
    assert!(
        matches!(
            &refused,
            Err(AuthError::Signature(SignatureError::NoSharedHash { .. }))
        ),
        "{refused:?}"
    );
    let text = refused.unwrap_err().to_string();
    assert!(text.starts_with("no shared signature hash"), "{text}");
    let with_identity: &[SignatureHash] = &[SignatureHash::Sha256, SignatureHash::Identity];
    let signed = auth.authenticate(&signing(Some(with_identity))).unwrap();
    assert_eq!(signed.method, AuthMethod::DigitalSignature);
}
