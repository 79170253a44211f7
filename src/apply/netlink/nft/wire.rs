//! nf_tables over netlink: transaction batches and dumps on one NETLINK_NETFILTER socket.
//!
//! A batch is processed, committed or aborted entirely inside the kernel's handling of the
//! `send`, so every answer is queued by the time `send` returns: the answers are drained
//! without blocking, and a batch that neither failed nor acknowledged its last message is an
//! error rather than a hang.

use std::io;

use nftnl::{MsgType, NlMsg};

const NLMSG_HDRLEN: usize = 16;
/// nlmsghdr plus nfgenmsg.
const HEADER: usize = NLMSG_HDRLEN + 4;
const NFTA_RULE_USERDATA: u16 = 7;
const NFTA_GEN_ID: u16 = 1;
const RECEIVE_BUFFER: usize = 1 << 20;

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// The type of an nf_tables message (`NFT_MSG_*` in the nftables subsystem).
pub fn nft_type(message: i32) -> u16 {
    ((libc::NFNL_SUBSYS_NFTABLES as u16) << 8) | message as u16
}

/// A netlink message with an nfgenmsg header and `attributes`.
pub fn message(
    kind: u16,
    family: u8,
    flags: u16,
    seq: u32,
    attributes: &[(u16, &[u8])],
) -> Vec<u8> {
    let mut out = vec![0u8; HEADER];
    out[4..6].copy_from_slice(&kind.to_ne_bytes());
    out[6..8].copy_from_slice(&(flags | libc::NLM_F_REQUEST as u16).to_ne_bytes());
    out[8..12].copy_from_slice(&seq.to_ne_bytes());
    out[16] = family;
    out[17] = libc::NFNETLINK_V0 as u8;
    if kind >> 8 == 0 {
        // Batch delimiters name the subsystem the batch is for.
        out[18..20].copy_from_slice(&(libc::NFNL_SUBSYS_NFTABLES as u16).to_be_bytes());
    }
    for (kind, value) in attributes {
        put_attribute(&mut out, *kind, value);
    }
    let len = out.len() as u32;
    out[0..4].copy_from_slice(&len.to_ne_bytes());
    out
}

fn put_attribute(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    out.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(value);
    out.resize(align4(out.len()), 0);
}

/// One message received from the kernel, with a 4-byte aligned copy for libnftnl's parsers.
pub struct Message {
    bytes: Vec<u8>,
    words: Vec<u32>,
    pub kind: u16,
    pub flags: u16,
    pub seq: u32,
}

impl Message {
    pub fn new(bytes: &[u8]) -> Self {
        let words = bytes
            .chunks(4)
            .map(|c| {
                let mut w = [0u8; 4];
                w[..c.len()].copy_from_slice(c);
                u32::from_ne_bytes(w)
            })
            .collect();
        Message {
            bytes: bytes.to_vec(),
            words,
            kind: u16_at(bytes, 4),
            flags: u16_at(bytes, 6),
            seq: u32_at(bytes, 8),
        }
    }

    pub fn header(&self) -> *const libc::nlmsghdr {
        self.words.as_ptr().cast()
    }

    /// The errno of an NLMSG_ERROR (0: acknowledgement).
    fn error(&self) -> Option<i32> {
        (self.kind == libc::NLMSG_ERROR as u16 && self.bytes.len() >= NLMSG_HDRLEN + 4)
            .then(|| -(u32_at(&self.bytes, NLMSG_HDRLEN) as i32))
    }

    /// The first attribute of type `kind` after the nfgenmsg header.
    fn attribute(&self, kind: u16) -> Option<&[u8]> {
        let bytes = &self.bytes;
        let mut at = HEADER;
        while at + 4 <= bytes.len() {
            let len = usize::from(u16_at(bytes, at));
            if len < 4 || at + len > bytes.len() {
                return None;
            }
            if u16_at(bytes, at + 2) & 0x3fff == kind {
                return Some(&bytes[at + 4..at + len]);
            }
            at += align4(len);
        }
        None
    }
}

