//! Security Association payload (RFC 7296 section 3.3): proposals, transforms, attributes.
//!
//! Transforms are kept as numbers, not algorithm types, so a proposal with algorithms we do
//! not implement still decodes: choosing among proposals is the engine's job
//! (see [`super::algorithms`] for the mapping to configured proposals).

use super::error::{DecodeError, EncodeError, ErrorKind, Expected};
use super::reader::Reader;
use super::writer::{fit, put_u16, LengthSlot};

/// Security protocol identifier (IANA "IKEv2 Security Protocol Identifiers").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProtocolId {
    /// 0: used by notifications that concern no particular SA.
    Unspecified,
    Ike,
    Ah,
    Esp,
    /// Only for numbers without a variant above.
    Other(u8),
}

impl ProtocolId {
    pub fn from_u8(value: u8) -> Self {
        match value {
            0 => ProtocolId::Unspecified,
            1 => ProtocolId::Ike,
            2 => ProtocolId::Ah,
            3 => ProtocolId::Esp,
            other => ProtocolId::Other(other),
        }
    }

    pub fn to_u8(self) -> u8 {
        match self {
            ProtocolId::Unspecified => 0,
            ProtocolId::Ike => 1,
            ProtocolId::Ah => 2,
            ProtocolId::Esp => 3,
            ProtocolId::Other(other) => other,
        }
    }

    /// SPI sizes an SA of this protocol can have: IKE SPIs are 8 octets (absent during
    /// IKE_SA_INIT), AH / ESP SPIs 4. `None` when the protocol puts no constraint.
    pub(crate) fn spi_sizes(self) -> Option<Expected> {
        match self {
            ProtocolId::Ike => Some(Expected::EitherOf(0, 8)),
            ProtocolId::Ah | ProtocolId::Esp => Some(Expected::Exactly(4)),
            ProtocolId::Unspecified | ProtocolId::Other(_) => None,
        }
    }
}

/// Whether `len` is an allowed SPI size under `allowed`.
pub(crate) fn spi_size_fits(allowed: Option<Expected>, len: usize) -> bool {
    match allowed {
        None => true,
        Some(Expected::Exactly(n)) => len == n,
        Some(Expected::EitherOf(a, b)) => len == a || len == b,
        Some(Expected::AtLeast(n)) => len >= n,
        Some(Expected::Between(lo, hi)) => (lo..=hi).contains(&len),
    }
}

/// Transform type (IANA "Transform Type Values").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TransformType {
    Encryption,
    Prf,
    Integrity,
    /// Diffie-Hellman group / key exchange method.
    KeyExchange,
    /// Extended Sequence Numbers.
    Esn,
    /// ADDKE1..ADDKE7 (RFC 9370 section 2.2, types 6..12), by slot 0..6.
    AdditionalKeyExchange(u8),
    /// Only for numbers without a variant above.
    Other(u8),
}

impl TransformType {
    pub fn from_u8(value: u8) -> Self {
        match value {
            1 => TransformType::Encryption,
            2 => TransformType::Prf,
            3 => TransformType::Integrity,
            4 => TransformType::KeyExchange,
            5 => TransformType::Esn,
            6..=12 => TransformType::AdditionalKeyExchange(value.saturating_sub(6)),
            other => TransformType::Other(other),
        }
    }

    pub fn to_u8(self) -> u8 {
        match self {
            TransformType::Encryption => 1,
            TransformType::Prf => 2,
            TransformType::Integrity => 3,
            TransformType::KeyExchange => 4,
            TransformType::Esn => 5,
            TransformType::AdditionalKeyExchange(slot) => slot.saturating_add(6),
            TransformType::Other(other) => other,
        }
    }
}

/// Attribute value: TV format (AF bit set, two octets) or TLV format (any length).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AttributeValue {
    Short(u16),
    Long(Vec<u8>),
}

/// A transform attribute (RFC 7296 section 3.3.5).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Attribute {
    /// 15-bit attribute type.
    pub attribute_type: u16,
    pub value: AttributeValue,
}

