//! swanctl.conf's connections as routevpn profiles.
//!
//! Each `connections.<name>` becomes one profile named after it. What the profile requires
//! and swanctl does not say is chosen the same way every time and said in the profile's
//! leading comments and in [`ImportedProfile::notes`]:
//! - the kind: `mark_in`/`mark_out` → VTI with that mark; `if_id_in`/`if_id_out` → XFRM
//!   interface with that if_id; transport-mode children with `[gre]` selectors → GRE over
//!   IPsec; otherwise (policy-based) an XFRM interface with an allocated if_id whose routes
//!   are the remote traffic selectors;
//! - the device: `vti-`, `xfrm-` or `gre-` and the connection's name (a hash ends one too
//!   long for 15 characters);
//! - no inner addresses; a pre-shared key goes into `secrets/<name>.psk` beside the profile.
//!
//! Every option routevpn cannot carry over is an error at its `file:line:col` (a warning,
//! the option dropped, when lenient); none is ignored.

mod connection;
pub mod credentials;
mod render;
mod values;

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::tree::{Location, Section};
use crate::profile::{Diagnostic, Severity};

pub use render::duration_text;

#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Options routevpn cannot carry over are dropped with a warning instead of failing.
    pub lenient: bool,
}

/// A secret the profile names by a path relative to itself.
pub struct SecretFile {
    pub path: PathBuf,
    pub content: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for SecretFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretFile({})", self.path.display())
    }
}

#[derive(Debug)]
pub struct ImportedProfile {
    /// The connection's name, which is the tunnel's and the profile file's.
    pub name: String,
    pub text: String,
    pub secrets: Vec<SecretFile>,
    /// What import chose or changed, for the operator.
    pub notes: Vec<String>,
}

#[derive(Debug, Default)]
pub struct Imported {
    pub profiles: Vec<ImportedProfile>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Imported {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Located errors and warnings of one import.
pub struct Report {
    lenient: bool,
    pub diagnostics: Vec<Diagnostic>,
}

impl Report {
    pub fn error(&mut self, at: &Location, message: impl Into<String>) {
        self.diagnostics.push(at.error(message));
    }

    /// An option routevpn cannot carry over: an error, or a warning when lenient.
    pub fn unsupported(&mut self, at: &Location, what: impl Into<String>) {
        let what = what.into();
        let diagnostic = if self.lenient {
            at.diagnostic(
                Severity::Warning,
                format!("{what}: not supported by routevpn, dropped"),
            )
        } else {
            at.diagnostic(
                Severity::Error,
                format!("{what}: not supported by routevpn"),
            )
        };
        self.diagnostics.push(diagnostic);
    }
}

/// Maps the parsed `root` of a swanctl.conf in `dir` (where `x509/`, `private/`, … are).
pub fn import(root: &Section, dir: &Path, options: Options) -> Imported {
    let mut report = Report {
        lenient: options.lenient,
        diagnostics: Vec::new(),
    };
    top_level(root, &mut report);
    let store = credentials::Store::load(root, dir, &mut report);
    connections(root, &store, report)
}

/// Maps `root`'s connections with credentials loaded elsewhere (over VICI): `root` has
/// no `secrets` section of its own.
pub fn import_with(root: &Section, store: &credentials::Store, options: Options) -> Imported {
    let mut report = Report {
        lenient: options.lenient,
        diagnostics: Vec::new(),
    };
    top_level(root, &mut report);
    connections(root, store, report)
}

/// What besides `connections` and `secrets` the root holds: nothing routevpn takes.
fn top_level(root: &Section, report: &mut Report) {
    for (key, value) in &root.values {
        report.unsupported(&value.at, format!("top-level `{key}`"));
    }
    for section in &root.sections {
        if !matches!(section.name.as_str(), "connections" | "secrets") {
            report.unsupported(&section.at, format!("section `{}`", section.name));
        }
    }
}

fn connections(root: &Section, store: &credentials::Store, mut report: Report) -> Imported {
    let mut profiles = Vec::new();
    if let Some(connections) = root.section("connections") {
        for (key, value) in &connections.values {
            report.error(
                &value.at,
                format!("connections.{key}: a connection must be a section"),
            );
        }
        for conn in &connections.sections {
            if let Some(profile) = connection::map(conn, store, &mut report) {
                profiles.push(profile);
            }
        }
    }
    if profiles.is_empty() && !report.diagnostics.iter().any(Diagnostic::is_error) {
        report.error(
            &root.at,
            "no connection to import (no `connections` section)",
        );
    }
    Imported {
        profiles,
        diagnostics: report.diagnostics,
    }
}
