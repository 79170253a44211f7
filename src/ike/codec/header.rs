//! The fixed IKE header (RFC 7296 section 3.1).

use super::error::{DecodeError, Location};
use super::payload_type::PayloadType;
use super::reader::Reader;

/// Exchange type (IANA "IKEv2 Exchange Types").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExchangeType {
    IkeSaInit,
    IkeAuth,
    CreateChildSa,
    Informational,
    /// RFC 9242.
    IkeIntermediate,
    /// RFC 9370 section 2.2.4.
    IkeFollowupKe,
    /// Only for numbers without a variant above.
    Other(u8),
}

impl ExchangeType {
    pub fn from_u8(value: u8) -> Self {
        match value {
            34 => ExchangeType::IkeSaInit,
            35 => ExchangeType::IkeAuth,
            36 => ExchangeType::CreateChildSa,
            37 => ExchangeType::Informational,
            43 => ExchangeType::IkeIntermediate,
            44 => ExchangeType::IkeFollowupKe,
            other => ExchangeType::Other(other),
        }
    }

    pub fn to_u8(self) -> u8 {
        match self {
            ExchangeType::IkeSaInit => 34,
            ExchangeType::IkeAuth => 35,
            ExchangeType::CreateChildSa => 36,
            ExchangeType::Informational => 37,
            ExchangeType::IkeIntermediate => 43,
            ExchangeType::IkeFollowupKe => 44,
            ExchangeType::Other(other) => other,
        }
    }
}

/// The three defined header flags; the other bits are sent as zero and ignored on receipt.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Flags {
    /// I: sent by the original initiator of the IKE SA.
    pub initiator: bool,
    /// V: the sender can speak a higher major version (never set by IKEv2-only code).
    pub version: bool,
    /// R: this message is a response.
    pub response: bool,
}

impl Flags {
    const INITIATOR: u8 = 0x08;
    const VERSION: u8 = 0x10;
    const RESPONSE: u8 = 0x20;

    pub fn from_u8(bits: u8) -> Self {
        Flags {
            initiator: bits & Self::INITIATOR != 0,
            version: bits & Self::VERSION != 0,
            response: bits & Self::RESPONSE != 0,
        }
    }

    pub fn to_u8(self) -> u8 {
        let bit = |set: bool, mask: u8| if set { mask } else { 0 };
        bit(self.initiator, Self::INITIATOR)
            | bit(self.version, Self::VERSION)
            | bit(self.response, Self::RESPONSE)
    }
}

/// The IKE header exactly as on the wire.
///
/// [`Message::new`](super::Message::new) and [`Message::encode`](super::Message::encode)
/// fill in `next_payload` and `length` from the payloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Header {
    pub initiator_spi: u64,
    /// Zero in the first IKE_SA_INIT request.
    pub responder_spi: u64,
    pub next_payload: PayloadType,
    /// Major version in the high nibble, minor in the low one; kept whole so a header of
    /// another version can still be answered with INVALID_MAJOR_VERSION.
    pub version: u8,
    pub exchange: ExchangeType,
    pub flags: Flags,
    pub message_id: u32,
    /// Total message length, header included.
    pub length: u32,
}

impl Header {
    pub const LEN: usize = 28;
    /// IKEv2.0: implementations send minor version 0 and ignore it on receipt.
    pub const VERSION_2_0: u8 = 0x20;

    /// A version 2.0 header; `next_payload` and `length` are set when the message is built.
    pub fn new(
        exchange: ExchangeType,
        initiator_spi: u64,
        responder_spi: u64,
        message_id: u32,
        flags: Flags,
    ) -> Self {
        Header {
            initiator_spi,
            responder_spi,
            next_payload: PayloadType::NoNextPayload,
            version: Self::VERSION_2_0,
            exchange,
            flags,
            message_id,
            // The header alone, until the message is built.
            length: 28,
        }
    }

    pub fn major_version(&self) -> u8 {
        self.version >> 4
    }

    pub fn minor_version(&self) -> u8 {
        self.version & 0x0f
    }

    /// Reads the fixed fields only, with no check of version or length, so the engine can
    /// look up the IKE SA (or answer a bad version) before decoding the payloads.
    pub fn decode(bytes: &[u8]) -> Result<Header, DecodeError> {
        let mut r = Reader::new(bytes, Location::Header);
        Self::read(&mut r)
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Header, DecodeError> {
        Ok(Header {
            initiator_spi: r.u64("initiator SPI")?,
            responder_spi: r.u64("responder SPI")?,
            next_payload: PayloadType::from_u8(r.u8("next payload")?),
            version: r.u8("version")?,
            exchange: ExchangeType::from_u8(r.u8("exchange type")?),
            flags: Flags::from_u8(r.u8("flags")?),
            message_id: r.u32("message ID")?,
            length: r.u32("length")?,
        })
    }

    pub fn encode(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[0..8].copy_from_slice(&self.initiator_spi.to_be_bytes());
        out[8..16].copy_from_slice(&self.responder_spi.to_be_bytes());
        out[16] = self.next_payload.to_u8();
        out[17] = self.version;
        out[18] = self.exchange.to_u8();
        out[19] = self.flags.to_u8();
        out[20..24].copy_from_slice(&self.message_id.to_be_bytes());
        out[24..28].copy_from_slice(&self.length.to_be_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IKE_SA_INIT_RESPONSE: [u8; 28] = [
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, // initiator SPI
        0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, // responder SPI
        33,   // next payload: SA
        0x20, // version 2.0
        34,   // IKE_SA_INIT
        0x20, // R
        0, 0, 0, 0, // message ID
        0, 0, 0x01, 0x2c, // length 300
    ];

    #[test]
    fn decodes_rfc_layout() {
        let h = Header::decode(&IKE_SA_INIT_RESPONSE).unwrap();
        assert_eq!(h.initiator_spi, 0x0102_0304_0506_0708);
        assert_eq!(h.responder_spi, 0x1112_1314_1516_1718);
        assert_eq!(h.next_payload, PayloadType::SecurityAssociation);
        assert_eq!((h.major_version(), h.minor_version()), (2, 0));
        assert_eq!(h.exchange, ExchangeType::IkeSaInit);
        assert_eq!(
            h.flags,
            Flags {
                initiator: false,
                version: false,
                response: true
            }
        );
        assert_eq!(h.message_id, 0);
        assert_eq!(h.length, 300);
        assert_eq!(h.encode(), IKE_SA_INIT_RESPONSE);
    }

    #[test]
    fn reserved_flag_bits_are_ignored() {
        assert_eq!(Flags::from_u8(0xff).to_u8(), 0x38);
        assert_eq!(
            Flags::from_u8(0x08),
            Flags {
                initiator: true,
                ..Flags::default()
            }
        );
    }

    #[test]
    fn short_header_is_truncated_at_the_missing_field() {
        let e = Header::decode(&IKE_SA_INIT_RESPONSE[..26]).unwrap_err();
        assert_eq!(
            (e.location, e.field, e.offset),
            (Location::Header, "length", 24)
        );
    }

    #[test]
    fn exchange_numbers_round_trip() {
        for n in 0..=u8::MAX {
            assert_eq!(ExchangeType::from_u8(n).to_u8(), n);
        }
    }
}