impl Attribute {
    /// Key Length, in bits; always TV format.
    pub const KEY_LENGTH: u16 = 14;
    const FORMAT_TV: u16 = 0x8000;

    pub fn key_length(bits: u16) -> Self {
        Attribute {
            attribute_type: Self::KEY_LENGTH,
            value: AttributeValue::Short(bits),
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let raw_type = r.u16("attribute type")?;
        let attribute_type = raw_type & !Self::FORMAT_TV;
        let value = if raw_type & Self::FORMAT_TV != 0 {
            AttributeValue::Short(r.u16("attribute value")?)
        } else {
            let len = r.u16("attribute length")?;
            AttributeValue::Long(r.bytes(len.into(), "attribute value")?.to_vec())
        };
        Ok(Attribute {
            attribute_type,
            value,
        })
    }

    fn write(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        if self.attribute_type & Self::FORMAT_TV != 0 {
            return Err(EncodeError::Invalid {
                field: "attribute type",
                reason: "only 15 bits: the top bit is the format flag",
            });
        }
        match &self.value {
            AttributeValue::Short(value) => {
                put_u16(out, self.attribute_type | Self::FORMAT_TV);
                put_u16(out, *value);
            }
            AttributeValue::Long(value) => {
                put_u16(out, self.attribute_type);
                put_u16(out, fit(value.len(), "attribute value")?);
                out.extend_from_slice(value);
            }
        }
        Ok(())
    }
}

/// One transform of a proposal (RFC 7296 section 3.3.2).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Transform {
    pub transform_type: TransformType,
    /// IANA transform ID; which registry depends on `transform_type`.
    pub id: u16,
    pub attributes: Vec<Attribute>,
}

impl Transform {
    /// Last Substruc of a transform followed by another one.
    const MORE: u8 = 3;
    const MIN_LEN: usize = 8;

    pub fn new(transform_type: TransformType, id: u16) -> Self {
        Transform {
            transform_type,
            id,
            attributes: Vec::new(),
        }
    }

    /// The Key Length attribute in bits, if present in TV format.
    pub fn key_length(&self) -> Option<u16> {
        self.attributes.iter().find_map(|a| match a.value {
            AttributeValue::Short(bits) if a.attribute_type == Attribute::KEY_LENGTH => Some(bits),
            _ => None,
        })
    }

    /// Reads one transform; returns whether another one follows.
    fn read(r: &mut Reader<'_>) -> Result<(Self, bool), DecodeError> {
        let start = r.offset();
        let more = read_last_substruc(r, Self::MORE, "transform last substructure")?;
        r.skip(1, "transform reserved")?;
        let len = usize::from(r.u16("transform length")?);
        if len < Self::MIN_LEN {
            return Err(r.error_at(
                start.saturating_add(2),
                "transform length",
                ErrorKind::BadLength {
                    expected: Expected::AtLeast(Self::MIN_LEN),
                    got: len,
                },
            ));
        }
        let mut body = r.framed(start.saturating_add(2), 4, len, "transform length")?;
        let transform_type = TransformType::from_u8(body.u8("transform type")?);
        body.skip(1, "transform reserved")?;
        let id = body.u16("transform ID")?;
        let mut attributes = Vec::new();
        while !body.is_empty() {
            attributes.push(Attribute::read(&mut body)?);
        }
        Ok((
            Transform {
                transform_type,
                id,
                attributes,
            },
            more,
        ))
    }

    fn write(&self, out: &mut Vec<u8>, last: bool) -> Result<(), EncodeError> {
        let start = out.len();
        out.push(if last { 0 } else { Self::MORE });
        out.push(0);
        let len = LengthSlot::reserve(out, start, "transform length");
        out.push(self.transform_type.to_u8());
        out.push(0);
        put_u16(out, self.id);
        for attribute in &self.attributes {
            attribute.write(out)?;
        }
        len.close(out)
    }
}

/// One proposal of an SA payload (RFC 7296 section 3.3.1).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Proposal {
    /// 1 for the first offered proposal; a response echoes the number it chose.
    pub number: u8,
    pub protocol: ProtocolId,
    /// Empty, or 8 octets for IKE (rekeying), 4 for AH / ESP.
    pub spi: Vec<u8>,
    pub transforms: Vec<Transform>,
}

