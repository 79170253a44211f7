//! NAT traversal on a simulated network: the move to the NAT-T port after IKE_SA_INIT,
//! ESP installed in UDP on the same ports, keepalives from the side behind the NAT,
//! `force` without a NAT, following the peer when its NAT mapping changes, and GRE in
//! transport mode from behind a 1:1 NAT (RFC 7296 section 2.23.1) in both roles.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::peers::{connection, dpd, engine, Pair, A, B, TO_A, TO_B};
use routevpn::ike::engine::{
    ChildSaInstall, DpdAction, EngineConfig, EngineConnection, Event, FailureReason, Identity,
    KernelAction, Mode, NatTraversal, StartAction, UdpEncap,
};
use routevpn::profile::parse_traffic_selector;

const PUBLIC: &str = "203.0.113.5:40000";

/// a (optionally behind the NAT at PUBLIC) initiates to b.
fn pair(behind_nat: bool, a_mode: NatTraversal) -> Pair {
    let mut a_conn = connection(
        true,
        dpd(0, 150, DpdAction::Clear),
        StartAction::None,
        StartAction::None,
    );
    a_conn.config.nat_traversal = a_mode;
    let mut b_conn = connection(
        false,
        dpd(0, 150, DpdAction::Clear),
        StartAction::None,
        StartAction::None,
    );
    let public: SocketAddr = PUBLIC.parse().unwrap();
    if behind_nat {
        // b knows a by the NAT's address; a's identity stays its own address.
        b_conn.config.remote = public.ip();
    }
    let mut p = Pair::new(
        engine(EngineConfig::default(), a_conn),
        engine(EngineConfig::default(), b_conn),
    );
    p.nat = behind_nat.then_some(public);
    p.engines[0].initiate(p.now, TO_B).unwrap();
    p.settle();
    assert_eq!((p.children(0), p.children(1)), (1, 1), "tunnel up");
    p
}

fn encaps(p: &Pair, side: usize) -> Vec<Option<(u16, u16)>> {
    (p.records[side].actions.iter())
        .filter_map(|(_, k)| match k {
            KernelAction::InstallChildSa(i) => Some(i.encap.map(
                |UdpEncap {
                     local_port,
                     remote_port,
                 }| (local_port, remote_port),
            )),
            _ => None,
        })
        .collect()
}

/// Keepalives `side` sent: (time, local port, remote port).
fn keepalives(p: &Pair, side: usize) -> Vec<Duration> {
    (p.records[side].sent.iter())
        .filter(|(_, bytes)| bytes.as_slice() == [0xff])
        .map(|(at, _)| *at)
        .collect()
}

#[test]
fn behind_a_nat_both_sides_move_to_4500_and_the_natted_side_keeps_the_mapping_alive() {
    let mut p = pair(true, NatTraversal::Auto);
    assert_eq!(encaps(&p, 0), vec![Some((4500, 4500))]);
    assert_eq!(encaps(&p, 1), vec![Some((4500, 44000))]);
    let (sa, sb) = (&p.engines[0].status()[0], &p.engines[1].status()[0]);
    assert_eq!(
        (sa.local.port(), sa.remote),
        (4500, format!("{B}:4500").parse().unwrap())
    );
    assert_eq!(sb.remote, "203.0.113.5:44000".parse().unwrap());

    p.run_until(Duration::from_secs(100));
    let expected: Vec<Duration> = (1..=5).map(|n| Duration::from_secs(20 * n)).collect();
    assert_eq!(keepalives(&p, 0), expected);
    assert!(keepalives(&p, 1).is_empty(), "b is not behind a NAT");
    // Liveness checks still work over the NAT-T ports.
    let now = p.now;
    p.engines[0].check_liveness(now, TO_B).unwrap();
    p.engines[1].check_liveness(now, TO_A).unwrap();
    p.settle();
    assert!(
        p.engines.iter().all(|e| e
            .next_timeout()
            .is_none_or(|t| t > now + Duration::from_secs(5))),
        "both checks answered (an unanswered one is retransmitted after 4 s)"
    );
}

