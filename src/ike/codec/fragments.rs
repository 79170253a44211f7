//! IKE fragmentation (RFC 7383) without cryptography: splitting the inner payload chain of
//! an SK payload into SKF fragments that fit the path MTU, and putting decrypted fragments
//! back together.
//!
//! Sending: [`fragment`] cuts the plaintext into [`Fragment`]s, each sealed like an SK
//! payload with [`SkFrame::seal_with`]. Receiving: each SKF message is checked and decrypted
//! on its own (section 2.6), then its plaintext goes to a [`Reassembler`]. The engine
//! wiring (IKEV2_FRAGMENTATION_SUPPORTED negotiation, when to fragment, retransmitting all
//! fragments) is `engine::fragmentation`.

use std::collections::BTreeMap;

use super::encrypted::{EncryptedFragment, SkFrame};
use super::error::EncodeError;
use super::header::Header;
use super::payload_type::PayloadType;

/// Path MTUs to assume without better knowledge (RFC 7383 section 2.5.1).
pub const IPV4_DEFAULT_MTU: usize = 576;
pub const IPV6_DEFAULT_MTU: usize = 1280;

const IPV4_HEADER_LEN: usize = 20;
const IPV6_HEADER_LEN: usize = 40;
const UDP_HEADER_LEN: usize = 8;
const NON_ESP_MARKER_LEN: usize = 4;
/// Generic payload header, Fragment Number, Total Fragments.
const SKF_HEADER_LEN: usize = 8;

/// The longest IKE message (IKE header to end) that fits an IP packet of `mtu` octets.
pub fn max_message_len(mtu: usize, ipv6: bool, non_esp_marker: bool) -> usize {
    let ip = if ipv6 {
        IPV6_HEADER_LEN
    } else {
        IPV4_HEADER_LEN
    };
    let marker = if non_esp_marker {
        NON_ESP_MARKER_LEN
    } else {
        0
    };
    mtu.saturating_sub(ip)
        .saturating_sub(UDP_HEADER_LEN)
        .saturating_sub(marker)
}

/// One fragment to send: its frame (IKE header and SKF header) and its part of the
/// plaintext.
#[derive(Debug)]
pub struct Fragment<'a> {
    pub frame: SkFrame,
    pub plaintext: &'a [u8],
}

/// Splits `plaintext` (an encoded inner payload chain whose first payload is
/// `first_payload`) into as few fragments as fit `max_message_len` octets each, given the
/// cipher's `sealed_len` (body length for a plaintext length, non-decreasing). All
/// fragments but the last carry the same amount of plaintext.
pub fn fragment<'a>(
    header: &Header,
    first_payload: PayloadType,
    plaintext: &'a [u8],
    max_message_len: usize,
    sealed_len: impl Fn(usize) -> usize,
) -> Result<Vec<Fragment<'a>>, EncodeError> {
    let fits = |len: usize| {
        Header::LEN
            .checked_add(SKF_HEADER_LEN)
            .and_then(|n| n.checked_add(sealed_len(len)))
            .is_some_and(|total| total <= max_message_len)
    };
    if !fits(1) {
        return Err(EncodeError::Invalid {
            field: "fragment size",
            reason: "the MTU leaves no room for plaintext",
        });
    }
    // Largest chunk that fits: binary search, `fits` is monotone.
    let (mut lo, mut hi) = (1usize, max_message_len);
    while lo < hi {
        let mid = hi.saturating_sub(hi.saturating_sub(lo) / 2);
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid.saturating_sub(1);
        }
    }
    let chunks: Vec<&[u8]> = if plaintext.is_empty() {
        vec![plaintext]
    } else {
        plaintext.chunks(lo).collect()
    };
    let total: u16 = u16::try_from(chunks.len()).map_err(|_| EncodeError::TooLong {
        field: "total fragments",
        got: chunks.len(),
        max: u16::MAX.into(),
    })?;
    let mut fragments = Vec::with_capacity(chunks.len());
    for (number, chunk) in (1..=total).zip(chunks) {
        let first = if number == 1 {
            first_payload
        } else {
            PayloadType::NoNextPayload
        };
        fragments.push(Fragment {
            frame: SkFrame::fragment(header, first, number, total)?,
            plaintext: chunk,
        });
    }
    Ok(fragments)
}

