//! What the daemon logs of the engine's work: events at info (failures at warn), each
//! datagram and kernel action at debug, the kernel actions whole at trace. Datagrams are
//! described by their header only; kernel actions carry keys as `Secret`s, whose `Debug`
//! shows lengths, never bytes.

use std::net::SocketAddr;

use super::logging::{self, Level, IKE};
use crate::ike::codec::Header;
use crate::ike::engine::{Event, KernelAction, Transmit};

pub fn event(event: &Event) {
    let level = match event {
        Event::Failed { .. } | Event::RekeyFailed { .. } | Event::IkeRekeyFailed { .. } => {
            Level::Warn
        }
        _ => Level::Info,
    };
    logging::write(IKE, level, event);
}

/// "IKE_AUTH request #1, 240 bytes", or why it is no IKE header.
fn describe(bytes: &[u8]) -> String {
    match Header::decode(bytes) {
        Ok(h) => format!(
            "{:?} {} #{}, {} bytes",
            h.exchange,
            if h.flags.response {
                "response"
            } else {
                "request"
            },
            h.message_id,
            bytes.len()
        ),
        Err(e) => format!("{} bytes, not an IKE message: {e}", bytes.len()),
    }
}

pub fn received(local: SocketAddr, remote: SocketAddr, bytes: &[u8]) {
    if logging::enabled(IKE, Level::Debug) {
        let what = describe(bytes);
        logging::write(
            IKE,
            Level::Debug,
            format_args!("{remote} -> {local}: {what}"),
        );
    }
}

pub fn sent(t: &Transmit) {
    if logging::enabled(IKE, Level::Debug) {
        let what = describe(&t.payload);
        logging::write(
            IKE,
            Level::Debug,
            format_args!("{} -> {}: {what}", t.local, t.remote),
        );
    }
}

pub fn action(action: &KernelAction) {
    if logging::enabled(IKE, Level::Trace) {
        logging::write(IKE, Level::Trace, format_args!("kernel: {action:?}"));
    } else if logging::enabled(IKE, Level::Debug) {
        let (what, child) = match action {
            KernelAction::InstallChildSa(i) => ("install", i.reference()),
            KernelAction::ActivateOutbound(c) => ("activate outbound", c.clone()),
            KernelAction::DeleteChildSa(c) => ("delete", c.clone()),
        };
        logging::write(
            IKE,
            Level::Debug,
            format_args!(
                "kernel: {what} {}/{} reqid {}, SPIs in {:08x} out {:08x}",
                child.connection, child.child, child.reqid, child.inbound_spi, child.outbound_spi
            ),
        );
    }
}
