//! The dataplane: make the kernel hold what the plan asks for, changing only what differs,
//! and undo everything this run changed if the kernel refuses any step.

pub mod diff;
pub mod kernel;
pub mod netlink;
pub mod objects;
mod recover;
pub mod resolve;
pub mod state;
pub mod status;

use std::collections::{BTreeMap, BTreeSet};

use diff::{Change, Conflict};
use kernel::{Egress, Kernel, KernelError, Scope};
use objects::{Object, Owned};
use resolve::Unresolved;
use state::{Paths, State};

use crate::model::Tunnel;
use crate::plan::{self, Allocations};

#[derive(Debug)]
pub enum ApplyError {
    Conflict(Conflict),
    Unresolved(Unresolved),
    /// The kernel refused a change; everything this run had changed was undone, except
    /// what `rollback` lists.
    Kernel {
        error: Box<KernelError>,
        rollback: Vec<KernelError>,
    },
    State(String),
    /// A manual keys file is unreadable or invalid (its diagnostics never quote keys).
    Keys(String),
    /// The command cannot say which tunnels to enable (e.g. `down` of an unknown tunnel).
    Selection(String),
}

impl std::fmt::Display for ApplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApplyError::Conflict(c) => write!(f, "{c}"),
            ApplyError::Unresolved(u) => write!(f, "{u}"),
            ApplyError::Kernel { error, rollback } if rollback.is_empty() => {
                write!(
                    f,
                    "the kernel refused {error}; every change of this run was undone"
                )
            }
            ApplyError::Kernel { error, rollback } => {
                write!(f, "the kernel refused {error}; undoing failed too:")?;
                for e in rollback {
                    write!(f, "\n  {e}")?;
                }
                Ok(())
            }
            ApplyError::State(e) => write!(f, "state file: {e}"),
            ApplyError::Keys(e) => write!(f, "manual keys: {e}"),
            ApplyError::Selection(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for ApplyError {}

/// What one reconciliation did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Kernel write requests sent: zero when nothing differed.
    pub writes: usize,
    pub created: usize,
    pub updated: usize,
    pub deleted: usize,
    /// One line per change, for the operator.
    pub log: Vec<String>,
    /// Time spent per phase, for `ROUTEVPN_TIMINGS=1`.
    pub timings: Vec<(&'static str, std::time::Duration)>,
    /// What the operator must hear about, e.g. a corrupt state file rebuilt from the kernel.
    pub warnings: Vec<String>,
}

fn describe(change: &Change) -> String {
    match change {
        Change::Create(_) => format!("create {}", change.key()),
        Change::Delete { .. } => format!("delete {}", change.key()),
        Change::Update { .. } => format!("update {}", change.key()),
    }
}

/// Changes the kernel so that routevpn's objects are exactly `desired`, updating `state`.
pub fn reconcile(
    kernel: &mut dyn Kernel,
    desired: &[Owned],
    state: &mut State,
) -> Result<Outcome, ApplyError> {
    reconcile_recording(kernel, desired, state, &mut |_| Ok(()))
}

/// The state to record before the kernel writes: everything about to be created is owned
/// already, and every sysctl about to be overwritten has its original, so that a crash
/// at any point leaves nothing untracked.
fn intent(state: &State, desired: &[Owned], changes: &[Change]) -> State {
    let mut intent = state.clone();
    for change in changes {
        match change {
            Change::Create(o) | Change::Update { to: o, .. } => {
                intent.owned.insert(o.object.key());
            }
            Change::Delete { .. } => {}
        }
        if let Change::Update {
            from: Object::Sysctl(before),
            to,
        } = change
        {
            // Remember what the host had before routevpn's first write.
            if matches!(&to.object, Object::Sysctl(_))
                && desired.iter().any(|d| d.object.key() == change.key())
            {
                intent
                    .sysctl_originals
                    .entry(before.key.clone())
                    .or_insert_with(|| before.value.clone());
            }
        }
    }
    intent
}

/// As [`reconcile`], calling `record` to store the state durably before the first kernel
/// write (the intent) and after a rollback; the caller records the final state.
pub fn reconcile_recording(
    kernel: &mut dyn Kernel,
    desired: &[Owned],
    state: &mut State,
    record: &mut dyn FnMut(&State) -> Result<(), String>,
) -> Result<Outcome, ApplyError> {
    reconcile_reporting(kernel, desired, state, record, &mut |_, _| {})
}

/// Changes handed to the kernel at once between two progress reports: large enough to
/// keep its batches efficient, small enough for a steady progress display.
const WRITE_CHUNK: usize = 512;

/// Executes `changes` a chunk at a time, telling `progress` (done, total) after each;
/// after a failed chunk the rest are not attempted.
fn execute_reporting(
    kernel: &mut dyn Kernel,
    changes: &[Change],
    progress: &mut dyn FnMut(usize, usize),
) -> Vec<Result<(), KernelError>> {
    let mut results = Vec::with_capacity(changes.len());
    for chunk in changes.chunks(WRITE_CHUNK) {
        if results.iter().any(Result::is_err) {
            results.extend(chunk.iter().map(|c| Err(KernelError::not_attempted(c))));
            continue;
        }
        results.extend(kernel.execute(chunk));
        progress(results.len(), changes.len());
    }
    results
}

/// As [`reconcile_recording`], telling `progress` how many of the changes are written.
fn reconcile_reporting(
    kernel: &mut dyn Kernel,
    desired: &[Owned],
    state: &mut State,
    record: &mut dyn FnMut(&State) -> Result<(), String>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Outcome, ApplyError> {
    let scope = Scope::of(
        desired
            .iter()
            .map(|o| o.object.key())
            .chain(state.owned.iter().cloned()),
    );
    let started = std::time::Instant::now();
    let live = kernel.read(&scope).map_err(|error| ApplyError::Kernel {
        error: Box::new(error),
        rollback: vec![],
    })?;
    let read = started.elapsed();
    let changes = diff::diff(desired, &live, &state.owned, &state.sysctl_originals)
        .map_err(ApplyError::Conflict)?;
    let intent = intent(state, desired, &changes);
    if intent != *state {
        record(&intent).map_err(ApplyError::State)?;
    }
    let compared = started.elapsed();
    let results = execute_reporting(kernel, &changes, progress);
    let written = started.elapsed();
    if let Some(failed) = results.iter().position(Result::is_err) {
        let error = results[failed].clone().unwrap_err();
        let undo: Vec<Change> = changes
            .iter()
            .zip(&results)
            .filter(|(_, r)| r.is_ok())
            .rev()
            .flat_map(|(c, _)| c.inverse())
            .collect();
        let rollback: Vec<KernelError> = kernel
            .execute(&undo)
            .into_iter()
            .filter_map(Result::err)
            .collect();
        // What could not be undone stays owned, so a later run still removes it.
        let mut after = state.clone();
        let stuck = rollback.iter().filter_map(|e| e.object.clone());
        after
            .owned
            .extend(stuck.filter(|k| intent.owned.contains(k)));
        after.sysctl_originals = intent.sysctl_originals.clone();
        if after != intent {
            record(&after).map_err(ApplyError::State)?;
        }
        *state = after;
        return Err(ApplyError::Kernel {
            error: Box::new(error),
            rollback,
        });
    }

    let mut outcome = Outcome {
        writes: changes.len(),
        timings: vec![
            ("read", read),
            ("diff", compared - read),
            ("write", written - compared),
        ],
        ..Outcome::default()
    };
    for change in &changes {
        match change {
            Change::Create(_) => outcome.created += 1,
            Change::Update { .. } => outcome.updated += 1,
            Change::Delete { .. } => outcome.deleted += 1,
        }
        outcome.log.push(describe(change));
    }
    state.sysctl_originals = intent.sysctl_originals;
    state.owned = desired.iter().map(|o| o.object.key()).collect();
    let wanted_sysctls: BTreeSet<&str> = desired
        .iter()
        .filter_map(|o| match &o.object {
            Object::Sysctl(s) => Some(s.key.as_str()),
            _ => None,
        })
        .collect();
    state
        .sysctl_originals
        .retain(|k, _| wanted_sysctls.contains(k.as_str()));
    Ok(outcome)
}

/// The planned objects of the enabled tunnels against what the kernel holds.
pub fn status(
    kernel: &mut dyn Kernel,
    tunnels: &[Tunnel],
    paths: &Paths,
) -> Result<Vec<status::TunnelStatus>, ApplyError> {
    let (state, previous) = paths.load().map_err(ApplyError::State)?;
    let (desired, plan) = desired(
        kernel,
        tunnels,
        &state.enabled,
        &state.without_sas,
        previous,
    )?;
    let scope = Scope::of(desired.iter().map(|o| o.object.key()));
    let live = kernel.read(&scope).map_err(|error| ApplyError::Kernel {
        error: Box::new(error),
        rollback: vec![],
    })?;
    let reqids = plan
        .tunnels
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                t.ike.children.iter().map(|c| c.reqid).collect(),
            )
        })
        .collect();
    let sas = kernel.sa_status().map_err(|error| ApplyError::Kernel {
        error: Box::new(error),
        rollback: vec![],
    })?;
    Ok(status::report(&desired, &live, &sas, &reqids))
}

