//! rtnetlink: links, addresses, routes and rules, read with one dump each and written in
//! pipelined batches over one `NETLINK_ROUTE` socket.

pub mod address;
pub mod link;
pub mod route;
pub mod rule;

use std::collections::BTreeMap;
use std::io;
use std::net::IpAddr;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::address::AddressMessage;
use netlink_packet_route::link::{InfoKind, LinkMessage};
use netlink_packet_route::route::RouteMessage;
use netlink_packet_route::rule::RuleMessage;
use netlink_packet_route::RouteNetlinkMessage as Msg;

use super::socket::Socket;
use super::{Backend, RouteBackend};
use crate::apply::diff::Change;
use crate::apply::kernel::{Egress, KernelError, Scope};
use crate::apply::objects::{Link, LinkKind, Object};
use link::Links;

/// Test support for kernels without tunnel drivers: links are created as `kind` (with no
/// kind-specific attributes) and read back as the tunnel they stand in for.
#[doc(hidden)]
pub struct StandIn {
    pub kind: InfoKind,
    pub links: BTreeMap<String, LinkKind>,
}

pub struct Rtnl {
    socket: Socket<Msg>,
    /// Names and indexes as of the last link dump; `None` once links were added or removed.
    links: Option<Links>,
    stand_in: Option<StandIn>,
}

fn failed(what: &str, e: io::Error) -> KernelError {
    KernelError {
        object: None,
        message: format!("{what}: {e}"),
    }
}

fn object_of(change: &Change) -> &Object {
    match change {
        Change::Create(o) | Change::Update { to: o, .. } => &o.object,
        Change::Delete { object, .. } => object,
    }
}

fn is_link(change: &Change) -> bool {
    matches!(object_of(change), Object::Link(_))
}

/// Whether a change adds or removes a device, which makes the index map stale.
fn moves_links(change: &Change) -> bool {
    matches!(change, Change::Create(_) | Change::Delete { .. }) && is_link(change)
}

impl Rtnl {
    pub fn open() -> io::Result<Rtnl> {
        Ok(Rtnl {
            socket: Socket::open(netlink_sys::protocols::NETLINK_ROUTE)?,
            links: None,
            stand_in: None,
        })
    }

    /// See [`StandIn`]: for tests on hosts that cannot create tunnels.
    #[doc(hidden)]
    pub fn with_stand_in(mut self, kind: InfoKind) -> Rtnl {
        self.stand_in = Some(StandIn {
            kind,
            links: BTreeMap::new(),
        });
        self
    }

    fn dump_links(&mut self) -> io::Result<Vec<LinkMessage>> {
        let messages = self.socket.dump(Msg::GetLink(LinkMessage::default()))?;
        let links: Vec<LinkMessage> = messages
            .into_iter()
            .filter_map(|m| match m {
                Msg::NewLink(l) => Some(l),
                _ => None,
            })
            .collect();
        self.links = Some(Links::from_messages(&links));
        Ok(links)
    }

    fn links(&mut self) -> io::Result<&Links> {
        if self.links.is_none() {
            self.dump_links()?;
        }
        Ok(self.links.get_or_insert_with(Links::default))
    }

    fn link_request(&mut self, change: &Change, link: &Link) -> Result<(u16, Msg), String> {
        Ok(match change {
            Change::Create(_) => {
                let info = match &mut self.stand_in {
                    Some(s) => {
                        s.links.insert(link.name.clone(), link.kind.clone());
                        vec![netlink_packet_route::link::LinkInfo::Kind(s.kind.clone())]
                    }
                    None => {
                        let links = self.links().map_err(|e| e.to_string())?;
                        link::kind_info(&link.kind, links)?
                    }
                };
                (
                    NLM_F_CREATE | NLM_F_EXCL,
                    Msg::NewLink(link::new_link(link, info)),
                )
            }
            Change::Update { .. } => (0, Msg::SetLink(link::set_link(link))),
            Change::Delete { .. } => (0, Msg::DelLink(link::del_link(&link.name))),
        })
    }

    fn index(&mut self, device: &str) -> Result<u32, String> {
        let links = self.links().map_err(|e| e.to_string())?;
        links
            .index(device)
            .ok_or_else(|| format!("no device {device}"))
    }

    /// The request carrying out one change, or why there can be none.
    fn request(&mut self, change: &Change) -> Result<(u16, Msg), String> {
        let create = NLM_F_CREATE | NLM_F_EXCL;
        Ok(match (change, object_of(change)) {
            (_, Object::Link(l)) => self.link_request(change, l)?,
            (Change::Delete { .. }, Object::Address(a)) => {
                let index = self.index(&a.device)?;
                (0, Msg::DelAddress(address::address_message(a, index)))
            }
            (_, Object::Address(a)) => {
                let index = self.index(&a.device)?;
                (create, Msg::NewAddress(address::new_address(a, index)))
            }
            (Change::Delete { .. }, Object::Route(r)) => (0, Msg::DelRoute(route::del_route(r))),
            (_, Object::Route(r)) => {
                let oif = match &r.device {
                    Some(d) => Some(self.index(d)?),
                    None => None,
                };
                let flags = match change {
                    // Created if it vanished since it was read: the outcome is the same.
                    Change::Update { .. } => NLM_F_REPLACE | NLM_F_CREATE,
                    _ => create,
                };
                (flags, Msg::NewRoute(route::new_route(r, oif)))
            }
            (Change::Delete { .. }, Object::Rule(r)) => (0, Msg::DelRule(rule::rule_message(r))),
            (Change::Update { .. }, Object::Rule(_)) => {
                return Err("rules are replaced, not updated".into())
            }
            (_, Object::Rule(r)) => (create, Msg::NewRule(rule::rule_message(r))),
            _ => return Err("not an rtnetlink object".into()),
        })
    }

