//! COOKIE under load (RFC 7296 section 2.6): a flood of IKE_SA_INIT requests, from spoofed
//! copies of the peer's address or from many unknown addresses, engages cookies; the
//! flood then leaves no state, and the real peer still gets its tunnel.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use common::peers::{addr, connection, dpd, engine, A, B, TO_B};
use routevpn::ike::codec::{ExchangeType, Message, NotifyType, Payload};
use routevpn::ike::engine::{
    CookieConfig, DpdAction, Engine, EngineConfig, Event, IkeSaState, KernelAction, StartAction,
};

fn initiator() -> Engine {
    let dpd = dpd(0, 150, DpdAction::Restart); // no liveness checks in these tests
    engine(
        EngineConfig::default(),
        connection(true, dpd, StartAction::Start, StartAction::None),
    )
}

fn responder(cookies: CookieConfig) -> Engine {
    let config = EngineConfig {
        cookies,
        ..EngineConfig::default()
    };
    let dpd = dpd(0, 150, DpdAction::Restart); // no liveness checks in these tests
    engine(
        config,
        connection(false, dpd, StartAction::None, StartAction::None),
    )
}

/// A fresh IKE_SA_INIT request as a real initiator would send it (own SPI, nonce, KE).
fn init_request(now: Instant) -> Vec<u8> {
    let mut flooder = initiator();
    flooder.initiate(now, TO_B).unwrap();
    flooder.poll_transmit().unwrap().payload
}

/// The responder's answers to one request, as (is a cookie challenge, datagram).
fn answers(responder: &mut Engine) -> Vec<Message> {
    std::iter::from_fn(|| responder.poll_transmit())
        .map(|t| Message::decode(&t.payload).unwrap())
        .collect()
}

fn is_cookie_challenge(m: &Message) -> bool {
    m.header.exchange == ExchangeType::IkeSaInit
        && m.header.responder_spi == 0
        && matches!(m.payloads.as_slice(), [Payload::Notify(n)] if n.notify_type == NotifyType::Cookie)
}

/// Runs the real initiator against the responder until both are quiet; returns how many
/// IKE_SA_INIT requests the initiator sent.
fn establish(a: &mut Engine, b: &mut Engine, now: Instant) -> usize {
    a.initiate(now, TO_B).unwrap();
    let mut init_requests = 0;
    for _ in 0..10 {
        let mut quiet = true;
        while let Some(t) = a.poll_transmit() {
            quiet = false;
            let m = Message::decode(&t.payload).unwrap();
            if m.header.exchange == ExchangeType::IkeSaInit {
                init_requests += 1;
                if init_requests > 1 {
                    assert!(
                        matches!(m.payloads.first(), Some(Payload::Notify(n)) if n.notify_type == NotifyType::Cookie),
                        "the retry must echo the cookie as its first payload"
                    );
                }
            }
            b.handle_datagram(now, t.remote, t.local, &t.payload);
        }
        while let Some(t) = b.poll_transmit() {
            quiet = false;
            a.handle_datagram(now, t.remote, t.local, &t.payload);
        }
        if quiet {
            break;
        }
    }
    init_requests
}

fn established_children(e: &Engine) -> usize {
    e.status()
        .iter()
        .filter(|s| s.state == IkeSaState::Established)
        .map(|s| s.children.len())
        .sum()
}

fn cookie_events(e: &mut Engine) -> Vec<bool> {
    std::iter::from_fn(|| e.poll_event())
        .filter_map(|ev| match ev {
            Event::CookiesRequired { engaged, .. } => Some(engaged),
            _ => None,
        })
        .collect()
}

