//! Reconciliation against the in-memory kernel: idempotence, drift repair, exact teardown,
//! rollback on failure and refusal to take over objects routevpn did not create.

mod common;

use std::collections::BTreeSet;

use common::dataplane::{all, host};
use routevpn::apply::objects::{Object, ObjectKey, RouteType};
use routevpn::apply::{self, ApplyError};

#[test]
fn second_apply_changes_nothing() {
    let mut h = host();
    let enabled = all(&h);
    let first = h.apply(&enabled).unwrap();
    assert!(first.created > 50, "{first:?}");
    assert_eq!(first.deleted, 0);
    let second = h.apply(&enabled).unwrap();
    assert_eq!(second.writes, 0, "{:?}", second.log);
}

#[test]
fn defaultroute_and_outer_mtu_come_from_the_kernel() {
    let mut h = host();
    let enabled = all(&h);
    let (_, plan) = apply::apply(&mut h.kernel, &h.tunnels, &enabled, &h.paths).unwrap();
    let dc = plan
        .tunnels
        .iter()
        .find(|t| t.name == "gre-datacenter")
        .unwrap();
    // 9001 - 20 - 8 - 8 - 16 - 16 = 8933 -> 8928 - 2 - 24
    assert_eq!(dc.link.mtu, 8902);
    let resolved = h.kernel.objects.values().any(|o| matches!(o, Object::Policy(p)
        if p.template.src.to_string() == "10.1.1.246" && p.template.dst.to_string() == "198.51.100.20"));
    assert!(resolved, "templates use the egress source address");
}

#[test]
fn drift_is_repaired_with_one_write() {
    let mut h = host();
    let enabled = all(&h);
    h.apply(&enabled).unwrap();
    let key = h
        .kernel
        .objects
        .iter()
        .find(|(_, o)| matches!(o, Object::Route(r) if r.route_type == RouteType::Unicast && r.protocol == 210))
        .map(|(k, _)| k.clone())
        .unwrap();
    h.kernel.objects.remove(&key);
    let repair = h.apply(&enabled).unwrap();
    assert_eq!((repair.writes, repair.created), (1, 1), "{:?}", repair.log);
    assert!(h.kernel.objects.contains_key(&key));
}

#[test]
fn a_deleted_device_comes_back_with_everything_on_it() {
    let mut h = host();
    let enabled = all(&h);
    h.apply(&enabled).unwrap();
    let before = h.kernel.objects.clone();
    let link = ObjectKey::Link {
        name: "vti-telecom".into(),
    };
    h.kernel.objects.remove(&link);
    h.kernel.objects.retain(|_, o| match o {
        Object::Address(a) => a.device != "vti-telecom",
        Object::Route(r) => r.device.as_deref() != Some("vti-telecom"),
        Object::Sysctl(s) => !s.key.contains(".vti-telecom."),
        _ => true,
    });
    h.apply(&enabled).unwrap();
    assert_eq!(h.kernel.objects, before);
}

#[test]
fn teardown_removes_exactly_what_routevpn_made() {
    let mut h = host();
    let pristine = h.kernel.objects.clone();
    h.apply(&all(&h)).unwrap();
    let outcome = h.apply(&BTreeSet::new()).unwrap();
    assert!(outcome.deleted > 0);
    // The user's route survives; the global sysctl is restored to what the host had.
    assert_eq!(h.kernel.objects, pristine);
}

#[test]
fn down_one_tunnel_leaves_the_others_alone() {
    let mut h = host();
    let mut enabled = all(&h);
    h.apply(&enabled).unwrap();
    let before = h.kernel.objects.clone();
    enabled.remove("net-to-net");
    let outcome = h.apply(&enabled).unwrap();
    let removed: Vec<&ObjectKey> = before
        .keys()
        .filter(|k| !h.kernel.objects.contains_key(*k))
        .collect();
    assert!(removed.iter().any(|k| **k
        == ObjectKey::Link {
            name: "vti-office-b".into()
        }));
    for (key, object) in &h.kernel.objects {
        if !matches!(object, Object::Nft(_)) {
            assert_eq!(before.get(key), Some(object), "{key} changed");
        }
    }
    // Link deletion takes its dependants along: only the link, its policies, its blackhole
    // route (no device) and the shared nftables table are written.
    assert!(outcome.writes < 10, "{:?}", outcome.log);
}

#[test]
fn changing_one_tunnel_touches_only_its_objects() {
    let mut h = host();
    let enabled = all(&h);
    h.apply(&enabled).unwrap();
    let t = h
        .tunnels
        .iter_mut()
        .find(|t| t.name == "vti-telecom")
        .unwrap();
    t.interface.mtu = routevpn::model::MtuSetting::Fixed(1300);
    let outcome = h.apply(&enabled).unwrap();
    // The link's MTU and the nftables MSS caps derived from it.
    assert_eq!(outcome.writes, 2, "{:?}", outcome.log);
    assert!(outcome.log.contains(&"update link vti-telecom".to_string()));
}

