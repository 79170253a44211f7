//! Checks within one tunnel that need the whole profile: do the routes, SNAT rules and GRE
//! endpoints fit the traffic selectors the peer will agree to?

use std::collections::HashSet;
use std::net::IpAddr;

use ipnet::IpNet;

use super::reader::Context;
use super::tunnel::Spans;
use crate::model::{
    Auth, Child, DpdAction, Mode, OnSaLoss, StartAction, TrafficSelector, Tunnel, TunnelKind,
};

/// `allow_remote_in_routes`: the profile accepts routes and selectors covering the peer.
pub fn check(ctx: &Context<'_>, tunnel: &Tunnel, spans: &Spans, allow_remote_in_routes: bool) {
    unique_child_names(ctx, tunnel, spans);
    unique_routes(ctx, tunnel, spans);
    unique_snat(ctx, tunnel, spans);
    if !allow_remote_in_routes {
        remote_outside_routes(ctx, tunnel, spans);
    }
    match tunnel.kind {
        TunnelKind::Vti | TunnelKind::Xfrm => selectors_cover_routes(ctx, tunnel, spans),
        TunnelKind::Gre => gre_endpoints_fit(ctx, tunnel, spans),
    }
    snat_has_route(ctx, tunnel, spans);
    withdraw_fits(ctx, tunnel, spans);
}

/// `on_sa_loss = "withdraw"` takes the routes away while no CHILD SA exists: traffic then
/// never reaches a trap policy, and manually keyed SAs are never lost.
fn withdraw_fits(ctx: &Context<'_>, tunnel: &Tunnel, spans: &Spans) {
    if tunnel.on_sa_loss != OnSaLoss::Withdraw {
        return;
    }
    let span = spans.on_sa_loss.clone().unwrap_or(0..0);
    let ike = &tunnel.ike;
    let why = if matches!(ike.auth, Auth::Manual { .. }) {
        "manually keyed SAs are never lost, so there is nothing to withdraw for"
    } else if ike.start_action == StartAction::Trap
        || ike.close_action == StartAction::Trap
        || ike.dpd.action == DpdAction::Trap
    {
        "a trap waits for traffic that the withdrawn routes no longer send into the tunnel"
    } else {
        return;
    };
    ctx.error(
        span,
        format!("on_sa_loss = \"withdraw\" does not fit this tunnel: {why}"),
        Some("use on_sa_loss = \"keep\", or start/restart instead of trap".into()),
    );
}

fn unique_child_names(ctx: &Context<'_>, tunnel: &Tunnel, spans: &Spans) {
    let mut seen = HashSet::new();
    for (i, child) in tunnel.children.iter().enumerate() {
        if !seen.insert(child.name.as_str()) {
            let span = spans.children.get(i).map_or(0..0, |s| s.name.clone());
            ctx.error(
                span,
                format!("child name \"{}\" is used twice in this tunnel", child.name),
                Some("give each [[child]] its own `name`".into()),
            );
        }
    }
}

/// Two routes with the same table, destination and metric are one kernel route: the second
/// would replace the first, whose `via` or `src` then silently does not apply.
fn unique_routes(ctx: &Context<'_>, tunnel: &Tunnel, spans: &Spans) {
    let mut seen = HashSet::new();
    for (i, route) in tunnel.routes.iter().enumerate() {
        if !seen.insert((route.table, route.to, route.metric)) {
            ctx.error(
                spans.routes.get(i).cloned().unwrap_or(0..0),
                format!(
                    "route to {} is listed twice with the same table and metric",
                    route.to
                ),
                Some("remove one, or give them different metrics".into()),
            );
        }
    }
}

/// The first of two SNAT rules for the same traffic wins; the second would never apply.
fn unique_snat(ctx: &Context<'_>, tunnel: &Tunnel, spans: &Spans) {
    let mut seen = HashSet::new();
    for (i, rule) in tunnel.snat.iter().enumerate() {
        if !seen.insert((rule.to, rule.from)) {
            ctx.error(
                spans.snat_to.get(i).cloned().unwrap_or(0..0),
                format!("a second SNAT rule for destination {}", rule.to),
                Some("one rule per destination (and `from`): the second would never match".into()),
            );
        }
    }
}

const REMOTE_HINT: &str = "IKE and ESP to the peer would be routed into the tunnel itself; \
leave the peer's address out, or set allow_remote_in_routes = true if a more specific route \
to the peer stays outside the tunnel";

