//! Typed, located access to a parsed TOML table.
//!
//! Each getter checks the value's type and records a located diagnostic when it is wrong, so
//! one pass over a profile reports every problem instead of stopping at the first.

use std::cell::RefCell;
use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::diagnostic::{Diagnostic, Severity, SourceFile};

/// A value with the byte span it came from.
#[derive(Clone, Debug)]
pub struct Val<T> {
    pub value: T,
    pub span: Range<usize>,
}

impl<T> Val<T> {
    pub fn new(value: T, span: Range<usize>) -> Self {
        Val { value, span }
    }

    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Val<U> {
        Val::new(f(self.value), self.span)
    }
}

#[derive(Clone, Copy, Debug)]
pub enum IntOrStr<'a> {
    Int(u64),
    Str(&'a str),
}

/// Diagnostics of one severity shown per file; a file of junk would otherwise bury the first.
pub const MAX_SHOWN_PER_FILE: usize = 50;

/// Where diagnostics for one file accumulate.
pub struct Context<'s> {
    pub source: &'s SourceFile,
    /// Whether values may be secret (a keys file): messages then never quote them.
    pub secret_values: bool,
    diagnostics: RefCell<Vec<Diagnostic>>,
    /// Diagnostics beyond [`MAX_SHOWN_PER_FILE`], indexed by `Severity as usize`.
    not_shown: RefCell<[usize; 2]>,
}

impl<'s> Context<'s> {
    pub fn new(source: &'s SourceFile) -> Self {
        Context {
            source,
            secret_values: false,
            diagnostics: RefCell::new(Vec::new()),
            not_shown: RefCell::new([0, 0]),
        }
    }

    /// For files every value of which may be key material.
    pub fn for_secrets(source: &'s SourceFile) -> Self {
        Context {
            secret_values: true,
            ..Context::new(source)
        }
    }

    /// Records a diagnostic; `describe` (message and hint) runs only if it will be shown.
    fn push(
        &self,
        severity: Severity,
        span: Range<usize>,
        describe: impl FnOnce() -> (String, Option<String>),
    ) {
        let mut diagnostics = self.diagnostics.borrow_mut();
        let shown = diagnostics
            .iter()
            .filter(|d| d.severity == severity)
            .count();
        if shown >= MAX_SHOWN_PER_FILE {
            self.not_shown.borrow_mut()[severity as usize] += 1;
            return;
        }
        let (message, hint) = describe();
        diagnostics.push(self.source.diagnostic(severity, span, message, hint));
    }

    pub fn error(&self, span: Range<usize>, message: impl Into<String>, hint: Option<String>) {
        self.push(Severity::Error, span, || (message.into(), hint));
    }

    /// An error whose text is costly to compose (a suggestion): composed only if shown.
    pub fn error_with(
        &self,
        span: Range<usize>,
        describe: impl FnOnce() -> (String, Option<String>),
    ) {
        self.push(Severity::Error, span, describe);
    }

    pub fn warning(&self, span: Range<usize>, message: impl Into<String>, hint: Option<String>) {
        self.push(Severity::Warning, span, || (message.into(), hint));
    }

    pub fn has_errors(&self) -> bool {
        self.diagnostics.borrow().iter().any(Diagnostic::is_error)
    }

    /// The diagnostics, then one line per severity that had more than could be shown.
    pub fn into_diagnostics(self) -> Vec<Diagnostic> {
        let mut diagnostics = self.diagnostics.into_inner();
        let not_shown = self.not_shown.into_inner();
        for (severity, word) in [(Severity::Error, "errors"), (Severity::Warning, "warnings")] {
            let n = not_shown[severity as usize];
            if n > 0 {
                diagnostics.push(Diagnostic {
                    severity,
                    file: self.source.path().to_path_buf(),
                    line: 0,
                    column: 0,
                    message: format!("{n} more {word} not shown"),
                    hint: Some("fix the ones above and check again".into()),
                });
            }
        }
        diagnostics
    }
}

/// One TOML table (the top level, `[ike]`, one `[[child]]`, ...) with its allowed keys.
pub struct Section<'a> {
    pub ctx: &'a Context<'a>,
    /// How messages name this table, e.g. `[ike]` or `[[child]] #2`.
    pub name: String,
    pub table: &'a DeTable<'a>,
    pub span: Range<usize>,
}

