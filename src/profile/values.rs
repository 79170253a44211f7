//! Parsers for the scalar values a profile holds. Each returns a message and a hint on failure;
//! the caller attaches the location.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

use crate::model::{Dn, Identity, InterfaceAddress, KeyId, TrafficSelector};

#[derive(Debug, PartialEq, Eq)]
pub struct Invalid {
    pub message: String,
    pub hint: Option<String>,
}

fn invalid(message: impl Into<String>, hint: Option<&str>) -> Invalid {
    Invalid {
        message: message.into(),
        hint: hint.map(str::to_string),
    }
}

const DURATION_HINT: &str = "write a number with a unit: 30s, 15m, 8h, 1d";

/// `90s`, `15m`, `8h`, `1d` (whole numbers), as swanctl.conf writes them.
pub fn duration(text: &str) -> Result<Duration, Invalid> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let bad = || invalid(format!("invalid duration \"{text}\""), Some(DURATION_HINT));
    if digits.is_empty() {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "" => {
            return Err(invalid(
                format!("duration \"{text}\" has no unit"),
                Some(&format!("write \"{text}s\" for seconds, or use an integer")),
            ))
        }
        _ => return Err(bad()),
    };
    n.checked_mul(scale)
        .filter(|s| *s <= 10 * 365 * 86_400)
        .map(Duration::from_secs)
        .ok_or_else(|| {
            invalid(
                format!("duration \"{text}\" is too long"),
                Some("at most 3650d"),
            )
        })
}

/// `500K`, `100M`, `4G` or plain digits, for byte and packet limits (powers of 1024 as swanctl).
pub fn volume(text: &str) -> Result<u64, Invalid> {
    let (digits, scale) = match text.char_indices().last() {
        Some((i, 'K' | 'k')) => (&text[..i], 1u64 << 10),
        Some((i, 'M' | 'm')) => (&text[..i], 1 << 20),
        Some((i, 'G' | 'g')) => (&text[..i], 1 << 30),
        Some((i, 'T' | 't')) => (&text[..i], 1 << 40),
        _ => (text, 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| {
            invalid(
                format!("invalid volume \"{text}\""),
                Some("write a whole number with an optional K, M, G or T suffix: 500M"),
            )
        })
}

pub fn address(text: &str) -> Result<IpAddr, Invalid> {
    if let Ok(addr) = text.parse::<IpAddr>() {
        return Ok(addr);
    }
    if text.parse::<IpNet>().is_ok() {
        return Err(invalid(
            format!("expected an address, found the prefix \"{text}\""),
            Some("drop the /length: this key takes a single address"),
        ));
    }
    if !text.is_empty()
        && text.contains('.')
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        && text.chars().any(|c| c.is_ascii_alphabetic())
    {
        return Err(invalid(
            format!("expected an IP address, found the host name \"{text}\""),
            Some("routevpn does not resolve names for tunnel endpoints: write the peer's address"),
        ));
    }
    Err(invalid(
        format!("invalid IP address \"{text}\""),
        Some("write an IPv4 address like 198.51.100.7 or an IPv6 address like 2001:db8::7"),
    ))
}

/// A network prefix; a bare address means a host route (/32 or /128).
/// Host bits must be zero, so that "10.1.2.3/24" is caught as the typo it usually is.
pub fn prefix(text: &str) -> Result<IpNet, Invalid> {
    if let Ok(addr) = text.parse::<IpAddr>() {
        return Ok(IpNet::from(addr));
    }
    let net: IpNet = text.parse().map_err(|_| {
        invalid(
            format!("invalid prefix \"{text}\""),
            Some("write an address with a prefix length: 192.168.10.0/24 or 2001:db8:10::/64"),
        )
    })?;
    if net.trunc() != net {
        return Err(invalid(
            format!("prefix \"{text}\" has host bits set"),
            Some(&format!("did you mean {}?", net.trunc())),
        ));
    }
    Ok(net)
}

/// `10.44.4.6/30` or `169.254.0.1/32 peer 169.254.0.2`: an interface address, host bits allowed.
pub fn interface_address(text: &str) -> Result<InterfaceAddress, Invalid> {
    let hint =
        "write ADDRESS/LENGTH, optionally followed by `peer ADDRESS` for a point-to-point link";
    let mut words = text.split_whitespace();
    let local = words.next().unwrap_or("");
    let address: IpNet = match local.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => match local.parse::<IpAddr>() {
            Ok(_) => {
                return Err(invalid(
                    format!("interface address \"{local}\" has no prefix length"),
                    Some(hint),
                ))
            }
            Err(_) => {
                return Err(invalid(
                    format!("invalid interface address \"{text}\""),
                    Some(hint),
                ))
            }
        },
    };
    let peer = match (words.next(), words.next(), words.next()) {
        (None, _, _) => None,
        (Some("peer"), Some(peer), None) => {
            let peer = address_of(peer)
                .map_err(|_| invalid(format!("invalid peer address \"{peer}\""), Some(hint)))?;
            if peer.is_ipv4() != address.addr().is_ipv4() {
                return Err(invalid(
                    format!("peer {peer} and address {address} are of different families"),
                    None,
                ));
            }
            Some(peer)
        }
        _ => {
            return Err(invalid(
                format!("invalid interface address \"{text}\""),
                Some(hint),
            ))
        }
    };
    Ok(InterfaceAddress { address, peer })
}