/// Serializes nftnl objects, reusing one buffer of the largest message size.
pub struct Encoder {
    scratch: Vec<u32>,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder {
            scratch: vec![0; nftnl::nft_nlmsg_maxsize() as usize / 4 + 1],
        }
    }
}

impl Encoder {
    /// `object`'s add or delete message.
    pub fn encode(&mut self, object: &impl NlMsg, seq: u32, kind: MsgType) -> Vec<u8> {
        // SAFETY: `scratch` holds nft_nlmsg_maxsize() bytes, the most one message takes.
        unsafe { object.write(self.scratch.as_mut_ptr().cast(), seq, kind) };
        // The message starts with its nlmsghdr, whose first field is the length.
        let len = (self.scratch[0] as usize).min(self.scratch.len() * 4);
        let words = &self.scratch[..align4(len) / 4];
        words.iter().flat_map(|w| w.to_ne_bytes()).collect()
    }
}

/// Messages for one transaction: begin, the content, end.
pub struct Batch {
    bytes: Vec<u8>,
    encoder: Encoder,
    first: u32,
    seq: u32,
    /// Where the last content message starts: only it asks for an acknowledgement.
    last: Option<usize>,
}

impl Batch {
    pub fn new(seq: u32) -> Self {
        Batch {
            bytes: message(libc::NFNL_MSG_BATCH_BEGIN as u16, 0, 0, seq, &[]),
            encoder: Encoder::default(),
            first: seq,
            seq,
            last: None,
        }
    }

    /// Appends `object` as an add or delete, with rule userdata if given (nftnl's rules
    /// take no userdata but comments, so the attribute is appended to its message here).
    pub fn add(&mut self, object: &impl NlMsg, kind: MsgType, userdata: Option<&[u8]>) {
        self.seq = self.seq.wrapping_add(1);
        let start = self.bytes.len();
        let encoded = self.encoder.encode(object, self.seq, kind);
        self.bytes.extend_from_slice(&encoded);
        if let Some(data) = userdata {
            put_attribute(&mut self.bytes, NFTA_RULE_USERDATA, data);
        }
        let total = (self.bytes.len() - start) as u32;
        self.bytes[start..start + 4].copy_from_slice(&total.to_ne_bytes());
        self.set_ack(start, false);
        self.last = Some(start);
    }

    fn set_ack(&mut self, start: usize, ack: bool) {
        let mut flags = u16_at(&self.bytes, start + 6) & !(libc::NLM_F_ACK as u16);
        if ack {
            flags |= libc::NLM_F_ACK as u16;
        }
        self.bytes[start + 6..start + 8].copy_from_slice(&flags.to_ne_bytes());
    }

    /// The bytes to send, the sequence numbers they use, and the one whose acknowledgement
    /// means success.
    fn finish(mut self) -> (Vec<u8>, impl Fn(u32) -> bool, Option<u32>) {
        let acked = self.last.map(|start| {
            self.set_ack(start, true);
            u32_at(&self.bytes, start + 8)
        });
        let end = message(
            libc::NFNL_MSG_BATCH_END as u16,
            0,
            0,
            self.seq.wrapping_add(1),
            &[],
        );
        self.bytes.extend_from_slice(&end);
        let (first, span) = (
            self.first,
            self.seq.wrapping_add(1).wrapping_sub(self.first),
        );
        (
            self.bytes,
            move |seq: u32| seq.wrapping_sub(first) <= span,
            acked,
        )
    }
}

pub struct Wire {
    socket: netlink_sys::Socket,
    seq: u32,
    buffer: Vec<u8>,
}

fn os_error(errno: i32) -> io::Error {
    io::Error::from_raw_os_error(errno)
}

impl Wire {
    pub fn open() -> io::Result<Self> {
        let mut socket = netlink_sys::Socket::new(libc::NETLINK_NETFILTER as isize)?;
        socket.bind_auto()?;
        socket.connect(&netlink_sys::SocketAddr::new(0, 0))?;
        Ok(Wire {
            socket,
            seq: 0,
            buffer: Vec::with_capacity(RECEIVE_BUFFER),
        })
    }

