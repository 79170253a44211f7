//! CHILD SA rekeying with CREATE_CHILD_SA on a simulated clock: rekeys happen before the
//! hard lifetime, from either side, with and without PFS, through lost and duplicated
//! messages and simultaneous rekeys (RFC 7296 section 2.8.1), and never leave a moment in
//! which one side sends on an SA the other cannot receive (make-before-break).

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::peers::{connection, dpd, engine, Pair, A, B, TO_A, TO_B};
use routevpn::ike::engine::{
    DpdAction, EngineConfig, EngineConnection, Event, KernelAction, StartAction,
};
use routevpn::proposal::parse_esp;

const SECS: fn(u64) -> Duration = Duration::from_secs;

fn ip(address: &str) -> std::net::IpAddr {
    address.parse().unwrap()
}

/// Child SAs that rekey every `rekey` seconds (minus up to a tenth), expire 10 % later.
fn side(a: bool, esp: &str, rekey: u64) -> EngineConnection {
    let mut c = connection(
        a,
        dpd(0, 150, DpdAction::Clear),
        StartAction::None,
        StartAction::None,
    );
    let child = &mut c.config.children[0];
    child.esp_proposals = vec![parse_esp(esp, true).unwrap()];
    (child.rekey_time, child.life_time, child.rand_time) = (rekey, rekey + rekey / 10, rekey / 10);
    c
}

fn pair(a_esp: &str, b_esp: &str, rekey: u64) -> Pair {
    let mut p = Pair::new(
        engine(EngineConfig::default(), side(true, a_esp, rekey)),
        engine(EngineConfig::default(), side(false, b_esp, rekey)),
    );
    p.engines[0].initiate(p.now, TO_B).unwrap();
    p.settle();
    assert_eq!((p.children(0), p.children(1)), (1, 1), "tunnel up");
    p
}

/// Replays both kernels' SA tables in the order the engines changed them and checks, after
/// every change once the first pair is up on both sides, that each side's newest outbound
/// SA is one the other side can receive, and that a side with SAs has an outbound one.
/// (While IKE_AUTH is answered the responder is ahead of the initiator: there is no older
/// SA then to lose packets from.)
fn check_no_gap(p: &Pair) -> Result<usize, String> {
    let mut inbound: [HashSet<u32>; 2] = Default::default();
    let mut outbound: [Vec<u32>; 2] = Default::default();
    let mut up = false;
    for (step, &(s, index)) in p.action_order.iter().enumerate() {
        match &p.records[s].actions[index].1 {
            KernelAction::InstallChildSa(i) => {
                inbound[s].insert(i.inbound.spi);
                if !i.defer_outbound {
                    outbound[s].push(i.outbound.spi);
                }
            }
            KernelAction::ActivateOutbound(r) => outbound[s].push(r.outbound_spi),
            KernelAction::DeleteChildSa(r) => {
                inbound[s].remove(&r.inbound_spi);
                outbound[s].retain(|spi| *spi != r.outbound_spi);
            }
        }
        up = up || (!inbound[0].is_empty() && !inbound[1].is_empty());
        for side in (0..2).filter(|_| up) {
            match outbound[side].last() {
                Some(spi) if !inbound[1 - side].contains(spi) => {
                    return Err(format!(
                        "step {step}: side {side} sends on {spi:08x}, which the peer cannot receive"
                    ))
                }
                None if !inbound[side].is_empty() => {
                    return Err(format!("step {step}: side {side} has no outbound SA"))
                }
                _ => {}
            }
        }
    }
    Ok(p.action_order.len())
}

fn count(p: &Pair, side: usize, f: impl Fn(&Event) -> bool) -> usize {
    p.records[side].events.iter().filter(|(_, e)| f(e)).count()
}

fn rekeyed(e: &Event) -> bool {
    matches!(e, Event::ChildRekeyed { .. })
}

fn failed(e: &Event) -> bool {
    matches!(e, Event::RekeyFailed { .. })
}

