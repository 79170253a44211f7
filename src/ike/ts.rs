//! Traffic selectors as IKEv2 carries them (address ranges, RFC 7296 section 3.13.1), and
//! narrowing (section 2.9): the responder answers with the part of the initiator's
//! selectors that its own configuration allows.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

/// A traffic selector: a prefix (or the outer address, `dynamic`) with optional protocol / ports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TrafficSelector {
    /// `None` means `dynamic`: the tunnel's own outer address.
    pub net: Option<IpNet>,
    pub protocol: Option<u8>,
    pub ports: Option<(u16, u16)>,
}

impl std::fmt::Display for TrafficSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.net {
            Some(net) => write!(f, "{net}")?,
            None => f.write_str("dynamic")?,
        }
        match (self.protocol, self.ports) {
            (None, None) => Ok(()),
            (proto, ports) => {
                let proto = proto.map(protocol_name).unwrap_or_else(|| "any".into());
                match ports {
                    None => write!(f, "[{proto}]"),
                    Some((lo, hi)) if lo == hi => write!(f, "[{proto}/{lo}]"),
                    Some((lo, hi)) => write!(f, "[{proto}/{lo}-{hi}]"),
                }
            }
        }
    }
}

pub fn protocol_name(proto: u8) -> String {
    match proto {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        47 => "gre".into(),
        58 => "ipv6-icmp".into(),
        other => other.to_string(),
    }
}

/// One selector: an inclusive address range, an IP protocol (0 = any) and a port range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TsRange {
    pub protocol: u8,
    pub start_port: u16,
    pub end_port: u16,
    pub start: IpAddr,
    pub end: IpAddr,
}

