//! Public-key authentication engine to engine: every key type and signature scheme, raw
//! keys and certificates, the classic methods, mixed PSK / signature, and each reason a
//! certificate is refused, surfaced as what it is.

mod common;

use std::sync::Arc;

use common::peers::{connection, dpd, engine, Pair, TO_B};
use common::pki::{self, private_key, Alg, Issued, Pki, Spec, DAY};
use openssl::pkey::{PKey, Private};
use routevpn::ike::auth::keys::PrivateKey;
use routevpn::ike::auth::x509::CertChain;
use routevpn::ike::crypto::Secret;
use routevpn::ike::engine::{
    DpdAction, Engine, EngineConfig, Event, FailureReason, Identity, IkeSaState, LocalAuth,
    RemoteAuth, SendCert, StartAction,
};

const ID_A: &str = "a.example";
const ID_B: &str = "b.example";

/// Side a (`a == true`) or b, identified as a.example / b.example.
fn side(a: bool, local: LocalAuth, remote: RemoteAuth, config: EngineConfig) -> Engine {
    let mut conn = connection(
        a,
        dpd(0, 150, DpdAction::Clear),
        StartAction::None,
        StartAction::None,
    );
    let (ours, theirs) = if a { (ID_A, ID_B) } else { (ID_B, ID_A) };
    conn.config.local_id = Some(Identity::Fqdn(ours.into()));
    conn.config.remote_id = Identity::Fqdn(theirs.into());
    conn.local_auth = local;
    conn.remote_auth = remote;
    engine(config, conn)
}

fn signer(key: &Arc<PrivateKey>, chain: Option<CertChain>, send_cert: SendCert) -> LocalAuth {
    LocalAuth::Signature {
        key: key.clone(),
        chain,
        send_cert,
    }
}

fn raw(key: &PKey<Private>) -> (LocalAuth, RemoteAuth) {
    let key = private_key(key);
    let public = key.public_key();
    (
        signer(&key, None, SendCert::Never),
        RemoteAuth::PublicKey { key: public },
    )
}

/// Runs IKE_SA_INIT and IKE_AUTH from a to b.
fn connect(a: Engine, b: Engine) -> Pair {
    let mut pair = Pair::new(a, b);
    pair.engines[0].initiate(pair.now, TO_B).unwrap();
    pair.settle();
    pair
}

/// How each side says the other proved itself; panics unless both are established with
/// their Child SA.
fn established(pair: &Pair) -> [String; 2] {
    [0, 1].map(|side| {
        let status = pair.engines[side].status();
        assert_eq!(status.len(), 1, "side {side}");
        assert_eq!(status[0].state, IkeSaState::Established, "side {side}");
        assert_eq!(pair.children(side), 1, "side {side}");
        let how = pair.records[side].events.iter().find_map(|(_, e)| match e {
            Event::Established { peer_auth, .. } => Some(peer_auth.clone()),
            _ => None,
        });
        how.unwrap()
    })
}

/// The reasons `side` failed for, as text.
fn failures(pair: &Pair, side: usize) -> Vec<String> {
    (pair.records[side].events.iter())
        .filter_map(|(_, e)| match e {
            Event::Failed {
                reason: reason @ FailureReason::AuthenticationFailed { .. },
                ..
            } => Some(reason.to_string()),
            _ => None,
        })
        .collect()
}

fn nothing_established(pair: &Pair) {
    for side in 0..2 {
        let up = (pair.engines[side].status().iter()).any(|s| s.state == IkeSaState::Established);
        assert!(!up, "side {side} established");
    }
}

const EVERY_KEY: [(Alg, &str); 5] = [
    (Alg::Rsa2048, "rsa-pss-sha256"),
    (Alg::P256, "ecdsa-sha256"),
    (Alg::P384, "ecdsa-sha256"),
    (Alg::P521, "ecdsa-sha256"),
    (Alg::Ed25519, "ed25519"),
];

/// Both sides with raw `alg` keys; a with `a_config`.
fn raw_keys(alg: Alg, a_config: EngineConfig) -> Pair {
    let (sign_a, check_a) = raw(&pki::openssl_key(alg));
    let (sign_b, check_b) = raw(&pki::openssl_key(alg));
    connect(
        side(true, sign_a, check_b, a_config),
        side(false, sign_b, check_a, EngineConfig::default()),
    )
}

/// Without RFC 7427 on one side, the other sees no hashes announced either.
fn classic() -> EngineConfig {
    EngineConfig {
        signature_authentication: false,
        ..EngineConfig::default()
    }
}

#[test]
fn raw_keys_of_every_type_sign_with_rfc7427() {
    for (alg, scheme) in EVERY_KEY {
        let pair = raw_keys(alg, EngineConfig::default());
        let expected = format!("{scheme} signature (AUTH method 14)");
        assert_eq!(established(&pair), [expected.clone(), expected], "{alg:?}");
    }
}

