//! Dead peer detection, close actions and retries, on a simulated clock: a peer that
//! disappears is detected after dpd.delay + dpd.timeout, a restarted peer gets its tunnel
//! back without manual action, and liveness checks never fire while the peer talks.

mod common;

use std::time::Duration;

use common::peers::{connection, dpd, engine, without_rekey, Pair, TO_A, TO_B};
use routevpn::ike::codec::{ExchangeType, Message};
use routevpn::ike::engine::{
    Dpd, DpdAction, EngineConfig, Event, FailureReason, KernelAction, StartAction,
};

const SECS: fn(u64) -> Duration = Duration::from_secs;

fn pair(a_dpd: Dpd, a_close: StartAction, b_dpd: Dpd) -> Pair {
    let a = engine(
        EngineConfig::default(),
        without_rekey(connection(true, a_dpd, StartAction::Start, a_close)),
    );
    let b = engine(
        EngineConfig::default(),
        without_rekey(connection(
            false,
            b_dpd,
            StartAction::None,
            StartAction::None,
        )),
    );
    Pair::new(a, b)
}

fn no_dpd() -> Dpd {
    dpd(0, 150, DpdAction::Clear)
}

fn up(p: &mut Pair) {
    p.engines[0].initiate(p.now, TO_B).unwrap();
    p.settle();
    assert_eq!((p.children(0), p.children(1)), (1, 1), "tunnel up");
}

/// Empty INFORMATIONAL requests side `side` sent, by time.
fn probes(p: &Pair, side: usize) -> Vec<Duration> {
    (p.records[side].sent.iter())
        .filter(|(_, bytes)| {
            let m = Message::decode(bytes).unwrap();
            m.header.exchange == ExchangeType::Informational && !m.header.flags.response
        })
        .map(|(at, _)| *at)
        .collect()
}

fn installs(p: &Pair, side: usize) -> Vec<Duration> {
    (p.records[side].actions.iter())
        .filter(|(_, k)| matches!(k, KernelAction::InstallChildSa(_)))
        .map(|(at, _)| *at)
        .collect()
}

#[test]
fn a_peer_that_restarts_gets_its_tunnel_back_within_delay_plus_timeout() {
    let mut p = pair(
        dpd(30, 150, DpdAction::Restart),
        StartAction::None,
        no_dpd(),
    );
    up(&mut p);
    // The peer dies at t=10 s and comes back (empty, a new engine) at t=100 s.
    p.run_until(SECS(10));
    p.down[1] = true;
    p.run_until(SECS(100));
    p.engines[1] = engine(
        EngineConfig::default(),
        connection(false, no_dpd(), StartAction::None, StartAction::None),
    );
    p.down[1] = false;
    p.run_until(SECS(400));

    // The first check went out 30 s after the last message (t=0), the SA was given up
    // dpd.timeout later, its Child SA removed, and the connection initiated again at once.
    assert_eq!(probes(&p, 0).first(), Some(&SECS(30)));
    let gave_up = p
        .last_event(0, |e| {
            matches!(
                e,
                Event::Failed {
                    reason: FailureReason::PeerNotResponding { .. },
                    ..
                }
            )
        })
        .expect("the dead peer is detected");
    assert_eq!(gave_up, SECS(180));
    let deleted = (p.records[0].actions.iter())
        .find(|(_, k)| matches!(k, KernelAction::DeleteChildSa(_)))
        .map(|(at, _)| *at);
    assert_eq!(deleted, Some(SECS(180)));
    assert_eq!(
        p.last_event(0, |e| matches!(e, Event::Restarting { .. })),
        Some(SECS(180))
    );
    // Back within delay + timeout (the peer was up again before the restart).
    assert_eq!(installs(&p, 0), vec![SECS(0), SECS(180)]);
    assert_eq!((p.children(0), p.children(1)), (1, 1));
    // Counted once per check, not per retransmission; one peer given up.
    let counted = p.engines[0].dpd_counters()[TO_B];
    assert_eq!(counted.probes, checks(&p, 0) as u64);
    assert_eq!(counted.timeouts, 1);
    assert!(p.engines[1].dpd_counters().is_empty());
}

/// Liveness checks side `side` started: its probes without their retransmissions.
fn checks(p: &Pair, side: usize) -> usize {
    let ids: std::collections::BTreeSet<(u64, u32)> = (p.records[side].sent.iter())
        .map(|(_, bytes)| Message::decode(bytes).unwrap().header)
        .filter(|h| h.exchange == ExchangeType::Informational && !h.flags.response)
        .map(|h| (h.initiator_spi, h.message_id))
        .collect();
    ids.len()
}

