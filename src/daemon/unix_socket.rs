//! What the daemon's Unix sockets (control and VICI) share: binding with the final mode
//! and no umask window, and an accept loop that survives its errors and caps its clients.

use std::future::Future;
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;

use super::log;

/// What the accept loop went through, for tests and diagnostics.
#[derive(Debug, Default)]
pub struct Counters {
    pub failed_accepts: AtomicU64,
    pub busy: AtomicU64,
    /// Event registrations asked for (VICI).
    pub registrations: AtomicU64,
}

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

/// How a socket's accept loop runs.
pub(super) struct Accept {
    /// The socket, for log lines.
    pub what: &'static str,
    /// Connections served at once; the rest are refused at once.
    pub clients: usize,
    /// Pause after a failed accept, so that a full file table is not polled in a loop.
    pub backoff: Duration,
}

impl Accept {
    /// Serves each connection on its own task with `serve`, or hands it to `refuse` when
    /// `clients` are served already. Never returns: accept errors back off and go on.
    pub async fn run<S, F, R>(
        self,
        listener: UnixListener,
        counters: Arc<Counters>,
        serve: S,
        refuse: R,
    ) where
        S: Fn(UnixStream) -> F,
        F: Future<Output = ()> + Send + 'static,
        R: Fn(UnixStream),
    {
        let what = self.what;
        let slots = Arc::new(Semaphore::new(self.clients));
        let mut failures: u64 = 0;
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    if failures > 0 {
                        log(format_args!(
                            "{what}: accepting again after {failures} failed accept(s)"
                        ));
                        failures = 0;
                    }
                    match Arc::clone(&slots).try_acquire_owned() {
                        Ok(slot) => {
                            let served = serve(stream);
                            tokio::spawn(async move {
                                served.await;
                                drop(slot);
                            });
                        }
                        Err(_) => {
                            counters.busy.fetch_add(1, Ordering::Relaxed);
                            refuse(stream);
                        }
                    }
                }
                Err(e) => {
                    // One line per burst: a full file table would otherwise flood the log.
                    if failures == 0 {
                        log(format_args!(
                            "{what}: accept failed: {e}; retrying every {} ms",
                            self.backoff.as_millis()
                        ));
                    }
                    failures += 1;
                    counters.failed_accepts.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(self.backoff).await;
                }
            }
        }
    }
}