/// Routes into the tunnel, and selectors of policy-based children (their policies carry no
/// mark), must not catch the packets that carry the tunnel: IKE and ESP to `remote`.
fn remote_outside_routes(ctx: &Context<'_>, tunnel: &Tunnel, spans: &Spans) {
    let remote = tunnel.remote;
    for (i, route) in tunnel.routes.iter().enumerate() {
        if route.to.contains(&remote) {
            ctx.error(
                spans.routes.get(i).cloned().unwrap_or(0..0),
                format!("route to {} covers the peer's address {remote}", route.to),
                Some(REMOTE_HINT.into()),
            );
        }
    }
    for child in policy_children(tunnel) {
        // UDP carries IKE (and ESP behind NAT); protocol 50 is ESP.
        let catches = |ts: &&TrafficSelector| {
            ts.net.is_some_and(|net| net.contains(&remote))
                && ts.protocol.is_none_or(|p| p == 17 || p == 50)
        };
        if let Some(ts) = child.remote_ts.iter().find(catches) {
            let i = tunnel.children.iter().position(|c| c.name == child.name);
            ctx.error(
                i.and_then(|i| spans.children.get(i))
                    .map_or(0..0, |s| s.remote_ts.clone()),
                format!(
                    "remote_ts {ts} of child \"{}\" covers the peer's address {remote}",
                    child.name
                ),
                Some(REMOTE_HINT.into()),
            );
        }
    }
}

fn covers(selectors: impl Iterator<Item = Option<IpNet>>, net: &IpNet) -> bool {
    selectors.flatten().any(|ts| ts.contains(net))
}

fn local_nets(children: &[Child]) -> impl Iterator<Item = Option<IpNet>> + '_ {
    children
        .iter()
        .flat_map(|c| c.local_ts.iter().map(|ts| ts.net))
}

fn remote_nets(children: &[Child]) -> impl Iterator<Item = Option<IpNet>> + '_ {
    children
        .iter()
        .flat_map(|c| c.remote_ts.iter().map(|ts| ts.net))
}

/// A route-based tunnel only carries what its SAs' selectors allow: a packet routed into it
/// outside them is dropped by the kernel, which looks like a black hole to the operator.
fn selectors_cover_routes(ctx: &Context<'_>, tunnel: &Tunnel, spans: &Spans) {
    for (i, route) in tunnel.routes.iter().enumerate() {
        let span = spans.routes.get(i).cloned().unwrap_or(0..0);
        if !covers(remote_nets(&tunnel.children), &route.to) {
            ctx.error(
                span.clone(),
                format!(
                    "route to {} is outside every child's remote_ts, so the tunnel would drop it",
                    route.to
                ),
                Some("add the prefix to a child's remote_ts, or remove the route".into()),
            );
        }
        if let Some(src) = route.src {
            if !covers(local_nets(&tunnel.children), &IpNet::from(src)) {
                let span = spans.route_src.get(i).cloned().flatten().unwrap_or(span);
                ctx.error(
                    span,
                    format!("route source {src} is outside every child's local_ts"),
                    Some("the peer only accepts packets from local_ts: add it there, or SNAT to an address inside it".into()),
                );
            }
        }
    }
    for (i, rule) in tunnel.snat.iter().enumerate() {
        if !covers(local_nets(&tunnel.children), &IpNet::from(rule.source)) {
            ctx.error(
                spans.snat_source.get(i).cloned().unwrap_or(0..0),
                format!(
                    "SNAT source {} is outside every child's local_ts",
                    rule.source
                ),
                Some(
                    "the agreed address must be part of local_ts, or the peer drops the traffic"
                        .into(),
                ),
            );
        }
    }
}

