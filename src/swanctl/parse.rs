//! strongSwan's settings syntax (swanctl.conf, strongswan.conf), written from its grammar:
//! `name { … }` sections (the brace may follow on the next line), `key = value` (the value
//! runs to the end of the line, `#` or `}`; its words joined by one space; `key =` is
//! empty), `"quoted"` values with `\n`, `\t`, `\"` escapes that may span lines, `#`
//! comments, and `include PATTERN` (a glob, relative to the including file) read in place.
//!
//! Every file is read through [`crate::file`] (regular, bounded); a file that cannot be read
//! or parsed is a located error, never skipped. Nothing here panics on any input.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::tree::{Location, Section, Value};
use crate::file;
use crate::profile::Diagnostic;

/// Sections nest at most this deep, so hostile input cannot exhaust the stack.
const MAX_DEPTH: usize = 64;
/// Includes nest at most this deep (an include loop ends here).
const MAX_INCLUDE_DEPTH: usize = 16;
/// Files read in one parse, includes counted.
const MAX_FILES: usize = 1000;

/// Parses `path` and every file it includes into one tree (the root has an empty name).
pub fn parse_file(path: &Path) -> Result<Section, Diagnostic> {
    let mut reader = Reader {
        files: 0,
        follow_includes: true,
    };
    let mut root = Section::new("", Location::new(path, 0, 0));
    reader.include(path, &mut root, 0, None)?;
    Ok(root)
}

/// Parses text already in memory; an `include` is resolved relative to `path`, or is an
/// error when `follow_includes` is false (untrusted text must not read the host's files).
pub fn parse_text(path: &Path, text: &str, follow_includes: bool) -> Result<Section, Diagnostic> {
    let mut reader = Reader {
        files: 0,
        follow_includes,
    };
    let mut root = Section::new("", Location::new(path, 0, 0));
    reader.parse(path, text, &mut root, 0)?;
    Ok(root)
}

struct Reader {
    files: usize,
    follow_includes: bool,
}

impl Reader {
    fn include(
        &mut self,
        path: &Path,
        into: &mut Section,
        depth: usize,
        from: Option<&Location>,
    ) -> Result<(), Diagnostic> {
        let fail = |message: String| match from {
            Some(at) => at.error(message),
            None => Location::new(path, 0, 0).error(message),
        };
        self.files += 1;
        if self.files > MAX_FILES {
            return Err(fail(format!("more than {MAX_FILES} files included")));
        }
        if depth > MAX_INCLUDE_DEPTH {
            return Err(fail(format!(
                "includes nested deeper than {MAX_INCLUDE_DEPTH} (an include loop?)"
            )));
        }
        let bytes =
            file::read(path).map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| fail(format!("{}: not UTF-8 text", path.display())))?;
        self.parse(path, &text, into, depth)
    }

    fn parse(
        &mut self,
        path: &Path,
        text: &str,
        into: &mut Section,
        depth: usize,
    ) -> Result<(), Diagnostic> {
        let mut lexer = Lexer {
            file: Arc::from(path),
            chars: text.chars().filter(|&c| c != '\r').collect(),
            pos: 0,
            line: 1,
            column: 1,
        };
        self.statements(&mut lexer, into, 0, depth)?;
        Ok(())
    }

    /// Statements up to the end of the file (nesting 0) or the `}` closing this section.
    fn statements(
        &mut self,
        lx: &mut Lexer,
        section: &mut Section,
        nesting: usize,
        include_depth: usize,
    ) -> Result<(), Diagnostic> {
        loop {
            lx.skip_blanks_and_comment();
            let at = lx.location();
            match lx.peek() {
                None if nesting == 0 => return Ok(()),
                None => {
                    let message = format!("section `{}` is not closed", section.name);
                    return Err(section.at.error(message));
                }
                Some('\n') => lx.bump(),
                Some('}') if nesting == 0 => return Err(at.error("`}` without a section to close")),
                Some('}') => {
                    lx.bump();
                    return Ok(());
                }
                Some('{') => return Err(at.error("`{` without a section name")),
                Some('=') => return Err(at.error("`=` without a key")),
                Some('"') => return Err(at.error("unexpected quoted string: keys are not quoted")),
                Some(_) if lx.at_include() => {
                    let pattern = lx.include_pattern()?;
                    if !self.follow_includes {
                        return Err(at.error("`include` is not followed here"));
                    }
                    for path in expand(&at, &pattern)? {
                        self.include(&path, section, include_depth + 1, Some(&at))?;
                    }
                }
                Some(_) => {
                    let name = lx.name();
                    lx.skip_blanks_and_comment();
                    match lx.peek() {
                        Some('=') => {
                            lx.bump();
                            let text = lx.value()?;
                            section.set(name, Value { text, at });
                        }
                        Some('{') => {
                            self.subsection(lx, section, name, at, nesting, include_depth)?
                        }
                        Some('\n') => {
                            lx.bump();
                            lx.skip_blanks_and_comment();
                            if lx.peek() != Some('{') {
                                return Err(at.error(format!(
                                    "`{name}` is neither `{name} = value` nor `{name} {{`"
                                )));
                            }
                            self.subsection(lx, section, name, at, nesting, include_depth)?;
                        }
                        _ => {
                            return Err(lx
                                .location()
                                .error(format!("expected `=` or `{{` after `{name}`")))
                        }
                    }
                }
            }
        }
    }

    fn subsection(
        &mut self,
        lx: &mut Lexer,
        parent: &mut Section,
        name: String,
        at: Location,
        nesting: usize,
        include_depth: usize,
    ) -> Result<(), Diagnostic> {
        if nesting + 1 > MAX_DEPTH {
            return Err(at.error(format!("sections nested deeper than {MAX_DEPTH}")));
        }
        lx.bump(); // `{`
        let mut section = Section::new(name, at);
        self.statements(lx, &mut section, nesting + 1, include_depth)?;
        parent.add_section(section);
        Ok(())
    }
}

