//! routevpn's nftables table (`inet routevpn`) through nf_tables netlink, built with
//! libnftnl. Writes replace the whole table in one transaction; no other table is written
//! ([`ruleset`] reads them all for `routevpn doctor`).

mod batch;
mod expr;
mod memo;
mod message;
mod parse;
mod read;
mod record;
mod rules;
pub mod ruleset;
#[cfg(test)]
mod tests;
mod wire;
mod write;

use std::io;

use super::Backend;
use crate::apply::diff::Change;
use crate::apply::kernel::{KernelError, Scope};
use crate::apply::objects::{NftTable, Object};
use crate::plan::NFT_TABLE;

pub struct Nft {
    wire: wire::Wire,
    memo: Option<memo::Memo>,
}

impl Nft {
    /// Opens a netfilter netlink socket in the calling thread's network namespace.
    pub fn open() -> io::Result<Self> {
        Ok(Nft {
            wire: wire::Wire::open()?,
            memo: None,
        })
    }

    /// Remembers in `path` what the table held at which generation (see [`memo`]).
    pub fn with_memo(mut self, path: &std::path::Path) -> Self {
        self.memo = Some(memo::Memo::new(path));
        self
    }

    fn carry_out(&mut self, change: &Change) -> Result<(), String> {
        let mut batch = self.wire.batch();
        let after = match change {
            Change::Create(o) | Change::Update { to: o, .. } => {
                let Object::Nft(t) = &o.object else {
                    return Err("not an nftables table".into());
                };
                if t.table.name != t.name {
                    return Err(format!("table {} is named {}", t.name, t.table.name));
                }
                write::replace(&mut batch, &t.name, &t.table)?;
                Some(&t.table)
            }
            Change::Delete { object, .. } => {
                let Object::Nft(t) = object else {
                    return Err("not an nftables table".into());
                };
                write::delete(&mut batch, &t.name)?;
                None
            }
        };
        let Some(memo) = &self.memo else {
            return self.wire.commit(batch).map_err(|e| e.to_string());
        };
        memo.forget();
        let before = self.wire.generation().map_err(|e| e.to_string())?;
        self.wire.commit(batch).map_err(|e| e.to_string())?;
        // One step means no other transaction came between: the table is what was sent.
        if self.wire.generation().ok() == Some(next_generation(before)) {
            memo.record(next_generation(before), after);
        }
        Ok(())
    }
}

impl Backend for Nft {
    fn read(&mut self, _scope: &Scope, out: &mut Vec<Object>) -> Result<(), KernelError> {
        let table = read::read(&mut self.wire, NFT_TABLE, self.memo.as_ref()).map_err(|e| {
            KernelError::io(
                None,
                &format!("reading nftables table inet {NFT_TABLE}"),
                &e,
            )
        })?;
        if let Some(table) = table {
            out.push(Object::Nft(NftTable {
                name: table.name.clone(),
                table,
            }));
        }
        Ok(())
    }

    /// Each change is its own transaction: one table, replaced or deleted as a whole.
    fn execute(&mut self, changes: &[&Change]) -> Vec<Result<(), KernelError>> {
        changes
            .iter()
            .map(|change| {
                self.carry_out(change)
                    .map_err(|message| KernelError::other(Some(change.key()), message))
            })
            .collect()
    }
}

/// The generation after one commit: the kernel skips 0 when the counter wraps.
fn next_generation(generation: u32) -> u32 {
    match generation.wrapping_add(1) {
        0 => 1,
        next => next,
    }
}
