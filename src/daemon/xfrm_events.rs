//! Listens for the kernel's XFRM reports on their netlink multicast groups and hands them
//! to the daemon's loop: SA expiries (soft ones make the engine rekey the CHILD SA, hard
//! ones mean the kernel removed it) and acquires (a packet matched a tunnel's policy and
//! found no SA: trapped connections negotiate).

use netlink_packet_core::{NetlinkBuffer, NetlinkMessage, NetlinkPayload};
use netlink_packet_xfrm::constants::{
    XFRMNLGRP_ACQUIRE, XFRMNLGRP_EXPIRE, XFRM_MSG_ACQUIRE, XFRM_MSG_EXPIRE,
};
use netlink_packet_xfrm::{XfrmAttrs, XfrmMessage, XFRM_USER_ACQUIRE_LEN, XFRM_USER_EXPIRE_LEN};
use netlink_sys::{protocols::NETLINK_XFRM, Socket, SocketAddr};
use tokio::sync::mpsc;

use super::sockets::Inbound;
use crate::apply::netlink::socket::align;
use crate::apply::netlink::xfrm::state::address;

const HEADER_LEN: usize = 16;

/// Starts a thread that forwards every expiry report as [`Inbound::Expired`] and every
/// acquire as [`Inbound::Acquired`]. The socket is opened here, in the caller's network
/// namespace, so a failure is reported at start.
pub fn listen(inbound: mpsc::Sender<Inbound>) -> std::io::Result<()> {
    let mut socket = Socket::new(NETLINK_XFRM)?;
    let groups = [XFRMNLGRP_EXPIRE, XFRMNLGRP_ACQUIRE].map(|g| 1 << (g - 1));
    socket.bind(&SocketAddr::new(0, groups.iter().sum()))?;
    std::thread::Builder::new()
        .name("xfrm-events".into())
        .spawn(move || receive(&socket, &inbound))?;
    Ok(())
}

fn receive(socket: &Socket, inbound: &mpsc::Sender<Inbound>) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let length = match socket.recv(&mut &mut buffer[..], 0) {
            Ok(length) => length,
            // Reports lost under load: the engine's own timers are still in charge, and
            // the kernel asks again for SAs while traffic waits.
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = inbound.blocking_send(Inbound::Stopped {
                    what: "the kernel's SA expiries and acquires",
                    error: e.to_string(),
                });
                return;
            }
        };
        let mut rest = buffer.get(..length).unwrap_or_default();
        while let Some((message, next)) = split(rest) {
            rest = next;
            let Some(report) = decode(message) else {
                continue;
            };
            if inbound.blocking_send(report).is_err() {
                return; // the daemon is gone
            }
        }
    }
}

/// The first netlink message of `bytes` and what follows it; `None` when no whole one is
/// left.
fn split(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    // Checks that the length field covers a header and stays inside `bytes`.
    let length = NetlinkBuffer::new_checked(bytes).ok()?.length() as usize;
    Some((
        bytes.get(..length)?,
        bytes.get(align(length)..).unwrap_or_default(),
    ))
}

/// A report the daemon acts on. The crate's parsers slice their fixed part without a
/// length check, so it is checked here first.
fn decode(message: &[u8]) -> Option<Inbound> {
    let fixed = match NetlinkBuffer::new_checked(message).ok()?.message_type() {
        XFRM_MSG_EXPIRE => XFRM_USER_EXPIRE_LEN,
        XFRM_MSG_ACQUIRE => XFRM_USER_ACQUIRE_LEN,
        _ => return None,
    };
    if message.len() < HEADER_LEN + fixed {
        return None;
    }
    let parsed = NetlinkMessage::<XfrmMessage>::deserialize(message).ok()?;
    match parsed.payload {
        NetlinkPayload::InnerMessage(XfrmMessage::Expire(expire)) => {
            let state = &expire.expire.state;
            Some(Inbound::Expired {
                destination: address(&state.id.daddr, state.family)?,
                spi: state.id.spi,
                hard: expire.expire.hard != 0,
            })
        }
        // The policy's template names the Child SA by the reqid the plan gave it.
        NetlinkPayload::InnerMessage(XfrmMessage::Acquire(acquire)) => {
            let reqid = acquire.nlas.iter().find_map(|nla| match nla {
                XfrmAttrs::Template(templates) => {
                    templates.iter().map(|t| t.reqid).find(|r| *r != 0)
                }
                _ => None,
            })?;
            Some(Inbound::Acquired { reqid })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_or_foreign_messages_are_skipped_without_panicking() {
        // An acquire header claiming 40 bytes: shorter than the fixed part.
        let mut short = vec![0u8; 40];
        short[..4].copy_from_slice(&40u32.to_ne_bytes());
        short[4..6].copy_from_slice(&XFRM_MSG_ACQUIRE.to_ne_bytes());
        assert!(decode(&short).is_none());
        let (message, rest) = split(&short).unwrap();
        assert_eq!((message.len(), rest.len()), (40, 0));
        // A length beyond the buffer, or below a header, is no message at all.
        let mut long = short.clone();
        long[..4].copy_from_slice(&4000u32.to_ne_bytes());
        assert!(split(&long).is_none());
        long[..4].copy_from_slice(&3u32.to_ne_bytes());
        assert!(split(&long).is_none());
        assert!(split(&[1, 2]).is_none());
    }
}
