//! The planner over the example profiles: values computed by hand, invariants every plan keeps.

use std::path::PathBuf;

use routevpn::model::Tunnel;
use routevpn::plan::{self, Direction, LinkKind, RouteKind, FAIL_CLOSED_METRIC, ROUTE_PROTOCOL};
use routevpn::profile::{self, Options};

fn examples() -> Vec<Tunnel> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("profiles");
    let loaded = profile::load(&[dir], Options::default());
    let errors: Vec<String> = loaded.errors().map(ToString::to_string).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    loaded.tunnels.expect("examples load")
}

fn tunnel_plan<'p>(plan: &'p plan::Plan, name: &str) -> &'p plan::TunnelPlan {
    plan.tunnels.iter().find(|t| t.name == name).expect(name)
}

#[test]
fn auto_mtu_of_each_example() {
    let plan = plan::build(&examples(), &plan::Context::default());
    // Outer 1500 IPv4 unless noted; UDP encapsulation is always reserved with nat_traversal=auto.
    let expected = [
        // 1500-20-8-8-16-16 = 1432 -> 1424 (16-byte blocks) - 2
        ("vti-telecom", 1422),
        // GCM: 1500-20-8-8-8-16 = 1440 - 2
        ("net-to-net", 1438),
        ("ospf-a", 1438),
        ("ospf-b", 1438),
        // GCM, GRE header with key (8): 1440 - 2 - 8
        ("gre-behind-nat", 1430),
        // GCM, GRE header without key (4): 1440 - 2 - 4
        ("pim-a", 1434),
        ("pim-b", 1434),
        // CBC/SHA256, GRE inside tunnel mode (20 IP + 4 GRE): 1424 - 2 - 24
        ("gre-datacenter", 1398),
        // IPv6 outer, GCM: 1500-40-8-8-8-16 = 1420 - 2
        ("xfrm-dualstack", 1418),
    ];
    for (name, mtu) in expected {
        let t = tunnel_plan(&plan, name);
        assert_eq!(t.mtu.mtu, mtu, "{name}");
        assert_eq!(t.link.mtu, mtu, "{name}");
        assert_eq!(t.mtu.mss_ipv4, mtu - 40, "{name}");
    }
}

#[test]
fn known_outer_mtu_replaces_the_assumption() {
    let tunnels = examples();
    let mut context = plan::Context::default();
    context.outer_mtu.insert("vti-telecom".into(), 1492);
    let plan = plan::build(&tunnels, &context);
    let t = tunnel_plan(&plan, "vti-telecom");
    // 1492-20-8-8-16-16 = 1424 -> 1424 - 2
    assert_eq!(t.mtu.mtu, 1422);
    assert!(!t.mtu.outer_mtu_assumed);
    context.outer_mtu.insert("vti-telecom".into(), 9000);
    let plan = plan::build(&tunnels, &context);
    // 9000-60 = 8940 -> 8928 - 2
    assert_eq!(tunnel_plan(&plan, "vti-telecom").mtu.mtu, 8926);
}

#[test]
fn every_route_has_one_fail_closed_blackhole() {
    let plan = plan::build(&examples(), &plan::Context::default());
    let all: Vec<&plan::RoutePlan> = plan.tunnels.iter().flat_map(|t| &t.routes).collect();
    for t in &plan.tunnels {
        for r in t.routes.iter().filter(|r| r.kind == RouteKind::Unicast) {
            assert_eq!(r.device.as_deref(), Some(t.link.name.as_str()));
            // A primary and its backup share theirs: one kernel route.
            let blackholes = (all.iter()).filter(|b| {
                b.kind == RouteKind::Blackhole
                    && b.to == r.to
                    && b.table == r.table
                    && b.metric == FAIL_CLOSED_METRIC
            });
            assert_eq!(blackholes.count(), 1, "{}: {}", t.name, r.to);
        }
        assert!(t.routes.iter().all(|r| r.protocol == ROUTE_PROTOCOL));
    }
}

/// The unicast routes to `to` across the plan: (tunnel, metric).
fn unicast_to(plan: &plan::Plan, to: &str) -> Vec<(String, u32)> {
    let to: ipnet::IpNet = to.parse().unwrap();
    (plan.tunnels.iter())
        .flat_map(|t| t.routes.iter().map(move |r| (t, r)))
        .filter(|(_, r)| r.kind == RouteKind::Unicast && r.to == to)
        .map(|(t, r)| (t.name.clone(), r.metric))
        .collect()
}

