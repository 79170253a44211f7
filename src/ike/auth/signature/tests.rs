use std::sync::OnceLock;

use openssl::asn1::Asn1Object;

use super::*;
use crate::ike::auth::keys::tests::{ec_key, ed25519_key, rsa_key};

const OCTETS: &[u8] = b"RealMessage1 | NonceRData | MACedIDForI";

fn keys() -> &'static [PrivateKey] {
    static KEYS: OnceLock<Vec<PrivateKey>> = OnceLock::new();
    KEYS.get_or_init(|| {
        vec![
            rsa_key(2048),
            ec_key(Curve::P256),
            ec_key(Curve::P384),
            ec_key(Curve::P521),
            ed25519_key(),
        ]
    })
}

fn key(kind: fn(KeyKind) -> bool) -> &'static PrivateKey {
    keys().iter().find(|k| kind(k.kind())).unwrap()
}

fn rsa() -> &'static PrivateKey {
    key(|k| matches!(k, KeyKind::Rsa { .. }))
}

fn p256() -> &'static PrivateKey {
    key(|k| k == KeyKind::Ecdsa(Curve::P256))
}

fn unhex(text: &str) -> Vec<u8> {
    let digits: String = text.split_whitespace().collect();
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
        .collect()
}

/// The AlgorithmIdentifiers of RFC 7427 Appendix A (and RFC 8420 for Ed25519).
fn rfc_vectors() -> Vec<(SignatureScheme, Vec<u8>)> {
    use Digest::*;
    use SignatureScheme::*;
    [
        (
            RsaPkcs1(Sha1),
            "30 0d 06 09 2a 86 48 86 f7 0d 01 01 05 05 00",
        ),
        (
            RsaPkcs1(Sha256),
            "30 0d 06 09 2a 86 48 86 f7 0d 01 01 0b 05 00",
        ),
        (
            RsaPkcs1(Sha384),
            "30 0d 06 09 2a 86 48 86 f7 0d 01 01 0c 05 00",
        ),
        (
            RsaPkcs1(Sha512),
            "30 0d 06 09 2a 86 48 86 f7 0d 01 01 0d 05 00",
        ),
        (Ecdsa(Sha1), "30 09 06 07 2a 86 48 ce 3d 04 01"),
        (Ecdsa(Sha256), "30 0a 06 08 2a 86 48 ce 3d 04 03 02"),
        (Ecdsa(Sha384), "30 0a 06 08 2a 86 48 ce 3d 04 03 03"),
        (Ecdsa(Sha512), "30 0a 06 08 2a 86 48 ce 3d 04 03 04"),
        (Ed25519, "30 05 06 03 2b 65 70"),
        (
            RsaPss(Sha256),
            "30 41 06 09 2a 86 48 86 f7 0d 01 01 0a 30 34
             a0 0f 30 0d 06 09 60 86 48 01 65 03 04 02 01 05 00
             a1 1c 30 1a 06 09 2a 86 48 86 f7 0d 01 01 08
                30 0d 06 09 60 86 48 01 65 03 04 02 01 05 00
             a2 03 02 01 20",
        ),
    ]
    .into_iter()
    .map(|(scheme, der)| (scheme, unhex(der)))
    .collect()
}

#[test]
fn algorithm_identifiers_match_the_rfc_vectors_both_ways() {
    for (scheme, der) in rfc_vectors() {
        assert_eq!(scheme.algorithm_identifier(), der, "{scheme}");
        assert_eq!(
            SignatureScheme::from_algorithm_identifier(&der).unwrap(),
            scheme
        );
    }
}

#[test]
fn oids_agree_with_openssl() {
    let cases = [
        ("1.2.840.113549.1.1.11", pkcs1_oid(Digest::Sha256)),
        ("1.2.840.113549.1.1.13", pkcs1_oid(Digest::Sha512)),
        ("1.2.840.113549.1.1.10", RSASSA_PSS.to_vec()),
        ("1.2.840.113549.1.1.8", MGF1.to_vec()),
        ("1.2.840.10045.4.3.3", ecdsa_oid(Digest::Sha384)),
        ("1.3.101.112", ED25519.to_vec()),
        ("2.16.840.1.101.3.4.2.3", Digest::Sha512.oid().to_vec()),
        ("1.3.14.3.2.26", Digest::Sha1.oid().to_vec()),
    ];
    for (dotted, ours) in cases {
        assert_eq!(
            Asn1Object::from_str(dotted).unwrap().as_slice(),
            ours,
            "{dotted}"
        );
    }
}

