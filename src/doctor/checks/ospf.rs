//! An OSPF neighbor stuck in ExStart or Exchange on the tunnel device: the database
//! description exchange stalls when the two ends' interface MTUs differ. Best effort: the
//! facts hold FRR's neighbors only when its ospfd answers; without FRR, nothing is said.

use crate::doctor::{Facts, Finding, Severity};
use crate::plan::TunnelPlan;

const CHECK: &str = "ospf";

pub fn check(facts: &Facts, tunnel: &TunnelPlan) -> Vec<Finding> {
    let device = &tunnel.link.name;
    let mtu = facts.links.get(device).map_or(tunnel.link.mtu, |l| l.mtu);
    facts
        .ospf
        .iter()
        .flatten()
        .filter(|n| &n.device == device)
        .filter(|n| n.state.starts_with("ExStart") || n.state.starts_with("Exchange"))
        .map(|n| {
            Finding::new(
                CHECK,
                Severity::Error,
                tunnel,
                format!(
                    "OSPF neighbor {} on {device} is stuck in {}: the interface MTUs differ \
                     (ours is {mtu}; OSPF refuses database descriptions from a larger MTU)",
                    n.router_id, n.state
                ),
                format!(
                    "give both ends the same MTU (mtu = {mtu} on the peer's device, or `mtu` in \
                     this profile), or `ip ospf mtu-ignore` on both interfaces in FRR"
                ),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::fixture;
    use super::*;
    use crate::doctor::facts::OspfNeighbor;

    #[test]
    fn a_neighbor_stuck_in_exstart_names_the_mtu() {
        let tunnel = fixture::vti();
        let mut facts = fixture::healthy(&tunnel);
        let neighbor = |device: &str, state: &str| OspfNeighbor {
            router_id: "10.255.0.2".into(),
            state: state.into(),
            device: device.into(),
        };
        facts.ospf = Some(vec![
            neighbor("vti-telecom", "ExStart/DROther"),
            neighbor("eth0", "ExStart/DR"),
            neighbor("vti-telecom", "Full/DR"),
        ]);
        let findings = check(&facts, &tunnel);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(findings[0].message.contains("MTUs differ"), "{findings:?}");
    }
}
