//! Failures that must read as what they are, even when datagrams are lost.

mod common;

use std::time::Duration;

use common::peers::{connection, dpd, engine, Pair, TO_B};
use routevpn::ike::crypto::Secret;
use routevpn::ike::engine::{
    DpdAction, Engine, EngineConfig, Event, FailureReason, IkeSaState, LocalAuth, RemoteAuth,
    StartAction, Transmit,
};

fn side(a: bool, psk: &[u8]) -> Engine {
    asymmetric_side(a, psk, psk)
}

/// A side that authenticates with `ours` and expects the peer to use `theirs`.
fn asymmetric_side(a: bool, ours: &[u8], theirs: &[u8]) -> Engine {
    let mut conn = connection(
        a,
        dpd(0, 150, DpdAction::Clear),
        StartAction::None,
        StartAction::None,
    );
    conn.local_auth = LocalAuth::Psk(Secret::from_slice(ours));
    conn.remote_auth = RemoteAuth::Psk(Secret::from_slice(theirs));
    engine(EngineConfig::default(), conn)
}

const KEY_OF_A: &[u8] = b"a proves itself with this, 0123";
const KEY_OF_B: &[u8] = b"b proves itself with that, 4567";

#[test]
fn each_side_authenticates_with_its_own_method_and_checks_the_peers_apart() {
    let mut pair = Pair::new(
        asymmetric_side(true, KEY_OF_A, KEY_OF_B),
        asymmetric_side(false, KEY_OF_B, KEY_OF_A),
    );
    pair.engines[0].initiate(pair.now, TO_B).unwrap();
    pair.settle();
    for side in 0..2 {
        let status = pair.engines[side].status();
        assert_eq!(status.len(), 1, "side {side}");
        assert_eq!(status[0].state, IkeSaState::Established, "side {side}");
        assert_eq!(pair.children(side), 1, "side {side}");
    }
}

#[test]
fn a_peer_proving_itself_with_another_key_than_its_own_is_refused() {
    let refused = |e: &Event| {
        matches!(
            e,
            Event::Failed {
                reason: FailureReason::AuthenticationFailed { .. },
                ..
            }
        )
    };
    // a signs with b's key: b refuses a's AUTH (and tells a).
    let mut pair = Pair::new(
        asymmetric_side(true, KEY_OF_B, KEY_OF_B),
        asymmetric_side(false, KEY_OF_B, KEY_OF_A),
    );
    pair.engines[0].initiate(pair.now, TO_B).unwrap();
    pair.settle();
    assert!(pair.last_event(1, refused).is_some(), "b refuses a");
    assert!(pair.last_event(0, refused).is_some(), "a learns why");
    assert!(pair.engines[0].status().is_empty() && pair.engines[1].status().is_empty());
    // b signs with a's key: a refuses b's AUTH.
    let mut pair = Pair::new(
        asymmetric_side(true, KEY_OF_A, KEY_OF_B),
        asymmetric_side(false, KEY_OF_A, KEY_OF_A),
    );
    pair.engines[0].initiate(pair.now, TO_B).unwrap();
    pair.settle();
    assert!(pair.last_event(0, refused).is_some(), "a refuses b");
    assert!(pair.engines[0].status().is_empty());
    assert_eq!(pair.children(0), 0);
}

fn deliver(to: &mut Engine, t: &Transmit, now: std::time::Instant) {
    to.handle_datagram(now, t.remote, t.local, &t.payload);
}

fn failures(e: &mut Engine) -> Vec<FailureReason> {
    std::iter::from_fn(|| e.poll_event())
        .filter_map(|ev| match ev {
            Event::Failed { reason, .. } => Some(reason),
            _ => None,
        })
        .collect()
}

#[test]
fn a_lost_authentication_failed_answer_is_repeated_to_the_retransmitted_request() {
    let t0 = std::time::Instant::now();
    let mut a = side(true, b"the wrong key, 0123456789");
    let mut b = side(false, b"peers-test-psk-0123456789");
    a.initiate(t0, TO_B).unwrap();
    let init = a.poll_transmit().unwrap();
    deliver(&mut b, &init, t0);
    let init_reply = b.poll_transmit().unwrap();
    deliver(&mut a, &init_reply, t0);
    let auth = a.poll_transmit().unwrap();
    deliver(&mut b, &auth, t0);
    // b refuses; its answer is lost.
    let _lost = b.poll_transmit().unwrap();
    assert!(matches!(
        failures(&mut b).as_slice(),
        [FailureReason::AuthenticationFailed { .. }]
    ));
    assert!(b.status().is_empty(), "a refused SA is not shown");

    let t1 = t0 + Duration::from_secs(4);
    a.handle_timeout(t1);
    let again = a.poll_transmit().unwrap();
    assert_eq!(again.payload, auth.payload, "a retransmits IKE_AUTH");
    deliver(&mut b, &again, t1);
    let answer = b.poll_transmit().expect("answered from the cache");
    assert!(failures(&mut b).is_empty(), "no second processing");
    deliver(&mut a, &answer, t1);
    assert!(matches!(
        failures(&mut a).as_slice(),
        [FailureReason::AuthenticationFailed { .. }]
    ));
    assert!(a.status().is_empty());
    // The refused SA goes at its half-open expiry.
    b.handle_timeout(t0 + Duration::from_secs(31));
    assert_eq!(b.next_timeout(), None);
}

#[test]
fn an_unknown_critical_payload_is_refused_with_its_type_and_an_unknown_optional_one_ignored() {
    use routevpn::ike::codec::{Message, NotifyType, Payload, UnknownPayload};
    let now = std::time::Instant::now();
    let mut a = side(true, b"peers-test-psk-0123456789");
    a.initiate(now, TO_B).unwrap();
    let init = a.poll_transmit().unwrap();
    let with_unknown = |critical: bool| {
        let mut m = Message::decode(&init.payload).unwrap();
        m.payloads.push(Payload::Unknown(UnknownPayload {
            payload_type: 200,
            critical,
            body: vec![1, 2, 3],
        }));
        Message::new(m.header, m.payloads)
            .unwrap()
            .encode()
            .unwrap()
    };
    let mut b = side(false, b"peers-test-psk-0123456789");
    b.handle_datagram(now, init.remote, init.local, &with_unknown(true));
    let answer = Message::decode(&b.poll_transmit().unwrap().payload).unwrap();
    assert!(matches!(
        answer.payloads.as_slice(),
        [Payload::Notify(n)] if n.notify_type == NotifyType::UnsupportedCriticalPayload && n.data == [200]
    ));
    assert!(b.status().is_empty());

    let mut b = side(false, b"peers-test-psk-0123456789");
    b.handle_datagram(now, init.remote, init.local, &with_unknown(false));
    let answer = Message::decode(&b.poll_transmit().unwrap().payload).unwrap();
    assert!(answer.header.responder_spi != 0, "answered normally");
}