fn type_name(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

impl<'a> Section<'a> {
    /// Wraps a table and reports every key not in `allowed`, suggesting the closest one.
    pub fn new(
        ctx: &'a Context<'a>,
        name: impl Into<String>,
        table: &'a DeTable<'a>,
        span: Range<usize>,
        allowed: &[&str],
    ) -> Self {
        let section = Section {
            ctx,
            name: name.into(),
            table,
            span,
        };
        for (key, _) in table.iter() {
            let key_name: &str = key.get_ref();
            if !allowed.contains(&key_name) {
                ctx.error_with(key.span(), || {
                    let hint = if looks_like_inline_secret(key_name) {
                        "secrets are never written in a profile: put the key in a file readable \
only by root and set `psk_file` under [ike]"
                            .to_string()
                    } else {
                        match closest(key_name, allowed) {
                            Some(best) => format!("did you mean `{best}`?"),
                            None => format!("allowed keys: {}", allowed.join(", ")),
                        }
                    };
                    (
                        format!("unknown key `{key_name}` in {}", section.name),
                        Some(hint),
                    )
                });
            }
        }
        section
    }

    fn entry(
        &self,
        key: &str,
    ) -> Option<(
        &'a Spanned<std::borrow::Cow<'a, str>>,
        &'a Spanned<DeValue<'a>>,
    )> {
        self.table.iter().find(|(k, _)| k.get_ref().as_ref() == key)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.entry(key).is_some()
    }

    /// Whether `key` holds an array with no element (`child = []`).
    pub fn is_empty_array(&self, key: &str) -> bool {
        matches!(self.entry(key), Some((_, v)) if matches!(v.get_ref(), DeValue::Array(a) if a.is_empty()))
    }

    /// Span of the value of `key`.
    pub fn value_span(&self, key: &str) -> Option<Range<usize>> {
        self.entry(key).map(|(_, v)| v.span())
    }

    /// Span of the key itself, for "this key cannot be used here" messages.
    pub fn key_span(&self, key: &str) -> Option<Range<usize>> {
        self.entry(key).map(|(k, _)| k.span())
    }

    fn wrong_type(&self, key: &str, value: &Spanned<DeValue<'_>>, expected: &str) {
        self.ctx.error(
            value.span(),
            format!(
                "`{key}` in {} must be {expected}, found {}",
                self.name,
                type_name(value.get_ref())
            ),
            None,
        );
    }

    pub fn missing(&self, key: &str, hint: Option<String>) {
        self.ctx.error(
            self.span.clone(),
            format!("missing key `{key}` in {}", self.name),
            hint,
        );
    }

    pub fn string(&self, key: &str) -> Option<Val<&'a str>> {
        let (_, value) = self.entry(key)?;
        match value.get_ref() {
            DeValue::String(s) => Some(Val::new(s.as_ref(), value.span())),
            _ => {
                self.wrong_type(key, value, "a string");
                None
            }
        }
    }

    pub fn required_string(&self, key: &str, hint: Option<String>) -> Option<Val<&'a str>> {
        if !self.contains(key) {
            self.missing(key, hint);
            return None;
        }
        self.string(key)
    }

    pub fn boolean(&self, key: &str) -> Option<Val<bool>> {
        let (_, value) = self.entry(key)?;
        match value.get_ref() {
            DeValue::Boolean(b) => Some(Val::new(*b, value.span())),
            _ => {
                self.wrong_type(key, value, "true or false");
                None
            }
        }
    }

    /// An integer within `range`; TOML allows hex (`0x2a`), which suits marks and keys.
    pub fn integer(&self, key: &str, range: Range<u64>) -> Option<Val<u64>> {
        let (_, value) = self.entry(key)?;
        self.integer_value(key, value, range)
    }

    fn integer_value(
        &self,
        key: &str,
        value: &Spanned<DeValue<'_>>,
        range: Range<u64>,
    ) -> Option<Val<u64>> {
        let DeValue::Integer(i) = value.get_ref() else {
            self.wrong_type(key, value, "an integer");
            return None;
        };
        match u64::from_str_radix(i.as_str().trim_start_matches('+'), i.radix()) {
            Ok(n) if range.contains(&n) => Some(Val::new(n, value.span())),
            _ => {
                let found = if self.ctx.secret_values {
                    String::new()
                } else {
                    format!(": {i}")
                };
                self.ctx.error(
                    value.span(),
                    format!(
                        "`{key}` in {} is out of range{found}, expected {} to {}",
                        self.name,
                        range.start,
                        range.end - 1
                    ),
                    None,
                );
                None
            }
        }
    }

    /// Either an integer within `range` or a string: for `mtu = "auto"` / `mtu = 1400` keys.
    pub fn integer_or_string(&self, key: &str, range: Range<u64>) -> Option<Val<IntOrStr<'a>>> {
        let (_, value) = self.entry(key)?;
        match value.get_ref() {
            DeValue::String(s) => Some(Val::new(IntOrStr::Str(s.as_ref()), value.span())),
            DeValue::Integer(_) => self
                .integer_value(key, value, range)
                .map(|n| n.map(IntOrStr::Int)),
            _ => {
                self.wrong_type(key, value, "an integer or a string");
                None
            }
        }
    }

    /// An array of strings; a lone string is accepted as a one-element list.
    pub fn strings(&self, key: &str) -> Option<Vec<Val<&'a str>>> {
        let (_, value) = self.entry(key)?;
        match value.get_ref() {
            DeValue::String(s) => Some(vec![Val::new(s.as_ref(), value.span())]),
            DeValue::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items.iter() {
                    match item.get_ref() {
                        DeValue::String(s) => out.push(Val::new(s.as_ref(), item.span())),
                        _ => {
                            self.wrong_type(key, item, "a list of strings");
                            return None;
                        }
                    }
                }
                Some(out)
            }
            _ => {
                self.wrong_type(key, value, "a list of strings");
                None
            }
        }
    }

    /// A sub-table, written `[ike]` or inline `ike = { ... }`.
    pub fn table(&self, key: &str, name: String, allowed: &[&str]) -> Option<Section<'a>> {
        let (_, value) = self.entry(key)?;
        match value.get_ref() {
            DeValue::Table(t) => Some(Section::new(self.ctx, name, t, value.span(), allowed)),
            _ => {
                self.wrong_type(key, value, "a table");
                None
            }
        }
    }

    /// An array of tables, written `[[child]]`.
    pub fn tables(&self, key: &str, allowed: &[&str]) -> Vec<Section<'a>> {
        let Some((_, value)) = self.entry(key) else {
            return Vec::new();
        };
        let DeValue::Array(items) = value.get_ref() else {
            self.wrong_type(key, value, &format!("an array of tables ([[{key}]])"));
            return Vec::new();
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match item.get_ref() {
                DeValue::Table(t) => out.push(Section::new(
                    self.ctx,
                    format!("[[{key}]] #{}", i + 1),
                    t,
                    item.span(),
                    allowed,
                )),
                _ => self.wrong_type(key, item, &format!("an array of tables ([[{key}]])")),
            }
        }
        out
    }
}

