//! The enumerated settings of a connection, as swanctl.conf names them. The engine owns
//! them (profiles parse into them), so that `ike` depends on no layer above it.

use std::net::IpAddr;
use std::time::Duration;

use serde::Serialize;

use crate::ike::auth::x509::dn::{DistinguishedName, DnError};

/// An IKE identity as swanctl.conf writes it (`192.0.2.1`, `vpn.example.com`,
/// `user@example.com`, `C=CH, O=Bank, CN=vpn.bank.ch`, `keyid:#0123…`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "type", content = "value")]
pub enum Identity {
    Address(IpAddr),
    Fqdn(String),
    Email(String),
    /// ID_DER_ASN1_DN: a certificate's subject.
    #[serde(serialize_with = "as_text")]
    Dn(Dn),
    /// ID_KEY_ID: opaque octets, usually a key's SHA-1.
    #[serde(serialize_with = "as_text")]
    KeyId(KeyId),
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Identity::Address(a) => write!(f, "{a}"),
            Identity::Fqdn(s) | Identity::Email(s) => f.write_str(s),
            Identity::Dn(dn) => write!(f, "{dn}"),
            Identity::KeyId(id) => write!(f, "{id}"),
        }
    }
}

fn as_text<T: std::fmt::Display, S: serde::Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

/// A distinguished name, with the DER its ID payload carries: encoded once, when parsed, so
/// that a name OpenSSL cannot encode (`C=Switzerland`) is a profile error, not a failed SA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dn {
    name: DistinguishedName,
    der: Vec<u8>,
}

impl Dn {
    /// Parses a DN as swanctl.conf writes it: `C=CH, O=Bank, CN=vpn.bank.ch`.
    pub fn parse(text: &str) -> Result<Self, DnError> {
        let name = DistinguishedName::parse(text)?;
        let der = name.to_der().map_err(|_| DnError {
            column: 1,
            reason: "a value does not fit its attribute type (C= takes a 2-letter country code)"
                .into(),
        })?;
        Ok(Dn { name, der })
    }

    /// The DN of an ID payload or of a certificate's subject.
    pub fn from_der(der: &[u8]) -> Option<Self> {
        DistinguishedName::from_der(der).map(|name| Dn {
            name,
            der: der.to_vec(),
        })
    }

    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// Whether a DER DN names this one: the same attributes and values, in any order and
    /// whatever string types encode them (libreswan writes PrintableString where OpenSSL's
    /// certificates carry UTF8String).
    pub fn matches_der(&self, der: &[u8]) -> bool {
        DistinguishedName::from_der(der).is_some_and(|other| other.matches(&self.name))
    }
}

impl std::fmt::Display for Dn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.name)
    }
}

/// The octets of an ID_KEY_ID identity, shown as strongSwan writes them: `keyid:#<hex>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyId(pub Vec<u8>);

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("keyid:#")?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
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

/// strongSwan's default replay window, in packets.
pub const REPLAY_WINDOW: u32 = 32;
/// The widest window the kernel takes (XFRMA_REPLAY_ESN_VAL's bitmap of 4096 bits), as
/// strongSwan allows.
pub const MAX_REPLAY_WINDOW: u32 = 4096;

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