#[test]
fn a_restart_keeps_trying_while_the_peer_stays_away() {
    let mut p = pair(dpd(30, 60, DpdAction::Restart), StartAction::None, no_dpd());
    up(&mut p);
    p.down[1] = true;
    p.run_until(SECS(1000));
    // Given up at 30 + 60; the new attempt gives up after its retransmissions (165.06 s),
    // and the next starts RETRY_INTERVAL (30 s) later, and so on.
    let restarts: Vec<Duration> = (p.records[0].events.iter())
        .filter(|(_, e)| matches!(e, Event::Restarting { .. }))
        .map(|(at, _)| *at)
        .collect();
    assert!(restarts.len() >= 4, "{restarts:?}");
    assert_eq!(restarts[0], SECS(90));
    let init_requests = (p.records[0].sent.iter())
        .filter(|(_, b)| Message::decode(b).unwrap().header.exchange == ExchangeType::IkeSaInit)
        .count();
    assert!(init_requests >= 12, "{init_requests} IKE_SA_INIT sent");
    // The peer comes back: the next attempt succeeds.
    p.engines[1] = engine(
        EngineConfig::default(),
        connection(false, no_dpd(), StartAction::None, StartAction::None),
    );
    p.down[1] = false;
    p.run_until(SECS(1300));
    assert_eq!((p.children(0), p.children(1)), (1, 1));
}

#[test]
fn liveness_checks_only_when_the_peer_is_silent_and_never_when_disabled() {
    // b checks a every 20 s; a's own checks (delay 30 s) never become due.
    let mut p = pair(
        dpd(30, 150, DpdAction::Restart),
        StartAction::None,
        dpd(20, 150, DpdAction::Clear),
    );
    up(&mut p);
    p.run_until(SECS(3600));
    assert!(probes(&p, 0).is_empty(), "a hears b every 20 s");
    assert_eq!(probes(&p, 1).len(), 180);
    assert_eq!((p.children(0), p.children(1)), (1, 1));

    let mut quiet = pair(no_dpd(), StartAction::None, no_dpd());
    up(&mut quiet);
    quiet.run_until(SECS(3600));
    assert!(probes(&quiet, 0).is_empty() && probes(&quiet, 1).is_empty());
    assert_eq!(quiet.engines[0].next_timeout(), None);
}

#[test]
fn a_replayed_datagram_does_not_postpone_the_check() {
    let mut p = pair(dpd(30, 150, DpdAction::Clear), StartAction::None, no_dpd());
    up(&mut p);
    let old_response = p.records[1].sent.last().unwrap().1.clone();
    p.run_until(SECS(25));
    let now = p.now;
    p.engines[0].handle_datagram(
        now,
        common::peers::addr(common::peers::A, 500),
        common::peers::addr(common::peers::B, 500),
        &old_response,
    );
    p.run_until(SECS(31));
    assert_eq!(probes(&p, 0), vec![SECS(30)]);
}

#[test]
fn dpd_clear_does_not_restart_and_close_action_start_does() {
    let mut p = pair(dpd(30, 60, DpdAction::Clear), StartAction::None, no_dpd());
    up(&mut p);
    p.down[1] = true;
    p.run_until(SECS(600));
    assert!(p
        .last_event(0, |e| matches!(e, Event::Restarting { .. }))
        .is_none());
    assert_eq!(p.children(0), 0);
    assert!(p.engines[0].status().is_empty());

    // The peer deletes the IKE SA: with close_action = start we initiate again at once.
    let mut p = pair(no_dpd(), StartAction::Start, no_dpd());
    up(&mut p);
    p.run_until(SECS(5));
    let now = p.now;
    p.engines[1].terminate(now, TO_A).unwrap();
    p.settle();
    assert_eq!(
        p.last_event(0, |e| matches!(e, Event::Restarting { .. })),
        Some(SECS(5))
    );
    assert_eq!(installs(&p, 0), vec![SECS(0), SECS(5)]);
    assert_eq!((p.children(0), p.children(1)), (1, 1));

    // With close_action = none it stays down; so does a connection the operator terminated.
    let mut p = pair(no_dpd(), StartAction::None, no_dpd());
    up(&mut p);
    let now = p.now;
    p.engines[1].terminate(now, TO_A).unwrap();
    p.run_until(SECS(600));
    assert_eq!(p.children(0), 0);
    let mut p = pair(
        dpd(30, 60, DpdAction::Restart),
        StartAction::Start,
        no_dpd(),
    );
    up(&mut p);
    let now = p.now;
    p.engines[0].terminate(now, TO_B).unwrap();
    p.run_until(SECS(600));
    assert!(p
        .last_event(0, |e| matches!(e, Event::Restarting { .. }))
        .is_none());
    assert_eq!((p.children(0), p.children(1)), (0, 0));
}

/// The path dies in one direction only: the peer (b) no longer hears us (a), we still
/// hear it. Its liveness checks reach us and its restarts too; we must still give it up
/// within the DPD settings, not only after our requests' retransmissions run out.
#[test]
fn a_one_way_path_is_detected_within_dpd_on_both_sides() {
    let both = || dpd(2, 8, DpdAction::Restart);
    let mut p = pair(both(), StartAction::Start, both());
    up(&mut p);
    let cut = p.elapsed();
    // What a sends is lost from now on.
    p.network = Some(Box::new(
        |side, sent| if side == 0 { Vec::new() } else { sent },
    ));
    p.run_until(cut + SECS(60));
    let gave_up = |side: usize| {
        p.last_event(side, |e| {
            matches!(
                e,
                Event::Failed {
                    reason: FailureReason::PeerNotResponding { .. },
                    ..
                }
            )
        })
    };
    let (a, b) = (gave_up(0), gave_up(1));
    assert!(b.is_some_and(|t| t - cut <= SECS(12)), "b gave up at {b:?}");
    assert!(a.is_some_and(|t| t - cut <= SECS(12)), "a gave up at {a:?}");
}
