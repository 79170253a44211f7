//! The settings tree strongSwan's configuration describes: sections holding key / value
//! pairs and subsections, every key located. swanctl.conf parses into it, and a VICI
//! message (the same section / key / list shape) can be built into it, so both share one
//! mapping onto profiles.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::profile::{Diagnostic, Severity};

/// Where a key or section was written: 1-based line and column (in characters).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub file: Arc<Path>,
    pub line: usize,
    pub column: usize,
}

impl Location {
    pub fn new(file: impl Into<PathBuf>, line: usize, column: usize) -> Self {
        Location {
            file: Arc::from(file.into()),
            line,
            column,
        }
    }

    pub fn diagnostic(&self, severity: Severity, message: String) -> Diagnostic {
        Diagnostic {
            severity,
            file: self.file.to_path_buf(),
            line: self.line,
            column: self.column,
            message,
            hint: None,
        }
    }

    pub fn error(&self, message: impl Into<String>) -> Diagnostic {
        self.diagnostic(Severity::Error, message.into())
    }
}

/// One `key = value`; `key =` holds the empty string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Value {
    pub text: String,
    /// Where the key was written (the last time, when it was repeated).
    pub at: Location,
}

impl Value {
    /// The items of a comma-separated list (`aes256-sha256, aes128-sha256`), trimmed,
    /// empty items left out.
    pub fn items(&self) -> Vec<&str> {
        self.text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .collect()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub at: Location,
    /// In the order first written; a repeated key keeps its place and takes the new value.
    pub values: Vec<(String, Value)>,
    /// In the order first written; a repeated section is merged into the first.
    pub sections: Vec<Section>,
}

impl Section {
    pub fn new(name: impl Into<String>, at: Location) -> Self {
        Section {
            name: name.into(),
            at,
            values: Vec::new(),
            sections: Vec::new(),
        }
    }

    pub fn value(&self, key: &str) -> Option<&Value> {
        self.values.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// Sets `key`, replacing an earlier value as strongSwan does.
    pub fn set(&mut self, key: String, value: Value) {
        match self.values.iter_mut().find(|(k, _)| *k == key) {
            Some((_, old)) => *old = value,
            None => self.values.push((key, value)),
        }
    }

    /// Adds `section`, merging it into one of the same name (its keys win).
    pub fn add_section(&mut self, section: Section) {
        match self.sections.iter_mut().find(|s| s.name == section.name) {
            Some(existing) => existing.merge(section),
            None => self.sections.push(section),
        }
    }

    fn merge(&mut self, other: Section) {
        for (key, value) in other.values {
            self.set(key, value);
        }
        for section in other.sections {
            self.add_section(section);
        }
    }
}
