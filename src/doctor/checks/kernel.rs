//! Kernel support: the modules (or built-ins) for ESP, the tunnel device and AES-GCM.

use crate::doctor::facts::KernelSupport;
use crate::doctor::{Facts, Finding, Severity};
use crate::plan::{LinkKind, TunnelPlan};
use crate::proposal::Encryption;

const CHECK: &str = "kernel";

/// What the tunnel needs: (what for, the module names that provide it).
fn needs(tunnel: &TunnelPlan) -> Vec<(&'static str, &'static [&'static str])> {
    let ipv6 = super::remote(tunnel).is_ipv6();
    let mut out = vec![if ipv6 {
        ("ESP over IPv6", &["esp6"][..])
    } else {
        ("ESP over IPv4", &["esp4"][..])
    }];
    out.push(match (&tunnel.link.kind, ipv6) {
        (LinkKind::Vti { .. }, false) => ("VTI devices", &["ip_vti"][..]),
        (LinkKind::Vti { .. }, true) => ("IPv6 VTI devices", &["ip6_vti"][..]),
        (LinkKind::Gre { .. }, false) => ("GRE devices", &["ip_gre"][..]),
        (LinkKind::Gre { .. }, true) => ("IPv6 GRE devices", &["ip6_gre"][..]),
        (LinkKind::Xfrm { .. }, _) => ("XFRM interfaces", &["xfrm_interface"][..]),
    });
    let gcm = tunnel.ike.children.iter().any(|c| {
        c.esp_proposals
            .iter()
            .flat_map(|p| &p.encryption)
            .any(|e| matches!(e, Encryption::AesGcm16(_)))
    });
    if gcm {
        out.push(("AES-GCM (ESP proposals)", &["gcm"][..]));
    }
    out
}

/// Present when loaded, built in or installed (the kernel loads it on first use).
fn present(kernel: &KernelSupport, module: &str) -> bool {
    [&kernel.loaded, &kernel.builtin, &kernel.available]
        .iter()
        .any(|set| set.contains(module))
        || (module == "gcm" && kernel.crypto.iter().any(|c| c.starts_with("gcm(")))
}

pub fn check(facts: &Facts, tunnel: &TunnelPlan) -> Vec<Finding> {
    let kernel = &facts.kernel;
    let mut out = Vec::new();
    for (what, modules) in needs(tunnel) {
        if modules.iter().any(|m| present(kernel, m)) {
            continue;
        }
        let finding = match &kernel.unreadable {
            Some(why) => Finding::new(
                CHECK,
                Severity::Warning,
                tunnel,
                format!("cannot tell whether the kernel supports {what}: {why}"),
                format!("make sure module {} is available", modules.join(" or ")),
            ),
            None => Finding::new(
                CHECK,
                Severity::Error,
                tunnel,
                format!(
                    "the kernel lacks {what}: module {} is neither loaded, built in nor installed",
                    modules.join(" or ")
                ),
                "install the kernel's extra modules (e.g. linux-modules-extra) or a kernel with it",
            ),
        };
        out.push(finding);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::fixture;
    use super::*;

    #[test]
    fn a_kernel_without_vti_is_named() {
        let tunnel = fixture::vti();
        let mut facts = fixture::healthy(&tunnel);
        facts.kernel.loaded.remove("ip_vti");
        let findings = check(&facts, &tunnel);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].severity, Severity::Error);
        assert!(findings[0].message.contains("VTI devices"), "{findings:?}");
        facts.kernel.available.insert("ip_vti".into());
        assert!(check(&facts, &tunnel).is_empty());
    }

    #[test]
    fn unreadable_module_lists_are_a_warning_not_silence() {
        let tunnel = fixture::vti();
        let mut facts = fixture::healthy(&tunnel);
        facts.kernel.loaded.clear();
        facts.kernel.unreadable = Some("/lib/modules/6.1: not found".into());
        let findings = check(&facts, &tunnel);
        assert!(!findings.is_empty());
        assert!(findings.iter().all(|f| f.severity == Severity::Warning));
    }
}
