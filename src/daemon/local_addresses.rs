//! The host's own addresses, followed through rtnetlink (RTNLGRP_IPV4_IFADDR and
//! RTNLGRP_IPV6_IFADDR), for a high-availability pair: both gateways run the same profiles
//! whose `local` is a virtual address that keepalived moves. A tunnel whose `local` is not
//! on this host is on standby: its dataplane stays applied (the kernel takes a VTI, GRE or
//! XFRM device, policies and SNAT rules for an address it does not hold, and with no SA
//! the tunnel's traffic is dropped, never sent in clear) but the engine does not know it,
//! so nothing is initiated or answered from an address this host cannot send from. When
//! the address appears the tunnel is taken over at once (the engine's INITIAL_CONTACT makes
//! the partner drop the other gateway's SAs); when it goes, its IKE SAs are abandoned.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::IpAddr;

use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use netlink_packet_route::RouteNetlinkMessage as Msg;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket as RawSocket, SocketAddr};
use tokio::sync::mpsc;

use super::sockets::Inbound;
use crate::apply::netlink::socket::Socket;

/// The multicast groups of address changes (RTNLGRP_IPV4_IFADDR = 5, RTNLGRP_IPV6_IFADDR = 9).
const GROUPS: u32 = (1 << (5 - 1)) | (1 << (9 - 1));

pub type Present = BTreeSet<IpAddr>;

/// Subscribes to address changes, then reads the addresses present now (a change between
/// the two is reported again by the thread, so none is missed). Each later change sends
/// the whole set as [`Inbound::LocalAddresses`]. Both sockets are opened here, in the
/// caller's network namespace, so a failure stops the start.
pub fn listen(inbound: mpsc::Sender<Inbound>) -> io::Result<Present> {
    let mut events = RawSocket::new(NETLINK_ROUTE)?;
    events.bind(&SocketAddr::new(0, GROUPS))?;
    let mut dumps = Socket::<Msg>::open(NETLINK_ROUTE)?;
    let present = dump(&mut dumps)?;
    let first = present.clone();
    std::thread::Builder::new()
        .name("local-addresses".into())
        .spawn(move || follow(&events, &mut dumps, first, &inbound))?;
    Ok(present)
}

fn follow(
    events: &RawSocket,
    dumps: &mut Socket<Msg>,
    mut last: Present,
    inbound: &mpsc::Sender<Inbound>,
) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        // Whatever arrived (or was lost: ENOBUFS), the dump is the truth.
        if let Err(e) = wait_for_changes(events, &mut buffer) {
            let _ = inbound.blocking_send(Inbound::Stopped {
                what: "the host's addresses",
                error: e.to_string(),
            });
            return;
        }
        // A dump that fails is not "no change": tried again, then the daemon is told.
        let mut attempt = dump(dumps);
        for _ in 0..2 {
            if attempt.is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
            attempt = dump(dumps);
        }
        let present = match attempt {
            Ok(present) => present,
            Err(e) => {
                let _ = inbound.blocking_send(Inbound::Stopped {
                    what: "the host's addresses",
                    error: format!("reading them: {e}"),
                });
                return;
            }
        };
        if present != last {
            last = present.clone();
            if inbound
                .blocking_send(Inbound::LocalAddresses(present))
                .is_err()
            {
                return; // the daemon is gone
            }
        }
    }
}

/// Blocks until address changes arrive, then takes every one already queued: an apply
/// adding thousands of tunnel addresses costs one dump, not one per address.
fn wait_for_changes(events: &RawSocket, buffer: &mut [u8]) -> io::Result<()> {
    let mut flags = 0;
    loop {
        match events.recv(&mut &mut buffer[..], flags) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if flags != 0 && e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        }
        flags = libc::MSG_DONTWAIT;
    }
}

/// The addresses this host can send from: IPv6 ones still tentative or whose duplicate
/// address detection failed are not.
pub fn dump(socket: &mut Socket<Msg>) -> io::Result<Present> {
    let messages = socket.dump(Msg::GetAddress(AddressMessage::default()))?;
    Ok(messages
        .iter()
        .filter_map(|m| match m {
            Msg::NewAddress(a) => usable(a),
            _ => None,
        })
        .collect())
}

fn usable(message: &AddressMessage) -> Option<IpAddr> {
    let unusable = AddressFlags::Tentative | AddressFlags::Dadfailed;
    let mut local = None;
    let mut address = None;
    for attribute in &message.attributes {
        match attribute {
            AddressAttribute::Local(ip) => local = Some(*ip),
            AddressAttribute::Address(ip) => address = Some(*ip),
            AddressAttribute::Flags(flags) if flags.intersects(unusable) => return None,
            _ => {}
        }
    }
    // IFA_LOCAL is the host's own address; IPv6 dumps leave it out (address.rs).
    local.or(address)
}

/// What changed for the tunnels (each named with its static `local`) between two sets.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Tunnels whose address arrived: to take over.
    pub appeared: Vec<String>,
    /// Tunnels whose address left: their IKE SAs are abandoned.
    pub gone: Vec<String>,
}

