//! Distinguished names as people write them ("C=CH, O=Bank, CN=vpn.bank.ch") and as
//! certificates carry them, compared the tolerant way strongSwan does: attribute types by
//! OID, values exactly, spacing around separators and the order of RDNs ignored.

use std::fmt;

use openssl::asn1::Asn1Object;
use openssl::nid::Nid;
use openssl::x509::{X509Name, X509NameRef};

/// A DN as a list of (attribute type, value), in the order written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DistinguishedName {
    rdns: Vec<(Nid, String)>,
}

/// Why a DN string does not parse; `column` is 1-based, in characters.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {reason}")]
pub struct DnError {
    pub column: usize,
    pub reason: String,
}

impl DistinguishedName {
    /// Parses `TYPE=value` pairs separated by `,` (or `/`-separated OpenSSL style starting
    /// with `/`); `\,` escapes a comma in a value. Types are short names (C, ST, L, O, OU,
    /// CN, DC, ...), `E` / `email` for emailAddress, or dotted OIDs.
    pub fn parse(text: &str) -> Result<Self, DnError> {
        let (separator, body, offset) = match text.strip_prefix('/') {
            Some(rest) => ('/', rest, 1),
            None => (',', text, 0),
        };
        let mut rdns = Vec::new();
        for (start, part) in split_unescaped(body, separator) {
            let column = offset + start + 1;
            let Some((name, value)) = part.split_once('=') else {
                return Err(DnError {
                    column,
                    reason: format!("expected TYPE=value, got {:?}", part.trim()),
                });
            };
            let name = name.trim();
            let nid = attribute_nid(name).ok_or_else(|| DnError {
                column,
                reason: format!("unknown attribute type {name:?}"),
            })?;
            let value = value.trim().replace("\\,", ",").replace("\\/", "/");
            if value.is_empty() {
                return Err(DnError {
                    column,
                    reason: format!("empty value for {name}"),
                });
            }
            rdns.push((nid, value));
        }
        if rdns.is_empty() {
            return Err(DnError {
                column: 1,
                reason: "empty distinguished name".into(),
            });
        }
        Ok(DistinguishedName { rdns })
    }

    /// The DN of a certificate or of an ID_DER_ASN1_DN payload.
    pub fn from_name(name: &X509NameRef) -> Self {
        let rdns = name
            .entries()
            .map(|entry| {
                let value = entry.data().to_string();
                (
                    entry.object().nid(),
                    value.unwrap_or_else(|_| {
                        String::from_utf8_lossy(entry.data().as_slice()).into_owned()
                    }),
                )
            })
            .collect();
        DistinguishedName { rdns }
    }

    /// Parses DER (the data of an ID_DER_ASN1_DN identity).
    pub fn from_der(der: &[u8]) -> Option<Self> {
        X509Name::from_der(der)
            .ok()
            .map(|name| Self::from_name(&name))
    }

    /// DER encoding, for an ID_DER_ASN1_DN identity.
    pub fn to_der(&self) -> Result<Vec<u8>, openssl::error::ErrorStack> {
        let mut builder = X509Name::builder()?;
        for (nid, value) in &self.rdns {
            builder.append_entry_by_nid(*nid, value)?;
        }
        builder.build().to_der()
    }

    /// Same RDNs regardless of order; values compared exactly.
    pub fn matches(&self, other: &DistinguishedName) -> bool {
        let mut ours = self.rdns.clone();
        let mut theirs = other.rdns.clone();
        ours.sort_by_key(|(nid, value)| (nid.as_raw(), value.clone()));
        theirs.sort_by_key(|(nid, value)| (nid.as_raw(), value.clone()));
        ours == theirs
    }
}

impl fmt::Display for DistinguishedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (nid, value)) in self.rdns.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            let name = nid.short_name().unwrap_or("?");
            write!(f, "{name}={}", value.replace(',', "\\,"))?;
        }
        Ok(())
    }
}

fn attribute_nid(name: &str) -> Option<Nid> {
    match name.to_ascii_lowercase().as_str() {
        "e" | "email" | "emailaddress" => return Some(Nid::PKCS9_EMAILADDRESS),
        "" => return None,
        _ => {}
    }
    // OpenSSL's lookup would panic on a NUL; types are short names or dotted OIDs anyway.
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
    {
        return None;
    }
    let nid = Asn1Object::from_str(name).ok()?.nid();
    (nid != Nid::UNDEF).then_some(nid)
}

/// Splits at `separator` not preceded by a backslash; yields (character offset, part).
fn split_unescaped(text: &str, separator: char) -> Vec<(usize, &str)> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut start_col = 0;
    let mut escaped = false;
    for (col, (at, c)) in text.char_indices().enumerate() {
        if c == separator && !escaped {
            parts.push((start_col, &text[start..at]));
            start = at + c.len_utf8();
            start_col = col + 1;
        }
        escaped = c == '\\' && !escaped;
    }
    if !text[start..].trim().is_empty() || !parts.is_empty() {
        parts.push((start_col, &text[start..]));
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_compares_tolerantly() {
        let a = DistinguishedName::parse("C=CH, O=Bank, CN=vpn.bank.ch").unwrap();
        let b = DistinguishedName::parse("CN=vpn.bank.ch,O=Bank ,  C=CH").unwrap();
        let c = DistinguishedName::parse("/C=CH/O=Bank/CN=vpn.bank.ch").unwrap();
        assert!(a.matches(&b) && b.matches(&c));
        assert_eq!(a.to_string(), "C=CH, O=Bank, CN=vpn.bank.ch");
        let der = a.to_der().unwrap();
        assert!(DistinguishedName::from_der(&der).unwrap().matches(&a));
        for other in [
            "C=CH, O=bank, CN=vpn.bank.ch",
            "C=CH, O=Bank",
            "C=CH, O=Bank, CN=vpn.bank.ch, OU=IT",
            "C=CH, OU=Bank, CN=vpn.bank.ch",
        ] {
            assert!(
                !a.matches(&DistinguishedName::parse(other).unwrap()),
                "{other}"
            );
        }
        let escaped = DistinguishedName::parse(r"O=Bank\, Ltd, E=ops@bank.ch, 2.5.4.5=42").unwrap();
        assert_eq!(escaped.rdns[0].1, "Bank, Ltd");
        assert_eq!(escaped.rdns[1].0, Nid::PKCS9_EMAILADDRESS);
        assert_eq!(escaped.rdns[2].0, Nid::SERIALNUMBER);
        assert!(DistinguishedName::from_der(&[0x30, 0x05, 1]).is_none());
    }

    #[test]
    fn errors_say_where() {
        let cases = [
            ("C=CH, XX=1", 6, "unknown attribute type \"XX\""),
            ("C=CH, CN", 6, "expected TYPE=value, got \"CN\""),
            ("C=CH,CN= ", 6, "empty value for CN"),
            ("", 1, "empty distinguished name"),
            ("/C=CH/=x", 7, "unknown attribute type \"\""),
            ("C\0N=x", 1, "unknown attribute type \"C\\0N\""),
        ];
        for (text, column, reason) in cases {
            let e = DistinguishedName::parse(text).unwrap_err();
            assert_eq!((e.column, e.reason.as_str()), (column, reason), "{text:?}");
        }
    }
}
