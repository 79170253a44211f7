//! Links: `RTM_NEWLINK`/`RTM_SETLINK`/`RTM_DELLINK` messages for [`Link`], and the decoding
//! of dumped links back into [`Link`], kind-specific attributes included.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_route::link::{
    GreIOFlags, InfoData, InfoGre, InfoGre6, InfoKind, InfoVti, InfoXfrm, LinkAttribute, LinkFlags,
    LinkInfo, LinkMessage,
};

use crate::apply::objects::{Link, LinkKind};

/// Device names and indexes, from one link dump.
#[derive(Clone, Debug, Default)]
pub struct Links {
    by_name: HashMap<String, u32>,
    by_index: HashMap<u32, String>,
}

impl Links {
    pub fn from_messages(messages: &[LinkMessage]) -> Links {
        let mut links = Links::default();
        for m in messages {
            if let Some(name) = name_of(m) {
                links.by_name.insert(name.to_string(), m.header.index);
                links.by_index.insert(m.header.index, name.to_string());
            }
        }
        links
    }

    pub fn index(&self, name: &str) -> Option<u32> {
        self.by_name.get(name).copied()
    }

    pub fn name(&self, index: u32) -> Option<&str> {
        self.by_index.get(&index).map(String::as_str)
    }
}

pub fn name_of(message: &LinkMessage) -> Option<&str> {
    message.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.as_str()),
        _ => None,
    })
}

/// The flags routevpn sets on its links; all others are left as the driver made them.
fn managed_flags() -> LinkFlags {
    LinkFlags::Up | LinkFlags::Multicast
}

fn flags(link: &Link) -> LinkFlags {
    let mut flags = LinkFlags::empty();
    if link.up {
        flags |= LinkFlags::Up;
    }
    if link.multicast {
        flags |= LinkFlags::Multicast;
    }
    flags
}

/// `IFLA_INFO_KIND` and `IFLA_INFO_DATA` for a tunnel. `links` resolves an XFRM interface's
/// underlying device; an unknown one is an error (the message would bind to nothing).
pub fn kind_info(kind: &LinkKind, links: &Links) -> Result<Vec<LinkInfo>, String> {
    let (kind, data) = match kind {
        LinkKind::Vti {
            local,
            remote,
            ikey,
            okey,
        } => {
            let kind = if remote.is_ipv6() {
                InfoKind::Vti6
            } else {
                InfoKind::Vti
            };
            let data = vec![
                InfoVti::Local(*local),
                InfoVti::Remote(*remote),
                InfoVti::IKey(*ikey),
                InfoVti::OKey(*okey),
            ];
            (kind, InfoData::Vti(data))
        }
        LinkKind::Gre {
            local,
            remote,
            key,
            ttl,
        } => gre_info(*local, *remote, *key, *ttl)?,
        LinkKind::Xfrm { if_id, link } => {
            let mut data = vec![InfoXfrm::IfId(*if_id)];
            if let Some(device) = link {
                let index = links
                    .index(device)
                    .ok_or_else(|| format!("no device {device} to bind the XFRM interface to"))?;
                data.push(InfoXfrm::Link(index));
            }
            (InfoKind::Xfrm, InfoData::Xfrm(data))
        }
    };
    Ok(vec![LinkInfo::Kind(kind), LinkInfo::Data(data)])
}

/// The kernel takes the key flag separately from the key: without it the key is ignored.
/// A fixed TTL needs path MTU discovery (the kernel refuses `nopmtudisc` with a TTL), so
/// it is asked for explicitly rather than relying on the default.
fn gre_info(
    local: IpAddr,
    remote: IpAddr,
    key: Option<u32>,
    ttl: u8,
) -> Result<(InfoKind, InfoData), String> {
    let key_flags = if key.is_some() {
        GreIOFlags::Key
    } else {
        GreIOFlags::empty()
    };
    let k = key.unwrap_or(0);
    match (local, remote) {
        (IpAddr::V4(l), IpAddr::V4(r)) => Ok((
            InfoKind::GreTun,
            InfoData::GreTun(vec![
                InfoGre::Local(l),
                InfoGre::Remote(r),
                InfoGre::IFlags(key_flags),
                InfoGre::OFlags(key_flags),
                InfoGre::IKey(k),
                InfoGre::OKey(k),
                InfoGre::Ttl(ttl),
                InfoGre::PathMTUDiscovery(true),
            ]),
        )),
        (IpAddr::V6(l), IpAddr::V6(r)) => Ok((
            InfoKind::GreTun6,
            InfoData::GreTun6(vec![
                InfoGre6::Local(l),
                InfoGre6::Remote(r),
                InfoGre6::IFlags(key_flags),
                InfoGre6::OFlags(key_flags),
                InfoGre6::IKey(k),
                InfoGre6::OKey(k),
                InfoGre6::Ttl(ttl),
            ]),
        )),
        _ => Err(format!(
            "GRE endpoints {local} and {remote} are of different families"
        )),
    }
}

