//! One routevpn at a time: `flock` on files in the state directory. The holder writes its
//! pid and command into the file, so whoever waits can say for whom. The kernel releases
//! the lock when its holder exits, however it exits.

use std::fs::{File, OpenOptions};
use std::io::Read as _;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use super::durable;

/// A held lock, released when dropped.
#[derive(Debug)]
pub struct Held {
    _file: File,
}

fn flock(file: &File, operation: libc::c_int) -> std::io::Result<()> {
    loop {
        // SAFETY: flock on a descriptor this function borrows; no memory is passed.
        if unsafe { libc::flock(file.as_raw_fd(), operation) } == 0 {
            return Ok(());
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

fn would_block(error: &std::io::Error) -> bool {
    error.raw_os_error() == Some(libc::EWOULDBLOCK)
}

fn open(path: &Path) -> Result<File, String> {
    durable::ensure_directory(path)?;
    if let Some(file) = durable::open_trusted(path, OpenOptions::new().read(true).write(true))? {
        return Ok(file);
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// "pid N, `command`" as the holder recorded it.
fn holder(mut file: &File) -> String {
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    match text.trim().split_once(' ') {
        Some((pid, command)) => format!("pid {pid}, `{command}`"),
        None => "pid unknown".into(),
    }
}

fn record(file: File, command: &str) -> Held {
    // Only a courtesy to whoever waits: failing to write it does not undo the lock.
    let _ = file.set_len(0);
    let _ = file.write_at(format!("{} {command}\n", std::process::id()).as_bytes(), 0);
    Held { _file: file }
}

/// Waits for the lock at `path`; if someone holds it, `waiting` hears once for whom.
pub fn exclusive(path: &Path, command: &str, waiting: impl FnOnce(&str)) -> Result<Held, String> {
    let file = open(path)?;
    let locking = |e: std::io::Error| format!("{}: locking: {e}", path.display());
    match flock(&file, libc::LOCK_EX | libc::LOCK_NB) {
        Ok(()) => {}
        Err(e) if would_block(&e) => {
            waiting(&format!(
                "waiting for another routevpn ({}) to finish…",
                holder(&file)
            ));
            flock(&file, libc::LOCK_EX).map_err(locking)?;
        }
        Err(e) => return Err(locking(e)),
    }
    Ok(record(file, command))
}

/// Takes the lock at `path` now, or says who holds it.
pub fn try_exclusive(path: &Path, command: &str) -> Result<Held, String> {
    let file = open(path)?;
    match flock(&file, libc::LOCK_EX | libc::LOCK_NB) {
        Ok(()) => Ok(record(file, command)),
        Err(e) if would_block(&e) => Err(format!(
            "{} is held by another routevpn ({})",
            path.display(),
            holder(&file)
        )),
        Err(e) => Err(format!("{}: locking: {e}", path.display())),
    }
}

/// Who holds the lock at `path`, if anyone.
pub fn holder_of(path: &Path) -> Result<Option<String>, String> {
    let Some(file) = durable::open_trusted(path, OpenOptions::new().read(true))? else {
        return Ok(None);
    };
    match flock(&file, libc::LOCK_SH | libc::LOCK_NB) {
        Ok(()) => Ok(None),
        Err(e) if would_block(&e) => Ok(Some(holder(&file))),
        Err(e) => Err(format!("{}: locking: {e}", path.display())),
    }
}