#[test]
fn without_rfc7427_the_classic_method_of_the_key_is_used() {
    for (alg, method) in [
        (Alg::Rsa2048, "rsa-pkcs1-sha1 signature (AUTH method 1)"),
        (Alg::P256, "ecdsa-sha256 signature (AUTH method 9)"),
        (Alg::P384, "ecdsa-sha384 signature (AUTH method 10)"),
        (Alg::P521, "ecdsa-sha512 signature (AUTH method 11)"),
    ] {
        let pair = raw_keys(alg, classic());
        assert_eq!(established(&pair), [method, method], "{alg:?}");
    }
}

#[test]
fn ed25519_without_rfc7427_fails_as_no_shared_signature_hash() {
    let pair = raw_keys(Alg::Ed25519, classic());
    nothing_established(&pair);
    failed_once(
        &pair,
        0,
        &["we cannot authenticate ourselves", "no classic AUTH method"],
    );
    // The initiator gave up before IKE_AUTH: the responder has nothing to report.
    assert!(failures(&pair, 1).is_empty());
}

#[test]
fn a_signature_by_another_key_is_refused_as_such() {
    let (sign_a, _) = raw(&pki::openssl_key(Alg::P256));
    let (_, check_a_wrong) = raw(&pki::openssl_key(Alg::P256));
    let (sign_b, check_b) = raw(&pki::openssl_key(Alg::P256));
    let pair = connect(
        side(true, sign_a, check_b, EngineConfig::default()),
        side(false, sign_b, check_a_wrong, EngineConfig::default()),
    );
    refused(&pair, &["a.example", "signature does not verify"]);
}

#[test]
fn mixed_psk_and_signature_both_ways() {
    let psk = Secret::from_slice(b"b proves itself with this psk, 0123");
    let (sign_a, check_a) = raw(&pki::openssl_key(Alg::P384));
    let pair = connect(
        side(
            true,
            sign_a,
            RemoteAuth::Psk(psk.clone()),
            EngineConfig::default(),
        ),
        side(false, LocalAuth::Psk(psk), check_a, EngineConfig::default()),
    );
    assert_eq!(
        established(&pair),
        [
            "pre-shared key".to_owned(),
            "ecdsa-sha256 signature (AUTH method 14)".to_owned()
        ]
    );
}

/// Both sides with certificates from `pki` (a's is `a_cert`), trusting `pki`'s root.
fn certified(pki: &Pki, a_cert: Issued, crls: &[std::path::PathBuf]) -> Pair {
    certified_by(pki, a_cert, pki, crls)
}

/// a with `a_cert` from `a_pki`, b with a certificate from `pki`; both trust `pki`.
fn certified_by(a_pki: &Pki, a_cert: Issued, pki: &Pki, crls: &[std::path::PathBuf]) -> Pair {
    let b_cert = pki.issue(Spec::end_entity(ID_B, Alg::P256, 20));
    let trust = pki.trust(crls);
    let local = |issuer: &Pki, cert: &Issued| {
        let chain = Some(issuer.chain(cert));
        signer(&private_key(&cert.key), chain, SendCert::IfAsked)
    };
    let remote = || RemoteAuth::Certificate {
        trust: trust.clone(),
    };
    let default = EngineConfig::default;
    connect(
        side(true, local(a_pki, &a_cert), remote(), default()),
        side(false, local(pki, &b_cert), remote(), default()),
    )
}

#[test]
fn certificates_of_every_key_type_from_one_ca() {
    for (alg, scheme) in EVERY_KEY {
        let pki = Pki::new("Good");
        let a_cert = pki.issue(Spec::end_entity(ID_A, alg, 10));
        let pair = certified(&pki, a_cert, &[]);
        let [by_a, by_b] = established(&pair);
        let suffix = "with a certificate from a trusted CA";
        assert_eq!(
            by_a,
            format!("ecdsa-sha256 signature (AUTH method 14) {suffix}")
        );
        assert_eq!(
            by_b,
            format!("{scheme} signature (AUTH method 14) {suffix}"),
            "{alg:?}"
        );
    }
}

/// `side` failed once, for a reason that says all of `expected`.
fn failed_once(pair: &Pair, side: usize, expected: &[&str]) {
    let [reason] = failures(pair, side).try_into().unwrap();
    assert!(expected.iter().all(|e| reason.contains(e)), "{reason}");
}

/// The responder b refused for `expected`; the initiator a learnt only that.
fn refused(pair: &Pair, expected: &[&str]) {
    nothing_established(pair);
    failed_once(pair, 1, expected);
    failed_once(pair, 0, &["the peer refused our authentication"]);
}

