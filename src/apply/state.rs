//! What routevpn remembers between runs: which objects it created (so teardown removes
//! exactly those), sysctl values it overwrote, which tunnels are up, and the allocations.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::objects::ObjectKey;
use crate::plan::Allocations;

/// Kernel state vanishes at reboot, so does this record of it.
pub const RUNTIME_STATE: &str = "/run/routevpn/state.json";
/// Allocations outlive reboots so marks and if_ids never change under a tunnel.
pub const ALLOCATIONS: &str = "/var/lib/routevpn/allocations.json";

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    #[serde(default)]
    pub owned: BTreeSet<ObjectKey>,
    #[serde(default)]
    pub sysctl_originals: BTreeMap<String, String>,
    /// Tunnels brought up by `up` or `apply` and not taken down since.
    #[serde(default)]
    pub enabled: BTreeSet<String>,
}

#[derive(Clone, Debug)]
pub struct Paths {
    pub state: PathBuf,
    pub allocations: PathBuf,
}

impl Default for Paths {
    fn default() -> Self {
        Paths {
            state: RUNTIME_STATE.into(),
            allocations: ALLOCATIONS.into(),
        }
    }
}

fn read_json<T: for<'de> Deserialize<'de> + Default>(path: &Path) -> Result<T, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Writes through a temporary file and a rename, so a crash never leaves half a file.
fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("{}: {e}", path.display());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::write(&tmp, bytes).map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}

impl Paths {
    /// Where the nftables backend remembers the table it last saw (a cache beside the state).
    pub fn nft_memo(&self) -> PathBuf {
        self.state.with_file_name("nftables.json")
    }

    pub fn load(&self) -> Result<(State, Allocations), String> {
        Ok((read_json(&self.state)?, read_json(&self.allocations)?))
    }

    pub fn save(&self, state: &State, allocations: &Allocations) -> Result<(), String> {
        write_json(&self.allocations, allocations)?;
        write_json(&self.state, state)
    }
}