#[test]
fn pss_parameters_are_parsed_not_compared() {
    // Explicit default trailerField and hash parameters without NULL are the same scheme.
    let with_trailer = unhex(
        "30 46 06 09 2a 86 48 86 f7 0d 01 01 0a 30 39
         a0 0f 30 0d 06 09 60 86 48 01 65 03 04 02 01 05 00
         a1 1c 30 1a 06 09 2a 86 48 86 f7 0d 01 01 08
            30 0d 06 09 60 86 48 01 65 03 04 02 01 05 00
         a2 03 02 01 20 a3 03 02 01 01",
    );
    let no_null = unhex(
        "30 3d 06 09 2a 86 48 86 f7 0d 01 01 0a 30 30
         a0 0d 30 0b 06 09 60 86 48 01 65 03 04 02 03
         a1 1a 30 18 06 09 2a 86 48 86 f7 0d 01 01 08
            30 0b 06 09 60 86 48 01 65 03 04 02 03
         a2 03 02 01 40",
    );
    let parse = SignatureScheme::from_algorithm_identifier;
    assert_eq!(
        parse(&with_trailer).unwrap(),
        SignatureScheme::RsaPss(Digest::Sha256)
    );
    assert_eq!(
        parse(&no_null).unwrap(),
        SignatureScheme::RsaPss(Digest::Sha512)
    );
    let good = SignatureScheme::RsaPss(Digest::Sha256).algorithm_identifier();
    let mutate = |at: usize, value: u8| {
        let mut der = good.clone();
        der[at] = value;
        der
    };
    let salt_at = good.len() - 1;
    let mgf_hash_at = good.len() - 8;
    for (what, der) in [
        ("salt 20", mutate(salt_at, 20)),
        ("MGF1 with SHA-384", mutate(mgf_hash_at, 2)),
        (
            "no parameters",
            unhex("30 0b 06 09 2a 86 48 86 f7 0d 01 01 0a"),
        ),
        (
            "trailer 2",
            [&with_trailer[..with_trailer.len() - 1], &[2]].concat(),
        ),
        ("truncated", good[..good.len() - 1].to_vec()),
        ("trailing octet", [&good[..], &[0]].concat()),
        ("garbage", vec![0xff; 12]),
        ("empty", vec![]),
    ] {
        let e = parse(&der).unwrap_err();
        assert!(
            matches!(e, SignatureError::UnknownAlgorithm(_)),
            "{what}: {e}"
        );
    }
    assert_eq!(
        parse(&[0x30, 0x03, 0x06, 0x01, 0x2a])
            .unwrap_err()
            .to_string(),
        "unknown signature algorithm, AlgorithmIdentifier 300306012a"
    );
}

fn schemes_for(kind: KeyKind) -> impl Iterator<Item = SignatureScheme> {
    DEFAULT_SCHEMES
        .iter()
        .copied()
        .filter(move |s| s.fits(kind) && s.digest() != Some(Digest::Sha1))
}

#[test]
fn every_key_signs_and_verifies_with_every_scheme_it_fits() {
    let mut checked = 0;
    for key in keys() {
        let public = key.public_key();
        for scheme in schemes_for(key.kind()) {
            let data = sign(key, scheme, OCTETS).unwrap();
            let algorithm = scheme.algorithm_identifier();
            assert_eq!(usize::from(data[0]), algorithm.len());
            assert_eq!(&data[1..=algorithm.len()], algorithm.as_slice());
            let verified = verify(
                &public,
                AuthMethod::DigitalSignature,
                &data,
                OCTETS,
                DEFAULT_SCHEMES,
            );
            assert_eq!(verified.unwrap(), scheme, "{key:?} {scheme}");
            checked += 1;
        }
    }
    // RSA: 3 PSS + 3 PKCS#1; each ECDSA curve: 3 hashes; Ed25519: 1.
    assert_eq!(checked, 6 + 3 * 3 + 1);
}

