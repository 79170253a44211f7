//! IKE SA rekeying started by routevpn (RFC 7296 section 2.18) on a simulated clock: from
//! either side, on command and when rekey_time runs out, through lost and duplicated
//! messages and simultaneous attempts. The Child SAs move to the new IKE SA without a
//! single kernel change, and the old IKE SA is deleted on both sides.

mod common;

use std::time::Duration;

use common::peers::{addr, connection, dpd, engine, Pair, A, B, TO_A, TO_B};
use routevpn::ike::engine::{DpdAction, EngineConfig, EngineConnection, Event, StartAction};

const SECS: fn(u64) -> Duration = Duration::from_secs;
const NAMES: [&str; 2] = [TO_B, TO_A];

/// IKE SAs that rekey every `ike_rekey` seconds (0: never by timer), with DPD every 30 s.
fn side(a: bool, ike_rekey: u64) -> EngineConnection {
    let mut c = connection(
        a,
        dpd(30, 150, DpdAction::Clear),
        StartAction::None,
        StartAction::None,
    );
    (c.config.rekey_time, c.config.rand_time) = (ike_rekey, ike_rekey / 10);
    // Child SAs rekey on command only, so every kernel change seen is the IKE rekey's.
    let child = &mut c.config.children[0];
    (child.rekey_time, child.life_time, child.rand_time) = (0, 0, 0);
    c
}

fn pair(ike_rekey: u64) -> Pair {
    let mut p = Pair::new(
        engine(EngineConfig::default(), side(true, ike_rekey)),
        engine(EngineConfig::default(), side(false, ike_rekey)),
    );
    p.engines[0].initiate(p.now, TO_B).unwrap();
    p.settle();
    assert_eq!((p.children(0), p.children(1)), (1, 1), "tunnel up");
    p
}

fn count(p: &Pair, side: usize, f: impl Fn(&Event) -> bool) -> usize {
    p.records[side].events.iter().filter(|(_, e)| f(e)).count()
}

fn ike_rekeyed(e: &Event) -> bool {
    matches!(e, Event::IkeRekeyed { .. })
}

fn trouble(e: &Event) -> bool {
    matches!(
        e,
        Event::Failed { .. } | Event::Deleted { .. } | Event::ChildDeleted { .. }
    )
}

/// Each side's one visible IKE SA (SPIs) and its Child SAs (inbound, outbound SPIs).
fn snapshot(p: &Pair, side: usize) -> ((u64, u64), Vec<(u32, u32)>) {
    let status = p.engines[side].status();
    assert_eq!(status.len(), 1, "side {side}: {status:?}");
    let sa = &status[0];
    let children = sa.children.iter().map(|c| (c.spi_in, c.spi_out)).collect();
    ((sa.spi_i, sa.spi_r), children)
}

/// Both sides list the same single IKE SA and mirrored Child SAs; the IKE SPIs.
fn agreed(p: &Pair) -> (u64, u64) {
    let (a, b) = (snapshot(p, 0), snapshot(p, 1));
    assert_eq!(a.0, b.0, "IKE SPIs");
    let mirrored: Vec<(u32, u32)> = b.1.iter().map(|(i, o)| (*o, *i)).collect();
    assert_eq!(a.1, mirrored, "Child SAs");
    a.0
}

/// Each side logged one IKE rekey, nothing failed or went down, and only the new IKE SA
/// is left (the old one was deleted, not left to time out).
fn one_ike_rekey_and_nothing_else(p: &Pair) {
    assert_eq!((count(p, 0, ike_rekeyed), count(p, 1, ike_rekeyed)), (1, 1));
    assert_eq!(count(p, 0, trouble) + count(p, 1, trouble), 0);
    assert_eq!(
        (p.engines[0].ike_sa_count(), p.engines[1].ike_sa_count()),
        (1, 1)
    );
}

