//! INITIAL_CONTACT only when no other IKE SA joins the same two identities: a peer such as
//! charon drops every IKE SA between the identities it names, across connections (a
//! second tunnel with the same certificates took the first one down).

mod common;

use common::peers::{connection, dpd, engine, without_rekey, Pair, TO_B};
use routevpn::ike::engine::{DpdAction, EngineConfig, StartAction};

#[test]
fn a_second_tunnel_between_the_same_identities_leaves_the_first_alone() {
    let side = |a| {
        let c = connection(
            a,
            dpd(30, 150, DpdAction::Clear),
            StartAction::None,
            StartAction::None,
        );
        without_rekey(c)
    };
    let first = side(true);
    let mut second = first.clone();
    second.config.name = "to-b-again".into();
    let mut a = engine(EngineConfig::default(), first);
    a.add_connection(second);
    let mut p = Pair::new(a, engine(EngineConfig::default(), side(false)));
    p.engines[0].initiate(p.now, TO_B).unwrap();
    p.settle();
    p.run_until(std::time::Duration::from_secs(5));
    p.engines[0].initiate(p.now, "to-b-again").unwrap();
    p.settle();
    // b answers both with its one connection; had the second IKE_AUTH carried
    // INITIAL_CONTACT, b would have dropped the first IKE SA.
    let counts = (p.engines[0].status().len(), p.engines[1].status().len());
    assert_eq!(counts, (2, 2), "IKE SAs on a and b");
    assert_eq!((p.children(0), p.children(1)), (2, 2));
}
