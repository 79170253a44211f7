//! XFRM policies routevpn did not make that catch our tunnel's traffic first: the kernel
//! uses the matching policy with the smallest priority number, and a policy matches a
//! packet whose mark it accepts (no mark: every packet) and whose if_id it carries. And
//! SAs with our children's reqids that the daemon did not negotiate: leftovers (of a
//! crashed daemon, another tool) the kernel may pick for our policies.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::apply::objects::{Policy, Template};
use crate::doctor::{Facts, Finding, Severity};
use crate::plan::{Endpoint, PolicyNet, TunnelPlan, XfrmPolicy};

const CHECK: &str = "xfrm";

fn net(net: PolicyNet, local: IpAddr) -> Option<IpNet> {
    match net {
        PolicyNet::Prefix(n) => Some(n),
        PolicyNet::LocalOuter => IpNet::new(local, if local.is_ipv6() { 128 } else { 32 }).ok(),
    }
}

fn address(e: Endpoint, local: IpAddr) -> IpAddr {
    match e {
        Endpoint::Address(a) => a,
        Endpoint::DefaultRoute => local,
    }
}

/// The planned policy as the kernel would hold it, `local` standing for our outer address.
pub fn live_policy(p: &XfrmPolicy, local: IpAddr) -> Option<Policy> {
    Some(Policy {
        direction: p.direction,
        src: net(p.src, local)?,
        dst: net(p.dst, local)?,
        protocol: p.protocol,
        src_ports: p.src_ports,
        dst_ports: p.dst_ports,
        mark: p.mark,
        if_id: p.if_id,
        priority: p.priority,
        template: Template {
            src: address(p.template.src, local),
            dst: address(p.template.dst, local),
            mode: p.template.mode,
            reqid: p.template.reqid,
        },
    })
}

fn direction(p: &Policy) -> String {
    format!("{:?}", p.direction).to_lowercase()
}

fn same_selector(a: &Policy, b: &Policy) -> bool {
    (a.direction, a.src, a.dst, a.protocol, a.mark, a.if_id)
        == (b.direction, b.src, b.dst, b.protocol, b.mark, b.if_id)
}

fn overlap(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Whether `foreign` would be chosen for some packet `ours` is meant for.
fn shadows(foreign: &Policy, ours: &Policy) -> bool {
    foreign.direction == ours.direction
        && foreign.priority <= ours.priority
        && foreign.if_id.unwrap_or(0) == ours.if_id.unwrap_or(0)
        && foreign.mark.is_none_or(|m| Some(m) == ours.mark)
        && overlap(&foreign.src, &ours.src)
        && overlap(&foreign.dst, &ours.dst)
        && (foreign.protocol.is_none()
            || ours.protocol.is_none()
            || foreign.protocol == ours.protocol)
}

pub fn check(facts: &Facts, tunnel: &TunnelPlan) -> Vec<Finding> {
    let local = match facts.egress.get(&tunnel.name) {
        Some(Ok(e)) => e.source,
        // Without our outer address, outer-address selectors cannot be compared.
        _ => match tunnel.ike.local {
            Endpoint::Address(a) => a,
            Endpoint::DefaultRoute => return Vec::new(),
        },
    };
    let ours: Vec<Policy> = tunnel
        .policies
        .iter()
        .filter_map(|p| live_policy(p, local))
        .collect();
    let mut out = stray_states(facts, tunnel);
    for mine in &ours {
        if !facts.policies.iter().any(|p| same_selector(p, mine)) {
            out.push(Finding::new(
                CHECK,
                Severity::Error,
                tunnel,
                format!(
                    "the XFRM policy {} {} -> {} is missing",
                    direction(mine),
                    mine.src,
                    mine.dst
                ),
                "routevpn apply",
            ));
        }
        let foreign = facts
            .policies
            .iter()
            .filter(|p| !ours.iter().any(|o| same_selector(p, o)))
            .filter(|p| shadows(p, mine));
        for p in foreign {
            out.push(Finding::new(
                CHECK,
                Severity::Error,
                tunnel,
                format!(
                    "a foreign XFRM policy {} {} -> {} (priority {}, reqid {}) catches traffic before routevpn's {} -> {} (priority {})",
                    direction(p), p.src, p.dst, p.priority, p.template.reqid, mine.src, mine.dst, mine.priority
                ),
                "remove it (another IPsec daemon's leftover? ip xfrm policy deleteall after stopping it)",
            ));
        }
    }
    out
}

/// Kernel SAs carrying one of the tunnel's reqids whose SPI the daemon does not report.
/// Only with a daemon: manual SAs and a stopped daemon leave nothing to compare with.
fn stray_states(facts: &Facts, tunnel: &TunnelPlan) -> Vec<Finding> {
    let Some(daemon) = &facts.daemon else {
        return Vec::new();
    };
    if tunnel.ike.manual_keys_file.is_some() {
        return Vec::new();
    }
    let reqids: Vec<u32> = tunnel.ike.children.iter().map(|c| c.reqid).collect();
    let known: Vec<String> = daemon
        .ike_sas
        .iter()
        .filter(|s| s.name == tunnel.name)
        .flat_map(|s| &s.children)
        .flat_map(|c| [c.spi_in.clone(), c.spi_out.clone()])
        .collect();
    facts
        .after
        .sas
        .iter()
        .filter(|sa| reqids.contains(&sa.reqid) && !known.contains(&format!("{:08x}", sa.spi)))
        .map(|sa| {
            Finding::new(
                CHECK,
                Severity::Warning,
                tunnel,
                format!(
                    "the SA {} -> {} spi {:08x} carries the tunnel's reqid {} but the daemon did \
                     not negotiate it: a leftover the kernel may use instead of ours",
                    sa.src, sa.dst, sa.spi, sa.reqid
                ),
                "remove it (ip xfrm state delete ...); a rekey in progress also shows this briefly",
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::fixture;
    use super::*;

    #[test]
    fn a_foreign_unmarked_policy_that_wins_is_named() {
        let tunnel = fixture::vti();
        let mut facts = fixture::healthy(&tunnel);
        let mut foreign = facts.policies[0].clone();
        foreign.mark = None;
        foreign.priority = 100;
        foreign.template.reqid = 77;
        facts.policies.push(foreign);
        let findings = check(&facts, &tunnel);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(findings[0].message.contains("reqid 77"), "{findings:?}");
    }

    #[test]
    fn a_foreign_policy_with_another_mark_does_not_shadow() {
        let tunnel = fixture::vti();
        let mut facts = fixture::healthy(&tunnel);
        let mut foreign = facts.policies[0].clone();
        foreign.mark = Some(0xdead);
        foreign.priority = 100;
        facts.policies.push(foreign);
        assert!(check(&facts, &tunnel).is_empty());
    }

    #[test]
    fn an_sa_with_our_reqid_the_daemon_does_not_know_is_named() {
        let tunnel = fixture::vti();
        let mut facts = fixture::healthy(&tunnel);
        let mut stray = facts.after.sas[0].clone();
        stray.spi = 0xdead_beef;
        facts.after.sas.push(stray);
        let findings = check(&facts, &tunnel);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(findings[0].message.contains("spi deadbeef"), "{findings:?}");
    }

    #[test]
    fn a_missing_policy_is_named() {
        let tunnel = fixture::vti();
        let mut facts = fixture::healthy(&tunnel);
        facts.policies.remove(0);
        let findings = check(&facts, &tunnel);
        assert!(findings[0].message.contains("is missing"), "{findings:?}");
    }
}
