//! A forwarded TCP SYN through a router namespace holding routevpn's table, captured on
//! the far side to read the MSS option it arrives with.
//!
//! client (`cli0` 10.0.1.2) -- (`r-cli` 10.0.1.1) router (`r-srv` 10.0.2.1) -- (`srv0` 10.0.2.2) server

use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use super::support::{ip, new_netns, path_of, within};

pub const SERVER: &str = "10.0.2.2";
/// What the client offers: its veth MTU (1500) minus IPv4 and TCP headers.
pub const CLIENT_MSS: u16 = 1460;

pub struct Topology {
    client: File,
    server: File,
}

/// Builds the three namespaces around the calling thread's, which becomes the router.
pub fn topology(route_mtu: u32) -> Topology {
    let client = new_netns();
    let server = new_netns();
    ip("link add name r-cli type veth peer name cli0");
    ip("link add name r-srv type veth peer name srv0");
    ip(&format!("link set dev cli0 netns {}", path_of(&client)));
    ip(&format!("link set dev srv0 netns {}", path_of(&server)));
    ip("addr add 10.0.1.1/24 dev r-cli");
    ip("addr add 10.0.2.1/24 dev r-srv");
    ip("link set dev r-cli up");
    ip("link set dev r-srv up");
    // Only the route to the server is lowered: what `rt mtu` reads.
    ip(&format!("route add {SERVER}/32 dev r-srv mtu {route_mtu}"));
    std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").expect("enable forwarding");
    within(&client, || {
        ip("addr add 10.0.1.2/24 dev cli0");
        ip("link set dev cli0 up");
        ip("route add default via 10.0.1.1");
    });
    within(&server, || {
        ip(&format!("addr add {SERVER}/24 dev srv0"));
        ip("link set dev srv0 up");
        ip("route add default via 10.0.2.1");
    });
    Topology { client, server }
}

/// A raw IPv4 socket seeing every TCP segment the server receives.
fn capture() -> io::Result<OwnedFd> {
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_TCP) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The MSS option of a TCP SYN in an IPv4 packet to `port`, if that is what `packet` is.
fn syn_mss(packet: &[u8], port: u16) -> Option<u16> {
    let ihl = usize::from(packet.first()? & 0x0f) * 4;
    let tcp = packet.get(ihl..)?;
    let destination = u16::from_be_bytes([*tcp.get(2)?, *tcp.get(3)?]);
    let flags = *tcp.get(13)?;
    if destination != port || flags & 0x12 != 0x02 {
        return None;
    }
    let header = usize::from(tcp.get(12)? >> 4) * 4;
    let mut options = tcp.get(20..header)?;
    while let [kind, rest @ ..] = options {
        match kind {
            0 => return None,
            1 => options = rest,
            _ => {
                let len = usize::from(*rest.first()?);
                if *kind == 2 && len == 4 {
                    return Some(u16::from_be_bytes([*rest.get(1)?, *rest.get(2)?]));
                }
                options = options.get(len.max(2)..)?;
            }
        }
    }
    None
}

impl Topology {
    /// Connects from the client to the server on `port` and returns the MSS of the SYN as
    /// the server receives it.
    pub fn syn_mss_at_server(&self, port: u16) -> u16 {
        let socket = within(&self.server, capture).expect("raw socket in the server");
        let target: SocketAddr = format!("{SERVER}:{port}").parse().expect("address");
        // Nobody listens: the server answers with a reset, after its copy of the SYN.
        within(&self.client, || {
            let _ = TcpStream::connect_timeout(&target, Duration::from_secs(2));
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut buffer = [0u8; 2048];
        while Instant::now() < deadline {
            let n = unsafe {
                libc::recv(
                    socket.as_raw_fd(),
                    buffer.as_mut_ptr().cast(),
                    buffer.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n > 0 {
                if let Some(mss) = syn_mss(&buffer[..n as usize], port) {
                    return mss;
                }
            } else {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        panic!("no SYN to port {port} reached the server");
    }
}