fn to_u128(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn from_u128(value: u128, ipv6: bool) -> IpAddr {
    if ipv6 {
        IpAddr::V6(value.into())
    } else {
        // Callers only pass values that came from IPv4 addresses.
        IpAddr::V4(u32::try_from(value).unwrap_or(u32::MAX).into())
    }
}

impl TsRange {
    /// A configured selector; `dynamic` stands for the tunnel's own outer address.
    pub fn from_selector(ts: &TrafficSelector, dynamic: IpAddr) -> TsRange {
        let net = ts.net.unwrap_or_else(|| IpNet::from(dynamic));
        let (start_port, end_port) = ts.ports.unwrap_or((0, u16::MAX));
        TsRange {
            protocol: ts.protocol.unwrap_or(0),
            start_port,
            end_port,
            start: net.network(),
            end: net.broadcast(),
        }
    }

    pub fn is_ipv6(&self) -> bool {
        self.start.is_ipv6()
    }

    /// The part both selectors cover, if any.
    pub fn intersect(&self, other: &TsRange) -> Option<TsRange> {
        if self.is_ipv6() != other.is_ipv6() {
            return None;
        }
        let protocol = match (self.protocol, other.protocol) {
            (0, p) | (p, 0) => p,
            (a, b) if a == b => a,
            _ => return None,
        };
        let start_port = self.start_port.max(other.start_port);
        let end_port = self.end_port.min(other.end_port);
        let start = to_u128(self.start).max(to_u128(other.start));
        let end = to_u128(self.end).min(to_u128(other.end));
        (start_port <= end_port && start <= end).then(|| TsRange {
            protocol,
            start_port,
            end_port,
            start: from_u128(start, self.is_ipv6()),
            end: from_u128(end, self.is_ipv6()),
        })
    }

    pub fn contains(&self, other: &TsRange) -> bool {
        self.intersect(other).as_ref() == Some(other)
    }

    /// The smallest prefix covering the range: XFRM selectors are prefixes.
    pub fn covering_prefix(&self) -> IpNet {
        let (start, end) = (to_u128(self.start), to_u128(self.end));
        let bits: u8 = if self.is_ipv6() { 128 } else { 32 };
        let differing = 128 - (start ^ end).leading_zeros();
        let host_bits = u8::try_from(differing).unwrap_or(128).min(bits);
        IpNet::new(self.start, bits - host_bits)
            .map(|n| n.trunc())
            .unwrap_or_else(|_| IpNet::from(self.start))
    }

    /// Ports as an XFRM selector can hold them: a single port or any.
    pub fn ports(&self) -> Option<(u16, u16)> {
        (self.start_port != 0 || self.end_port != u16::MAX)
            .then_some((self.start_port, self.end_port))
    }
}

/// The responder's narrowing: every non-empty intersection of an offered selector with a
/// configured one, in the initiator's order, without duplicates.
pub fn narrow(configured: &[TsRange], offered: &[TsRange]) -> Vec<TsRange> {
    let mut out: Vec<TsRange> = Vec::new();
    for theirs in offered {
        for ours in configured {
            if let Some(common) = theirs.intersect(ours) {
                if !out.contains(&common) {
                    out.push(common);
                }
            }
        }
    }
    out
}

/// The initiator's check: every selector the responder chose lies within what we proposed.
pub fn within(proposed: &[TsRange], chosen: &[TsRange]) -> bool {
    !chosen.is_empty()
        && chosen
            .iter()
            .all(|c| proposed.iter().any(|p| p.contains(c)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `prefix` or `dynamic`, then optionally `[protocol]` or `[protocol/port(-port)]`.
    fn ts(text: &str) -> TsRange {
        let (net, rest) = text.split_once('[').unwrap_or((text, ""));
        let (protocol, ports) = rest
            .trim_end_matches(']')
            .split_once('/')
            .unwrap_or((rest, ""));
        let port = |p: &str| p.parse::<u16>().unwrap();
        let sel = TrafficSelector {
            net: (net != "dynamic").then(|| net.parse().unwrap()),
            protocol: match protocol.trim_end_matches(']') {
                "" => None,
                name => Some((0..=255).find(|p| protocol_name(*p) == name).unwrap()),
            },
            ports: match ports.split_once('-') {
                _ if ports.is_empty() => None,
                Some((lo, hi)) => Some((port(lo), port(hi))),
                None => Some((port(ports), port(ports))),
            },
        };
        TsRange::from_selector(&sel, "192.0.2.1".parse().unwrap())
    }

    #[test]
    fn ranges_from_prefixes_and_dynamic() {
        let r = ts("192.168.10.0/24");
        assert_eq!(r.start.to_string(), "192.168.10.0");
        assert_eq!(r.end.to_string(), "192.168.10.255");
        assert_eq!((r.protocol, r.start_port, r.end_port), (0, 0, 65535));
        let g = ts("dynamic[gre]");
        assert_eq!(
            (g.start.to_string(), g.end.to_string(), g.protocol),
            ("192.0.2.1".into(), "192.0.2.1".into(), 47)
        );
    }

    #[test]
    fn narrowing_keeps_only_what_both_allow() {
        let configured = [ts("192.168.30.0/24")];
        let offered = [ts("0.0.0.0/0"), ts("::/0")];
        assert_eq!(narrow(&configured, &offered), vec![ts("192.168.30.0/24")]);
        let offered = [ts("192.168.30.128/25[tcp/443]")];
        assert_eq!(
            narrow(&configured, &offered),
            vec![ts("192.168.30.128/25[tcp/443]")]
        );
        assert!(narrow(&configured, &[ts("10.0.0.0/8")]).is_empty());
        assert!(narrow(&[ts("0.0.0.0/0[udp]")], &[ts("0.0.0.0/0[tcp]")]).is_empty());
    }

    #[test]
    fn initiator_refuses_a_wider_answer() {
        let proposed = [ts("192.168.10.0/24")];
        assert!(within(&proposed, &[ts("192.168.10.0/25")]));
        assert!(!within(&proposed, &[ts("192.168.0.0/16")]));
        assert!(!within(&proposed, &[]));
    }

    #[test]
    fn covering_prefix() {
        assert_eq!(
            ts("10.1.0.0/16").covering_prefix().to_string(),
            "10.1.0.0/16"
        );
        assert_eq!(ts("0.0.0.0/0").covering_prefix().to_string(), "0.0.0.0/0");
        assert_eq!(
            ts("2001:db8::/32").covering_prefix().to_string(),
            "2001:db8::/32"
        );
        let odd = TsRange {
            start: "10.0.0.5".parse().unwrap(),
            end: "10.0.0.9".parse().unwrap(),
            ..ts("10.0.0.0/24")
        };
        assert_eq!(odd.covering_prefix().to_string(), "10.0.0.0/28");
        assert_eq!(
            ts("192.0.2.1/32").covering_prefix().to_string(),
            "192.0.2.1/32"
        );
    }
}
