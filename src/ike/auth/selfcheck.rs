//! Decodes untrusted octets every way the credential layer does (AUTH data, CERT payloads,
//! DER and text DNs, RFC 3110 keys) and asserts its invariants; shared by the
//! `decode_credentials` fuzz target and the proptests, so stable CI checks what the fuzzer
//! checks.

// Failing loudly is the point of this module.
#![allow(clippy::expect_used, clippy::panic)]

use std::sync::OnceLock;

use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;

use super::keys::{PrivateKey, PublicKey};
use super::signature::{verify, SignatureScheme, DEFAULT_SCHEMES};
use super::x509::dn::DistinguishedName;
use super::x509::{CertChain, CertError};
use crate::ike::codec::{AuthMethod, Certificate, Identity};

/// The octets AUTH data is checked against.
pub const SIGNED_OCTETS: &[u8] = b"RealMessage | Nonce | MACedID";

/// One key of each kind (RSA, P-256, Ed25519), made once per process.
pub fn fixed_keys() -> &'static [PrivateKey] {
    static KEYS: OnceLock<Vec<PrivateKey>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let p256 = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("P-256");
        let pems = [
            Rsa::generate(2048).and_then(|k| k.private_key_to_pem()),
            EcKey::generate(&p256).and_then(|k| k.private_key_to_pem()),
            PKey::generate_ed25519().and_then(|k| k.private_key_to_pem_pkcs8()),
        ];
        pems.into_iter()
            .map(|pem| PrivateKey::from_pem(&pem.expect("key generation"), "fixed").expect("key"))
            .collect()
    })
}

/// Checks everything the credential layer parses from `data`. Panics only on a bug.
pub fn check_decode(data: &[u8]) {
    if let Ok(scheme) = SignatureScheme::from_algorithm_identifier(data) {
        let der = scheme.algorithm_identifier();
        assert_eq!(
            SignatureScheme::from_algorithm_identifier(&der).ok(),
            Some(scheme)
        );
    }
    if let Some((&method, auth_data)) = data.split_first() {
        check_auth(AuthMethod::from_u8(method), auth_data);
    }
    check_certificate(data);
    if let Some(dn) = DistinguishedName::from_der(data) {
        let _ = dn.to_string();
        if let Ok(der) = dn.to_der() {
            let back = DistinguishedName::from_der(&der).expect("a re-encoded DN parses");
            assert!(back.matches(&dn), "{dn} re-encodes as {back}");
        }
    }
    let text = String::from_utf8_lossy(data);
    let _ = PublicKey::from_rfc3110(&text, "fuzz");
    if let Ok(dn) = DistinguishedName::parse(&text) {
        let _ = dn.to_der();
    }
}

/// Hostile AUTH data never verifies against any of our fixed keys.
pub fn check_auth(method: AuthMethod, auth_data: &[u8]) {
    for key in fixed_keys() {
        let result = verify(
            &key.public_key(),
            method,
            auth_data,
            SIGNED_OCTETS,
            DEFAULT_SCHEMES,
        );
        assert!(result.is_err(), "{method:?} accepted for {key:?}");
    }
}

fn check_certificate(data: &[u8]) {
    let payload = Certificate::x509(data.to_vec());
    assert_eq!(payload.ca_hashes().is_some(), data.len() % 20 == 0);
    match CertChain::from_payloads(&[payload]) {
        Ok(chain) => {
            let _ = chain.public_key();
            let _ = chain.default_identity();
            let _ = chain.check_identity(&Identity::Fqdn("vpn.example".into()));
            let _ = chain.check_identity(&Identity::DerAsn1Dn(data.to_vec()));
        }
        Err(e) => assert!(matches!(e, CertError::Malformed(_)), "{e}"),
    }
}

#[cfg(test)]
mod tests {
    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::*;
    use crate::ike::auth::signature::{sign, sign_classic};

    /// Valid AUTH data from one of the fixed keys with a few octets changed.
    fn mutated_auth() -> impl Strategy<Value = (u8, Vec<u8>)> {
        (
            0..fixed_keys().len(),
            0..4usize,
            vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        )
            .prop_map(|(k, scheme, edits)| {
                let key = &fixed_keys()[k];
                let schemes: Vec<_> = DEFAULT_SCHEMES
                    .iter()
                    .filter(|s| s.fits(key.kind()))
                    .collect();
                let (method, mut data) = match schemes.get(scheme) {
                    Some(s) if scheme > 0 => (14, sign(key, **s, SIGNED_OCTETS).unwrap()),
                    _ => sign_classic(key, SIGNED_OCTETS)
                        .map(|(m, d)| (m.to_u8(), d))
                        .unwrap_or_else(|_| (14, sign(key, *schemes[0], SIGNED_OCTETS).unwrap())),
                };
                for (at, value) in edits {
                    let i = at.index(data.len());
                    data[i] = if data[i] == value { value ^ 1 } else { value };
                }
                (method, data)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn random_octets_never_panic(data in vec(any::<u8>(), 0..600)) {
            check_decode(&data);
        }

        #[test]
        fn mutated_signatures_never_verify((method, data) in mutated_auth()) {
            check_auth(AuthMethod::from_u8(method), &data);
        }
    }
}
