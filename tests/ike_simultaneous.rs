//! Both sides start the same connection at the same instant (issue 13, simultaneous
//! start): INITIAL_CONTACT must not delete an IKE SA the peer still holds, and the two IKE
//! SAs the crossing made end as one.

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use common::peers::{connection, dpd, engine, without_rekey, Pair, TO_A, TO_B};
use routevpn::ike::codec::{ExchangeType, Message};
use routevpn::ike::engine::{DpdAction, EngineConfig, Event, KernelAction, StartAction, Transmit};

fn crossing_pair() -> Pair {
    pair_restarting(StartAction::None, DpdAction::Clear)
}

/// Both sides with the given close action and DPD action (restart on loss or not).
fn pair_restarting(close: StartAction, on_dead_peer: DpdAction) -> Pair {
    let side = |a| {
        let c = connection(a, dpd(30, 150, on_dead_peer), StartAction::None, close);
        engine(EngineConfig::default(), without_rekey(c))
    };
    Pair::new(side(true), side(false))
}

/// Each side's established IKE SAs, by SPI pair.
fn ike_spis(p: &Pair, side: usize) -> Vec<(u64, u64)> {
    let mut spis: Vec<_> = (p.engines[side].status().iter())
        .map(|s| (s.spi_i, s.spi_r))
        .collect();
    spis.sort();
    spis
}

/// The vti-ike case: b's IKE_AUTH (with INITIAL_CONTACT) arrives after the IKE SA a
/// initiated is established. That SA crossed b's request and is live on b: a keeps it.
#[test]
fn initial_contact_spares_an_sa_established_after_its_ike_sa_began() {
    let mut p = crossing_pair();
    let held: Rc<RefCell<Option<Transmit>>> = Rc::default();
    let (hold, mut holding) = (held.clone(), true);
    p.network = Some(Box::new(move |side, sent: Vec<Transmit>| {
        (sent.into_iter())
            .filter(|t| {
                let header = Message::decode(&t.payload).unwrap().header;
                let auth_request =
                    header.exchange == ExchangeType::IkeAuth && !header.flags.response;
                if side == 1 && auth_request && holding {
                    holding = false;
                    *hold.borrow_mut() = Some(t.clone());
                    return false;
                }
                true
            })
            .collect()
    }));
    p.engines[0].initiate(p.now, TO_B).unwrap();
    p.engines[1].initiate(p.now, TO_A).unwrap();
    p.settle();
    assert_eq!(
        ike_spis(&p, 0).len(),
        2,
        "a's SA is up, b's still in IKE_AUTH"
    );
    let t = held.borrow_mut().take().expect("b's IKE_AUTH was held");
    p.engines[0].handle_datagram(p.now, t.remote, t.local, &t.payload);
    p.run_until(Duration::from_secs(60));
    let (a, b) = (ike_spis(&p, 0), ike_spis(&p, 1));
    assert_eq!(a, b, "every IKE SA is held by both sides");
    assert_eq!(p.children(0), p.children(1));
}

/// Both ends keep initiating forever (close action and DPD restart, as a daemon with
/// `start_action = start` runs): the crossing leaves exactly one IKE SA and one Child SA
/// pair, held by both, whatever order the crossing messages arrive in — and nothing
/// restarts afterwards.
#[test]
fn crossed_initiations_end_with_one_ike_sa() {
    // Per side: deliver each batch in order or reversed.
    // Some orders settle it before IKE_AUTH (an initiator whose connection came up
    // meanwhile stops); at least one must establish both.
    let mut crossings = 0;
    for reversed in [[false, false], [true, false], [false, true], [true, true]] {
        let mut p = pair_restarting(StartAction::Start, DpdAction::Restart);
        p.network = Some(Box::new(move |side, mut sent: Vec<Transmit>| {
            if reversed[side] {
                sent.reverse();
            }
            sent
        }));
        p.engines[0].initiate(p.now, TO_B).unwrap();
        p.engines[1].initiate(p.now, TO_A).unwrap();
        p.run_until(Duration::from_secs(600));
        let (a, b) = (ike_spis(&p, 0), ike_spis(&p, 1));
        assert_eq!(a.len(), 1, "{reversed:?}: a holds one IKE SA: {a:x?}");
        assert_eq!(a, b, "{reversed:?}: both hold the same IKE SA");
        assert_eq!((p.children(0), p.children(1)), (1, 1), "{reversed:?}");
        let mut both_established = false;
        for side in 0..2 {
            let restarts = (p.records[side].events.iter())
                .filter(|(_, e)| matches!(e, Event::Restarting { .. }))
                .count();
            assert_eq!(restarts, 0, "{reversed:?}: side {side} restarted");
            let actions = &p.records[side].actions;
            let installed = (actions.iter())
                .filter(|(_, k)| matches!(k, KernelAction::InstallChildSa(_)))
                .count();
            let removed = (actions.iter())
                .filter(|(_, k)| matches!(k, KernelAction::DeleteChildSa(_)))
                .count();
            assert_eq!(
                installed - removed,
                1,
                "{reversed:?}: side {side} keeps one Child SA pair in the kernel"
            );
            both_established |= installed == 2;
        }
        let crossed = |side: usize| {
            p.last_event(side, |e| matches!(e, Event::InitiationsCrossed { .. }))
                .is_some()
        };
        if both_established {
            assert!(
                crossed(0) || crossed(1),
                "{reversed:?}: the crossing was logged"
            );
        }
        crossings += usize::from(both_established);
    }
    assert!(crossings > 0, "no delivery order established both IKE SAs");
}

/// A peer without the crossed-initiation rule (charon 5.9, pluto 4.10: both keep the two
/// IKE SAs): it never deletes the redundant SA it initiated. Here side b sends no
/// INFORMATIONAL request at all. Where b's SA is the redundant one, a deletes it itself
/// once b had its chance, and both end with one IKE SA and one Child SA pair.
#[test]
fn a_peer_that_keeps_both_crossed_sas_gets_the_redundant_one_deleted() {
    let mut seen = false;
    for _ in 0..40 {
        let mut p = crossing_pair();
        p.network = Some(Box::new(|side, sent: Vec<Transmit>| {
            (sent.into_iter())
                .filter(|t| {
                    let header = Message::decode(&t.payload).unwrap().header;
                    let b_informs =
                        header.exchange == ExchangeType::Informational && !header.flags.response;
                    !(side == 1 && b_informs)
                })
                .collect()
        }));
        p.engines[0].initiate(p.now, TO_B).unwrap();
        p.engines[1].initiate(p.now, TO_A).unwrap();
        p.run_until(Duration::from_secs(20));
        let b_sa_redundant = p
            .last_event(0, |e| {
                matches!(
                    e,
                    Event::InitiationsCrossed {
                        ours_kept: true,
                        ..
                    }
                )
            })
            .is_some();
        if !b_sa_redundant {
            continue;
        }
        seen = true;
        let (a, b) = (ike_spis(&p, 0), ike_spis(&p, 1));
        assert_eq!(a.len(), 1, "a holds one IKE SA: {a:x?}");
        assert_eq!(a, b, "both hold the same IKE SA");
        assert_eq!((p.children(0), p.children(1)), (1, 1));
        break;
    }
    assert!(seen, "in 40 crossings b's SA was never the redundant one");
}
