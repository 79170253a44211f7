//! The daemon's VICI socket (strongSwan's protocol, for `swanctl` and VICI tools). Each
//! client gets a task; its requests go to the daemon's loop as [`Call`]s and the loop's
//! [`Answer`] goes back with the events streamed before it. Events the daemon raises
//! (`ike-updown`, `log`, ...) reach the clients registered for them. Like the control
//! socket it survives its clients: capped connections, a packet cap (charon's 512 KiB), a
//! deadline for each packet once begun, an idle timeout for clients that listen to no
//! event; a malformed or oversized packet is answered with an error and the connection
//! closed.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::{broadcast, mpsc, oneshot};

use super::accept::{self, Capacity};
use super::unix_socket::bind_private;
use crate::vici::codec::{self, Message, Packet};
use crate::vici::messages;

/// Where the daemon serves VICI: charon's socket name in routevpn's run directory, or
/// beside the state file, as the control socket.
pub fn socket_path(state_dir: Option<&Path>) -> std::path::PathBuf {
    state_dir.map_or_else(
        || std::path::PathBuf::from("/run/routevpn/charon.vici"),
        |dir| dir.join("charon.vici"),
    )
}

/// The events a client may register for: those routevpn raises or streams.
pub const EVENTS: &[&str] = &[
    "list-sa",
    "list-conn",
    "list-cert",
    "list-authority",
    "control-log",
    "log",
    "ike-updown",
    "child-updown",
    "ike-rekey",
    "child-rekey",
];

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub clients: usize,
    /// Time a packet has to arrive whole once its length is read, and a write to drain.
    pub packet_timeout: Duration,
    /// A client registered for no event is closed after this long without a request.
    pub idle_timeout: Duration,
    /// Longest packet taken (after its 4-byte length).
    pub packet_bytes: usize,
    /// Longest wait for the daemon's answer (an `initiate` may ask for less).
    pub answer_timeout: Duration,
    pub accept_backoff: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // Monitoring tools keep a connection open for events; leave room beside them.
            clients: 128,
            packet_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            packet_bytes: codec::MAX_PACKET,
            answer_timeout: Duration::from_secs(60),
            accept_backoff: Duration::from_millis(100),
        }
    }
}

/// A command for the daemon's loop.
#[derive(Debug)]
pub struct Call {
    pub command: String,
    pub message: Message,
    pub reply: oneshot::Sender<Answer>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// charon's CMD_UNKNOWN.
    Unknown,
    /// Events streamed to the caller (when it registered for them), then the response.
    Reply {
        events: Vec<(String, Message)>,
        response: Message,
    },
}

/// Binds `path` (mode 0600 from the start) and serves it on a task. `calls` reach the
/// daemon's loop; `events` carries what the daemon raises.
pub fn listen<T: From<Call> + Send + 'static>(
    path: &Path,
    calls: mpsc::Sender<T>,
    events: broadcast::Sender<(String, Message)>,
    limits: Limits,
) -> std::io::Result<Arc<Counters>> {
    let listener = bind_private(path)?;
    let registrations = Arc::new(AtomicU64::new(0));
    let capacity = Capacity {
        clients: limits.clients,
        accept_backoff: limits.accept_backoff,
    };
    let registered = Arc::clone(&registrations);
    let serve = move |stream| {
        let registrations = Arc::clone(&registered);
        serve(
            stream,
            calls.clone(),
            events.subscribe(),
            limits,
            registrations,
        )
    };
    let refuse = move |stream: UnixStream| {
        let busy = format!(
            "routevpn is busy: {} VICI connections are open",
            limits.clients
        );
        refuse_busy(stream, &busy);
    };
    let accept = accept::spawn(listener, "VICI socket", capacity, serve, refuse);
    Ok(Arc::new(Counters {
        accept,
        registrations,
    }))
}

/// What the VICI socket went through, for tests and diagnostics.
#[derive(Debug)]
pub struct Counters {
    pub accept: Arc<accept::Counters>,
    /// Event registrations asked for.
    pub registrations: Arc<AtomicU64>,
}

/// Answers with an error response without waiting and closes (see control_server).
fn refuse_busy(stream: UnixStream, why: &str) {
    use std::io::Write;
    let response = Packet::Response(messages::outcome(Err(why.into())));
    if let (Ok(bytes), Ok(mut stream)) = (codec::encode_packet(&response), stream.into_std()) {
        let _ = stream.write(&bytes);
    }
}

/// What the reader task hands the connection's loop.
enum Read {
    Packet(Packet),
    /// Answered with an error response, then the connection closes.
    Bad(String),
}

/// Reads packets until the client closes or sends something unreadable.
async fn read_packets(mut read: OwnedReadHalf, packets: mpsc::Sender<Read>, limits: Limits) {
    loop {
        let mut length = [0u8; 4];
        // No deadline here: the connection's loop decides how long a client may idle.
        if read.read_exact(&mut length).await.is_err() {
            return;
        }
        let length = usize::try_from(u32::from_be_bytes(length)).unwrap_or(usize::MAX);
        if length > limits.packet_bytes {
            let why = format!(
                "packet of {length} bytes, more than {}",
                limits.packet_bytes
            );
            let _ = packets.send(Read::Bad(why)).await;
            return;
        }
        let mut body = vec![0; length];
        let read_body = tokio::time::timeout(limits.packet_timeout, read.read_exact(&mut body));
        let item = match read_body.await {
            Err(_) => Read::Bad(format!(
                "packet not complete within {} s",
                limits.packet_timeout.as_secs_f64()
            )),
            Ok(Err(_)) => return,
            Ok(Ok(_)) => match codec::decode_packet(&body) {
                Ok(packet) => Read::Packet(packet),
                Err(e) => Read::Bad(format!("malformed VICI packet: {e}")),
            },
        };
        let bad = matches!(item, Read::Bad(_));
        if packets.send(item).await.is_err() || bad {
            return;
        }
    }
}

