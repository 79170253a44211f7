//! The record each rule carries in its userdata: the [`NftRule`] it was made from, so
//! reading the table back yields the plan's rules (tunnel names included), which no
//! expression holds.
//!
//! Userdata is capped at 256 bytes (NFT_USERDATA_MAXLEN) and laid out as libnftnl TLVs
//! (type, length, value), which `nft list` parses: JSON of a rule with a 48-character
//! tunnel name and long IPv6 prefixes would not fit, so the record is space-separated words.
//! Its TLV type is one `nft` does not know and therefore skips, so listings stay unchanged.

use crate::plan::{NftFamily as Family, NftRule};

/// Outside libnftnl's rule userdata types (comment 0, ebtables policy 1).
const RECORD_TYPE: u8 = 0xb7;
const MAX_USERDATA: usize = 256;

fn dir(inbound: bool) -> &'static str {
    if inbound {
        "in"
    } else {
        "out"
    }
}

/// The userdata for `rule`.
pub fn encode(rule: &NftRule) -> Result<Vec<u8>, String> {
    let words: Vec<String> = match rule {
        NftRule::Snat {
            tunnel,
            device,
            daddr,
            saddr,
            source,
        } => vec![
            "snat".into(),
            tunnel.clone(),
            device.clone().unwrap_or_default(),
            daddr.to_string(),
            saddr.map(|s| s.to_string()).unwrap_or_default(),
            source.to_string(),
        ],
        NftRule::MssToRouteMtu { tunnel, device } => {
            vec!["mss-rt".into(), tunnel.clone(), device.clone()]
        }
        NftRule::MssCap {
            tunnel,
            device,
            inbound,
            family,
            mss,
        } => vec![
            "mss-cap".into(),
            tunnel.clone(),
            device.clone(),
            dir(*inbound).into(),
            match family {
                Family::Ipv4 => "ipv4".into(),
                Family::Ipv6 => "ipv6".into(),
            },
            mss.to_string(),
        ],
        NftRule::Accept {
            tunnel,
            device,
            inbound,
        } => vec![
            "accept".into(),
            tunnel.clone(),
            device.clone(),
            dir(*inbound).into(),
        ],
    };
    if words.iter().any(|w| w.contains(char::is_whitespace)) {
        return Err("names in nftables rules cannot contain white space".into());
    }
    let value = words.join(" ");
    if value.len() + 2 > MAX_USERDATA {
        return Err(format!("rule record too long for userdata: {value}"));
    }
    let mut out = vec![RECORD_TYPE, value.len() as u8];
    out.extend_from_slice(value.as_bytes());
    Ok(out)
}

/// The rule recorded in `userdata`, if it holds a record routevpn wrote.
pub fn decode(userdata: &[u8]) -> Option<NftRule> {
    let mut rest = userdata;
    while let [kind, len, tail @ ..] = rest {
        let (value, next) = tail.split_at_checked(usize::from(*len))?;
        if *kind == RECORD_TYPE {
            return parse(std::str::from_utf8(value).ok()?);
        }
        rest = next;
    }
    None
}

fn parse(text: &str) -> Option<NftRule> {
    let words: Vec<&str> = text.split(' ').collect();
    let inbound = |w: &str| match w {
        "in" => Some(true),
        "out" => Some(false),
        _ => None,
    };
    let rule = match words.as_slice() {
        ["snat", tunnel, device, daddr, saddr, source] => NftRule::Snat {
            tunnel: tunnel.to_string(),
            device: (!device.is_empty()).then(|| device.to_string()),
            daddr: daddr.parse().ok()?,
            saddr: match *saddr {
                "" => None,
                s => Some(s.parse().ok()?),
            },
            source: source.parse().ok()?,
        },
        ["mss-rt", tunnel, device] => NftRule::MssToRouteMtu {
            tunnel: tunnel.to_string(),
            device: device.to_string(),
        },
        ["mss-cap", tunnel, device, dir, family, mss] => NftRule::MssCap {
            tunnel: tunnel.to_string(),
            device: device.to_string(),
            inbound: inbound(dir)?,
            family: match *family {
                "ipv4" => Family::Ipv4,
                "ipv6" => Family::Ipv6,
                _ => return None,
            },
            mss: mss.parse().ok()?,
        },
        ["accept", tunnel, device, dir] => NftRule::Accept {
            tunnel: tunnel.to_string(),
            device: device.to_string(),
            inbound: inbound(dir)?,
        },
        _ => return None,
    };
    Some(rule)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let rules = [
            NftRule::Snat {
                tunnel: "t".repeat(48),
                device: None,
                daddr: "2001:db8:1234:5678:9abc:def0:1234:0/112".parse().unwrap(),
                saddr: Some("2001:db8:1234:5678:9abc:def0:1234:0/112".parse().unwrap()),
                source: "2001:db8:1234:5678:9abc:def0:1234:5678".parse().unwrap(),
            },
            NftRule::MssToRouteMtu {
                tunnel: "a".into(),
                device: "gre1".into(),
            },
            NftRule::MssCap {
                tunnel: "a".into(),
                device: "gre1".into(),
                inbound: true,
                family: Family::Ipv6,
                mss: 1362,
            },
            NftRule::Accept {
                tunnel: "a".into(),
                device: "gre1".into(),
                inbound: false,
            },
        ];
        for rule in rules {
            let data = encode(&rule).unwrap();
            assert!(data.len() <= MAX_USERDATA);
            // Skips TLVs of other types, such as a comment before it.
            let mut with_comment = vec![0, 2, b'x', 0];
            with_comment.extend_from_slice(&data);
            assert_eq!(decode(&with_comment), Some(rule));
        }
    }

    #[test]
    fn foreign_or_broken_userdata_is_no_record() {
        assert_eq!(decode(&[0, 3, b'h', b'i', 0]), None);
        assert_eq!(decode(&[RECORD_TYPE, 40, b's']), None);
        assert_eq!(
            decode(&[RECORD_TYPE, 6, b'a', b'c', b'c', b'e', b'p', b't']),
            None
        );
    }
}
