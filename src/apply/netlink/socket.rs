//! A synchronous netlink socket that pipelines requests: send a window of messages, packed
//! several to a datagram, then read one acknowledgement per message. The kernel handles them
//! in order, so a batch of thousands costs a few system calls instead of a round trip each.
//!
//! Every answer is matched to its request by sequence number, so whatever an interrupted
//! exchange left in the socket is skipped rather than taken for the next one's answer.

use std::fmt::Debug;
use std::io;
use std::os::fd::AsRawFd;

use netlink_packet_core::{
    DecodeError, ErrorMessage, NetlinkBuffer, NetlinkDeserializable, NetlinkHeader, NetlinkMessage,
    NetlinkPayload, NetlinkSerializable, NlasIterator, Parseable, NLM_F_ACK, NLM_F_ACK_TLVS,
    NLM_F_CAPPED, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_sys::{Socket as RawSocket, SocketAddr};

/// Requests in flight at most; fewer if the receive buffer could not be made large enough.
const MAX_WINDOW: usize = 512;
const RECEIVE_BUFFER: usize = 8 << 20;
/// What one queued acknowledgement costs against the receive buffer (its skb's true size,
/// with room for an extended-ack text). An ack that does not fit is dropped by the kernel
/// after the request took effect, so the window must stay below buffer / cost.
const ACK_COST: usize = 2048;
/// Requests are packed into datagrams of about this size; the kernel acknowledges each.
const DATAGRAM: usize = 32 << 10;
/// No answer for this long means it was lost (see `batch`): better an error than a hang.
const RECEIVE_TIMEOUT: libc::time_t = 60;
/// NLMSGERR_ATTR_MSG: the human-readable text of an extended acknowledgement.
const EXT_ACK_MESSAGE: u16 = 1;

/// The kernel's refusal of one request: its errno and, if it said more, its explanation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nack {
    pub errno: i32,
    pub message: Option<String>,
}

impl std::fmt::Display for Nack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // "File exists", without Rust's " (os error 17)".
        let text = io::Error::from_raw_os_error(self.errno).to_string();
        let text = text.split(" (os error").next().unwrap_or(&text);
        match &self.message {
            Some(m) => write!(f, "{text}: {m}"),
            None => f.write_str(text),
        }
    }
}

impl std::error::Error for Nack {}

impl Nack {
    fn from_error(flags: u16, error: &ErrorMessage) -> Nack {
        let message = (flags & NLM_F_ACK_TLVS != 0)
            .then(|| ext_ack_message(flags, &error.header))
            .flatten();
        Nack {
            errno: error.raw_code().saturating_abs(),
            message,
        }
    }

    fn into_io(self) -> io::Error {
        io::Error::new(io::Error::from_raw_os_error(self.errno).kind(), self)
    }
}

/// The errno behind an error from this module: a refusal or a failed system call.
pub fn errno(error: &io::Error) -> Option<i32> {
    error.raw_os_error().or_else(|| {
        error
            .get_ref()
            .and_then(|e| e.downcast_ref::<Nack>())
            .map(|n| n.errno)
    })
}

/// The payload of an error message is the request's header (and body, unless capped),
/// then the extended-ack attributes.
fn ext_ack_message(flags: u16, payload: &[u8]) -> Option<String> {
    let request_len = if flags & NLM_F_CAPPED != 0 {
        16
    } else {
        u32::from_ne_bytes(payload.get(0..4)?.try_into().ok()?) as usize
    };
    let attributes = payload.get(align(request_len)..)?;
    for nla in NlasIterator::new(attributes) {
        let nla = nla.ok()?;
        if nla.kind() == EXT_ACK_MESSAGE {
            let value = nla.value();
            let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
            return Some(String::from_utf8_lossy(&value[..end]).into_owned());
        }
    }
    None
}

/// Where the next message of a netlink datagram starts (NLMSG_ALIGN).
pub(crate) fn align(length: usize) -> usize {
    (length + 3) & !3
}

