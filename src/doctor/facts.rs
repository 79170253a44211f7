//! What `doctor` knows about the host: one snapshot of the kernel's configuration plus
//! two samples of its counters. Plain data, so every check is a pure function of it and
//! tests plant faults by building it directly.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::Serialize;

use crate::apply::netlink::nft::ruleset::LiveChain;
use crate::apply::objects::{Policy, Route, Rule};
use crate::daemon::control::Response;

#[derive(Clone, Debug, Default, Serialize)]
pub struct Facts {
    pub links: BTreeMap<String, LinkFacts>,
    /// Unicast and blackhole routes of every table.
    pub routes: Vec<Route>,
    /// Policy-routing rules that look up a table.
    pub rules: Vec<Rule>,
    pub policies: Vec<Policy>,
    /// Dotted name to value, for the keys the checks ask about that exist.
    pub sysctls: BTreeMap<String, String>,
    /// `None`: nf_tables could not be read (the nft check says so).
    pub nftables: Option<Vec<LiveChain>>,
    /// Tables listed in `/proc/net/ip_tables_names` (legacy iptables in use).
    pub iptables_tables: Vec<String>,
    pub kernel: KernelSupport,
    /// Per tunnel: the outer path to its peer, or why it could not be looked up.
    pub egress: BTreeMap<String, Result<Egress, String>>,
    /// The daemon's answer; `None` when no daemon runs.
    pub daemon: Option<Response>,
    /// FRR's OSPF neighbors; `None` when FRR's ospfd is absent.
    pub ospf: Option<Vec<OspfNeighbor>>,
    /// FRR's PIM neighbors; `None` when FRR's pimd is absent.
    pub pim: Option<Vec<PimNeighbor>>,
    /// FRR's BGP peers; `None` when FRR's bgpd is absent.
    pub bgp: Option<Vec<BgpPeer>>,
    pub before: Counters,
    pub after: Counters,
    /// Seconds between the two counter samples.
    pub interval_secs: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LinkFacts {
    /// Link kind (`vti`, `gre`, `xfrm`, `veth`...); empty for plain devices.
    pub kind: String,
    pub mtu: u32,
    /// IFF_UP: the administrator's wish.
    pub up: bool,
    /// The kernel's operational state (`up`, `down`, `unknown`, `lowerlayerdown`...).
    pub operstate: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Egress {
    pub device: String,
    pub source: IpAddr,
    pub mtu: u32,
}

/// Where each kernel feature comes from; a name missing from all three sets is absent.
#[derive(Clone, Debug, Default, Serialize)]
pub struct KernelSupport {
    /// Modules loaded now (`/proc/modules`, `/sys/module`: also built-ins with parameters).
    pub loaded: BTreeSet<String>,
    /// Built into the kernel (`modules.builtin`).
    pub builtin: BTreeSet<String>,
    /// Installed, loaded on first use (`modules.dep`).
    pub available: BTreeSet<String>,
    /// Algorithm names the crypto API offers now (`/proc/crypto`).
    pub crypto: BTreeSet<String>,
    /// Why module lists could not be read; checks then say they cannot tell.
    pub unreadable: Option<String>,
}

/// Counters sampled at one instant.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Counters {
    pub devices: BTreeMap<String, DeviceCounters>,
    pub sas: Vec<SaCounters>,
    /// `/proc/net/xfrm_stat`.
    pub xfrm_stat: BTreeMap<String, u64>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DeviceCounters {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_dropped: u64,
    pub tx_dropped: u64,
    pub tx_carrier_errors: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SaCounters {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub spi: u32,
    pub reqid: u32,
    pub packets: u64,
    pub bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OspfNeighbor {
    pub router_id: String,
    /// FRR's state, e.g. `ExStart/DROther` or `Full/DR`.
    pub state: String,
    pub device: String,
}

/// A PIM neighbor pimd has heard hellos from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PimNeighbor {
    pub device: String,
    pub address: IpAddr,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BgpPeer {
    pub address: IpAddr,
    /// FRR's address family, e.g. `ipv4Unicast`.
    pub family: String,
    /// FRR's session state, e.g. `Established` or `Active`.
    pub state: String,
    /// FRR discards the peer's updates both ways: eBGP without a route-map while `bgp
    /// ebgp-requires-policy` (its default) is on.
    pub policy_missing: bool,
}

impl Counters {
    pub fn sa(&self, src: IpAddr, dst: IpAddr, spi: u32) -> Option<&SaCounters> {
        self.sas
            .iter()
            .find(|s| s.src == src && s.dst == dst && s.spi == spi)
    }
}

impl Facts {
    /// How much `counter` of `/proc/net/xfrm_stat` grew between the samples.
    pub fn xfrm_stat_delta(&self, counter: &str) -> u64 {
        let at = |c: &Counters| c.xfrm_stat.get(counter).copied().unwrap_or(0);
        at(&self.after).saturating_sub(at(&self.before))
    }

    /// Device counters after minus before; `None` if the device was not seen twice.
    pub fn device_delta(&self, device: &str) -> Option<DeviceCounters> {
        let (b, a) = (
            self.before.devices.get(device)?,
            self.after.devices.get(device)?,
        );
        let d = |x: u64, y: u64| y.saturating_sub(x);
        Some(DeviceCounters {
            rx_packets: d(b.rx_packets, a.rx_packets),
            tx_packets: d(b.tx_packets, a.tx_packets),
            rx_errors: d(b.rx_errors, a.rx_errors),
            tx_errors: d(b.tx_errors, a.tx_errors),
            rx_dropped: d(b.rx_dropped, a.rx_dropped),
            tx_dropped: d(b.tx_dropped, a.tx_dropped),
            tx_carrier_errors: d(b.tx_carrier_errors, a.tx_carrier_errors),
        })
    }

    pub fn sysctl(&self, key: &str) -> Option<&str> {
        self.sysctls.get(key).map(String::as_str)
    }
}
