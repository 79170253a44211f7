//! Notify payload (RFC 7296 section 3.10) and the notify message types routevpn uses.

use super::error::{DecodeError, EncodeError, ErrorKind, Expected};
use super::reader::Reader;
use super::sa::{spi_size_fits, ProtocolId};
use super::writer::{fit, put_u16};

macro_rules! notify_types {
    ($($(#[$doc:meta])* $variant:ident = $value:literal,)*) => {
        /// Notify message type (IANA "IKEv2 Notify Message Types"). Values below 16384 are
        /// errors, the rest status notifications.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum NotifyType {
            $($(#[$doc])* $variant,)*
            /// Only for numbers without a variant above.
            Unknown(u16),
        }

        impl NotifyType {
            pub fn from_u16(value: u16) -> Self {
                match value {
                    $($value => NotifyType::$variant,)*
                    other => NotifyType::Unknown(other),
                }
            }

            pub fn to_u16(self) -> u16 {
                match self {
                    $(NotifyType::$variant => $value,)*
                    NotifyType::Unknown(other) => other,
                }
            }
        }
    };
}

notify_types! {
    UnsupportedCriticalPayload = 1,
    InvalidIkeSpi = 4,
    InvalidMajorVersion = 5,
    InvalidSyntax = 7,
    InvalidMessageId = 9,
    InvalidSpi = 11,
    NoProposalChosen = 14,
    InvalidKePayload = 17,
    AuthenticationFailed = 24,
    SinglePairRequired = 34,
    NoAdditionalSas = 35,
    InternalAddressFailure = 36,
    FailedCpRequired = 37,
    TsUnacceptable = 38,
    InvalidSelectors = 39,
    TemporaryFailure = 43,
    ChildSaNotFound = 44,
    /// RFC 9370: an IKE_FOLLOWUP_KE for an exchange the responder no longer knows.
    StateNotFound = 47,
    InitialContact = 16384,
    SetWindowSize = 16385,
    AdditionalTsPossible = 16386,
    IpcompSupported = 16387,
    NatDetectionSourceIp = 16388,
    NatDetectionDestinationIp = 16389,
    Cookie = 16390,
    UseTransportMode = 16391,
    HttpCertLookupSupported = 16392,
    RekeySa = 16393,
    EspTfcPaddingNotSupported = 16394,
    NonFirstFragmentsAlso = 16395,
    /// RFC 4555.
    MobikeSupported = 16396,
    /// RFC 4739.
    MultipleAuthSupported = 16404,
    /// RFC 5685.
    RedirectSupported = 16406,
    /// RFC 7383.
    Ikev2FragmentationSupported = 16430,
    /// RFC 7427.
    SignatureHashAlgorithms = 16431,
    /// RFC 9242.
    IntermediateExchangeSupported = 16438,
    /// RFC 9370: links IKE_FOLLOWUP_KE exchanges to their CREATE_CHILD_SA.
    AdditionalKeyExchange = 16441,
}

impl NotifyType {
    const FIRST_STATUS: u16 = 16384;

    /// Error notifications make a request fail; unknown ones still count as errors.
    pub fn is_error(self) -> bool {
        self.to_u16() < Self::FIRST_STATUS
    }

    pub fn is_status(self) -> bool {
        !self.is_error()
    }
}

/// A Notify payload.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Notify {
    /// [`ProtocolId::Unspecified`] unless the notification concerns a Child SA.
    pub protocol: ProtocolId,
    /// Empty, or the SPI of the Child SA concerned (4 octets for AH / ESP).
    pub spi: Vec<u8>,
    pub notify_type: NotifyType,
    pub data: Vec<u8>,
}

impl Notify {
    /// A notification about the IKE SA itself (no protocol, no SPI).
    pub fn new(notify_type: NotifyType, data: Vec<u8>) -> Self {
        Notify {
            protocol: ProtocolId::Unspecified,
            spi: Vec::new(),
            notify_type,
            data,
        }
    }

    /// A notification about a Child SA (REKEY_SA, CHILD_SA_NOT_FOUND, ...).
    pub fn for_child(
        notify_type: NotifyType,
        protocol: ProtocolId,
        spi: u32,
        data: Vec<u8>,
    ) -> Self {
        Notify {
            protocol,
            spi: spi.to_be_bytes().to_vec(),
            notify_type,
            data,
        }
    }

    /// INVALID_KE_PAYLOAD carrying the group the responder wants.
    pub fn invalid_ke_payload(group: u16) -> Self {
        Self::new(NotifyType::InvalidKePayload, group.to_be_bytes().to_vec())
    }

    /// SIGNATURE_HASH_ALGORITHMS carrying hash algorithm numbers (RFC 7427 section 4).
    pub fn signature_hash_algorithms(hashes: &[u16]) -> Self {
        let data = hashes.iter().flat_map(|h| h.to_be_bytes()).collect();
        Self::new(NotifyType::SignatureHashAlgorithms, data)
    }

    /// The group asked for by INVALID_KE_PAYLOAD; `None` if this is another notification or
    /// the data is not exactly two octets.
    pub fn requested_group(&self) -> Option<u16> {
        if self.notify_type != NotifyType::InvalidKePayload {
            return None;
        }
        Some(u16::from_be_bytes(self.data.as_slice().try_into().ok()?))
    }

    /// The hash algorithms of SIGNATURE_HASH_ALGORITHMS; `None` for an odd-length list.
    pub fn hash_algorithms(&self) -> Option<Vec<u16>> {
        if self.notify_type != NotifyType::SignatureHashAlgorithms || self.data.len() % 2 != 0 {
            return None;
        }
        Some(
            (self.data.chunks_exact(2))
                .filter_map(|pair| Some(u16::from_be_bytes(pair.try_into().ok()?)))
                .collect(),
        )
    }

    /// The SPI of a Child SA notification.
    pub fn spi_u32(&self) -> Option<u32> {
        Some(u32::from_be_bytes(self.spi.as_slice().try_into().ok()?))
    }

    /// SPI sizes allowed per protocol: none or the protocol's own. RFC 7296 wants 0 for the
    /// IKE SA, but 8 is tolerated since some peers send the IKE SPI there.
    fn spi_sizes(protocol: ProtocolId) -> Option<Expected> {
        match protocol {
            ProtocolId::Ike => Some(Expected::EitherOf(0, 8)),
            ProtocolId::Ah | ProtocolId::Esp => Some(Expected::EitherOf(0, 4)),
            ProtocolId::Unspecified | ProtocolId::Other(_) => None,
        }
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let protocol = ProtocolId::from_u8(r.u8("protocol ID")?);
        let spi_size = usize::from(r.u8("SPI size")?);
        if let Some(expected) =
            Self::spi_sizes(protocol).filter(|e| !spi_size_fits(Some(*e), spi_size))
        {
            return Err(r.error_at(
                r.offset().saturating_sub(1),
                "SPI size",
                ErrorKind::BadLength {
                    expected,
                    got: spi_size,
                },
            ));
        }
        let notify_type = NotifyType::from_u16(r.u16("notify message type")?);
        let spi = r.bytes(spi_size, "notify SPI")?.to_vec();
        let data = r.rest().to_vec();
        Ok(Notify {
            protocol,
            spi,
            notify_type,
            data,
        })
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        if let Some(expected) =
            Self::spi_sizes(self.protocol).filter(|e| !spi_size_fits(Some(*e), self.spi.len()))
        {
            return Err(EncodeError::BadLength {
                field: "notify SPI",
                expected,
                got: self.spi.len(),
            });
        }
        out.push(self.protocol.to_u8());
        out.push(fit(self.spi.len(), "notify SPI")?);
        put_u16(out, self.notify_type.to_u16());
        out.extend_from_slice(&self.spi);
        out.extend_from_slice(&self.data);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ike::codec::error::Location;
    use crate::ike::codec::payload_type::PayloadType;

    fn decode(bytes: &[u8]) -> Result<Notify, DecodeError> {
        Notify::read(&mut Reader::new(
            bytes,
            Location::Payload(PayloadType::Notify),
        ))
    }

    fn encode(n: &Notify) -> Vec<u8> {
        let mut out = Vec::new();
        n.write(&mut out).unwrap();
        out
    }

    #[test]
    fn cookie_layout() {
        let bytes = [0, 0, 0x40, 0x06, 0xde, 0xad, 0xbe, 0xef];
        let n = decode(&bytes).unwrap();
        assert_eq!(
            n,
            Notify::new(NotifyType::Cookie, vec![0xde, 0xad, 0xbe, 0xef])
        );
        assert!(n.notify_type.is_status());
        assert_eq!(encode(&n), bytes);
    }

    #[test]
    fn rekey_sa_carries_the_esp_spi() {
        let bytes = [3, 4, 0x40, 0x09, 0xaa, 0xbb, 0xcc, 0xdd];
        let n = decode(&bytes).unwrap();
        assert_eq!(n.notify_type, NotifyType::RekeySa);
        assert_eq!(n.spi_u32(), Some(0xaabb_ccdd));
        assert_eq!(
            n,
            Notify::for_child(NotifyType::RekeySa, ProtocolId::Esp, 0xaabb_ccdd, vec![])
        );
        assert_eq!(encode(&n), bytes);
    }

    #[test]
    fn spi_must_fit_and_match_the_protocol() {
        let e = decode(&[3, 4, 0x40, 0x09, 0xaa]).unwrap_err();
        assert_eq!(
            (e.field, e.kind),
            (
                "notify SPI",
                ErrorKind::Truncated {
                    needed: 4,
                    available: 1
                }
            )
        );
        let e = decode(&[3, 8, 0x40, 0x09, 0, 0, 0, 0, 0, 0, 0, 0]).unwrap_err();
        assert_eq!(
            (e.field, e.offset, e.kind),
            (
                "SPI size",
                1,
                ErrorKind::BadLength {
                    expected: Expected::EitherOf(0, 4),
                    got: 8
                }
            )
        );
        assert!(decode(&[0, 0, 0]).is_err());
    }

    #[test]
    fn error_and_status_ranges() {
        assert!(NotifyType::InvalidSyntax.is_error());
        assert!(NotifyType::Unknown(16383).is_error());
        assert!(NotifyType::Unknown(40000).is_status());
        assert!(NotifyType::SignatureHashAlgorithms.is_status());
        for n in [0, 1, 24, 44, 16384, 16396, 16430, 16431, 65535] {
            assert_eq!(NotifyType::from_u16(n).to_u16(), n);
        }
        assert_eq!(NotifyType::from_u16(16406), NotifyType::RedirectSupported);
    }

    #[test]
    fn typed_data_helpers() {
        let n = Notify::invalid_ke_payload(14);
        assert_eq!(n.requested_group(), Some(14));
        let n = Notify::signature_hash_algorithms(&[2, 3, 4]);
        assert_eq!(n.data, [0, 2, 0, 3, 0, 4]);
        assert_eq!(n.hash_algorithms(), Some(vec![2, 3, 4]));
        assert_eq!(
            Notify::new(NotifyType::Cookie, vec![1]).requested_group(),
            None
        );
    }
}
