//! `on_sa_loss = "withdraw"` in-process, as the daemon runs it: side a's engine (simulated
//! clock) installs and loses its CHILD SA; the daemon's pieces (the SA record, the set of
//! tunnels without SAs, the apply that follows) turn that into routes in an in-memory
//! kernel. The example pair cloud-primary / cloud-backup carries 10.70.0.0/16.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::dataplane::{all, host, Host};
use common::peers::{connection, dpd, engine, without_rekey, Pair, TO_B};
use routevpn::apply::kernel::FakeKernel;
use routevpn::apply::objects::{Object, ObjectKey, RouteType};
use routevpn::daemon::{sa_loss, sas};
use routevpn::ike::engine::{DpdAction, Engine, EngineConfig, KernelAction, StartAction};
use routevpn::model::OnSaLoss;
use routevpn::proposal::parse_ike;

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// The daemon's side of the test: what it installed, and how far it read a's actions.
struct Daemon {
    host: Host,
    installed: sas::Installed,
    done: usize,
}

impl Daemon {
    /// The example profiles, the primary named as the engine's connection. The backup
    /// keeps its route whatever its (here absent) SAs do: it stands for a working tunnel.
    fn new() -> Daemon {
        let mut host = host();
        for t in &mut host.tunnels {
            match t.name.as_str() {
                "cloud-primary" => t.name = TO_B.into(),
                "cloud-backup" => t.on_sa_loss = OnSaLoss::Keep,
                _ => {}
            }
        }
        Daemon {
            host,
            installed: sas::Installed::default(),
            done: 0,
        }
    }

    /// Carries out a's new kernel actions, then applies as the daemon does when the set of
    /// tunnels without SAs may have changed; returns how many kernel writes the apply made.
    fn follow(&mut self, p: &Pair) -> usize {
        for (_, action) in &p.records[0].actions[self.done..] {
            carry_out(&mut self.installed, &mut self.host.kernel, action);
        }
        self.done = p.records[0].actions.len();
        let enabled = all(&self.host);
        let without = sa_loss::without_sas(&self.host.tunnels, &enabled, &self.installed);
        let h = &mut self.host;
        let (outcome, _) = routevpn::apply::apply_knowing_sas(
            &mut h.kernel,
            &h.tunnels,
            &enabled,
            &without,
            &h.paths,
        )
        .unwrap();
        outcome.writes
    }

    /// Carries out a's new kernel actions one at a time, as if each came in a batch of its
    /// own (stricter than the daemon); returns whether the primary lacked SAs after any.
    fn ever_without_sas(&mut self, p: &Pair) -> bool {
        let enabled = all(&self.host);
        let mut ever = false;
        for (_, action) in &p.records[0].actions[self.done..] {
            carry_out(&mut self.installed, &mut self.host.kernel, action);
            let without = sa_loss::without_sas(&self.host.tunnels, &enabled, &self.installed);
            ever |= without.contains(TO_B);
        }
        self.done = p.records[0].actions.len();
        ever
    }

    /// The kernel's routes to 10.70.0.0/16: (type, device, metric).
    fn routes(&self) -> BTreeSet<(RouteType, Option<String>, u32)> {
        let to: ipnet::IpNet = "10.70.0.0/16".parse().unwrap();
        (self.host.kernel.objects.values())
            .filter_map(|o| match o {
                Object::Route(r) if r.to == to => Some((r.route_type, r.device.clone(), r.metric)),
                _ => None,
            })
            .collect()
    }

    fn primary_up(&self) -> bool {
        let key = ObjectKey::Link {
            name: "vti-cloud-1".into(),
        };
        match &self.host.kernel.objects[&key] {
            Object::Link(link) => link.up,
            other => panic!("{other:?}"),
        }
    }
}

/// What the daemon's drain does with one kernel action of the engine.
fn carry_out(installed: &mut sas::Installed, kernel: &mut FakeKernel, action: &KernelAction) {
    match action {
        KernelAction::InstallChildSa(i) => installed.install(kernel, i, 32).unwrap(),
        KernelAction::ActivateOutbound(c) => installed.activate_outbound(kernel, c).unwrap(),
        KernelAction::DeleteChildSa(c) => assert!(installed.remove(kernel, c).is_empty()),
    }
}

/// Side a: initiates, DPD every 30 s, restarts after 150 s without an answer.
fn a(rekey: bool) -> Engine {
    let c = connection(
        true,
        dpd(30, 150, DpdAction::Restart),
        StartAction::Start,
        StartAction::None,
    );
    engine(
        EngineConfig::default(),
        if rekey { c } else { without_rekey(c) },
    )
}

/// Side b: answers only.
fn b() -> Engine {
    let c = connection(
        false,
        dpd(0, 150, DpdAction::Clear),
        StartAction::None,
        StartAction::None,
    );
    engine(EngineConfig::default(), without_rekey(c))
}

/// A pair with side a `rekey`ing or not, its tunnel up, and the daemon following it.
fn established(rekey: bool) -> (Pair, Daemon) {
    let mut p = Pair::new(a(rekey), b());
    let mut d = Daemon::new();
    p.engines[0].initiate(p.now, TO_B).unwrap();
    p.settle();
    assert!(d.follow(&p) > 0);
    assert!(d.primary_up());
    assert_eq!(d.routes(), [primary(), backup(), blackhole()].into());
    (p, d)
}