#[test]
fn force_encapsulates_without_a_nat_and_auto_does_not() {
    let p = pair(false, NatTraversal::Force);
    assert_eq!(encaps(&p, 0), vec![Some((4500, 4500))]);
    assert_eq!(encaps(&p, 1), vec![Some((4500, 4500))]);
    assert!(
        p.engines[1].status()[0].remote_behind_nat,
        "the responder was made to believe it"
    );

    let p = pair(false, NatTraversal::Auto);
    assert_eq!(encaps(&p, 0), vec![None]);
    assert_eq!(encaps(&p, 1), vec![None]);
    assert_eq!(p.engines[0].status()[0].local.port(), 500);
}

#[test]
fn the_responder_follows_a_new_nat_mapping_but_not_a_forged_datagram() {
    let mut p = pair(true, NatTraversal::Auto);
    // A forged datagram with the right SPIs from another port does not move b.
    let genuine = p.records[0].sent.last().unwrap().1.clone();
    let mut forged = genuine.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let now = p.now;
    p.engines[1].handle_datagram(
        now,
        format!("{B}:4500").parse().unwrap(),
        "203.0.113.5:45555".parse().unwrap(),
        &forged,
    );
    assert_eq!(
        p.engines[1].status()[0].remote,
        "203.0.113.5:44000".parse().unwrap()
    );

    // The NAT reboots and maps a's 4500 to 54000: a's next request moves b there, and the
    // answer reaches a through the new mapping.
    p.nat = Some("203.0.113.5:50000".parse().unwrap());
    p.engines[0].check_liveness(now, TO_B).unwrap();
    p.settle();
    assert_eq!(
        p.engines[1].status()[0].remote,
        "203.0.113.5:54000".parse().unwrap()
    );
    assert!(
        p.engines[0]
            .next_timeout()
            .is_none_or(|t| t > now + Duration::from_secs(5)),
        "answered"
    );
}

/// The address a 1:1 NAT publishes a as (ports unchanged).
const ONE_TO_ONE: &str = "203.0.113.5";

/// GRE in transport mode, a behind a 1:1 NAT known to b by the NAT's address; a's identity
/// is `a_id`, the address its selectors name on the wire if it is an address.
fn gre_transport(a_id: Identity) -> Pair {
    gre_transport_with(a_id, |_| {})
}

/// The same, with b's connection changed by `b_change` last.
fn gre_transport_with(a_id: Identity, b_change: impl FnOnce(&mut EngineConnection)) -> Pair {
    let public = ONE_TO_ONE.parse().unwrap();
    let gre = |mut c: EngineConnection| {
        c.config.rekey_time = 0;
        for child in &mut c.config.children {
            child.mode = Mode::Transport;
            child.local_ts = vec![parse_traffic_selector("dynamic[gre]").unwrap()];
            child.remote_ts = child.local_ts.clone();
        }
        c
    };
    let none = || dpd(0, 150, DpdAction::Clear);
    let mut a_conn = gre(connection(
        true,
        none(),
        StartAction::None,
        StartAction::None,
    ));
    a_conn.config.local_id = Some(a_id.clone());
    let mut b_conn = gre(connection(
        false,
        none(),
        StartAction::None,
        StartAction::None,
    ));
    (b_conn.config.remote, b_conn.config.remote_id) = (public, a_id);
    b_change(&mut b_conn);
    let mut p = Pair::new(
        engine(EngineConfig::default(), a_conn),
        engine(EngineConfig::default(), b_conn),
    );
    p.nat = Some(SocketAddr::new(public, 500));
    p
}

