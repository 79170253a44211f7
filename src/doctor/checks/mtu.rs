//! The outer path's MTU against the tunnel device's: a device MTU computed for a wider
//! path makes full-size packets exceed the path once encapsulated (fragmented or dropped).

use crate::doctor::{Facts, Finding, Severity};
use crate::plan::TunnelPlan;

const CHECK: &str = "mtu";

pub fn check(facts: &Facts, tunnel: &TunnelPlan) -> Vec<Finding> {
    let mut out = Vec::new();
    let device = &tunnel.link.name;
    let egress = match facts.egress.get(&tunnel.name) {
        Some(Ok(e)) => e,
        Some(Err(why)) => {
            out.push(Finding::new(
                CHECK,
                Severity::Error,
                tunnel,
                format!("no route to the peer {}: {why}", super::remote(tunnel)),
                "add a route to the peer's outer address",
            ));
            return out;
        }
        None => return out,
    };
    if let Some(b) = &tunnel.mtu.breakdown {
        // What the device may carry on this path: the plan's overhead on the live MTU.
        let fits = egress.mtu.saturating_sub(b.outer_mtu.saturating_sub(b.mtu));
        if let Some(link) = facts.links.get(device).filter(|l| l.mtu > fits) {
            out.push(Finding::new(
                CHECK,
                Severity::Warning,
                tunnel,
                format!(
                    "{device} has MTU {}, but the path to the peer via {} carries {} bytes: \
                     encapsulated full-size packets ({}) need {}",
                    link.mtu,
                    egress.device,
                    egress.mtu,
                    b.transform,
                    link.mtu + b.outer_mtu - b.mtu
                ),
                format!("routevpn apply recomputes mtu = \"auto\" from the path; or set mtu = {fits} in the profile"),
            ));
        }
    }
    if let Some(link) = facts.links.get(device) {
        if link.mtu != tunnel.mtu.mtu && out.is_empty() {
            out.push(Finding::new(
                CHECK,
                Severity::Warning,
                tunnel,
                format!(
                    "{device} has MTU {}, the plan says {}",
                    link.mtu, tunnel.mtu.mtu
                ),
                "routevpn apply; a routing protocol (OSPF) needs the same MTU on both ends",
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::fixture;
    use super::*;

    #[test]
    fn a_narrower_path_than_planned_is_named() {
        let tunnel = fixture::vti();
        assert!(
            tunnel.mtu.breakdown.is_some(),
            "the example computes its MTU"
        );
        let mut facts = fixture::healthy(&tunnel);
        if let Some(Ok(e)) = facts.egress.get_mut(&tunnel.name) {
            e.mtu = 1400;
        }
        let findings = check(&facts, &tunnel);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(
            findings[0].message.contains("carries 1400 bytes"),
            "{findings:?}"
        );
    }

    #[test]
    fn no_route_to_the_peer_is_an_error() {
        let tunnel = fixture::vti();
        let mut facts = fixture::healthy(&tunnel);
        facts
            .egress
            .insert(tunnel.name.clone(), Err("network unreachable".into()));
        assert_eq!(check(&facts, &tunnel)[0].severity, Severity::Error);
    }
}
