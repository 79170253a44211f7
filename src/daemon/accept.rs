//! The accept loop the daemon's servers share (control socket, metrics): it survives its
//! errors (EMFILE and friends back it off), serves at most `clients` connections at once
//! and hands the rest to `refuse` at once, without waiting for them.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::{log, logging};

/// A listening socket of either family.
pub trait Listener: Send + 'static {
    type Stream: Send + 'static;
    fn accept_one(&self) -> impl Future<Output = std::io::Result<Self::Stream>> + Send;
}

impl Listener for tokio::net::UnixListener {
    type Stream = tokio::net::UnixStream;
    async fn accept_one(&self) -> std::io::Result<Self::Stream> {
        self.accept().await.map(|(stream, _)| stream)
    }
}

impl Listener for tokio::net::TcpListener {
    type Stream = tokio::net::TcpStream;
    async fn accept_one(&self) -> std::io::Result<Self::Stream> {
        self.accept().await.map(|(stream, _)| stream)
    }
}

/// What an accept loop went through, for tests and diagnostics.
#[derive(Debug, Default)]
pub struct Counters {
    pub failed_accepts: AtomicU64,
    pub busy: AtomicU64,
}

/// How many clients at once, and the pause after a failed accept (so that a full file
/// table is not polled in a loop).
#[derive(Clone, Copy, Debug)]
pub struct Capacity {
    pub clients: usize,
    pub accept_backoff: Duration,
}

/// Serves `listener` on a task: `serve` for each connection while a slot is free,
/// `refuse` (which must not wait) otherwise. `what` names the socket in the log.
pub fn spawn<L, S, F, R>(
    listener: L,
    what: &'static str,
    capacity: Capacity,
    serve: S,
    refuse: R,
) -> Arc<Counters>
where
    L: Listener,
    S: Fn(L::Stream) -> F + Send + 'static,
    F: Future<Output = ()> + Send + 'static,
    R: Fn(L::Stream) + Send + 'static,
{
    let counters = Arc::new(Counters::default());
    let seen = Arc::clone(&counters);
    tokio::spawn(async move {
        let slots = Arc::new(Semaphore::new(capacity.clients));
        let mut failures: u64 = 0;
        loop {
            match listener.accept_one().await {
                Ok(stream) => {
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
                            seen.busy.fetch_add(1, Ordering::Relaxed);
                            refuse(stream);
                        }
                    }
                }
                Err(e) => {
                    // One line per burst: a full file table would otherwise flood the log.
                    if failures == 0 {
                        logging::error(
                            logging::DAEMON,
                            format_args!(
                                "{what}: accept failed: {e}; retrying every {} ms",
                                capacity.accept_backoff.as_millis()
                            ),
                        );
                    }
                    failures += 1;
                    seen.failed_accepts.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(capacity.accept_backoff).await;
                }
            }
        }
    });
    counters
}
