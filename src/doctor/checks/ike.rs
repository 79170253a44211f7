//! The IKE side as the daemon reports it: no daemon, no IKE SA, a state other than
//! established (with the last failure's reason), a dataplane the kernel refused, no
//! installed CHILD SA.

use crate::doctor::{Facts, Finding, Severity};
use crate::plan::TunnelPlan;

const CHECK: &str = "ike";

pub fn check(facts: &Facts, tunnel: &TunnelPlan) -> Vec<Finding> {
    let mut out = Vec::new();
    if tunnel.ike.manual_keys_file.is_some() {
        return out;
    }
    let name = &tunnel.name;
    let Some(daemon) = &facts.daemon else {
        out.push(Finding::new(
            CHECK,
            Severity::Error,
            tunnel,
            "the routevpn daemon is not running: nothing negotiates the SAs",
            "start it (systemctl start routevpn, or routevpn daemon)",
        ));
        return out;
    };
    for failure in daemon.failures.iter().filter(|f| &f.name == name) {
        out.push(Finding::new(
            CHECK,
            Severity::Error,
            tunnel,
            format!(
                "the kernel refused the dataplane ({} attempts): {}",
                failure.attempts, failure.error
            ),
            format!(
                "fix the cause; the daemon retries in {} s",
                failure.retry_in_secs
            ),
        ));
    }
    let sas: Vec<_> = daemon.ike_sas.iter().filter(|s| &s.name == name).collect();
    let last_failure =
        daemon
            .ike_failures
            .iter()
            .find(|f| &f.name == name)
            .map_or(String::new(), |f| {
                format!(
                    "; the last negotiation failed {} s ago: {}",
                    f.secs_ago, f.reason
                )
            });
    if sas.is_empty() {
        out.push(Finding::new(
            CHECK,
            Severity::Error,
            tunnel,
            format!("no IKE SA for {name}{last_failure}"),
            format!("routevpn up {name}, and read the daemon's log for the reason it fails"),
        ));
    } else if !sas.iter().any(|s| s.state == "ESTABLISHED") {
        let states: Vec<&str> = sas.iter().map(|s| s.state.as_str()).collect();
        out.push(Finding::new(
            CHECK,
            Severity::Error,
            tunnel,
            format!(
                "the IKE SA is not established (state {}){last_failure}",
                states.join(", ")
            ),
            "check the peer's address, UDP 500/4500 reachability, proposals and credentials",
        ));
    } else if !sas
        .iter()
        .flat_map(|s| &s.children)
        .any(|c| c.state == "INSTALLED")
    {
        out.push(Finding::new(
            CHECK,
            Severity::Error,
            tunnel,
            "the IKE SA is up but no CHILD SA is installed",
            "compare traffic selectors and ESP proposals with the peer",
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::fixture;
    use super::*;
    use crate::daemon::control::IkeFailure;

    #[test]
    fn a_connecting_ike_sa_and_a_missing_daemon_are_named() {
        let tunnel = fixture::vti();
        let mut facts = fixture::healthy(&tunnel);
        facts.daemon.as_mut().unwrap().ike_sas[0].state = "CONNECTING".into();
        facts
            .daemon
            .as_mut()
            .unwrap()
            .ike_failures
            .push(IkeFailure {
                name: tunnel.name.clone(),
                reason: "authentication failed".into(),
                secs_ago: 7,
            });
        let findings = check(&facts, &tunnel);
        assert!(
            findings[0].message.contains("state CONNECTING"),
            "{findings:?}"
        );
        assert!(
            findings[0]
                .message
                .contains("failed 7 s ago: authentication failed"),
            "{findings:?}"
        );
        facts.daemon = None;
        assert!(check(&facts, &tunnel)[0].message.contains("not running"));
    }

    #[test]
    fn a_refused_dataplane_is_named_with_its_reason() {
        let tunnel = fixture::vti();
        let mut facts = fixture::healthy(&tunnel);
        facts
            .daemon
            .as_mut()
            .unwrap()
            .failures
            .push(crate::daemon::control::TunnelFailure {
                name: tunnel.name.clone(),
                error: "File exists (os error 17)".into(),
                attempts: 2,
                ..Default::default()
            });
        let findings = check(&facts, &tunnel);
        assert!(findings[0].message.contains("File exists"), "{findings:?}");
    }
}
