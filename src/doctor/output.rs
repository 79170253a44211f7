//! The report for people (text) and machines (`--json`, schema in README.md).

use std::fmt::Write;

use serde::Serialize;

use super::{Finding, Severity};

/// Bumped when a field changes meaning or disappears; new fields may appear without it.
pub const SCHEMA: u32 = 1;

#[derive(Serialize)]
pub struct Report<'a> {
    pub schema: u32,
    pub healthy: bool,
    pub tunnels: Vec<&'a str>,
    pub interval_secs: f64,
    pub findings: &'a [Finding],
}

impl<'a> Report<'a> {
    pub fn new(tunnels: Vec<&'a str>, interval_secs: f64, findings: &'a [Finding]) -> Self {
        Report {
            schema: SCHEMA,
            healthy: !findings.iter().any(|f| f.severity == Severity::Error),
            tunnels,
            interval_secs,
            findings,
        }
    }

    pub fn text(&self) -> String {
        let mut out = String::new();
        let names = self.tunnels.join(", ");
        if self.findings.is_empty() {
            let _ = writeln!(out, "checked {names}: no problem found");
            return out;
        }
        for f in self.findings {
            let severity = match f.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
                Severity::Info => "note",
            };
            let about = f.tunnel.as_deref().unwrap_or("host");
            let _ = writeln!(out, "{severity}: {about}: {}", f.message);
            let _ = writeln!(out, "  fix: {}", f.fix);
        }
        let errors = self
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count();
        let _ = writeln!(
            out,
            "checked {names}: {errors} error(s), {} other finding(s)",
            self.findings.len() - errors
        );
        out
    }
}
