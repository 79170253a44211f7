//! The rtnetlink backend against the running kernel, each test in a network namespace of its
//! own (namespaces are per thread: `unshare` moves only the test's thread, and sockets and
//! `ip` processes it starts afterwards live there). Needs root; CI runs as root.
//!
//! The host kernel has no VTI, GRE or XFRM interface drivers, so live link tests create a
//! bridge in place of each tunnel (`Rtnl::with_stand_in`); the tunnels' own attributes are
//! checked as message round trips at the end of this file.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;

use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use routevpn::apply::diff::Change;
use routevpn::apply::kernel::{Egress, Kernel, KernelError, Scope};
use routevpn::apply::netlink::rtnl::link::{self, Links};
use routevpn::apply::netlink::rtnl::Rtnl;
use routevpn::apply::netlink::{Backend, LinuxKernel, RouteBackend};
use routevpn::apply::objects::{
    Address, Link, LinkKind, Object, Owned, Route, RouteType, Rule, MAIN_TABLE,
};
use routevpn::apply::state::Paths;
use routevpn::plan::{FAIL_CLOSED_METRIC, ROUTE_PROTOCOL};

/// A fresh network namespace for this thread, with an "outer" veth carrying 192.0.2.1/24 and
/// 2001:db8::1/64 and default routes through them. Nothing is ever sent: the peer end is in
/// the same namespace and the tests only add, read and look up kernel objects.
fn namespace() {
    // SAFETY: plain system calls without memory arguments.
    let root = unsafe { libc::geteuid() } == 0;
    assert!(
        root,
        "tests/netlink_route.rs must run as root (it creates network namespaces); \
         run `sudo -E cargo test --test netlink_route`"
    );
    // SAFETY: as above; affects only the calling thread.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(
        rc,
        0,
        "unshare(CLONE_NEWNET): {}",
        std::io::Error::last_os_error()
    );
    for cmd in [
        "link set lo up",
        "link add out0 type veth peer name out1",
        "link set out0 up",
        "link set out1 up",
        "address add 192.0.2.1/24 dev out0",
        "address add 2001:db8::1/64 dev out0 nodad",
        "route add default via 192.0.2.254",
        "-6 route add default via 2001:db8::fe",
    ] {
        ip(cmd);
    }
}

