//! The daemon's sockets: UDP on the IKE and NAT-T ports of each local outer address, and
//! the control socket. Each socket has a task that forwards what arrives into the loop.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use super::control::{Request, Response};
use crate::ike::engine::Transmit;

/// RFC 3948: IKE on the NAT-T port is preceded by four zero octets, which tell it from ESP.
const NON_ESP_MARKER: [u8; 4] = [0; 4];

/// What arrives for the loop.
pub enum Inbound {
    /// An IKE message (the non-ESP marker already removed).
    Datagram {
        local: SocketAddr,
        remote: SocketAddr,
        bytes: Vec<u8>,
    },
    Control {
        request: Request,
        reply: oneshot::Sender<Response>,
    },
    /// The kernel reports an SA's soft or hard lifetime reached (see xfrm_events.rs); an SA
    /// is named by its destination and SPI.
    Expired {
        destination: std::net::IpAddr,
        spi: u32,
        hard: bool,
    },
    /// A packet matched the policy of the Child SA with this reqid and found no SA.
    Acquired {
        reqid: u32,
    },
    /// A scrape of the metrics listener: the exposition, or why the state is unreadable.
    Metrics {
        reply: oneshot::Sender<Result<String, String>>,
    },
    Vici(super::vici_server::Call),
    /// The host's addresses changed; all of them now (local_addresses.rs).
    LocalAddresses(super::local_addresses::Present),
    /// A thread following the kernel (addresses, XFRM reports) stopped on an error: the
    /// daemon would act on a view that no longer changes, so it stops too.
    Stopped {
        what: &'static str,
        error: String,
    },
}

impl From<super::vici_server::Call> for Inbound {
    fn from(call: super::vici_server::Call) -> Self {
        Inbound::Vici(call)
    }
}

pub struct Sockets {
    ike_port: u16,
    natt_port: u16,
    /// The sending side of each socket: a plain non-blocking socket, because tokio's
    /// `try_send_to` refuses until the reactor has seen the socket writable once.
    by_local: BTreeMap<SocketAddr, std::net::UdpSocket>,
}

impl Sockets {
    pub fn new(ike_port: u16, natt_port: u16) -> Self {
        Sockets {
            ike_port,
            natt_port,
            by_local: BTreeMap::new(),
        }
    }

    /// Listens on both ports of `address` (once).
    pub fn bind(&mut self, address: IpAddr, inbound: &mpsc::Sender<Inbound>) -> Result<(), String> {
        for port in [self.ike_port, self.natt_port] {
            let local = SocketAddr::new(address, port);
            if self.by_local.contains_key(&local) {
                continue;
            }
            let std_socket = bind_free(local).map_err(|e| format!("binding UDP {local}: {e}"))?;
            std_socket
                .set_nonblocking(true)
                .map_err(|e| e.to_string())?;
            let natt = port == self.natt_port;
            if natt {
                espinudp(&std_socket).map_err(|e| format!("UDP_ENCAP on {local}: {e}"))?;
            }
            let sender = std_socket.try_clone().map_err(|e| e.to_string())?;
            let socket = UdpSocket::from_std(std_socket).map_err(|e| e.to_string())?;
            tokio::spawn(receive(Arc::new(socket), local, natt, inbound.clone()));
            self.by_local.insert(local, sender);
        }
        Ok(())
    }

    pub fn send(&self, t: &Transmit) -> std::io::Result<()> {
        let socket = self.by_local.get(&t.local).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::AddrNotAvailable,
                format!("no socket on {}", t.local),
            )
        })?;
        let datagram = if t.local.port() == self.natt_port && !t.is_keepalive() {
            [&NON_ESP_MARKER[..], &t.payload].concat()
        } else {
            t.payload.clone()
        };
        socket.send_to(&datagram, t.remote).map(|_| ())
    }
}

/// A UDP socket on `local` even if the host does not hold that address (IP_FREEBIND): an
/// HA standby's tunnels use the virtual address the active gateway holds, and with the
/// socket ready the first IKE message after a takeover is not refused. Nothing is sent
/// from it meanwhile: the engine does not know standby tunnels (local_addresses.rs).
fn bind_free(local: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(local), Type::DGRAM, Some(Protocol::UDP))?;
    if local.is_ipv6() {
        socket.set_freebind_v6(true)?;
    } else {
        socket.set_freebind_v4(true)?;
    }
    socket.bind(&local.into())?;
    Ok(socket.into())
}

/// Lets the kernel take ESP-in-UDP off this socket (RFC 3948), leaving IKE to us.
fn espinudp(socket: &std::net::UdpSocket) -> std::io::Result<()> {
    const UDP_ENCAP: libc::c_int = 100;
    const UDP_ENCAP_ESPINUDP: libc::c_int = 2;
    let value = UDP_ENCAP_ESPINUDP;
    // SAFETY: a valid socket and a pointer to an int of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_UDP,
            UDP_ENCAP,
            std::ptr::from_ref(&value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

async fn receive(
    socket: Arc<UdpSocket>,
    local: SocketAddr,
    natt: bool,
    inbound: mpsc::Sender<Inbound>,
) {
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, remote)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let Some(datagram) = buf.get(..n) else {
            continue;
        };
        let bytes = if natt {
            // Keepalives (one 0xFF octet) and anything unmarked are not for the engine.
            match datagram.strip_prefix(&NON_ESP_MARKER[..]) {
                Some(ike) => ike.to_vec(),
                None => continue,
            }
        } else {
            datagram.to_vec()
        };
        if inbound
            .send(Inbound::Datagram {
                local,
                remote,
                bytes,
            })
            .await
            .is_err()
        {
            return;
        }
    }
}