/// The daemon follows a's actions: the primary is withdrawn, the backup carries the prefix.
fn assert_withdrawn(p: &Pair, d: &mut Daemon) {
    assert!(d.follow(p) > 0);
    assert!(!d.primary_up(), "routing daemons see the device down");
    assert_eq!(d.routes(), [backup(), blackhole()].into());
}

fn primary() -> (RouteType, Option<String>, u32) {
    (RouteType::Unicast, Some("vti-cloud-1".into()), 100)
}

fn backup() -> (RouteType, Option<String>, u32) {
    (RouteType::Unicast, Some("vti-cloud-2".into()), 200)
}

fn blackhole() -> (RouteType, Option<String>, u32) {
    (
        RouteType::Blackhole,
        None,
        routevpn::plan::FAIL_CLOSED_METRIC,
    )
}

#[test]
fn routes_and_link_follow_the_child_sas_and_the_backup_takes_over_meanwhile() {
    let mut p = Pair::new(a(false), b());
    let mut d = Daemon::new();

    // Before any SA: the primary is down and withdrawn, the backup carries the prefix.
    d.follow(&p);
    assert!(!d.primary_up());
    assert_eq!(d.routes(), [backup(), blackhole()].into());

    p.engines[0].initiate(p.now, TO_B).unwrap();
    p.settle();
    assert!(d.follow(&p) > 0);
    assert!(d.primary_up());
    assert_eq!(d.routes(), [primary(), backup(), blackhole()].into());

    // The peer dies at t=10 s: until DPD gives up (30 s + 150 s), nothing changes.
    p.run_until(SECS(10));
    p.down[1] = true;
    p.run_until(SECS(179));
    assert_eq!(d.follow(&p), 0);
    assert!(d.primary_up());
    p.run_until(SECS(181));
    assert_withdrawn(&p, &mut d);
    // Applying again, by the daemon or by `routevpn apply` without its word (the state
    // file recorded it), changes nothing: neither fights the withdrawal.
    assert_eq!(d.follow(&p), 0);
    let enabled = all(&d.host);
    let h = &mut d.host;
    let (outcome, _) =
        routevpn::apply::apply(&mut h.kernel, &h.tunnels, &enabled, &h.paths).unwrap();
    assert_eq!(outcome.writes, 0, "{:?}", outcome.log);

    // The peer comes back; a's restart attempts reach it and the routes return.
    p.engines[1] = b();
    p.down[1] = false;
    p.run_until(SECS(400));
    assert_eq!(p.children(0), 1);
    assert!(d.follow(&p) > 0);
    assert!(d.primary_up());
    assert_eq!(d.routes(), [primary(), backup(), blackhole()].into());
}

#[test]
fn rekeying_never_leaves_the_tunnel_without_sas_so_nothing_flaps() {
    let (mut p, mut d) = established(true);
    // Three hours: CHILD SAs rekeyed about every 55 minutes, make-before-break.
    p.run_until(SECS(3 * 3600));
    let deletes = (p.records[0].actions.iter())
        .filter(|(_, k)| matches!(k, KernelAction::DeleteChildSa(_)))
        .count();
    assert!(deletes >= 2, "{deletes} rekeys");
    assert!(!d.ever_without_sas(&p));
    assert_eq!(d.follow(&p), 0);
    assert_eq!(d.routes(), [primary(), backup(), blackhole()].into());
}

#[test]
fn a_hard_expiry_and_a_delete_from_the_peer_withdraw_too() {
    let (mut p, mut d) = established(false);
    // The kernel removed the inbound SA at its hard lifetime (a volume limit, say).
    let inbound = (p.records[0].actions.iter())
        .find_map(|(_, k)| match k {
            KernelAction::InstallChildSa(i) => Some((i.inbound.dst, i.inbound.spi)),
            _ => None,
        })
        .unwrap();
    p.engines[0].child_sa_expired(p.now, inbound.0, inbound.1, true);
    p.settle();
    assert_withdrawn(&p, &mut d);

    // Another tunnel, up; then the peer closes the IKE SA.
    let (mut p, mut d) = established(false);
    p.engines[1].terminate(p.now, common::peers::TO_A).unwrap();
    p.settle();
    assert_eq!(p.children(0), 0);
    assert_withdrawn(&p, &mut d);
}

#[test]
fn a_peer_that_refuses_while_it_starts_is_tried_again() {
    // An endpoint restarting answers before its configuration is loaded (charon before
    // `swanctl --load-all`): NO_PROPOSAL_CHOSEN. The tunnel must not stay down for that.
    let mut starting = connection(
        false,
        dpd(0, 150, DpdAction::Clear),
        StartAction::None,
        StartAction::None,
    );
    starting.config.proposals = vec![parse_ike("aes256gcm16-prfsha384-ecp384", false).unwrap()];
    let mut p = Pair::new(a(false), engine(EngineConfig::default(), starting));
    p.engines[0].initiate(p.now, TO_B).unwrap();
    p.settle();
    assert_eq!(p.children(0), 0, "refused");
    // Its configuration loaded: the next attempt (30 s later) gets through.
    p.engines[1] = b();
    p.run_until(SECS(60));
    assert_eq!(p.children(0), 1);
}