/// Bounds on what a [`Reassembler`] holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReassemblyLimits {
    pub max_fragments: u16,
    /// Decrypted octets held at once.
    pub max_bytes: usize,
}

impl Default for ReassemblyLimits {
    fn default() -> Self {
        ReassemblyLimits {
            max_fragments: 64,
            max_bytes: 64 * 1024,
        }
    }
}

/// Why a fragment was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ignored {
    /// Already held (a retransmission), or the message is already complete.
    Duplicate,
    /// A fragment of another message.
    OtherMessage,
    /// Total Fragments smaller than the fragments held say: from an older, coarser split
    /// (section 2.6.1).
    StaleTotal,
    /// Fragment number 0 or above Total Fragments.
    BadNumber,
    /// More fragments than the limit; everything held was dropped.
    TooManyFragments,
    /// More octets than the limit; everything held was dropped.
    TooLarge,
}

/// What adding a fragment did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reassembly {
    /// Taken; more are missing.
    Incomplete,
    /// The message is whole: the inner chain to decode.
    Complete {
        first_payload: PayloadType,
        plaintext: Vec<u8>,
    },
    Ignored(Ignored),
}

/// Collects the decrypted fragments of one message (one Message ID): in any order, with
/// duplicates and a sender that re-fragments smaller (a larger Total Fragments restarts
/// the collection).
#[derive(Debug)]
pub struct Reassembler {
    message_id: u32,
    limits: ReassemblyLimits,
    total: u16,
    first_payload: Option<PayloadType>,
    parts: BTreeMap<u16, Vec<u8>>,
    bytes: usize,
    complete: bool,
}

impl Reassembler {
    pub fn new(message_id: u32, limits: ReassemblyLimits) -> Self {
        Reassembler {
            message_id,
            limits,
            total: 0,
            first_payload: None,
            parts: BTreeMap::new(),
            bytes: 0,
            complete: false,
        }
    }

    /// The Message ID whose fragments this collects.
    pub fn message_id(&self) -> u32 {
        self.message_id
    }

    /// Octets held, for accounting.
    pub fn held_bytes(&self) -> usize {
        self.bytes
    }

    fn restart(&mut self, total: u16) {
        self.total = total;
        self.first_payload = None;
        self.parts.clear();
        self.bytes = 0;
    }

    /// Adds the decrypted `plaintext` of fragment `skf` of message `message_id`.
    pub fn add(
        &mut self,
        message_id: u32,
        skf: &EncryptedFragment,
        plaintext: Vec<u8>,
    ) -> Reassembly {
        let (number, total) = (skf.fragment_number, skf.total_fragments);
        if message_id != self.message_id {
            return Reassembly::Ignored(Ignored::OtherMessage);
        }
        if self.complete {
            return Reassembly::Ignored(Ignored::Duplicate);
        }
        if number == 0 || number > total {
            return Reassembly::Ignored(Ignored::BadNumber);
        }
        if total > self.limits.max_fragments {
            self.restart(0);
            return Reassembly::Ignored(Ignored::TooManyFragments);
        }
        if total < self.total {
            return Reassembly::Ignored(Ignored::StaleTotal);
        }
        if total > self.total {
            self.restart(total);
        }
        if self.parts.contains_key(&number) {
            return Reassembly::Ignored(Ignored::Duplicate);
        }
        let bytes = self.bytes.checked_add(plaintext.len());
        let Some(bytes) = bytes.filter(|b| *b <= self.limits.max_bytes) else {
            self.restart(0);
            return Reassembly::Ignored(Ignored::TooLarge);
        };
        self.bytes = bytes;
        if number == 1 {
            self.first_payload = Some(skf.first_payload);
        }
        self.parts.insert(number, plaintext);
        if self.parts.len() < usize::from(self.total) {
            return Reassembly::Incomplete;
        }
        self.complete = true;
        let plaintext = std::mem::take(&mut self.parts)
            .into_values()
            .flatten()
            .collect();
        self.bytes = 0;
        Reassembly::Complete {
            first_payload: self.first_payload.unwrap_or(PayloadType::NoNextPayload),
            plaintext,
        }
    }
}

#[cfg(test)]
mod tests;
