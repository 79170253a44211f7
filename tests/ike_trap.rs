//! Negotiation on demand (`trap`) on a simulated clock: the kernel's acquire for a Child
//! SA's reqid starts the tunnel when start_action is trap, and after a dead peer or a
//! peer's delete when dpd_action or close_action is trap; otherwise it changes nothing.

mod common;

use std::time::Duration;

use common::peers::{connection, dpd, engine, without_rekey, Pair, A, TO_A, TO_B};
use routevpn::ike::codec::{ExchangeType, Message};
use routevpn::ike::engine::{Dpd, DpdAction, EngineConfig, Event, StartAction};

const SECS: fn(u64) -> Duration = Duration::from_secs;
/// The reqid the test connections give their Child SA.
const REQID: u32 = 1;

/// a with the given actions; b answers and never starts anything itself.
fn pair(start: StartAction, a_dpd: Dpd, close: StartAction) -> Pair {
    let b_side = connection(
        false,
        dpd(0, 150, DpdAction::Clear),
        StartAction::None,
        StartAction::None,
    );
    Pair::new(
        engine(
            EngineConfig::default(),
            without_rekey(connection(true, a_dpd, start, close)),
        ),
        engine(EngineConfig::default(), without_rekey(b_side)),
    )
}

fn no_dpd() -> Dpd {
    dpd(0, 150, DpdAction::Clear)
}

/// Requests of `exchange` a has sent so far.
fn requests(p: &Pair, exchange: ExchangeType) -> usize {
    (p.records[0].sent.iter())
        .filter(|(_, b)| {
            let m = Message::decode(b).unwrap();
            m.header.exchange == exchange && !m.header.flags.response
        })
        .count()
}

fn init_requests(p: &Pair) -> usize {
    requests(p, ExchangeType::IkeSaInit)
}

fn count(p: &Pair, f: impl Fn(&Event) -> bool) -> usize {
    p.records[0].events.iter().filter(|(_, e)| f(e)).count()
}

fn acquired(e: &Event) -> bool {
    matches!(e, Event::Acquired { .. })
}

fn trapped(e: &Event) -> bool {
    matches!(e, Event::Trapped { .. })
}

#[test]
fn start_action_trap_negotiates_on_the_first_packet_only() {
    let mut p = pair(StartAction::Trap, no_dpd(), StartAction::None);
    p.run_until(SECS(60));
    assert_eq!(init_requests(&p), 0, "nothing before traffic");
    // A reqid that is not ours changes nothing.
    p.engines[0].acquire(p.now, REQID + 7);
    p.settle();
    assert_eq!(init_requests(&p), 0);

    // The peer is slow: acquires repeated while the first attempt is under way are
    // absorbed by it.
    p.down[0] = true;
    for _ in 0..3 {
        p.engines[0].acquire(p.now, REQID);
        p.settle();
    }
    assert_eq!(init_requests(&p), 1);
    p.down[0] = false;
    p.run_until(p.elapsed() + SECS(10));
    assert_eq!(
        (p.children(0), p.children(1)),
        (1, 1),
        "up after the retransmission"
    );
    assert_eq!(count(&p, acquired), 1);
    // Up: further acquires (the kernel's larval SA expired) start nothing.
    p.engines[0].acquire(p.now, REQID);
    p.run_until(p.elapsed() + SECS(10));
    assert_eq!(
        init_requests(&p),
        2,
        "the first attempt and its one retransmission"
    );
}

#[test]
fn start_action_trap_stays_armed_after_a_failed_attempt_and_a_down() {
    let mut p = pair(StartAction::Trap, no_dpd(), StartAction::None);
    p.down[1] = true;
    p.engines[0].acquire(p.now, REQID);
    p.run_until(SECS(600));
    let attempts = init_requests(&p);
    assert!(attempts > 1, "retransmitted");
    // The attempt gave up; no restart by timer: only traffic starts it again.
    let gave_up = p
        .last_event(0, |e| matches!(e, Event::Failed { .. }))
        .expect("gave up");
    assert!(gave_up < SECS(300));
    p.run_until(SECS(900));
    assert_eq!(init_requests(&p), attempts, "no attempt without traffic");
    p.down[1] = false;
    p.engines[0].acquire(p.now, REQID);
    p.settle();
    assert_eq!((p.children(0), p.children(1)), (1, 1));
    // Taken down by the operator: start_action = trap keeps the policies armed, as
    // strongSwan's trap policies outlive a terminate.
    p.engines[0].terminate(p.now, TO_B).unwrap();
    p.settle();
    assert_eq!(p.children(0), 0);
    p.engines[0].acquire(p.now, REQID);
    p.settle();
    assert_eq!(p.children(0), 1);
}

