//! A high-availability pair: two gateways share side a's address (a virtual address that
//! keepalived moves) and the same connection to partner b. The gateway that loses the
//! address abandons its IKE SAs without sending anything; the one that gains it initiates
//! with INITIAL_CONTACT, so b drops the other gateway's SAs, and so again on the way back.

mod common;

use std::time::Duration;

use common::peers::{connection, dpd, engine, without_rekey, Pair, TO_B};
use routevpn::ike::engine::{
    DpdAction, Engine, EngineConfig, EngineConnection, EngineError, KernelAction, StartAction,
};

/// Side a's connection (either gateway's, `a`) or partner b's, without rekeys.
fn side(a: bool) -> EngineConnection {
    let start = if a {
        StartAction::Start
    } else {
        StartAction::None
    };
    let c = connection(a, dpd(30, 150, DpdAction::Clear), start, StartAction::None);
    without_rekey(c)
}

fn gateway() -> EngineConnection {
    side(true)
}

fn partner() -> Engine {
    engine(EngineConfig::default(), side(false))
}

/// Side a loses the address: nothing is sent, its Child SAs go from the kernel, the
/// connection is forgotten. Returns the engine as it is left.
fn lose_address(p: &mut Pair) -> Engine {
    let sent = p.records[0].sent.len();
    let deletes = |p: &Pair| {
        (p.records[0].actions.iter())
            .filter(|(_, a)| matches!(a, KernelAction::DeleteChildSa(_)))
            .count()
    };
    let deleted = deletes(p);
    p.engines[0].abandon_connection(TO_B).unwrap();
    p.settle();
    assert_eq!(
        p.records[0].sent.len(),
        sent,
        "sent from an address it lost"
    );
    assert_eq!(
        deletes(p) - deleted,
        1,
        "its Child SA removed from the kernel"
    );
    assert!(p.engines[0].status().is_empty());
    assert_eq!(
        p.engines[0].next_timeout(),
        None,
        "nothing left to retransmit"
    );
    assert!(matches!(
        p.engines[0].initiate(p.now, TO_B),
        Err(EngineError::UnknownConnection(_))
    ));
    std::mem::replace(&mut p.engines[0], Engine::new(EngineConfig::default()))
}

/// The other gateway gains the address and initiates: b keeps only the new IKE SA.
fn take_over(p: &mut Pair, gaining: Engine) {
    p.engines[0] = gaining;
    p.engines[0].add_connection(gateway());
    p.engines[0].initiate(p.now, TO_B).unwrap();
    p.settle();
    assert_eq!(p.children(0), 1, "the new active gateway's Child SA");
    assert_eq!(
        (p.engines[1].status().len(), p.children(1)),
        (1, 1),
        "b dropped the old gateway's IKE SA (INITIAL_CONTACT)"
    );
}

#[test]
fn the_gateway_that_gains_the_address_takes_over_and_the_one_that_loses_it_keeps_quiet() {
    let mut p = Pair::new(engine(EngineConfig::default(), gateway()), partner());
    p.engines[0].initiate(p.now, TO_B).unwrap();
    p.settle();
    assert_eq!((p.children(0), p.children(1)), (1, 1));
    let old_spi = p.engines[1].status()[0].spi_i;
    // The partner forgets only IKE SAs established before the new one began.
    p.run_until(Duration::from_secs(5));

    // Failover: gateway 1 is gone (crashed or demoted), gateway 2 takes the address.
    let gateway_1 = lose_address(&mut p);
    take_over(&mut p, Engine::new(EngineConfig::default()));
    assert_ne!(p.engines[1].status()[0].spi_i, old_spi);

    // Failback: gateway 2 loses the address; gateway 1 (the same engine, which forgot
    // everything of its first IKE SA) takes it back, INITIAL_CONTACT included.
    p.run_until(Duration::from_secs(10));
    let _gateway_2 = lose_address(&mut p);
    take_over(&mut p, gateway_1);
}
