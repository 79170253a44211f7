//! The plan: the kernel state the profiles ask for, computed without touching the kernel.
//!
//! [`build`] is a pure function of the tunnels and a [`Context`] (earlier allocations, known
//! outer MTUs). The dataplane diffs this against live state; the IKE engine gets [`IkePlan`]'s connection.

pub mod alloc;
mod ike;
pub mod mtu;
mod nft;
mod policy;
mod render;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

pub use alloc::Allocations;
pub use ike::IkePlan;
pub use nft::{Family as NftFamily, NftChain, NftRule, NftTable, TABLE as NFT_TABLE};
pub use policy::{Direction, PolicyNet, XfrmPolicy, XfrmTemplate};
pub use render::render_text;

use crate::model::{LocalEndpoint, Mode, MssClamp, MtuSetting, OnSaLoss, Tunnel, TunnelKind};
use mtu::{Encapsulation, MtuBreakdown};

/// Routes routevpn installs carry this protocol number, so they are recognisably ours.
pub const ROUTE_PROTOCOL: u8 = 210;
pub use crate::model::FAIL_CLOSED_METRIC;
/// Policy rules for routes in custom tables start at this priority.
pub const RULE_PRIORITY_BASE: u32 = 10_000;
/// The outer MTU assumed when neither the profile nor the live device tells it.
pub const DEFAULT_OUTER_MTU: u32 = 1500;
/// IPv6 links must carry at least this much (RFC 8200 section 5).
pub const IPV6_MIN_MTU: u32 = 1280;

/// Facts from outside the profiles the planner may use.
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// Values handed out by the previous apply.
    pub previous: Allocations,
    /// Outer MTU per tunnel name, read from the egress device by the dataplane.
    pub outer_mtu: BTreeMap<String, u32>,
    /// Tunnels without a CHILD SA (the daemon knows): those with on_sa_loss = "withdraw"
    /// get their device down and their routes withdrawn.
    pub without_sas: BTreeSet<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    pub tunnels: Vec<TunnelPlan>,
    pub nftables: NftTable,
    /// The same table in `nft -f` syntax.
    pub nftables_script: String,
    /// Host-wide settings (IPv6 forwarding is not per device).
    pub sysctls: Vec<Sysctl>,
    pub allocations: Allocations,
    pub warnings: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct TunnelPlan {
    pub name: String,
    pub file: String,
    pub link: Link,
    pub mtu: MtuPlan,
    pub addresses: Vec<AddressPlan>,
    pub routes: Vec<RoutePlan>,
    pub rules: Vec<RulePlan>,
    pub sysctls: Vec<Sysctl>,
    pub policies: Vec<XfrmPolicy>,
    pub ike: IkePlan,
}

/// An outer endpoint: known, or the source address of the route to the peer at apply time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    DefaultRoute,
    Address(IpAddr),
}