#[test]
fn tampered_octets_or_signatures_do_not_verify() {
    for key in keys() {
        let public = key.public_key();
        for scheme in schemes_for(key.kind()) {
            let data = sign(key, scheme, OCTETS).unwrap();
            let mut other = OCTETS.to_vec();
            other[0] ^= 1;
            let e = verify(
                &public,
                AuthMethod::DigitalSignature,
                &data,
                &other,
                DEFAULT_SCHEMES,
            );
            assert!(matches!(e, Err(SignatureError::DoesNotVerify)), "{scheme}");
            let mut bad = data.clone();
            *bad.last_mut().unwrap() ^= 0x40;
            let e = verify(
                &public,
                AuthMethod::DigitalSignature,
                &bad,
                OCTETS,
                DEFAULT_SCHEMES,
            );
            assert_eq!(e.unwrap_err().to_string(), "signature does not verify");
        }
    }
    // Another key of the same kind does not verify either.
    let data = sign(p256(), SignatureScheme::Ecdsa(Digest::Sha256), OCTETS).unwrap();
    let stranger = ec_key(Curve::P256).public_key();
    assert!(matches!(
        verify(
            &stranger,
            AuthMethod::DigitalSignature,
            &data,
            OCTETS,
            DEFAULT_SCHEMES
        ),
        Err(SignatureError::DoesNotVerify)
    ));
}

#[test]
fn wrong_scheme_for_the_key_is_refused() {
    let e = sign(rsa(), SignatureScheme::Ecdsa(Digest::Sha256), OCTETS).unwrap_err();
    assert_eq!(
        e.to_string(),
        "scheme ecdsa-sha256 does not fit a RSA 2048 key"
    );
    assert!(sign(p256(), SignatureScheme::Ed25519, OCTETS).is_err());
    // An RSA signature presented for an ECDSA peer key.
    let data = sign(rsa(), SignatureScheme::RsaPss(Digest::Sha256), OCTETS).unwrap();
    let e = verify(
        &p256().public_key(),
        AuthMethod::DigitalSignature,
        &data,
        OCTETS,
        DEFAULT_SCHEMES,
    );
    assert!(matches!(e, Err(SignatureError::WrongKey { .. })));
}

#[test]
fn schemes_outside_the_allowed_list_are_refused() {
    let data = sign(rsa(), SignatureScheme::RsaPkcs1(Digest::Sha256), OCTETS).unwrap();
    let only_pss = [SignatureScheme::RsaPss(Digest::Sha256)];
    let e = verify(
        &rsa().public_key(),
        AuthMethod::DigitalSignature,
        &data,
        OCTETS,
        &only_pss,
    );
    assert_eq!(
        e.unwrap_err().to_string(),
        "peer used scheme rsa-pkcs1-sha256 not allowed"
    );
    // SHA-1 inside method 14 is refused even when allowed for method 1.
    let sha1 = SignatureScheme::RsaPkcs1(Digest::Sha1);
    let mut data = vec![15];
    data.extend(sha1.algorithm_identifier());
    data.extend(raw_sign(rsa().pkey(), sha1, OCTETS).unwrap());
    let e = verify(
        &rsa().public_key(),
        AuthMethod::DigitalSignature,
        &data,
        OCTETS,
        DEFAULT_SCHEMES,
    );
    assert!(matches!(e, Err(SignatureError::NotAllowed(s)) if s == sha1));
}

#[test]
fn malformed_auth_data_and_non_signature_methods() {
    let public = rsa().public_key();
    for data in [&[][..], &[20, 0x30, 0x03]] {
        let e = verify(
            &public,
            AuthMethod::DigitalSignature,
            data,
            OCTETS,
            DEFAULT_SCHEMES,
        );
        assert!(matches!(e, Err(SignatureError::Malformed(_))), "{data:?}");
    }
    let e = verify(
        &public,
        AuthMethod::SharedKeyMic,
        &[1; 32],
        OCTETS,
        DEFAULT_SCHEMES,
    );
    assert_eq!(
        e.unwrap_err().to_string(),
        "AUTH method 2 is not a signature method"
    );
}

