//! Located diagnostics: `file:line:column: error: what` plus a hint.
//!
//! Messages quote only values the validator understood (addresses, names, algorithms), never
//! raw source lines, so a secret pasted into a profile by mistake is not echoed back.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Error,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: PathBuf,
    /// 1-based line and column (in characters); 0 when the problem is the file itself.
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// `line:column: message` — the part a test or a log line needs.
    pub fn located_message(&self) -> String {
        format!("{}:{}: {}", self.line, self.column, self.message)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        if self.line == 0 {
            write!(f, "{}: {severity}: {}", self.file.display(), self.message)?;
        } else {
            write!(
                f,
                "{}:{}:{}: {severity}: {}",
                self.file.display(),
                self.line,
                self.column,
                self.message
            )?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// One profile's text, able to turn byte spans into line / column.
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
}

impl SourceFile {
    pub fn new(path: impl Into<PathBuf>, text: String) -> Self {
        SourceFile {
            path: path.into(),
            text,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// 1-based line and character column of a byte offset (clamped to the text).
    pub fn line_column(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        (line, column)
    }

    pub fn diagnostic(
        &self,
        severity: Severity,
        span: Range<usize>,
        message: impl Into<String>,
        hint: Option<String>,
    ) -> Diagnostic {
        let (line, column) = self.line_column(span.start);
        Diagnostic {
            severity,
            file: self.path.clone(),
            line,
            column,
            message: message.into(),
            hint,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_characters() {
        let src = SourceFile::new("t.toml", "a = 1\n# é\nbé = \"x\"\n".into());
        assert_eq!(src.line_column(0), (1, 1));
        assert_eq!(src.line_column(4), (1, 5));
        assert_eq!(src.line_column(6), (2, 1));
        let offset = src.text.find("= \"x").unwrap();
        assert_eq!(src.line_column(offset), (3, 4));
        assert_eq!(src.line_column(10_000).0, 4);
    }

    #[test]
    fn display_is_editor_friendly() {
        let src = SourceFile::new("p/a.toml", "kind = \"x\"\n".into());
        let d = src.diagnostic(Severity::Error, 7..10, "bad kind", Some("use vti".into()));
        assert_eq!(
            d.to_string(),
            "p/a.toml:1:8: error: bad kind\n  hint: use vti"
        );
    }
}