async fn serve<T: From<Call> + Send + 'static>(
    stream: UnixStream,
    calls: mpsc::Sender<T>,
    mut events: broadcast::Receiver<(String, Message)>,
    limits: Limits,
    registrations: Arc<AtomicU64>,
) {
    let (read, mut write) = stream.into_split();
    let (packets_tx, mut packets) = mpsc::channel(1);
    let reader = tokio::spawn(read_packets(read, packets_tx, limits));
    let mut registered: BTreeSet<String> = BTreeSet::new();
    loop {
        let listening = !registered.is_empty();
        let reply = tokio::select! {
            read = packets.recv() => match read {
                None => break,
                Some(Read::Bad(why)) => {
                    super::log(format_args!("VICI client: {why}; closing its connection"));
                    let error = Packet::Response(messages::outcome(Err(why)));
                    let _ = send(&mut write, &error, limits).await;
                    break;
                }
                Some(Read::Packet(packet)) => {
                    if matches!(packet, Packet::Register(_)) {
                        registrations.fetch_add(1, Ordering::Relaxed);
                    }
                    match handle(packet, &mut registered, &calls, limits).await {
                        Some(replies) => replies,
                        None => break,
                    }
                }
            },
            event = events.recv(), if listening => match event {
                Ok((name, message)) if registered.contains(&name) => {
                    vec![Packet::Event { name, message }]
                }
                Ok(_) => Vec::new(),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    // A client that cannot keep up would hold every event in memory.
                    super::log(format_args!(
                        "VICI client: {missed} events behind; closing its connection"
                    ));
                    break;
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            () = tokio::time::sleep(limits.idle_timeout), if !listening => break,
        };
        let mut sent = true;
        for packet in replies_filtered(reply, &registered) {
            sent = sent && send(&mut write, &packet, limits).await;
        }
        if !sent {
            break;
        }
    }
    reader.abort();
}

/// Streamed events go only to a client registered for them, as charon does.
fn replies_filtered(replies: Vec<Packet>, registered: &BTreeSet<String>) -> Vec<Packet> {
    (replies.into_iter())
        .filter(|p| match p {
            Packet::Event { name, .. } => registered.contains(name),
            _ => true,
        })
        .collect()
}

async fn send(write: &mut OwnedWriteHalf, packet: &Packet, limits: Limits) -> bool {
    let bytes = match codec::encode_packet(packet) {
        Ok(bytes) => bytes,
        Err(e) => {
            super::log(format_args!("VICI: an answer could not be encoded: {e}"));
            let fallback = Packet::Response(messages::outcome(Err(format!(
                "the answer could not be encoded: {e}"
            ))));
            match codec::encode_packet(&fallback) {
                Ok(bytes) => bytes,
                Err(_) => return false,
            }
        }
    };
    let written = tokio::time::timeout(limits.packet_timeout, write.write_all(&bytes)).await;
    matches!(written, Ok(Ok(())))
}

/// The packets that answer `packet`; `None` closes the connection (a client sending what
/// only the daemon sends).
async fn handle<T: From<Call>>(
    packet: Packet,
    registered: &mut BTreeSet<String>,
    calls: &mpsc::Sender<T>,
    limits: Limits,
) -> Option<Vec<Packet>> {
    Some(match packet {
        Packet::Register(name) if EVENTS.contains(&name.as_str()) => {
            registered.insert(name);
            vec![Packet::Confirm]
        }
        Packet::Register(_) => vec![Packet::EventUnknown],
        Packet::Unregister(name) => {
            if registered.remove(&name) {
                vec![Packet::Confirm]
            } else {
                vec![Packet::EventUnknown]
            }
        }
        Packet::Request { command, message } => {
            let wait = answer_wait(&command, &message, limits);
            let (reply, answer) = oneshot::channel();
            let call = Call {
                command,
                message,
                reply,
            };
            calls.send(T::from(call)).await.ok()?;
            match tokio::time::timeout(wait, answer).await {
                Ok(Ok(Answer::Unknown)) => vec![Packet::Unknown],
                Ok(Ok(Answer::Reply { events, response })) => events
                    .into_iter()
                    .map(|(name, message)| Packet::Event { name, message })
                    .chain([Packet::Response(response)])
                    .collect(),
                Ok(Err(_)) => return None,
                Err(_) => vec![Packet::Response(messages::outcome(Err(format!(
                    "no result within {} s",
                    wait.as_secs_f64()
                ))))],
            }
        }
        Packet::Response(_)
        | Packet::Unknown
        | Packet::Confirm
        | Packet::EventUnknown
        | Packet::Event { .. } => return None,
    })
}

/// `initiate`, `terminate` and `rekey` carry charon's `timeout` in milliseconds.
fn answer_wait(command: &str, message: &Message, limits: Limits) -> Duration {
    let asked = matches!(command, "initiate" | "terminate" | "rekey")
        .then(|| message.str("timeout")?.parse::<u64>().ok())
        .flatten()
        .filter(|&ms| ms > 0)
        .map(Duration::from_millis);
    asked.map_or(limits.answer_timeout, |t| t.min(limits.answer_timeout))
}

#[cfg(test)]
#[path = "vici_server_tests.rs"]
mod tests;