/// The enabled tunnel whose planned object has `key`; `None` if no single tunnel owns one
/// (shared objects, or objects only the state file remembers).
pub fn owner(
    kernel: &mut dyn Kernel,
    tunnels: &[Tunnel],
    enabled: &BTreeSet<String>,
    paths: &Paths,
    key: &objects::ObjectKey,
) -> Result<Option<String>, ApplyError> {
    let (state, previous) = paths.load().map_err(ApplyError::State)?;
    let (desired, _) = desired(kernel, tunnels, enabled, &state.without_sas, previous)?;
    Ok(desired
        .into_iter()
        .find(|o| &o.object.key() == key)
        .and_then(|o| o.tunnel))
}

/// Plans the enabled tunnels and resolves them against the kernel's routes.
fn desired(
    kernel: &mut dyn Kernel,
    tunnels: &[Tunnel],
    enabled: &BTreeSet<String>,
    without_sas: &BTreeSet<String>,
    previous: Allocations,
) -> Result<(Vec<Owned>, plan::Plan), ApplyError> {
    let selected: Vec<Tunnel> = tunnels
        .iter()
        .filter(|t| enabled.contains(&t.name))
        .cloned()
        .collect();
    let mut egress: BTreeMap<String, Egress> = BTreeMap::new();
    let mut context = plan::Context {
        previous,
        without_sas: without_sas.clone(),
        ..Default::default()
    };
    for t in &selected {
        // The route to the peer matters only for what the profile leaves open.
        let known =
            t.local != crate::model::LocalEndpoint::DefaultRoute && t.interface.outer_mtu.is_some();
        if known {
            continue;
        }
        if let Ok(e) = kernel.egress(t.remote) {
            context.outer_mtu.insert(t.name.clone(), e.mtu);
            egress.insert(t.name.clone(), e);
        }
    }
    let plan = plan::build(&selected, &context);
    let manual = manual_keys(&selected)?;
    let desired = resolve::objects(&plan, &egress, &manual).map_err(ApplyError::Unresolved)?;
    Ok((desired, plan))
}