fn looks_like_inline_secret(key: &str) -> bool {
    // `pre-shared-key`, `PSK`, `shared_secret`, `ike_password`, ...
    let key = key.to_ascii_lowercase().replace('-', "_");
    key == "psk"
        || [
            "secret",
            "password",
            "passphrase",
            "pre_shared",
            "preshared",
        ]
        .iter()
        .any(|s| key.contains(s))
}

/// The allowed key nearest to a misspelt one, if it is close enough to be a typo.
fn closest<'k>(key: &str, allowed: &[&'k str]) -> Option<&'k str> {
    allowed
        .iter()
        .map(|candidate| (edit_distance(key, candidate), *candidate))
        .filter(|(d, candidate)| *d <= 2.max(candidate.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_catch_typos_only() {
        let allowed = ["proposals", "psk_file", "rekey_time", "dpd"];
        assert_eq!(closest("proposal", &allowed), Some("proposals"));
        assert_eq!(closest("psk-file", &allowed), Some("psk_file"));
        assert_eq!(closest("colour", &allowed), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn inline_secrets_are_recognised_under_common_names() {
        for key in [
            "psk",
            "PSK",
            "secret",
            "pre-shared-key",
            "shared_secret",
            "ike_password",
        ] {
            assert!(looks_like_inline_secret(key), "{key}");
        }
        for key in ["psk_file", "psk_fil", "proposals", "key"] {
            assert!(!looks_like_inline_secret(key), "{key}");
        }
    }
}