/// Creation: name, kind, MTU, flags and state in one message.
pub fn new_link(link: &Link, info: Vec<LinkInfo>) -> LinkMessage {
    let mut message = set_link(link);
    message.attributes.push(LinkAttribute::LinkInfo(info));
    message
}

/// MTU, flags and state of an existing link, which the kernel finds by name.
pub fn set_link(link: &Link) -> LinkMessage {
    let mut message = LinkMessage::default();
    message.header.flags = flags(link);
    message.header.change_mask = managed_flags();
    message.attributes = vec![
        LinkAttribute::IfName(link.name.clone()),
        LinkAttribute::Mtu(link.mtu),
    ];
    message
}

pub fn del_link(name: &str) -> LinkMessage {
    let mut message = LinkMessage::default();
    message
        .attributes
        .push(LinkAttribute::IfName(name.to_string()));
    message
}

fn info_of(message: &LinkMessage) -> &[LinkInfo] {
    message
        .attributes
        .iter()
        .find_map(|a| match a {
            LinkAttribute::LinkInfo(info) => Some(info.as_slice()),
            _ => None,
        })
        .unwrap_or(&[])
}

pub fn info_kind(message: &LinkMessage) -> Option<&InfoKind> {
    info_of(message).iter().find_map(|i| match i {
        LinkInfo::Kind(k) => Some(k),
        _ => None,
    })
}

/// The tunnel a link's `IFLA_LINKINFO` describes; `None` for kinds routevpn does not make.
pub fn decode_kind(info: &[LinkInfo], links: &Links) -> Option<LinkKind> {
    let data = info.iter().find_map(|i| match i {
        LinkInfo::Data(d) => Some(d),
        _ => None,
    });
    match data? {
        InfoData::Vti(attrs) => Some(decode_vti(attrs)),
        InfoData::GreTun(attrs) => decode_gre(attrs),
        InfoData::GreTun6(attrs) => decode_gre6(attrs),
        InfoData::Xfrm(attrs) => Some(decode_xfrm(attrs, links)),
        _ => None,
    }
}

fn decode_vti(attrs: &[InfoVti]) -> LinkKind {
    let (mut local, mut remote, mut ikey, mut okey) = (None, None, 0, 0);
    for a in attrs {
        match a {
            InfoVti::Local(ip) => local = Some(*ip),
            InfoVti::Remote(ip) => remote = Some(*ip),
            InfoVti::IKey(k) => ikey = *k,
            InfoVti::OKey(k) => okey = *k,
            _ => {}
        }
    }
    // A wildcard endpoint is reported as absent or as the unspecified address.
    let any = |family_of: Option<IpAddr>| match family_of {
        Some(IpAddr::V6(_)) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    };
    LinkKind::Vti {
        local: local.unwrap_or_else(|| any(remote)),
        remote: remote.unwrap_or_else(|| any(local)),
        ikey,
        okey,
    }
}

/// GRE attributes common to both families, gathered before the addresses are typed.
#[derive(Default)]
struct Gre {
    iflags: GreIOFlags,
    oflags: GreIOFlags,
    ikey: u32,
    okey: u32,
    ttl: u8,
}

impl Gre {
    /// A key is only in use with its flag; a link keyed differently each way is not one
    /// routevpn makes, and is not decoded.
    fn key(&self) -> Option<Option<u32>> {
        let (i, o) = (
            self.iflags.contains(GreIOFlags::Key),
            self.oflags.contains(GreIOFlags::Key),
        );
        match (i, o) {
            (false, false) => Some(None),
            (true, true) if self.ikey == self.okey => Some(Some(self.ikey)),
            _ => None,
        }
    }
}