impl Proposal {
    const MORE: u8 = 2;
    const MIN_LEN: usize = 8;

    /// The SPI of an AH / ESP proposal.
    pub fn spi_u32(&self) -> Option<u32> {
        Some(u32::from_be_bytes(self.spi.as_slice().try_into().ok()?))
    }

    /// The SPI of an IKE proposal when rekeying the IKE SA.
    pub fn spi_u64(&self) -> Option<u64> {
        Some(u64::from_be_bytes(self.spi.as_slice().try_into().ok()?))
    }

    /// Transforms of one type, in the order offered.
    pub fn transforms_of(&self, kind: TransformType) -> impl Iterator<Item = &Transform> {
        self.transforms
            .iter()
            .filter(move |t| t.transform_type == kind)
    }

    fn read(r: &mut Reader<'_>) -> Result<(Self, bool), DecodeError> {
        let start = r.offset();
        let more = read_last_substruc(r, Self::MORE, "proposal last substructure")?;
        r.skip(1, "proposal reserved")?;
        let len = usize::from(r.u16("proposal length")?);
        if len < Self::MIN_LEN {
            return Err(r.error_at(
                start.saturating_add(2),
                "proposal length",
                ErrorKind::BadLength {
                    expected: Expected::AtLeast(Self::MIN_LEN),
                    got: len,
                },
            ));
        }
        let mut body = r.framed(start.saturating_add(2), 4, len, "proposal length")?;
        let number = body.u8("proposal number")?;
        let protocol = ProtocolId::from_u8(body.u8("protocol ID")?);
        let spi_size = usize::from(body.u8("SPI size")?);
        if !spi_size_fits(protocol.spi_sizes(), spi_size) {
            if let Some(expected) = protocol.spi_sizes() {
                return Err(body.error_at(
                    start.saturating_add(6),
                    "SPI size",
                    ErrorKind::BadLength {
                        expected,
                        got: spi_size,
                    },
                ));
            }
        }
        let declared = usize::from(body.u8("number of transforms")?);
        let spi = body.bytes(spi_size, "proposal SPI")?.to_vec();
        let mut transforms = Vec::new();
        let mut more_transforms = !body.is_empty();
        while more_transforms {
            let (transform, more) = Transform::read(&mut body)?;
            transforms.push(transform);
            more_transforms = more;
            check_last_flag(
                &body,
                more,
                "transform last substructure",
                Transform::MIN_LEN,
            )?;
        }
        if transforms.len() != declared {
            return Err(body.error_at(
                start.saturating_add(7),
                "number of transforms",
                ErrorKind::CountMismatch {
                    declared,
                    found: transforms.len(),
                },
            ));
        }
        Ok((
            Proposal {
                number,
                protocol,
                spi,
                transforms,
            },
            more,
        ))
    }

    fn write(&self, out: &mut Vec<u8>, last: bool) -> Result<(), EncodeError> {
        if !spi_size_fits(self.protocol.spi_sizes(), self.spi.len()) {
            if let Some(expected) = self.protocol.spi_sizes() {
                return Err(EncodeError::BadLength {
                    field: "proposal SPI",
                    expected,
                    got: self.spi.len(),
                });
            }
        }
        let start = out.len();
        out.push(if last { 0 } else { Self::MORE });
        out.push(0);
        let len = LengthSlot::reserve(out, start, "proposal length");
        out.push(self.number);
        out.push(self.protocol.to_u8());
        out.push(fit(self.spi.len(), "proposal SPI")?);
        out.push(fit(self.transforms.len(), "number of transforms")?);
        out.extend_from_slice(&self.spi);
        for (i, transform) in self.transforms.iter().enumerate() {
            transform.write(out, i.saturating_add(1) == self.transforms.len())?;
        }
        len.close(out)
    }
}