struct Lexer {
    file: Arc<Path>,
    chars: Vec<char>,
    pos: usize,
    line: usize,
    column: usize,
}

/// Characters that end a name outside values (strongSwan's NAME: `[^#{}="\r\n\t ]+`).
fn ends_name(c: char) -> bool {
    matches!(c, '#' | '{' | '}' | '=' | '"' | '\n' | '\t' | ' ')
}

impl Lexer {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.pos + ahead).copied()
    }

    fn bump(&mut self) {
        if let Some(c) = self.peek() {
            self.pos += 1;
            if c == '\n' {
                self.line += 1;
                self.column = 1;
            } else {
                self.column += 1;
            }
        }
    }

    fn location(&self) -> Location {
        Location {
            file: self.file.clone(),
            line: self.line,
            column: self.column,
        }
    }

    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.bump();
        }
    }

    /// Blanks, and a comment up to (not including) the end of its line.
    fn skip_blanks_and_comment(&mut self) {
        self.skip_blanks();
        if self.peek() == Some('#') {
            while !matches!(self.peek(), None | Some('\n')) {
                self.bump();
            }
        }
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek().filter(|&c| !ends_name(c)) {
            name.push(c);
            self.bump();
        }
        name
    }

    /// `include` followed by blanks and then not `=` (else `include` is a key).
    fn at_include(&self) -> bool {
        let word: String = (0..7).filter_map(|i| self.peek_at(i)).collect();
        if word != "include" || !matches!(self.peek_at(7), Some(' ' | '\t')) {
            return false;
        }
        let mut i = 7;
        while matches!(self.peek_at(i), Some(' ' | '\t')) {
            i += 1;
        }
        !matches!(self.peek_at(i), Some('=') | None | Some('\n'))
    }

    /// The pattern after `include`: a quoted string, or characters up to a blank, `#`, `}`
    /// or the end of the line, where `\"`, `\#`, `\}` and `\ ` stand for themselves.
    fn include_pattern(&mut self) -> Result<String, Diagnostic> {
        for _ in 0..7 {
            self.bump();
        }
        self.skip_blanks();
        if self.peek() == Some('"') {
            return self.quoted();
        }
        let mut pattern = String::new();
        while let Some(c) = self.peek() {
            match c {
                ' ' | '\t' | '#' | '}' | '\n' => break,
                '\\' if matches!(self.peek_at(1), Some('"' | '#' | '}' | ' ')) => {
                    self.bump();
                    pattern.extend(self.peek());
                }
                c => pattern.push(c),
            }
            self.bump();
        }
        Ok(pattern)
    }

    /// A value after `=`: words and quoted strings up to the end of the line, `#` or `}`.
    fn value(&mut self) -> Result<String, Diagnostic> {
        let mut parts = Vec::new();
        loop {
            self.skip_blanks();
            match self.peek() {
                None | Some('\n' | '#' | '}') => return Ok(parts.join(" ")),
                Some('"') => parts.push(self.quoted()?),
                Some(_) => {
                    let mut word = String::new();
                    while let Some(c) = self
                        .peek()
                        .filter(|c| !matches!(c, '#' | '}' | '"' | '\n' | '\t' | ' '))
                    {
                        word.push(c);
                        self.bump();
                    }
                    parts.push(word);
                }
            }
        }
    }

    /// A quoted string starting at `"`: it may span lines; a backslash before a line end
    /// joins the lines.
    fn quoted(&mut self) -> Result<String, Diagnostic> {
        let start = self.location();
        self.bump();
        let mut text = String::new();
        loop {
            match self.peek() {
                None => return Err(start.error("unterminated quoted string")),
                Some('"') => {
                    self.bump();
                    return Ok(text);
                }
                Some('\\') => {
                    self.bump();
                    match self.peek() {
                        None => return Err(start.error("unterminated quoted string")),
                        Some('n') => text.push('\n'),
                        Some('r') => text.push('\r'),
                        Some('t') => text.push('\t'),
                        Some('\n') => {}
                        Some(c) => text.push(c),
                    }
                    self.bump();
                }
                Some(c) => {
                    text.push(c);
                    self.bump();
                }
            }
        }
    }
}