/// Both sides hold exactly one Child SA and they are the two halves of one pair.
fn one_matching_pair(p: &Pair) {
    let children = |side: usize| -> Vec<(u32, u32)> {
        (p.engines[side].status().iter())
            .flat_map(|s| s.children.iter().map(|c| (c.spi_in, c.spi_out)))
            .collect()
    };
    let (a, b) = (children(0), children(1));
    assert_eq!((a.len(), b.len()), (1, 1), "a {a:x?} b {b:x?}");
    assert_eq!(a[0], (b[0].1, b[0].0), "SPIs mirror");
}

#[test]
fn child_sas_are_rekeyed_before_they_expire_without_a_gap() {
    let mut p = pair("aes128gcm16", "aes128gcm16", 600);
    p.run_until(SECS(3 * 3600));
    let rekeys = count(&p, 0, rekeyed) + count(&p, 1, rekeyed);
    // Each rekey is logged by both sides; every 540..600 s over three hours.
    assert!(rekeys >= 2 * 17, "{rekeys} rekey events");
    assert_eq!(count(&p, 0, failed) + count(&p, 1, failed), 0);
    // Both sides' timers run: each side started some of the rekeys.
    let started = |side: usize| {
        (p.records[side].actions.iter())
            .filter(|(_, k)| matches!(k, KernelAction::InstallChildSa(i) if !i.defer_outbound))
            .count()
    };
    assert!(
        started(0) > 1 && started(1) > 1,
        "{} / {}",
        started(0),
        started(1)
    );
    check_no_gap(&p).unwrap();
    one_matching_pair(&p);
}

#[test]
fn the_responder_sends_on_the_new_sa_only_once_the_old_one_is_deleted() {
    let mut p = pair("aes128gcm16", "aes128gcm16", 3600);
    let before = p.action_order.len();
    p.engines[0].rekey_children(p.now, TO_B).unwrap();
    p.settle();
    let b_actions: Vec<&KernelAction> = (p.action_order[before..].iter())
        .filter(|(s, _)| *s == 1)
        .map(|&(s, i)| &p.records[s].actions[i].1)
        .collect();
    assert!(
        matches!(
            b_actions.as_slice(),
            [
                KernelAction::InstallChildSa(i),
                KernelAction::ActivateOutbound(_),
                KernelAction::DeleteChildSa(_)
            ] if i.defer_outbound
        ),
        "{b_actions:#?}"
    );
    check_no_gap(&p).unwrap();
    one_matching_pair(&p);
}

#[test]
fn a_rekey_with_pfs_derives_the_same_keys_on_both_sides() {
    let mut p = pair("aes256gcm16-x25519", "aes256gcm16-x25519", 3600);
    p.engines[1].rekey_children(p.now, TO_A).unwrap();
    p.settle();
    assert_eq!((count(&p, 0, rekeyed), count(&p, 1, rekeyed)), (1, 1));
    let install = |side: usize| {
        (p.records[side].actions.iter().rev())
            .find_map(|(_, k)| match k {
                KernelAction::InstallChildSa(i) => Some(i),
                _ => None,
            })
            .unwrap()
    };
    let (a, b) = (install(0), install(1));
    assert!(a.algorithms.dh.is_some(), "PFS group chosen");
    assert_eq!(a.outbound.spi, b.inbound.spi);
    assert_eq!(
        a.outbound.encryption_key.expose(),
        b.inbound.encryption_key.expose()
    );
    assert_eq!(
        b.outbound.encryption_key.expose(),
        a.inbound.encryption_key.expose()
    );
    // Fresh keys, not the first Child SA's.
    let first = (p.records[0].actions.iter())
        .find_map(|(_, k)| match k {
            KernelAction::InstallChildSa(i) => Some(i),
            _ => None,
        })
        .unwrap();
    assert_ne!(
        first.outbound.encryption_key.expose(),
        a.outbound.encryption_key.expose()
    );
    check_no_gap(&p).unwrap();
    one_matching_pair(&p);
}