#[test]
fn classic_methods_sign_and_verify() {
    let expected = [
        (AuthMethod::RsaSignature, 256),
        (AuthMethod::EcdsaSha256P256, 64),
        (AuthMethod::EcdsaSha384P384, 96),
        (AuthMethod::EcdsaSha512P521, 132),
    ];
    for (key, (method, len)) in keys().iter().zip(expected) {
        let (signed_method, data) = sign_classic(key, OCTETS).unwrap();
        assert_eq!((signed_method, data.len()), (method, len), "{key:?}");
        let public = key.public_key();
        assert!(verify(&public, method, &data, OCTETS, DEFAULT_SCHEMES).is_ok());
        assert!(matches!(
            verify(&public, method, &data, b"other", DEFAULT_SCHEMES),
            Err(SignatureError::DoesNotVerify)
        ));
    }
    // RFC 4754: r || s, not DER; a DER signature is the wrong length.
    let der = raw_sign(
        p256().pkey(),
        SignatureScheme::Ecdsa(Digest::Sha256),
        OCTETS,
    )
    .unwrap();
    let e = verify(
        &p256().public_key(),
        AuthMethod::EcdsaSha256P256,
        &der,
        OCTETS,
        DEFAULT_SCHEMES,
    );
    assert!(matches!(e, Err(SignatureError::Malformed(_))));
    // Method 9 names P-256: a P-384 key cannot have made it.
    let (_, data) = sign_classic(p256(), OCTETS).unwrap();
    let p384 = key(|k| k == KeyKind::Ecdsa(Curve::P384)).public_key();
    assert!(matches!(
        verify(
            &p384,
            AuthMethod::EcdsaSha256P256,
            &data,
            OCTETS,
            DEFAULT_SCHEMES
        ),
        Err(SignatureError::WrongKey { .. })
    ));
    // Method 1 needs RsaPkcs1(Sha1) among the allowed schemes.
    let (_, data) = sign_classic(rsa(), OCTETS).unwrap();
    let e = verify(
        &rsa().public_key(),
        AuthMethod::RsaSignature,
        &data,
        OCTETS,
        &DEFAULT_SCHEMES[..4],
    );
    assert!(matches!(e, Err(SignatureError::NotAllowed(_))));
    let e = sign_classic(key(|k| k == KeyKind::Ed25519), OCTETS).unwrap_err();
    assert!(e
        .to_string()
        .contains("must announce SIGNATURE_HASH_ALGORITHMS"));
}

#[test]
fn hash_algorithms_notify_round_trip() {
    let n = hash_algorithms_notify(&our_hashes(DEFAULT_SCHEMES));
    assert_eq!(n.data, [0, 5, 0, 2, 0, 3, 0, 4]);
    assert_eq!(
        announced_hashes(&n).unwrap(),
        [
            SignatureHash::Identity,
            SignatureHash::Sha256,
            SignatureHash::Sha384,
            SignatureHash::Sha512
        ]
    );
    // Unknown numbers are skipped; an odd length is not a list.
    let n = Notify::signature_hash_algorithms(&[9, 1, 2]);
    assert_eq!(
        announced_hashes(&n).unwrap(),
        [SignatureHash::Sha1, SignatureHash::Sha256]
    );
    let odd = Notify::new(
        crate::ike::codec::NotifyType::SignatureHashAlgorithms,
        vec![0, 2, 0],
    );
    assert_eq!(announced_hashes(&odd), None);
    for id in 1..=5 {
        assert_eq!(SignatureHash::from_u16(id).unwrap().to_u16(), id);
    }
    assert_eq!(SignatureHash::from_u16(6), None);
}

