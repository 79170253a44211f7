//! Key Exchange (RFC 7296 section 3.4) and Nonce (section 3.9) payloads.

use crate::proposal::DhGroup;

use super::error::{DecodeError, EncodeError, Expected};
use super::reader::Reader;
use super::writer::put_u16;

/// KE payload: the sender's public value for one key exchange method.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyExchange {
    /// Transform ID of the group, kept raw: an unknown group must still decode so the engine
    /// can answer INVALID_KE_PAYLOAD.
    pub group: u16,
    pub data: Vec<u8>,
}

impl KeyExchange {
    pub fn new(group: DhGroup, data: Vec<u8>) -> Self {
        KeyExchange {
            group: group.transform_id(),
            data,
        }
    }

    pub fn dh_group(&self) -> Option<DhGroup> {
        DhGroup::from_transform(self.group)
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let group = r.u16("DH group")?;
        r.skip(2, "KE reserved")?;
        Ok(KeyExchange {
            group,
            data: r.rest().to_vec(),
        })
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        put_u16(out, self.group);
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&self.data);
        Ok(())
    }
}

/// Nonce payload (Ni / Nr): 16 to 256 random octets.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Nonce {
    pub data: Vec<u8>,
}

impl Nonce {
    pub const MIN_LEN: usize = 16;
    pub const MAX_LEN: usize = 256;
    const SIZES: Expected = Expected::Between(Self::MIN_LEN, Self::MAX_LEN);

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let len = r.remaining();
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&len) {
            return Err(r.bad_length("nonce data", Self::SIZES, len));
        }
        Ok(Nonce {
            data: r.rest().to_vec(),
        })
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&self.data.len()) {
            return Err(EncodeError::BadLength {
                field: "nonce data",
                expected: Self::SIZES,
                got: self.data.len(),
            });
        }
        out.extend_from_slice(&self.data);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ike::codec::error::{ErrorKind, Location};
    use crate::ike::codec::payload_type::PayloadType;

    #[test]
    fn ke_layout() {
        let bytes = [0, 31, 0, 0, 1, 2, 3];
        let ke = KeyExchange::read(&mut Reader::new(
            &bytes,
            Location::Payload(PayloadType::KeyExchange),
        ))
        .unwrap();
        assert_eq!(ke, KeyExchange::new(DhGroup::Curve25519, vec![1, 2, 3]));
        assert_eq!(ke.dh_group(), Some(DhGroup::Curve25519));
        let mut out = Vec::new();
        ke.write(&mut out).unwrap();
        assert_eq!(out, bytes);
        let e = KeyExchange::read(&mut Reader::new(
            &[0, 14, 0],
            Location::Payload(PayloadType::KeyExchange),
        ))
        .unwrap_err();
        assert_eq!(e.field, "KE reserved");
    }

    #[test]
    fn unknown_group_still_decodes() {
        let bytes = [0x12, 0x34, 0, 0];
        let ke = KeyExchange::read(&mut Reader::new(
            &bytes,
            Location::Payload(PayloadType::KeyExchange),
        ))
        .unwrap();
        assert_eq!((ke.group, ke.dh_group()), (0x1234, None));
    }

    #[test]
    fn nonce_size_is_bounded_both_ways() {
        let read = |n: usize| {
            Nonce::read(&mut Reader::new(
                &vec![7; n],
                Location::Payload(PayloadType::Nonce),
            ))
        };
        assert_eq!(read(16).unwrap().data.len(), 16);
        assert_eq!(read(256).unwrap().data.len(), 256);
        for bad in [0, 15, 257] {
            assert_eq!(
                read(bad).unwrap_err().kind,
                ErrorKind::BadLength {
                    expected: Expected::Between(16, 256),
                    got: bad
                }
            );
            assert!(Nonce { data: vec![0; bad] }.write(&mut vec![]).is_err());
        }
    }
}