fn invalid(e: DecodeError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

pub struct Socket<M> {
    raw: RawSocket,
    sequence: u32,
    window: usize,
    buffer: Vec<u8>,
    _message: std::marker::PhantomData<M>,
}

fn set_option<T>(raw: &RawSocket, name: libc::c_int, value: &T) -> bool {
    // SAFETY: a valid descriptor, and a pointer to a live value of the length given.
    let rc = unsafe {
        libc::setsockopt(
            raw.as_raw_fd(),
            libc::SOL_SOCKET,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    rc == 0
}

/// Raises the receive buffer past `rmem_max` where allowed (root), else as far as it goes.
fn grow_receive_buffer(raw: &RawSocket) {
    let size = RECEIVE_BUFFER as libc::c_int;
    if !set_option(raw, libc::SO_RCVBUFFORCE, &size) {
        let _ = raw.set_rx_buf_sz(RECEIVE_BUFFER);
    }
}

/// As many requests in flight as the receive buffer has room for acknowledgements.
fn window(raw: &RawSocket) -> usize {
    raw.get_rx_buf_sz()
        .map_or(8, |size| size / ACK_COST)
        .clamp(8, MAX_WINDOW)
}

impl<M> Socket<M>
where
    M: NetlinkSerializable + NetlinkDeserializable + Debug,
{
    pub fn open(protocol: isize) -> io::Result<Self> {
        let mut raw = RawSocket::new(protocol)?;
        raw.bind_auto()?;
        raw.connect(&SocketAddr::new(0, 0))?;
        grow_receive_buffer(&raw);
        let timeout = libc::timeval {
            tv_sec: RECEIVE_TIMEOUT,
            tv_usec: 0,
        };
        set_option(&raw, libc::SO_RCVTIMEO, &timeout);
        // Acks without the request echoed back cost less buffer; ext acks explain refusals.
        let _ = raw.set_cap_ack(true);
        let _ = raw.set_ext_ack(true);
        let window = window(&raw);
        Ok(Socket {
            raw,
            sequence: 0,
            window,
            buffer: Vec::with_capacity(256 << 10),
            _message: Default::default(),
        })
    }

    fn encode(&mut self, flags: u16, message: M) -> (u32, Vec<u8>) {
        self.sequence = self.sequence.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags | NLM_F_REQUEST;
        header.sequence_number = self.sequence;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
        packet.finalize();
        // Padded, so that messages can follow each other in one datagram.
        let mut bytes = vec![0; align(packet.buffer_len())];
        packet.serialize(&mut bytes);
        (self.sequence, bytes)
    }

    /// Reads datagrams and hands each message to `each` until it returns `true`. A message
    /// that fails to decode is handed over as an error with its header, so the caller can
    /// tell whose it was and go on reading.
    fn receive(
        &mut self,
        mut each: impl FnMut(&NetlinkHeader, Result<NetlinkPayload<M>, DecodeError>) -> bool,
    ) -> io::Result<()> {
        loop {
            self.buffer.clear();
            let n = self.raw.recv(&mut self.buffer, 0)?;
            let mut offset = 0;
            while offset < n {
                let bytes = &self.buffer[offset..n];
                let frame = NetlinkBuffer::new_checked(bytes).map_err(invalid)?;
                let length = frame.length() as usize;
                let header = NetlinkHeader::parse(&frame).map_err(invalid)?;
                let payload = NetlinkMessage::<M>::deserialize(&bytes[..length]).map(|m| m.payload);
                offset += align(length);
                if each(&header, payload) {
                    return Ok(());
                }
            }
        }
    }

    /// Sends every request with an acknowledgement asked for; one result per request, in order.
    pub fn batch(&mut self, requests: Vec<(u16, M)>) -> Vec<io::Result<()>> {
        let mut results: Vec<io::Result<()>> = Vec::with_capacity(requests.len());
        let mut requests = requests.into_iter().peekable();
        while requests.peek().is_some() {
            let first = self.sequence.wrapping_add(1);
            // (requests in it, bytes)
            let mut datagrams: Vec<(usize, Vec<u8>)> = Vec::new();
            let mut count = 0;
            for (flags, message) in requests.by_ref().take(self.window) {
                let (_, bytes) = self.encode(flags | NLM_F_ACK, message);
                match datagrams.last_mut() {
                    Some((n, datagram)) if datagram.len() + bytes.len() <= DATAGRAM => {
                        datagram.extend_from_slice(&bytes);
                        *n += 1;
                    }
                    _ => datagrams.push((1, bytes)),
                }
                count += 1;
            }
            let mut pending: Vec<Option<io::Result<()>>> = (0..count).map(|_| None).collect();
            let mut sent = 0;
            for (n, datagram) in &datagrams {
                match self.raw.send(datagram, 0) {
                    Ok(_) => sent += n,
                    Err(e) => {
                        for slot in &mut pending[sent..sent + n] {
                            *slot = Some(Err(io::Error::new(e.kind(), e.to_string())));
                        }
                        break;
                    }
                }
            }
            let mut acked = 0;
            let outcome = if sent == 0 {
                Ok(())
            } else {
                self.receive(|header, payload| {
                    let index = header.sequence_number.wrapping_sub(first) as usize;
                    if let Ok(NetlinkPayload::Error(error)) = payload {
                        if index < sent && pending[index].is_none() {
                            pending[index] = Some(match error.code {
                                None => Ok(()),
                                Some(_) => Err(Nack::from_error(header.flags, &error).into_io()),
                            });
                            acked += 1;
                        }
                    }
                    acked == sent
                })
            };
            // Acknowledgements lost (the receive buffer overflowed, or none came in time):
            // those requests may or may not have taken effect, and nothing more is sent
            // until the socket is drained, or the kernel would keep dropping its answers.
            let lost = outcome.is_err();
            if let Err(e) = outcome {
                for slot in pending[..sent].iter_mut().filter(|p| p.is_none()) {
                    *slot = Some(Err(io::Error::new(
                        e.kind(),
                        format!("acknowledgement lost ({e}); the request may have taken effect"),
                    )));
                }
                self.drain();
            }
            let failed_send = sent < count || lost;
            results.extend(pending.into_iter().map(|p| {
                p.unwrap_or_else(|| {
                    Err(io::Error::new(
                        io::ErrorKind::Interrupted,
                        "not sent after an earlier failure",
                    ))
                })
            }));
            if failed_send {
                results.extend(requests.by_ref().map(|_| {
                    Err(io::Error::new(
                        io::ErrorKind::Interrupted,
                        "not sent after an earlier failure",
                    ))
                }));
            }
        }
        results
    }

    /// Discards whatever is queued, which also clears the kernel's congestion mark.
    fn drain(&mut self) {
        loop {
            self.buffer.clear();
            if self.raw.recv(&mut self.buffer, libc::MSG_DONTWAIT).is_err() {
                break;
            }
        }
    }

    /// A dump request: every message the kernel answers with. The whole dump is read even if
    /// a message fails to decode, so nothing of it is left behind; then the error is returned.
    pub fn dump(&mut self, request: M) -> io::Result<Vec<M>> {
        let (sequence, bytes) = self.encode(NLM_F_DUMP, request);
        self.raw.send(&bytes, 0)?;
        self.collect(sequence)
    }

    /// A request answered by messages (route get, SPI allocation) or an error.
    pub fn request(&mut self, flags: u16, request: M) -> io::Result<Vec<M>> {
        let (sequence, bytes) = self.encode(flags | NLM_F_ACK, request);
        self.raw.send(&bytes, 0)?;
        self.collect(sequence)
    }

    /// Answers to `sequence` until its end: a done message, an acknowledgement or a refusal.
    fn collect(&mut self, sequence: u32) -> io::Result<Vec<M>> {
        let mut out = Vec::new();
        let mut failure: Option<io::Error> = None;
        self.receive(|header, payload| {
            if header.sequence_number != sequence {
                return false;
            }
            match payload {
                Ok(NetlinkPayload::InnerMessage(m)) => {
                    out.push(m);
                    false
                }
                Ok(NetlinkPayload::Error(e)) => {
                    if e.code.is_some() {
                        failure = Some(Nack::from_error(header.flags, &e).into_io());
                    }
                    true
                }
                Ok(NetlinkPayload::Done(done)) => {
                    if done.code != 0 {
                        failure = Some(
                            Nack {
                                errno: done.code.saturating_abs(),
                                message: None,
                            }
                            .into_io(),
                        );
                    }
                    true
                }
                Ok(_) => false,
                Err(e) => {
                    failure.get_or_insert(invalid(e));
                    false
                }
            }
        })?;
        match failure {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
    use netlink_packet_route::RouteNetlinkMessage as Msg;

    use super::*;
    use crate::apply::netlink::rtnl::route::new_route;
    use crate::apply::objects::{Route, RouteType};

    /// Root and a network namespace of this thread's own, as in tests/netlink_route.rs.
    fn namespace() {
        // SAFETY: plain system calls without memory arguments.
        assert_eq!(unsafe { libc::geteuid() }, 0, "this test must run as root");
        // SAFETY: as above; affects only the calling thread.
        assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0);
    }

    fn blackholes(second_octet: u8, n: u32) -> Vec<(u16, Msg)> {
        (0..n)
            .map(|i| {
                let route = Route {
                    table: 200,
                    to: format!("10.{second_octet}.{}.{}/32", i / 256, i % 256)
                        .parse()
                        .unwrap(),
                    metric: 0,
                    route_type: RouteType::Blackhole,
                    device: None,
                    via: None,
                    src: None,
                    protocol: 210,
                };
                (
                    NLM_F_CREATE | NLM_F_EXCL,
                    Msg::NewRoute(new_route(&route, None)),
                )
            })
            .collect()
    }

    #[test]
    fn lost_acknowledgements_fail_the_batch_instead_of_hanging_it() {
        namespace();
        let mut socket = Socket::<Msg>::open(netlink_sys::protocols::NETLINK_ROUTE).unwrap();
        socket.raw.set_rx_buf_sz(4096).unwrap();
        socket.window = MAX_WINDOW;
        let results = socket.batch(blackholes(1, 2000));
        let lost = results
            .iter()
            .filter(|r| {
                r.as_ref()
                    .is_err_and(|e| e.to_string().contains("acknowledgement lost"))
            })
            .count();
        assert!(lost > 0, "the kernel dropped acks, and that must show");
        // Drained, the socket works again, with a window its buffer can hold.
        socket.window = window(&socket.raw);
        assert!(socket.window < 16, "{}", socket.window);
        let results = socket.batch(blackholes(2, 500));
        assert!(
            results.iter().all(Result::is_ok),
            "{:?}",
            results.iter().find(|r| r.is_err())
        );
    }
}