#[test]
fn a_pfs_mismatch_keeps_the_old_sa_and_retries() {
    let mut p = pair("aes128gcm16-x25519", "aes128gcm16", 3600);
    p.engines[0].rekey_children(p.now, TO_B).unwrap();
    p.settle();
    assert_eq!(count(&p, 0, failed), 1, "initiator logs the refusal");
    assert_eq!(count(&p, 1, failed), 1, "responder logs why it refused");
    assert_eq!((p.children(0), p.children(1)), (1, 1), "the old SA stays");
    p.run_until(p.elapsed() + SECS(25));
    assert!(count(&p, 0, failed) >= 2, "retried");
    check_no_gap(&p).unwrap();
}

#[test]
fn lost_and_duplicated_rekey_messages_change_nothing() {
    let mut p = pair("aes128gcm16", "aes128gcm16", 3600);
    // The request reaches b, its answer is lost: a retransmits, b answers from its cache.
    p.down[0] = true;
    p.engines[0].rekey_children(p.now, TO_B).unwrap();
    p.settle();
    p.down[0] = false;
    p.run_until(p.elapsed() + SECS(10));
    assert_eq!((count(&p, 0, rekeyed), count(&p, 1, rekeyed)), (1, 1));
    let b_installs = |p: &Pair| {
        (p.records[1].actions.iter())
            .filter(|(_, k)| matches!(k, KernelAction::InstallChildSa(_)))
            .count()
    };
    // Every datagram a sent arrives once more, in order: nothing is installed twice.
    let installs = b_installs(&p);
    let sent: Vec<Vec<u8>> = p.records[0].sent.iter().map(|(_, d)| d.clone()).collect();
    for datagram in sent {
        let (from, to) = (
            common::peers::addr(common::peers::A, 500),
            common::peers::addr(common::peers::B, 500),
        );
        p.engines[1].handle_datagram(p.now, to, from, &datagram);
    }
    p.settle();
    assert_eq!(b_installs(&p), installs);
    check_no_gap(&p).unwrap();
    one_matching_pair(&p);
}

#[test]
fn simultaneous_rekeys_from_both_sides_leave_one_pair() {
    let mut outcomes = HashSet::new();
    for _ in 0..24 {
        let mut p = pair("aes128gcm16", "aes128gcm16", 3600);
        // Both requests are on the wire before either is answered.
        p.engines[0].rekey_children(p.now, TO_B).unwrap();
        p.engines[1].rekey_children(p.now, TO_A).unwrap();
        p.settle();
        p.run_until(p.elapsed() + SECS(30));
        check_no_gap(&p).unwrap();
        one_matching_pair(&p);
        assert_eq!(count(&p, 0, failed) + count(&p, 1, failed), 0);
        // Which exchange won depends on the nonces: record whose SA survived.
        let survivor = p.engines[0].status()[0].children[0].spi_in;
        let made_by_a = (p.records[0].actions.iter()).any(|(_, k)| {
            matches!(k, KernelAction::InstallChildSa(i) if !i.defer_outbound && i.inbound.spi == survivor)
        });
        outcomes.insert(made_by_a);
    }
    assert_eq!(
        outcomes.len(),
        2,
        "both sides' exchanges won some of the time"
    );
}

#[test]
fn rekeys_follow_rekey_time_and_no_faster() {
    // rekey_time 60 s with up to 6 s of jitter: over 10 minutes, 10 to 11 rekeys.
    let mut p = pair("aes128gcm16", "aes128gcm16", 60);
    p.run_until(SECS(600));
    let rekeys = count(&p, 0, rekeyed);
    assert!((9..=12).contains(&rekeys), "{rekeys} rekeys in 10 minutes");
}

#[test]
fn a_soft_expire_from_the_kernel_rekeys_the_child_at_once() {
    // A byte or packet limit: only the kernel counts it, and says so with a soft expire.
    let mut p = pair("aes128gcm16", "aes128gcm16", 3600);
    let (spi_in, spi_out) = {
        let status = p.engines[1].status();
        (status[0].children[0].spi_in, status[0].children[0].spi_out)
    };
    // b's outbound SA goes to a. The same SPI towards another address is not ours.
    p.engines[1].child_sa_expired(p.now, ip(B), spi_out, false);
    p.run_until(p.elapsed() + SECS(5));
    assert_eq!(count(&p, 1, rekeyed), 0, "an SA to another destination");
    p.engines[1].child_sa_expired(p.now, ip(A), spi_out, false);
    p.run_until(p.elapsed() + SECS(5));
    assert_eq!((count(&p, 0, rekeyed), count(&p, 1, rekeyed)), (1, 1));
    one_matching_pair(&p);
    assert_ne!(p.engines[1].status()[0].children[0].spi_in, spi_in);
    check_no_gap(&p).unwrap();
    // The same report again, about the SA now gone, changes nothing.
    p.engines[1].child_sa_expired(p.now, ip(A), spi_out, false);
    p.run_until(p.elapsed() + SECS(5));
    assert_eq!(count(&p, 1, rekeyed), 1);
}

