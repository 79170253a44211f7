//! Secret files: owned by root and unreadable by group and others, like ssh keys.
//!
//! The file's metadata is examined, and a PSK's form (never its content) is checked; the
//! key itself is used by the daemon alone and never appears in a diagnostic.

use std::ops::Range;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::diagnostic::{Diagnostic, Severity, SourceFile};
use super::file::{self, FileError};
use crate::ike::crypto::Secret;

/// A secret path as written, resolved against the profile's directory when relative.
pub fn resolve(profile: &Path, written: &Path) -> PathBuf {
    if written.is_absolute() {
        return written.to_path_buf();
    }
    profile
        .parent()
        .map_or_else(|| written.to_path_buf(), |dir| dir.join(written))
}

/// How messages, plans and logs show a secret file's path: only once it names an existing
/// regular file, since until then it may be the key itself, pasted where its name belongs.
pub fn shown_path(path: &Path) -> String {
    if std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        path.display().to_string()
    } else {
        "<redacted>".to_string()
    }
}

/// Keys shorter than this are accepted (strongSwan takes any) but easy to guess.
const SHORT_KEY_BYTES: usize = 16;

/// Examines the secret file `path`, which the profile wrote under `key` (`psk_file`,
/// `manual_keys_file`). The value is quoted only once it is known to name an existing file:
/// until then it may be the key itself, pasted where its file name belongs.
pub fn check(
    source: &SourceFile,
    span: Range<usize>,
    key: &str,
    path: &Path,
    insecure_allowed: bool,
) -> Option<Diagnostic> {
    let at = |severity, message: String, hint: &str| {
        Some(source.diagnostic(severity, span.clone(), message, Some(hint.to_string())))
    };
    let meta = match file::examine(path) {
        Ok(meta) => meta,
        Err(e @ (FileError::NotRegular(_) | FileError::TooLarge)) => {
            return at(
                Severity::Error,
                format!("secret file {} {e}", path.display()),
                &format!("point {key} at a file holding the key"),
            )
        }
        Err(e) if e.is_not_found() => {
            return at(
                Severity::Warning,
                format!("{key}: no such file (value not shown: it may be a key)"),
                &format!(
                    "{key} names the file holding the key, not the key; create that file \
(owner root, mode 0600) before the tunnel is brought up"
                ),
            )
        }
        Err(e) => {
            return at(
                Severity::Error,
                format!("{key}: cannot examine the file (value not shown: it may be a key): {e}"),
                "check the path and the permissions of its directories",
            )
        }
    };
    let shown = path.display();
    if meta.len() == 0 {
        let hint = match key {
            "private_key" => "write our PEM private key into it",
            _ => "write the pre-shared key agreed with the peer into it",
        };
        return at(
            Severity::Error,
            format!("secret file {shown} is empty"),
            hint,
        );
    }
    if !insecure_allowed {
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
    }
    if key != "psk_file" {
        return None;
    }
    let content = match file::read(path) {
        Ok(content) => Secret::new(content),
        // `check` run by a user other than root: the daemon (root) will read it.
        Err(FileError::Io(e)) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return at(
                Severity::Warning,
                format!("secret file {shown}: cannot check the key: {e}"),
                "run routevpn check as root to check the key's form",
            )
        }
        Err(e) => {
            return at(
                Severity::Error,
                format!("secret file {shown}: {e}"),
                "check the file",
            )
        }
    };
    match psk_form(content.expose()) {
        PskForm::Usable { bytes } if bytes < SHORT_KEY_BYTES => at(
            Severity::Warning,
            format!("the key in {shown} is shorter than {SHORT_KEY_BYTES} bytes"),
            "a short pre-shared key can be guessed offline from one captured handshake; use 32 random bytes",
        ),
        PskForm::Usable { .. } => None,
        PskForm::Blank => at(
            Severity::Error,
            format!("secret file {shown} holds only white space"),
            "write the pre-shared key agreed with the peer into it",
        ),
        PskForm::BadHex => at(
            Severity::Error,
            format!("the key in {shown} starts with 0x but is not an even number of hex digits"),
            "write 0x followed by two hex digits per byte, or a key without the 0x prefix",
        ),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum PskForm {
    Usable { bytes: usize },
    Blank,
    BadHex,
}

/// What the daemon will make of a PSK file (one trailing newline is not part of the key).
fn psk_form(content: &[u8]) -> PskForm {
    let key = content
        .strip_suffix(b"\n")
        .map_or(content, |k| k.strip_suffix(b"\r").unwrap_or(k));
    if key.trim_ascii().is_empty() {
        return PskForm::Blank;
    }
    match key.strip_prefix(b"0x") {
        Some(hex) if hex.is_empty() || hex.len() % 2 != 0 => PskForm::BadHex,
        Some(hex) if !hex.iter().all(u8::is_ascii_hexdigit) => PskForm::BadHex,
        Some(hex) => PskForm::Usable {
            bytes: hex.len() / 2,
        },
        None => PskForm::Usable { bytes: key.len() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_secret_file_is_not_named() {
        // Someone wrote the key where its file name belongs.
        let source = SourceFile::new("/nonexistent/t.toml", String::new());
        for written in ["MySecretKey123", "Zm9vYmFy/c2VjcmV0", "/Zm9vYmFy+c2VjcmV0"] {
            let path = resolve(source.path(), Path::new(written));
            let d = check(&source, 0..0, "psk_file", &path, false).unwrap();
            assert_eq!(d.severity, Severity::Warning);
            assert_eq!(
                d.message,
                "psk_file: no such file (value not shown: it may be a key)"
            );
            assert!(!format!("{d} {d:?}").contains(&written[1..]), "{d}");
        }
    }

    #[test]
    fn the_psk_form_is_checked_without_showing_it() {
        assert_eq!(
            psk_form(b"0123456789abcdef\n"),
            PskForm::Usable { bytes: 16 }
        );
        assert_eq!(psk_form(b"0xdeadBEEF\r\n"), PskForm::Usable { bytes: 4 });
        assert_eq!(psk_form(b" \t\n"), PskForm::Blank);
        assert_eq!(psk_form(b"\n\n"), PskForm::Blank);
        assert_eq!(psk_form(b"0xabc"), PskForm::BadHex);
        assert_eq!(psk_form(b"0x"), PskForm::BadHex);
        assert_eq!(psk_form(b"0xzz"), PskForm::BadHex);

        let dir = tempfile::tempdir().unwrap();
        let source = SourceFile::new(dir.path().join("t.toml"), String::new());
        let path = dir.path().join("t.psk");
        let shown = |content: &str| {
            std::fs::write(&path, content).unwrap();
            let d = check(&source, 0..0, "psk_file", &path, true);
            let d = d.map(|d| (d.severity, d.message));
            let key = content.trim();
            assert!(key.is_empty() || !format!("{d:?}").contains(key), "{d:?}");
            d.unwrap_or((Severity::Warning, "-".into()))
        };
        let at = path.display();
        assert_eq!(shown("0x4c6f6e67456e6f7567684b6579313233\n").1, "-");
        assert_eq!(
            shown("0xc0ffeeQQ\n"),
            (
                Severity::Error,
                format!("the key in {at} starts with 0x but is not an even number of hex digits")
            )
        );
        assert_eq!(
            shown("   \n"),
            (
                Severity::Error,
                format!("secret file {at} holds only white space")
            )
        );
        assert_eq!(
            shown("hunter2\n"),
            (
                Severity::Warning,
                format!("the key in {at} is shorter than 16 bytes")
            )
        );
    }
}