/// Reads a Last Substruc field: 0 for the last element, `more` when another follows.
fn read_last_substruc(
    r: &mut Reader<'_>,
    more: u8,
    field: &'static str,
) -> Result<bool, DecodeError> {
    let value = r.u8(field)?;
    if value == 0 || value == more {
        Ok(value == more)
    } else {
        let expected = if more == Proposal::MORE {
            "0 (last) or 2 (more proposals)"
        } else {
            "0 (last) or 3 (more transforms)"
        };
        Err(r.error_at(
            r.offset().saturating_sub(1),
            field,
            ErrorKind::BadValue {
                expected,
                got: value.into(),
            },
        ))
    }
}

/// The Last Substruc flag must agree with whether octets remain in the parent.
fn check_last_flag(
    parent: &Reader<'_>,
    more: bool,
    field: &'static str,
    next_min_len: usize,
) -> Result<(), DecodeError> {
    match (more, parent.is_empty()) {
        (true, true) => Err(parent.error(
            field,
            ErrorKind::Truncated {
                needed: next_min_len,
                available: 0,
            },
        )),
        (false, false) => Err(parent.error(
            field,
            ErrorKind::TrailingBytes {
                count: parent.remaining(),
            },
        )),
        _ => Ok(()),
    }
}

/// The SA payload: proposals from most to least preferred.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SecurityAssociation {
    pub proposals: Vec<Proposal>,
}

