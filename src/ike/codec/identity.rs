//! Identification (RFC 7296 section 3.5), Certificate / Certificate Request (3.6, 3.7) and
//! Authentication (3.8) payloads.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::error::{DecodeError, EncodeError, ErrorKind, Expected};
use super::reader::Reader;

const ID_IPV4_ADDR: u8 = 1;
const ID_FQDN: u8 = 2;
const ID_RFC822_ADDR: u8 = 3;
const ID_IPV6_ADDR: u8 = 5;
const ID_DER_ASN1_DN: u8 = 9;
const ID_KEY_ID: u8 = 11;

/// The identity carried by an IDi / IDr payload.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Identity {
    /// ID_IPV4_ADDR or ID_IPV6_ADDR, by address family.
    Address(IpAddr),
    /// ID_FQDN, e.g. `vpn.example.com`.
    Fqdn(String),
    /// ID_RFC822_ADDR, e.g. `alice@example.com`.
    Rfc822(String),
    /// ID_DER_ASN1_DN: a DER-encoded distinguished name, kept opaque.
    DerAsn1Dn(Vec<u8>),
    /// ID_KEY_ID: opaque octets.
    KeyId(Vec<u8>),
    /// Another ID type, as received; only for types without a variant above.
    Other { id_type: u8, data: Vec<u8> },
}

/// IDi or IDr payload.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Identification {
    pub identity: Identity,
}

impl Identification {
    pub fn new(identity: Identity) -> Self {
        Identification { identity }
    }

    /// ID Type, the three reserved octets and the data: the "RestOfIDPayload" that AUTH
    /// signs (RFC 7296 section 2.15).
    pub fn auth_octets(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.write(&mut out)?;
        Ok(out)
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let id_type = r.u8("ID type")?;
        r.skip(3, "ID reserved")?;
        let data_at = r.offset();
        let data = r.rest();
        let text = |data: &[u8]| {
            String::from_utf8(data.to_vec())
                .map_err(|_| r.error_at(data_at, "ID data", ErrorKind::NotUtf8))
        };
        let identity = match id_type {
            ID_IPV4_ADDR => {
                Identity::Address(Ipv4Addr::from(address::<4>(r, data_at, data)?).into())
            }
            ID_IPV6_ADDR => {
                Identity::Address(Ipv6Addr::from(address::<16>(r, data_at, data)?).into())
            }
            ID_FQDN => Identity::Fqdn(text(data)?),
            ID_RFC822_ADDR => Identity::Rfc822(text(data)?),
            ID_DER_ASN1_DN => Identity::DerAsn1Dn(data.to_vec()),
            ID_KEY_ID => Identity::KeyId(data.to_vec()),
            id_type => Identity::Other {
                id_type,
                data: data.to_vec(),
            },
        };
        Ok(Identification { identity })
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let (id_type, data): (u8, &[u8]) = match &self.identity {
            Identity::Address(IpAddr::V4(a)) => {
                out.extend_from_slice(&[ID_IPV4_ADDR, 0, 0, 0]);
                out.extend_from_slice(&a.octets());
                return Ok(());
            }
            Identity::Address(IpAddr::V6(a)) => {
                out.extend_from_slice(&[ID_IPV6_ADDR, 0, 0, 0]);
                out.extend_from_slice(&a.octets());
                return Ok(());
            }
            Identity::Fqdn(name) => (ID_FQDN, name.as_bytes()),
            Identity::Rfc822(address) => (ID_RFC822_ADDR, address.as_bytes()),
            Identity::DerAsn1Dn(dn) => (ID_DER_ASN1_DN, dn),
            Identity::KeyId(key) => (ID_KEY_ID, key),
            Identity::Other { id_type, data } => {
                if matches!(
                    *id_type,
                    ID_IPV4_ADDR
                        | ID_FQDN
                        | ID_RFC822_ADDR
                        | ID_IPV6_ADDR
                        | ID_DER_ASN1_DN
                        | ID_KEY_ID
                ) {
                    return Err(EncodeError::Invalid {
                        field: "ID type",
                        reason: "has its own Identity variant",
                    });
                }
                (*id_type, data)
            }
        };
        out.extend_from_slice(&[id_type, 0, 0, 0]);
        out.extend_from_slice(data);
        Ok(())
    }
}

fn address<const N: usize>(r: &Reader<'_>, at: usize, data: &[u8]) -> Result<[u8; N], DecodeError> {
    data.try_into().map_err(|_| {
        r.error_at(
            at,
            "ID address",
            ErrorKind::BadLength {
                expected: Expected::Exactly(N),
                got: data.len(),
            },
        )
    })
}

