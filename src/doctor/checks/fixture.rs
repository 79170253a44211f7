//! A planned example tunnel and the facts of a host where it works, for planting faults.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::xfrm::live_policy;
use crate::apply::objects::{Route, RouteType, MAIN_TABLE};
use crate::daemon::control::{ChildSaReport, IkeSaReport, Response};
use crate::doctor::facts::{
    Counters, DeviceCounters, Egress, Facts, KernelSupport, LinkFacts, SaCounters,
};
use crate::plan::{self, RouteKind, TunnelPlan};
use crate::profile::{self, Options};

pub const LOCAL: &str = "10.0.1.1";

/// `name` from `profiles/`, planned.
pub fn tunnel(name: &str) -> TunnelPlan {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles");
    let tunnels = profile::load(&[dir], Options::default())
        .tunnels
        .expect("example profiles load");
    let plan = plan::build(&tunnels, &plan::Context::default());
    plan.tunnels
        .into_iter()
        .find(|t| t.name == name)
        .expect("example tunnel")
}

pub fn vti() -> TunnelPlan {
    tunnel("vti-telecom")
}

fn modules() -> std::collections::BTreeSet<String> {
    [
        "esp4",
        "esp6",
        "ip_vti",
        "ip6_vti",
        "ip_gre",
        "ip6_gre",
        "xfrm_interface",
        "gcm",
    ]
    .into_iter()
    .map(String::from)
    .collect()
}

fn sa(src: IpAddr, dst: IpAddr, spi: u32, reqid: u32, packets: u64) -> SaCounters {
    SaCounters {
        src,
        dst,
        spi,
        reqid,
        packets,
        bytes: packets * 100,
    }
}

/// Everything `tunnel` needs, in place, with traffic both ways during the interval.
pub fn healthy(tunnel: &TunnelPlan) -> Facts {
    let local: IpAddr = LOCAL.parse().unwrap();
    let remote = super::remote(tunnel);
    let device = tunnel.link.name.clone();
    let mut facts = Facts {
        interval_secs: 2.0,
        ..Facts::default()
    };
    facts.links.insert(
        device.clone(),
        LinkFacts {
            kind: "vti".into(),
            mtu: tunnel.link.mtu,
            up: true,
            operstate: "up".into(),
        },
    );
    facts.links.insert(
        "eth0".into(),
        LinkFacts {
            kind: String::new(),
            mtu: 1500,
            up: true,
            operstate: "up".into(),
        },
    );
    facts.routes = tunnel
        .routes
        .iter()
        .map(|r| Route {
            table: r.table.unwrap_or(MAIN_TABLE),
            to: r.to,
            metric: r.metric,
            route_type: match r.kind {
                RouteKind::Unicast => RouteType::Unicast,
                RouteKind::Blackhole => RouteType::Blackhole,
            },
            device: r.device.clone(),
            via: r.via,
            src: r.src,
            protocol: r.protocol,
        })
        .collect();
    facts.routes.push(Route {
        table: MAIN_TABLE,
        to: "0.0.0.0/0".parse().unwrap(),
        metric: 0,
        route_type: RouteType::Unicast,
        device: Some("eth0".into()),
        via: Some("10.0.1.254".parse().unwrap()),
        src: None,
        protocol: 4,
    });
    facts.policies = tunnel
        .policies
        .iter()
        .map(|p| live_policy(p, local).expect("example policies resolve"))
        .collect();
    for s in &tunnel.sysctls {
        facts.sysctls.insert(s.key.clone(), s.value.clone());
    }
    facts
        .sysctls
        .insert("net.ipv4.conf.all.rp_filter".into(), "0".into());
    facts.nftables = Some(Vec::new());
    facts.kernel = KernelSupport {
        loaded: modules(),
        crypto: ["gcm(aes)".to_string()].into_iter().collect(),
        ..KernelSupport::default()
    };
    facts.egress.insert(
        tunnel.name.clone(),
        Ok(Egress {
            device: "eth0".into(),
            source: local,
            mtu: 1500,
        }),
    );
    facts.daemon = Some(Response {
        ok: true,
        ike_sas: vec![IkeSaReport {
            name: tunnel.name.clone(),
            state: "ESTABLISHED".into(),
            children: vec![ChildSaReport {
                name: tunnel.ike.children[0].name.clone(),
                state: "INSTALLED".into(),
                spi_in: "c0000001".into(),
                spi_out: "c0000002".into(),
                ..ChildSaReport::default()
            }],
            ..IkeSaReport::default()
        }],
        ..Response::default()
    });
    let reqid = tunnel.ike.children[0].reqid;
    let sample = |n: u64| Counters {
        devices: BTreeMap::from([(
            device.clone(),
            DeviceCounters {
                rx_packets: 10 * n,
                tx_packets: 10 * n,
                ..DeviceCounters::default()
            },
        )]),
        sas: vec![
            sa(remote, local, 0xc000_0001, reqid, 10 * n),
            sa(local, remote, 0xc000_0002, reqid, 10 * n),
        ],
        xfrm_stat: BTreeMap::from([("XfrmInNoStates".to_string(), 3)]),
    };
    facts.before = sample(1);
    facts.after = sample(2);
    facts
}
