//! The whole module used the way the engine will: IKE_SA_INIT key exchange, IKE_AUTH with a
//! shared key, the first Child SA, a PFS Child SA and an IKE SA rekey, each side computing
//! on its own.

use super::*;
use crate::proposal::{DhGroup, Encryption, Integrity, Prf};

struct Side {
    kex: KeyExchange,
    nonce: Vec<u8>,
    spi: [u8; 8],
}

impl Side {
    fn new(group: DhGroup) -> Side {
        Side {
            kex: KeyExchange::new(group).unwrap(),
            nonce: random::nonce().unwrap(),
            spi: random::ike_spi().unwrap(),
        }
    }
}

/// IKE header + SK header with matching lengths (see cipher tests).
fn sk_prefix(spi_i: &[u8; 8], spi_r: &[u8; 8], body_len: usize) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(spi_i);
    p.extend_from_slice(spi_r);
    p.extend_from_slice(&[46, 0x20, 35, 0x08, 0, 0, 0, 1]);
    p.extend_from_slice(&((32 + body_len) as u32).to_be_bytes());
    p.extend_from_slice(&[35, 0]);
    p.extend_from_slice(&((4 + body_len) as u16).to_be_bytes());
    p
}

fn handshake(suite: IkeSuite, group: DhGroup) {
    let psk = Secret::from_slice(b"a shared key of reasonable length");
    let (i, r) = (Side::new(group), Side::new(group));
    // Stand-ins for the IKE_SA_INIT messages as sent.
    let init_request = [b"IKE_SA_INIT request".as_slice(), i.kex.public_value()].concat();
    let init_response = [b"IKE_SA_INIT response".as_slice(), r.kex.public_value()].concat();

    let gir_i = i.kex.shared_secret(r.kex.public_value()).unwrap();
    let gir_r = r.kex.shared_secret(i.kex.public_value()).unwrap();
    let keys_i = IkeSaKeys::derive(suite, &gir_i, &i.nonce, &r.nonce, &i.spi, &r.spi).unwrap();
    let keys_r = IkeSaKeys::derive(suite, &gir_r, &i.nonce, &r.nonce, &i.spi, &r.spi).unwrap();
    assert!(keys_i.sk_d.ct_eq(keys_r.sk_d.expose()));
    assert!(keys_i.sk_pr.ct_eq(keys_r.sk_pr.expose()));

    // IKE_AUTH request: the initiator proves its identity.
    let idi = [&[2u8, 0, 0, 0][..], b"initiator.example"].concat();
    let octets = signed_octets(suite.prf, &init_request, &r.nonce, &keys_i.sk_pi, &idi).unwrap();
    let auth_i = psk_auth(suite.prf, &psk, &octets).unwrap();
    let inner = [&idi[..], &auth_i].concat();

    let mut sk_i = SkCiphers::new(&keys_i, true).unwrap();
    let mut sk_r = SkCiphers::new(&keys_r, false).unwrap();
    let mut request = sk_prefix(&i.spi, &r.spi, sk_i.outbound.sealed_len(inner.len()));
    let prefix_len = request.len();
    sk_i.seal_append(&mut request, &inner).unwrap();

    // The responder opens it and checks AUTH with the initiator's values.
    let (prefix, body) = request.split_at(prefix_len);
    let opened = sk_r.open(prefix, body).unwrap();
    let (peer_id, peer_auth) = opened.split_at(idi.len());
    let octets = signed_octets(suite.prf, &init_request, &r.nonce, &keys_r.sk_pi, peer_id).unwrap();
    verify_psk_auth(suite.prf, &psk, &octets, peer_auth).unwrap();
    let wrong_psk = Secret::from_slice(b"another key");
    assert!(verify_psk_auth(suite.prf, &wrong_psk, &octets, peer_auth).is_err());

    // IKE_AUTH response in the other direction.
    let idr = [&[2u8, 0, 0, 0][..], b"responder.example"].concat();
    let octets = signed_octets(suite.prf, &init_response, &i.nonce, &keys_r.sk_pr, &idr).unwrap();
    let auth_r = psk_auth(suite.prf, &psk, &octets).unwrap();
    let prefix = sk_prefix(&i.spi, &r.spi, sk_r.outbound.sealed_len(auth_r.len()));
    let body = sk_r.seal(&prefix, &auth_r).unwrap();
    let opened = sk_i.open(&prefix, &body).unwrap();
    let octets = signed_octets(suite.prf, &init_response, &i.nonce, &keys_i.sk_pr, &idr).unwrap();
    verify_psk_auth(suite.prf, &psk, &octets, &opened).unwrap();

    // First Child SA from the IKE_SA_INIT nonces.
    let (esp_encr, esp_integ) = (Encryption::AesGcm16(256), None);
    let child_i = keys_i
        .child_sa_keys(esp_encr, esp_integ, None, &i.nonce, &r.nonce)
        .unwrap();
    let child_r = keys_r
        .child_sa_keys(esp_encr, esp_integ, None, &i.nonce, &r.nonce)
        .unwrap();
    assert!(child_i.encr_i.ct_eq(child_r.encr_i.expose()));
    assert!(child_i.encr_r.ct_eq(child_r.encr_r.expose()));
    assert!(!child_i.encr_i.ct_eq(child_i.encr_r.expose()));

    // CREATE_CHILD_SA with PFS, started by the responder of the IKE SA: it is the
    // initiator of this exchange, so its nonce comes first.
    let (ni, nr) = (random::nonce().unwrap(), random::nonce().unwrap());
    let (ke_r, ke_i) = (
        KeyExchange::new(group).unwrap(),
        KeyExchange::new(group).unwrap(),
    );
    let pfs_r = ke_r.shared_secret(ke_i.public_value()).unwrap();
    let pfs_i = ke_i.shared_secret(ke_r.public_value()).unwrap();
    let (e, a) = (Encryption::AesCbc(128), Some(Integrity::HmacSha256_128));
    let pfs_child_r = keys_r.child_sa_keys(e, a, Some(&pfs_r), &ni, &nr).unwrap();
    let pfs_child_i = keys_i.child_sa_keys(e, a, Some(&pfs_i), &ni, &nr).unwrap();
    assert!(pfs_child_r.integ_r.ct_eq(pfs_child_i.integ_r.expose()));
    let no_pfs = keys_i.child_sa_keys(e, a, None, &ni, &nr).unwrap();
    assert!(!no_pfs.encr_i.ct_eq(pfs_child_i.encr_i.expose()));

    // IKE SA rekey (a new DH is mandatory), possibly to another suite.
    let new_suite = IkeSuite::new(
        Encryption::AesCbc(256),
        Some(Integrity::HmacSha512_256),
        Prf::HmacSha512,
    )
    .unwrap();
    let (new_i, new_r) = (Side::new(group), Side::new(group));
    let gir_i = new_i.kex.shared_secret(new_r.kex.public_value()).unwrap();
    let gir_r = new_r.kex.shared_secret(new_i.kex.public_value()).unwrap();
    let rekeyed_i = keys_i
        .rekey(
            new_suite,
            &gir_i,
            &new_i.nonce,
            &new_r.nonce,
            &new_i.spi,
            &new_r.spi,
        )
        .unwrap();
    let rekeyed_r = keys_r
        .rekey(
            new_suite,
            &gir_r,
            &new_i.nonce,
            &new_r.nonce,
            &new_i.spi,
            &new_r.spi,
        )
        .unwrap();
    assert!(rekeyed_i.sk_d.ct_eq(rekeyed_r.sk_d.expose()));
    assert_eq!(rekeyed_i.sk_d.len(), 64);
    let mut new_sk_i = SkCiphers::new(&rekeyed_i, true).unwrap();
    let mut new_sk_r = SkCiphers::new(&rekeyed_r, false).unwrap();
    let prefix = sk_prefix(&new_i.spi, &new_r.spi, new_sk_i.outbound.sealed_len(0));
    let body = new_sk_i.seal(&prefix, b"").unwrap();
    assert_eq!(new_sk_r.open(&prefix, &body).unwrap(), b"");
    // The old keys no longer open messages of the new SA.
    assert!(sk_r.open(&prefix, &body).is_err());
}

#[test]
fn full_exchange_every_group() {
    let gcm = IkeSuite::new(Encryption::AesGcm16(128), None, Prf::HmacSha256).unwrap();
    let cbc = IkeSuite::new(
        Encryption::AesCbc(256),
        Some(Integrity::HmacSha384_192),
        Prf::HmacSha384,
    )
    .unwrap();
    for group in [
        DhGroup::Modp2048,
        DhGroup::Ecp256,
        DhGroup::Ecp384,
        DhGroup::Curve25519,
    ] {
        handshake(gcm, group);
        handshake(cbc, group);
    }
    let legacy = IkeSuite::new(
        Encryption::AesCbc(128),
        Some(Integrity::HmacSha1_96),
        Prf::HmacSha1,
    )
    .unwrap();
    handshake(legacy, DhGroup::Modp1024);
}

/// The engine may move SA state between threads.
#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Secret>();
    check::<KeyExchange>();
    check::<PrfKey>();
    check::<IntegKey>();
    check::<IkeSaKeys>();
    check::<ChildSaKeys>();
    check::<SkCipher>();
    check::<SkCiphers>();
    check::<CryptoError>();
}
