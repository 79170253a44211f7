//! The messages that replace or delete routevpn's table.

use std::ffi::CString;

use nftnl::{Chain, ChainType, Hook, MsgType, Policy, ProtoFamily, Rule, Table};

use super::batch::{Batch, Encoder};
use super::message::Message;
use super::parse;
use super::record;
use super::rules;
use crate::plan::{NftChain, NftRule, NftTable};

/// Hook names as `nft` writes them, with the numbers the kernel reports.
const HOOKS: [(&str, Hook); 5] = [
    ("prerouting", Hook::PreRouting),
    ("input", Hook::In),
    ("forward", Hook::Forward),
    ("output", Hook::Out),
    ("postrouting", Hook::PostRouting),
];

pub fn hook_name(number: u32) -> Option<&'static str> {
    HOOKS
        .iter()
        .find(|(_, hook)| *hook as u32 == number)
        .map(|(name, _)| *name)
}

fn c_string(text: &str) -> Result<CString, String> {
    CString::new(text).map_err(|_| format!("{text:?} contains a NUL byte"))
}

fn table(name: &str) -> Result<Table, String> {
    Ok(Table::new(c_string(name)?, ProtoFamily::Inet))
}

fn base_chain<'a>(table: &'a Table, chain: &NftChain) -> Result<Chain<'a>, String> {
    let hook = HOOKS
        .iter()
        .find(|(name, _)| *name == chain.hook)
        .map(|(_, hook)| *hook)
        .ok_or_else(|| format!("unknown hook {:?}", chain.hook))?;
    let chain_type = match chain.chain_type.as_str() {
        "filter" => ChainType::Filter,
        "nat" => ChainType::Nat,
        "route" => ChainType::Route,
        other => return Err(format!("unknown chain type {other:?}")),
    };
    let mut out = Chain::new(c_string(&chain.name)?, table);
    out.set_hook(hook, chain.priority);
    out.set_type(chain_type);
    out.set_policy(Policy::Accept);
    Ok(out)
}

/// Adds to `batch` what makes the kernel hold exactly `desired` under `name`: creating the
/// table (a no-op if it exists) makes the delete that follows valid either way, and the
/// kernel applies the whole batch or none of it.
pub fn replace(batch: &mut Batch, name: &str, desired: &NftTable) -> Result<(), String> {
    let table = table(name)?;
    batch.add(&table, MsgType::Add, None);
    batch.add(&table, MsgType::Del, None);
    batch.add(&table, MsgType::Add, None);
    for chain in &desired.chains {
        let base = base_chain(&table, chain)?;
        batch.add(&base, MsgType::Add, None);
        for rule in &chain.rules {
            let mut out = Rule::new(&base);
            rules::build(rule, &mut out, false)?;
            batch.add(&out, MsgType::Add, Some(&record::encode(rule)?));
        }
    }
    Ok(())
}

/// Adds to `batch` the removal of table `name`, whether or not it exists.
pub fn delete(batch: &mut Batch, name: &str) -> Result<(), String> {
    let table = table(name)?;
    batch.add(&table, MsgType::Add, None);
    batch.add(&table, MsgType::Del, None);
    Ok(())
}

/// The expressions the kernel reports for `rule` once written to `chain` of `table`.
pub fn expected(
    encoder: &mut Encoder,
    table: &str,
    chain: &str,
    rule: &NftRule,
) -> Result<Vec<String>, String> {
    let table = self::table(table)?;
    let chain = Chain::new(c_string(chain)?, &table);
    let mut out = Rule::new(&chain);
    rules::build(rule, &mut out, true)?;
    let message = Message::new(&encoder.encode(&out, 0, MsgType::Add));
    let parsed = parse::Rule::parse(&message).ok_or("libnftnl cannot parse its own rule")?;
    Ok(parsed.expressions())
}
