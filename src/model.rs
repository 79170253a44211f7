//! The validated model: what a profile means once every value has been checked.
//!
//! Every address is an [`IpAddr`] / [`IpNet`]: IPv4 and IPv6 are equal citizens, inner and outer.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::Serialize;

use crate::proposal::{EspProposal, IkeProposal};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TunnelKind {
    /// A VTI device: tunnel-mode ESP, SAs and policies matched by mark (ikey / okey).
    Vti,
    /// A GRE device whose packets are protected by ESP (transport mode by default).
    Gre,
    /// An XFRM interface: tunnel-mode ESP, SAs and policies matched by if_id.
    Xfrm,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "type", content = "address")]
pub enum LocalEndpoint {
    /// The source address of the route towards the remote peer, resolved when applied.
    DefaultRoute,
    Address(IpAddr),
}

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

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "method")]
pub enum Auth {
    /// The key is read from `file` by the daemon only; it never enters the model.
    Psk { file: PathBuf },
    /// No IKE: SAs with static SPIs and keys from `keys_file`, installed by the dataplane.
    /// A debugging aid, as `ip xfrm state add` would set them.
    Manual { keys_file: PathBuf },
}

impl Auth {
    /// The secret file behind this authentication.
    pub fn secret_file(&self) -> &std::path::Path {
        match self {
            Auth::Psk { file } => file,
            Auth::Manual { keys_file } => keys_file,
        }
    }

    pub fn with_secret_file(&self, path: PathBuf) -> Auth {
        match self {
            Auth::Psk { .. } => Auth::Psk { file: path },
            Auth::Manual { .. } => Auth::Manual { keys_file: path },
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Ike {
    #[serde(serialize_with = "display_list")]
    pub proposals: Vec<IkeProposal>,
    pub auth: Auth,
    #[serde(with = "secs")]
    pub rekey_time: Duration,
    /// Hard lifetime beyond `rekey_time` (swanctl's `over_time`).
    #[serde(with = "secs")]
    pub over_time: Duration,
    /// Random jitter subtracted from `rekey_time` (swanctl's `rand_time`).
    #[serde(with = "secs")]
    pub rand_time: Duration,
    pub dpd: Dpd,
    pub nat_traversal: NatTraversal,
    pub start_action: StartAction,
    /// What to do when the peer closes the IKE SA: same choices as start_action.
    pub close_action: StartAction,
    pub remote_port: u16,
    pub allow_legacy: bool,
}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Tunnel,
    Transport,
}

/// A traffic selector: a prefix (or the outer address, `dynamic`) with optional protocol / ports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TrafficSelector {
    /// `None` means `dynamic`: the tunnel's own outer address.
    pub net: Option<IpNet>,
    pub protocol: Option<u8>,
    pub ports: Option<(u16, u16)>,
}

impl std::fmt::Display for TrafficSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.net {
            Some(net) => write!(f, "{net}")?,
            None => f.write_str("dynamic")?,
        }
        match (self.protocol, self.ports) {
            (None, None) => Ok(()),
            (proto, ports) => {
                let proto = proto.map(protocol_name).unwrap_or_else(|| "any".into());
                match ports {
                    None => write!(f, "[{proto}]"),
                    Some((lo, hi)) if lo == hi => write!(f, "[{proto}/{lo}]"),
                    Some((lo, hi)) => write!(f, "[{proto}/{lo}-{hi}]"),
                }
            }
        }
    }
}