fn ip(args: &str) -> String {
    let out = Command::new("ip")
        .args(args.split_whitespace())
        .output()
        .expect("ip runs");
    assert!(
        out.status.success(),
        "ip {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn rtnl() -> Rtnl {
    Rtnl::open().unwrap().with_stand_in(InfoKind::Bridge)
}

fn owned(object: Object) -> Owned {
    Owned {
        tunnel: Some("t".into()),
        object,
    }
}

fn create(objects: &[Object]) -> Vec<Change> {
    objects
        .iter()
        .cloned()
        .map(|o| Change::Create(owned(o)))
        .collect()
}

fn delete(objects: &[Object]) -> Vec<Change> {
    objects
        .iter()
        .rev()
        .cloned()
        .map(|object| Change::Delete {
            object,
            implied: vec![],
        })
        .collect()
}

fn run(rtnl: &mut Rtnl, changes: &[Change]) -> Vec<Result<(), KernelError>> {
    let refs: Vec<&Change> = changes.iter().collect();
    rtnl.execute(&refs)
}

fn ok(rtnl: &mut Rtnl, changes: &[Change]) {
    for r in run(rtnl, changes) {
        r.unwrap();
    }
}

fn read(rtnl: &mut Rtnl, links: &[&str]) -> Vec<Object> {
    let scope = Scope {
        links: links.iter().map(|s| s.to_string()).collect(),
        sysctls: BTreeSet::new(),
        all_links: false,
    };
    let mut out = Vec::new();
    rtnl.read(&scope, &mut out).unwrap();
    out
}

/// Objects carrying routevpn's protocol, or on the given device: what a test made.
fn ours(objects: Vec<Object>, device: &str) -> BTreeSet<String> {
    objects
        .into_iter()
        .filter(|o| match o {
            Object::Link(l) => l.name == device,
            Object::Address(a) => {
                a.device == device && !a.address.addr().to_string().starts_with("fe80")
            }
            Object::Route(r) => r.protocol == ROUTE_PROTOCOL,
            Object::Rule(r) => r.protocol == ROUTE_PROTOCOL,
            _ => false,
        })
        .map(|o| format!("{o:?}"))
        .collect()
}

fn set(objects: &[Object]) -> BTreeSet<String> {
    objects.iter().map(|o| format!("{o:?}")).collect()
}

fn tunnel(name: &str, mtu: u32) -> Link {
    Link {
        name: name.into(),
        kind: LinkKind::Vti {
            local: "192.0.2.1".parse().unwrap(),
            remote: "198.51.100.30".parse().unwrap(),
            ikey: 7,
            okey: 7,
        },
        mtu,
        multicast: false,
        up: true,
    }
}

fn address(device: &str, address: &str, peer: Option<&str>) -> Object {
    Object::Address(Address {
        device: device.into(),
        address: address.parse().unwrap(),
        peer: peer.map(|p| p.parse().unwrap()),
    })
}

fn route(to: &str, table: u32, metric: u32, device: Option<&str>) -> Route {
    Route {
        table,
        to: to.parse().unwrap(),
        metric,
        route_type: RouteType::Unicast,
        device: device.map(str::to_string),
        via: None,
        src: None,
        protocol: ROUTE_PROTOCOL,
    }
}

fn blackhole(to: &str, table: u32) -> Route {
    Route {
        route_type: RouteType::Blackhole,
        device: None,
        ..route(to, table, FAIL_CLOSED_METRIC, None)
    }
}

#[test]
fn a_link_and_its_addresses_in_one_run_read_back_equal() {
    namespace();
    let mut rtnl = rtnl();
    let link = Object::Link(tunnel("tun0", 1400));
    // The addresses need the index of a link created earlier in the same call.
    let objects = vec![
        link.clone(),
        address("tun0", "10.9.0.1/30", None),
        address("tun0", "169.254.0.1/32", Some("169.254.0.2")),
        address("tun0", "2001:db8:9::1/64", None),
        address("tun0", "2001:db8:a::1/128", Some("2001:db8:a::2")),
    ];
    ok(&mut rtnl, &create(&objects));
    assert_eq!(ours(read(&mut rtnl, &["tun0"]), "tun0"), set(&objects));
    let shown = ip("address show dev tun0");
    assert!(
        shown.contains("inet 169.254.0.1 peer 169.254.0.2/32"),
        "{shown}"
    );
    assert!(shown.contains("mtu 1400"), "{shown}");
    assert!(!shown.contains("MULTICAST"), "{shown}");

    // Out of scope: the link and its addresses are not reported.
    let other = read(&mut rtnl, &["other"]);
    assert!(!other
        .iter()
        .any(|o| matches!(o, Object::Link(_) | Object::Address(_))));

    // MTU, multicast and state change in place.
    let Object::Link(before) = &link else {
        unreachable!()
    };
    let after = Link {
        mtu: 1280,
        multicast: true,
        up: false,
        ..before.clone()
    };
    ok(
        &mut rtnl,
        &[Change::Update {
            from: link.clone(),
            to: owned(Object::Link(after.clone())),
        }],
    );
    let live = read(&mut rtnl, &["tun0"]);
    assert!(live.contains(&Object::Link(after.clone())), "{live:?}");

    ok(&mut rtnl, &delete(&[Object::Link(after)]));
    assert!(ours(read(&mut rtnl, &["tun0"]), "tun0").is_empty());
}

#[test]
fn routes_of_both_families_and_any_table_read_back_equal() {
    namespace();
    let mut rtnl = rtnl();
    ok(&mut rtnl, &create(&[Object::Link(tunnel("tun0", 1400))]));
    let gateway = Route {
        via: Some("192.0.2.254".parse().unwrap()),
        src: Some("192.0.2.1".parse().unwrap()),
        ..route("10.2.0.0/16", 100, 50, Some("out0"))
    };
    let v6_gateway = Route {
        via: Some("2001:db8::fe".parse().unwrap()),
        src: Some("2001:db8::1".parse().unwrap()),
        ..route("2001:db8:60::/48", 5000, 0, Some("out0"))
    };
    let routes = [
        route("10.1.0.0/16", MAIN_TABLE, 0, Some("tun0")),
        blackhole("10.1.0.0/16", MAIN_TABLE),
        gateway,
        blackhole("10.2.0.0/16", 100),
        route("10.3.0.0/24", 70000, 10, Some("tun0")),
        blackhole("0.0.0.0/0", 70000),
        // Metric 0 is stored by IPv6 as 1024 and must read back as 0.
        route("2001:db8:50::/48", MAIN_TABLE, 0, Some("tun0")),
        blackhole("2001:db8:50::/48", MAIN_TABLE),
        route("2001:db8:51::/48", MAIN_TABLE, 300, Some("tun0")),
        v6_gateway,
        blackhole("::/0", 5000),
    ];
    let objects: Vec<Object> = routes.iter().cloned().map(Object::Route).collect();
    ok(&mut rtnl, &create(&objects));
    assert_eq!(ours(read(&mut rtnl, &[]), "-"), set(&objects));
    let shown = ip("-6 route show 2001:db8:50::/48");
    assert!(shown.contains("metric 1024"), "{shown}");

    // Replacing keeps the key and changes the rest.
    let replaced = Route {
        device: Some("out0".into()),
        via: Some("192.0.2.254".parse().unwrap()),
        ..routes[0].clone()
    };
    ok(
        &mut rtnl,
        &[Change::Update {
            from: objects[0].clone(),
            to: owned(Object::Route(replaced.clone())),
        }],
    );
    let live = read(&mut rtnl, &[]);
    assert!(live.contains(&Object::Route(replaced.clone())), "{live:?}");
    assert!(!live.contains(&objects[0]));

    let mut remaining = objects.clone();
    remaining[0] = Object::Route(replaced);
    ok(&mut rtnl, &delete(&remaining));
    assert!(ours(read(&mut rtnl, &[]), "-").is_empty());
    // The outer default routes were not ours and are untouched.
    assert!(ip("route show default").contains("via 192.0.2.254"));
}

#[test]
fn rules_of_both_families_read_back_equal() {
    namespace();
    let mut rtnl = rtnl();
    let rules = [
        Rule {
            ipv6: false,
            priority: 10_000,
            from: None,
            to: Some("10.60.0.0/16".parse().unwrap()),
            table: 100,
            protocol: ROUTE_PROTOCOL,
        },
        Rule {
            ipv6: false,
            priority: 10_000,
            from: Some("10.50.0.1/32".parse().unwrap()),
            to: None,
            table: 70_000,
            protocol: ROUTE_PROTOCOL,
        },
        Rule {
            ipv6: true,
            priority: 10_001,
            from: Some("2001:db8:50::1/128".parse().unwrap()),
            to: Some("2001:db8:60::/48".parse().unwrap()),
            table: 100,
            protocol: ROUTE_PROTOCOL,
        },
    ];
    let objects: Vec<Object> = rules.iter().cloned().map(Object::Rule).collect();
    ok(&mut rtnl, &create(&objects));
    let live = read(&mut rtnl, &[]);
    assert_eq!(ours(live.clone(), "-"), set(&objects));
    let shown = ip("rule show");
    assert!(
        shown.contains("to 10.60.0.0/16 lookup 100 proto 210"),
        "{shown}"
    );
    // The kernel's own rules decode too: the main table at 32766 in both families.
    for ipv6 in [false, true] {
        assert!(
            live.iter().any(|o| matches!(o, Object::Rule(r)
                if r.ipv6 == ipv6 && r.priority == 32766 && r.table == MAIN_TABLE && r.from.is_none())),
            "{live:?}"
        );
    }
    // Creating one again is refused (exclusive creation).
    let again = run(&mut rtnl, &create(&objects[..1]));
    assert_eq!(again[0].as_ref().unwrap_err().message, "File exists");

    ok(&mut rtnl, &delete(&objects));
    assert!(ours(read(&mut rtnl, &[]), "-").is_empty());
}

#[test]
fn egress_follows_the_default_route_and_route_mtu() {
    namespace();
    ip("link set out0 mtu 1450");
    let mut rtnl = rtnl();
    assert_eq!(
        rtnl.egress("198.51.100.20".parse().unwrap()).unwrap(),
        Egress {
            source: "192.0.2.1".parse().unwrap(),
            device: "out0".into(),
            mtu: 1450,
        }
    );
    assert_eq!(
        rtnl.egress("2001:db8:100::1".parse().unwrap()).unwrap(),
        Egress {
            source: "2001:db8::1".parse().unwrap(),
            device: "out0".into(),
            mtu: 1450,
        }
    );
    // A route's MTU wins over the device's.
    ip("route add 203.0.113.0/24 via 192.0.2.254 mtu 1300");
    let e = rtnl.egress("203.0.113.9".parse().unwrap()).unwrap();
    assert_eq!((e.mtu, e.device.as_str()), (1300, "out0"));

    ip("route del default");
    let err = rtnl.egress("198.51.100.20".parse().unwrap()).unwrap_err();
    assert_eq!(err.object, None);
    assert!(err.message.contains("198.51.100.20"), "{}", err.message);
}

#[test]
fn refusals_name_the_object_and_stop_later_runs() {
    namespace();
    let mut rtnl = rtnl();
    let link = Object::Link(tunnel("tun0", 1400));
    let good = Object::Route(route("10.1.0.0/16", MAIN_TABLE, 0, Some("tun0")));
    let missing = Object::Route(route("10.4.0.0/16", MAIN_TABLE, 0, Some("nonexistent")));
    let mut host_bits = route("10.5.0.1/16", MAIN_TABLE, 0, None);
    host_bits.route_type = RouteType::Blackhole;
    let host_bits = Object::Route(host_bits);
    let later_link = Object::Link(tunnel("tun1", 1400));
    let results = run(
        &mut rtnl,
        &create(&[
            link.clone(),
            good.clone(),
            missing.clone(),
            host_bits.clone(),
            later_link.clone(),
        ]),
    );
    assert!(results[0].is_ok() && results[1].is_ok(), "{results:?}");
    let err = results[2].as_ref().unwrap_err();
    assert_eq!(err.object, Some(missing.key()));
    assert_eq!(err.message, "no device nonexistent");
    // The kernel's errno text, then its extended acknowledgement.
    let err = results[3].as_ref().unwrap_err();
    assert_eq!(err.object, Some(host_bits.key()));
    assert!(
        err.message.starts_with("Invalid argument: ") && err.message.contains("prefix"),
        "{}",
        err.message
    );
    assert_eq!(
        results[4].as_ref().unwrap_err().message,
        "not attempted after an earlier failure"
    );
    // Exclusive creation: an existing route is refused, not silently replaced.
    let again = run(&mut rtnl, &create(std::slice::from_ref(&good)));
    let err = again[0].as_ref().unwrap_err();
    assert_eq!(
        (err.object.clone(), err.message.as_str()),
        (Some(good.key()), "File exists")
    );
    // Deleting what is not there fails too.
    let gone = run(&mut rtnl, &delete(std::slice::from_ref(&missing)));
    assert_eq!(gone[0].as_ref().unwrap_err().object, Some(missing.key()));
}

#[test]
fn thousands_of_routes_go_through_one_pipelined_batch() {
    namespace();
    let mut rtnl = rtnl();
    let objects: Vec<Object> = (0..3000u32)
        .map(|i| {
            let to = format!("10.{}.{}.0/24", 100 + i / 256, i % 256);
            Object::Route(blackhole(&to, 200))
        })
        .collect();
    ok(&mut rtnl, &create(&objects));
    assert_eq!(ours(read(&mut rtnl, &[]), "-").len(), objects.len());
    ok(&mut rtnl, &delete(&objects));
    assert!(ours(read(&mut rtnl, &[]), "-").is_empty());
}

/// All routes and rules but the kernel's own, which follow addresses (link-local ones appear
/// once their duplicate address detection ends, whenever that is).
fn routes_and_rules() -> String {
    let all = ip("-d route show table all") + &ip("-d -6 route show table all") + &ip("rule show");
    all.lines()
        .filter(|l| !l.contains("proto kernel"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every example profile applied through all backends: the second apply finds nothing to do,
/// which needs `read` to return exactly what `resolve` produces; teardown leaves nothing.
#[test]
fn applying_the_example_profiles_twice_writes_nothing_the_second_time() {
    namespace();
    apply_examples_twice(rtnl());
}

/// The same with real tunnels; see [`tunnels_of_every_kind_read_back_equal`].
#[test]
#[ignore = "needs the vti, vti6, gre, ip6gre and xfrm drivers; run in a VM"]
fn applying_the_example_profiles_with_real_tunnels_twice_writes_nothing_the_second_time() {
    namespace();
    apply_examples_twice(Rtnl::open().unwrap());
}

fn apply_examples_twice(rtnl: Rtnl) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("profiles");
    let tunnels = routevpn::profile::load(&[dir], routevpn::profile::Options::default())
        .tunnels
        .expect("examples load");
    let state = tempfile::tempdir().unwrap();
    let paths = Paths {
        state: state.path().join("state.json"),
        allocations: state.path().join("alloc.json"),
    };
    let mut kernel = LinuxKernel {
        route: Box::new(rtnl),
        sysctl: Default::default(),
        // The real XFRM and nftables backends: this host's kernel has both.
        xfrm: routevpn::apply::netlink::xfrm::Xfrm::open().unwrap(),
        nft: Box::new(routevpn::apply::netlink::nft::Nft::open().unwrap()),
    };
    let before = routes_and_rules();
    let all: BTreeSet<String> = tunnels.iter().map(|t| t.name.clone()).collect();
    let apply = |k: &mut LinuxKernel, enabled: &BTreeSet<String>| {
        routevpn::apply::apply(k, &tunnels, enabled, &paths)
            .map(|(o, _)| o)
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let first = apply(&mut kernel, &all);
    assert!(first.created > 30, "{first:?}");
    let links = ip("link show");
    assert!(
        links.contains("gre1") && links.contains("xfrm-cloud"),
        "{links}"
    );
    // %defaultroute resolved through the namespace's default route.
    let dc = kernel.read(&Scope::default()).unwrap();
    assert!(dc.iter().any(|o| matches!(o, Object::Policy(p)
        if p.template.src == "192.0.2.1".parse::<IpAddr>().unwrap())));

    let second = apply(&mut kernel, &all);
    assert_eq!(second.writes, 0, "{:?}", second.log);

    let down = apply(&mut kernel, &BTreeSet::new());
    assert!(down.deleted > 0);
    assert_eq!(before, routes_and_rules());
}

/// Real tunnels, on a kernel with their drivers (this host has none): run in a VM, e.g.
/// `integration/vm` with a script doing `modprobe -a ip_vti ip6_vti ip_gre ip6_gre
/// xfrm_interface` and `target/debug/deps/netlink_route-* --include-ignored`.
#[test]
#[ignore = "needs the vti, vti6, gre, ip6gre and xfrm drivers; run in a VM"]
fn tunnels_of_every_kind_read_back_equal() {
    namespace();
    let mut rtnl = Rtnl::open().unwrap();
    let v4 = |s: &str| -> IpAddr { s.parse().unwrap() };
    let kinds = [
        (
            "vti-a",
            LinkKind::Vti {
                local: v4("192.0.2.1"),
                remote: v4("198.51.100.30"),
                ikey: 5,
                okey: 5,
            },
        ),
        (
            "vti6-a",
            LinkKind::Vti {
                local: v4("2001:db8::1"),
                remote: v4("2001:db8:100::1"),
                ikey: 6,
                okey: 7,
            },
        ),
        (
            "gre-a",
            LinkKind::Gre {
                local: v4("192.0.2.1"),
                remote: v4("198.51.100.40"),
                key: Some(9),
                ttl: 64,
            },
        ),
        (
            "gre-b",
            LinkKind::Gre {
                local: v4("10.44.6.1"),
                remote: v4("10.44.7.1"),
                key: None,
                ttl: 255,
            },
        ),
        (
            "gre6-a",
            LinkKind::Gre {
                local: v4("2001:db8::1"),
                remote: v4("2001:db8:100::2"),
                key: Some(0x1_0000),
                ttl: 64,
            },
        ),
        (
            "xfrm-a",
            LinkKind::Xfrm {
                if_id: 0x10,
                link: Some("out0".into()),
            },
        ),
        (
            "xfrm-b",
            LinkKind::Xfrm {
                if_id: 0x11,
                link: None,
            },
        ),
    ];
    let mut objects = Vec::new();
    for (i, (name, kind)) in kinds.into_iter().enumerate() {
        objects.push(Object::Link(Link {
            name: name.into(),
            kind,
            mtu: 1300 + i as u32,
            multicast: i % 2 == 0,
            up: true,
        }));
        objects.push(address(name, &format!("10.77.{i}.1/30"), None));
        objects.push(address(name, &format!("2001:db8:77:{i}::1/64"), None));
    }
    ok(&mut rtnl, &create(&objects));
    let names: Vec<&str> = objects
        .iter()
        .filter_map(|o| match o {
            Object::Link(l) => Some(l.name.as_str()),
            _ => None,
        })
        .collect();
    let live = read(&mut rtnl, &names);
    for o in &objects {
        assert!(live.contains(o), "{o:?} not read back:\n{live:#?}");
    }
    println!("{}", ip("-d link show"));

    let links: Vec<Object> = objects
        .iter()
        .filter(|o| matches!(o, Object::Link(_)))
        .cloned()
        .collect();
    let updates: Vec<Change> = links
        .iter()
        .map(|from| {
            let Object::Link(l) = from else {
                unreachable!()
            };
            let to = Link {
                mtu: l.mtu - 100,
                multicast: !l.multicast,
                ..l.clone()
            };
            Change::Update {
                from: from.clone(),
                to: owned(Object::Link(to)),
            }
        })
        .collect();
    ok(&mut rtnl, &updates);
    let live = read(&mut rtnl, &names);
    for u in &updates {
        let Change::Update { to, .. } = u else {
            unreachable!()
        };
        assert!(live.contains(&to.object), "{to:?}");
    }
    let updated: Vec<Object> = updates
        .into_iter()
        .map(|u| match u {
            Change::Update { to, .. } => to.object,
            _ => unreachable!(),
        })
        .collect();
    ok(&mut rtnl, &delete(&updated));
    assert!(read(&mut rtnl, &names)
        .iter()
        .all(|o| !matches!(o, Object::Link(_) | Object::Address(_))));
}

/// The tunnels' own attributes, which this host cannot create: each kind's creation message
/// is serialized, parsed back as the kernel would see it, and decoded with `read`'s decoder.
#[test]
fn tunnel_kinds_survive_a_message_round_trip() {
    let mut eth0 = LinkMessage::default();
    eth0.header.index = 7;
    eth0.attributes.push(LinkAttribute::IfName("eth0".into()));
    let links = Links::from_messages(&[eth0]);
    let kinds = [
        LinkKind::Vti {
            local: "192.0.2.1".parse().unwrap(),
            remote: "198.51.100.30".parse().unwrap(),
            ikey: 0x8000_0001,
            okey: 0x8000_0001,
        },
        LinkKind::Vti {
            local: "2001:db8:200::1".parse().unwrap(),
            remote: "2001:db8:100::1".parse().unwrap(),
            ikey: 12,
            okey: 13,
        },
        LinkKind::Gre {
            local: "10.44.6.1".parse().unwrap(),
            remote: "10.44.7.1".parse().unwrap(),
            key: None,
            ttl: 255,
        },
        LinkKind::Gre {
            local: "10.20.0.10".parse().unwrap(),
            remote: "198.51.100.40".parse().unwrap(),
            key: Some(0x0102_0304),
            ttl: 64,
        },
        LinkKind::Gre {
            local: "2001:db8::1".parse().unwrap(),
            remote: "2001:db8::2".parse().unwrap(),
            key: Some(0),
            ttl: 0,
        },
        LinkKind::Xfrm {
            if_id: 0x10,
            link: Some("eth0".into()),
        },
        LinkKind::Xfrm {
            if_id: 1,
            link: None,
        },
    ];
    for kind in kinds {
        let want = Link {
            name: "t0".into(),
            kind,
            mtu: 1400,
            multicast: true,
            up: true,
        };
        let info = link::kind_info(&want.kind, &links).unwrap();
        let mut packet = NetlinkMessage::new(
            NetlinkHeader::default(),
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link::new_link(&want, info))),
        );
        packet.finalize();
        let mut bytes = vec![0; packet.buffer_len()];
        packet.serialize(&mut bytes);
        let parsed = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes).unwrap();
        let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(message)) = parsed.payload
        else {
            panic!("not a link message: {parsed:?}")
        };
        assert_eq!(link::decode_link(&message, &links, None), Some(want));
    }
    // An XFRM interface on a device that does not exist cannot be created.
    let orphan = LinkKind::Xfrm {
        if_id: 1,
        link: Some("nope".into()),
    };
    assert!(link::kind_info(&orphan, &links).is_err());
}