/// GRE runs either between the outer endpoints (transport mode) or between inner addresses
/// carried by a tunnel-mode child, as in a cloud VM talking to a datacenter loopback.
fn gre_endpoints_fit(ctx: &Context<'_>, tunnel: &Tunnel, spans: &Spans) {
    let Some(gre) = &tunnel.gre else { return };
    match (gre.local, gre.remote) {
        (Some(local), Some(remote)) => {
            if local.is_ipv4() != remote.is_ipv4() {
                ctx.error(
                    spans.gre_remote.clone().unwrap_or(0..0),
                    format!("GRE endpoints {local} and {remote} are of different address families"),
                    None,
                );
                return;
            }
            let carried = tunnel.children.iter().any(|c| {
                c.mode == Mode::Tunnel
                    && covers(c.local_ts.iter().map(|t| t.net), &IpNet::from(local))
                    && covers(c.remote_ts.iter().map(|t| t.net), &IpNet::from(remote))
            });
            if !carried {
                ctx.error(
                    spans.gre_local.clone().unwrap_or(0..0),
                    format!("no tunnel-mode child carries GRE between {local} and {remote}"),
                    Some(format!(
                        "add a [[child]] with local_ts = [\"{}\"] and remote_ts = [\"{}\"]",
                        IpNet::from(local),
                        IpNet::from(remote)
                    )),
                );
            }
        }
        _ => {
            for (i, child) in tunnel.children.iter().enumerate() {
                let outer_only = |list: &[TrafficSelector]| {
                    list.iter().all(|ts| {
                        ts.net.is_none_or(|n| is_host(&n, tunnel))
                            && ts.protocol.is_none_or(|p| p == 47)
                    })
                };
                if child.mode == Mode::Transport
                    && !(outer_only(&child.local_ts) && outer_only(&child.remote_ts))
                {
                    let child_spans = spans.children.get(i);
                    let span = if outer_only(&child.local_ts) {
                        child_spans.map(|s| s.remote_ts.clone())
                    } else {
                        child_spans.map(|s| s.local_ts.clone())
                    };
                    ctx.error(
                        span.unwrap_or(0..0),
                        format!(
                            "transport-mode child \"{}\" can only protect GRE between the outer endpoints",
                            child.name
                        ),
                        Some("use local_ts = [\"dynamic[gre]\"] and remote_ts = [\"dynamic[gre]\"], or set [gre] local/remote with a tunnel-mode child".into()),
                    );
                }
            }
        }
    }
}

fn is_host(net: &IpNet, tunnel: &Tunnel) -> bool {
    let host = net.prefix_len() == net.max_prefix_len();
    let outer: [Option<IpAddr>; 2] = [
        Some(tunnel.remote),
        match tunnel.local {
            crate::model::LocalEndpoint::Address(a) => Some(a),
            crate::model::LocalEndpoint::DefaultRoute => None,
        },
    ];
    host && outer.iter().flatten().any(|a| *a == net.addr())
}

/// SNAT rules match packets routed into the tunnel device, or (GRE tunnels) packets that a
/// policy-based child carries beside the GRE link; anything else would leave in clear.
fn snat_has_route(ctx: &Context<'_>, tunnel: &Tunnel, spans: &Spans) {
    for (i, rule) in tunnel.snat.iter().enumerate() {
        if tunnel.routes_cover(&rule.to) {
            continue;
        }
        let carrier =
            policy_children(tunnel).find(|c| covers(c.remote_ts.iter().map(|t| t.net), &rule.to));
        match carrier {
            None => ctx.error(
                spans.snat_to.get(i).cloned().unwrap_or(0..0),
                format!("SNAT destination {} is not routed into this tunnel", rule.to),
                Some(format!("add [[route]] to = \"{}\"", rule.to)),
            ),
            Some(child) if !covers(child.local_ts.iter().map(|t| t.net), &IpNet::from(rule.source)) => ctx.error(
                spans.snat_source.get(i).cloned().unwrap_or(0..0),
                format!("SNAT source {} is outside the local_ts of child \"{}\"", rule.source, child.name),
                Some("the agreed address must be part of local_ts, or the peer drops the traffic".into()),
            ),
            Some(_) => {}
        }
    }
}

/// Children of a GRE tunnel that carry something other than the GRE link itself: their
/// traffic is matched by XFRM policy, not routed into a device.
pub fn policy_children(tunnel: &Tunnel) -> impl Iterator<Item = &Child> {
    let gre_inner = tunnel.gre.as_ref().and_then(|g| g.local.zip(g.remote));
    tunnel.children.iter().filter(move |c| {
        tunnel.kind == TunnelKind::Gre
            && c.mode == Mode::Tunnel
            && match gre_inner {
                Some((local, remote)) => {
                    !(covers(c.local_ts.iter().map(|t| t.net), &IpNet::from(local))
                        && covers(c.remote_ts.iter().map(|t| t.net), &IpNet::from(remote)))
                }
                None => true,
            }
    })
}
