//! routevpn's nftables table (`inet routevpn`) through nf_tables netlink, built with
//! libnftnl. Writes replace the whole table in one transaction; no other table is read or
//! written.

mod batch;
mod expr;
mod message;
mod parse;
mod read;
mod record;
mod rules;
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
}

impl Nft {
    /// Opens a netfilter netlink socket in the calling thread's network namespace.
    pub fn open() -> io::Result<Self> {
        Ok(Nft {
            wire: wire::Wire::open()?,
        })
    }

    fn carry_out(&mut self, change: &Change) -> Result<(), String> {
        let mut batch = self.wire.batch();
        match change {
            Change::Create(o) | Change::Update { to: o, .. } => {
                let Object::Nft(t) = &o.object else {
                    return Err("not an nftables table".into());
                };
                if t.table.name != t.name {
                    return Err(format!("table {} is named {}", t.name, t.table.name));
                }
                write::replace(&mut batch, &t.name, &t.table)?;
            }
            Change::Delete { object, .. } => {
                let Object::Nft(t) = object else {
                    return Err("not an nftables table".into());
                };
                write::delete(&mut batch, &t.name)?;
            }
        }
        self.wire.commit(batch).map_err(|e| e.to_string())
    }
}

impl Backend for Nft {
    fn read(&mut self, _scope: &Scope, out: &mut Vec<Object>) -> Result<(), KernelError> {
        let table = read::read(&mut self.wire, NFT_TABLE).map_err(|e| KernelError {
            object: None,
            message: format!("reading nftables table inet {NFT_TABLE}: {e}"),
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
                self.carry_out(change).map_err(|message| KernelError {
                    object: Some(change.key()),
                    message,
                })
            })
            .collect()
    }
}