#[test]
fn dpd_action_trap_waits_for_traffic_after_a_dead_peer() {
    let mut p = pair(
        StartAction::None,
        dpd(30, 60, DpdAction::Trap),
        StartAction::None,
    );
    p.engines[0].initiate(p.now, TO_B).unwrap();
    p.settle();
    p.down[1] = true;
    p.run_until(SECS(600));
    // Given up after 30 + 60 s, Child SA removed, and nothing re-initiated by itself.
    assert_eq!(p.children(0), 0);
    assert_eq!(p.last_event(0, trapped), Some(SECS(90)));
    assert_eq!(count(&p, |e| matches!(e, Event::Restarting { .. })), 0);
    assert_eq!(init_requests(&p), 1);
    // The peer restarts (empty); the next packet brings the tunnel back.
    p.engines[1] = engine(
        EngineConfig::default(),
        without_rekey(connection(
            false,
            no_dpd(),
            StartAction::None,
            StartAction::None,
        )),
    );
    p.down[1] = false;
    p.engines[0].acquire(p.now, REQID);
    p.settle();
    assert_eq!((p.children(0), p.children(1)), (1, 1));
    // Up again, the trap is spent: the peer closing the tunnel (close_action = none)
    // leaves it closed, traffic or not.
    p.engines[1].terminate(p.now, TO_A).unwrap();
    p.settle();
    assert_eq!(p.children(0), 0);
    p.engines[0].acquire(p.now, REQID);
    p.run_until(p.elapsed() + SECS(60));
    assert_eq!(p.children(0), 0);
    assert_eq!(init_requests(&p), 2);
}

#[test]
fn close_action_trap_negotiates_again_when_traffic_follows_a_peer_delete() {
    let mut p = pair(StartAction::None, no_dpd(), StartAction::Trap);
    p.engines[0].initiate(p.now, TO_B).unwrap();
    p.settle();
    p.engines[1].terminate(p.now, TO_A).unwrap();
    p.run_until(SECS(120));
    assert_eq!(p.children(0), 0);
    assert_eq!(count(&p, trapped), 1);
    assert_eq!(init_requests(&p), 1, "no restart by itself");
    p.engines[0].acquire(p.now, REQID);
    p.settle();
    assert_eq!((p.children(0), p.children(1)), (1, 1));
    // The operator's down disarms it.
    p.engines[0].terminate(p.now, TO_B).unwrap();
    p.settle();
    p.engines[0].acquire(p.now, REQID);
    p.run_until(p.elapsed() + SECS(60));
    assert_eq!(p.children(0), 0);
    assert_eq!(init_requests(&p), 2);
}

#[test]
fn a_child_sa_the_peer_deleted_comes_back_over_the_ike_sa_on_traffic() {
    let mut p = pair(StartAction::None, no_dpd(), StartAction::Trap);
    p.engines[0].initiate(p.now, TO_B).unwrap();
    p.settle();
    // b's kernel drops the Child SA (hard expiry of b's outbound SA, towards a): b tells a.
    let spi_out = p.engines[1].status()[0].children[0].spi_out;
    p.engines[1].child_sa_expired(p.now, A.parse().unwrap(), spi_out, true);
    p.settle();
    assert_eq!((p.children(0), p.children(1)), (0, 0));
    assert_eq!(p.engines[0].status().len(), 1, "the IKE SA stays");
    p.engines[0].acquire(p.now, REQID);
    p.run_until(p.elapsed() + SECS(5));
    assert_eq!((p.children(0), p.children(1)), (1, 1));
    assert_eq!(init_requests(&p), 1, "over the same IKE SA");
    // Once it is back, another acquire asks for nothing.
    let before = requests(&p, ExchangeType::CreateChildSa);
    p.engines[0].acquire(p.now, REQID);
    p.run_until(p.elapsed() + SECS(5));
    assert_eq!(
        requests(&p, ExchangeType::CreateChildSa),
        before,
        "the Child SA is there: nothing to ask for"
    );
}

#[test]
fn without_trap_an_acquire_changes_nothing() {
    for (start, dpd_action, close) in [
        (StartAction::None, DpdAction::Clear, StartAction::None),
        (StartAction::Start, DpdAction::Restart, StartAction::Start),
    ] {
        let mut p = pair(start, dpd(30, 60, dpd_action), close);
        p.down[1] = true;
        p.engines[0].acquire(p.now, REQID);
        p.settle();
        assert_eq!(init_requests(&p), 0, "{start:?}");
        assert_eq!(count(&p, acquired), 0);
    }
}
