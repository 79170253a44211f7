//! What routevpn's table held at a given nf_tables generation, so an unchanged re-apply
//! need not dump and re-verify thousands of rules.
//!
//! nf_tables counts commits: the generation id (NFT_MSG_GETGEN) goes up by one with every
//! transaction in the namespace, whoever makes it, and `nft` keeps its own cache on the same
//! rule. So a table seen (or written) at generation G is still exactly that table while the
//! namespace is at G. The memo is trusted only for the same boot and the same network
//! namespace, since a new namespace starts counting again; anything else, or any doubt, means
//! a full read.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::plan::NftTable;

#[derive(Serialize, Deserialize, PartialEq, Eq)]
struct Identity {
    boot_id: String,
    /// Inode of the network namespace the socket was opened in.
    netns: u64,
}

#[derive(Serialize, Deserialize)]
struct Record {
    identity: Identity,
    generation: u32,
    /// `None`: the table did not exist.
    table: Option<NftTable>,
}

pub struct Memo {
    path: PathBuf,
    identity: Option<Identity>,
}

fn identity() -> Option<Identity> {
    use std::os::unix::fs::MetadataExt;
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let netns = std::fs::metadata("/proc/thread-self/ns/net").ok()?.ino();
    Some(Identity {
        boot_id: boot_id.trim().to_string(),
        netns,
    })
}

impl Memo {
    /// A memo kept in `path`, for the calling thread's network namespace.
    pub fn new(path: &Path) -> Memo {
        Memo {
            path: path.to_path_buf(),
            identity: identity(),
        }
    }

    /// The table recorded for `generation`, if the record is for this namespace and boot.
    pub fn recall(&self, generation: u32) -> Option<Option<NftTable>> {
        let identity = self.identity.as_ref()?;
        let bytes = std::fs::read(&self.path).ok()?;
        let record: Record = serde_json::from_slice(&bytes).ok()?;
        (record.identity == *identity && record.generation == generation).then_some(record.table)
    }

    /// Records what the table is at `generation`. A memo that cannot be written is only a
    /// lost shortcut, but a stale one must not stay: it is removed first.
    pub fn record(&self, generation: u32, table: Option<&NftTable>) {
        self.forget();
        let Some(identity) = &self.identity else {
            return;
        };
        let record = Record {
            identity: Identity {
                boot_id: identity.boot_id.clone(),
                netns: identity.netns,
            },
            generation,
            table: table.cloned(),
        };
        let Ok(bytes) = serde_json::to_vec(&record) else {
            return;
        };
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let tmp = self.path.with_extension("json.tmp");
        if std::fs::write(&tmp, bytes).is_ok() && std::fs::rename(&tmp, &self.path).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }

    pub fn forget(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
