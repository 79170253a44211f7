//! Reading routevpn's table back as the plan's [`NftTable`].
//!
//! Each rule carries a record of the plan rule it was made from (see [`super::record`]),
//! since the tunnel a rule serves is in no expression. Records sit on rules rather than
//! one fingerprint of the plan on the table: the kernel caps userdata at 256 bytes per
//! object, far less than a table of a few tunnels takes.
//!
//! A record alone could be stale: a rule deleted, replaced or added by hand, a chain
//! removed or its policy changed. So a record counts only if rebuilding its rule yields
//! exactly the expressions the kernel reports, and chains are taken from the kernel. If
//! anything in the table is not what routevpn writes, the table is reported with no
//! chains: the plan always has its chains, so the comparison fails and apply rewrites the
//! table, and nothing unrecognised is passed off as routevpn's.

use std::io;

use super::batch::Encoder;
use super::memo::Memo;
use super::parse::{self, ChainInfo};
use super::record;
use super::wire::Wire;
use super::write;
use crate::plan::{NftChain, NftTable};

const NFTA_RULE_TABLE: u16 = 1;
const ATTEMPTS: usize = 5;

/// What the kernel holds under table `name` in the inet family.
struct Snapshot {
    flags: u32,
    chains: Vec<ChainInfo>,
    rules: Vec<LiveRule>,
}

/// A rule as dumped, in chain order.
struct LiveRule {
    chain: Option<String>,
    userdata: Option<Vec<u8>>,
    expressions: Vec<String>,
}

/// Table `name` of the inet family as routevpn describes it, or `None` if absent. With a
/// memo, a table already seen at the current generation is taken from it.
pub fn read(wire: &mut Wire, name: &str, memo: Option<&Memo>) -> io::Result<Option<NftTable>> {
    for _ in 0..ATTEMPTS {
        // Chains and rules come from separate dumps: retry if a commit fell between them.
        let before = wire.generation()?;
        if let Some(table) = memo.and_then(|m| m.recall(before)) {
            return Ok(table);
        }
        let snapshot = match snapshot(wire, name) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => other?,
        };
        if wire.generation()? == before {
            let table = snapshot.map(|s| NftTable {
                name: name.to_string(),
                chains: recognise(name, &s).unwrap_or_default(),
            });
            if let Some(memo) = memo {
                memo.record(before, table.as_ref());
            }
            return Ok(table);
        }
    }
    Err(io::Error::other(
        "the nftables ruleset kept changing while being read",
    ))
}

fn snapshot(wire: &mut Wire, name: &str) -> io::Result<Option<Snapshot>> {
    let inet = libc::NFPROTO_INET as u8;
    let tables = wire.dump(libc::NFT_MSG_GETTABLE, inet, &[])?;
    let Some(flags) = tables
        .iter()
        .filter_map(parse::Table::parse)
        .find(|t| t.name().as_deref() == Some(name))
        .map(|t| t.flags())
    else {
        return Ok(None);
    };
    let chains = wire
        .dump(libc::NFT_MSG_GETCHAIN, inet, &[])?
        .iter()
        .filter_map(parse::Chain::parse)
        .map(|c| c.info())
        .filter(|c| c.table.as_deref() == Some(name))
        .collect();
    let mut filter = name.as_bytes().to_vec();
    filter.push(0);
    let rules = wire
        .dump(libc::NFT_MSG_GETRULE, inet, &[(NFTA_RULE_TABLE, &filter)])?
        .iter()
        .filter_map(parse::Rule::parse)
        .filter(|r| r.table().as_deref() == Some(name))
        .map(|r| LiveRule {
            chain: r.chain(),
            userdata: r.userdata(),
            expressions: r.expressions(),
        })
        .collect();
    Ok(Some(Snapshot {
        flags,
        chains,
        rules,
    }))
}

/// The chains, if every chain and rule is one routevpn wrote.
fn recognise(table: &str, snapshot: &Snapshot) -> Option<Vec<NftChain>> {
    if snapshot.flags != 0 {
        return None;
    }
    let mut encoder = Encoder::default();
    let mut chains = Vec::with_capacity(snapshot.chains.len());
    let mut seen = 0;
    for info in &snapshot.chains {
        if info.policy != Some(libc::NF_ACCEPT as u32) {
            return None;
        }
        let name = info.name.clone()?;
        let mut rules = Vec::new();
        let live = snapshot
            .rules
            .iter()
            .filter(|r| r.chain.as_ref() == Some(&name));
        for live in live {
            let rule = record::decode(live.userdata.as_deref()?)?;
            if write::expected(&mut encoder, table, &name, &rule).ok()? != live.expressions {
                return None;
            }
            rules.push(rule);
            seen += 1;
        }
        chains.push(NftChain {
            name,
            chain_type: info.chain_type.clone()?,
            hook: write::hook_name(info.hook?)?.to_string(),
            priority: info.priority,
            rules,
        });
    }
    // Every rule belongs to a chain that was listed.
    (seen == snapshot.rules.len()).then_some(chains)
}
