//! nftables rules that drop IKE (UDP 500/4500), ESP or the tunnel's forwarded traffic.
//!
//! A heuristic, and honest about it: only base chains are read (jumps are not followed),
//! and a drop rule counts only if every match it makes is one understood here (layer 4
//! protocol, destination port, input/output device). A rule that also matches on
//! anything else (a set lookup, conntrack state, an address) may or may not hit our
//! packets and is left alone. Legacy iptables rules cannot be read over netlink; their
//! presence is reported.

use crate::apply::netlink::nft::ruleset::LiveChain;
use crate::doctor::{Facts, Finding, Severity};
use crate::plan::TunnelPlan;

const CHECK: &str = "nftables";
const UDP: u8 = 17;
const ESP: u8 = 50;
const IKE_PORTS: [u16; 2] = [500, 4500];

#[derive(Clone, Debug, PartialEq, Eq)]
enum Match {
    Protocol(u8),
    DestinationPort(u16),
    InputDevice(String),
    OutputDevice(String),
    /// Anything else: the rule may not hit our packets.
    Other,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Accept,
    Drop,
}

/// What a register was loaded with, to read the comparison that follows.
#[derive(Clone, Copy)]
enum Load {
    Protocol,
    DestinationPort,
    InputDevice,
    OutputDevice,
    /// The address family: narrows nothing we care about.
    Family,
    Other,
}

fn load_of(expression: &str) -> Load {
    let e = expression;
    if e.starts_with("meta load l4proto") || e.starts_with("payload load 1b @ network header + 9") {
        Load::Protocol
    } else if e.starts_with("meta load nfproto") {
        Load::Family
    } else if e.starts_with("payload load 2b @ transport header + 2") {
        Load::DestinationPort
    } else if e.starts_with("meta load iifname") {
        Load::InputDevice
    } else if e.starts_with("meta load oifname") {
        Load::OutputDevice
    } else {
        Load::Other
    }
}

/// The bytes of `cmp eq reg 1 0x... 0x...`: libnftnl prints 32-bit words in host order.
fn compared_bytes(expression: &str) -> Option<Vec<u8>> {
    let rest = expression.strip_prefix("cmp eq reg 1 ")?;
    let mut bytes = Vec::new();
    for word in rest.split_whitespace() {
        let value = u32::from_str_radix(word.strip_prefix("0x")?, 16).ok()?;
        bytes.extend_from_slice(&value.to_ne_bytes());
    }
    Some(bytes)
}

fn device_name(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// A rule's matches and final verdict, or `None` if it ends in no accept or drop.
fn parse(rule: &[String]) -> Option<(Vec<Match>, Verdict)> {
    let mut matches = Vec::new();
    let mut load = Load::Other;
    let mut verdict = None;
    for expression in rule {
        let name = expression.split_whitespace().next().unwrap_or_default();
        match name {
            "counter" | "log" | "limit" => {}
            "meta" | "payload" | "ct" | "exthdr" => load = load_of(expression),
            "cmp" => {
                let value = compared_bytes(expression);
                matches.push(match (load, value) {
                    (Load::Family, Some(_)) => continue,
                    (Load::Protocol, Some(b)) if !b.is_empty() => Match::Protocol(b[0]),
                    (Load::DestinationPort, Some(b)) if b.len() >= 2 => {
                        Match::DestinationPort(u16::from_be_bytes([b[0], b[1]]))
                    }
                    (Load::InputDevice, Some(b)) => Match::InputDevice(device_name(&b)),
                    (Load::OutputDevice, Some(b)) => Match::OutputDevice(device_name(&b)),
                    _ => Match::Other,
                });
            }
            "immediate" if expression.ends_with(" accept") => verdict = Some(Verdict::Accept),
            "immediate" if expression.ends_with(" drop") => verdict = Some(Verdict::Drop),
            "reject" => verdict = Some(Verdict::Drop),
            _ => matches.push(Match::Other),
        }
    }
    Some((matches, verdict?))
}

/// Whether a rule with `matches` hits every packet of layer 4 `protocol` (to `port`)
/// passing through `devices`.
fn hits(matches: &[Match], protocol: u8, port: Option<u16>, devices: &[&str]) -> bool {
    matches.iter().all(|m| match m {
        Match::Protocol(p) => *p == protocol,
        Match::DestinationPort(d) => port == Some(*d),
        Match::InputDevice(d) | Match::OutputDevice(d) => devices.contains(&d.as_str()),
        Match::Other => false,
    })
}

struct Traffic<'a> {
    what: String,
    hooks: &'static [&'static str],
    protocol: u8,
    port: Option<u16>,
    devices: Vec<&'a str>,
}

