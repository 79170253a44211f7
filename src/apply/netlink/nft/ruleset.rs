//! The whole nftables ruleset, every table of every family, read for `routevpn doctor`:
//! base chains with their hook and policy, and each rule's expressions as libnftnl prints
//! them. Only read; nothing outside routevpn's own table is ever written.

use std::io;

use super::parse;
use super::wire::Wire;

/// Families whose base chains IKE, ESP or forwarded inner packets traverse.
const FAMILIES: [(u8, &str); 4] = [
    (libc::NFPROTO_INET as u8, "inet"),
    (libc::NFPROTO_IPV4 as u8, "ip"),
    (libc::NFPROTO_IPV6 as u8, "ip6"),
    (libc::NFPROTO_NETDEV as u8, "netdev"),
];
const ATTEMPTS: usize = 5;

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LiveChain {
    pub family: String,
    pub table: String,
    pub name: String,
    /// `None` for a regular (jump target) chain.
    pub hook: Option<String>,
    pub priority: i32,
    /// `accept` or `drop` for a base chain.
    pub policy: Option<String>,
    /// Each rule's expressions in order, e.g. `cmp eq reg 1 0x00000011`.
    pub rules: Vec<Vec<String>>,
}

fn hook_name(family: &str, number: u32) -> Option<&'static str> {
    if family == "netdev" {
        return (number == 0).then_some("ingress");
    }
    ["prerouting", "input", "forward", "output", "postrouting"]
        .get(number as usize)
        .copied()
}

fn verdict_name(code: u32) -> String {
    match code as i32 {
        libc::NF_ACCEPT => "accept".into(),
        libc::NF_DROP => "drop".into(),
        other => other.to_string(),
    }
}

/// Every chain of every table, retried while the ruleset changes under the dump.
pub fn ruleset() -> io::Result<Vec<LiveChain>> {
    let mut wire = Wire::open()?;
    for _ in 0..ATTEMPTS {
        let before = wire.generation()?;
        let chains = match dump(&mut wire) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => other?,
        };
        if wire.generation()? == before {
            return Ok(chains);
        }
    }
    Err(io::Error::other(
        "the nftables ruleset kept changing while being read",
    ))
}

fn dump(wire: &mut Wire) -> io::Result<Vec<LiveChain>> {
    let mut out = Vec::new();
    for (code, family) in FAMILIES {
        let mut chains: Vec<LiveChain> = wire
            .dump(libc::NFT_MSG_GETCHAIN, code, &[])?
            .iter()
            .filter_map(parse::Chain::parse)
            .map(|c| c.info())
            .map(|info| LiveChain {
                family: family.to_string(),
                table: info.table.unwrap_or_default(),
                name: info.name.unwrap_or_default(),
                hook: info
                    .hook
                    .and_then(|h| hook_name(family, h))
                    .map(str::to_string),
                priority: info.priority,
                policy: info.policy.map(verdict_name),
                rules: Vec::new(),
            })
            .collect();
        for rule in wire
            .dump(libc::NFT_MSG_GETRULE, code, &[])?
            .iter()
            .filter_map(parse::Rule::parse)
        {
            let (table, chain) = (rule.table(), rule.chain());
            if let Some(c) = chains
                .iter_mut()
                .find(|c| Some(&c.table) == table.as_ref() && Some(&c.name) == chain.as_ref())
            {
                c.rules.push(rule.expressions());
            }
        }
        out.append(&mut chains);
    }
    Ok(out)
}
