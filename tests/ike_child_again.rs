//! `up` over an IKE SA whose Child SA is gone (hard expiry without rekey, or deleted):
//! the Child SA is negotiated again over the same IKE SA.

mod common;

use std::time::Duration;

use common::peers::{connection, dpd, engine, without_rekey, Pair, TO_A, TO_B};
use routevpn::ike::engine::{DpdAction, EngineConfig, StartAction};

#[test]
fn initiate_asks_again_for_an_expired_child_sa_over_the_live_ike_sa() {
    let side = |a| {
        let mut c = without_rekey(connection(
            a,
            dpd(30, 150, DpdAction::Clear),
            StartAction::None,
            StartAction::None,
        ));
        // A hard lifetime and no rekey: the Child SA just ends.
        c.config.children[0].life_time = 60;
        engine(EngineConfig::default(), c)
    };
    let mut p = Pair::new(side(true), side(false));
    p.engines[0].initiate(p.now, TO_B).unwrap();
    p.settle();
    assert_eq!((p.children(0), p.children(1)), (1, 1));
    let ike = p.engines[0].status()[0].spi_i;
    p.run_until(Duration::from_secs(90));
    assert_eq!(
        (p.children(0), p.children(1)),
        (0, 0),
        "expired on both sides"
    );

    p.engines[0].initiate(p.now, TO_B).unwrap();
    p.run_until(Duration::from_secs(95));
    assert_eq!((p.children(0), p.children(1)), (1, 1), "negotiated again");
    let status = p.engines[0].status();
    assert_eq!(status.len(), 1, "over the same IKE SA: {status:?}");
    assert_eq!(status[0].spi_i, ike);

    // From the other side too, and a second `up` asks for nothing more.
    p.run_until(Duration::from_secs(160));
    p.engines[1].initiate(p.now, TO_A).unwrap();
    p.engines[1].initiate(p.now, TO_A).unwrap();
    p.run_until(Duration::from_secs(165));
    assert_eq!((p.children(0), p.children(1)), (1, 1));
}
