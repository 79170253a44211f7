//! Traffic Selector payloads TSi / TSr (RFC 7296 section 3.13).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use super::error::{DecodeError, EncodeError, ErrorKind, Expected};
use super::reader::Reader;
use super::writer::{fit, put_u16, LengthSlot};

const TS_IPV4_ADDR_RANGE: u8 = 7;
const TS_IPV6_ADDR_RANGE: u8 = 8;
/// Type, IP protocol / reserved, selector length.
const SELECTOR_HEADER_LEN: usize = 4;

/// An address-range selector of either family: TS_IPV4_ADDR_RANGE or TS_IPV6_ADDR_RANGE,
/// chosen by the address family. Both addresses must be of the same family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AddressRange {
    /// IP protocol number; 0 means any.
    pub ip_protocol: u8,
    /// Inclusive; 0..=65535 is any port. Not checked for order: RFC 7296 uses start 65535,
    /// end 0 for "OPAQUE" ports.
    pub start_port: u16,
    pub end_port: u16,
    pub start_address: IpAddr,
    pub end_address: IpAddr,
}

impl AddressRange {
    /// All protocols and ports between the first and last address of `net`.
    pub fn for_subnet(net: IpNet) -> Self {
        AddressRange {
            ip_protocol: 0,
            start_port: 0,
            end_port: u16::MAX,
            start_address: net.network(),
            end_address: net.broadcast(),
        }
    }

    /// Type number and on-wire length for this range's address family.
    fn wire_type(&self) -> Result<(u8, usize), EncodeError> {
        match (self.start_address, self.end_address) {
            (IpAddr::V4(_), IpAddr::V4(_)) => Ok((TS_IPV4_ADDR_RANGE, 16)),
            (IpAddr::V6(_), IpAddr::V6(_)) => Ok((TS_IPV6_ADDR_RANGE, 40)),
            _ => Err(EncodeError::Invalid {
                field: "traffic selector",
                reason: "start and end addresses of different families",
            }),
        }
    }
}

/// One traffic selector.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TrafficSelector {
    Range(AddressRange),
    /// A selector type we do not interpret (TS_FC_ADDR_RANGE, TS_SECLABEL, ...), kept so the
    /// engine can narrow it away instead of failing the whole message.
    Unknown {
        ts_type: u8,
        /// The octet after the type: IP protocol for address ranges, reserved elsewhere.
        second_octet: u8,
        /// Everything after the selector length field.
        data: Vec<u8>,
    },
}

impl TrafficSelector {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let start = r.offset();
        let ts_type = r.u8("TS type")?;
        let second_octet = r.u8("TS IP protocol")?;
        let len = usize::from(r.u16("selector length")?);
        let expected = match ts_type {
            TS_IPV4_ADDR_RANGE => Some(16),
            TS_IPV6_ADDR_RANGE => Some(40),
            _ => None,
        };
        if let Some(expected) = expected.filter(|e| *e != len) {
            return Err(r.error_at(
                start.saturating_add(2),
                "selector length",
                ErrorKind::BadLength {
                    expected: Expected::Exactly(expected),
                    got: len,
                },
            ));
        }
        let mut body = r.framed(
            start.saturating_add(2),
            SELECTOR_HEADER_LEN,
            len,
            "selector length",
        )?;
        if expected.is_none() {
            return Ok(TrafficSelector::Unknown {
                ts_type,
                second_octet,
                data: body.rest().to_vec(),
            });
        }
        let start_port = body.u16("TS start port")?;
        let end_port = body.u16("TS end port")?;
        let (start_address, end_address) = if ts_type == TS_IPV4_ADDR_RANGE {
            let start: [u8; 4] = body.array("TS start address")?;
            let end: [u8; 4] = body.array("TS end address")?;
            (Ipv4Addr::from(start).into(), Ipv4Addr::from(end).into())
        } else {
            let start: [u8; 16] = body.array("TS start address")?;
            let end: [u8; 16] = body.array("TS end address")?;
            (Ipv6Addr::from(start).into(), Ipv6Addr::from(end).into())
        };
        body.finish("traffic selector")?;
        Ok(TrafficSelector::Range(AddressRange {
            ip_protocol: second_octet,
            start_port,
            end_port,
            start_address,
            end_address,
        }))
    }

    fn write(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        match self {
            TrafficSelector::Range(range) => {
                let (ts_type, _) = range.wire_type()?;
                out.push(ts_type);
                out.push(range.ip_protocol);
                let len = LengthSlot::reserve(out, start, "selector length");
                put_u16(out, range.start_port);
                put_u16(out, range.end_port);
                for address in [range.start_address, range.end_address] {
                    match address {
                        IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
                        IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
                    }
                }
                len.close(out)
            }
            TrafficSelector::Unknown {
                ts_type,
                second_octet,
                data,
            } => {
                if matches!(*ts_type, TS_IPV4_ADDR_RANGE | TS_IPV6_ADDR_RANGE) {
                    return Err(EncodeError::Invalid {
                        field: "TS type",
                        reason: "address ranges are written as TrafficSelector::Range",
                    });
                }
                out.push(*ts_type);
                out.push(*second_octet);
                let len = LengthSlot::reserve(out, start, "selector length");
                out.extend_from_slice(data);
                len.close(out)
            }
        }
    }
}