impl From<LocalEndpoint> for Endpoint {
    fn from(local: LocalEndpoint) -> Self {
        match local {
            LocalEndpoint::DefaultRoute => Endpoint::DefaultRoute,
            LocalEndpoint::Address(a) => Endpoint::Address(a),
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::DefaultRoute => f.write_str("%defaultroute"),
            Endpoint::Address(a) => write!(f, "{a}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum LinkKind {
    /// `vti` (IPv4 outer) or `vti6`: ikey = okey = mark.
    Vti {
        ipv6: bool,
        local: Endpoint,
        remote: IpAddr,
        mark: u32,
    },
    /// `gre` or `ip6gre`.
    Gre {
        ipv6: bool,
        local: Endpoint,
        remote: IpAddr,
        key: Option<u32>,
        ttl: u8,
    },
    /// `xfrm` interface.
    Xfrm { if_id: u32, link: Option<String> },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Link {
    pub name: String,
    pub kind: LinkKind,
    pub mtu: u32,
    pub multicast: bool,
    pub up: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct MtuPlan {
    pub mtu: u32,
    /// How `auto` was computed; absent for a fixed MTU.
    pub breakdown: Option<MtuBreakdown>,
    pub outer_mtu_assumed: bool,
    pub mss_clamp: MssClamp,
    /// MSS of a SYN leaving through the tunnel, IPv4 and IPv6 (MTU - 40 / - 60).
    pub mss_ipv4: u32,
    pub mss_ipv6: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AddressPlan {
    pub device: String,
    pub address: IpNet,
    pub peer: Option<IpAddr>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteKind {
    Unicast,
    /// The fail-closed backstop: drops the prefix if the tunnel device disappears.
    Blackhole,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RoutePlan {
    pub kind: RouteKind,
    pub to: IpNet,
    pub device: Option<String>,
    pub via: Option<IpAddr>,
    pub src: Option<IpAddr>,
    pub metric: u32,
    /// `None` is the main table.
    pub table: Option<u32>,
    pub protocol: u8,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RulePlan {
    pub priority: u32,
    pub from: Option<IpNet>,
    pub to: Option<IpNet>,
    pub table: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Sysctl {
    /// Dotted name as in sysctl.conf, e.g. `net.ipv4.conf.gre1.rp_filter`.
    pub key: String,
    pub value: String,
    pub why: &'static str,
}

fn sysctl(key: String, value: impl ToString, why: &'static str) -> Sysctl {
    Sysctl {
        key,
        value: value.to_string(),
        why,
    }
}

/// Plans every tunnel. Tunnels must come validated from [`crate::profile`].
pub fn build(tunnels: &[Tunnel], context: &Context) -> Plan {
    let allocations = allocate(tunnels, &context.previous);
    let mut warnings = Vec::new();
    let mut plans = Vec::with_capacity(tunnels.len());
    for tunnel in tunnels {
        plans.push(plan_tunnel(tunnel, context, &allocations, &mut warnings));
    }
    share_backstops(&mut plans);
    let nftables = nft::table(tunnels, &plans);
    let mut sysctls = Vec::new();
    if plans.iter().any(|p| {
        p.sysctls
            .iter()
            .any(|s| s.key.starts_with("net.ipv6.") && s.key.ends_with(".forwarding"))
    }) {
        sysctls.push(sysctl(
            "net.ipv6.conf.all.forwarding".into(),
            1,
            "IPv6 routes between interfaces only with global forwarding",
        ));
    }
    Plan {
        tunnels: plans,
        nftables_script: nftables.to_nft_script(),
        nftables,
        sysctls,
        allocations,
        warnings,
    }
}

/// A primary and its backup route one prefix each with their own metric, but its
/// fail-closed blackhole and its table's rule are one kernel object: the first tunnel
/// (in profile order) plans it, the others leave it out.
fn share_backstops(plans: &mut [TunnelPlan]) {
    let mut blackholes = BTreeSet::new();
    let mut rules = BTreeSet::new();
    for plan in plans {
        plan.routes.retain(|r| {
            r.kind != RouteKind::Blackhole || blackholes.insert((r.table, r.to.trunc()))
        });
        plan.rules
            .retain(|r| rules.insert((r.priority, r.from, r.to, r.table)));
    }
}

fn allocate(tunnels: &[Tunnel], previous: &Allocations) -> Allocations {
    let collect =
        |kind: TunnelKind, explicit: fn(&Tunnel) -> Option<u32>| -> Vec<(String, Option<u32>)> {
            tunnels
                .iter()
                .filter(|t| t.kind == kind)
                .map(|t| (t.name.clone(), explicit(t)))
                .collect()
        };
    let marks = collect(TunnelKind::Vti, |t| t.mark);
    let if_ids = collect(TunnelKind::Xfrm, |t| t.if_id);
    let children: Vec<(String, Option<u32>)> = tunnels
        .iter()
        .flat_map(|t| {
            t.children
                .iter()
                .map(move |c| (format!("{}/{}", t.name, c.name), None))
        })
        .collect();
    let zip = |wanted: &[(String, Option<u32>)], values: Vec<u32>| {
        wanted.iter().map(|(n, _)| n.clone()).zip(values).collect()
    };
    Allocations {
        marks: zip(&marks, alloc::allocate(&marks, &previous.marks)),
        if_ids: zip(&if_ids, alloc::allocate(&if_ids, &previous.if_ids)),
        reqids: zip(&children, alloc::allocate(&children, &previous.reqids)),
    }
}

fn gre_prefix(tunnel: &Tunnel) -> u32 {
    let Some(gre) = &tunnel.gre else { return 0 };
    let header = mtu::GRE_HEADER + if gre.key.is_some() { mtu::GRE_KEY } else { 0 };
    match gre.local {
        // GRE inside a tunnel-mode SA also carries the GRE endpoints' IP header.
        Some(local) => header + mtu::ip_header(local.is_ipv6()),
        None => header,
    }
}

fn plan_mtu(tunnel: &Tunnel, context: &Context, warnings: &mut Vec<String>) -> MtuPlan {
    let known = tunnel
        .interface
        .outer_mtu
        .or_else(|| context.outer_mtu.get(&tunnel.name).copied());
    let outer_mtu = known.unwrap_or(DEFAULT_OUTER_MTU);
    // A NAT may appear on the path at any time with `auto`, so its 8 bytes are reserved.
    let encap = Encapsulation {
        outer_ipv6: tunnel.outer_is_ipv6(),
        udp: true,
        prefix: gre_prefix(tunnel),
    };
    let carriers = tunnel
        .children
        .iter()
        .filter(|c| tunnel.kind != TunnelKind::Gre || carries_gre(tunnel, c));
    let breakdown = mtu::worst_case(outer_mtu, encap, carriers.flat_map(|c| &c.esp_proposals));
    let (mtu, breakdown) = match tunnel.interface.mtu {
        MtuSetting::Fixed(n) => (n, None),
        MtuSetting::Auto => (breakdown.as_ref().map_or(1400, |b| b.mtu), breakdown),
    };
    let carries_ipv6 = tunnel
        .interface
        .addresses
        .iter()
        .any(|a| a.address.addr().is_ipv6())
        || tunnel.routes.iter().any(|r| r.to.addr().is_ipv6());
    if carries_ipv6 && mtu < IPV6_MIN_MTU {
        warnings.push(format!(
            "tunnel {}: MTU {mtu} is below IPv6's minimum {IPV6_MIN_MTU}; the kernel disables IPv6 on {}",
            tunnel.name, tunnel.interface.name
        ));
    }
    MtuPlan {
        mtu,
        breakdown,
        outer_mtu_assumed: known.is_none(),
        mss_clamp: tunnel.interface.mss_clamp,
        mss_ipv4: mtu.saturating_sub(40),
        mss_ipv6: mtu.saturating_sub(60),
    }
}

/// Whether a child of a GRE tunnel is the one carrying the GRE packets.
pub(crate) fn carries_gre(tunnel: &Tunnel, child: &crate::model::Child) -> bool {
    !crate::profile::policy_children(tunnel).any(|c| std::ptr::eq(c, child))
}

fn plan_link(tunnel: &Tunnel, allocations: &Allocations, mtu: u32) -> Link {
    let local = Endpoint::from(tunnel.local);
    let ipv6 = tunnel.outer_is_ipv6();
    let kind = match tunnel.kind {
        TunnelKind::Vti => LinkKind::Vti {
            ipv6,
            local,
            remote: tunnel.remote,
            mark: allocations.marks[&tunnel.name],
        },
        TunnelKind::Gre => {
            let gre = tunnel
                .gre
                .as_ref()
                .expect("GRE tunnels have [gre] settings");
            let (local, remote) = match (gre.local, gre.remote) {
                (Some(l), Some(r)) => (Endpoint::Address(l), r),
                _ => (local, tunnel.remote),
            };
            let ipv6 = remote.is_ipv6();
            LinkKind::Gre {
                ipv6,
                local,
                remote,
                key: gre.key,
                ttl: gre.ttl,
            }
        }
        TunnelKind::Xfrm => LinkKind::Xfrm {
            if_id: allocations.if_ids[&tunnel.name],
            link: tunnel.interface.link.clone(),
        },
    };
    Link {
        name: tunnel.interface.name.clone(),
        kind,
        mtu,
        multicast: tunnel.interface.multicast,
        up: true,
    }
}

fn plan_addresses(tunnel: &Tunnel) -> Vec<AddressPlan> {
    let device = &tunnel.interface.name;
    let mut out: Vec<AddressPlan> = tunnel
        .interface
        .addresses
        .iter()
        .map(|a| AddressPlan {
            device: device.clone(),
            address: a.address,
            peer: a.peer,
        })
        .collect();
    // GRE inside a tunnel-mode SA: the inner GRE endpoint must be a local address so that
    // decrypted GRE packets are delivered to the GRE device.
    if let Some(local) = tunnel.gre.as_ref().and_then(|g| g.local) {
        if !out.iter().any(|a| a.address.addr() == local) {
            out.push(AddressPlan {
                device: device.clone(),
                address: IpNet::from(local),
                peer: None,
            });
        }
    }
    out
}

fn plan_routes(tunnel: &Tunnel) -> (Vec<RoutePlan>, Vec<RulePlan>) {
    let mut routes = Vec::new();
    let mut rules = Vec::new();
    for route in &tunnel.routes {
        routes.push(RoutePlan {
            kind: RouteKind::Unicast,
            to: route.to,
            device: Some(tunnel.interface.name.clone()),
            via: route.via,
            src: route.src,
            metric: route.metric.unwrap_or(0),
            table: route.table,
            protocol: ROUTE_PROTOCOL,
        });
        if tunnel.fail_closed {
            routes.push(RoutePlan {
                kind: RouteKind::Blackhole,
                to: route.to,
                device: None,
                via: None,
                src: None,
                metric: FAIL_CLOSED_METRIC,
                table: route.table,
                protocol: ROUTE_PROTOCOL,
            });
        }
        // A custom table is only consulted through a rule: traffic from the route's source
        // (or else to its destination) looks it up.
        if let Some(table) = route.table {
            let rule = RulePlan {
                priority: RULE_PRIORITY_BASE,
                from: route.src.map(IpNet::from),
                to: if route.src.is_some() {
                    None
                } else {
                    Some(route.to)
                },
                table,
            };
            if !rules.contains(&rule) {
                rules.push(rule);
            }
        }
    }
    (routes, rules)
}

fn plan_sysctls(tunnel: &Tunnel) -> Vec<Sysctl> {
    let dev = &tunnel.interface.name;
    let v4 = |name: &str| format!("net.ipv4.conf.{dev}.{name}");
    let mut out = vec![
        sysctl(
            v4("rp_filter"),
            tunnel.interface.rp_filter.sysctl_value(),
            "reverse-path filter chosen for the tunnel",
        ),
        sysctl(
            v4("send_redirects"),
            0,
            "never send ICMP redirects into a tunnel",
        ),
    ];
    if tunnel.kind == TunnelKind::Vti {
        out.push(sysctl(
            v4("disable_policy"),
            1,
            "decrypted packets arrive on the VTI without a matching input policy",
        ));
    }
    let gateway = tunnel
        .children
        .iter()
        .flat_map(|c| &c.local_ts)
        .any(|ts| ts.net.is_some_and(|n| n.prefix_len() < n.max_prefix_len()));
    let keepalive = tunnel.gre.as_ref().is_some_and(|g| g.keepalive_replies);
    if gateway || keepalive {
        out.push(sysctl(
            v4("forwarding"),
            1,
            "forward between the tunnel and the local networks",
        ));
    }
    let ipv6 = tunnel
        .interface
        .addresses
        .iter()
        .any(|a| a.address.addr().is_ipv6())
        || tunnel.routes.iter().any(|r| r.to.addr().is_ipv6());
    if ipv6 && gateway {
        out.push(sysctl(
            format!("net.ipv6.conf.{dev}.forwarding"),
            1,
            "forward IPv6 between the tunnel and the local networks",
        ));
    }
    if ipv6 && tunnel.on_sa_loss == OnSaLoss::Withdraw {
        out.push(sysctl(
            format!("net.ipv6.conf.{dev}.keep_addr_on_down"),
            1,
            "keep IPv6 addresses while the device is down for lack of SAs",
        ));
    }
    if keepalive {
        // A GRE keepalive carries a packet from our own address back to the peer: it must be
        // accepted although its source is local, and forwarded back out of the tunnel.
        out.push(sysctl(
            v4("accept_local"),
            1,
            "reflect GRE keepalives (source is our own address)",
        ));
        out.retain(|s| s.key != v4("rp_filter"));
        out.push(sysctl(
            v4("rp_filter"),
            0,
            "GRE keepalives fail the reverse-path check",
        ));
    }
    out.sort();
    out
}

fn plan_tunnel(
    tunnel: &Tunnel,
    context: &Context,
    allocations: &Allocations,
    warnings: &mut Vec<String>,
) -> TunnelPlan {
    let mtu = plan_mtu(tunnel, context, warnings);
    let mut link = plan_link(tunnel, allocations, mtu.mtu);
    let (mut routes, rules) = plan_routes(tunnel);
    if tunnel.on_sa_loss == OnSaLoss::Withdraw && context.without_sas.contains(&tunnel.name) {
        // Admin-down is the one link state every tunnel kind can take (VTI, GRE and XFRM
        // devices have no carrier or protocol-down switch), and the one FRR's zebra sees;
        // the kernel drops the device's routes with it, so the plan withdraws them too.
        link.up = false;
        routes.retain(|r| r.kind != RouteKind::Unicast);
    }
    let ike = ike::config(tunnel, allocations);
    let policies = policy::policies(tunnel, &ike);
    if tunnel.children.iter().any(|c| c.mode == Mode::Transport)
        && tunnel.local == LocalEndpoint::DefaultRoute
    {
        warnings.push(format!(
            "tunnel {}: transport-mode GRE with local = %defaultroute follows the default route's source address",
            tunnel.name
        ));
    }
    TunnelPlan {
        name: tunnel.name.clone(),
        file: tunnel.file.display().to_string(),
        link,
        mtu,
        addresses: plan_addresses(tunnel),
        routes,
        rules,
        sysctls: plan_sysctls(tunnel),
        policies,
        ike,
    }
}