/// The files an include pattern names, relative to the including file's directory. A
/// pattern without `*`, `?` or `[` names one file that must exist; a glob may match none.
/// Matches are sorted, as glob(3) returns them.
fn expand(at: &Location, pattern: &str) -> Result<Vec<PathBuf>, Diagnostic> {
    if pattern.is_empty() {
        return Err(at.error("`include` without a file"));
    }
    let base = at.file.parent().unwrap_or(Path::new("."));
    let full = base.join(pattern);
    if !pattern.contains(['*', '?', '[']) {
        return Ok(vec![full]);
    }
    let mut found = vec![PathBuf::new()];
    for component in full.components() {
        let part = component.as_os_str().to_string_lossy();
        if !part.contains(['*', '?', '[']) {
            found.iter_mut().for_each(|p| p.push(component));
            continue;
        }
        let mut next = Vec::new();
        for dir in &found {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let hidden = name.starts_with('.') && !part.starts_with('.');
                if !hidden && glob_match(&part, &name) {
                    next.push(dir.join(&name));
                }
            }
        }
        found = next;
    }
    found.sort();
    Ok(found)
}

/// Shell wildcards in one path component: `*`, `?` and `[…]` classes (`[!…]` negated).
fn glob_match(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    // Iterative with one backtrack point for the last `*`: linear, no recursion.
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        let step = match pattern.get(p) {
            Some('*') => {
                star = Some((p, n));
                p += 1;
                continue;
            }
            Some('?') => Some(p + 1),
            Some('[') => class(&pattern, p, name[n]),
            Some(&c) if c == name[n] => Some(p + 1),
            _ => None,
        };
        match (step, star) {
            (Some(next), _) => {
                p = next;
                n += 1;
            }
            (None, Some((sp, sn))) => {
                p = sp + 1;
                n = sn + 1;
                star = Some((sp, sn + 1));
            }
            (None, None) => return false,
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == '*')
}

/// Whether the class starting at `pattern[open] == '['` holds `c`: the index after it if so.
/// An unclosed `[` matches itself.
fn class(pattern: &[char], open: usize, c: char) -> Option<usize> {
    let mut i = open + 1;
    let negated = matches!(pattern.get(i), Some('!' | '^'));
    if negated {
        i += 1;
    }
    let first = i;
    let mut hit = false;
    while let Some(&pc) = pattern.get(i) {
        if pc == ']' && i > first {
            return (hit != negated).then_some(i + 1);
        }
        if pattern.get(i + 1) == Some(&'-') && pattern.get(i + 2).is_some_and(|&e| e != ']') {
            hit |= (pc..=pattern[i + 2]).contains(&c);
            i += 3;
        } else {
            hit |= pc == c;
            i += 1;
        }
    }
    (c == '[').then_some(open + 1)
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
