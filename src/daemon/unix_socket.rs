//! Binding the daemon's Unix sockets (control, VICI, metrics) with their final mode and no
//! umask window.

use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::Path;

use tokio::net::UnixListener;

/// Binds inside a fresh 0700 directory beside `path`, sets the socket's mode there and
/// renames it into place: nobody else can connect during the window in which the socket
/// has the umask's mode. The rename also replaces a stale socket atomically.
pub(super) fn bind_private(path: &Path) -> std::io::Result<UnixListener> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    refuse_live_or_foreign(path)?;
    let private = dir.join(format!(".routevpn-bind.{}", std::process::id()));
    std::fs::DirBuilder::new().mode(0o700).create(&private)?;
    let bound = bind_then_rename(&private.join("socket"), path);
    let _ = std::fs::remove_dir_all(&private);
    bound
}

fn bind_then_rename(staging: &Path, path: &Path) -> std::io::Result<UnixListener> {
    let listener = UnixListener::bind(staging)?;
    std::fs::set_permissions(staging, std::fs::Permissions::from_mode(0o600))?;
    std::fs::rename(staging, path)?;
    Ok(listener)
}

/// What may be at `path` before binding: nothing, or a socket nobody answers on (left by a
/// daemon that was killed). Anything else is not ours to replace.
fn refuse_live_or_foreign(path: &Path) -> std::io::Result<()> {
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !metadata.file_type().is_socket() {
        return Err(std::io::Error::new(
            ErrorKind::AlreadyExists,
            "exists and is not a socket; not replacing it",
        ));
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(std::io::Error::new(
            ErrorKind::AddrInUse,
            "another routevpn daemon answers there",
        ));
    }
    Ok(())
}
