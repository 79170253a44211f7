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
    };
    let (idi, idr) = (id("i.example"), id("r.example"));
    let expected = |message: &[u8], other_nonce: &[u8], sk_p: &Secret, id: &Identification| {
        let id_body = id.auth_octets().unwrap();
        signed_octets(Prf::HmacSha256, message, other_nonce, sk_p, &id_body)
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
    };
    auth.authenticate(&signing).unwrap()
}

fn check(verifier: &RemoteAuth, signed_octets: &[u8], auth: &Auth) -> Result<(), AuthError> {
    verifier.verify(&Checking {
        prf: Prf::HmacSha256,
        signed_octets,
        auth,
    })
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