#[test]
fn a_hard_expire_from_the_kernel_drops_the_pair_on_both_sides() {
    let mut p = pair("aes128gcm16", "aes128gcm16", 3600);
    let spi_in = p.engines[0].status()[0].children[0].spi_in;
    // a's inbound SA: its destination is a.
    p.engines[0].child_sa_expired(p.now, ip(A), spi_in, true);
    p.run_until(p.elapsed() + SECS(5));
    assert_eq!((p.children(0), p.children(1)), (0, 0));
    let deleted = |e: &Event| matches!(e, Event::ChildDeleted { .. });
    assert_eq!((count(&p, 0, deleted), count(&p, 1, deleted)), (1, 1));
    // The IKE SA itself stays.
    assert_eq!(
        (p.engines[0].status().len(), p.engines[1].status().len()),
        (1, 1)
    );
}

/// Side a's or b's connection with a second Child SA for another pair of subnets (apart
/// from the first: a responder takes the first configured child whose selectors fit).
fn two_children(a: bool) -> EngineConnection {
    let mut c = side(a, "aes128gcm16", 3600);
    let mut second = c.config.children[0].clone();
    second.name = "voice".into();
    let (local, remote) = if a {
        ("172.16.1.0/24", "172.16.2.0/24")
    } else {
        ("172.16.2.0/24", "172.16.1.0/24")
    };
    second.local_ts = vec![routevpn::profile::parse_traffic_selector(local).unwrap()];
    second.remote_ts = vec![routevpn::profile::parse_traffic_selector(remote).unwrap()];
    second.reqid += 1;
    c.config.children.push(second);
    c
}

#[test]
fn further_child_sas_are_asked_for_after_ike_auth_and_rekey_on_their_own() {
    let mut p = Pair::new(
        engine(EngineConfig::default(), two_children(true)),
        engine(EngineConfig::default(), two_children(false)),
    );
    p.engines[0].initiate(p.now, TO_B).unwrap();
    p.run_until(SECS(5));
    let children = |p: &Pair, side: usize| -> Vec<(String, String)> {
        let mut all: Vec<(String, String)> = (p.engines[side].status().iter())
            .flat_map(|s| s.children.iter())
            .map(|c| (c.name.clone(), format!("{:?}", c.local_ts)))
            .collect();
        all.sort();
        all
    };
    let names = |p: &Pair, side: usize| -> Vec<String> {
        children(p, side).into_iter().map(|(n, _)| n).collect()
    };
    assert_eq!(names(&p, 0), ["net", "voice"]);
    assert_eq!(names(&p, 1), ["net", "voice"]);
    assert!(
        children(&p, 0)[1].1.contains("172.16.1.0"),
        "{:?}",
        children(&p, 0)
    );
    let installed = |e: &Event| matches!(e, Event::ChildInstalled { .. });
    assert_eq!((count(&p, 0, installed), count(&p, 1, installed)), (2, 2));
    // Both rekey, one after the other over the one IKE SA; and nothing asks for a third.
    p.engines[1].rekey_children(p.now, TO_A).unwrap();
    p.run_until(p.elapsed() + SECS(30));
    assert_eq!((count(&p, 0, rekeyed), count(&p, 1, rekeyed)), (2, 2));
    assert_eq!(names(&p, 0), ["net", "voice"]);
    assert_eq!((count(&p, 0, installed), count(&p, 1, installed)), (2, 2));
    assert_eq!(count(&p, 0, failed) + count(&p, 1, failed), 0);
}