#[test]
fn a_primary_and_its_backup_route_one_prefix_with_their_own_metrics() {
    let plan = plan::build(&examples(), &plan::Context::default());
    assert_eq!(
        unicast_to(&plan, "10.70.0.0/16"),
        [("cloud-backup".into(), 200), ("cloud-primary".into(), 100)]
    );
    for name in ["cloud-primary", "cloud-backup"] {
        assert!(tunnel_plan(&plan, name).link.up, "{name}");
    }
}

#[test]
fn a_tunnel_without_sas_that_withdraws_loses_its_routes_and_link_but_not_the_blackhole() {
    let tunnels = examples();
    // cloud-primary withdraws; net-to-net keeps (the default) whatever its SAs do.
    let mut context = plan::Context {
        without_sas: ["cloud-primary".into(), "net-to-net".into()].into(),
        ..Default::default()
    };
    let plan = plan::build(&tunnels, &context);
    let primary = tunnel_plan(&plan, "cloud-primary");
    assert!(!primary.link.up);
    let text = plan::render_text(&plan);
    assert!(
        text.contains("vti-cloud-1 vti")
            && text.contains("down  (no CHILD SA: on_sa_loss = withdraw)"),
        "{text}"
    );
    assert_eq!(
        unicast_to(&plan, "10.70.0.0/16"),
        [("cloud-backup".into(), 200)],
        "the backup carries the prefix"
    );
    let blackhole = |p: &plan::Plan| {
        (p.tunnels.iter().flat_map(|t| &t.routes))
            .filter(|r| r.kind == RouteKind::Blackhole && r.to.to_string() == "10.70.0.0/16")
            .count()
    };
    assert_eq!(blackhole(&plan), 1, "fail-closed stays");
    let kept = tunnel_plan(&plan, "net-to-net");
    assert!(kept.link.up);
    assert_eq!(unicast_to(&plan, "192.168.30.0/24").len(), 1);

    // Both tunnels of the pair gone: only the blackhole is left for the prefix.
    context.without_sas.insert("cloud-backup".into());
    let plan = plan::build(&tunnels, &context);
    assert!(unicast_to(&plan, "10.70.0.0/16").is_empty());
    assert_eq!(blackhole(&plan), 1);
    // The blackhole does not depend on which tunnel plans it: with the backup alone, it
    // plans its own.
    let backup: Vec<Tunnel> = tunnels
        .into_iter()
        .filter(|t| t.name == "cloud-backup")
        .collect();
    let plan = plan::build(&backup, &plan::Context::default());
    assert_eq!(blackhole(&plan), 1);
}

#[test]
fn a_withdrawing_ipv6_tunnel_keeps_its_addresses_while_down() {
    let mut tunnels = examples();
    let key = "net.ipv6.conf.xfrm-cloud.keep_addr_on_down";
    let sysctl = |tunnels: &[Tunnel]| {
        let plan = plan::build(tunnels, &plan::Context::default());
        let t = tunnel_plan(&plan, "xfrm-dualstack");
        (t.sysctls.iter())
            .find(|s| s.key == key)
            .map(|s| s.value.clone())
    };
    assert_eq!(sysctl(&tunnels), None);
    let dual = tunnels
        .iter_mut()
        .find(|t| t.name == "xfrm-dualstack")
        .unwrap();
    dual.on_sa_loss = routevpn::model::OnSaLoss::Withdraw;
    assert_eq!(sysctl(&tunnels).as_deref(), Some("1"));
}

#[test]
fn policies_carry_the_links_mark_or_if_id() {
    let plan = plan::build(&examples(), &plan::Context::default());
    for t in &plan.tunnels {
        assert!(!t.policies.is_empty(), "{} has no policies", t.name);
        match &t.link.kind {
            LinkKind::Vti { mark, .. } => {
                assert!(t
                    .policies
                    .iter()
                    .all(|p| p.mark == Some(*mark) && p.if_id.is_none()));
                assert!(t.ike.children.iter().all(|c| c.mark == Some(*mark)));
            }
            LinkKind::Xfrm { if_id, .. } => {
                assert!(t
                    .policies
                    .iter()
                    .all(|p| p.if_id == Some(*if_id) && p.mark.is_none()));
            }
            LinkKind::Gre { .. } => {
                assert!(t
                    .policies
                    .iter()
                    .all(|p| p.mark.is_none() && p.if_id.is_none()));
            }
        }
        // Every child is covered out and in.
        for c in &t.ike.children {
            for dir in [Direction::Out, Direction::In] {
                assert!(t
                    .policies
                    .iter()
                    .any(|p| p.child == c.name && p.direction == dir));
            }
        }
    }
}

