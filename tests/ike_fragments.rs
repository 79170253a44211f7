//! IKE fragmentation (RFC 7383) engine to engine: an IKE_AUTH with certificate chains that
//! does not fit a small `fragment_size` goes out in SKF fragments both ways, survives
//! reordering, loss and forged fragments, and is retransmitted whole.

mod common;

use std::time::Duration;

use common::peers::{connection, dpd, engine, with_proposals, without_rekey, Pair, TO_B};
use common::pki::{private_key, Alg, Pki, Spec};
use routevpn::ike::codec::{ExchangeType, Message, Payload};
use routevpn::ike::engine::{
    DpdAction, Engine, EngineConfig, Identity, IkeSaState, LocalAuth, RemoteAuth, SendCert,
    StartAction, Transmit,
};

/// IP packets of at most this size: 548 octets of IKE message over IPv4 and UDP.
const FRAGMENT_SIZE: usize = 576;
const MAX_MESSAGE: usize = FRAGMENT_SIZE - 20 - 8;

/// Side a or b with an RSA certificate (and the intermediate) from `pki`, always sent.
fn side(pki: &Pki, a: bool) -> Engine {
    let mut conn = connection(
        a,
        dpd(0, 150, DpdAction::Clear),
        StartAction::None,
        StartAction::None,
    );
    let (ours, theirs) = if a {
        ("a.example", "b.example")
    } else {
        ("b.example", "a.example")
    };
    let cert = pki.issue(Spec::end_entity(
        ours,
        Alg::Rsa2048,
        if a { 10 } else { 20 },
    ));
    conn.config.local_id = Some(Identity::Fqdn(ours.into()));
    conn.config.remote_id = Identity::Fqdn(theirs.into());
    conn.local_auth = LocalAuth::Signature {
        key: private_key(&cert.key),
        chain: Some(pki.chain(&cert)),
        send_cert: SendCert::Always,
    };
    conn.remote_auth = RemoteAuth::Certificate {
        trust: pki.trust(&[]),
    };
    let config = EngineConfig {
        fragment_size: FRAGMENT_SIZE,
        ..EngineConfig::default()
    };
    engine(config, conn)
}

/// Runs a to b for `time`, with timers (so retransmissions happen), through `network`.
fn run(
    pki: &Pki,
    network: impl FnMut(usize, Vec<Transmit>) -> Vec<Transmit> + 'static,
    time: Duration,
) -> Pair {
    let mut pair = Pair::new(side(pki, true), side(pki, false));
    pair.network = Some(Box::new(network));
    pair.engines[0].initiate(pair.now, TO_B).unwrap();
    pair.run_until(time);
    pair
}

fn established(pair: &Pair) {
    for side in 0..2 {
        let status = pair.engines[side].status();
        assert_eq!(status.len(), 1, "side {side}");
        assert_eq!(status[0].state, IkeSaState::Established, "side {side}");
        assert_eq!(pair.children(side), 1, "side {side}");
    }
}

/// The IKE_AUTH datagrams `side` sent: (fragment number, total) of each, (1, 1) for an
/// unfragmented one.
fn ike_auth_sent(pair: &Pair, side: usize) -> Vec<(u16, u16)> {
    (pair.records[side].sent.iter())
        .filter_map(|(_, bytes)| {
            let message = Message::decode(bytes).unwrap();
            (message.header.exchange == ExchangeType::IkeAuth).then(|| {
                match message.payloads.last() {
                    Some(Payload::EncryptedFragment(f)) => (f.fragment_number, f.total_fragments),
                    _ => (1, 1),
                }
            })
        })
        .collect()
}

#[test]
fn a_certificate_ike_auth_goes_out_in_fragments_that_fit_both_ways() {
    let pki = Pki::new("Fragments");
    let pair = run(&pki, |_, sent| sent, Duration::from_secs(1));
    established(&pair);
    for side in 0..2 {
        let sent = ike_auth_sent(&pair, side);
        let total = sent[0].1;
        assert!(total >= 3, "side {side}: {sent:?}");
        let expected: Vec<(u16, u16)> = (1..=total).map(|n| (n, total)).collect();
        assert_eq!(sent, expected, "side {side}: once each, in order");
        for (_, bytes) in &pair.records[side].sent {
            assert!(
                bytes.len() <= MAX_MESSAGE,
                "side {side}: {} octets",
                bytes.len()
            );
        }
    }
}

