//! Routes: `RTM_NEWROUTE`/`RTM_DELROUTE` for [`Route`], the decoding of dumped ones, and the
//! `RTM_GETROUTE` lookup behind egress.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteMetric, RouteProtocol, RouteScope,
    RouteType as Kind, RouteVia,
};
use netlink_packet_route::AddressFamily;

use super::address::family;
use super::link::Links;
use crate::apply::objects::{Route, RouteType, IPV6_DEFAULT_METRIC};

/// The metric as the kernel stores it.
fn kernel_metric(route: &Route) -> u32 {
    if route.to.addr().is_ipv6() && route.metric == 0 {
        IPV6_DEFAULT_METRIC
    } else {
        route.metric
    }
}

fn object_metric(ipv6: bool, metric: u32) -> u32 {
    if ipv6 && metric == IPV6_DEFAULT_METRIC {
        0
    } else {
        metric
    }
}

/// Header and key attributes: what both creation and deletion need.
fn keyed(route: &Route) -> RouteMessage {
    let mut message = RouteMessage::default();
    let h = &mut message.header;
    h.address_family = family(route.to.addr());
    h.destination_prefix_length = route.to.prefix_len();
    // Tables past 255 only fit the attribute; the header then says "unspecified".
    h.table = u8::try_from(route.table).unwrap_or(0);
    h.protocol = RouteProtocol::from(route.protocol);
    h.kind = match route.route_type {
        RouteType::Unicast => Kind::Unicast,
        RouteType::Blackhole => Kind::BlackHole,
    };
    if route.to.prefix_len() > 0 {
        message
            .attributes
            .push(RouteAttribute::Destination(route.to.addr().into()));
    }
    message.attributes.push(RouteAttribute::Table(route.table));
    let metric = kernel_metric(route);
    if metric != 0 {
        message.attributes.push(RouteAttribute::Priority(metric));
    }
    message
}

/// Creation or replacement. `oif` is the index of `route.device`.
pub fn new_route(route: &Route, oif: Option<u32>) -> RouteMessage {
    let mut message = keyed(route);
    // A route straight onto a device reaches only that link, as `ip route` scopes it.
    if route.route_type == RouteType::Unicast && route.via.is_none() {
        message.header.scope = RouteScope::Link;
    }
    if let Some(index) = oif {
        message.attributes.push(RouteAttribute::Oif(index));
    }
    if let Some(via) = route.via {
        message
            .attributes
            .push(if via.is_ipv6() == route.to.addr().is_ipv6() {
                RouteAttribute::Gateway(via.into())
            } else {
                RouteAttribute::Via(via.into())
            });
    }
    if let Some(src) = route.src {
        message
            .attributes
            .push(RouteAttribute::PrefSource(src.into()));
    }
    message
}

/// Deletion by key. Scope "nowhere" matches routes of any scope (IPv4 compares it).
pub fn del_route(route: &Route) -> RouteMessage {
    let mut message = keyed(route);
    message.header.scope = RouteScope::NoWhere;
    message
}

fn ip(address: &RouteAddress) -> Option<IpAddr> {
    match address {
        RouteAddress::Inet(a) => Some((*a).into()),
        RouteAddress::Inet6(a) => Some((*a).into()),
        _ => None,
    }
}

fn via_ip(via: &RouteVia) -> Option<IpAddr> {
    match via {
        RouteVia::Inet(a) => Some((*a).into()),
        RouteVia::Inet6(a) => Some((*a).into()),
        _ => None,
    }
}

/// A dumped route as a [`Route`]: unicast and blackhole routes only, without cached clones
/// or source-specific (IPv6 `from`) and TOS routes, which routevpn never makes.
pub fn decode_route(message: &RouteMessage, links: &Links) -> Option<Route> {
    let h = &message.header;
    let route_type = match h.kind {
        Kind::Unicast => RouteType::Unicast,
        Kind::BlackHole => RouteType::Blackhole,
        _ => return None,
    };
    if h.flags.contains(RouteFlags::Cloned) || h.source_prefix_length != 0 || h.tos != 0 {
        return None;
    }
    let any: IpAddr = match h.address_family {
        AddressFamily::Inet => Ipv4Addr::UNSPECIFIED.into(),
        AddressFamily::Inet6 => Ipv6Addr::UNSPECIFIED.into(),
        _ => return None,
    };
    let mut route = Route {
        table: u32::from(h.table),
        to: IpNet::new(any, 0).ok()?,
        metric: 0,
        route_type,
        device: None,
        via: None,
        src: None,
        protocol: u8::from(h.protocol),
    };
    let mut dst = any;
    for a in &message.attributes {
        match a {
            RouteAttribute::Destination(d) => dst = ip(d)?,
            RouteAttribute::Table(t) => route.table = *t,
            RouteAttribute::Priority(p) => route.metric = *p,
            RouteAttribute::Oif(i) => route.device = links.name(*i).map(str::to_string),
            RouteAttribute::Gateway(g) => route.via = ip(g),
            RouteAttribute::Via(v) => route.via = via_ip(v),
            RouteAttribute::PrefSource(s) => route.src = ip(s),
            _ => {}
        }
    }
    route.to = IpNet::new(dst, h.destination_prefix_length).ok()?;
    route.metric = object_metric(dst.is_ipv6(), route.metric);
    if route_type == RouteType::Blackhole {
        // IPv6 reports blackholes on the loopback device; they have none.
        route.device = None;
    }
    Some(route)
}

/// `ip route get REMOTE`.
pub fn lookup(remote: IpAddr) -> RouteMessage {
    let mut message = RouteMessage::default();
    message.header.address_family = family(remote);
    message.header.destination_prefix_length = if remote.is_ipv6() { 128 } else { 32 };
    message
        .attributes
        .push(RouteAttribute::Destination(remote.into()));
    message
}

/// What a lookup answered: source address, output device index, route MTU if set.
pub struct Found {
    pub source: Option<IpAddr>,
    pub oif: Option<u32>,
    pub mtu: Option<u32>,
}

pub fn decode_lookup(message: &RouteMessage) -> Found {
    let mut found = Found {
        source: None,
        oif: None,
        mtu: None,
    };
    for a in &message.attributes {
        match a {
            RouteAttribute::PrefSource(s) => found.source = ip(s),
            RouteAttribute::Oif(i) => found.oif = Some(*i),
            RouteAttribute::Metrics(metrics) => {
                found.mtu = metrics.iter().find_map(|m| match m {
                    RouteMetric::Mtu(mtu) if *mtu != 0 => Some(*mtu),
                    _ => None,
                });
            }
            _ => {}
        }
    }
    found
}
