//! The enumerated settings of a connection, as swanctl.conf names them. The engine owns
//! them (profiles parse into them), so that `ike` depends on no layer above it.

use std::net::IpAddr;
use std::time::Duration;

use serde::Serialize;

/// An IKE identity as swanctl.conf writes it (`192.0.2.1`, `vpn.example.com`, `user@example.com`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "type", content = "value")]
pub enum Identity {
    Address(IpAddr),
    Fqdn(String),
    Email(String),
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Identity::Address(a) => write!(f, "{a}"),
            Identity::Fqdn(s) | Identity::Email(s) => f.write_str(s),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DpdAction {
    Clear,
    Restart,
    Trap,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Dpd {
    /// Zero disables liveness checks.
    #[serde(with = "secs")]
    pub delay: Duration,
    #[serde(with = "secs")]
    pub timeout: Duration,
    pub action: DpdAction,
}

/// swanctl's lifetimes, the defaults of profiles: IKE SAs rekey after 4 h, CHILD SAs
/// after 1 h; `over_time` and `rand_time` default to 10 % of the rekey time.
pub const IKE_REKEY_TIME: Duration = Duration::from_secs(4 * 3600);
pub const CHILD_REKEY_TIME: Duration = Duration::from_secs(3600);

/// Liveness checks after 30 s of silence, the peer given up after 150 s, then restart.
impl Default for Dpd {
    fn default() -> Self {
        Dpd {
            delay: Duration::from_secs(30),
            timeout: Duration::from_secs(150),
            action: DpdAction::Restart,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NatTraversal {
    /// Detect NAT and move to UDP 4500 when one is found.
    Auto,
    /// Always encapsulate ESP in UDP, even without NAT.
    Force,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StartAction {
    Start,
    Trap,
    None,
}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Tunnel,
    Transport,
}

/// Durations serialize as whole seconds, the unit swanctl users read.
pub(crate) mod secs {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }
}
