//! Addresses: `RTM_NEWADDR`/`RTM_DELADDR` for [`Address`] and the decoding of dumped ones.
//!
//! The kernel keeps an interface's own address in `IFA_LOCAL` and the other end of a
//! point-to-point link in `IFA_ADDRESS`; without a peer both hold the same address (IPv6
//! dumps then leave out `IFA_LOCAL`). The prefix length applies to the peer if there is one.

use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_route::address::{AddressAttribute, AddressHeaderFlags, AddressMessage};
use netlink_packet_route::AddressFamily;

use super::link::Links;
use crate::apply::objects::Address;

pub fn family(ip: IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

/// Creation. IPv6 addresses skip duplicate address detection: a tunnel has no neighbours
/// to ask, and until DAD's deferred work ran the address would be tentative, which makes
/// the kernel refuse routes created right after with it as their source.
pub fn new_address(address: &Address, index: u32) -> AddressMessage {
    let mut message = address_message(address, index);
    if address.address.addr().is_ipv6() {
        message.header.flags = AddressHeaderFlags::Nodad;
    }
    message
}

/// Deletion: the kernel finds the address by the attributes it was created with.
pub fn address_message(address: &Address, index: u32) -> AddressMessage {
    let local = address.address.addr();
    let mut message = AddressMessage::default();
    message.header.family = family(local);
    message.header.prefix_len = address.address.prefix_len();
    message.header.index = index;
    message.attributes = vec![
        AddressAttribute::Local(local),
        AddressAttribute::Address(address.peer.unwrap_or(local)),
    ];
    message
}

pub fn decode_address(message: &AddressMessage, links: &Links) -> Option<Address> {
    let device = links.name(message.header.index)?;
    let (mut local, mut address) = (None, None);
    for a in &message.attributes {
        match a {
            AddressAttribute::Local(ip) => local = Some(*ip),
            AddressAttribute::Address(ip) => address = Some(*ip),
            _ => {}
        }
    }
    let own = local.or(address)?;
    let peer = address.filter(|a| local.is_some() && *a != own);
    Some(Address {
        device: device.to_string(),
        address: IpNet::new(own, message.header.prefix_len).ok()?,
        peer,
    })
}