#[test]
fn either_side_rekeys_the_ike_sa_and_the_child_sas_move_untouched() {
    for side in 0..2 {
        let mut p = pair(0);
        let before = agreed(&p);
        let children = snapshot(&p, 0).1;
        let actions = [p.records[0].actions.len(), p.records[1].actions.len()];
        p.engines[side].rekey_ike(p.now, NAMES[side]).unwrap();
        p.run_until(p.elapsed() + SECS(5));

        let after = agreed(&p);
        assert_ne!(after.0, before.0, "side {side}: new initiator SPI");
        assert_ne!(after.1, before.1, "side {side}: new responder SPI");
        assert_eq!(snapshot(&p, 0).1, children, "side {side}: Child SAs kept");
        assert_eq!(
            [p.records[0].actions.len(), p.records[1].actions.len()],
            actions,
            "side {side}: no kernel change"
        );
        assert_eq!(
            (count(&p, 0, ike_rekeyed), count(&p, 1, ike_rekeyed)),
            (1, 1)
        );
        // The old IKE SA was deleted on both sides, not left to time out.
        assert_eq!(
            (p.engines[0].ike_sa_count(), p.engines[1].ike_sa_count()),
            (1, 1)
        );
        // The new IKE SA works: a Child SA rekey over it and a minute of DPD.
        p.engines[1 - side]
            .rekey_children(p.now, NAMES[1 - side])
            .unwrap();
        p.run_until(p.elapsed() + SECS(70));
        let rekeyed = |e: &Event| matches!(e, Event::ChildRekeyed { .. });
        assert_eq!((count(&p, 0, rekeyed), count(&p, 1, rekeyed)), (1, 1));
        assert_eq!(agreed(&p), after);
        assert_eq!(
            count(&p, 0, trouble) + count(&p, 1, trouble),
            2,
            "only the old Child SA pair went"
        );
    }
}

#[test]
fn ike_sas_rekey_when_rekey_time_runs_out() {
    // rekey_time 600 s, up to 60 s of jitter, both sides' timers running: over 3 hours,
    // one rekey every 540..600 s at the latest, whoever's timer fires first.
    let mut p = pair(600);
    p.run_until(SECS(3 * 3600));
    let rekeys = count(&p, 0, ike_rekeyed);
    assert_eq!(rekeys, count(&p, 1, ike_rekeyed));
    assert!(
        (18..=21).contains(&rekeys),
        "{rekeys} IKE rekeys in 3 hours"
    );
    assert_eq!(count(&p, 0, trouble) + count(&p, 1, trouble), 0);
    let failed = |e: &Event| matches!(e, Event::IkeRekeyFailed { .. });
    assert_eq!(count(&p, 0, failed) + count(&p, 1, failed), 0);
    agreed(&p);
    assert_eq!(p.children(0), 1);
    assert_eq!(
        (p.engines[0].ike_sa_count(), p.engines[1].ike_sa_count()),
        (1, 1)
    );
}

#[test]
fn a_lost_answer_and_duplicated_requests_change_nothing() {
    let mut p = pair(0);
    let before = agreed(&p);
    // b answers, the answer is lost: a retransmits and b repeats its cached answer.
    p.down[0] = true;
    p.engines[0].rekey_ike(p.now, TO_B).unwrap();
    p.settle();
    p.down[0] = false;
    p.run_until(p.elapsed() + SECS(10));
    let after = agreed(&p);
    assert_ne!(after, before);
    // Everything a sent arrives once more: b makes no second IKE SA.
    let sent: Vec<Vec<u8>> = p.records[0].sent.iter().map(|(_, d)| d.clone()).collect();
    for datagram in sent {
        p.engines[1].handle_datagram(p.now, addr(B, 500), addr(A, 500), &datagram);
    }
    p.run_until(p.elapsed() + SECS(70));
    assert_eq!(agreed(&p), after);
    one_ike_rekey_and_nothing_else(&p);
}

/// Both sides start an IKE rekey; the two requests cross on the wire.
fn crossing_rekeys(p: &mut Pair) -> [routevpn::ike::engine::Transmit; 2] {
    p.engines[0].rekey_ike(p.now, TO_B).unwrap();
    p.engines[1].rekey_ike(p.now, TO_A).unwrap();
    let requests = [0, 1].map(|side| p.engines[side].poll_transmit().expect("a rekey request"));
    for (side, t) in requests.iter().enumerate() {
        p.engines[1 - side].handle_datagram(p.now, t.remote, t.local, &t.payload);
    }
    requests
}