pub fn changes(locals: &BTreeMap<String, IpAddr>, before: &Present, after: &Present) -> Changes {
    let mut out = Changes::default();
    for (name, address) in locals {
        match (before.contains(address), after.contains(address)) {
            (false, true) => out.appeared.push(name.clone()),
            (true, false) => out.gone.push(name.clone()),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_route::address::AddressHeaderFlags;
    use std::time::{Duration, Instant};

    fn ip_command(args: &str) {
        let out = std::process::Command::new("ip")
            .args(args.split_whitespace())
            .output()
            .expect("ip runs");
        assert!(out.status.success(), "ip {args}: {out:?}");
    }

    /// The next set the watch reports, within 10 s.
    fn next(rx: &mut mpsc::Receiver<Inbound>) -> Present {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            match rx.try_recv() {
                Ok(Inbound::LocalAddresses(present)) => return present,
                Ok(_) => panic!("not an address report"),
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        panic!("no address report within 10 s");
    }

    /// Needs root, like tests/netlink_route.rs: the test's thread moves to a network
    /// namespace of its own (the watch's thread and `ip` follow it), where nothing is sent.
    #[test]
    fn the_watch_reports_an_address_that_comes_and_goes() {
        // SAFETY: plain system calls without memory arguments; unshare moves only this
        // thread.
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "needs root (network namespaces)"
        );
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "unshare: {}", io::Error::last_os_error());
        for args in [
            "link set lo up",
            "link add d0 type veth peer name d1",
            "link set d0 up",
        ] {
            ip_command(args);
        }
        let (tx, mut rx) = mpsc::channel(16);
        let vip = ip("192.0.2.10");
        let v6 = ip("2001:db8::10");
        let present = listen(tx).unwrap();
        assert!(present.contains(&ip("127.0.0.1")) && !present.contains(&vip));

        ip_command("address add 192.0.2.10/24 dev d0");
        assert!(next(&mut rx).contains(&vip));
        ip_command("address add 2001:db8::10/64 dev d0 nodad");
        assert!(next(&mut rx).is_superset(&Present::from([vip, v6])));
        ip_command("address del 192.0.2.10/24 dev d0");
        let after = next(&mut rx);
        assert!(!after.contains(&vip) && after.contains(&v6), "{after:?}");
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_tunnels_whose_address_came_or_went_change() {
        let locals = BTreeMap::from([
            ("vip-1".to_string(), ip("192.0.2.10")),
            ("vip-2".to_string(), ip("192.0.2.10")),
            ("own".to_string(), ip("192.0.2.1")),
            ("v6".to_string(), ip("2001:db8::10")),
        ]);
        let standby = Present::from([ip("192.0.2.1")]);
        let active = Present::from([ip("192.0.2.1"), ip("192.0.2.10"), ip("192.0.2.99")]);
        let took_over = changes(&locals, &standby, &active);
        assert_eq!(took_over.appeared, ["vip-1", "vip-2"]);
        assert!(took_over.gone.is_empty());
        let lost = changes(&locals, &active, &standby);
        assert_eq!(
            (lost.appeared.len(), lost.gone),
            (0, vec!["vip-1".into(), "vip-2".into()])
        );
        // Another address coming and going changes nothing.
        let other = Present::from([ip("192.0.2.1"), ip("192.0.2.99")]);
        assert_eq!(changes(&locals, &standby, &other), Changes::default());
    }

    #[test]
    fn tentative_addresses_cannot_be_sent_from() {
        let mut message = AddressMessage::default();
        message.header.flags = AddressHeaderFlags::Permanent;
        message.attributes = vec![AddressAttribute::Address(ip("2001:db8::10"))];
        assert_eq!(usable(&message), Some(ip("2001:db8::10")));
        for flag in [AddressFlags::Tentative, AddressFlags::Dadfailed] {
            let mut waiting = message.clone();
            waiting.attributes.push(AddressAttribute::Flags(flag));
            assert_eq!(usable(&waiting), None, "{flag:?}");
        }
        // A point-to-point address: its own end, not the peer's.
        message.attributes = vec![
            AddressAttribute::Local(ip("10.0.0.1")),
            AddressAttribute::Address(ip("10.0.0.2")),
        ];
        assert_eq!(usable(&message), Some(ip("10.0.0.1")));
    }

    /// A watch that cannot read any more stops the daemon rather than leave it with
    /// addresses that never change. Here the read fails by a receive timeout; no root needed.
    #[test]
    fn a_watch_that_fails_tells_the_daemon() {
        use std::os::fd::AsRawFd;
        let events = RawSocket::new(NETLINK_ROUTE).unwrap();
        let timeout = libc::timeval {
            tv_sec: 0,
            tv_usec: 10_000,
        };
        // SAFETY: the option value is a timeval that outlives the call, with its size.
        let rc = unsafe {
            libc::setsockopt(
                events.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                std::ptr::addr_of!(timeout).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "setsockopt: {}", io::Error::last_os_error());
        let mut dumps = Socket::<Msg>::open(NETLINK_ROUTE).unwrap();
        let (tx, mut rx) = mpsc::channel(16);
        follow(&events, &mut dumps, Present::new(), &tx);
        // An address change on the host may come first.
        loop {
            match rx.try_recv() {
                Ok(Inbound::LocalAddresses(_)) => continue,
                Ok(Inbound::Stopped { what, error }) => {
                    assert_eq!(what, "the host's addresses");
                    assert!(!error.is_empty());
                    break;
                }
                _ => panic!("the daemon was not told"),
            }
        }
    }
}
