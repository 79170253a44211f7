//! The metrics listener (`routevpn daemon --metrics ADDRESS`): `GET /metrics` over a
//! minimal HTTP/1.1, one request per connection. Like the control socket it cannot be worn
//! down: clients capped (the rest get 503 at once), the request head capped in length and
//! due within a timeout, answers written within it too. The exposition is made by the
//! daemon's loop, which owns the state.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};

use super::exposition::CONTENT_TYPE;
use crate::daemon::accept::{self, Capacity, Counters};
use crate::daemon::sockets::Inbound;

/// Where the metrics are served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Address {
    Tcp(SocketAddr),
    /// Mode 0600, like the control socket: root's (a local agent scrapes it).
    Unix(PathBuf),
}

impl FromStr for Address {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("unix: needs a path, as in unix:/run/routevpn/metrics.sock".into());
            }
            return Ok(Address::Unix(PathBuf::from(path)));
        }
        s.parse().map(Address::Tcp).map_err(|_| {
            format!("{s:?} is neither ADDRESS:PORT (127.0.0.1:9505, [::1]:9505) nor unix:PATH")
        })
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Address::Tcp(a) => write!(f, "http://{a}/metrics"),
            Address::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub clients: usize,
    /// Time a client has to send its request head, and to take the answer.
    pub request_timeout: Duration,
    /// Longest request head (request line and headers).
    pub head_bytes: usize,
    pub accept_backoff: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            clients: 16,
            request_timeout: Duration::from_secs(10),
            head_bytes: 8 * 1024,
            accept_backoff: Duration::from_millis(100),
        }
    }
}

/// Binds `address` and serves it on a task.
pub fn listen(
    address: &Address,
    inbound: mpsc::Sender<Inbound>,
    limits: Limits,
) -> std::io::Result<Arc<Counters>> {
    let capacity = Capacity {
        clients: limits.clients,
        accept_backoff: limits.accept_backoff,
    };
    const WHAT: &str = "metrics listener";
    Ok(match address {
        Address::Tcp(a) => {
            let std_listener = std::net::TcpListener::bind(a)?;
            std_listener.set_nonblocking(true)?;
            let listener = tokio::net::TcpListener::from_std(std_listener)?;
            let serve = move |stream| serve(stream, inbound.clone(), limits);
            let refuse = |stream: tokio::net::TcpStream| refuse_busy(stream.into_std());
            accept::spawn(listener, WHAT, capacity, serve, refuse)
        }
        Address::Unix(path) => {
            let listener = crate::daemon::unix_socket::bind_private(path)?;
            let serve = move |stream| serve(stream, inbound.clone(), limits);
            let refuse = |stream: tokio::net::UnixStream| refuse_busy(stream.into_std());
            accept::spawn(listener, WHAT, capacity, serve, refuse)
        }
    })
}

/// One HTTP answer, always closing the connection.
struct Answer {
    status: &'static str,
    content_type: &'static str,
    body: String,
    allow: bool,
}

impl Answer {
    fn text(status: &'static str, body: impl Into<String>) -> Answer {
        Answer {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into() + "\n",
            allow: false,
        }
    }

    fn bytes(&self, with_body: bool) -> Vec<u8> {
        let allow = if self.allow {
            "Allow: GET, HEAD\r\n"
        } else {
            ""
        };
        let mut out = format!(
            "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
            self.status,
            self.content_type,
            self.body.len()
        )
        .into_bytes();
        if with_body {
            out.extend_from_slice(self.body.as_bytes());
        }
        out
    }
}

const BUSY: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// Answers 503 without waiting: it fits any socket buffer, and a client that does not
/// read it loses it rather than holding the daemon. What the client already sent is read
/// first (without waiting): TCP resets a connection closed with unread data, and the
/// reset can overtake the answer.
fn refuse_busy<S: std::io::Read + std::io::Write>(stream: std::io::Result<S>) {
    if let Ok(mut stream) = stream {
        let mut sent = [0; 4096];
        let _ = stream.read(&mut sent);
        let _ = stream.write(BUSY);
    }
}

/// Why no request could be read.
#[derive(Debug, PartialEq, Eq)]
enum BadHead {
    TooLong,
    TimedOut,
    Malformed,
    Closed,
}