/// Who made the surviving IKE SA: true when a's exchange won.
fn a_won(p: &Pair) -> bool {
    p.engines[0].status()[0].initiator
}

#[test]
fn simultaneous_ike_rekeys_complete_both_and_keep_the_higher_nonces() {
    // Section 2.8.2: both exchanges complete, the IKE SA made by the one with the lowest
    // nonce is deleted by its maker, and the other side deletes the old IKE SA. Nonces are
    // random, so over 16 runs each side's exchange should win at least once.
    let mut winners = [0; 2];
    for _ in 0..16 {
        let mut p = pair(0);
        let before = agreed(&p);
        let children = snapshot(&p, 0).1;
        let actions = [p.records[0].actions.len(), p.records[1].actions.len()];
        crossing_rekeys(&mut p);
        p.settle();
        // Settled at once: no refusal, no retry after a random delay.
        let after = agreed(&p);
        assert_ne!(after, before);
        assert_eq!(snapshot(&p, 0).1, children);
        assert_eq!(
            [p.records[0].actions.len(), p.records[1].actions.len()],
            actions,
            "no kernel change"
        );
        one_ike_rekey_and_nothing_else(&p);
        let failed = |e: &Event| matches!(e, Event::IkeRekeyFailed { .. });
        assert_eq!(count(&p, 0, failed) + count(&p, 1, failed), 0);
        let a_won = a_won(&p);
        winners[usize::from(!a_won)] += 1;
        let kept = |side: usize| {
            (p.records[side].events.iter()).find_map(|(_, e)| match e {
                Event::IkeRekeysCrossed { ours_kept, .. } => Some(*ours_kept),
                _ => None,
            })
        };
        assert_eq!((kept(0), kept(1)), (Some(a_won), Some(!a_won)));
        // The survivor works: a Child SA rekey over it, then DPD for two minutes.
        p.engines[1].rekey_children(p.now, TO_A).unwrap();
        p.run_until(p.elapsed() + SECS(120));
        assert_eq!(agreed(&p), after);
        let rekeyed = |e: &Event| matches!(e, Event::ChildRekeyed { .. });
        assert_eq!((count(&p, 0, rekeyed), count(&p, 1, rekeyed)), (1, 1));
    }
    assert!(
        winners[0] > 0 && winners[1] > 0,
        "a won / b won: {winners:?}"
    );
}

#[test]
fn simultaneous_ike_rekeys_survive_a_lost_answer() {
    // b's answer to a's rekey is lost. If b's exchange won, b deletes the old IKE SA before
    // a hears back, and a takes b's new IKE SA on that Delete; if a's won, b deletes its
    // redundant one and a's retransmission gets b's answer from its cache.
    let mut winners = [0; 2];
    for _ in 0..16 {
        let mut p = pair(0);
        let before = agreed(&p);
        let children = snapshot(&p, 0).1;
        crossing_rekeys(&mut p);
        let lost = p.engines[1].poll_transmit().expect("b's answer");
        assert!(!lost.payload.is_empty());
        p.run_until(p.elapsed() + SECS(90));
        let after = agreed(&p);
        assert_ne!(after, before);
        assert_eq!(snapshot(&p, 0).1, children);
        one_ike_rekey_and_nothing_else(&p);
        winners[usize::from(!a_won(&p))] += 1;
    }
    assert!(
        winners[0] > 0 && winners[1] > 0,
        "a won / b won: {winners:?}"
    );
}

#[test]
fn a_dead_peer_during_the_ike_rekey_is_detected() {
    let mut p = pair(0);
    p.down[0] = true;
    p.down[1] = true;
    p.engines[0].rekey_ike(p.now, TO_B).unwrap();
    p.run_until(p.elapsed() + SECS(400));
    let not_responding = |e: &Event| matches!(e, Event::Failed { reason, .. } if reason.to_string().contains("not responding"));
    assert_eq!(count(&p, 0, not_responding), 1);
    assert_eq!(p.children(0), 0, "the Child SAs went with the IKE SA");
}