    /// A new batch numbered after everything sent so far.
    pub fn batch(&mut self) -> Batch {
        Batch::new(self.next_seq())
    }

    fn next_seq(&mut self) -> u32 {
        // Leave room for the batch's own numbers.
        self.seq = self.seq.wrapping_add(1 << 16);
        self.seq
    }

    /// Reads one datagram (`wait`: block for it) into messages; `None` when none is queued.
    fn receive(&mut self, wait: bool) -> io::Result<Option<Vec<Message>>> {
        self.buffer.clear();
        let flags = if wait { 0 } else { libc::MSG_DONTWAIT };
        let n = match self.socket.recv(&mut self.buffer, flags) {
            Ok(n) => n.min(self.buffer.len()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        let mut at = 0;
        while at + NLMSG_HDRLEN <= n {
            let len = u32_at(&self.buffer, at) as usize;
            if len < NLMSG_HDRLEN || at + len > n {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "malformed netlink message",
                ));
            }
            out.push(Message::new(&self.buffer[at..at + len]));
            at += align4(len);
        }
        Ok(Some(out))
    }

    /// Sends `batch`; Ok once the kernel committed it, else its first error.
    pub fn commit(&mut self, batch: Batch) -> io::Result<()> {
        let (bytes, ours, acked) = batch.finish();
        self.socket.send(&bytes, 0)?;
        let mut committed = false;
        while let Some(messages) = self.receive(false)? {
            // Anything else is left over from an earlier, abandoned request.
            for m in messages.into_iter().filter(|m| ours(m.seq)) {
                match m.error() {
                    Some(0) => committed |= Some(m.seq) == acked,
                    Some(errno) => return Err(os_error(errno)),
                    None => {}
                }
            }
        }
        if committed || acked.is_none() {
            Ok(())
        } else {
            Err(io::Error::other("nf_tables did not acknowledge the batch"))
        }
    }

    /// Sends a dump request of `kind` and returns the answering messages; `Interrupted`
    /// when the ruleset changed during the dump.
    pub fn dump(
        &mut self,
        kind: i32,
        family: u8,
        filter: &[(u16, &[u8])],
    ) -> io::Result<Vec<Message>> {
        let seq = self.next_seq();
        let request = message(nft_type(kind), family, libc::NLM_F_DUMP as u16, seq, filter);
        self.socket.send(&request, 0)?;
        let mut out = Vec::new();
        let mut interrupted = false;
        loop {
            let messages = self.receive(true)?.unwrap_or_default();
            for m in messages {
                if m.seq != seq {
                    continue;
                }
                interrupted |= m.flags & libc::NLM_F_DUMP_INTR as u16 != 0;
                match m.kind as i32 {
                    libc::NLMSG_DONE if interrupted => {
                        return Err(io::ErrorKind::Interrupted.into())
                    }
                    libc::NLMSG_DONE => return Ok(out),
                    libc::NLMSG_ERROR => match m.error() {
                        Some(errno) if errno != 0 => return Err(os_error(errno)),
                        _ => {}
                    },
                    _ => out.push(m),
                }
            }
        }
    }

    /// The ruleset generation: it changes with every committed transaction.
    pub fn generation(&mut self) -> io::Result<u32> {
        let seq = self.next_seq();
        let request = message(nft_type(libc::NFT_MSG_GETGEN), 0, 0, seq, &[]);
        self.socket.send(&request, 0)?;
        loop {
            let messages = self.receive(true)?.unwrap_or_default();
            if let Some(m) = messages.into_iter().find(|m| m.seq == seq) {
                if let Some(errno) = m.error().filter(|e| *e != 0) {
                    return Err(os_error(errno));
                }
                return m
                    .attribute(NFTA_GEN_ID)
                    .and_then(|id| <[u8; 4]>::try_from(id).ok())
                    .map(u32::from_be_bytes)
                    .ok_or_else(|| io::Error::other("generation message without an id"));
            }
        }
    }
}
