//! `routevpn doctor`: what stands between a tunnel's packets and the other side.
//!
//! [`gather`] reads a [`Facts`] snapshot (netlink, procfs, the daemon, FRR); each module
//! under [`checks`] is a pure function of the facts and one tunnel's plan that returns
//! [`Finding`]s, each a plain sentence and its fix.

pub mod checks;
pub mod facts;
mod frr;
pub mod gather;
pub mod output;

use serde::Serialize;

pub use facts::Facts;

use crate::plan::TunnelPlan;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; packets may still pass.
    Info,
    /// Likely to hurt, or doctor could not tell.
    Warning,
    /// Packets do not get through (or will not) until it is fixed.
    Error,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The check that found it (its module name).
    pub check: &'static str,
    pub severity: Severity,
    /// The tunnel it concerns; `None` for host-wide findings.
    pub tunnel: Option<String>,
    pub message: String,
    pub fix: String,
}

impl Finding {
    pub fn new(
        check: &'static str,
        severity: Severity,
        tunnel: &TunnelPlan,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Finding {
        Finding {
            check,
            severity,
            tunnel: Some(tunnel.name.clone()),
            message: message.into(),
            fix: fix.into(),
        }
    }

    /// A finding about the host rather than one tunnel.
    pub fn host(self) -> Finding {
        Finding {
            tunnel: None,
            ..self
        }
    }
}

/// Runs every check on every tunnel; a host-wide finding is reported once.
pub fn diagnose(facts: &Facts, tunnels: &[TunnelPlan]) -> Vec<Finding> {
    let mut findings: Vec<Finding> = Vec::new();
    for tunnel in tunnels {
        for check in checks::ALL {
            for finding in check(facts, tunnel) {
                if !findings.contains(&finding) {
                    findings.push(finding);
                }
            }
        }
    }
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    findings
}

/// 0 healthy (or only warnings and notes), 1 an error was found; 2 (could not run) is the
/// caller's.
pub fn exit_code(findings: &[Finding]) -> u8 {
    u8::from(findings.iter().any(|f| f.severity == Severity::Error))
}

#[cfg(test)]
mod tests {
    use super::checks::fixture;
    use super::*;

    #[test]
    fn healthy_example_tunnels_give_no_finding() {
        for name in [
            "vti-telecom",
            "gre-datacenter",
            "net-to-net",
            "ospf-a",
            "pim-a",
            "bgp-cloud-1",
            "xfrm-dualstack",
        ] {
            let tunnel = fixture::tunnel(name);
            let facts = fixture::healthy(&tunnel);
            let findings = diagnose(&facts, std::slice::from_ref(&tunnel));
            assert_eq!(findings, vec![], "{name}");
            assert_eq!(exit_code(&findings), 0);
        }
    }

    #[test]
    fn an_error_sets_exit_code_1() {
        let tunnel = fixture::vti();
        let mut facts = fixture::healthy(&tunnel);
        facts.daemon = None;
        assert_eq!(exit_code(&diagnose(&facts, &[tunnel])), 1);
    }
}