#[test]
fn gre_transport_protects_only_gre_between_outer_endpoints() {
    let plan = plan::build(&examples(), &plan::Context::default());
    let t = tunnel_plan(&plan, "gre-behind-nat");
    assert_eq!(t.policies.len(), 2, "out and in, no fwd in transport mode");
    for p in &t.policies {
        assert_eq!(p.protocol, Some(47));
        let (src, dst) = (p.src.to_string(), p.dst.to_string());
        match p.direction {
            Direction::Out => assert_eq!(
                (src.as_str(), dst.as_str()),
                ("10.20.0.10/32", "198.51.100.40/32")
            ),
            Direction::In => assert_eq!(
                (src.as_str(), dst.as_str()),
                ("198.51.100.40/32", "10.20.0.10/32")
            ),
            Direction::Fwd => panic!("fwd policy in transport mode"),
        }
    }
}

#[test]
fn allocations_survive_adding_and_removing_tunnels() {
    let all = examples();
    let full = plan::build(&all, &plan::Context::default());
    let without: Vec<Tunnel> = all.iter().filter(|t| t.name != "ospf-a").cloned().collect();
    // Without state (a fresh host) and with the previous apply's allocations pinned.
    for previous in [plan::Allocations::default(), full.allocations.clone()] {
        let context = plan::Context {
            previous,
            ..Default::default()
        };
        let fewer = plan::build(&without, &context);
        for (name, mark) in &fewer.allocations.marks {
            assert_eq!(full.allocations.marks.get(name), Some(mark), "{name}");
        }
        for (name, reqid) in &fewer.allocations.reqids {
            assert_eq!(full.allocations.reqids.get(name), Some(reqid), "{name}");
        }
        assert_eq!(fewer.allocations.if_ids, full.allocations.if_ids);
    }
}

#[test]
fn nftables_table_holds_snat_mss_and_accepts() {
    let plan = plan::build(&examples(), &plan::Context::default());
    let script = plan.nftables.to_nft_script();
    assert!(script.starts_with("table inet routevpn {"));
    assert!(
        script.contains("oifname \"vti-telecom\" ip daddr 192.168.255.0/24 snat ip to 192.168.1.1")
    );
    // The datacenter's interesting traffic is carried by a policy-based child, not a device.
    assert!(script.contains("\t\tip daddr 100.15.30.0/24 snat ip to 10.45.8.17\n"));
    assert!(script
        .contains("oifname \"gre1\" tcp flags syn / syn,rst tcp option maxseg size set rt mtu"));
    assert!(script.contains("iifname \"vti-telecom\" meta nfproto ipv4 tcp flags syn / syn,rst tcp option maxseg size > 1382 tcp option maxseg size set 1382"));
    assert!(script.contains("iifname \"xfrm-cloud\" accept"));
}

#[test]
fn gre_keepalive_and_multicast_sysctls() {
    let plan = plan::build(&examples(), &plan::Context::default());
    let t = tunnel_plan(&plan, "gre-datacenter");
    let get = |key: &str| {
        t.sysctls
            .iter()
            .find(|s| s.key == key)
            .map(|s| s.value.as_str())
    };
    assert_eq!(get("net.ipv4.conf.gre1.accept_local"), Some("1"));
    assert_eq!(get("net.ipv4.conf.gre1.rp_filter"), Some("0"));
    assert_eq!(get("net.ipv4.conf.gre1.forwarding"), Some("1"));
    assert!(t.link.multicast);
    // The inner GRE endpoint becomes a local address so decrypted GRE reaches the device.
    assert!(t
        .addresses
        .iter()
        .any(|a| a.address.to_string() == "10.44.6.1/32"));
    let vti = tunnel_plan(&plan, "vti-telecom");
    assert!(vti
        .sysctls
        .iter()
        .any(|s| s.key == "net.ipv4.conf.vti-telecom.disable_policy" && s.value == "1"));
}