fn address_of(text: &str) -> Result<IpAddr, ()> {
    text.parse().map_err(|_| ())
}

/// strongSwan's traffic selector syntax: `10.0.0.0/24`, `dynamic`, `dynamic[gre]`,
/// `192.168.1.1/32[tcp/443]`, `0.0.0.0/0[udp/5000-5010]`.
pub fn traffic_selector(text: &str) -> Result<TrafficSelector, Invalid> {
    let hint = "write PREFIX or `dynamic`, optionally with [PROTOCOL] or [PROTOCOL/PORT[-PORT]]";
    let (net_text, filter) = match text.find('[') {
        Some(i) if text.ends_with(']') => (&text[..i], Some(&text[i + 1..text.len() - 1])),
        Some(_) => {
            return Err(invalid(
                format!("invalid traffic selector \"{text}\""),
                Some(hint),
            ))
        }
        None => (text, None),
    };
    let net = if net_text == "dynamic" {
        None
    } else {
        Some(prefix(net_text).map_err(|e| Invalid {
            message: format!("invalid traffic selector \"{text}\": {}", e.message),
            hint: e.hint.or_else(|| Some(hint.to_string())),
        })?)
    };
    let (protocol, ports) = match filter {
        None => (None, None),
        Some(filter) => {
            let (proto, ports) = match filter.split_once('/') {
                Some((p, ports)) => (p, Some(ports)),
                None => (filter, None),
            };
            let protocol = protocol_number(proto).ok_or_else(|| {
                invalid(
                    format!("unknown protocol \"{proto}\" in traffic selector \"{text}\""),
                    Some("use tcp, udp, icmp, ipv6-icmp, gre, sctp, any or a number 0-255"),
                )
            })?;
            let ports = match ports {
                None => None,
                Some(ports) => Some(port_range(ports).ok_or_else(|| {
                    invalid(
                        format!("invalid port range \"{ports}\" in traffic selector \"{text}\""),
                        Some("write a port (443) or a range (5000-5010)"),
                    )
                })?),
            };
            if ports.is_some() && !matches!(protocol, Some(6 | 17 | 132)) {
                return Err(invalid(
                    format!("ports in traffic selector \"{text}\" need tcp, udp or sctp"),
                    None,
                ));
            }
            (protocol, ports)
        }
    };
    Ok(TrafficSelector {
        net,
        protocol,
        ports,
    })
}

/// `None` inside `Some` means "any protocol".
fn protocol_number(name: &str) -> Option<Option<u8>> {
    Some(Some(match name {
        "any" | "%any" => return Some(None),
        "icmp" => 1,
        "tcp" => 6,
        "udp" => 17,
        "gre" => 47,
        "ipv6-icmp" | "icmp6" | "icmpv6" => 58,
        "sctp" => 132,
        other => other.parse().ok()?,
    }))
}

fn port_range(text: &str) -> Option<(u16, u16)> {
    let (lo, hi) = match text.split_once('-') {
        Some((lo, hi)) => (lo.parse().ok()?, hi.parse().ok()?),
        None => {
            let p = text.parse().ok()?;
            (p, p)
        }
    };
    (lo <= hi).then_some((lo, hi))
}

