//! A route of the tunnel without a gateway while pimd runs PIM over its device. pimd sends
//! its joins toward a source or RP to the neighbor the route names; a route naming only the
//! device makes it look for a neighbor at the source's (or RP's) own address, which it never
//! finds, so no join leaves and the multicast never comes (FRR issue 3217). Best effort:
//! the facts hold FRR's PIM neighbors only when its pimd answers; without FRR, nothing is said.

use crate::doctor::{Facts, Finding, Severity};
use crate::plan::{RouteKind, TunnelPlan};

const CHECK: &str = "pim";

pub fn check(facts: &Facts, tunnel: &TunnelPlan) -> Vec<Finding> {
    let device = &tunnel.link.name;
    let neighbors: Vec<String> = facts
        .pim
        .iter()
        .flatten()
        .filter(|n| &n.device == device)
        .map(|n| n.address.to_string())
        .collect();
    let Some(first) = neighbors.first() else {
        return Vec::new();
    };
    tunnel
        .routes
        .iter()
        .filter(|r| r.kind == RouteKind::Unicast && r.via.is_none() && r.to.addr().is_ipv4())
        .map(|r| {
            Finding::new(
                CHECK,
                Severity::Warning,
                tunnel,
                format!(
                    "PIM runs on {device} (neighbor {}), but the route to {} names no gateway: \
                     pimd sends joins for sources and RPs there to a neighbor at their own \
                     address, finds none, and their multicast never arrives",
                    neighbors.join(", "),
                    r.to
                ),
                format!("add via = \"{first}\" (the PIM neighbor) to that [[route]]"),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::fixture;
    use super::*;
    use crate::doctor::facts::PimNeighbor;

    #[test]
    fn a_route_without_gateway_under_pim_is_named_with_the_neighbor() {
        let mut tunnel = fixture::tunnel("pim-b");
        let mut facts = fixture::healthy(&tunnel);
        let neighbor = |device: &str| PimNeighbor {
            device: device.into(),
            address: "169.254.104.1".parse().unwrap(),
        };
        facts.pim = Some(vec![neighbor("gre-to-a"), neighbor("lan")]);
        // The example names the gateway: healthy.
        assert!(check(&facts, &tunnel).is_empty());
        for route in &mut tunnel.routes {
            route.via = None;
        }
        let findings = check(&facts, &tunnel);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(
            findings[0]
                .message
                .contains("route to 10.1.0.0/24 names no gateway"),
            "{findings:?}"
        );
        assert!(
            findings[0].fix.contains("via = \"169.254.104.1\""),
            "{findings:?}"
        );
        // Without pimd, or without PIM on this device, nothing is said.
        facts.pim = None;
        assert!(check(&facts, &tunnel).is_empty());
        facts.pim = Some(vec![neighbor("lan")]);
        assert!(check(&facts, &tunnel).is_empty());
    }
}