#[derive(Debug, PartialEq, Eq)]
struct RequestLine {
    method: String,
    path: String,
}

/// Reads the request head (up to the blank line) within the limits, and parses its
/// request line. Headers are not needed: they are read only to be bounded.
async fn read_head(read: impl AsyncRead + Unpin, limits: Limits) -> Result<RequestLine, BadHead> {
    let cap = u64::try_from(limits.head_bytes).unwrap_or(u64::MAX);
    let mut bounded = BufReader::new(read.take(cap));
    let reading = async {
        let mut first = Vec::new();
        let mut line = Vec::new();
        loop {
            line.clear();
            match bounded.read_until(b'\n', &mut line).await {
                Ok(0) | Err(_) if first.is_empty() => return Err(BadHead::Closed),
                Ok(_) if line.ends_with(b"\n") => {}
                // Cut by the cap, or the client stopped halfway.
                Ok(_) if bounded.get_ref().limit() == 0 => return Err(BadHead::TooLong),
                Ok(_) | Err(_) => return Err(BadHead::Malformed),
            }
            if first.is_empty() {
                first = std::mem::take(&mut line);
            } else if line == b"\r\n" || line == b"\n" {
                return parse_request_line(&first);
            }
        }
    };
    tokio::time::timeout(limits.request_timeout, reading)
        .await
        .unwrap_or(Err(BadHead::TimedOut))
}

fn parse_request_line(line: &[u8]) -> Result<RequestLine, BadHead> {
    let text = std::str::from_utf8(line).map_err(|_| BadHead::Malformed)?;
    let mut parts = text.trim_end_matches(['\r', '\n']).split(' ');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(method), Some(target), Some(version), None)
            if !method.is_empty() && target.starts_with('/') && version.starts_with("HTTP/1.") =>
        {
            let path = target.split('?').next().unwrap_or(target);
            Ok(RequestLine {
                method: method.to_owned(),
                path: path.to_owned(),
            })
        }
        _ => Err(BadHead::Malformed),
    }
}

async fn serve(
    stream: impl AsyncRead + AsyncWrite + Unpin,
    inbound: mpsc::Sender<Inbound>,
    limits: Limits,
) {
    let (read, mut write) = tokio::io::split(stream);
    let (answer, with_body) = match read_head(read, limits).await {
        Err(BadHead::Closed) => return,
        Err(BadHead::TimedOut) => (
            Answer::text(
                "408 Request Timeout",
                format!(
                    "no request within {} s",
                    limits.request_timeout.as_secs_f64()
                ),
            ),
            true,
        ),
        Err(BadHead::TooLong) => (
            Answer::text(
                "431 Request Header Fields Too Large",
                format!("request head longer than {} bytes", limits.head_bytes),
            ),
            true,
        ),
        Err(BadHead::Malformed) => (Answer::text("400 Bad Request", "bad request"), true),
        Ok(request) => {
            let head = request.method == "HEAD";
            let answer = if request.method != "GET" && !head {
                Answer {
                    allow: true,
                    ..Answer::text("405 Method Not Allowed", "only GET and HEAD")
                }
            } else if request.path != "/metrics" {
                Answer::text("404 Not Found", "the metrics are at /metrics")
            } else {
                match exposition(&inbound).await {
                    Some(Ok(text)) => Answer {
                        status: "200 OK",
                        content_type: CONTENT_TYPE,
                        body: text,
                        allow: false,
                    },
                    // Never an empty scrape for a state that could not be read.
                    Some(Err(e)) => Answer::text("503 Service Unavailable", e),
                    None => return,
                }
            };
            (answer, !head)
        }
    };
    let bytes = answer.bytes(with_body);
    let _ = tokio::time::timeout(limits.request_timeout, async {
        write.write_all(&bytes).await?;
        write.shutdown().await
    })
    .await;
}

/// Asks the daemon's loop for the exposition; `None` when the daemon is stopping.
async fn exposition(inbound: &mpsc::Sender<Inbound>) -> Option<Result<String, String>> {
    let (reply, answer) = oneshot::channel();
    inbound.send(Inbound::Metrics { reply }).await.ok()?;
    answer.await.ok()
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