#[test]
fn a_certificate_from_another_ca_is_refused_as_unknown_ca() {
    let (ours, theirs) = (Pki::new("Ours"), Pki::new("Theirs"));
    // a's chain leads to a root b does not trust.
    let foreign = theirs.issue(Spec::end_entity(ID_A, Alg::P256, 10));
    refused(
        &certified_by(&theirs, foreign, &ours, &[]),
        &["is not issued by a trusted CA"],
    );
}

#[test]
fn expired_and_not_yet_valid_certificates_are_refused_as_such() {
    let pki = Pki::new("Dates");
    let expired = Spec {
        from: -30 * DAY,
        until: -DAY,
        ..Spec::end_entity(ID_A, Alg::P256, 10)
    };
    refused(&certified(&pki, pki.issue(expired), &[]), &["has expired"]);
    let early = Spec {
        from: DAY,
        until: 30 * DAY,
        ..Spec::end_entity(ID_A, Alg::P256, 11)
    };
    refused(
        &certified(&pki, pki.issue(early), &[]),
        &["is not valid yet"],
    );
}

#[test]
fn a_revoked_certificate_is_refused_as_revoked() {
    let pki = Pki::new("Revoking");
    let crls = pki.crls(&[10]);
    refused(
        &certified(
            &pki,
            pki.issue(Spec::end_entity(ID_A, Alg::P256, 10)),
            &crls,
        ),
        &["is revoked"],
    );
    // The same CRL does not touch another serial.
    let pair = certified(
        &pki,
        pki.issue(Spec::end_entity(ID_A, Alg::P256, 11)),
        &crls,
    );
    established(&pair);
}

#[test]
fn a_certificate_for_another_identity_is_refused_as_id_mismatch() {
    let pki = Pki::new("Names");
    let other = pki.issue(Spec::end_entity("c.example", Alg::P256, 10));
    refused(
        &certified(&pki, other, &[]),
        &["matches neither the subject nor a subjectAltName"],
    );
}

#[test]
fn a_peer_that_sends_no_certificate_is_refused_for_it() {
    let pki = Pki::new("Missing");
    let a_cert = pki.issue(Spec::end_entity(ID_A, Alg::P256, 10));
    let (sign_b, check_b) = raw(&pki::openssl_key(Alg::P256));
    let a = side(
        true,
        signer(
            &private_key(&a_cert.key),
            Some(pki.chain(&a_cert)),
            SendCert::Never,
        ),
        check_b,
        EngineConfig::default(),
    );
    let b = side(
        false,
        sign_b,
        RemoteAuth::Certificate {
            trust: pki.trust(&[]),
        },
        EngineConfig::default(),
    );
    refused(
        &connect(a, b),
        &["malformed certificate: no X.509 CERT payload"],
    );
}

#[test]
fn a_responder_that_verifies_certificates_asks_for_them_in_ike_sa_init() {
    use routevpn::ike::codec::{Message, Payload};
    let pki = Pki::new("Asking");
    let trust = pki.trust(&[]);
    let certificate_requests = |remote: RemoteAuth| {
        let (sign_a, _) = raw(&pki::openssl_key(Alg::P256));
        let (sign_b, check_b) = raw(&pki::openssl_key(Alg::P256));
        let a = side(true, sign_a, check_b, EngineConfig::default());
        let b = side(false, sign_b, remote, EngineConfig::default());
        let pair = connect(a, b);
        let (_, answer) = &pair.records[1].sent[0];
        let answer = Message::decode(answer).unwrap();
        (answer.payloads.iter())
            .filter_map(|p| match p {
                Payload::CertificateRequest(c) => Some(c.clone()),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    let asking = certificate_requests(RemoteAuth::Certificate {
        trust: trust.clone(),
    });
    assert_eq!(asking, [trust.certificate_request()]);
    assert_eq!(asking[0].ca_hashes().unwrap().len(), 1);
    let (_, raw_key) = raw(&pki::openssl_key(Alg::P256));
    assert!(certificate_requests(raw_key).is_empty());
}

#[test]
fn a_responder_that_cannot_sign_says_so_and_refuses() {
    // b ignores a's hashes (no RFC 7427), so its Ed25519 key has no method to sign with;
    // a, seeing no hashes either, signs with ECDSA method 9 and is accepted.
    let (sign_a, check_a) = raw(&pki::openssl_key(Alg::P256));
    let (sign_b, check_b) = raw(&pki::openssl_key(Alg::Ed25519));
    let pair = connect(
        side(true, sign_a, check_b, EngineConfig::default()),
        side(false, sign_b, check_a, classic()),
    );
    refused(
        &pair,
        &["we cannot authenticate ourselves", "no classic AUTH method"],
    );
}
