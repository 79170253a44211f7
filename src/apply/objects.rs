//! Kernel objects as the dataplane manages them: fully resolved (no `%defaultroute` left),
//! each with an identity ([`ObjectKey`]) and the tunnel it belongs to.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::model::Mode;
use crate::plan::Direction;

/// The main routing table's number.
pub const MAIN_TABLE: u32 = 254;
/// Objects say 0 for IPv6's default metric in both families, so a profile's 0 and the
/// kernel's 1024 compare equal.
pub use crate::model::IPV6_DEFAULT_METRIC;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum LinkKind {
    Vti {
        local: IpAddr,
        remote: IpAddr,
        ikey: u32,
        okey: u32,
    },
    Gre {
        local: IpAddr,
        remote: IpAddr,
        key: Option<u32>,
        ttl: u8,
    },
    Xfrm {
        if_id: u32,
        link: Option<String>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub name: String,
    pub kind: LinkKind,
    pub mtu: u32,
    pub multicast: bool,
    pub up: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub device: String,
    pub address: IpNet,
    pub peer: Option<IpAddr>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteType {
    Unicast,
    Blackhole,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub table: u32,
    pub to: IpNet,
    pub metric: u32,
    pub route_type: RouteType,
    pub device: Option<String>,
    pub via: Option<IpAddr>,
    pub src: Option<IpAddr>,
    pub protocol: u8,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub ipv6: bool,
    pub priority: u32,
    pub from: Option<IpNet>,
    pub to: Option<IpNet>,
    pub table: u32,
    pub protocol: u8,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sysctl {
    /// Dotted name, e.g. `net.ipv4.conf.gre1.rp_filter`.
    pub key: String,
    pub value: String,
}

impl Sysctl {
    /// The file under /proc/sys. Device names may contain dots, which sysctl.conf writes as
    /// slashes; routevpn's names never do (profile validation), so dots map to slashes.
    pub fn proc_path(&self) -> std::path::PathBuf {
        std::path::Path::new("/proc/sys").join(self.key.replace('.', "/"))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub mode: Mode,
    pub reqid: u32,
}

/// XFRM selectors hold a port and a mask, not a range: the smallest aligned block covering
/// `range` is what the kernel keeps, so plans are normalised to it.
pub fn selector_ports(range: Option<(u16, u16)>) -> Option<(u16, u16)> {
    let (lo, hi) = range?;
    let differing = 16 - (lo ^ hi).leading_zeros();
    let mask = u16::MAX.checked_shl(differing).unwrap_or(0);
    (mask != 0).then_some((lo & mask, lo | !mask))
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub direction: Direction,
    pub src: IpNet,
    pub dst: IpNet,
    pub protocol: Option<u8>,
    pub src_ports: Option<(u16, u16)>,
    pub dst_ports: Option<(u16, u16)>,
    pub mark: Option<u32>,
    pub if_id: Option<u32>,
    pub priority: u32,
    pub template: Template,
}

/// Key bytes inside an object: compared in constant time, never printed or serialized.
#[derive(Clone, Debug)]
pub struct KeyMaterial(pub crate::ike::crypto::Secret);

impl PartialEq for KeyMaterial {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len() && self.0.ct_eq(other.0.expose())
    }
}

impl Eq for KeyMaterial {}

/// An ESP SA: manually keyed ones (`keying = "manual"`) are reconciled like every other
/// object; the daemon installs and removes those the IKE engine negotiates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sa {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub spi: u32,
    pub mode: Mode,
    pub reqid: u32,
    pub mark: Option<u32>,
    pub if_id: Option<u32>,
    pub encryption: crate::proposal::Encryption,
    pub key: KeyMaterial,
    pub integrity: Option<(crate::proposal::Integrity, KeyMaterial)>,
    /// ESP in UDP (NAT-T): (source port, destination port) of this SA's packets.
    pub encap: Option<(u16, u16)>,
    /// Soft and hard limits; `None`: unlimited (manual SAs).
    pub lifetimes: Option<crate::ike::engine::Lifetimes>,
    /// 64-bit sequence numbers, as negotiated.
    pub esn: bool,
    /// Packets; 0: no replay protection.
    pub replay_window: u32,
}

/// routevpn's whole nftables table, compared and replaced as one unit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NftTable {
    pub name: String,
    pub table: crate::plan::NftTable,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Object {
    Link(Link),
    Sysctl(Sysctl),
    Address(Address),
    Route(Route),
    Rule(Rule),
    Sa(Sa),
    Policy(Policy),
    Nft(NftTable),
}

/// What identifies an object in the kernel: two objects with one key cannot coexist.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "object")]
pub enum ObjectKey {
    Link {
        name: String,
    },
    Sysctl {
        key: String,
    },
    Address {
        device: String,
        address: IpNet,
    },
    Route {
        table: u32,
        to: IpNet,
        metric: u32,
    },
    Rule {
        ipv6: bool,
        priority: u32,
        from: Option<IpNet>,
        to: Option<IpNet>,
        table: u32,
    },
    Policy {
        direction: Direction,
        src: IpNet,
        dst: IpNet,
        protocol: Option<u8>,
        src_ports: Option<(u16, u16)>,
        dst_ports: Option<(u16, u16)>,
        mark: Option<u32>,
        if_id: Option<u32>,
    },
    Sa {
        dst: IpAddr,
        spi: u32,
    },
    Nft {
        name: String,
    },
}

impl Object {
    pub fn key(&self) -> ObjectKey {
        match self {
            Object::Link(l) => ObjectKey::Link {
                name: l.name.clone(),
            },
            Object::Sysctl(s) => ObjectKey::Sysctl { key: s.key.clone() },
            Object::Address(a) => ObjectKey::Address {
                device: a.device.clone(),
                address: a.address,
            },
            Object::Route(r) => ObjectKey::Route {
                table: r.table,
                to: r.to,
                metric: r.metric,
            },
            Object::Rule(r) => ObjectKey::Rule {
                ipv6: r.ipv6,
                priority: r.priority,
                from: r.from,
                to: r.to,
                table: r.table,
            },
            Object::Policy(p) => ObjectKey::Policy {
                direction: p.direction,
                src: p.src,
                dst: p.dst,
                protocol: p.protocol,
                src_ports: p.src_ports,
                dst_ports: p.dst_ports,
                mark: p.mark,
                if_id: p.if_id,
            },
            Object::Sa(sa) => ObjectKey::Sa {
                dst: sa.dst,
                spi: sa.spi,
            },
            Object::Nft(t) => ObjectKey::Nft {
                name: t.name.clone(),
            },
        }
    }

    /// Creation order: what later objects depend on comes first; deletion is the reverse.
    pub fn stage(&self) -> u8 {
        match self {
            Object::Link(_) => 0,
            Object::Sysctl(_) => 1,
            Object::Address(_) => 2,
            Object::Route(_) => 3,
            Object::Rule(_) => 4,
            Object::Sa(_) => 5,
            Object::Policy(_) => 6,
            Object::Nft(_) => 7,
        }
    }

    /// Whether `self` can become `other` in place, or must be deleted and created again.
    pub fn updatable_to(&self, other: &Object) -> bool {
        match (self, other) {
            // MTU, flags and state change in place; the tunnel's own parameters do not.
            (Object::Link(a), Object::Link(b)) => a.kind == b.kind,
            (Object::Sysctl(_), Object::Sysctl(_)) => true,
            (Object::Policy(_), Object::Policy(_)) => true,
            (Object::Nft(_), Object::Nft(_)) => true,
            // Routes are replaced (NLM_F_REPLACE) with their key unchanged.
            (Object::Route(_), Object::Route(_)) => true,
            _ => false,
        }
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ObjectKey::Link { name } => write!(f, "link {name}"),
            ObjectKey::Sysctl { key } => write!(f, "sysctl {key}"),
            ObjectKey::Address { device, address } => write!(f, "address {address} dev {device}"),
            ObjectKey::Route { table, to, metric } => {
                write!(f, "route {to} table {table} metric {metric}")
            }
            ObjectKey::Rule {
                priority,
                from,
                to,
                table,
                ..
            } => {
                write!(f, "rule {priority}")?;
                if let Some(from) = from {
                    write!(f, " from {from}")?;
                }
                if let Some(to) = to {
                    write!(f, " to {to}")?;
                }
                write!(f, " lookup {table}")
            }
            ObjectKey::Policy {
                direction,
                src,
                dst,
                mark,
                if_id,
                ..
            } => {
                write!(f, "xfrm policy {direction:?} {src} -> {dst}")?;
                if let Some(mark) = mark {
                    write!(f, " mark {mark:#x}")?;
                }
                if let Some(id) = if_id {
                    write!(f, " if_id {id:#x}")?;
                }
                Ok(())
            }
            ObjectKey::Sa { dst, spi } => write!(f, "xfrm state esp spi {spi:#010x} dst {dst}"),
            ObjectKey::Nft { name } => write!(f, "nftables table inet {name}"),
        }
    }
}

/// A desired object with the tunnel it serves (`None`: shared, like the nftables table).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owned {
    pub tunnel: Option<String>,
    pub object: Object,
}