#[test]
fn selection_follows_our_order_and_the_peer_announcement() {
    use SignatureHash::*;
    let rsa_kind = KeyKind::Rsa { bits: 2048 };
    let pick = |kind, peer: Option<&[SignatureHash]>| select(kind, peer, DEFAULT_SCHEMES);
    assert_eq!(
        pick(rsa_kind, Some(&[Sha512, Sha256])).unwrap(),
        Signing::Digital(SignatureScheme::RsaPss(Digest::Sha256))
    );
    assert_eq!(
        pick(KeyKind::Ed25519, Some(&[Sha256, Identity])).unwrap(),
        Signing::Digital(SignatureScheme::Ed25519)
    );
    assert_eq!(
        pick(KeyKind::Ecdsa(Curve::P521), Some(&[Sha384])).unwrap(),
        Signing::Digital(SignatureScheme::Ecdsa(Digest::Sha384))
    );
    let e = pick(rsa_kind, Some(&[Identity, Sha1])).unwrap_err();
    assert!(e
        .to_string()
        .starts_with("no shared signature hash: the peer announced [Identity, Sha1]"));
    assert_eq!(
        pick(rsa_kind, None).unwrap(),
        Signing::Classic(AuthMethod::RsaSignature)
    );
    assert_eq!(
        pick(KeyKind::Ecdsa(Curve::P384), None).unwrap(),
        Signing::Classic(AuthMethod::EcdsaSha384P384)
    );
    assert!(matches!(
        pick(KeyKind::Ed25519, None),
        Err(SignatureError::NoClassicMethod(_))
    ));
    assert!(matches!(
        select(rsa_kind, None, &DEFAULT_SCHEMES[..4]),
        Err(SignatureError::NoSharedHash { .. })
    ));
}

#[test]
fn rfc_4754_ecdsa_256_vector_verifies_as_method_9() {
    use openssl::bn::{BigNum, BigNumContext};
    use openssl::ec::{EcGroup, EcKey};
    use openssl::nid::Nid;
    use openssl::pkey::PKey;
    // RFC 4754 section 8.1: public key gw, message "abc", signature r || s.
    let x = "2442A5CC0ECD015FA3CA31DC8E2BBC70BF42D60CBCA20085E0822CB04235E970";
    let y = "6FC98BD7E50211A4A27102FA3549DF79EBCB4BF246B80945CDDFE7D509BBFD7D";
    let r = "CB28E0999B9C7715FD0A80D8E47A77079716CBBF917DD72E97566EA1C066957C";
    let s = "86FA3BB4E26CAD5BF90B7F81899256CE7594BB1EA0C89212748BFF3B3D5B0315";
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let (x, y) = (
        BigNum::from_hex_str(x).unwrap(),
        BigNum::from_hex_str(y).unwrap(),
    );
    let ec = EcKey::from_public_key_affine_coordinates(&group, &x, &y).unwrap();
    let mut ctx = BigNumContext::new().unwrap();
    assert!(ec.check_key().is_ok() && ec.public_key().is_on_curve(&group, &mut ctx).unwrap());
    let public = PublicKey::from_pkey(PKey::from_ec_key(ec).unwrap()).unwrap();
    let (r, s) = (unhex(r), unhex(s));
    let method = AuthMethod::EcdsaSha256P256;
    let rs = [r.as_slice(), &s].concat();
    assert_eq!(
        verify(&public, method, &rs, b"abc", DEFAULT_SCHEMES).unwrap(),
        SignatureScheme::Ecdsa(Digest::Sha256)
    );
    let sr = [s.as_slice(), &r].concat();
    assert!(matches!(
        verify(&public, method, &sr, b"abc", DEFAULT_SCHEMES),
        Err(SignatureError::DoesNotVerify)
    ));
    assert!(matches!(
        verify(&public, method, &rs, b"abd", DEFAULT_SCHEMES),
        Err(SignatureError::DoesNotVerify)
    ));
}

#[test]
fn pss_signatures_use_a_salt_of_the_hash_length() {
    for (digest, len) in [
        (Digest::Sha256, 32),
        (Digest::Sha384, 48),
        (Digest::Sha512, 64),
    ] {
        let data = sign(rsa(), SignatureScheme::RsaPss(digest), OCTETS).unwrap();
        let signature = &data[1 + usize::from(data[0])..];
        let check = |salt: i32| {
            let public = rsa().public_key();
            let mut v = Verifier::new(digest.message_digest(), public.pkey()).unwrap();
            v.set_rsa_padding(Padding::PKCS1_PSS).unwrap();
            v.set_rsa_pss_saltlen(RsaPssSaltlen::custom(salt)).unwrap();
            v.set_rsa_mgf1_md(digest.message_digest()).unwrap();
            v.verify_oneshot(signature, OCTETS).unwrap_or(false)
        };
        assert!(check(len), "{digest:?}");
        assert!(!check(20), "{digest:?}");
    }
}
