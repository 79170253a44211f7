//! Files that survive a crash at any instant: written to a fresh temporary file beside the
//! target, synced, renamed over it, and the directory synced. Only a directory and files
//! that routevpn's own user owns, that nobody else may write, and that are no symbolic
//! links are trusted: anything else could make routevpn delete or keep what it should not.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{ErrorKind, Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::Serialize;

fn located(path: &Path, why: impl std::fmt::Display) -> String {
    format!("{}: {why}", path.display())
}

/// Refuses what another user could have put there or could still change.
fn check_trusted(path: &Path, meta: &std::fs::Metadata) -> Result<(), String> {
    // SAFETY: geteuid has no arguments and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.file_type().is_symlink() {
        return Err(located(path, "is a symbolic link; refusing to follow it"));
    }
    if meta.uid() != me {
        return Err(located(
            path,
            format!(
                "is owned by uid {}, not by routevpn's user (uid {me})",
                meta.uid()
            ),
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(located(
            path,
            format!(
                "is writable by group or others (mode {:o}); make it 0700 (directory) or 0600",
                meta.mode() & 0o7777
            ),
        ));
    }
    Ok(())
}

fn directory_of(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// The directory holding `path`, created (0700) if missing, and trusted.
pub fn ensure_directory(path: &Path) -> Result<&Path, String> {
    let dir = directory_of(path);
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == ErrorKind::NotFound => {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| located(dir, e))?;
        }
        Err(e) => return Err(located(dir, e)),
        Ok(_) => {}
    }
    let meta = std::fs::symlink_metadata(dir).map_err(|e| located(dir, e))?;
    check_trusted(dir, &meta)?;
    if !meta.is_dir() {
        return Err(located(dir, "is not a directory"));
    }
    Ok(dir)
}

/// Whether `path` exists, after checking it (and its directory) can be trusted.
fn check_file(path: &Path) -> Result<bool, String> {
    let dir = directory_of(path);
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(located(dir, e)),
        Ok(meta) => check_trusted(dir, &meta)?,
    }
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(located(path, e)),
        Ok(meta) => {
            check_trusted(path, &meta)?;
            if !meta.is_file() {
                return Err(located(path, "is not a regular file"));
            }
            Ok(true)
        }
    }
}

/// Opens an existing trusted file without following a symbolic link put there since.
pub fn open_trusted(path: &Path, options: &mut OpenOptions) -> Result<Option<File>, String> {
    if !check_file(path)? {
        return Ok(None);
    }
    match options
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(file) => Ok(Some(file)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(located(path, e)),
    }
}

/// The file's bytes; `None` when it does not exist.
pub fn read(path: &Path) -> Result<Option<Vec<u8>>, String> {
    let Some(mut file) = open_trusted(path, OpenOptions::new().read(true))? else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(|e| located(path, e))?;
    Ok(Some(bytes))
}

fn sync_directory(dir: &Path) -> Result<(), String> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| located(dir, format!("syncing the directory: {e}")))
}

/// Replaces `path` with `bytes` so that a crash leaves either the old or the new content.
pub fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let dir = ensure_directory(path)?;
    check_file(path)?;
    let name = path
        .file_name()
        .ok_or_else(|| located(path, "names no file"))?
        .to_string_lossy();
    let tmp = dir.join(format!(".{name}.{:016x}.tmp", rand::random::<u64>()));
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(located(path, e));
    }
    sync_directory(dir)
}

pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), String> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| located(path, e))?;
    write(path, &bytes)
}

/// Moves a file routevpn cannot use to `<name>.corrupt-<unix time>`, keeping it for a human.
pub fn set_aside(path: &Path) -> Result<PathBuf, String> {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let base = format!("{}.corrupt-{seconds}", path.display());
    let mut kept = PathBuf::from(&base);
    let mut n = 1;
    while std::fs::symlink_metadata(&kept).is_ok() {
        kept = PathBuf::from(format!("{base}-{n}"));
        n += 1;
    }
    std::fs::rename(path, &kept).map_err(|e| located(path, format!("setting it aside: {e}")))?;
    sync_directory(directory_of(path))?;
    Ok(kept)
}
