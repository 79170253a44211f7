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

pub fn check(
    source: &SourceFile,
    span: Range<usize>,
    path: &Path,
    insecure_allowed: bool,
) -> Option<Diagnostic> {
    let at = |severity, message: String, hint: &str| {
        Some(source.diagnostic(severity, span.clone(), message, Some(hint.to_string())))
    };
    let shown = path.display();
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return at(
                Severity::Warning,
                format!("secret file {shown} does not exist yet"),
                "create it (owner root, mode 0600) before the tunnel is brought up",
            )
        }
        Err(e) => {
            return at(
                Severity::Error,
                format!("cannot examine secret file {shown}: {e}"),
                "check the path and the permissions of its directories",
            )
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
