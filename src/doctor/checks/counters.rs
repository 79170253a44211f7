//! Which side drops, from two counter samples: the SAs' packet counts in and out, the
//! device's, and the kernel's XFRM error counters (`/proc/net/xfrm_stat`, host-wide).

use std::net::IpAddr;

use crate::doctor::facts::Counters;
use crate::doctor::{Facts, Finding, Severity};
use crate::plan::TunnelPlan;

const CHECK: &str = "counters";

/// Packets one way, none the other, before that says who drops: a tunnel carrying only
/// keepalives (BGP every few seconds each way) sends one in a sample window whose answer
/// falls outside it, and is healthy.
const ONE_WAY_EVIDENCE: u64 = 3;

/// xfrm_stat counters that name a fault when they grow: (counter, severity, meaning, fix).
const XFRM_STAT: [(&str, Severity, &str, &str); 6] = [
    (
        "XfrmInStateProtoError",
        Severity::Error,
        "ESP arrives but fails its integrity check (ICV)",
        "keys or ESN differ from the peer's: rekey (routevpn rekey NAME), compare manual keys or ESN settings",
    ),
    (
        "XfrmInNoStates",
        Severity::Warning,
        "ESP arrives for an SPI this host has no SA for",
        "the peer still uses an SA deleted here: restart the negotiation (routevpn up NAME)",
    ),
    (
        "XfrmInTmplMismatch",
        Severity::Warning,
        "decrypted packets match no input policy's template",
        "compare traffic selectors with the peer's",
    ),
    (
        "XfrmInStateSeqError",
        Severity::Warning,
        "ESP arrives outside the replay window",
        "reordering on the path, or a replay window too small",
    ),
    (
        "XfrmOutPolBlock",
        Severity::Error,
        "outgoing packets hit a policy that blocks them",
        "look for a block policy or routevpn's fail-closed policy without its SA",
    ),
    (
        "XfrmOutNoStates",
        Severity::Error,
        "outgoing packets match a policy but find no SA",
        "the CHILD SA is not negotiated: see the IKE findings",
    ),
];

fn growth(before: &Counters, after: &Counters, pick: impl Fn(IpAddr, IpAddr) -> bool) -> u64 {
    after
        .sas
        .iter()
        .filter(|s| pick(s.src, s.dst))
        .map(|s| {
            let earlier = before
                .sa(s.src, s.dst, s.spi)
                .map_or(s.packets, |b| b.packets);
            s.packets.saturating_sub(earlier)
        })
        .sum()
}

pub fn check(facts: &Facts, tunnel: &TunnelPlan) -> Vec<Finding> {
    let mut out = Vec::new();
    let every = format!("in {:.1} s", facts.interval_secs);
    for (counter, severity, meaning, fix) in XFRM_STAT {
        let grew = facts.xfrm_stat_delta(counter);
        if grew > 0 {
            out.push(
                Finding::new(
                    CHECK,
                    severity,
                    tunnel,
                    format!("{meaning}: {counter} grew by {grew} {every}"),
                    fix,
                )
                .host(),
            );
        }
    }
    let remote = super::remote(tunnel);
    let sent = growth(&facts.before, &facts.after, |_, dst| dst == remote);
    let received = growth(&facts.before, &facts.after, |src, _| src == remote);
    let device = &tunnel.link.name;
    if sent >= ONE_WAY_EVIDENCE && received == 0 {
        out.push(Finding::new(
            CHECK,
            Severity::Error,
            tunnel,
            format!("we sent {sent} ESP packets to {remote} {every} and received none: the peer or the path drops them"),
            "check the peer's SAs and firewalls on the path for ESP (or UDP 4500)",
        ));
    }
    if let Some(d) = facts.device_delta(device) {
        let no_sa = d.tx_errors + d.tx_carrier_errors;
        if no_sa > 0 && sent == 0 {
            out.push(Finding::new(
                CHECK,
                Severity::Error,
                tunnel,
                format!("{no_sa} packets routed into {device} {every} found no SA to leave with"),
                "the CHILD SA is missing or its mark/if_id differs from the device's: see the IKE findings",
            ));
        }
        if received >= ONE_WAY_EVIDENCE && d.rx_packets > 0 && d.tx_packets == 0 && sent == 0 {
            out.push(Finding::new(
                CHECK,
                Severity::Error,
                tunnel,
                format!("traffic arrives through {device} but nothing is sent into it {every}: the replies leave by another route"),
                "route the remote prefixes into the tunnel (see the routes findings)",
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
    fn esp_sent_and_none_received_is_named() {
        let tunnel = fixture::vti();
        let mut facts = fixture::healthy(&tunnel);
        let remote = super::super::remote(&tunnel);
        for s in facts.after.sas.iter_mut().filter(|s| s.src == remote) {
            s.packets = 10;
        }
        let findings = check(&facts, &tunnel);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(
            findings[0].message.contains("received none"),
            "{findings:?}"
        );
    }

    #[test]
    fn a_keepalive_unanswered_within_the_window_is_no_finding() {
        // A quiet BGP tunnel: one keepalive out, none in; or one in and nothing sent.
        let tunnel = fixture::vti();
        let remote = super::super::remote(&tunnel);
        let local: IpAddr = fixture::LOCAL.parse().unwrap();
        for (from, to) in [(local, remote), (remote, local)] {
            let mut facts = fixture::healthy(&tunnel);
            for s in facts.after.sas.iter_mut() {
                s.packets = if s.src == from { 11 } else { 10 };
            }
            let device = facts.after.devices.get_mut(&tunnel.link.name).unwrap();
            (device.tx_packets, device.rx_packets) =
                if from == local { (11, 10) } else { (10, 11) };
            assert_eq!(
                check(&facts, &tunnel),
                vec![],
                "one packet from {from} to {to}"
            );
        }
    }

    #[test]
    fn icv_failures_are_named() {
        let tunnel = fixture::vti();
        let mut facts = fixture::healthy(&tunnel);
        facts
            .before
            .xfrm_stat
            .insert("XfrmInStateProtoError".into(), 5);
        facts
            .after
            .xfrm_stat
            .insert("XfrmInStateProtoError".into(), 9);
        let findings = check(&facts, &tunnel);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(
            findings[0].message.contains("integrity check"),
            "{findings:?}"
        );
        assert_eq!(findings[0].tunnel, None);
    }

    #[test]
    fn replies_that_never_enter_the_device_are_named() {
        let tunnel = fixture::vti();
        let mut facts = fixture::healthy(&tunnel);
        let local: IpAddr = fixture::LOCAL.parse().unwrap();
        for s in facts.after.sas.iter_mut().filter(|s| s.src == local) {
            s.packets = 10;
        }
        let device = facts.after.devices.get_mut(&tunnel.link.name).unwrap();
        device.tx_packets = 10;
        let findings = check(&facts, &tunnel);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(
            findings[0].message.contains("another route"),
            "{findings:?}"
        );
    }
}