/// CERT or CERTREQ payload: encoding type and opaque data (a certificate, or for CERTREQ
/// the concatenated SHA-1 hashes of trusted CA public keys).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Certificate {
    /// Certificate Encoding (4 = X.509 signature, ...).
    pub encoding: u8,
    pub data: Vec<u8>,
}

impl Certificate {
    /// Certificate Encoding 4, "X.509 Certificate - Signature": a DER certificate in CERT,
    /// SHA-1 hashes of trusted CAs' SubjectPublicKeyInfo in CERTREQ.
    pub const X509_SIGNATURE: u8 = 4;
    const SHA1_LEN: usize = 20;

    /// A CERT payload body carrying one DER certificate.
    pub fn x509(der: Vec<u8>) -> Self {
        Certificate {
            encoding: Self::X509_SIGNATURE,
            data: der,
        }
    }

    /// A CERTREQ payload body naming CAs by the SHA-1 of their SubjectPublicKeyInfo.
    pub fn x509_request(ca_hashes: &[[u8; 20]]) -> Self {
        Certificate {
            encoding: Self::X509_SIGNATURE,
            data: ca_hashes.concat(),
        }
    }

    /// The CA hashes of an X.509 CERTREQ; `None` for another encoding or a length that is
    /// not a multiple of 20 (RFC 7296 section 3.7).
    pub fn ca_hashes(&self) -> Option<Vec<[u8; 20]>> {
        if self.encoding != Self::X509_SIGNATURE || self.data.len() % Self::SHA1_LEN != 0 {
            return None;
        }
        (self.data.chunks_exact(Self::SHA1_LEN))
            .map(|hash| hash.try_into().ok())
            .collect()
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Certificate {
            encoding: r.u8("certificate encoding")?,
            data: r.rest().to_vec(),
        })
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.push(self.encoding);
        out.extend_from_slice(&self.data);
        Ok(())
    }
}

/// Authentication method (IANA "IKEv2 Authentication Method").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// 1: RSA with PKCS#1 v1.5 over SHA-1 (RFC 7296).
    RsaSignature,
    SharedKeyMic,
    /// 9: ECDSA with SHA-256 on P-256 (RFC 4754).
    EcdsaSha256P256,
    /// 10: ECDSA with SHA-384 on P-384 (RFC 4754).
    EcdsaSha384P384,
    /// 11: ECDSA with SHA-512 on P-521 (RFC 4754).
    EcdsaSha512P521,
    /// 14: RFC 7427.
    DigitalSignature,
    /// Only for numbers without a variant above.
    Other(u8),
}

impl AuthMethod {
    pub fn from_u8(value: u8) -> Self {
        match value {
            1 => AuthMethod::RsaSignature,
            2 => AuthMethod::SharedKeyMic,
            9 => AuthMethod::EcdsaSha256P256,
            10 => AuthMethod::EcdsaSha384P384,
            11 => AuthMethod::EcdsaSha512P521,
            14 => AuthMethod::DigitalSignature,
            other => AuthMethod::Other(other),
        }
    }

    pub fn to_u8(self) -> u8 {
        match self {
            AuthMethod::RsaSignature => 1,
            AuthMethod::SharedKeyMic => 2,
            AuthMethod::EcdsaSha256P256 => 9,
            AuthMethod::EcdsaSha384P384 => 10,
            AuthMethod::EcdsaSha512P521 => 11,
            AuthMethod::DigitalSignature => 14,
            AuthMethod::Other(other) => other,
        }
    }
}

/// AUTH payload.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Auth {
    pub method: AuthMethod,
    pub data: Vec<u8>,
}

impl Auth {
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let method = AuthMethod::from_u8(r.u8("auth method")?);
        r.skip(3, "AUTH reserved")?;
        Ok(Auth {
            method,
            data: r.rest().to_vec(),
        })
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.extend_from_slice(&[self.method.to_u8(), 0, 0, 0]);
        out.extend_from_slice(&self.data);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ike::codec::error::Location;
    use crate::ike::codec::payload_type::PayloadType;

    fn decode_id(bytes: &[u8]) -> Result<Identification, DecodeError> {
        Identification::read(&mut Reader::new(
            bytes,
            Location::Payload(PayloadType::IdInitiator),
        ))
    }