#[test]
fn reordered_fragments_are_reassembled() {
    let pki = Pki::new("Reordered");
    let pair = run(
        &pki,
        |_, mut sent| {
            sent.reverse();
            sent
        },
        Duration::from_secs(1),
    );
    established(&pair);
    // Nothing was lost, so nothing was sent twice.
    for side in 0..2 {
        let sent = ike_auth_sent(&pair, side);
        assert_eq!(sent.len(), usize::from(sent[0].1), "side {side}");
    }
}

/// Fragment 2 of the first IKE_AUTH message of each side is dropped (or, with `forge`,
/// delivered with a flipped octet, which must be refused the same way).
fn second_fragment_lost_once(forge: bool) {
    let pki = Pki::new("Lossy");
    let mut hit = [false, false];
    let pair = run(
        &pki,
        move |side, sent| {
            let mut out = Vec::new();
            for mut t in sent {
                let message = Message::decode(&t.payload).unwrap();
                let second = matches!(message.payloads.last(),
                    Some(Payload::EncryptedFragment(f)) if f.fragment_number == 2);
                if second && !hit[side] {
                    hit[side] = true;
                    if !forge {
                        continue;
                    }
                    let last = t.payload.len() - 1;
                    t.payload[last] ^= 0x80;
                }
                out.push(t);
            }
            out
        },
        Duration::from_secs(30),
    );
    established(&pair);
    // Request (fragment 2 lost), retransmitted whole: its fragment 2 completes it and the
    // responder answers (fragment 2 lost); the rest are duplicates of an answered request
    // and answer nothing. The second retransmission's fragment 1 gets the answer again,
    // once (RFC 7383 section 2.6.1), not once per fragment.
    let (request, response) = (ike_auth_sent(&pair, 0), ike_auth_sent(&pair, 1));
    let (n_req, n_resp) = (usize::from(request[0].1), usize::from(response[0].1));
    assert_eq!(request.len(), 3 * n_req, "{request:?}");
    assert_eq!(response.len(), 2 * n_resp, "{response:?}");
}

#[test]
fn lost_fragments_are_retransmitted_with_the_whole_message() {
    second_fragment_lost_once(false);
}

#[test]
fn forged_fragments_are_dropped_before_reassembly() {
    second_fragment_lost_once(true);
}

/// Fragmentation (RFC 7383) is announced only in IKE_SA_INIT, so it holds for the IKE SAs
/// rekeyed from it (strongSwan's rekeyed SAs inherit it too). After an IKE rekey, a CREATE_CHILD_SA carrying a MODP-4096 key (over
/// 512 octets) must still go out in fragments on a path that drops anything larger.
#[test]
fn a_rekeyed_ike_sa_still_fragments() {
    let side = |a| {
        let conn = without_rekey(with_proposals(
            a,
            "aes128gcm16-prfsha256-x25519",
            "aes128gcm16-modp4096",
        ));
        let config = EngineConfig {
            fragment_size: FRAGMENT_SIZE,
            ..EngineConfig::default()
        };
        engine(config, conn)
    };
    let mut pair = Pair::new(side(true), side(false));
    pair.network = Some(Box::new(|_, sent: Vec<Transmit>| {
        (sent.into_iter())
            .filter(|t| t.payload.len() <= MAX_MESSAGE)
            .collect()
    }));
    pair.engines[0].initiate(pair.now, TO_B).unwrap();
    pair.run_until(Duration::from_secs(5));
    established(&pair);
    pair.engines[0].rekey_ike(pair.now, TO_B).unwrap();
    pair.run_until(Duration::from_secs(10));
    let spis = |pair: &Pair| pair.engines[0].status()[0].children[0].spi_in;
    let before = spis(&pair);
    pair.engines[0].rekey_children(pair.now, TO_B).unwrap();
    pair.run_until(Duration::from_secs(15));
    established(&pair);
    assert_ne!(
        spis(&pair),
        before,
        "the Child SA was rekeyed over the new IKE SA"
    );
}
