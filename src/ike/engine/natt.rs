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
use std::time::{Duration, Instant};

use super::config::NatTraversal;
use crate::ike::crypto::random;

use super::events::Transmit;
use super::sa::{IkeSa, Phase};
use super::Engine;

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
        if !(self.udp_encap && self.local_behind_nat && self.phase == Phase::Established) {
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
