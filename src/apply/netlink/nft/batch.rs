//! nf_tables transactions: nftnl objects serialized between batch begin and end.

use nftnl::{MsgType, NlMsg};

use super::message::{align4, message, put_attribute, u16_at, u32_at};

const NFTA_RULE_USERDATA: u16 = 7;

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
        if let Some(len) = self.bytes.get_mut(start..start + 4) {
            len.copy_from_slice(&total.to_ne_bytes());
        }
        self.set_ack(start, false);
        self.last = Some(start);
    }

    fn set_ack(&mut self, start: usize, ack: bool) {
        let mut flags = u16_at(&self.bytes, start + 6) & !(libc::NLM_F_ACK as u16);
        if ack {
            flags |= libc::NLM_F_ACK as u16;
        }
        if let Some(field) = self.bytes.get_mut(start + 6..start + 8) {
            field.copy_from_slice(&flags.to_ne_bytes());
        }
    }

    /// The bytes to send, the sequence numbers they use, and the one whose acknowledgement
    /// means success.
    pub fn finish(mut self) -> (Vec<u8>, impl Fn(u32) -> bool, Option<u32>) {
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
