//! Located diagnostics: `file:line:column: error: what` plus a hint.
//!
//! Messages quote only values the validator understood (addresses, names, algorithms), never
//! raw source lines, so a secret pasted into a profile by mistake is not echoed back. Control
//! characters are escaped when shown, so quoted text cannot forge lines or drive the terminal.

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
        format!("{}:{}: {}", self.line, self.column, escaped(&self.message))
    }
}

/// `text` with control characters (newline, ESC, NUL, DEL, C1...) written as `\n`, `\u{1b}`.
pub fn escaped(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return text.into();
    }
    text.chars()
        .map(|c| match c {
            '\n' => "\\n".to_string(),
            '\r' => "\\r".to_string(),
            '\t' => "\\t".to_string(),
            c if c.is_control() => format!("\\u{{{:x}}}", u32::from(c)),
            c => c.to_string(),
        })
        .collect::<String>()
        .into()
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let file = self.file.display().to_string();
        let (file, message) = (escaped(&file), escaped(&self.message));
        if self.line == 0 {
            write!(f, "{file}: {severity}: {message}")?;
        } else {
            write!(
                f,
                "{file}:{}:{}: {severity}: {message}",
                self.line, self.column
            )?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {}", escaped(hint))?;
        }
        Ok(())
    }
}

/// One profile's text, able to turn byte spans into line / column.
pub struct SourceFile {
    path: PathBuf,
    text: String,
    /// Byte offset where each line starts, so that locating is a binary search.
    line_starts: Vec<usize>,
}

impl SourceFile {
    pub fn new(path: impl Into<PathBuf>, text: String) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        SourceFile {
            path: path.into(),
            text,
            line_starts,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// 1-based line and character column of a byte offset (clamped to the text).
    pub fn line_column(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        // The last line starting at or before `offset`; line_starts[0] is 0.
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let column = self.text[self.line_starts[line - 1]..offset]
            .chars()
            .count()
            + 1;
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
    fn line_and_column_agree_with_a_scan_from_the_start_at_every_offset() {
        let text = "\né = 1\n\n# ü€ x\r\nlast";
        let src = SourceFile::new("t.toml", text.into());
        for offset in 0..=text.len() + 2 {
            let mut at = offset.min(text.len());
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            let before = &text[..at];
            let line = before.matches('\n').count() + 1;
            let column = before[before.rfind('\n').map_or(0, |i| i + 1)..]
                .chars()
                .count()
                + 1;
            assert_eq!(src.line_column(offset), (line, column), "offset {offset}");
        }
    }

    #[test]
    fn control_characters_are_escaped_wherever_a_diagnostic_is_shown() {
        let d = Diagnostic {
            severity: Severity::Error,
            file: PathBuf::from("a\nb.toml"),
            line: 1,
            column: 2,
            message: "invalid name \"x\n/etc/p.toml:1:1: error: forged\u{1b}[2J\u{0}\"".into(),
            hint: Some("tab\there\u{7f}".into()),
        };
        assert_eq!(
            d.to_string(),
            "a\\nb.toml:1:2: error: invalid name \"x\\n/etc/p.toml:1:1: error: forged\\u{1b}[2J\\u{0}\"\n  hint: tab\\there\\u{7f}"
        );
        assert_eq!(d.to_string().lines().count(), 2);
        assert_eq!(
            d.located_message(),
            "1:2: invalid name \"x\\n/etc/p.toml:1:1: error: forged\\u{1b}[2J\\u{0}\""
        );
        assert_eq!(escaped("plain é"), "plain é");
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