/// A TSi or TSr payload.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TrafficSelectors {
    pub selectors: Vec<TrafficSelector>,
}

impl TrafficSelectors {
    pub fn new(ranges: impl IntoIterator<Item = AddressRange>) -> Self {
        TrafficSelectors {
            selectors: ranges.into_iter().map(TrafficSelector::Range).collect(),
        }
    }

    /// The address-range selectors, skipping types we do not interpret.
    pub fn ranges(&self) -> impl Iterator<Item = &AddressRange> {
        self.selectors.iter().filter_map(|s| match s {
            TrafficSelector::Range(range) => Some(range),
            TrafficSelector::Unknown { .. } => None,
        })
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let count_at = r.offset();
        let declared = usize::from(r.u8("number of TSs")?);
        r.skip(3, "TS payload reserved")?;
        let mut selectors = Vec::new();
        while !r.is_empty() {
            selectors.push(TrafficSelector::read(r)?);
        }
        if selectors.len() != declared {
            return Err(r.error_at(
                count_at,
                "number of TSs",
                ErrorKind::CountMismatch {
                    declared,
                    found: selectors.len(),
                },
            ));
        }
        Ok(TrafficSelectors { selectors })
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.push(fit(self.selectors.len(), "number of TSs")?);
        out.extend_from_slice(&[0; 3]);
        self.selectors.iter().try_for_each(|s| s.write(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ike::codec::error::Location;
    use crate::ike::codec::payload_type::PayloadType;

    fn decode(bytes: &[u8]) -> Result<TrafficSelectors, DecodeError> {
        TrafficSelectors::read(&mut Reader::new(
            bytes,
            Location::Payload(PayloadType::TsInitiator),
        ))
    }

    fn encode(ts: &TrafficSelectors) -> Vec<u8> {
        let mut out = Vec::new();
        ts.write(&mut out).unwrap();
        out
    }

    #[rustfmt::skip]
    const V4_AND_V6: [u8; 60] = [
        2, 0, 0, 0, // two selectors
        7, 6, 0, 16, 0, 80, 0, 80, // IPv4, TCP, port 80
        10, 0, 0, 0, 10, 0, 0, 255,
        8, 0, 0, 40, 0, 0, 0xff, 0xff, // IPv6, any protocol, any port
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    ];

    #[test]
    fn decodes_both_families() {
        let ts = decode(&V4_AND_V6).unwrap();
        let ranges: Vec<_> = ts.ranges().copied().collect();
        assert_eq!(
            ranges[0],
            AddressRange {
                ip_protocol: 6,
                start_port: 80,
                end_port: 80,
                start_address: "10.0.0.0".parse().unwrap(),
                end_address: "10.0.0.255".parse().unwrap(),
            }
        );
        assert_eq!(
            ranges[1],
            AddressRange::for_subnet("2001:db8::/64".parse().unwrap())
        );
        assert_eq!(encode(&ts), V4_AND_V6);
    }

    #[test]
    fn selector_length_must_match_the_type() {
        let mut bytes = V4_AND_V6;
        bytes[7] = 40; // IPv4 selector claiming the IPv6 length
        let e = decode(&bytes).unwrap_err();
        assert_eq!((e.field, e.offset), ("selector length", 6));
        assert_eq!(
            e.kind,
            ErrorKind::BadLength {
                expected: Expected::Exactly(16),
                got: 40
            }
        );
        let e = decode(&V4_AND_V6[..50]).unwrap_err();
        assert!(matches!(
            e.kind,
            ErrorKind::BadLength {
                expected: Expected::Between(4, 30),
                got: 40
            }
        ));
    }

    #[test]
    fn count_must_match() {
        let mut bytes = V4_AND_V6;
        bytes[0] = 3;
        assert_eq!(
            decode(&bytes).unwrap_err().kind,
            ErrorKind::CountMismatch {
                declared: 3,
                found: 2
            }
        );
    }

    #[test]
    fn unknown_selector_type_is_kept() {
        let bytes = [1, 0, 0, 0, 10, 0, 0, 7, 0xaa, 0xbb, 0xcc];
        let ts = decode(&bytes).unwrap();
        assert_eq!(
            ts.selectors,
            [TrafficSelector::Unknown {
                ts_type: 10,
                second_octet: 0,
                data: vec![0xaa, 0xbb, 0xcc]
            }]
        );
        assert_eq!(ts.ranges().count(), 0);
        assert_eq!(encode(&ts), bytes);
    }

    #[test]
    fn mixed_families_are_refused() {
        let range = AddressRange {
            end_address: "::1".parse().unwrap(),
            ..AddressRange::for_subnet("0.0.0.0/0".parse().unwrap())
        };
        assert!(TrafficSelectors::new([range]).write(&mut vec![]).is_err());
    }
}