    fn encode_id(id: &Identity) -> Vec<u8> {
        Identification::new(id.clone()).auth_octets().unwrap()
    }

    #[test]
    fn id_layouts() {
        let cases: [(&[u8], Identity); 6] = [
            (
                &[1, 0, 0, 0, 192, 0, 2, 1],
                Identity::Address("192.0.2.1".parse().unwrap()),
            ),
            (
                &[
                    5, 0, 0, 0, 0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
                ],
                Identity::Address("2001:db8::1".parse().unwrap()),
            ),
            (
                b"\x02\0\0\0vpn.example",
                Identity::Fqdn("vpn.example".into()),
            ),
            (b"\x03\0\0\0a@b.c", Identity::Rfc822("a@b.c".into())),
            (&[9, 0, 0, 0, 0x30, 0], Identity::DerAsn1Dn(vec![0x30, 0])),
            (&[11, 0, 0, 0, 1, 2], Identity::KeyId(vec![1, 2])),
        ];
        for (bytes, identity) in cases {
            assert_eq!(decode_id(bytes).unwrap().identity, identity);
            assert_eq!(encode_id(&identity), bytes);
        }
        let null = decode_id(&[13, 0, 0, 0]).unwrap();
        assert_eq!(
            null.identity,
            Identity::Other {
                id_type: 13,
                data: vec![]
            }
        );
    }

    #[test]
    fn bad_ids_are_refused() {
        let e = decode_id(&[1, 0, 0, 0, 10, 0, 0]).unwrap_err();
        assert_eq!((e.field, e.offset), ("ID address", 4));
        assert_eq!(
            e.kind,
            ErrorKind::BadLength {
                expected: Expected::Exactly(4),
                got: 3
            }
        );
        let e = decode_id(&[5, 0, 0, 0, 10, 0, 0, 1]).unwrap_err();
        assert_eq!(
            e.kind,
            ErrorKind::BadLength {
                expected: Expected::Exactly(16),
                got: 4
            }
        );
        assert_eq!(
            decode_id(&[2, 0, 0, 0, 0xff]).unwrap_err().kind,
            ErrorKind::NotUtf8
        );
        assert_eq!(decode_id(&[2, 0, 0]).unwrap_err().field, "ID reserved");
        let shadow = Identity::Other {
            id_type: ID_FQDN,
            data: vec![],
        };
        assert!(Identification::new(shadow).auth_octets().is_err());
    }

    #[test]
    fn auth_and_cert_layouts() {
        let bytes = [2, 0, 0, 0, 0xaa, 0xbb];
        let auth = Auth::read(&mut Reader::new(
            &bytes,
            Location::Payload(PayloadType::Authentication),
        ))
        .unwrap();
        assert_eq!(
            auth,
            Auth {
                method: AuthMethod::SharedKeyMic,
                data: vec![0xaa, 0xbb]
            }
        );
        let mut out = Vec::new();
        auth.write(&mut out).unwrap();
        assert_eq!(out, bytes);
        for n in 0..=u8::MAX {
            assert_eq!(AuthMethod::from_u8(n).to_u8(), n);
        }
        assert_eq!(AuthMethod::from_u8(10), AuthMethod::EcdsaSha384P384);
        assert_eq!(AuthMethod::from_u8(14), AuthMethod::DigitalSignature);

        let bytes = [4, 0x30, 0x82];
        let cert = Certificate::read(&mut Reader::new(
            &bytes,
            Location::Payload(PayloadType::Certificate),
        ))
        .unwrap();
        assert_eq!(
            cert,
            Certificate {
                encoding: 4,
                data: vec![0x30, 0x82]
            }
        );
        let mut out = Vec::new();
        cert.write(&mut out).unwrap();
        assert_eq!(out, bytes);
        let request = Certificate::x509_request(&[[1; 20], [2; 20]]);
        assert_eq!(request.data.len(), 40);
        assert_eq!(request.ca_hashes(), Some(vec![[1; 20], [2; 20]]));
        assert_eq!(Certificate::x509_request(&[]).ca_hashes(), Some(vec![]));
        let odd = Certificate::x509(vec![0; 21]);
        assert_eq!(odd.ca_hashes(), None);
        let other = Certificate {
            encoding: 11,
            data: vec![0; 20],
        };
        assert_eq!(other.ca_hashes(), None);
        assert!(Certificate::read(&mut Reader::new(
            &[],
            Location::Payload(PayloadType::Certificate)
        ))
        .is_err());
    }
}
