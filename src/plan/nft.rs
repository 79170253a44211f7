//! routevpn's own nftables table (`inet routevpn`): SNAT, MSS clamping and forward accepts.
//! It is replaced as a whole in one batch, and nobody else's table is touched.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::TunnelPlan;
use crate::model::{MssClamp, Tunnel};

pub const TABLE: &str = "routevpn";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NftTable {
    pub name: String,
    pub chains: Vec<NftChain>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NftChain {
    pub name: String,
    /// `nat` or `filter`.
    pub chain_type: String,
    pub hook: String,
    pub priority: i32,
    pub rules: Vec<NftRule>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Ipv4,
    Ipv6,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "rule")]
pub enum NftRule {
    /// Rewrites the source of traffic to `to` (leaving through `device`, if routed).
    Snat {
        tunnel: String,
        device: Option<String>,
        daddr: IpNet,
        saddr: Option<IpNet>,
        source: IpAddr,
    },
    /// SYNs leaving through the tunnel: MSS set from the route's MTU.
    MssToRouteMtu { tunnel: String, device: String },
    /// SYNs in either direction capped at a fixed MSS for one family.
    MssCap {
        tunnel: String,
        device: String,
        inbound: bool,
        family: Family,
        mss: u32,
    },
    Accept {
        tunnel: String,
        device: String,
        inbound: bool,
    },
}

fn family_word(addr: &IpAddr) -> &'static str {
    if addr.is_ipv4() {
        "ip"
    } else {
        "ip6"
    }
}

impl fmt::Display for NftRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NftRule::Snat {
                device,
                daddr,
                saddr,
                source,
                ..
            } => {
                let fam = family_word(source);
                if let Some(dev) = device {
                    write!(f, "oifname \"{dev}\" ")?;
                }
                if let Some(saddr) = saddr {
                    write!(f, "{fam} saddr {saddr} ")?;
                }
                write!(f, "{fam} daddr {daddr} snat {fam} to {source}")
            }
            NftRule::MssToRouteMtu { device, .. } => write!(
                f,
                "oifname \"{device}\" tcp flags syn / syn,rst tcp option maxseg size set rt mtu"
            ),
            NftRule::MssCap {
                device,
                inbound,
                family,
                mss,
                ..
            } => {
                let dir = if *inbound { "iifname" } else { "oifname" };
                let nfproto = match family {
                    Family::Ipv4 => "ipv4",
                    Family::Ipv6 => "ipv6",
                };
                write!(
                    f,
                    "{dir} \"{device}\" meta nfproto {nfproto} tcp flags syn / syn,rst tcp option maxseg size > {mss} tcp option maxseg size set {mss}"
                )
            }
            NftRule::Accept {
                device, inbound, ..
            } => {
                let dir = if *inbound { "iifname" } else { "oifname" };
                write!(f, "{dir} \"{device}\" accept")
            }
        }
    }
}

impl NftTable {
    /// The table in `nft -f` syntax, as the dataplane installs it.
    pub fn to_nft_script(&self) -> String {
        let mut s = format!("table inet {} {{\n", self.name);
        for chain in &self.chains {
            s += &format!(
                "\tchain {} {{\n\t\ttype {} hook {} priority {}; policy accept;\n",
                chain.name, chain.chain_type, chain.hook, chain.priority
            );
            for rule in &chain.rules {
                s += &format!("\t\t{rule}\n");
            }
            s += "\t}\n";
        }
        s + "}\n"
    }
}

pub fn table(tunnels: &[Tunnel], plans: &[TunnelPlan]) -> NftTable {
    let mut snat = Vec::new();
    let mut mss = Vec::new();
    let mut accept = Vec::new();
    for (tunnel, plan) in tunnels.iter().zip(plans) {
        let name = &tunnel.name;
        let device = &tunnel.interface.name;
        for rule in &tunnel.snat {
            let routed = tunnel.routes_cover(&rule.to);
            snat.push(NftRule::Snat {
                tunnel: name.clone(),
                device: routed.then(|| device.clone()),
                daddr: rule.to,
                saddr: rule.from,
                source: rule.source,
            });
        }
        let cap = |inbound, family, mss| NftRule::MssCap {
            tunnel: name.clone(),
            device: device.clone(),
            inbound,
            family,
            mss,
        };
        match tunnel.interface.mss_clamp {
            MssClamp::Off => {}
            MssClamp::Auto => {
                mss.push(NftRule::MssToRouteMtu {
                    tunnel: name.clone(),
                    device: device.clone(),
                });
                // Route MTU says nothing about SYNs arriving from the tunnel: cap those at
                // what the tunnel carries, so the far side never sends segments too big.
                mss.push(cap(true, Family::Ipv4, plan.mtu.mss_ipv4));
                mss.push(cap(true, Family::Ipv6, plan.mtu.mss_ipv6));
            }
            MssClamp::Fixed(n) => {
                // The configured value is an IPv4 MSS; IPv6 headers are 20 bytes longer.
                for inbound in [false, true] {
                    mss.push(cap(inbound, Family::Ipv4, u32::from(n)));
                    mss.push(cap(inbound, Family::Ipv6, u32::from(n).saturating_sub(20)));
                }
            }
        }
        for inbound in [true, false] {
            accept.push(NftRule::Accept {
                tunnel: name.clone(),
                device: device.clone(),
                inbound,
            });
        }
    }
    NftTable {
        name: TABLE.to_string(),
        chains: vec![
            chain("postrouting", "nat", "postrouting", 100, snat),
            chain("mss", "filter", "forward", -150, mss),
            chain("forward", "filter", "forward", 0, accept),
        ],
    }
}

fn chain(name: &str, chain_type: &str, hook: &str, priority: i32, rules: Vec<NftRule>) -> NftChain {
    NftChain {
        name: name.into(),
        chain_type: chain_type.into(),
        hook: hook.into(),
        priority,
        rules,
    }
}