impl SecurityAssociation {
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        if r.is_empty() {
            return Err(r.bad_length("SA payload body", Expected::AtLeast(Proposal::MIN_LEN), 0));
        }
        let mut proposals = Vec::new();
        let mut more_proposals = true;
        while more_proposals {
            let (proposal, more) = Proposal::read(r)?;
            proposals.push(proposal);
            more_proposals = more;
            check_last_flag(r, more, "proposal last substructure", Proposal::MIN_LEN)?;
        }
        Ok(SecurityAssociation { proposals })
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        if self.proposals.is_empty() {
            return Err(EncodeError::Invalid {
                field: "SA payload",
                reason: "needs at least one proposal",
            });
        }
        for (i, proposal) in self.proposals.iter().enumerate() {
            proposal.write(out, i.saturating_add(1) == self.proposals.len())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ike::codec::error::Location;
    use crate::ike::codec::payload_type::PayloadType;

    fn decode(bytes: &[u8]) -> Result<SecurityAssociation, DecodeError> {
        let mut r = Reader::new(bytes, Location::Payload(PayloadType::SecurityAssociation));
        SecurityAssociation::read(&mut r)
    }

    fn encode(sa: &SecurityAssociation) -> Vec<u8> {
        let mut out = Vec::new();
        sa.write(&mut out).unwrap();
        out
    }

    /// One ESP proposal: SPI 0x01020304, AES-GCM-16-256, no ESN.
    const ESP_GCM: [u8; 32] = [
        0, 0, 0, 32, // last proposal, length 32
        1, 3, 4, 2, // number 1, ESP, SPI size 4, 2 transforms
        0x01, 0x02, 0x03, 0x04, // SPI
        3, 0, 0, 12, 1, 0, 0, 20, // ENCR 20, more, length 12
        0x80, 14, 0x01, 0x00, // key length 256 (TV)
        0, 0, 0, 8, 5, 0, 0, 0, // ESN 0, last
    ];

    #[test]
    fn decodes_esp_proposal_with_key_length() {
        let sa = decode(&ESP_GCM).unwrap();
        let p = &sa.proposals[0];
        assert_eq!((p.number, p.protocol), (1, ProtocolId::Esp));
        assert_eq!(p.spi_u32(), Some(0x0102_0304));
        assert_eq!(p.transforms.len(), 2);
        assert_eq!(p.transforms[0].transform_type, TransformType::Encryption);
        assert_eq!(p.transforms[0].id, 20);
        assert_eq!(p.transforms[0].key_length(), Some(256));
        assert_eq!(p.transforms[1], Transform::new(TransformType::Esn, 0));
        assert_eq!(encode(&sa), ESP_GCM);
    }

    #[test]
    fn tlv_attribute_and_unknown_transform_type_are_kept() {
        let sa = SecurityAssociation {
            proposals: vec![Proposal {
                number: 7,
                protocol: ProtocolId::Other(9),
                spi: vec![1, 2, 3],
                transforms: vec![Transform {
                    transform_type: TransformType::Other(13),
                    id: 0xabcd,
                    attributes: vec![Attribute {
                        attribute_type: 0x1234,
                        value: AttributeValue::Long(vec![9; 5]),
                    }],
                }],
            }],
        };
        let bytes = encode(&sa);
        // 8 proposal + 3 SPI + 8 transform octets precede the attribute.
        assert_eq!(&bytes[19..23], &[0x12, 0x34, 0, 5]);
        assert_eq!(decode(&bytes).unwrap(), sa);
    }

    #[test]
    fn proposal_length_must_fit_the_payload() {
        let mut bytes = ESP_GCM;
        bytes[3] = 33;
        let e = decode(&bytes).unwrap_err();
        assert_eq!((e.field, e.offset), ("proposal length", 2));
        assert_eq!(
            e.kind,
            ErrorKind::BadLength {
                expected: Expected::Between(4, 32),
                got: 33
            }
        );
    }

    #[test]
    fn transform_length_must_fit_the_proposal() {
        let mut bytes = ESP_GCM;
        bytes[27] = 12; // last transform claims 12 octets, 8 remain
        let e = decode(&bytes).unwrap_err();
        assert_eq!(e.field, "transform length");
        assert!(matches!(e.kind, ErrorKind::BadLength { got: 12, .. }));
        bytes[27] = 4; // shorter than its fixed part
        assert_eq!(
            decode(&bytes).unwrap_err().kind,
            ErrorKind::BadLength {
                expected: Expected::AtLeast(8),
                got: 4
            }
        );
    }

    #[test]
    fn attribute_must_fit_the_transform() {
        let mut bytes = ESP_GCM;
        bytes[20] = 0x00; // key length turns TLV with length 256
        let e = decode(&bytes).unwrap_err();
        assert_eq!(e.field, "attribute value");
        assert_eq!(
            e.kind,
            ErrorKind::Truncated {
                needed: 256,
                available: 0
            }
        );
    }

    #[test]
    fn spi_size_is_checked_against_the_protocol() {
        let mut bytes = ESP_GCM;
        bytes[6] = 8;
        let e = decode(&bytes).unwrap_err();
        assert_eq!((e.field, e.offset), ("SPI size", 6));
        assert_eq!(
            e.kind,
            ErrorKind::BadLength {
                expected: Expected::Exactly(4),
                got: 8
            }
        );
    }

    #[test]
    fn transform_count_and_last_flags_are_checked() {
        let mut bytes = ESP_GCM;
        bytes[7] = 3;
        assert_eq!(
            decode(&bytes).unwrap_err().kind,
            ErrorKind::CountMismatch {
                declared: 3,
                found: 2
            }
        );
        let mut bytes = ESP_GCM;
        bytes[12] = 0; // first transform claims to be last
        assert!(matches!(
            decode(&bytes).unwrap_err().kind,
            ErrorKind::TrailingBytes { count: 8 }
        ));
        let mut bytes = ESP_GCM;
        bytes[24] = 3; // last transform claims more follow
        assert!(matches!(
            decode(&bytes).unwrap_err().kind,
            ErrorKind::Truncated { .. }
        ));
        let mut bytes = ESP_GCM;
        bytes[0] = 1;
        assert_eq!(
            decode(&bytes).unwrap_err().kind,
            ErrorKind::BadValue {
                expected: "0 (last) or 2 (more proposals)",
                got: 1
            }
        );
    }

    #[test]
    fn empty_sa_and_bad_spi_are_refused_both_ways() {
        assert!(decode(&[]).is_err());
        assert!(SecurityAssociation { proposals: vec![] }
            .write(&mut vec![])
            .is_err());
        let bad = SecurityAssociation {
            proposals: vec![Proposal {
                number: 1,
                protocol: ProtocolId::Ike,
                spi: vec![0; 4],
                transforms: vec![],
            }],
        };
        assert!(bad.write(&mut vec![]).is_err());
    }
}
