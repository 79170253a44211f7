//! Profile files: TOML, one tunnel per file, read into the validated [`crate::model`].

mod child;
mod cross;
mod diagnostic;
mod fields;
mod ike;
mod interface;
pub mod keys;
mod reader;
mod routing;
mod secrets;
mod semantics;
mod tunnel;
mod values;

use std::path::{Path, PathBuf};

pub use diagnostic::{Diagnostic, Severity, SourceFile};
pub use semantics::policy_children;

use crate::model::Tunnel;

/// The directory `routevpn` reads when none is given.
pub const DEFAULT_DIR: &str = "/etc/routevpn/tunnels";

#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Accept secret files that are not root-owned mode 0600 (test setups only).
    pub insecure_secrets: bool,
}

/// What loading produced: the tunnels if there was no error, and every diagnostic.
#[derive(Debug)]
pub struct Loaded {
    pub tunnels: Option<Vec<Tunnel>>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Loaded {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.is_error())
    }
}

/// Profile files named by `paths`: files as given, directories' `*.toml` (not recursive,
/// hidden files skipped), sorted by path so allocation and diagnostics are stable.
pub fn files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Diagnostic> {
    let mut out = Vec::new();
    for path in paths {
        let unreadable = |e: std::io::Error| file_error(path, format!("cannot read: {e}"));
        if path.is_dir() {
            for entry in std::fs::read_dir(path).map_err(unreadable)? {
                let entry = entry.map_err(unreadable)?;
                let p = entry.path();
                let hidden = p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_none_or(|n| n.starts_with('.'));
                if !hidden && p.extension().is_some_and(|e| e == "toml") && p.is_file() {
                    out.push(p);
                }
            }
        } else if path.exists() {
            out.push(path.clone());
        } else {
            return Err(file_error(path, "no such file or directory".into()));
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn file_error(path: &Path, message: String) -> Diagnostic {
    Diagnostic {
        severity: Severity::Error,
        file: path.to_path_buf(),
        line: 0,
        column: 0,
        message,
        hint: None,
    }
}

/// Loads and validates the profiles under `paths`.
pub fn load(paths: &[PathBuf], options: Options) -> Loaded {
    let files = match files(paths) {
        Ok(files) => files,
        Err(d) => {
            return Loaded {
                tunnels: None,
                diagnostics: vec![d],
            }
        }
    };
    let mut sources = Vec::with_capacity(files.len());
    let mut diagnostics = Vec::new();
    for file in files {
        match std::fs::read_to_string(&file) {
            Ok(text) => sources.push(SourceFile::new(file, text)),
            Err(e) => diagnostics.push(file_error(&file, format!("cannot read: {e}"))),
        }
    }
    load_sources(sources, options, diagnostics)
}

/// Validates profiles already in memory (the loader and the tests share this).
pub fn load_sources(
    sources: Vec<SourceFile>,
    options: Options,
    mut diagnostics: Vec<Diagnostic>,
) -> Loaded {
    let mut parsed = Vec::with_capacity(sources.len());
    for source in &sources {
        let (tunnel, found) = tunnel::parse_source(source);
        diagnostics.extend(found);
        if let Some(mut p) = tunnel {
            let resolved = secrets::resolve(source.path(), p.tunnel.ike.auth.secret_file());
            diagnostics.extend(secrets::check(
                source,
                p.spans.psk_file.clone(),
                &resolved,
                options.insecure_secrets,
            ));
            p.tunnel.ike.auth = p.tunnel.ike.auth.with_secret_file(resolved);
            parsed.push((source, p));
        }
    }
    let all_parsed = parsed.len() == sources.len();
    let entries: Vec<cross::Entry<'_>> = parsed
        .iter()
        .map(|(source, parsed)| cross::Entry { source, parsed })
        .collect();
    diagnostics.extend(cross::check(&entries));
    let ok = all_parsed && !diagnostics.iter().any(Diagnostic::is_error);
    Loaded {
        tunnels: ok.then(|| parsed.into_iter().map(|(_, p)| p.tunnel).collect()),
        diagnostics,
    }
}

/// Parses one traffic selector in strongSwan's syntax (`10.0.0.0/24`, `dynamic[gre]`).
pub fn parse_traffic_selector(text: &str) -> Result<crate::model::TrafficSelector, String> {
    values::traffic_selector(text).map_err(|e| e.message)
}