/// An IKE identity in swanctl.conf's syntax.
pub fn identity(text: &str) -> Result<Identity, Invalid> {
    if let Ok(addr) = text.parse::<IpAddr>() {
        return Ok(Identity::Address(addr));
    }
    if let Some(octets) = text.strip_prefix("keyid:") {
        return key_id(text, octets).map(|id| Identity::KeyId(KeyId(id)));
    }
    // Before the white-space test: DNs usually contain spaces ("C=CH, O=Example").
    if text.contains('=') {
        if text.chars().any(char::is_control) {
            return Err(invalid(
                format!("distinguished name \"{text}\" contains a control character"),
                None,
            ));
        }
        return Dn::parse(text).map(Identity::Dn).map_err(|e| {
            invalid(
                format!("invalid distinguished name \"{text}\": {e}"),
                Some("write TYPE=value pairs separated by commas: C=CH, O=Bank, CN=vpn.bank.ch"),
            )
        });
    }
    if text.is_empty() || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(
            format!("invalid identity \"{text}\""),
            Some("write an address, a host name (vpn.example.com) or user@example.com"),
        ));
    }
    if let Some(fqdn) = text.strip_prefix('@') {
        return Ok(Identity::Fqdn(fqdn.to_string()));
    }
    if text.contains('@') {
        return Ok(Identity::Email(text.to_string()));
    }
    Ok(Identity::Fqdn(text.to_string()))
}

/// The octets of `keyid:#<hex>` or `keyid:0x<hex>`, as strongSwan writes key IDs.
fn key_id(text: &str, octets: &str) -> Result<Vec<u8>, Invalid> {
    let digits = (octets.strip_prefix('#'))
        .or_else(|| octets.strip_prefix("0x"))
        .filter(|d| !d.is_empty() && d.len() % 2 == 0 && d.bytes().all(|b| b.is_ascii_hexdigit()));
    let hint = Some("write keyid:#<hex> or keyid:0x<hex>, an even number of hex digits");
    let Some(digits) = digits else {
        return Err(invalid(format!("invalid key ID identity \"{text}\""), hint));
    };
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16))
        .collect::<Result<_, _>>()
        .map_err(|_| invalid(format!("invalid key ID identity \"{text}\""), hint))
}

/// Linux interface names: 1 to 15 bytes, no slash, colon, white space or control character
/// (NUL would cut the name short in the kernel).
pub fn interface_name(text: &str) -> Result<(), Invalid> {
    if text.chars().any(char::is_control) {
        return Err(invalid(
            format!("interface name \"{text}\" contains a control character"),
            Some("use letters, digits, - and _"),
        ));
    }
    if text.is_empty() || text.len() > 15 {
        return Err(invalid(
            format!("interface name \"{text}\" must be 1 to 15 characters long"),
            None,
        ));
    }
    if text == "."
        || text == ".."
        || text
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || !c.is_ascii())
    {
        return Err(invalid(
            format!("invalid interface name \"{text}\""),
            Some("use letters, digits, - and _"),
        ));
    }
    Ok(())
}

