//! ICMP echo over a raw socket, so the demo needs no `ping` binary: one request at a time,
//! from a chosen source address, each answered or timed out.

use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

const ECHO_REQUEST_V4: u8 = 8;
const ECHO_REPLY_V4: u8 = 0;
const ECHO_REQUEST_V6: u8 = 128;
const ECHO_REPLY_V6: u8 = 129;
const PAYLOAD: &[u8] = b"routevpn demo ping";

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub sent: u16,
    pub received: u16,
    /// Round-trip time of the slowest answered request.
    pub worst: Duration,
}

/// RFC 1071 Internet checksum.
pub fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn echo_request(v6: bool, identifier: u16, sequence: u16) -> Vec<u8> {
    let kind = if v6 { ECHO_REQUEST_V6 } else { ECHO_REQUEST_V4 };
    let mut packet = vec![kind, 0, 0, 0];
    packet.extend_from_slice(&identifier.to_be_bytes());
    packet.extend_from_slice(&sequence.to_be_bytes());
    packet.extend_from_slice(PAYLOAD);
    // ICMPv6 checksums cover a pseudo-header: the kernel fills them in for raw ICMPv6.
    if !v6 {
        let sum = checksum(&packet);
        packet[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    packet
}

/// Whether `packet` (IPv4: with its IP header; IPv6: ICMP only) answers our request.
fn is_reply(packet: &[u8], v6: bool, identifier: u16, sequence: u16) -> bool {
    let icmp = if v6 {
        packet
    } else {
        let header = usize::from(packet.first().map_or(0, |b| b & 0x0f)) * 4;
        packet.get(header..).unwrap_or(&[])
    };
    let kind = if v6 { ECHO_REPLY_V6 } else { ECHO_REPLY_V4 };
    icmp.len() >= 8
        && icmp[0] == kind
        && icmp[4..6] == identifier.to_be_bytes()
        && icmp[6..8] == sequence.to_be_bytes()
}

/// Sends `count` echo requests from `source` to `destination`, one after the other.
pub fn ping(
    source: IpAddr,
    destination: IpAddr,
    count: u16,
    wait: Duration,
) -> io::Result<Outcome> {
    let v6 = destination.is_ipv6();
    let (domain, protocol) = if v6 {
        (Domain::IPV6, Protocol::ICMPV6)
    } else {
        (Domain::IPV4, Protocol::ICMPV4)
    };
    let socket = Socket::new(domain, Type::RAW, Some(protocol))?;
    socket.bind(&SocketAddr::new(source, 0).into())?;
    let target = SocketAddr::new(destination, 0).into();
    let identifier = std::process::id() as u16;
    let mut outcome = Outcome::default();
    let mut buffer = [MaybeUninit::<u8>::uninit(); 1500];
    for sequence in 1..=count {
        let sent_at = Instant::now();
        socket.send_to(&echo_request(v6, identifier, sequence), &target)?;
        outcome.sent += 1;
        while let Some(left) = wait.checked_sub(sent_at.elapsed()).filter(|d| !d.is_zero()) {
            socket.set_read_timeout(Some(left))?;
            let n = match socket.recv(&mut buffer) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    break
                }
                Err(e) => return Err(e),
            };
            // SAFETY: recv initialised the first `n` bytes.
            let packet: Vec<u8> = buffer[..n]
                .iter()
                .map(|b| unsafe { b.assume_init() })
                .collect();
            if is_reply(&packet, v6, identifier, sequence) {
                outcome.received += 1;
                outcome.worst = outcome.worst.max(sent_at.elapsed());
                break;
            }
        }
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_a_request_verifies_to_zero() {
        let request = echo_request(false, 0x1234, 7);
        assert_eq!(checksum(&request), 0);
        // RFC 1071's worked example: 0001 f203 f4f5 f6f7 sums to ddf2, complemented.
        assert_eq!(
            checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            !0xddf2
        );
    }

    #[test]
    fn replies_are_matched_by_identifier_and_sequence() {
        let mut reply = vec![0x45; 20];
        reply.extend_from_slice(&[ECHO_REPLY_V4, 0, 0, 0, 0x12, 0x34, 0, 7]);
        assert!(is_reply(&reply, false, 0x1234, 7));
        assert!(!is_reply(&reply, false, 0x1234, 8));
        assert!(!is_reply(&reply, false, 0x4321, 7));
        assert!(!is_reply(&reply[..24], false, 0x1234, 7));
        let v6 = [ECHO_REPLY_V6, 0, 0, 0, 0x12, 0x34, 0, 7];
        assert!(is_reply(&v6, true, 0x1234, 7));
        // Our own request, looped back on a raw socket, is not an answer.
        assert!(!is_reply(&echo_request(true, 0x1234, 7), true, 0x1234, 7));
    }
}