#[test]
fn a_refused_change_rolls_back_everything() {
    let mut h = host();
    let pristine = h.kernel.objects.clone();
    let victim = ObjectKey::Link {
        name: "xfrm-cloud".into(),
    };
    h.kernel.fail_on.insert(victim);
    let err = h.apply(&all(&h)).unwrap_err();
    match &err {
        ApplyError::Kernel { error, rollback } => {
            assert!(rollback.is_empty(), "{rollback:?}");
            assert_eq!(error.to_string(), "link xfrm-cloud: injected failure");
        }
        other => panic!("{other}"),
    }
    assert_eq!(h.kernel.objects, pristine);
    // Nothing recorded as owned either: the next apply starts clean.
    h.apply(&all(&h)).unwrap();
}

#[test]
fn rollback_of_a_second_apply_restores_the_first() {
    let mut h = host();
    let enabled = all(&h);
    h.apply(&enabled).unwrap();
    let applied = h.kernel.objects.clone();
    let t = h
        .tunnels
        .iter_mut()
        .find(|t| t.name == "net-to-net")
        .unwrap();
    t.remote = "198.51.100.31".parse().unwrap();
    // The link is recreated (new remote) and its routes with it before this policy update fails.
    let policy = h
        .kernel
        .objects
        .iter()
        .find(|(_, o)| matches!(o, Object::Policy(p) if p.template.dst.to_string() == "198.51.100.30"))
        .map(|(k, _)| k.clone())
        .unwrap();
    h.kernel.fail_on.insert(policy);
    let err = h.apply(&enabled).unwrap_err();
    assert!(
        matches!(&err, ApplyError::Kernel { rollback, .. } if rollback.is_empty()),
        "{err}"
    );
    assert_eq!(h.kernel.objects, applied);
}

#[test]
fn foreign_objects_are_never_taken_over() {
    let mut h = host();
    let foreign = Object::Link(routevpn::apply::objects::Link {
        name: "gre1".into(),
        kind: routevpn::apply::objects::LinkKind::Gre {
            local: "192.0.2.1".parse().unwrap(),
            remote: "192.0.2.2".parse().unwrap(),
            key: None,
            ttl: 64,
        },
        mtu: 1476,
        multicast: false,
        up: true,
    });
    h.kernel.objects.insert(foreign.key(), foreign);
    let pristine = h.kernel.objects.clone();
    let err = h.apply(&all(&h)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "link gre1 already exists and was not created by routevpn; remove or rename it"
    );
    assert_eq!(h.kernel.objects, pristine);
}

mod convergence {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// Whatever happened to routevpn's objects by hand (deleted, altered), one apply
        /// restores exactly the planned state and the next one writes nothing.
        #[test]
        fn one_apply_converges_from_any_drift(
            removals in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
            alterations in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
            subset in proptest::collection::vec(any::<bool>(), 7),
        ) {
            let mut h = host();
            let names: Vec<String> = h.tunnels.iter().map(|t| t.name.clone()).collect();
            let enabled: BTreeSet<String> = names.iter().zip(&subset).filter(|(_, on)| **on).map(|(n, _)| n.clone()).collect();
            let pristine = h.kernel.objects.clone();
            h.apply(&all(&h)).unwrap();
            // Drift only what routevpn made; the host's own objects are not its business.
            let keys: Vec<ObjectKey> = h.kernel.objects.keys().filter(|k| !pristine.contains_key(*k)).cloned().collect();
            for index in &removals {
                let key = index.get(&keys);
                h.kernel.objects.remove(key);
            }
            for index in &alterations {
                let key = index.get(&keys).clone();
                if let Some(Object::Link(link)) = h.kernel.objects.get_mut(&key) {
                    link.mtu -= 1;
                }
                if let Some(Object::Sysctl(s)) = h.kernel.objects.get_mut(&key) {
                    s.value = "7".into();
                }
                if let Some(Object::Route(r)) = h.kernel.objects.get_mut(&key) {
                    r.src = None;
                }
            }
            // Removing a link by hand removes what lives on it, as the kernel does.
            let links: Vec<String> = keys.iter().filter_map(|k| match k {
                ObjectKey::Link { name } if !h.kernel.objects.contains_key(k) => Some(name.clone()),
                _ => None,
            }).collect();
            h.kernel.objects.retain(|_, o| match o {
                Object::Address(a) => !links.contains(&a.device),
                Object::Route(r) => r.device.as_ref().is_none_or(|d| !links.contains(d)),
                Object::Sysctl(s) => !links.iter().any(|l| s.key.contains(&format!(".{l}."))),
                _ => true,
            });

            h.apply(&enabled).unwrap();
            let again = h.apply(&enabled).unwrap();
            prop_assert_eq!(again.writes, 0, "{:?}", again.log);

            // What remains is exactly the host's own objects plus the enabled tunnels' plan.
            let mut fresh = host();
            fresh.apply(&enabled).unwrap();
            prop_assert_eq!(&h.kernel.objects, &fresh.kernel.objects);
        }
    }
}
