//! Decode and encode errors. A decode error names the payload, the field, and what was
//! expected versus what arrived, so a log line is enough to tell a broken peer from a bug.

use std::fmt;

use super::payload_type::PayloadType;

/// Where in a message a decode error was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Location {
    /// The fixed 28-octet IKE header.
    Header,
    /// A payload (generic header or body, substructures included).
    Payload(PayloadType),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Header => f.write_str("IKE header"),
            Location::Payload(t) => write!(f, "{t} payload"),
        }
    }
}

/// A length constraint, for "expected" in error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    Exactly(usize),
    AtLeast(usize),
    Between(usize, usize),
    /// One of two lengths (an SPI of an IKE proposal is 0 or 8 octets).
    EitherOf(usize, usize),
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expected::Exactly(n) => write!(f, "{n}"),
            Expected::AtLeast(n) => write!(f, "at least {n}"),
            Expected::Between(lo, hi) => write!(f, "{lo}..={hi}"),
            Expected::EitherOf(a, b) => write!(f, "{a} or {b}"),
        }
    }
}

/// What was wrong with the field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The field runs past the end of its enclosing structure.
    Truncated { needed: usize, available: usize },
    /// A length (or size) field disagrees with the structure it describes.
    BadLength { expected: Expected, got: usize },
    /// A field holds a value this structure cannot have.
    BadValue { expected: &'static str, got: u64 },
    /// Octets left over after the last element an enclosing length or count allows.
    TrailingBytes { count: usize },
    /// A count field (Num Transforms, Number of TSs) disagrees with the elements present.
    CountMismatch { declared: usize, found: usize },
    /// Text that must be UTF-8 (an FQDN or RFC 822 identity) is not.
    NotUtf8,
    /// The IKE major version is not 2: the engine may answer INVALID_MAJOR_VERSION.
    UnsupportedMajorVersion { major: u8, minor: u8 },
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Truncated { needed, available } => {
                write!(f, "truncated: needs {needed} octets, {available} left")
            }
            ErrorKind::BadLength { expected, got } => {
                write!(f, "bad length: expected {expected}, got {got}")
            }
            ErrorKind::BadValue { expected, got } => {
                write!(f, "bad value: expected {expected}, got {got}")
            }
            ErrorKind::TrailingBytes { count } => write!(f, "{count} trailing octets"),
            ErrorKind::CountMismatch { declared, found } => {
                write!(f, "count says {declared}, found {found}")
            }
            ErrorKind::NotUtf8 => f.write_str("not UTF-8"),
            ErrorKind::UnsupportedMajorVersion { major, minor } => {
                write!(f, "unsupported IKE version {major}.{minor}, expected 2.x")
            }
        }
    }
}

/// Why a datagram (or a decrypted payload chain) could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{location}, {field} at offset {offset}: {kind}")]
pub struct DecodeError {
    pub location: Location,
    /// Field name, substructure included ("transform length", "TS end address").
    pub field: &'static str,
    /// Octet offset of the field in the buffer given to the decoder.
    pub offset: usize,
    pub kind: ErrorKind,
}

impl DecodeError {
    /// True when the message is a well-formed header of an IKE version other than 2.
    pub fn is_unsupported_version(&self) -> bool {
        matches!(self.kind, ErrorKind::UnsupportedMajorVersion { .. })
    }
}

/// Why a value could not be encoded; only values built by hand can fail.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("{field} is {got} long, at most {max} fits")]
    TooLong {
        field: &'static str,
        got: usize,
        max: usize,
    },
    #[error("{field} is {got} long, expected {expected}")]
    BadLength {
        field: &'static str,
        expected: Expected,
        got: usize,
    },
    #[error("{field}: {reason}")]
    Invalid {
        field: &'static str,
        reason: &'static str,
    },
}
