//! The validated model: what a profile means once every value has been checked.
//!
//! Every address is an [`IpAddr`] / [`IpNet`]: IPv4 and IPv6 are equal citizens, inner and outer.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::Serialize;

use crate::ike::engine::{display_list, secs};
pub use crate::ike::engine::{
    Dn, Dpd, DpdAction, Identity, KeyId, Mode, NatTraversal, StartAction, CHILD_REKEY_TIME,
    IKE_REKEY_TIME, MAX_REPLAY_WINDOW, REPLAY_WINDOW,
};
pub use crate::ike::ts::{protocol_name, TrafficSelector};
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

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "method")]
pub enum Auth {
    /// IKE negotiates the SAs; each side proves its identity as configured.
    Ike(IkeAuth),
    /// No IKE: SAs with static SPIs and keys from `keys_file`, installed by the dataplane.
    /// A debugging aid, as `ip xfrm state add` would set them.
    Manual {
        #[serde(serialize_with = "secret_path")]
        keys_file: PathBuf,
    },
}

/// How we authenticate (`auth`) and how the peer must (`remote_auth`): chosen apart, as a
/// peer may answer our signature with a PSK. Credentials stay paths: the daemon reads them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IkeAuth {
    pub local: LocalCredential,
    pub remote: RemoteCredential,
    /// Meaningful with a certificate only.
    pub send_cert: SendCert,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "method")]
pub enum LocalCredential {
    Psk {
        #[serde(serialize_with = "secret_path")]
        file: PathBuf,
    },
    /// A signature with `private_key`; without a certificate the peer knows the bare key.
    PublicKey {
        #[serde(serialize_with = "secret_path")]
        private_key: PathBuf,
        /// PEM: our certificate, then intermediates.
        certificate: Option<PathBuf>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "method")]
pub enum RemoteCredential {
    Psk {
        #[serde(serialize_with = "secret_path")]
        file: PathBuf,
    },
    /// A signature by this one key (raw public key, as libreswan's `rsasigkey`).
    PublicKey { key: PeerKey },
    /// A signature by the key of a certificate that chains to one of `ca`, checked
    /// against `crl` (PEM files).
    Certificate { ca: Vec<PathBuf>, crl: Vec<PathBuf> },
}

/// Whether we send our certificate in a CERT payload (swanctl's `send_cert`). The
/// daemon maps it onto the engine's own setting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SendCert {
    Always,
    /// When the peer sent a CERTREQ.
    #[default]
    IfAsked,
    Never,
}

/// The peer's raw public key: a PEM SPKI or `0s…` file, or the `0s…` text itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerKey {
    File(PathBuf),
    /// libreswan's RFC 3110 form, checked when the profile was read.
    Rfc3110(String),
}

impl Auth {
    /// Every file path, for resolving them against the profile's directory.
    pub fn paths_mut(&mut self) -> Vec<&mut PathBuf> {
        let ike = match self {
            Auth::Manual { keys_file } => return vec![keys_file],
            Auth::Ike(ike) => ike,
        };
        let mut paths = match &mut ike.local {
            LocalCredential::Psk { file } => vec![file],
            LocalCredential::PublicKey {
                private_key,
                certificate,
            } => std::iter::once(private_key).chain(certificate).collect(),
        };
        match &mut ike.remote {
            RemoteCredential::Psk { file } => paths.push(file),
            RemoteCredential::PublicKey {
                key: PeerKey::File(file),
            } => paths.push(file),
            RemoteCredential::PublicKey {
                key: PeerKey::Rfc3110(_),
            } => {}
            RemoteCredential::Certificate { ca, crl } => paths.extend(ca.iter_mut().chain(crl)),
        }
        paths
    }
}

impl IkeAuth {
    /// The pre-shared key file, if either side uses one (both then use the same).
    pub fn psk_file(&self) -> Option<&Path> {
        match (&self.local, &self.remote) {
            (LocalCredential::Psk { file }, _) | (_, RemoteCredential::Psk { file }) => Some(file),
            _ => None,
        }
    }
}

/// A secret file's path as [`crate::profile::shown_secret_path`] shows it.
fn secret_path<S: serde::Serializer>(path: &Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::profile::shown_secret_path(path))
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

/// What the tunnel's routes and device do while it has no CHILD SA.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnSaLoss {
    /// Routes and device stay: traffic keeps reaching the tunnel (and its trap policies).
    #[default]
    Keep,
    /// The device goes admin-down and its routes go, so a backup route takes over.
    Withdraw,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Route {
    pub to: IpNet,
    pub src: Option<IpAddr>,
    pub via: Option<IpAddr>,
    pub metric: Option<u32>,
    pub table: Option<u32>,
}

/// Fail-closed blackhole routes sit behind every real route to the same prefix: a primary's
/// and its backup's alike.
pub const FAIL_CLOSED_METRIC: u32 = 0xffff_ff00;

/// IPv6 has no route metric 0: the kernel stores such a route with this one.
pub const IPV6_DEFAULT_METRIC: u32 = 1024;

impl Route {
    /// The metric the kernel files the route under, with IPv6's 1024 said as 0 in both
    /// families (one kernel route, one metric).
    pub fn kernel_metric(&self) -> u32 {
        match self.metric.unwrap_or(0) {
            IPV6_DEFAULT_METRIC if self.to.addr().is_ipv6() => 0,
            metric => metric,
        }
    }
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
    pub on_sa_loss: OnSaLoss,
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
