//! Delete payload (RFC 7296 section 3.11).

use super::error::{DecodeError, EncodeError, ErrorKind, Expected};
use super::reader::Reader;
use super::sa::ProtocolId;
use super::writer::{fit, put_u16};

/// Delete payload: the IKE SA itself (no SPIs), or Child SAs by their SPIs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Delete {
    pub protocol: ProtocolId,
    /// Octets per SPI: 0 for IKE, 4 for AH / ESP. Kept apart from `spis` because a list of
    /// zero SPIs still has a size.
    pub spi_size: u8,
    pub spis: Vec<Vec<u8>>,
}

impl Delete {
    /// Deletes the IKE SA the message is protected by.
    pub fn ike_sa() -> Self {
        Delete {
            protocol: ProtocolId::Ike,
            spi_size: 0,
            spis: Vec::new(),
        }
    }

    /// Deletes ESP Child SAs by their (sender's inbound) SPIs.
    pub fn esp(spis: &[u32]) -> Self {
        Delete {
            protocol: ProtocolId::Esp,
            spi_size: 4,
            spis: spis.iter().map(|s| s.to_be_bytes().to_vec()).collect(),
        }
    }

    /// The SPIs as numbers, for AH / ESP.
    pub fn spis_u32(&self) -> impl Iterator<Item = u32> + '_ {
        (self.spis.iter()).filter_map(|s| Some(u32::from_be_bytes(s.as_slice().try_into().ok()?)))
    }

    fn required_spi_size(protocol: ProtocolId) -> Option<usize> {
        match protocol {
            ProtocolId::Ike => Some(0),
            ProtocolId::Ah | ProtocolId::Esp => Some(4),
            ProtocolId::Unspecified | ProtocolId::Other(_) => None,
        }
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let protocol = ProtocolId::from_u8(r.u8("protocol ID")?);
        let spi_size = r.u8("SPI size")?;
        if let Some(required) =
            Self::required_spi_size(protocol).filter(|n| *n != usize::from(spi_size))
        {
            return Err(r.error_at(
                r.offset().saturating_sub(1),
                "SPI size",
                ErrorKind::BadLength {
                    expected: Expected::Exactly(required),
                    got: spi_size.into(),
                },
            ));
        }
        let count_at = r.offset();
        let count = usize::from(r.u16("number of SPIs")?);
        // Size and count must account for the rest exactly; the product fits: 255 * 65535.
        let expected = usize::from(spi_size).saturating_mul(count);
        if r.remaining() != expected {
            return Err(r.error_at(
                count_at,
                "number of SPIs",
                ErrorKind::BadLength {
                    expected: Expected::Exactly(expected),
                    got: r.remaining(),
                },
            ));
        }
        let mut spis = Vec::with_capacity(if spi_size == 0 { 0 } else { count });
        if spi_size > 0 {
            for _ in 0..count {
                spis.push(r.bytes(spi_size.into(), "SPI")?.to_vec());
            }
        } else if count > 0 {
            // Zero-size SPIs cannot be told apart; a count is meaningless without them.
            return Err(r.error_at(
                count_at,
                "number of SPIs",
                ErrorKind::BadValue {
                    expected: "0 when the SPI size is 0",
                    got: count as u64,
                },
            ));
        }
        Ok(Delete {
            protocol,
            spi_size,
            spis,
        })
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let size = usize::from(self.spi_size);
        if let Some(required) = Self::required_spi_size(self.protocol).filter(|n| *n != size) {
            return Err(EncodeError::BadLength {
                field: "delete SPI size",
                expected: Expected::Exactly(required),
                got: size,
            });
        }
        if let Some(bad) = self.spis.iter().find(|s| s.len() != size || size == 0) {
            return Err(EncodeError::BadLength {
                field: "delete SPI",
                expected: Expected::Exactly(size),
                got: bad.len(),
            });
        }
        out.push(self.protocol.to_u8());
        out.push(self.spi_size);
        put_u16(out, fit(self.spis.len(), "number of SPIs")?);
        self.spis.iter().for_each(|s| out.extend_from_slice(s));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ike::codec::error::Location;
    use crate::ike::codec::payload_type::PayloadType;

    fn decode(bytes: &[u8]) -> Result<Delete, DecodeError> {
        Delete::read(&mut Reader::new(
            bytes,
            Location::Payload(PayloadType::Delete),
        ))
    }

    fn encode(d: &Delete) -> Vec<u8> {
        let mut out = Vec::new();
        d.write(&mut out).unwrap();
        out
    }

    #[test]
    fn layouts() {
        let ike = [1, 0, 0, 0];
        assert_eq!(decode(&ike).unwrap(), Delete::ike_sa());
        assert_eq!(encode(&Delete::ike_sa()), ike);
        let esp = [3, 4, 0, 2, 0, 0, 0, 1, 0xff, 0, 0, 2];
        let d = decode(&esp).unwrap();
        assert_eq!(d, Delete::esp(&[1, 0xff00_0002]));
        assert_eq!(d.spis_u32().collect::<Vec<_>>(), [1, 0xff00_0002]);
        assert_eq!(encode(&d), esp);
    }

    #[test]
    fn count_and_size_must_account_for_the_body() {
        let e = decode(&[3, 4, 0, 2, 0, 0, 0, 1]).unwrap_err();
        assert_eq!((e.field, e.offset), ("number of SPIs", 2));
        assert_eq!(
            e.kind,
            ErrorKind::BadLength {
                expected: Expected::Exactly(8),
                got: 4
            }
        );
        let e = decode(&[3, 8, 0, 0]).unwrap_err();
        assert_eq!(
            e.kind,
            ErrorKind::BadLength {
                expected: Expected::Exactly(4),
                got: 8
            }
        );
        assert!(decode(&[1, 0, 0, 1]).is_err());
        assert!(decode(&[9, 0, 0, 3]).is_err());
        assert!(decode(&[3, 4, 0]).is_err());
    }

    #[test]
    fn encode_refuses_spis_of_the_wrong_size() {
        let mut d = Delete::esp(&[1]);
        d.spis.push(vec![1, 2]);
        assert!(d.write(&mut vec![]).is_err());
        let d = Delete {
            protocol: ProtocolId::Other(7),
            spi_size: 0,
            spis: vec![vec![]],
        };
        assert!(d.write(&mut vec![]).is_err());
    }
}
