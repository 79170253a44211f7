//! One module per check; each is `fn(&Facts, &TunnelPlan) -> Vec<Finding>`, pure.

pub mod bgp;
pub mod counters;
pub mod ike;
pub mod kernel;
pub mod mtu;
pub mod nftables;
pub mod ospf;
pub mod pim;
pub mod routes;
pub mod sysctls;
pub mod xfrm;

#[cfg(test)]
pub(crate) mod fixture;

use super::{Facts, Finding};
use crate::plan::TunnelPlan;

pub type Check = fn(&Facts, &TunnelPlan) -> Vec<Finding>;

pub const ALL: &[Check] = &[
    kernel::check,
    sysctls::check,
    routes::check,
    xfrm::check,
    nftables::check,
    mtu::check,
    ike::check,
    counters::check,
    ospf::check,
    pim::check,
    bgp::check,
];

/// The peer's outer address as the plan knows it.
pub fn remote(tunnel: &TunnelPlan) -> std::net::IpAddr {
    tunnel.ike.remote
}