fn traffic<'a>(tunnel: &'a TunnelPlan, egress: Option<&'a str>) -> Vec<Traffic<'a>> {
    let outer: Vec<&str> = egress.into_iter().collect();
    let mut out: Vec<Traffic<'a>> = IKE_PORTS
        .iter()
        .map(|port| Traffic {
            what: format!("IKE (UDP {port})"),
            hooks: &["ingress", "prerouting", "input", "output"],
            protocol: UDP,
            port: Some(*port),
            devices: outer.clone(),
        })
        .collect();
    out.push(Traffic {
        what: "ESP".into(),
        hooks: &["ingress", "prerouting", "input", "output", "postrouting"],
        protocol: ESP,
        port: None,
        devices: outer.clone(),
    });
    // Only a tunnel between networks forwards; a host's own traffic is not forwarded.
    let forwarding = format!("net.ipv4.conf.{}.forwarding", tunnel.link.name);
    let gateway = tunnel.sysctls.iter().any(|s| s.key == forwarding);
    for protocol in [1, 6, 17].into_iter().filter(|_| gateway) {
        out.push(Traffic {
            what: format!("traffic forwarded through {}", tunnel.link.name),
            hooks: &["forward"],
            protocol,
            port: None,
            devices: vec![tunnel.link.name.as_str()],
        });
    }
    out
}

fn chain_name(c: &LiveChain) -> String {
    format!(
        "{} {} chain {} (hook {})",
        c.family,
        c.table,
        c.name,
        c.hook.as_deref().unwrap_or("-")
    )
}

