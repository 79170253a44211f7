//! Listens for the kernel's SA expiry reports (XFRM_MSG_EXPIRE on the XFRM netlink
//! multicast group for expiries) and hands them to the daemon's loop: soft ones make the
//! engine rekey the CHILD SA, hard ones mean the kernel removed it.

use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_xfrm::constants::XFRMNLGRP_EXPIRE;
use netlink_packet_xfrm::XfrmMessage;
use netlink_sys::{protocols::NETLINK_XFRM, Socket, SocketAddr};
use tokio::sync::mpsc;

use super::sockets::Inbound;
use crate::apply::netlink::xfrm::state::address;

/// Starts a thread that forwards every expiry report as [`Inbound::Expired`]. The socket is
/// opened here, in the caller's network namespace, so a failure is reported at start.
pub fn listen(inbound: mpsc::Sender<Inbound>) -> std::io::Result<()> {
    let mut socket = Socket::new(NETLINK_XFRM)?;
    socket.bind(&SocketAddr::new(0, 1 << (XFRMNLGRP_EXPIRE - 1)))?;
    std::thread::Builder::new()
        .name("xfrm-expire".into())
        .spawn(move || receive(&socket, &inbound))?;
    Ok(())
}

fn receive(socket: &Socket, inbound: &mpsc::Sender<Inbound>) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let length = match socket.recv(&mut &mut buffer[..], 0) {
            Ok(length) => length,
            // Reports lost under load: the engine's own timers are still in charge.
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => continue,
            Err(e) => {
                eprintln!("routevpn: XFRM expiry reports stop: {e}");
                return;
            }
        };
        let mut rest = buffer.get(..length).unwrap_or_default();
        while !rest.is_empty() {
            let Ok(message) = NetlinkMessage::<XfrmMessage>::deserialize(rest) else {
                break;
            };
            let size = (message.header.length as usize).max(16);
            rest = rest.get(size..).unwrap_or_default();
            if let NetlinkPayload::InnerMessage(XfrmMessage::Expire(expire)) = message.payload {
                let state = &expire.expire.state;
                let Some(destination) = address(&state.id.daddr, state.family) else {
                    continue;
                };
                let report = Inbound::Expired {
                    destination,
                    spi: state.id.spi,
                    hard: expire.expire.hard != 0,
                };
                if inbound.blocking_send(report).is_err() {
                    return; // the daemon is gone
                }
            }
        }
    }
}
