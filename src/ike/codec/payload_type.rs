//! Payload type numbers (IANA "IKEv2 Payload Types").

use std::fmt;

/// The "Next Payload" value naming a payload's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PayloadType {
    /// 0: end of the chain.
    NoNextPayload,
    SecurityAssociation,
    KeyExchange,
    IdInitiator,
    IdResponder,
    Certificate,
    CertificateRequest,
    Authentication,
    Nonce,
    Notify,
    Delete,
    VendorId,
    TsInitiator,
    TsResponder,
    Encrypted,
    Configuration,
    Eap,
    /// Encrypted and Authenticated Fragment (RFC 7383).
    EncryptedFragment,
    /// A type this codec does not decode; only for numbers without a variant above.
    Unknown(u8),
}

impl PayloadType {
    pub fn from_u8(value: u8) -> Self {
        use PayloadType::*;
        match value {
            0 => NoNextPayload,
            33 => SecurityAssociation,
            34 => KeyExchange,
            35 => IdInitiator,
            36 => IdResponder,
            37 => Certificate,
            38 => CertificateRequest,
            39 => Authentication,
            40 => Nonce,
            41 => Notify,
            42 => Delete,
            43 => VendorId,
            44 => TsInitiator,
            45 => TsResponder,
            46 => Encrypted,
            47 => Configuration,
            48 => Eap,
            53 => EncryptedFragment,
            other => Unknown(other),
        }
    }

    pub fn to_u8(self) -> u8 {
        use PayloadType::*;
        match self {
            NoNextPayload => 0,
            SecurityAssociation => 33,
            KeyExchange => 34,
            IdInitiator => 35,
            IdResponder => 36,
            Certificate => 37,
            CertificateRequest => 38,
            Authentication => 39,
            Nonce => 40,
            Notify => 41,
            Delete => 42,
            VendorId => 43,
            TsInitiator => 44,
            TsResponder => 45,
            Encrypted => 46,
            Configuration => 47,
            Eap => 48,
            EncryptedFragment => 53,
            Unknown(other) => other,
        }
    }

    /// SK or SKF: the payload that ends the outer chain and carries the inner one.
    pub fn is_encrypted(self) -> bool {
        matches!(
            self,
            PayloadType::Encrypted | PayloadType::EncryptedFragment
        )
    }
}

impl fmt::Display for PayloadType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use PayloadType::*;
        let name = match self {
            NoNextPayload => "no-next",
            SecurityAssociation => "SA",
            KeyExchange => "KE",
            IdInitiator => "IDi",
            IdResponder => "IDr",
            Certificate => "CERT",
            CertificateRequest => "CERTREQ",
            Authentication => "AUTH",
            Nonce => "Nonce",
            Notify => "Notify",
            Delete => "Delete",
            VendorId => "Vendor ID",
            TsInitiator => "TSi",
            TsResponder => "TSr",
            Encrypted => "SK",
            Configuration => "CP",
            Eap => "EAP",
            EncryptedFragment => "SKF",
            Unknown(n) => return write!(f, "unknown ({n})"),
        };
        f.write_str(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_number_round_trips() {
        for n in 0..=u8::MAX {
            assert_eq!(PayloadType::from_u8(n).to_u8(), n);
        }
        assert_eq!(PayloadType::from_u8(46), PayloadType::Encrypted);
        assert_eq!(PayloadType::from_u8(49), PayloadType::Unknown(49));
    }
}