fn decode_gre(attrs: &[InfoGre]) -> Option<LinkKind> {
    let mut g = Gre::default();
    let (mut local, mut remote) = (Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED);
    for a in attrs {
        match a {
            InfoGre::Local(ip) => local = *ip,
            InfoGre::Remote(ip) => remote = *ip,
            InfoGre::IFlags(f) => g.iflags = *f,
            InfoGre::OFlags(f) => g.oflags = *f,
            InfoGre::IKey(k) => g.ikey = *k,
            InfoGre::OKey(k) => g.okey = *k,
            InfoGre::Ttl(t) => g.ttl = *t,
            _ => {}
        }
    }
    Some(LinkKind::Gre {
        local: local.into(),
        remote: remote.into(),
        key: g.key()?,
        ttl: g.ttl,
    })
}

fn decode_gre6(attrs: &[InfoGre6]) -> Option<LinkKind> {
    let mut g = Gre::default();
    let (mut local, mut remote) = (Ipv6Addr::UNSPECIFIED, Ipv6Addr::UNSPECIFIED);
    for a in attrs {
        match a {
            InfoGre6::Local(ip) => local = *ip,
            InfoGre6::Remote(ip) => remote = *ip,
            InfoGre6::IFlags(f) => g.iflags = *f,
            InfoGre6::OFlags(f) => g.oflags = *f,
            InfoGre6::IKey(k) => g.ikey = *k,
            InfoGre6::OKey(k) => g.okey = *k,
            InfoGre6::Ttl(t) => g.ttl = *t,
            _ => {}
        }
    }
    Some(LinkKind::Gre {
        local: local.into(),
        remote: remote.into(),
        key: g.key()?,
        ttl: g.ttl,
    })
}

fn decode_xfrm(attrs: &[InfoXfrm], links: &Links) -> LinkKind {
    let (mut if_id, mut link) = (0, None);
    for a in attrs {
        match a {
            InfoXfrm::IfId(id) => if_id = *id,
            // 0: not bound to a device. An index with no name here (another namespace)
            // still differs from every name a profile can give.
            InfoXfrm::Link(index) if *index != 0 => {
                link = Some(
                    links
                        .name(*index)
                        .map_or_else(|| format!("ifindex {index}"), str::to_string),
                );
            }
            _ => {}
        }
    }
    LinkKind::Xfrm { if_id, link }
}

/// A dumped link as a [`Link`], if its kind is one routevpn makes. `stand_in` decodes
/// links of a substitute kind (see [`super::Rtnl::with_stand_in`]).
pub fn decode_link(
    message: &LinkMessage,
    links: &Links,
    stand_in: Option<&super::StandIn>,
) -> Option<Link> {
    let name = name_of(message)?;
    let kind = match stand_in {
        Some(s) if info_kind(message) == Some(&s.kind) => s.links.get(name).cloned()?,
        _ => decode_kind(info_of(message), links)?,
    };
    let mtu = message.attributes.iter().find_map(|a| match a {
        LinkAttribute::Mtu(m) => Some(*m),
        _ => None,
    })?;
    let flags = message.header.flags;
    Some(Link {
        name: name.to_string(),
        kind,
        mtu,
        multicast: flags.contains(LinkFlags::Multicast),
        up: flags.contains(LinkFlags::Up),
    })
}

/// The device's IPv4 settings as they come with every link dump, named as sysctls: reading
/// them here spares one /proc file per setting and device (thousands on a large host).
pub fn devconf_sysctls(message: &LinkMessage, name: &str) -> Vec<(String, String)> {
    use netlink_packet_route::link::{AfSpecInet, AfSpecUnspec, LinkAttribute};
    let conf = message.attributes.iter().find_map(|a| match a {
        LinkAttribute::AfSpecUnspec(specs) => specs.iter().find_map(|s| match s {
            AfSpecUnspec::Inet(inet) => inet.iter().find_map(|i| match i {
                AfSpecInet::DevConf(c) => Some(c),
                _ => None,
            }),
            _ => None,
        }),
        _ => None,
    });
    let Some(c) = conf else { return Vec::new() };
    [
        ("forwarding", c.forwarding),
        ("rp_filter", c.rp_filter),
        ("send_redirects", c.send_redirects),
        ("accept_local", c.accept_local),
        ("disable_policy", c.nopolicy),
    ]
    .into_iter()
    .map(|(field, value)| (format!("net.ipv4.conf.{name}.{field}"), value.to_string()))
    .collect()
}