/// The SAs of tunnels keyed by hand, from their keys files.
fn manual_keys(
    tunnels: &[Tunnel],
) -> Result<BTreeMap<String, Vec<crate::profile::keys::ManualSa>>, ApplyError> {
    let mut out = BTreeMap::new();
    for t in tunnels {
        let crate::model::Auth::Manual { keys_file } = &t.ike.auth else {
            continue;
        };
        let unreadable = |e: &dyn std::fmt::Display| {
            let shown = crate::profile::shown_secret_path(keys_file);
            ApplyError::Keys(format!("{shown}: {e}"))
        };
        let bytes = crate::profile::file::read(keys_file).map_err(|e| unreadable(&e))?;
        let text = String::from_utf8(bytes).map_err(|_| unreadable(&"invalid UTF-8"))?;
        let source = crate::profile::SourceFile::new(keys_file.clone(), text);
        let sas = crate::profile::keys::parse(&source, t).map_err(|diagnostics| {
            ApplyError::Keys(
                diagnostics
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        })?;
        out.insert(t.name.clone(), sas);
    }
    Ok(out)
}

/// Merges this run's allocations into the remembered ones, keeping those of tunnels that are
/// down so they come back with the same values.
fn merge(previous: &Allocations, now: &Allocations) -> Allocations {
    let mut merged = previous.clone();
    merged.marks.extend(now.marks.clone());
    merged.if_ids.extend(now.if_ids.clone());
    merged.reqids.extend(now.reqids.clone());
    merged
}

/// Brings the kernel to the state of the `enabled` tunnels (all others are removed).
/// Call it with [`state::lock`]'s apply lock held.
pub fn apply(
    kernel: &mut dyn Kernel,
    tunnels: &[Tunnel],
    enabled: &BTreeSet<String>,
    paths: &Paths,
) -> Result<(Outcome, plan::Plan), ApplyError> {
    apply_selection(kernel, tunnels, paths, |_| Ok(enabled.clone()))
}

/// As [`apply`], for the daemon, which knows the tunnels without a CHILD SA (recorded for
/// later runs that do not).
pub fn apply_knowing_sas(
    kernel: &mut dyn Kernel,
    tunnels: &[Tunnel],
    enabled: &BTreeSet<String>,
    without_sas: &BTreeSet<String>,
    paths: &Paths,
) -> Result<(Outcome, plan::Plan), ApplyError> {
    let select = |_: &State| Ok(enabled.clone());
    apply_planned(
        kernel,
        tunnels,
        paths,
        select,
        Some(without_sas),
        &mut |_, _| {},
    )
}

/// As [`apply`], with the enabled tunnels chosen from the recorded state (for `up` and
/// `down`). A corrupt state or allocations file is set aside and rebuilt from the kernel.
pub fn apply_selection(
    kernel: &mut dyn Kernel,
    tunnels: &[Tunnel],
    paths: &Paths,
    select: impl FnOnce(&State) -> Result<BTreeSet<String>, String>,
) -> Result<(Outcome, plan::Plan), ApplyError> {
    apply_reporting(kernel, tunnels, paths, select, &mut |_, _| {})
}

/// As [`apply_selection`], telling `progress` (done, total) as the changes are written.
pub fn apply_reporting(
    kernel: &mut dyn Kernel,
    tunnels: &[Tunnel],
    paths: &Paths,
    select: impl FnOnce(&State) -> Result<BTreeSet<String>, String>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(Outcome, plan::Plan), ApplyError> {
    apply_planned(kernel, tunnels, paths, select, None, progress)
}

/// The one apply: `without_sas` is the daemon's word, else the recorded one holds.
fn apply_planned(
    kernel: &mut dyn Kernel,
    tunnels: &[Tunnel],
    paths: &Paths,
    select: impl FnOnce(&State) -> Result<BTreeSet<String>, String>,
    without_sas: Option<&BTreeSet<String>>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(Outcome, plan::Plan), ApplyError> {
    let started = std::time::Instant::now();
    let (state, allocations) = paths.load_for_apply().map_err(ApplyError::State)?;
    let mut recovered = recover::Recovered::default();
    let (mut state, previous) =
        recover::rebuild(kernel, tunnels, state, allocations, &mut recovered)?;
    if !recovered.warnings.is_empty() {
        // Recorded at once: what the kernel told is not asked again after another crash.
        paths.save(&state, &previous).map_err(ApplyError::State)?;
    }
    let enabled = select(&state).map_err(ApplyError::Selection)?;
    let recorded = state.clone();
    let without_sas = without_sas.unwrap_or(&state.without_sas).clone();
    let (desired, plan) = desired(kernel, tunnels, &enabled, &without_sas, previous.clone())?;
    let planned = started.elapsed();
    // Allocations only grow: stored first, the values the kernel is about to carry are
    // never lost to a crash.
    let allocations = merge(&previous, &plan.allocations);
    if allocations != previous {
        paths
            .save_allocations(&allocations)
            .map_err(ApplyError::State)?;
    }
    let mut record = |s: &State| paths.save_state(s);
    let mut outcome = reconcile_reporting(kernel, &desired, &mut state, &mut record, progress)?;
    outcome.timings.insert(0, ("plan", planned));
    outcome.warnings = recovered.warnings;
    state.enabled = enabled;
    state.without_sas = without_sas;
    if state != recorded {
        paths.save_state(&state).map_err(ApplyError::State)?;
    }
    Ok((outcome, plan))
}

#[cfg(test)]
mod tests {
    use super::kernel::FakeKernel;
    use super::objects::{ObjectKey, Sysctl};
    use super::*;

    fn creates(n: usize) -> Vec<Change> {
        (0..n)
            .map(|i| {
                Change::Create(Owned {
                    tunnel: None,
                    object: Object::Sysctl(Sysctl {
                        key: format!("net.test.k{i}"),
                        value: "1".into(),
                    }),
                })
            })
            .collect()
    }

    #[test]
    fn writes_report_progress_a_chunk_at_a_time_and_stop_after_a_failure() {
        let changes = creates(1300);
        let mut kernel = FakeKernel::default();
        let mut reports = Vec::new();
        let results = execute_reporting(&mut kernel, &changes, &mut |d, t| reports.push((d, t)));
        assert!(results.iter().all(Result::is_ok));
        assert_eq!(reports, [(512, 1300), (1024, 1300), (1300, 1300)]);

        let mut kernel = FakeKernel::default();
        kernel.fail_on.insert(ObjectKey::Sysctl {
            key: "net.test.k600".into(),
        });
        let mut reports = Vec::new();
        let results = execute_reporting(&mut kernel, &changes, &mut |d, t| reports.push((d, t)));
        assert_eq!(reports, [(512, 1300), (1024, 1300)]);
        assert_eq!(results.len(), 1300);
        assert!(results[1024..].iter().all(|r| r
            .as_ref()
            .is_err_and(|e| e.message == "not attempted after an earlier failure")));
        // The third chunk never reached the kernel.
        assert_eq!(kernel.objects.len(), 1024 - 1);
    }
}
