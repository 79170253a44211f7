//! The sysctls the plan sets (forwarding, disable_policy, rp_filter...) as the kernel holds
//! them, and a strict reverse-path filter that `all` imposes over the device's own value.

use crate::doctor::{Facts, Finding, Severity};
use crate::plan::TunnelPlan;

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
