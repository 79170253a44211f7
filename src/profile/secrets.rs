//! Secret files: owned by root and unreadable by group and others, like ssh keys.
//!
//! Only the file's metadata is examined here; its content is read by the daemon alone and
//! never appears in a diagnostic.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::diagnostic::{Diagnostic, Severity, SourceFile};
use std::ops::Range;

/// A secret path as written, resolved against the profile's directory when relative.
pub fn resolve(profile: &Path, written: &Path) -> PathBuf {
    if written.is_absolute() {
        return written.to_path_buf();
    }
    profile
        .parent()
        .map_or_else(|| written.to_path_buf(), |dir| dir.join(written))
}

/// Examines the secret file `path`, which the profile wrote as `written`.
pub fn check(
    source: &SourceFile,
    span: Range<usize>,
    written: &Path,
    path: &Path,
    insecure_allowed: bool,
) -> Option<Diagnostic> {
    let at = |severity, message: String, hint: &str| {
        Some(source.diagnostic(severity, span.clone(), message, Some(hint.to_string())))
    };
    let shown = path.display();
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) => {
            // A relative psk_file that cannot be found may be the key itself, pasted by
            // mistake: name only absolute paths until the file is known to exist.
            let create = "create it (owner root, mode 0600) before the tunnel is brought up";
            let (what, create) = if written.is_absolute() {
                (format!("secret file {shown}"), create.to_string())
            } else {
                let dir = source.path().parent().unwrap_or(Path::new("."));
                (
                    format!(
                        "the secret file named by psk_file (relative to {})",
                        dir.display()
                    ),
                    format!("{create}; psk_file names the file holding the key, not the key"),
                )
            };
            return if e.kind() == std::io::ErrorKind::NotFound {
                at(
                    Severity::Warning,
                    format!("{what} does not exist yet"),
                    &create,
                )
            } else {
                at(
                    Severity::Error,
                    format!("cannot examine {what}: {e}"),
                    "check the path and the permissions of its directories",
                )
            };
        }
    };
    if !meta.is_file() {
        return at(
            Severity::Error,
            format!("secret file {shown} is not a regular file"),
            "point psk_file at a file holding the key",
        );
    }
    if meta.len() == 0 {
        return at(
            Severity::Error,
            format!("secret file {shown} is empty"),
            "write the pre-shared key agreed with the peer into it",
        );
    }
    if insecure_allowed {
        return None;
    }
    if meta.uid() != 0 {
        return at(
            Severity::Error,
            format!(
                "secret file {shown} is owned by uid {}, not root",
                meta.uid()
            ),
            "chown root: it, or pass --insecure-secrets for a test setup",
        );
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return at(
            Severity::Error,
            format!("secret file {shown} is accessible by group or others (mode {mode:04o})"),
            "chmod 600 it, or pass --insecure-secrets for a test setup",
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_relative_secret_file_is_not_named() {
        // Someone wrote the key where its file name belongs.
        let source = SourceFile::new("/nonexistent/t.toml", String::new());
        let written = Path::new("Zm9vYmFy/c2VjcmV0");
        let d = check(
            &source,
            0..0,
            written,
            &resolve(source.path(), written),
            false,
        )
        .unwrap();
        assert_eq!(d.severity, Severity::Warning);
        assert!(!d.to_string().contains("Zm9vYmFy"), "{d}");
        let absolute = Path::new("/nonexistent/k.psk");
        let d = check(&source, 0..0, absolute, absolute, false).unwrap();
        assert_eq!(
            d.message,
            "secret file /nonexistent/k.psk does not exist yet"
        );
    }
}
