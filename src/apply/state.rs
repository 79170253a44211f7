//! What routevpn remembers between runs: which objects it created (so teardown removes
//! exactly those), sysctl values it overwrote, which tunnels are up, and the allocations.
//!
//! Files are replaced atomically and durably ([`durable`]); a file that cannot be parsed is
//! set aside and reported, never read as "nothing", so the caller can rebuild it.

pub mod durable;
pub mod lock;

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
    /// Tunnels the daemon last saw without a CHILD SA: an `apply` or `status` without the
    /// daemon's word plans them as it did (on_sa_loss = "withdraw" keeps them withdrawn).
    #[serde(default)]
    pub without_sas: BTreeSet<String>,
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

/// A state file that could not be parsed, already moved aside.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Corrupt {
    pub path: PathBuf,
    /// Where the bad file now is.
    pub kept: PathBuf,
    /// Located reason (`file:line:col: why`).
    pub why: String,
}

/// A file's content, or the fact that it was corrupt (and has been set aside).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Read<T> {
    Ok(T),
    Corrupt(Corrupt),
}

fn parse<T: for<'de> Deserialize<'de> + Default>(path: &Path) -> Result<Result<T, String>, String> {
    match durable::read(path)? {
        None => Ok(Ok(T::default())),
        Some(bytes) => Ok(serde_json::from_slice(&bytes)
            .map_err(|e| format!("{}:{}:{}: {e}", path.display(), e.line(), e.column()))),
    }
}

fn strictly<T>(parsed: Result<T, String>) -> Result<T, String> {
    parsed.map_err(|e| format!("{e} (`routevpn apply` sets it aside and rebuilds it)"))
}

/// Reads `path`; an unparsable file is renamed to `<name>.corrupt-<unix time>` and reported.
fn read_or_set_aside<T: for<'de> Deserialize<'de> + Default>(
    path: &Path,
) -> Result<Read<T>, String> {
    match parse(path)? {
        Ok(value) => Ok(Read::Ok(value)),
        Err(why) => {
            let kept = durable::set_aside(path)?;
            Ok(Read::Corrupt(Corrupt {
                path: path.to_path_buf(),
                kept,
                why,
            }))
        }
    }
}

impl Paths {
    /// Where the nftables backend remembers the table it last saw (a cache beside the state).
    pub fn nft_memo(&self) -> PathBuf {
        self.state.with_file_name("nftables.json")
    }

    /// Held around every load-plan-apply-save, by the CLI and the daemon alike.
    pub fn apply_lock(&self) -> PathBuf {
        self.state.with_file_name("apply.lock")
    }

    /// Held by a running daemon for its whole life.
    pub fn daemon_lock(&self) -> PathBuf {
        self.state.with_file_name("daemon.lock")
    }

    /// Both files, strictly: a corrupt one is an error (for `plan` and `status`, which
    /// only look; `apply` uses [`load_for_apply`](Self::load_for_apply)).
    pub fn load(&self) -> Result<(State, Allocations), String> {
        Ok((
            strictly(parse(&self.state)?)?,
            strictly(parse(&self.allocations)?)?,
        ))
    }

    /// Both files; one that cannot be parsed is set aside for the caller to rebuild.
    pub fn load_for_apply(&self) -> Result<(Read<State>, Read<Allocations>), String> {
        Ok((
            read_or_set_aside(&self.state)?,
            read_or_set_aside(&self.allocations)?,
        ))
    }

    pub fn save_state(&self, state: &State) -> Result<(), String> {
        durable::write_json(&self.state, state)
    }

    pub fn save_allocations(&self, allocations: &Allocations) -> Result<(), String> {
        durable::write_json(&self.allocations, allocations)
    }

    pub fn save(&self, state: &State, allocations: &Allocations) -> Result<(), String> {
        self.save_allocations(allocations)?;
        self.save_state(state)
    }
}