pub fn check(facts: &Facts, tunnel: &TunnelPlan) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(chains) = &facts.nftables else {
        out.push(
            Finding::new(
                CHECK,
                Severity::Error,
                tunnel,
                "the nftables ruleset could not be read: rules dropping IKE or ESP would go unnoticed",
                "run routevpn doctor as root",
            )
            .host(),
        );
        return out;
    };
    let egress = match facts.egress.get(&tunnel.name) {
        Some(Ok(e)) => Some(e.device.as_str()),
        _ => None,
    };
    let flows = traffic(tunnel, egress);
    for chain in chains.iter().filter(|c| c.table != crate::plan::NFT_TABLE) {
        let Some(hook) = chain.hook.as_deref() else {
            continue;
        };
        let rules: Vec<_> = chain.rules.iter().filter_map(|r| parse(r)).collect();
        for flow in flows.iter().filter(|f| f.hooks.contains(&hook)) {
            let first = rules
                .iter()
                .find(|(m, _)| hits(m, flow.protocol, flow.port, &flow.devices));
            let dropped = match first {
                Some((_, Verdict::Drop)) => "a rule drops",
                Some((_, Verdict::Accept)) => continue,
                None if chain.policy.as_deref() == Some("drop") && hook != "output" => {
                    "the policy drop applies (no rule accepts it first)"
                }
                None => continue,
            };
            let finding = Finding::new(
                CHECK,
                Severity::Error,
                tunnel,
                format!("{}: {dropped} {}", chain_name(chain), flow.what),
                format!("accept {} in that chain before any drop", flow.what),
            );
            if !out.contains(&finding) {
                out.push(finding);
            }
        }
    }
    if !facts.iptables_tables.is_empty() {
        out.push(
            Finding::new(
                CHECK,
                Severity::Info,
                tunnel,
                format!(
                    "legacy iptables tables are in use ({}); doctor cannot read their rules",
                    facts.iptables_tables.join(", ")
                ),
                "check them with iptables-legacy-save for drops of UDP 500/4500 and ESP",
            )
            .host(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::fixture;
    use super::*;

    fn chain(hook: &str, policy: &str, rules: Vec<Vec<&str>>) -> LiveChain {
        LiveChain {
            family: "inet".into(),
            table: "filter".into(),
            name: hook.into(),
            hook: Some(hook.into()),
            priority: 0,
            policy: Some(policy.into()),
            rules: rules
                .into_iter()
                .map(|r| r.into_iter().map(String::from).collect())
                .collect(),
        }
    }

    fn port_word(port: u16) -> String {
        let mut bytes = [0u8; 4];
        bytes[..2].copy_from_slice(&port.to_be_bytes());
        format!("cmp eq reg 1 0x{:08x}", u32::from_ne_bytes(bytes))
    }

    #[test]
    fn a_rule_dropping_udp_500_is_named() {
        let tunnel = fixture::vti();
        let mut facts = fixture::healthy(&tunnel);
        let port = port_word(500);
        let drop = vec![
            "meta load l4proto => reg 1",
            "cmp eq reg 1 0x00000011",
            "payload load 2b @ transport header + 2 => reg 1",
            &port,
            "counter pkts 0 bytes 0",
            "immediate reg 0 drop",
        ];
        facts.nftables = Some(vec![chain("input", "accept", vec![drop])]);
        let findings = check(&facts, &tunnel);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(
            findings[0].message.contains("a rule drops IKE (UDP 500)"),
            "{findings:?}"
        );
    }

    #[test]
    fn a_drop_policy_without_accepts_is_named_and_accepts_fix_it() {
        let tunnel = fixture::vti();
        let mut facts = fixture::healthy(&tunnel);
        facts.nftables = Some(vec![chain("input", "drop", vec![])]);
        let findings = check(&facts, &tunnel);
        assert_eq!(findings.len(), 3, "IKE 500, 4500 and ESP: {findings:?}");
        let ports: Vec<String> = [500, 4500].iter().map(|p| port_word(*p)).collect();
        let accept_udp = |port: &str| {
            vec![
                "meta load l4proto => reg 1".to_string(),
                "cmp eq reg 1 0x00000011".into(),
                "payload load 2b @ transport header + 2 => reg 1".into(),
                port.to_string(),
                "immediate reg 0 accept".into(),
            ]
        };
        let mut accepting = chain("input", "drop", vec![]);
        accepting.rules = vec![
            accept_udp(&ports[0]),
            accept_udp(&ports[1]),
            vec![
                "meta load l4proto => reg 1".into(),
                "cmp eq reg 1 0x00000032".into(),
                "immediate reg 0 accept".into(),
            ],
        ];
        facts.nftables = Some(vec![accepting]);
        assert_eq!(check(&facts, &tunnel), vec![]);
    }

    #[test]
    fn dropping_forwarded_tunnel_traffic_is_named_but_unknown_matches_are_not() {
        let tunnel = fixture::tunnel("net-to-net");
        let mut facts = fixture::healthy(&tunnel);
        let mut name = [0u8; 16];
        name[..12].copy_from_slice(b"vti-office-b");
        let words: Vec<String> = name
            .chunks(4)
            .map(|c| format!("0x{:08x}", u32::from_ne_bytes(c.try_into().unwrap())))
            .collect();
        let cmp = format!("cmp eq reg 1 {}", words.join(" "));
        let drop = vec!["meta load iifname => reg 1", &cmp, "immediate reg 0 drop"];
        facts.nftables = Some(vec![chain("forward", "accept", vec![drop.clone()])]);
        let findings = check(&facts, &tunnel);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(findings[0]
            .message
            .contains("forwarded through vti-office-b"));
        let mut narrowed = drop.clone();
        narrowed.insert(2, "lookup reg 1 set __set0");
        facts.nftables = Some(vec![chain("forward", "accept", vec![narrowed])]);
        assert!(check(&facts, &tunnel).is_empty());
    }

    #[test]
    fn a_host_only_tunnel_ignores_a_forward_drop_policy() {
        let tunnel = fixture::vti();
        let mut facts = fixture::healthy(&tunnel);
        facts.nftables = Some(vec![chain("forward", "drop", vec![])]);
        assert_eq!(check(&facts, &tunnel), vec![]);
        let gateway = fixture::tunnel("net-to-net");
        let mut facts = fixture::healthy(&gateway);
        facts.nftables = Some(vec![chain("forward", "drop", vec![])]);
        assert_eq!(check(&facts, &gateway).len(), 1);
    }

    #[test]
    fn an_unreadable_ruleset_is_an_error() {
        let tunnel = fixture::vti();
        let mut facts = fixture::healthy(&tunnel);
        facts.nftables = None;
        assert_eq!(check(&facts, &tunnel)[0].severity, Severity::Error);
    }
}
