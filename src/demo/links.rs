//! The demo's own wiring: a veth between the two sites and a dummy "LAN" in each, made
//! through rtnetlink from a thread inside the site's namespace.

use std::io;
use std::os::fd::RawFd;

use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::RouteNetlinkMessage as Msg;

use crate::apply::netlink::rtnl::address::new_address;
use crate::apply::netlink::socket::Socket;
use crate::apply::objects::Address;

pub struct Rtnl(Socket<Msg>);

fn named(name: &str) -> LinkMessage {
    let mut message = LinkMessage::default();
    message
        .attributes
        .push(LinkAttribute::IfName(name.to_string()));
    message
}

fn context(what: String) -> impl FnOnce(io::Error) -> io::Error {
    move |e| io::Error::new(e.kind(), format!("{what}: {e}"))
}

impl Rtnl {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> io::Result<Rtnl> {
        Socket::open(netlink_sys::protocols::NETLINK_ROUTE).map(Rtnl)
    }

    fn create(&mut self, message: LinkMessage, what: String) -> io::Result<()> {
        self.0
            .request(NLM_F_CREATE | NLM_F_EXCL, Msg::NewLink(message))
            .map(drop)
            .map_err(context(what))
    }

    /// A veth pair: `name` here, `peer` created directly in the namespace `peer_namespace`.
    pub fn add_veth(&mut self, name: &str, peer: &str, peer_namespace: RawFd) -> io::Result<()> {
        let mut peer_message = named(peer);
        peer_message
            .attributes
            .push(LinkAttribute::NetNsFd(peer_namespace));
        let mut message = named(name);
        message.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_message))),
        ]));
        self.create(message, format!("creating the veth pair {name}/{peer}"))
    }

    pub fn add_dummy(&mut self, name: &str) -> io::Result<()> {
        let mut message = named(name);
        message
            .attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Dummy,
            )]));
        self.create(message, format!("creating the LAN device {name} (dummy)"))
    }

    pub fn set_up(&mut self, name: &str) -> io::Result<()> {
        let mut message = named(name);
        message.header.flags = LinkFlags::Up;
        message.header.change_mask = LinkFlags::Up;
        self.0
            .request(0, Msg::SetLink(message))
            .map(drop)
            .map_err(context(format!("setting {name} up")))
    }

    pub fn add_address(&mut self, device: &str, address: IpNet) -> io::Result<()> {
        let index = index_of(device)?;
        let address = Address {
            device: device.to_string(),
            address,
            peer: None,
        };
        self.0
            .request(
                NLM_F_CREATE | NLM_F_EXCL,
                Msg::NewAddress(new_address(&address, index)),
            )
            .map(drop)
            .map_err(context(format!("adding {} to {device}", address.address)))
    }
}

/// The index of `device` in the calling thread's namespace.
fn index_of(device: &str) -> io::Result<u32> {
    let name = std::ffi::CString::new(device)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "device name with NUL"))?;
    // SAFETY: a valid NUL-terminated string.
    match unsafe { libc::if_nametoindex(name.as_ptr()) } {
        0 => Err(context(format!("finding {device}"))(
            io::Error::last_os_error(),
        )),
        index => Ok(index),
    }
}
