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

fn align(length: usize) -> usize {
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

/// Raises the receive buffer past `rmem_max` where allowed (root), else as far as it goes.
fn grow_receive_buffer(raw: &RawSocket) {
    let size = RECEIVE_BUFFER as libc::c_int;
    // SAFETY: a valid descriptor and a pointer to an int of the length given.
    let forced = unsafe {
        libc::setsockopt(
            raw.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if forced != 0 {
        let _ = raw.set_rx_buf_sz(RECEIVE_BUFFER);
    }
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
        // Acks without the request echoed back cost less buffer; ext acks explain refusals.
        let _ = raw.set_cap_ack(true);
        let _ = raw.set_ext_ack(true);
        let window = raw
            .get_rx_buf_sz()
            .map_or(8, |size| size / ACK_COST)
            .clamp(8, MAX_WINDOW);
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
            if let Err(e) = outcome {
                for slot in pending[..sent].iter_mut().filter(|p| p.is_none()) {
                    *slot = Some(Err(io::Error::new(e.kind(), e.to_string())));
                }
            }
            let failed_send = sent < count;
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