#[test]
fn pim_examples_are_multicast_and_route_through_their_pim_neighbor() {
    let plan = plan::build(&examples(), &plan::Context::default());
    for (name, device, lan, gateway) in [
        ("pim-a", "gre-to-b", "10.2.0.0/24", "169.254.104.2"),
        ("pim-b", "gre-to-a", "10.1.0.0/24", "169.254.104.1"),
    ] {
        let t = tunnel_plan(&plan, name);
        assert!(t.link.multicast, "{name}");
        let rp_filter = format!("net.ipv4.conf.{device}.rp_filter");
        assert!(
            t.sysctls
                .iter()
                .any(|s| s.key == rp_filter && s.value == "0"),
            "{name}"
        );
        let route = (t.routes.iter())
            .find(|r| r.kind == RouteKind::Unicast)
            .expect(name);
        assert_eq!(route.to.to_string(), lan, "{name}");
        // pimd sends its joins to the gateway: the peer's end of the device's /30.
        let via = route.via.expect("a gateway");
        assert_eq!(via.to_string(), gateway, "{name}");
        assert!(
            t.addresses.iter().any(|a| a.address.contains(&via)),
            "{name}"
        );
    }
}

#[test]
fn plan_is_serializable_and_deterministic() {
    let tunnels = examples();
    let a = serde_json::to_string(&plan::build(&tunnels, &plan::Context::default())).unwrap();
    let b = serde_json::to_string(&plan::build(&tunnels, &plan::Context::default())).unwrap();
    assert_eq!(a, b);
    let text = plan::render_text(&plan::build(&tunnels, &plan::Context::default()));
    // The key file does not exist here: its path is not shown (see the test below).
    assert!(text.contains("tunnel vti-telecom (") && text.contains("psk <redacted>"));
}

#[test]
fn secret_file_paths_are_shown_only_once_they_name_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let profile = |name: &str, address: u8, psk_file: &str| {
        let text = format!(
            "kind = \"xfrm\"\nlocal = \"192.0.2.1\"\nremote = \"198.51.100.{address}\"\n\
             [ike]\npsk_file = \"{psk_file}\"\n"
        );
        std::fs::write(dir.path().join(format!("{name}.toml")), text).unwrap();
    };
    // A key pasted where its file name belongs, and a real key file.
    profile("pasted", 1, "MySecretKey123");
    profile("real", 2, "real.psk");
    std::fs::write(
        dir.path().join("real.psk"),
        "0x00112233445566778899aabbccddeeff\n",
    )
    .unwrap();
    let loaded = profile::load(
        &[dir.path().to_path_buf()],
        Options {
            insecure_secrets: true,
        },
    );
    let tunnels = loaded
        .tunnels
        .expect("a missing key file is only a warning");
    for d in &loaded.diagnostics {
        assert!(!d.to_string().contains("MySecretKey123"), "{d}");
    }
    let plan = plan::build(&tunnels, &plan::Context::default());
    let text = plan::render_text(&plan);
    let json = serde_json::to_string(&plan).unwrap();
    for shown in [&text, &json] {
        assert!(!shown.contains("MySecretKey123"), "{shown}");
    }
    let real = dir.path().join("real.psk").display().to_string();
    assert!(text.contains("psk <redacted>"), "{text}");
    assert!(text.contains(&format!("psk {real}")), "{text}");
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let psk_files: Vec<&str> = value["tunnels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["ike"]["auth"]["local"]["file"].as_str().unwrap())
        .collect();
    assert_eq!(psk_files, ["<redacted>", real.as_str()]);
}

#[test]
fn the_profile_file_name_is_shown_escaped() {
    // `name` makes any file name acceptable; the plan still names the file.
    let dir = tempfile::tempdir().unwrap();
    let text =
        "name = \"lab\"\nkind = \"xfrm\"\nremote = \"198.51.100.1\"\n[ike]\npsk_file = \"k\"\n";
    std::fs::write(dir.path().join("lab\u{1b}[2J.toml"), text).unwrap();
    let loaded = profile::load(&[dir.path().to_path_buf()], Options::default());
    let tunnels = loaded.tunnels.expect("the profile loads");
    let text = plan::render_text(&plan::build(&tunnels, &plan::Context::default()));
    assert!(!text.contains('\u{1b}'), "{text:?}");
    assert!(text.contains("lab\\u{1b}[2J.toml)"), "{text}");
}
