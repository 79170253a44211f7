//! A synchronous netlink socket that pipelines requests: send a window of messages, then
//! read one acknowledgement per message. The kernel handles them in order, so a batch of
//! thousands costs a few system calls instead of a round trip each.

use std::fmt::Debug;
use std::io;

use netlink_packet_core::{
    NetlinkDeserializable, NetlinkHeader, NetlinkMessage, NetlinkPayload, NetlinkSerializable,
    NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_sys::{Socket as RawSocket, SocketAddr};

/// Requests in flight at once: their acknowledgements must fit the receive buffer.
const WINDOW: usize = 512;
const RECEIVE_BUFFER: usize = 8 << 20;

pub struct Socket<M> {
    raw: RawSocket,
    sequence: u32,
    buffer: Vec<u8>,
    _message: std::marker::PhantomData<M>,
}

impl<M> Socket<M>
where
    M: NetlinkSerializable + NetlinkDeserializable + Debug,
{
    pub fn open(protocol: isize) -> io::Result<Self> {
        let mut raw = RawSocket::new(protocol)?;
        raw.bind_auto()?;
        raw.connect(&SocketAddr::new(0, 0))?;
        // Best effort: unprivileged processes may be capped below this.
        let _ = raw.set_rx_buf_sz(RECEIVE_BUFFER);
        let _ = raw.set_ext_ack(true);
        Ok(Socket {
            raw,
            sequence: 0,
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
        let mut bytes = vec![0; packet.buffer_len()];
        packet.serialize(&mut bytes);
        (self.sequence, bytes)
    }

    /// Reads datagrams and hands each decoded message to `each` until it returns `true`.
    fn receive(
        &mut self,
        mut each: impl FnMut(NetlinkMessage<M>) -> io::Result<bool>,
    ) -> io::Result<()> {
        loop {
            self.buffer.clear();
            let n = self.raw.recv(&mut self.buffer, 0)?;
            let mut offset = 0;
            while offset < n {
                let message = NetlinkMessage::<M>::deserialize(&self.buffer[offset..n])
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                let length = message.header.length as usize;
                if length == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "netlink message of length 0",
                    ));
                }
                offset += (length + 3) & !3;
                if each(message)? {
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
            let window: Vec<(u32, Vec<u8>)> = requests
                .by_ref()
                .take(WINDOW)
                .map(|(flags, m)| self.encode(flags | NLM_F_ACK, m))
                .collect();
            let first = window[0].0;
            let mut pending: Vec<Option<io::Result<()>>> =
                (0..window.len()).map(|_| None).collect();
            let mut sent = 0;
            for (_, bytes) in &window {
                match self.raw.send(bytes, 0) {
                    Ok(_) => sent += 1,
                    Err(e) => {
                        pending[sent] = Some(Err(e));
                        break;
                    }
                }
            }
            let mut acked = 0;
            let outcome = if sent == 0 {
                Ok(())
            } else {
                self.receive(|message| {
                    if let NetlinkPayload::Error(error) = &message.payload {
                        let index = message.header.sequence_number.wrapping_sub(first) as usize;
                        if index < sent && pending[index].is_none() {
                            pending[index] = Some(match error.code {
                                None => Ok(()),
                                Some(_) => Err(error.to_io()),
                            });
                            acked += 1;
                        }
                    }
                    Ok(acked == sent)
                })
            };
            if let Err(e) = outcome {
                for slot in pending.iter_mut().filter(|p| p.is_none()) {
                    *slot = Some(Err(io::Error::new(e.kind(), e.to_string())));
                }
            }
            results.extend(pending.into_iter().map(|p| {
                p.unwrap_or_else(|| {
                    Err(io::Error::new(
                        io::ErrorKind::Interrupted,
                        "not sent after an earlier failure",
                    ))
                })
            }));
        }
        results
    }

    /// A dump request: every message the kernel answers with.
    pub fn dump(&mut self, request: M) -> io::Result<Vec<M>> {
        let (_, bytes) = self.encode(NLM_F_DUMP, request);
        self.raw.send(&bytes, 0)?;
        let mut out = Vec::new();
        self.receive(|message| match message.payload {
            NetlinkPayload::InnerMessage(m) => {
                out.push(m);
                Ok(false)
            }
            NetlinkPayload::Done(_) => Ok(true),
            NetlinkPayload::Error(e) if e.code.is_some() => Err(e.to_io()),
            _ => Ok(false),
        })?;
        Ok(out)
    }

    /// A request answered by messages (route get, SPI allocation) or an error.
    pub fn request(&mut self, flags: u16, request: M) -> io::Result<Vec<M>> {
        let (sequence, bytes) = self.encode(flags | NLM_F_ACK, request);
        self.raw.send(&bytes, 0)?;
        let mut out = Vec::new();
        self.receive(|message| {
            if message.header.sequence_number != sequence {
                return Ok(false);
            }
            match message.payload {
                NetlinkPayload::InnerMessage(m) => {
                    out.push(m);
                    Ok(false)
                }
                NetlinkPayload::Error(e) => match e.code {
                    None => Ok(true),
                    Some(_) => Err(e.to_io()),
                },
                NetlinkPayload::Done(_) => Ok(true),
                _ => Ok(false),
            }
        })?;
        Ok(out)
    }
}