/// The kernel installs of `side`: (local selectors, remote selectors, encapsulated).
fn installs(p: &Pair, side: usize) -> Vec<(String, String, bool)> {
    let show = |ts: &[routevpn::ike::engine::Selector]| {
        (ts.iter().map(ToString::to_string))
            .collect::<Vec<_>>()
            .join(" ")
    };
    (p.records[side].actions.iter())
        .filter_map(|(_, k)| match k {
            KernelAction::InstallChildSa(i) => {
                let ChildSaInstall {
                    local_ts,
                    remote_ts,
                    encap,
                    ..
                } = i.as_ref();
                Some((show(local_ts), show(remote_ts), encap.is_some()))
            }
            _ => None,
        })
        .collect()
}

/// Each side's kernel names the addresses packets carry on its side of the NAT: a its own
/// private address, b the NAT's; UDP-encapsulated; `n` installs each.
fn assert_kernel_views(p: &Pair, n: usize) {
    let a_view = (format!("{A}/32[gre]"), format!("{B}/32[gre]"), true);
    let b_view = (
        format!("{B}/32[gre]"),
        format!("{ONE_TO_ONE}/32[gre]"),
        true,
    );
    assert_eq!(installs(p, 0), vec![a_view; n]);
    assert_eq!(installs(p, 1), vec![b_view; n]);
}

/// `side` starts the tunnel: both ends install one pair with their own views.
fn bring_up(p: &mut Pair, side: usize) {
    let name = [TO_B, TO_A][side];
    p.engines[side].initiate(p.now, name).unwrap();
    p.settle();
    assert_eq!((p.children(0), p.children(1)), (1, 1), "tunnel up");
    assert_kernel_views(p, 1);
}

/// `side` rekeys the Child SA; the rekey offers the selectors as negotiated on the wire.
fn rekey(p: &mut Pair, side: usize) {
    let now = p.now;
    p.engines[side]
        .rekey_children(now, [TO_B, TO_A][side])
        .unwrap();
    p.settle();
    assert_eq!((p.children(0), p.children(1)), (1, 1), "old SAs deleted");
}

#[test]
fn gre_transport_from_behind_a_1to1_nat_as_initiator_and_through_rekeys() {
    let mut p = gre_transport(Identity::Address(ONE_TO_ONE.parse().unwrap()));
    bring_up(&mut p, 0);
    rekey(&mut p, 0);
    rekey(&mut p, 1);
    assert_kernel_views(&p, 3);
}

#[test]
fn gre_transport_behind_a_1to1_nat_as_responder() {
    let mut p = gre_transport(Identity::Address(ONE_TO_ONE.parse().unwrap()));
    bring_up(&mut p, 1);
    rekey(&mut p, 0);
    assert_kernel_views(&p, 2);
}

/// Without an address identity a names its own address, as strongSwan does; the responder
/// puts the address it sees in its place.
#[test]
fn gre_transport_behind_a_nat_without_an_address_identity() {
    let mut p = gre_transport(Identity::Fqdn("branch.example".into()));
    bring_up(&mut p, 0);
}

/// A refusal names our selectors as the peer saw them: the address the NAT publishes us as,
/// not the private one only our kernel knows.
#[test]
fn a_refused_selector_is_named_as_the_peer_saw_it() {
    let mut p = gre_transport_with(Identity::Address(ONE_TO_ONE.parse().unwrap()), |b| {
        for child in &mut b.config.children {
            child.remote_ts = vec![parse_traffic_selector("198.51.100.99[gre]").unwrap()];
        }
    });
    p.engines[0].initiate(p.now, TO_B).unwrap();
    p.settle();
    let ours = (p.records[0].events.iter())
        .find_map(|(_, e)| match e {
            Event::Failed {
                reason: FailureReason::TsUnacceptable { ours, .. },
                ..
            } => Some(ours.join(" ")),
            _ => None,
        })
        .expect("a learns that its selectors were refused");
    assert!(ours.contains(&format!("{ONE_TO_ONE}/32[gre]")), "{ours}");
    assert!(!ours.contains(&A.to_string()), "{ours}");
}
