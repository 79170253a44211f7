//! NAT traversal (RFC 7296 section 2.23, RFC 3948): after IKE_SA_INIT detected a NAT
//! (or `nat_traversal = "force"` pretends one), the initiator moves the IKE SA to the
//! NAT-T port, ESP is installed UDP-encapsulated on the same ports, the side behind the
//! NAT sends keepalives so the mapping survives quiet periods, and either side follows the
//! peer's address when an authenticated message arrives from a new one (a NAT rebinding).
//!
//! On the wire, IKE datagrams on the NAT-T port start with the four-zero-octet non-ESP
//! marker; the driver adds and strips it, so the engine only sees IKE messages and the
//! one-octet keepalive ([`Transmit::is_keepalive`]).

use std::net::SocketAddr;

use crate::ike::codec::{Message, Notify, NotifyType, Payload, PayloadLookup};
use std::time::{Duration, Instant};

use super::config::NatTraversal;
use crate::ike::crypto::random;

use super::events::Transmit;
use super::protect::nat_hash;
use super::sa::{IkeSa, Phase};
use super::Engine;

/// NAT_DETECTION_SOURCE_IP and _DESTINATION_IP as the sender of a message computes them.
pub(super) fn nat_notifies(
    spi_i: u64,
    spi_r: u64,
    local: SocketAddr,
    remote: SocketAddr,
) -> [Payload; 2] {
    [
        Payload::Notify(Notify::new(
            NotifyType::NatDetectionSourceIp,
            nat_hash(spi_i, spi_r, local),
        )),
        Payload::Notify(Notify::new(
            NotifyType::NatDetectionDestinationIp,
            nat_hash(spi_i, spi_r, remote),
        )),
    ]
}

/// Compares the peer's NAT detection hashes with what it should have seen:
/// `(local_behind_nat, remote_behind_nat)`. Absent notifications detect nothing.
pub(super) fn detect_nat(
    message: &Message,
    spi_i: u64,
    spi_r: u64,
    local: SocketAddr,
    remote: SocketAddr,
) -> (bool, bool) {
    let expected_src = nat_hash(spi_i, spi_r, remote);
    let remote_nat = message
        .notifies()
        .filter(|n| n.notify_type == NotifyType::NatDetectionSourceIp)
        .fold(None, |seen: Option<bool>, n| {
            Some(seen.unwrap_or(false) || n.data == expected_src)
        })
        .is_some_and(|matched| !matched);
    let local_nat = message
        .notify(NotifyType::NatDetectionDestinationIp)
        .is_some_and(|n| n.data != nat_hash(spi_i, spi_r, local));
    (local_nat, remote_nat)
}

/// RFC 3948 section 2.3: a single 0xFF octet.
const KEEPALIVE: [u8; 1] = [0xff];

/// strongSwan's default `keep_alive` interval.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);

/// The standard IKE port: a peer on it is moved to the standard NAT-T port; a peer on a
/// custom port stays there (it cannot be guessed).
const STANDARD_IKE_PORT: u16 = 500;
const STANDARD_NATT_PORT: u16 = 4500;

impl Transmit {
    /// A NAT-T keepalive: sent as is, without the non-ESP marker.
    pub fn is_keepalive(&self) -> bool {
        self.payload == KEEPALIVE
    }
}

/// The NAT_DETECTION_SOURCE_IP data that makes the responder believe we are behind a NAT
/// (`force`): any value but the true hash; random so it matches no real address.
pub fn forced_source_hash() -> Vec<u8> {
    let mut hash = vec![0u8; 20];
    // Without randomness, a fixed pattern still differs from every real SHA-1 hash.
    if random::fill(&mut hash).is_err() {
        hash.fill(0x5a);
    }
    hash
}

impl IkeSa {
    pub fn keepalive_due(&self) -> Option<Instant> {
        if !(self.udp_encap && self.local_behind_nat && self.phase() == Phase::Established) {
            return None;
        }
        Some(self.last_keepalive.or(self.established_at)? + KEEPALIVE_INTERVAL)
    }
}

impl Engine {
    /// Initiator, after IKE_SA_INIT: moves to the NAT-T ports when a NAT was detected or
    /// the connection forces encapsulation.
    pub(super) fn float_to_natt(&self, sa: &mut IkeSa, mode: NatTraversal) {
        let nat = sa.local_behind_nat || sa.remote_behind_nat;
        if !(nat || mode == NatTraversal::Force) {
            return;
        }
        sa.local.set_port(self.config.natt_port);
        if sa.remote.port() == STANDARD_IKE_PORT {
            sa.remote.set_port(STANDARD_NATT_PORT);
        }
        sa.udp_encap = true;
    }

    /// Before processing a message that came from or to other addresses than the SA's:
    /// adopts them if the SA is NAT'ed, returning the previous ones so the caller can put
    /// them back if the message does not authenticate.
    pub(super) fn follow_addresses(
        &self,
        sa: &mut IkeSa,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Option<(SocketAddr, SocketAddr, bool)> {
        let nat = sa.local_behind_nat || sa.remote_behind_nat || sa.udp_encap;
        if !nat || (sa.local, sa.remote) == (local, remote) {
            return None;
        }
        let previous = (sa.local, sa.remote, sa.udp_encap);
        sa.local = local;
        sa.remote = remote;
        sa.udp_encap = sa.udp_encap || local.port() == self.config.natt_port;
        Some(previous)
    }

    pub(super) fn run_keepalive(&mut self, now: Instant, sa: &mut IkeSa) {
        if sa.keepalive_due().is_some_and(|at| at <= now) {
            self.transmits.push_back(Transmit {
                local: sa.local,
                remote: sa.remote,
                payload: KEEPALIVE.to_vec(),
            });
            sa.last_keepalive = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ike::codec::{ExchangeType, Flags, Header};

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn nat_detection_compares_both_hashes() {
        let (us, them) = (addr("192.0.2.1:500"), addr("198.51.100.2:500"));
        let header = Header::new(ExchangeType::IkeSaInit, 1, 2, 0, Flags::default());
        // The peer computed its hashes from its own view: source = it, destination = us.
        let honest = Message::new(header, nat_notifies(1, 2, them, us).to_vec()).unwrap();
        assert_eq!(detect_nat(&honest, 1, 2, us, them), (false, false));
        // It saw us behind a NAT.
        let translated = Message::new(
            header,
            nat_notifies(1, 2, them, addr("203.0.113.5:40000")).to_vec(),
        )
        .unwrap();
        assert_eq!(detect_nat(&translated, 1, 2, us, them), (true, false));
        // It is behind a NAT itself.
        let hidden = Message::new(
            header,
            nat_notifies(1, 2, addr("10.0.0.2:500"), us).to_vec(),
        )
        .unwrap();
        assert_eq!(detect_nat(&hidden, 1, 2, us, them), (false, true));
        let silent = Message::new(header, vec![]).unwrap();
        assert_eq!(detect_nat(&silent, 1, 2, us, them), (false, false));
    }
}
