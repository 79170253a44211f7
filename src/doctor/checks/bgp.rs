//! A BGP peer across the tunnel whose routes FRR discards: since FRR 7.4 `bgp
//! ebgp-requires-policy` is on by default, and an eBGP peer without a route-map in and out
//! gets Established and exchanges nothing ("(Policy)" in `show bgp summary`), which looks
//! like a tunnel that carries no traffic. Best effort, like the OSPF check: without FRR's
//! bgpd nothing is said.

use std::net::IpAddr;

use crate::doctor::{Facts, Finding, Severity};
use crate::plan::TunnelPlan;

const CHECK: &str = "bgp";

pub fn check(facts: &Facts, tunnel: &TunnelPlan) -> Vec<Finding> {
    let device = &tunnel.link.name;
    facts
        .bgp
        .iter()
        .flatten()
        .filter(|p| p.policy_missing && across(tunnel, p.address))
        .map(|p| {
            Finding::new(
                CHECK,
                Severity::Error,
                tunnel,
                format!(
                    "BGP peer {} on {device} is {} but FRR discards every route from and to it \
                     ({}): eBGP without a policy, and `bgp ebgp-requires-policy` is on (FRR's default)",
                    p.address, p.state, p.family
                ),
                format!(
                    "give the neighbor route-maps (`neighbor {} route-map NAME in` and `out`), or \
                     `no bgp ebgp-requires-policy` under `router bgp`",
                    p.address
                ),
            )
        })
        .collect()
}

/// `address` is the far end of one of the tunnel's inside addresses: in its prefix (or
/// its `peer`), and not our own.
fn across(tunnel: &TunnelPlan, address: IpAddr) -> bool {
    tunnel.addresses.iter().any(|a| {
        a.peer == Some(address) || (a.address.contains(&address) && a.address.addr() != address)
    })
}

#[cfg(test)]
mod tests {
    use super::super::fixture;
    use super::*;
    use crate::doctor::facts::BgpPeer;

    fn peer(address: &str, state: &str, policy_missing: bool) -> BgpPeer {
        BgpPeer {
            address: address.parse().unwrap(),
            family: "ipv4Unicast".into(),
            state: state.into(),
            policy_missing,
        }
    }

    /// The check on bgp-cloud-1 (169.254.31.2/30 on vti-bgp-1, the partner's end .1) of a
    /// healthy host whose bgpd has `peers`.
    fn findings_with(peers: Vec<BgpPeer>) -> Vec<Finding> {
        let tunnel = fixture::tunnel("bgp-cloud-1");
        let mut facts = fixture::healthy(&tunnel);
        facts.bgp = Some(peers);
        check(&facts, &tunnel)
    }

    #[test]
    fn a_peer_across_the_tunnel_without_a_policy_is_named() {
        let findings = findings_with(vec![
            peer("169.254.31.1", "Established", true),
            // Elsewhere (another tunnel's /30, the LAN): not this tunnel's business.
            peer("169.254.32.1", "Established", true),
            peer("10.2.0.100", "Active", true),
        ]);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(
            findings[0].message.starts_with(
                "BGP peer 169.254.31.1 on vti-bgp-1 is Established but FRR discards every route"
            ),
            "{findings:?}"
        );
        assert_eq!(findings[0].severity, Severity::Error);
    }

    #[test]
    fn a_peer_with_its_policy_or_our_own_address_is_no_finding() {
        let findings = findings_with(vec![
            peer("169.254.31.1", "Established", false),
            peer("169.254.31.2", "Active", true),
        ]);
        assert_eq!(findings, vec![]);
    }
}
