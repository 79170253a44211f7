//! The daemon's side of the control socket: one JSON request line per connection, one JSON
//! response line. Clients cannot wear the daemon down: the accept loop (accept.rs)
//! survives its errors, at most `clients` connections are served at once (the rest are
//! told "busy" and closed at once), a request line is capped in length and must arrive
//! within `request_timeout`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};

use super::accept::{self, Capacity, Counters};
use super::control::{Request, Response};
use super::sockets::Inbound;
use super::unix_socket::bind_private;
use super::UP_WAIT;

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections served at once.
    pub clients: usize,
    /// Time a client has to send its request line, and to take the answer.
    pub request_timeout: Duration,
    /// Longest request line, newline included.
    pub request_bytes: usize,
    /// Pause after a failed accept, so that a full file table is not polled in a loop.
    pub accept_backoff: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            clients: 64,
            request_timeout: Duration::from_secs(10),
            request_bytes: 64 * 1024,
            accept_backoff: Duration::from_millis(100),
        }
    }
}

/// Binds the control socket (mode 0600 from the start) and serves it on a task.
pub fn listen(
    path: &Path,
    inbound: mpsc::Sender<Inbound>,
    limits: Limits,
) -> std::io::Result<Arc<Counters>> {
    let listener = bind_private(path)?;
    let capacity = Capacity {
        clients: limits.clients,
        accept_backoff: limits.accept_backoff,
    };
    let serve = move |stream| serve(stream, inbound.clone(), limits);
    let refuse = move |stream| refuse_busy(stream, limits.clients);
    Ok(accept::spawn(
        listener,
        "control socket",
        capacity,
        serve,
        refuse,
    ))
}

/// Answers "busy" without waiting: the answer fits any socket buffer, and a client that
/// does not read it loses it rather than holding the daemon. Written with a plain
/// non-blocking write: tokio's `try_write` refuses until the reactor has seen the socket
/// writable once.
fn refuse_busy(stream: UnixStream, clients: usize) {
    use std::io::Write;
    let busy = Response::error(format!(
        "the daemon is busy: {clients} control connections are open; try again"
    ));
    if let (Ok(text), Ok(mut stream)) = (serde_json::to_string(&busy), stream.into_std()) {
        let _ = stream.write(format!("{text}\n").as_bytes());
    }
}

/// Why a request line could not be read.
pub(super) enum BadLine {
    TooLong,
    TimedOut,
    Closed,
}

/// Reads one line of at most `limits.request_bytes`, within `limits.request_timeout`.
async fn read_request(read: impl AsyncRead + Unpin, limits: Limits) -> Result<Vec<u8>, BadLine> {
    let cap = u64::try_from(limits.request_bytes).unwrap_or(u64::MAX);
    let mut bounded = BufReader::new(read.take(cap));
    let mut line = Vec::new();
    match tokio::time::timeout(limits.request_timeout, bounded.read_until(b'\n', &mut line)).await {
        Err(_) => Err(BadLine::TimedOut),
        Ok(Err(_)) | Ok(Ok(0)) => Err(BadLine::Closed),
        Ok(Ok(_)) if line.ends_with(b"\n") => Ok(line),
        Ok(Ok(_)) if line.len() >= limits.request_bytes => Err(BadLine::TooLong),
        // The client closed its side without a newline: take what it sent.
        Ok(Ok(_)) => Ok(line),
    }
}

async fn serve(stream: UnixStream, inbound: mpsc::Sender<Inbound>, limits: Limits) {
    let (read, mut write) = stream.into_split();
    let response = match read_request(read, limits).await {
        Err(BadLine::Closed) => return,
        Err(BadLine::TimedOut) => Response::error(format!(
            "no request line within {} s",
            limits.request_timeout.as_secs_f64()
        )),
        Err(BadLine::TooLong) => Response::error(format!(
            "request longer than {} bytes",
            limits.request_bytes
        )),
        Ok(line) => match serde_json::from_slice::<Request>(&line) {
            Err(e) => Response::error(format!("bad request: {e}")),
            Ok(request) => match ask(request, &inbound).await {
                Some(response) => response,
                None => return,
            },
        },
    };
    if let Ok(mut text) = serde_json::to_string(&response) {
        text.push('\n');
        let _ =
            tokio::time::timeout(limits.request_timeout, write.write_all(text.as_bytes())).await;
    }
}

/// Hands the request to the daemon's loop and waits for its answer; `None` when the
/// daemon is stopping.
async fn ask(request: Request, inbound: &mpsc::Sender<Inbound>) -> Option<Response> {
    let (reply, answer) = oneshot::channel();
    inbound
        .send(Inbound::Control { request, reply })
        .await
        .ok()?;
    Some(match tokio::time::timeout(UP_WAIT, answer).await {
        Ok(Ok(response)) => response,
        Ok(Err(_)) => Response::error("the daemon dropped the request"),
        Err(_) => Response::error("no result yet: still negotiating (see routevpn status)"),
    })
}

#[cfg(test)]
#[path = "control_server_tests.rs"]
mod tests;
