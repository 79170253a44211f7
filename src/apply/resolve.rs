//! Plan → kernel objects, with `%defaultroute` replaced by the address the kernel would use.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

use super::kernel::Egress;
use super::objects::{self as obj, Object, Owned, IPV6_DEFAULT_METRIC, MAIN_TABLE};
use crate::plan::{
    self, Endpoint, LinkKind, Plan, PolicyNet, RouteKind, TunnelPlan, ROUTE_PROTOCOL,
};
use crate::profile::keys::{ManualSa, SaDirection};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unresolved {
    pub tunnel: String,
}

impl std::fmt::Display for Unresolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "tunnel {}: local = %defaultroute, but there is no route to the peer to take a source address from",
            self.tunnel
        )
    }
}

fn endpoint(e: Endpoint, egress: Option<&Egress>, tunnel: &str) -> Result<IpAddr, Unresolved> {
    match e {
        Endpoint::Address(a) => Ok(a),
        Endpoint::DefaultRoute => egress.map(|g| g.source).ok_or_else(|| Unresolved {
            tunnel: tunnel.into(),
        }),
    }
}

fn tunnel_objects(
    t: &TunnelPlan,
    egress: Option<&Egress>,
    out: &mut Vec<Owned>,
) -> Result<(), Unresolved> {
    let local = |e| endpoint(e, egress, &t.name);
    let kind = match &t.link.kind {
        LinkKind::Vti {
            local: l,
            remote,
            mark,
            ..
        } => obj::LinkKind::Vti {
            local: local(*l)?,
            remote: *remote,
            ikey: *mark,
            okey: *mark,
        },
        LinkKind::Gre {
            local: l,
            remote,
            key,
            ttl,
            ..
        } => obj::LinkKind::Gre {
            local: local(*l)?,
            remote: *remote,
            key: *key,
            ttl: *ttl,
        },
        LinkKind::Xfrm { if_id, link } => obj::LinkKind::Xfrm {
            if_id: *if_id,
            link: link.clone(),
        },
    };
    let mut push = |object| {
        out.push(Owned {
            tunnel: Some(t.name.clone()),
            object,
        })
    };
    push(Object::Link(obj::Link {
        name: t.link.name.clone(),
        kind,
        mtu: t.link.mtu,
        multicast: t.link.multicast,
        up: t.link.up,
    }));
    for s in &t.sysctls {
        push(Object::Sysctl(obj::Sysctl {
            key: s.key.clone(),
            value: s.value.clone(),
        }));
    }
    for a in &t.addresses {
        push(Object::Address(obj::Address {
            device: a.device.clone(),
            address: a.address,
            peer: a.peer,
        }));
    }
    for r in &t.routes {
        push(Object::Route(obj::Route {
            table: r.table.unwrap_or(MAIN_TABLE),
            to: r.to,
            // An explicit 1024 is IPv6's 0: one kernel route, so one key.
            metric: if r.to.addr().is_ipv6() && r.metric == IPV6_DEFAULT_METRIC {
                0
            } else {
                r.metric
            },
            route_type: match r.kind {
                RouteKind::Unicast => obj::RouteType::Unicast,
                RouteKind::Blackhole => obj::RouteType::Blackhole,
            },
            device: r.device.clone(),
            via: r.via,
            src: r.src,
            protocol: r.protocol,
        }));
    }
    for r in &t.rules {
        let ipv6 = r.from.or(r.to).is_some_and(|n| n.addr().is_ipv6());
        push(Object::Rule(obj::Rule {
            ipv6,
            priority: r.priority,
            from: r.from,
            to: r.to,
            table: r.table,
            protocol: ROUTE_PROTOCOL,
        }));
    }
    let net = |n: PolicyNet| -> Result<IpNet, Unresolved> {
        match n {
            PolicyNet::Prefix(p) => Ok(p),
            PolicyNet::LocalOuter => {
                endpoint(Endpoint::DefaultRoute, egress, &t.name).map(IpNet::from)
            }
        }
    };
    for p in &t.policies {
        push(Object::Policy(obj::Policy {
            direction: p.direction,
            src: net(p.src)?,
            dst: net(p.dst)?,
            protocol: p.protocol,
            src_ports: obj::selector_ports(p.src_ports),
            dst_ports: obj::selector_ports(p.dst_ports),
            mark: p.mark,
            if_id: p.if_id,
            priority: p.priority,
            template: obj::Template {
                src: local(p.template.src)?,
                dst: local(p.template.dst)?,
                mode: p.template.mode,
                reqid: p.template.reqid,
            },
        }));
    }
    Ok(())
}

/// Manually keyed SAs take the reqid, mode and mark / if_id the plan chose for their child.
fn manual_sas(
    t: &TunnelPlan,
    egress: Option<&Egress>,
    sas: &[ManualSa],
    out: &mut Vec<Owned>,
) -> Result<(), Unresolved> {
    let local = endpoint(t.ike.local, egress, &t.name)?;
    for sa in sas {
        let Some(child) = t.ike.children.iter().find(|c| c.name == sa.child) else {
            continue;
        };
        let (src, dst) = match sa.direction {
            SaDirection::Out => (local, t.ike.remote),
            SaDirection::In => (t.ike.remote, local),
        };
        out.push(Owned {
            tunnel: Some(t.name.clone()),
            object: Object::Sa(obj::Sa {
                src,
                dst,
                spi: sa.spi,
                mode: child.mode,
                reqid: child.reqid,
                mark: child.mark,
                if_id: child.if_id,
                encryption: sa.encryption,
                key: obj::KeyMaterial(sa.key.clone()),
                integrity: sa
                    .integrity
                    .as_ref()
                    .map(|(i, k)| (*i, obj::KeyMaterial(k.clone()))),
                encap: None,
                lifetimes: None,
                // Nothing negotiates ESN for manual keys.
                esn: false,
                replay_window: child.replay_window,
            }),
        });
    }
    Ok(())
}

/// Every object the plan asks for. `egress` holds, per tunnel, where its peer is reached.
pub fn objects(
    plan: &Plan,
    egress: &BTreeMap<String, Egress>,
    manual: &BTreeMap<String, Vec<ManualSa>>,
) -> Result<Vec<Owned>, Unresolved> {
    let mut out = Vec::new();
    for t in &plan.tunnels {
        tunnel_objects(t, egress.get(&t.name), &mut out)?;
        if let Some(sas) = manual.get(&t.name) {
            manual_sas(t, egress.get(&t.name), sas, &mut out)?;
        }
    }
    for s in &plan.sysctls {
        out.push(Owned {
            tunnel: None,
            object: Object::Sysctl(obj::Sysctl {
                key: s.key.clone(),
                value: s.value.clone(),
            }),
        });
    }
    let has_rules = plan.nftables.chains.iter().any(|c| !c.rules.is_empty());
    if has_rules {
        out.push(Owned {
            tunnel: None,
            object: Object::Nft(obj::NftTable {
                name: plan::NFT_TABLE.to_string(),
                table: plan.nftables.clone(),
            }),
        });
    }
    Ok(out)
}
