//! Both sides start the same connection at the same instant (issue 13, simultaneous
//! start): INITIAL_CONTACT must not delete an IKE SA the peer still holds.

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use common::peers::{connection, dpd, engine, without_rekey, Pair, TO_A, TO_B};
use routevpn::ike::codec::{ExchangeType, Message};
use routevpn::ike::engine::{DpdAction, EngineConfig, StartAction, Transmit};

fn crossing_pair() -> Pair {
    let side = |a| {
        let c = connection(
            a,
            dpd(30, 150, DpdAction::Clear),
            StartAction::None,
            StartAction::None,
        );
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
