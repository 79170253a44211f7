//! XFRM policies. They are installed with the tunnel and stay while it is configured, SAs or
//! not: a packet that matches a policy whose template has no SA is dropped, never sent in
//! clear. That is what makes every tunnel fail closed.

use ipnet::IpNet;
use serde::Serialize;

use super::{Endpoint, IkePlan};
use crate::model::{Mode, TrafficSelector, Tunnel};

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Out,
    In,
    Fwd,
}

/// A selector address: a prefix, or the local outer address (`dynamic`), known at apply time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyNet {
    Prefix(IpNet),
    LocalOuter,
}

impl std::fmt::Display for PolicyNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PolicyNet::Prefix(net) => write!(f, "{net}"),
            PolicyNet::LocalOuter => f.write_str("%local"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct XfrmTemplate {
    pub src: Endpoint,
    pub dst: Endpoint,
    pub mode: Mode,
    pub reqid: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct XfrmPolicy {
    pub child: String,
    pub direction: Direction,
    pub src: PolicyNet,
    pub dst: PolicyNet,
    pub protocol: Option<u8>,
    pub src_ports: Option<(u16, u16)>,
    pub dst_ports: Option<(u16, u16)>,
    pub mark: Option<u32>,
    pub if_id: Option<u32>,
    pub priority: u32,
    pub template: XfrmTemplate,
}

const PRIORITY_BASE: u32 = 0x3000;

/// More specific selectors get a smaller number, i.e. win, as in strongSwan.
fn priority(src_len: u8, dst_len: u8, max: u8, protocol: Option<u8>, ports: bool) -> u32 {
    let unspecific = 2 * u32::from(max) - u32::from(src_len) - u32::from(dst_len);
    PRIORITY_BASE + unspecific * 4 + u32::from(protocol.is_none()) * 2 + u32::from(!ports)
}

struct Side {
    net: PolicyNet,
    ipv6: bool,
    len: u8,
}

fn side(ts: &TrafficSelector, outer: Endpoint, outer_ipv6: bool) -> Side {
    match (ts.net, outer) {
        (Some(net), _) => Side {
            net: PolicyNet::Prefix(net),
            ipv6: net.addr().is_ipv6(),
            len: net.prefix_len(),
        },
        (None, Endpoint::Address(a)) => Side {
            net: PolicyNet::Prefix(IpNet::from(a)),
            ipv6: a.is_ipv6(),
            len: if a.is_ipv6() { 128 } else { 32 },
        },
        (None, Endpoint::DefaultRoute) => Side {
            net: PolicyNet::LocalOuter,
            ipv6: outer_ipv6,
            len: if outer_ipv6 { 128 } else { 32 },
        },
    }
}

/// The protocol both selectors allow, or `Err` when they exclude each other.
fn common_protocol(a: Option<u8>, b: Option<u8>) -> Result<Option<u8>, ()> {
    match (a, b) {
        (Some(x), Some(y)) if x != y => Err(()),
        (x, y) => Ok(x.or(y)),
    }
}

pub fn policies(tunnel: &Tunnel, ike: &IkePlan) -> Vec<XfrmPolicy> {
    let local = ike.local;
    let remote = Endpoint::Address(ike.remote);
    let outer_ipv6 = tunnel.outer_is_ipv6();
    let mut out = Vec::new();
    for child in &ike.children {
        for l in &child.local_ts {
            for r in &child.remote_ts {
                let ls = side(l, local, outer_ipv6);
                let rs = side(r, remote, outer_ipv6);
                if ls.ipv6 != rs.ipv6 {
                    continue;
                }
                let Ok(protocol) = common_protocol(l.protocol, r.protocol) else {
                    continue;
                };
                let max = if ls.ipv6 { 128 } else { 32 };
                let ports = l.ports.is_some() || r.ports.is_some();
                let prio = priority(ls.len, rs.len, max, protocol, ports);
                let mut directions = vec![Direction::Out, Direction::In];
                if child.mode == Mode::Tunnel {
                    directions.push(Direction::Fwd);
                }
                for direction in directions {
                    let outbound = direction == Direction::Out;
                    let (src, dst) = if outbound {
                        (ls.net, rs.net)
                    } else {
                        (rs.net, ls.net)
                    };
                    let (src_ports, dst_ports) = if outbound {
                        (l.ports, r.ports)
                    } else {
                        (r.ports, l.ports)
                    };
                    let (tsrc, tdst) = if outbound {
                        (local, remote)
                    } else {
                        (remote, local)
                    };
                    out.push(XfrmPolicy {
                        child: child.name.clone(),
                        direction,
                        src,
                        dst,
                        protocol,
                        src_ports,
                        dst_ports,
                        mark: child.mark,
                        if_id: child.if_id,
                        priority: prio,
                        template: XfrmTemplate {
                            src: tsrc,
                            dst: tdst,
                            mode: child.mode,
                            reqid: child.reqid,
                        },
                    });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specific_selectors_win() {
        let host = priority(32, 32, 32, Some(47), false);
        let net = priority(24, 24, 32, None, false);
        let any = priority(0, 0, 32, None, false);
        assert!(host < net && net < any);
    }

    #[test]
    fn protocols_must_agree() {
        assert_eq!(common_protocol(Some(47), None), Ok(Some(47)));
        assert_eq!(common_protocol(Some(6), Some(17)), Err(()));
        assert_eq!(common_protocol(None, None), Ok(None));
    }
}
