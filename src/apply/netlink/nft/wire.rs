//! nf_tables over netlink: transaction batches and dumps on one NETLINK_NETFILTER socket.
//!
//! A batch is processed, committed or aborted entirely inside the kernel's handling of the
//! `send`, so every answer is queued by the time `send` returns: the answers are drained
//! without blocking, and a batch that neither failed nor acknowledged its last message is an
//! error rather than a hang.

use std::io;

use super::batch::Batch;
use super::message::{align4, message, nft_type, u32_at, Message, NLMSG_HDRLEN};

const NFTA_GEN_ID: u16 = 1;
const RECEIVE_BUFFER: usize = 1 << 20;

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
        let flags = if wait { 0 } else { libc::MSG_DONTWAIT };
        let n = loop {
            self.buffer.clear();
            match self.socket.recv(&mut self.buffer, flags) {
                Ok(n) => break n.min(self.buffer.len()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
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

    /// A transaction must reach the kernel in one message, so the send buffer must hold the
    /// whole batch (nft raises it the same way); root may exceed the system's default cap.
    fn fit_send_buffer(&self, len: usize) {
        use std::os::fd::AsRawFd;
        let size = libc::c_int::try_from(len.saturating_add(64 << 10)).unwrap_or(libc::c_int::MAX);
        let fd = self.socket.as_raw_fd();
        for option in [libc::SO_SNDBUFFORCE, libc::SO_SNDBUF] {
            // SAFETY: `fd` is this socket's open descriptor and `size` a live c_int whose
            // size is passed along; setsockopt only reads it.
            let rc = unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    option,
                    (&size as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if rc == 0 {
                return;
            }
        }
    }

    /// Sends `batch`; Ok once the kernel committed it, else its first error.
    pub fn commit(&mut self, batch: Batch) -> io::Result<()> {
        let (bytes, ours, acked) = batch.finish();
        self.fit_send_buffer(bytes.len());
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
