//! The sysctls the plan sets (forwarding, disable_policy, rp_filter...) as the kernel holds
//! them, a strict reverse-path filter that `all` imposes over the device's own value, and
//! IPv4 forwarding on the devices the local networks arrive on: packets from the LAN are
//! forwarded only if the device they enter by forwards.

use crate::doctor::{Facts, Finding, Severity};
use crate::plan::{Direction, PolicyNet, TunnelPlan};

const CHECK: &str = "sysctls";

pub fn check(facts: &Facts, tunnel: &TunnelPlan) -> Vec<Finding> {
    let mut out = Vec::new();
    if !facts.links.contains_key(&tunnel.link.name) {
        // The routes check names the missing device; its sysctls cannot exist.
        return out;
    }
    for wanted in &tunnel.sysctls {
        match facts.sysctl(&wanted.key) {
            Some(live) if live == wanted.value => {}
            live => out.push(Finding::new(
                CHECK,
                Severity::Error,
                tunnel,
                format!(
                    "{} is {}, the tunnel needs {} ({})",
                    wanted.key,
                    live.unwrap_or("unreadable"),
                    wanted.value,
                    wanted.why
                ),
                "routevpn apply (and make sure no sysctl.conf or network manager resets it)",
            )),
        }
    }
    out.extend(rp_filter(facts, tunnel));
    out.extend(lan_forwarding(facts, tunnel));
    out
}

fn lan_forwarding(facts: &Facts, tunnel: &TunnelPlan) -> Vec<Finding> {
    let device = &tunnel.link.name;
    let mut out = Vec::new();
    let lans = tunnel.policies.iter().filter_map(|p| match p.src {
        PolicyNet::Prefix(net) if p.direction == Direction::Out && net.addr().is_ipv4() => {
            (net.prefix_len() < net.max_prefix_len()).then_some(net)
        }
        _ => None,
    });
    for lan in lans {
        let Some((route, _)) = super::routes::lookup(facts, lan.network()) else {
            continue;
        };
        let Some(lan_device) = route.device.as_ref().filter(|d| *d != device) else {
            continue;
        };
        let key = format!("net.ipv4.conf.{lan_device}.forwarding");
        if facts.sysctl(&key) == Some("0") {
            let finding = Finding::new(
                CHECK,
                Severity::Error,
                tunnel,
                format!(
                    "packets from {lan} arrive on {lan_device}, which does not forward \
                     ({key} = 0): they never reach {device}"
                ),
                format!("set {key} = 1 (or net.ipv4.ip_forward = 1)"),
            );
            if !out.contains(&finding) {
                out.push(finding);
            }
        }
    }
    out
}

/// The kernel applies the larger of `all` and the device's rp_filter; strict mode (1)
/// drops decapsulated packets whose source is routed elsewhere, and multicast.
fn rp_filter(facts: &Facts, tunnel: &TunnelPlan) -> Option<Finding> {
    let device = &tunnel.link.name;
    let value = |key: String| facts.sysctl(&key).and_then(|v| v.parse::<u8>().ok());
    let all = value("net.ipv4.conf.all.rp_filter".into())?;
    let own = value(format!("net.ipv4.conf.{device}.rp_filter"))?;
    if all.max(own) != 1 || own == 1 {
        // A strict device value is the profile's choice, compared above.
        return None;
    }
    let multicast = if tunnel.link.multicast {
        " and multicast"
    } else {
        ""
    };
    Some(Finding::new(
        CHECK,
        Severity::Warning,
        tunnel,
        format!(
            "net.ipv4.conf.all.rp_filter = 1 makes {device}'s reverse-path filter strict: \
             decapsulated{multicast} packets from sources not routed via {device} are dropped"
        ),
        "set net.ipv4.conf.all.rp_filter to 0 or 2 (the larger of all and the device wins)",
    ))
}

#[cfg(test)]
mod tests {
    use super::super::fixture;
    use super::*;

    #[test]
    fn a_reset_disable_policy_is_named() {
        let tunnel = fixture::vti();
        let mut facts = fixture::healthy(&tunnel);
        let key = "net.ipv4.conf.vti-telecom.disable_policy";
        facts.sysctls.insert(key.into(), "0".into());
        let findings = check(&facts, &tunnel);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(findings[0].message.starts_with(key), "{findings:?}");
        assert_eq!(findings[0].severity, Severity::Error);
    }

    #[test]
    fn a_lan_device_that_does_not_forward_is_named() {
        // net-to-net joins two local networks: it forwards.
        let tunnel = fixture::tunnel("net-to-net");
        let mut facts = fixture::healthy(&tunnel);
        let lan = tunnel
            .policies
            .iter()
            .find_map(|p| match p.src {
                PolicyNet::Prefix(net) if p.direction == Direction::Out => Some(net),
                _ => None,
            })
            .expect("a local network");
        facts.routes.push(crate::apply::objects::Route {
            table: crate::apply::objects::MAIN_TABLE,
            to: lan,
            metric: 0,
            route_type: crate::apply::objects::RouteType::Unicast,
            device: Some("lan0".into()),
            via: None,
            src: None,
            protocol: 2,
        });
        facts
            .sysctls
            .insert("net.ipv4.conf.lan0.forwarding".into(), "1".into());
        assert!(check(&facts, &tunnel).is_empty());
        facts
            .sysctls
            .insert("net.ipv4.conf.lan0.forwarding".into(), "0".into());
        let findings = check(&facts, &tunnel);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(findings[0].message.contains("never reach"), "{findings:?}");
    }

    #[test]
    fn strict_rp_filter_from_all_is_named() {
        // GRE carries multicast: its own rp_filter is off, so `all` decides.
        let tunnel = fixture::tunnel("gre-datacenter");
        let mut facts = fixture::healthy(&tunnel);
        facts
            .sysctls
            .insert("net.ipv4.conf.all.rp_filter".into(), "1".into());
        let findings = check(&facts, &tunnel);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(findings[0].message.contains("strict"), "{findings:?}");
    }
}