pub fn protocol_name(proto: u8) -> String {
    match proto {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        47 => "gre".into(),
        58 => "ipv6-icmp".into(),
        other => other.to_string(),
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Child {
    pub name: String,
    pub local_ts: Vec<TrafficSelector>,
    pub remote_ts: Vec<TrafficSelector>,
    #[serde(serialize_with = "display_list")]
    pub esp_proposals: Vec<EspProposal>,
    pub mode: Mode,
    #[serde(with = "secs")]
    pub rekey_time: Duration,
    #[serde(with = "secs")]
    pub life_time: Duration,
    #[serde(with = "secs")]
    pub rand_time: Duration,
    /// Zero means no volume limit.
    pub rekey_bytes: u64,
    pub life_bytes: u64,
    pub rekey_packets: u64,
    pub life_packets: u64,
    /// Packets; 0: no replay protection.
    pub replay_window: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "mode", content = "value")]
pub enum MtuSetting {
    /// Outer MTU minus the real encapsulation overhead.
    Auto,
    Fixed(u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "mode", content = "value")]
pub enum MssClamp {
    /// Clamp SYNs to the route MTU (`tcp option maxseg size set rt mtu`).
    Auto,
    Fixed(u16),
    Off,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RpFilter {
    Off,
    Strict,
    Loose,
}

impl RpFilter {
    pub fn sysctl_value(self) -> u8 {
        match self {
            RpFilter::Off => 0,
            RpFilter::Strict => 1,
            RpFilter::Loose => 2,
        }
    }
}

/// An interface address, optionally with the far end of a point-to-point link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct InterfaceAddress {
    pub address: IpNet,
    pub peer: Option<IpAddr>,
}

impl std::fmt::Display for InterfaceAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.peer {
            Some(peer) => write!(f, "{} peer {peer}", self.address),
            None => write!(f, "{}", self.address),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Interface {
    pub name: String,
    pub addresses: Vec<InterfaceAddress>,
    pub mtu: MtuSetting,
    /// MTU of the path the ESP packets take; `None` lets apply read the egress device's MTU.
    pub outer_mtu: Option<u32>,
    pub mss_clamp: MssClamp,
    pub multicast: bool,
    pub rp_filter: RpFilter,
    /// XFRM interfaces: the underlying device (swanctl's / iproute2's `dev`).
    pub link: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Gre {
    /// GRE endpoints; the outer IKE endpoints unless set (GRE inside a tunnel-mode SA).
    pub local: Option<IpAddr>,
    pub remote: Option<IpAddr>,
    pub key: Option<u32>,
    pub ttl: u8,
    /// Let Cisco-style GRE keepalives be reflected back through the tunnel.
    pub keepalive_replies: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Route {
    pub to: IpNet,
    pub src: Option<IpAddr>,
    pub via: Option<IpAddr>,
    pub metric: Option<u32>,
    pub table: Option<u32>,
}

/// Source NAT of "interesting traffic" onto the address agreed with the partner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Snat {
    /// Destination prefix the rule matches.
    pub to: IpNet,
    /// Optional source prefix the rule matches.
    pub from: Option<IpNet>,
    /// Source address written into matching packets.
    pub source: IpAddr,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Tunnel {
    pub name: String,
    pub file: PathBuf,
    pub kind: TunnelKind,
    pub local: LocalEndpoint,
    pub remote: IpAddr,
    pub local_id: Option<Identity>,
    pub remote_id: Identity,
    /// Explicit XFRM mark (VTI) or if_id (XFRM interface); allocated when absent.
    pub mark: Option<u32>,
    pub if_id: Option<u32>,
    /// Drop traffic for the tunnel's routes when the device is gone (blackhole backstop).
    pub fail_closed: bool,
    pub ike: Ike,
    pub children: Vec<Child>,
    pub interface: Interface,
    pub gre: Option<Gre>,
    pub routes: Vec<Route>,
    pub snat: Vec<Snat>,
}

impl Tunnel {
    /// The outer address family, from the remote (the local one may be `%defaultroute`).
    pub fn outer_is_ipv6(&self) -> bool {
        self.remote.is_ipv6()
    }

    /// Whether the tunnel's routes together cover every address of `net` (two /25 routes
    /// cover their /24).
    pub fn routes_cover(&self, net: &IpNet) -> bool {
        fn covered(net: &IpNet, routes: &[Route]) -> bool {
            if routes.iter().any(|r| r.to.contains(net)) {
                return true;
            }
            // Split only where a route lies strictly inside: the recursion stays small.
            let inside = routes.iter().any(|r| net.contains(&r.to));
            if !inside || net.prefix_len() == net.max_prefix_len() {
                return false;
            }
            net.subnets(net.prefix_len() + 1)
                .map(|mut halves| halves.all(|half| covered(&half, routes)))
                .unwrap_or(false)
        }
        covered(net, &self.routes)
    }
}

fn display_list<T: std::fmt::Display, S: serde::Serializer>(
    list: &[T],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(list.iter().map(ToString::to_string))
}

/// Durations serialize as whole seconds, the unit swanctl users read.
pub(crate) mod secs {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_cover_by_union() {
        let src = crate::profile::SourceFile::new(
            "t.toml",
            "kind = \"vti\"\nremote = \"198.51.100.7\"\n[ike]\npsk_file = \"k\"\n[[child]]\nremote_ts = [\"10.0.0.0/8\"]\n\
[[route]]\nto = \"10.1.0.0/25\"\n[[route]]\nto = \"10.1.0.128/25\"\n[[route]]\nto = \"10.2.0.0/16\"\n"
                .into(),
        );
        let loaded = crate::profile::load_sources(vec![src], Default::default(), vec![]);
        let t = &loaded.tunnels.expect("loads")[0];
        let net = |s: &str| s.parse::<IpNet>().unwrap();
        assert!(t.routes_cover(&net("10.1.0.0/24")));
        assert!(t.routes_cover(&net("10.2.3.0/24")));
        assert!(!t.routes_cover(&net("10.1.0.0/23")));
        assert!(!t.routes_cover(&net("10.3.0.0/24")));
    }
}