/// on_sa_loss = "withdraw" on a real routing table (bridges stand in for the VTIs): the
/// primary's device goes admin-down and its route away, the kernel then picks the backup's
/// route, the fail-closed blackhole is what is left when both are withdrawn, and each
/// state applied twice writes nothing the second time (the kernel's own reaction to the
/// device going down is no drift).
#[test]
fn a_withdrawn_primary_leaves_the_prefix_to_its_backup_then_to_the_blackhole() {
    namespace();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("profiles");
    let tunnels: Vec<_> = routevpn::profile::load(&[dir], routevpn::profile::Options::default())
        .tunnels
        .expect("examples load")
        .into_iter()
        .filter(|t| t.name.starts_with("cloud-"))
        .collect();
    let state = tempfile::tempdir().unwrap();
    let paths = Paths {
        state: state.path().join("state.json"),
        allocations: state.path().join("alloc.json"),
    };
    let mut kernel = LinuxKernel {
        route: Box::new(rtnl()),
        sysctl: Default::default(),
        xfrm: routevpn::apply::netlink::xfrm::Xfrm::open().unwrap(),
        nft: Box::new(routevpn::apply::netlink::nft::Nft::open().unwrap()),
    };
    let all: BTreeSet<String> = tunnels.iter().map(|t| t.name.clone()).collect();
    let mut apply_twice = |without: &[&str]| {
        let without: BTreeSet<String> = without.iter().map(|s| s.to_string()).collect();
        let mut apply = || {
            routevpn::apply::apply_knowing_sas(&mut kernel, &tunnels, &all, &without, &paths)
                .map(|(o, _)| o)
                .unwrap_or_else(|e| panic!("{e}"))
        };
        let first = apply();
        let second = apply();
        assert_eq!(second.writes, 0, "{:?}", second.log);
        first
    };
    let admin_up = |dev: &str| {
        let line = ip(&format!("-o link show dev {dev}"));
        let flags = line
            .split(['<', '>'])
            .nth(1)
            .unwrap_or_default()
            .to_string();
        flags.split(',').any(|f| f == "UP")
    };
    let chosen = || ip("-4 route get 10.70.0.1");

    apply_twice(&[]);
    assert!(chosen().contains("dev vti-cloud-1"), "{}", chosen());
    assert!(admin_up("vti-cloud-1") && admin_up("vti-cloud-2"));

    let withdrawn = apply_twice(&["cloud-primary"]);
    assert!(
        withdrawn.deleted >= 1 && withdrawn.updated >= 1,
        "{withdrawn:?}"
    );
    assert!(!admin_up("vti-cloud-1"));
    assert!(chosen().contains("dev vti-cloud-2"), "{}", chosen());

    apply_twice(&["cloud-primary", "cloud-backup"]);
    let left = ip("-4 route show 10.70.0.0/16");
    assert_eq!(
        left.trim(),
        format!("blackhole 10.70.0.0/16 proto 210 metric {FAIL_CLOSED_METRIC}")
    );

    apply_twice(&[]);
    assert!(admin_up("vti-cloud-1"));
    assert!(chosen().contains("dev vti-cloud-1"), "{}", chosen());
}