/// Tunnel and child names: they appear in device names, logs and the CLI.
pub fn object_name(text: &str) -> Result<(), Invalid> {
    let ok = !text.is_empty()
        && text.len() <= 48
        && text.starts_with(|c: char| c.is_ascii_alphanumeric())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            format!("invalid name \"{text}\""),
            Some("use up to 48 letters, digits, '-', '_' or '.', starting with a letter or digit"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(duration("8h").unwrap(), Duration::from_secs(28_800));
        assert_eq!(duration("1d").unwrap(), Duration::from_secs(86_400));
        assert_eq!(
            duration("90").unwrap_err().message,
            "duration \"90\" has no unit"
        );
        assert!(duration("1.5h").is_err());
        assert!(duration("h").is_err());
        assert!(duration("99999999999999999999s").is_err());
        assert!(duration("4000d").is_err());
    }

    #[test]
    fn volumes() {
        assert_eq!(volume("500M").unwrap(), 500 << 20);
        assert_eq!(volume("1000").unwrap(), 1000);
        assert!(volume("5X").is_err());
        assert!(volume("99999999999T").is_err());
    }

    #[test]
    fn prefixes_and_addresses() {
        assert_eq!(prefix("192.168.1.1").unwrap().to_string(), "192.168.1.1/32");
        assert_eq!(
            prefix("2001:db8::/32").unwrap().to_string(),
            "2001:db8::/32"
        );
        assert_eq!(
            prefix("192.168.1.5/24").unwrap_err().hint.as_deref(),
            Some("did you mean 192.168.1.0/24?")
        );
        assert!(address("10.0.0.1/24")
            .unwrap_err()
            .message
            .contains("prefix"));
        assert!(address("vpn.example.com")
            .unwrap_err()
            .message
            .contains("host name"));
        assert!(address("300.1.1.1")
            .unwrap_err()
            .message
            .contains("invalid IP"));
    }

    #[test]
    fn interface_addresses() {
        let a = interface_address("169.254.0.1/32 peer 169.254.0.2").unwrap();
        assert_eq!(a.peer, Some("169.254.0.2".parse().unwrap()));
        assert_eq!(a.to_string(), "169.254.0.1/32 peer 169.254.0.2");
        assert!(interface_address("10.0.0.1").is_err());
        assert!(interface_address("10.0.0.1/30 peer fe80::1").is_err());
        assert!(interface_address("10.0.0.1/30 via 10.0.0.2").is_err());
        assert_eq!(
            interface_address("2001:db8::1/64")
                .unwrap()
                .address
                .to_string(),
            "2001:db8::1/64"
        );
    }

    #[test]
    fn traffic_selectors() {
        let ts = traffic_selector("dynamic[gre]").unwrap();
        assert_eq!((ts.net, ts.protocol, ts.ports), (None, Some(47), None));
        assert_eq!(ts.to_string(), "dynamic[gre]");
        let ts = traffic_selector("10.0.0.0/24[tcp/80-90]").unwrap();
        assert_eq!(ts.to_string(), "10.0.0.0/24[tcp/80-90]");
        assert!(traffic_selector("10.0.0.0/24[gre/80]").is_err());
        assert!(traffic_selector("10.0.0.0/24[tcp/90-80]").is_err());
        assert!(traffic_selector("10.0.0.0/24[foo]").is_err());
        assert!(traffic_selector("10.0.0.0/24[tcp").is_err());
    }

    #[test]
    fn identities() {
        assert_eq!(
            identity("@vpn.example.com").unwrap(),
            Identity::Fqdn("vpn.example.com".into())
        );
        assert_eq!(
            identity("noc@example.com").unwrap(),
            Identity::Email("noc@example.com".into())
        );
        assert!(matches!(
            identity("203.0.113.5").unwrap(),
            Identity::Address(_)
        ));
        let dn = identity("C=CH, O=Bank, CN=vpn.bank.ch").unwrap();
        assert_eq!(dn.to_string(), "C=CH, O=Bank, CN=vpn.bank.ch");
        assert!(matches!(dn, Identity::Dn(_)));
        assert_eq!(
            identity("C=Switzerland, O=x").unwrap_err().message,
            "invalid distinguished name \"C=Switzerland, O=x\": column 1: a value does not fit its attribute type (C= takes a 2-letter country code)"
        );
        assert_eq!(
            identity("C=CH, XX=1").unwrap_err().message,
            "invalid distinguished name \"C=CH, XX=1\": column 6: unknown attribute type \"XX\""
        );
        for text in ["keyid:#00ab", "keyid:0x00AB"] {
            assert_eq!(
                identity(text).unwrap(),
                Identity::KeyId(KeyId(vec![0, 0xab]))
            );
        }
        assert_eq!(identity("keyid:0x00ab").unwrap().to_string(), "keyid:#00ab");
        for text in ["keyid:#abc", "keyid:#", "keyid:0xzz", "keyid:ab"] {
            assert!(
                identity(text)
                    .unwrap_err()
                    .message
                    .starts_with("invalid key ID"),
                "{text}"
            );
        }
        assert!(identity("vpn example")
            .unwrap_err()
            .message
            .starts_with("invalid identity"));
    }

    #[test]
    fn names() {
        assert!(interface_name("vti-telecom").is_ok());
        assert!(interface_name("a-very-long-interface").is_err());
        assert!(interface_name("eth0:1").is_err());
        for name in ["vti\0x", "vti\u{1b}[2J", "a\u{7f}"] {
            assert!(
                interface_name(name)
                    .unwrap_err()
                    .message
                    .ends_with("contains a control character"),
                "{name:?}"
            );
        }
        assert!(identity("peer\u{1b}[2J").is_err());
        assert!(identity("peer\0").is_err());
        assert!(object_name("bank-01").is_ok());
        assert!(object_name("-x").is_err());
    }
}
