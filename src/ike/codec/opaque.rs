//! Payloads carried as opaque data: Vendor ID, Configuration, EAP, and payloads of a type
//! this codec does not know.

use super::error::{DecodeError, EncodeError};
use super::reader::Reader;

/// Vendor ID payload (RFC 7296 section 3.12).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VendorId {
    pub data: Vec<u8>,
}

/// Configuration payload (RFC 7296 section 3.15); the attributes are not interpreted.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Configuration {
    /// CFG_REQUEST (1), CFG_REPLY (2), CFG_SET (3), CFG_ACK (4).
    pub cfg_type: u8,
    /// The configuration attributes, as on the wire.
    pub attributes: Vec<u8>,
}

impl Configuration {
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let cfg_type = r.u8("CFG type")?;
        r.skip(3, "CP reserved")?;
        Ok(Configuration {
            cfg_type,
            attributes: r.rest().to_vec(),
        })
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.extend_from_slice(&[self.cfg_type, 0, 0, 0]);
        out.extend_from_slice(&self.attributes);
        Ok(())
    }
}

/// EAP payload (RFC 7296 section 3.16): one EAP message, not interpreted.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Eap {
    pub message: Vec<u8>,
}

/// A payload of a type the codec does not know. The engine must answer
/// UNSUPPORTED_CRITICAL_PAYLOAD when `critical` is set and skip the payload otherwise.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UnknownPayload {
    /// Must be a number without a [`PayloadType`](super::PayloadType) variant.
    pub payload_type: u8,
    pub critical: bool,
    pub body: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ike::codec::error::Location;
    use crate::ike::codec::payload_type::PayloadType;

    #[test]
    fn configuration_layout() {
        let bytes = [1, 0, 0, 0, 0, 1, 0, 0];
        let cp = Configuration::read(&mut Reader::new(
            &bytes,
            Location::Payload(PayloadType::Configuration),
        ))
        .unwrap();
        assert_eq!(
            cp,
            Configuration {
                cfg_type: 1,
                attributes: vec![0, 1, 0, 0]
            }
        );
        let mut out = Vec::new();
        cp.write(&mut out).unwrap();
        assert_eq!(out, bytes);
        assert!(Configuration::read(&mut Reader::new(
            &[1, 0],
            Location::Payload(PayloadType::Configuration)
        ))
        .is_err());
    }
}