#[test]
fn spoofed_flood_from_the_peers_address_engages_cookies_and_the_peer_still_connects() {
    let now = Instant::now();
    let mut b = responder(CookieConfig {
        half_open_threshold: 5,
        rate_threshold: 10_000,
    });
    // 40 requests claiming to come from the peer (other ports), never followed up.
    let mut challenges = 0;
    for port in 0..40u16 {
        b.handle_datagram(
            now,
            addr(B, 500),
            addr(A, 10_000 + port),
            &init_request(now),
        );
        for m in answers(&mut b) {
            challenges += usize::from(is_cookie_challenge(&m));
        }
    }
    // Five half-open SAs were allowed; every later request only got a challenge.
    assert_eq!(b.status().len(), 5);
    assert_eq!(challenges, 35);
    assert_eq!(cookie_events(&mut b), vec![true]);

    let mut a = initiator();
    let sent = establish(&mut a, &mut b, now);
    assert_eq!(sent, 2, "one challenge, one retry with the cookie");
    assert_eq!(established_children(&a), 1);
    assert_eq!(established_children(&b), 1);
    let installs = std::iter::from_fn(|| b.poll_action())
        .filter(|k| matches!(k, KernelAction::InstallChildSa(_)))
        .count();
    assert_eq!(installs, 1);

    // Once the half-open SAs expire, new requests are served at once again.
    let later = now + Duration::from_secs(31);
    b.handle_timeout(later);
    assert_eq!(b.status().len(), 1, "only the real peer's SA is left");
    b.handle_datagram(later, addr(B, 500), addr(A, 500), &init_request(later));
    let replies = answers(&mut b);
    assert!(replies.len() == 1 && !is_cookie_challenge(&replies[0]));
    assert_eq!(cookie_events(&mut b), vec![false]);
}

#[test]
fn a_request_rate_from_unknown_addresses_engages_cookies_without_creating_state() {
    let now = Instant::now();
    let mut b = responder(CookieConfig {
        half_open_threshold: 1000,
        rate_threshold: 50,
    });
    let request = init_request(now);
    for i in 0..200u32 {
        let spoofed = SocketAddr::new(IpAddr::from([10, 99, (i >> 8) as u8, i as u8]), 500);
        b.handle_datagram(now, addr(B, 500), spoofed, &request);
    }
    // Unknown peers get no answer at all (no reflection), and nothing is kept; the load
    // is reported while the flood runs, not only when a known peer shows up.
    assert!(b.poll_transmit().is_none());
    assert!(b.status().is_empty());
    assert_eq!(cookie_events(&mut b), vec![true]);

    let mut a = initiator();
    assert_eq!(establish(&mut a, &mut b, now), 2);
    assert_eq!(established_children(&a), 1);
    assert_eq!(established_children(&b), 1);

    // Once the flood is over, cookies stop by the clock alone, with no further request:
    // the busier of the current and the last one-second window falls below the threshold.
    let mut at = now;
    while let Some(next) = b
        .next_timeout()
        .filter(|t| *t <= now + Duration::from_secs(5))
    {
        at = next;
        b.handle_timeout(at);
    }
    assert_eq!(cookie_events(&mut b), vec![false]);
    assert!(
        at - now <= Duration::from_secs(3),
        "stopped after {:?}",
        at - now
    );
    let mut late = initiator();
    late.initiate(at, TO_B).unwrap();
    let request = late.poll_transmit().unwrap();
    b.handle_datagram(at, request.remote, request.local, &request.payload);
    let answer = answers(&mut b);
    assert!(
        !answer.iter().any(is_cookie_challenge),
        "no cookie asked any more"
    );
}

#[test]
fn a_cookie_is_bound_to_the_initiator_that_received_it() {
    let now = Instant::now();
    let mut b = responder(CookieConfig {
        half_open_threshold: 0,
        rate_threshold: 10_000,
    });
    let mut a = initiator();
    a.initiate(now, TO_B).unwrap();
    let first = a.poll_transmit().unwrap();
    b.handle_datagram(now, first.remote, first.local, &first.payload);
    let challenge = b.poll_transmit().unwrap();
    a.handle_datagram(now, challenge.remote, challenge.local, &challenge.payload);
    let retry = a.poll_transmit().unwrap();

    // The same request with its cookie, replayed with another initiator SPI: refused.
    let mut replay = Message::decode(&retry.payload).unwrap();
    replay.header.initiator_spi ^= 1;
    b.handle_datagram(now, retry.remote, retry.local, &replay.encode().unwrap());
    let answer = Message::decode(&b.poll_transmit().unwrap().payload).unwrap();
    assert!(is_cookie_challenge(&answer));
    assert!(b.status().is_empty());

    // The genuine retry is admitted.
    b.handle_datagram(now, retry.remote, retry.local, &retry.payload);
    let answer = Message::decode(&b.poll_transmit().unwrap().payload).unwrap();
    assert!(!is_cookie_challenge(&answer) && answer.header.responder_spi != 0);
    assert_eq!(b.status().len(), 1);
}
