//! Netlink messages of the nftables subsystem: building requests, splitting answers.

pub const NLMSG_HDRLEN: usize = 16;
/// nlmsghdr plus nfgenmsg.
const HEADER: usize = NLMSG_HDRLEN + 4;

pub fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// The u16 at `at`; 0 past the end (callers check lengths first).
pub fn u16_at(bytes: &[u8], at: usize) -> u16 {
    bytes
        .get(at..at + 2)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u16::from_ne_bytes)
}

/// The u32 at `at`; 0 past the end.
pub fn u32_at(bytes: &[u8], at: usize) -> u32 {
    bytes
        .get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_ne_bytes)
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

pub fn put_attribute(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
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
    pub fn error(&self) -> Option<i32> {
        (self.kind == libc::NLMSG_ERROR as u16 && self.bytes.len() >= NLMSG_HDRLEN + 4)
            .then(|| -(u32_at(&self.bytes, NLMSG_HDRLEN) as i32))
    }

    /// The first attribute of type `kind` after the nfgenmsg header.
    pub fn attribute(&self, kind: u16) -> Option<&[u8]> {
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