    /// One pipelined batch; requests that could not be built fail without being sent.
    fn send(&mut self, changes: &[&Change]) -> Vec<Result<(), KernelError>> {
        let mut built = Vec::with_capacity(changes.len());
        let mut requests = Vec::with_capacity(changes.len());
        for change in changes {
            match self.request(change) {
                Ok(r) => {
                    requests.push(r);
                    built.push(Ok(()));
                }
                Err(message) => built.push(Err(message)),
            }
        }
        let mut sent = self.socket.batch(requests).into_iter();
        changes
            .iter()
            .zip(built)
            .map(|(change, b)| {
                let outcome = match b {
                    Ok(()) => sent
                        .next()
                        .unwrap_or_else(|| Err(io::Error::other("no acknowledgement")))
                        .map_err(|e| e.to_string()),
                    Err(message) => Err(message),
                };
                outcome.map_err(|message| KernelError {
                    object: Some(change.key()),
                    message,
                })
            })
            .collect()
    }
}

impl Backend for Rtnl {
    fn read(&mut self, scope: &Scope, out: &mut Vec<Object>) -> Result<(), KernelError> {
        let link_messages = self.dump_links().map_err(|e| failed("reading links", e))?;
        let links = self.links.clone().unwrap_or_default();
        let mut in_scope = std::collections::HashSet::new();
        for m in &link_messages {
            let Some(name) = link::name_of(m) else {
                continue;
            };
            if !scope.all_links && !scope.links.contains(name) {
                continue;
            }
            in_scope.insert(m.header.index);
            if let Some(l) = link::decode_link(m, &links, self.stand_in.as_ref()) {
                out.push(Object::Link(l));
            }
            for (key, value) in link::devconf_sysctls(m, name) {
                if scope.sysctls.contains(&key) {
                    out.push(Object::Sysctl(crate::apply::objects::Sysctl { key, value }));
                }
            }
        }

        let addresses = self
            .socket
            .dump(Msg::GetAddress(AddressMessage::default()))
            .map_err(|e| failed("reading addresses", e))?;
        for m in &addresses {
            if let Msg::NewAddress(a) = m {
                if in_scope.contains(&a.header.index) {
                    out.extend(address::decode_address(a, &links).map(Object::Address));
                }
            }
        }

        let routes = self
            .socket
            .dump(Msg::GetRoute(RouteMessage::default()))
            .map_err(|e| failed("reading routes", e))?;
        for m in &routes {
            if let Msg::NewRoute(r) = m {
                out.extend(route::decode_route(r, &links).map(Object::Route));
            }
        }

        let rules = self
            .socket
            .dump(Msg::GetRule(RuleMessage::default()))
            .map_err(|e| failed("reading rules", e))?;
        for m in &rules {
            if let Msg::NewRule(r) = m {
                out.extend(rule::decode_rule(r).map(Object::Rule));
            }
        }
        Ok(())
    }

    /// Sent in as few batches as dependencies allow: a change that names a device is only
    /// encoded once the links before it exist, since it needs their new index. Changes are
    /// ordered by stage, so that is one batch per stretch of link and non-link changes.
    fn execute(&mut self, changes: &[&Change]) -> Vec<Result<(), KernelError>> {
        super::in_runs(changes, is_link, |run| {
            let outcome = self.send(run);
            if run.iter().any(|c| moves_links(c)) {
                self.links = None;
            }
            outcome
        })
    }
}

impl RouteBackend for Rtnl {
    fn egress(&mut self, remote: IpAddr) -> Result<Egress, KernelError> {
        let fail = |message: String| KernelError {
            object: None,
            message: format!("route to {remote}: {message}"),
        };
        let answer = self
            .socket
            .request(0, Msg::GetRoute(route::lookup(remote)))
            .map_err(|e| fail(e.to_string()))?;
        let found = answer
            .iter()
            .find_map(|m| match m {
                Msg::NewRoute(r) => Some(route::decode_lookup(r)),
                _ => None,
            })
            .ok_or_else(|| fail("no answer".into()))?;
        let (Some(source), Some(oif)) = (found.source, found.oif) else {
            return Err(fail("no source address or device".into()));
        };
        let mut query = LinkMessage::default();
        query.header.index = oif;
        let device = self
            .socket
            .request(0, Msg::GetLink(query))
            .map_err(|e| fail(format!("device {oif}: {e}")))?
            .into_iter()
            .find_map(|m| match m {
                Msg::NewLink(l) => Some(l),
                _ => None,
            })
            .ok_or_else(|| fail(format!("device {oif} not found")))?;
        let name = link::name_of(&device)
            .ok_or_else(|| fail(format!("device {oif} has no name")))?
            .to_string();
        let device_mtu = device.attributes.iter().find_map(|a| match a {
            netlink_packet_route::link::LinkAttribute::Mtu(m) => Some(*m),
            _ => None,
        });
        let mtu = found
            .mtu
            .or(device_mtu)
            .ok_or_else(|| fail(format!("device {name} reports no MTU")))?;
        Ok(Egress {
            source,
            device: name,
            mtu,
        })
    }
}
