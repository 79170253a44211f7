//! Manual keys (`keying = "manual"`): static SAs as `ip xfrm state add` would set them, for
//! testing the dataplane without IKE. The file is a secret: diagnostics name keys and
//! positions, never their values.
//!
//! ```toml
//! [[sa]]
//! child = "lab"              # optional when the tunnel has one child
//! direction = "out"          # out: local -> remote; in: remote -> local
//! spi = 0x1001
//! encryption = "aes256"      # one ESP cipher keyword
//! key = "0x..."              # hex; AES-GCM keys end with the 4-byte salt
//! integrity = "sha256"       # with CBC ciphers only
//! integrity_key = "0x..."
//! ```

use toml::de::DeTable;

use super::diagnostic::{Diagnostic, SourceFile};
use super::reader::{Context, Section, Val};
use crate::ike::crypto::Secret;
use crate::model::Tunnel;
use crate::proposal::{self, Encryption, Integrity};

const SA_KEYS: &[&str] = &[
    "child",
    "direction",
    "spi",
    "encryption",
    "key",
    "integrity",
    "integrity_key",
];

/// Said instead of quoting a value: a key may have been written in the wrong field.
const NOT_SHOWN: &str = "(value not shown: it may be a key)";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaDirection {
    Out,
    In,
}

/// One manually keyed SA.
#[derive(Debug)]
pub struct ManualSa {
    pub child: String,
    pub direction: SaDirection,
    pub spi: u32,
    pub encryption: Encryption,
    pub key: Secret,
    pub integrity: Option<(Integrity, Secret)>,
}

fn hex_secret(v: &Val<&str>, what: &str, len: usize, ctx: &Context<'_>) -> Option<Secret> {
    let digits = v.value.strip_prefix("0x").unwrap_or(v.value);
    let valid = digits.len() % 2 == 0 && digits.bytes().all(|b| b.is_ascii_hexdigit());
    if !valid {
        ctx.error(
            v.span.clone(),
            format!("{what} is not hexadecimal"),
            Some("write 0x followed by two hex digits per byte".into()),
        );
        return None;
    }
    if digits.len() / 2 != len {
        ctx.error(
            v.span.clone(),
            format!(
                "{what} has {} bytes, the algorithm needs {len}",
                digits.len() / 2
            ),
            None,
        );
        return None;
    }
    let bytes = (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap_or(0))
        .collect();
    Some(Secret::new(bytes))
}

fn read_sa(section: &Section<'_>, tunnel: &Tunnel) -> Option<ManualSa> {
    let ctx = section.ctx;
    let child = match section.string("child") {
        Some(v) if tunnel.children.iter().any(|c| c.name == v.value) => Some(v.value.to_string()),
        Some(v) => {
            let names: Vec<&str> = tunnel.children.iter().map(|c| c.name.as_str()).collect();
            ctx.error(
                v.span,
                format!("`child` names no child of tunnel \"{}\"", tunnel.name),
                Some(format!("children: {}", names.join(", "))),
            );
            None
        }
        None if tunnel.children.len() == 1 => Some(tunnel.children[0].name.clone()),
        None => {
            section.missing(
                "child",
                Some("the tunnel has several children: name the one this SA belongs to".into()),
            );
            None
        }
    };
    let direction = section
        .required_string("direction", Some("\"out\" or \"in\"".into()))
        .and_then(|v| match v.value {
            "out" => Some(SaDirection::Out),
            "in" => Some(SaDirection::In),
            _ => {
                ctx.error(
                    v.span,
                    format!("`direction` is neither \"out\" nor \"in\" {NOT_SHOWN}"),
                    Some("\"out\" (local -> remote) or \"in\"".into()),
                );
                None
            }
        });
    if !section.contains("spi") {
        section.missing("spi", Some("SPIs below 256 are reserved".into()));
    }
    let spi = section.integer("spi", 256..1 << 32).map(|v| v.value as u32);
    let encryption = section
        .required_string("encryption", Some("e.g. aes256gcm16 or aes256".into()))
        .and_then(|v| {
            let found = proposal::parse_encryption(v.value);
            if found.is_none() {
                ctx.error(
                    v.span,
                    format!("`encryption` is not one ESP cipher {NOT_SHOWN}"),
                    Some("e.g. aes256gcm16 or aes256; the key goes in `key`".into()),
                );
            }
            found
        });
    let key = section
        .required_string("key", None)
        .zip(encryption)
        .and_then(|(v, e)| hex_secret(&v, "`key`", e.keymat_len(), ctx));
    let integrity = match (section.string("integrity"), encryption) {
        (None, Some(e)) if !e.is_aead() => {
            section.missing(
                "integrity",
                Some(format!("{e} needs an integrity algorithm, e.g. sha256")),
            );
            None
        }
        (Some(v), Some(e)) if e.is_aead() => {
            ctx.error(
                v.span,
                format!("{e} authenticates by itself: remove `integrity`"),
                None,
            );
            None
        }
        (Some(v), Some(_)) => match proposal::parse_integrity(v.value) {
            Some(alg) => section
                .required_string("integrity_key", None)
                .and_then(|k| hex_secret(&k, "`integrity_key`", alg.key_len(), ctx))
                .map(|k| Some((alg, k))),
            None => {
                ctx.error(
                    v.span,
                    format!("`integrity` is not an integrity algorithm {NOT_SHOWN}"),
                    Some(
                        "sha256, sha384, sha512 (sha1 too); the key goes in `integrity_key`".into(),
                    ),
                );
                None
            }
        },
        (_, _) => Some(None),
    };
    Some(ManualSa {
        child: child?,
        direction: direction?,
        spi: spi?,
        encryption: encryption?,
        key: key?,
        integrity: integrity?,
    })
}

/// Reads a tunnel's keys file: exactly one `out` and one `in` SA for every child.
pub fn parse(source: &SourceFile, tunnel: &Tunnel) -> Result<Vec<ManualSa>, Vec<Diagnostic>> {
    let ctx = Context::for_secrets(source);
    let mut sas = Vec::new();
    match DeTable::parse(source.text()) {
        Ok(doc) => {
            let top = Section::new(&ctx, "the keys file", doc.get_ref(), doc.span(), &["sa"]);
            for section in top.tables("sa", SA_KEYS) {
                if let Some(sa) = read_sa(&section, tunnel) {
                    sas.push(sa);
                }
            }
        }
        // Only the position: the parser's message could quote key material.
        Err(e) => ctx.error(e.span().unwrap_or(0..0), "TOML syntax error", None),
    }
    if !ctx.has_errors() {
        for child in &tunnel.children {
            for direction in [SaDirection::Out, SaDirection::In] {
                let n = sas
                    .iter()
                    .filter(|s| s.child == child.name && s.direction == direction)
                    .count();
                if n != 1 {
                    let word = if direction == SaDirection::Out {
                        "out"
                    } else {
                        "in"
                    };
                    ctx.error(
                        0..0,
                        format!(
                            "child \"{}\" needs exactly one `{word}` SA, found {n}",
                            child.name
                        ),
                        None,
                    );
                }
            }
        }
    }
    if ctx.has_errors() {
        Err(ctx.into_diagnostics())
    } else {
        Ok(sas)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tunnel() -> Tunnel {
        let src = SourceFile::new(
            "lab.toml",
            "kind = \"vti\"\nlocal = \"192.0.2.1\"\nremote = \"192.0.2.2\"\n[ike]\nkeying = \"manual\"\nmanual_keys_file = \"lab.keys\"\n".into(),
        );
        let (parsed, diags) = crate::profile::tunnel::parse_source(&src);
        assert!(diags.is_empty(), "{diags:?}");
        parsed.unwrap().tunnel
    }

    const GCM_KEY: &str = "0x000102030405060708090a0b0c0d0e0f1011121314151617";

    #[test]
    fn a_pair_of_sas() {
        let text = format!(
            "[[sa]]\ndirection = \"out\"\nspi = 0x1001\nencryption = \"aes128gcm16\"\nkey = \"{k}\"\n[[sa]]\ndirection = \"in\"\nspi = 0x2001\nencryption = \"aes128gcm16\"\nkey = \"{k}\"\n",
            k = &GCM_KEY[..2 + 40]
        );
        let sas = parse(&SourceFile::new("k", text), &tunnel()).unwrap();
        assert_eq!(sas.len(), 2);
        assert_eq!(sas[0].spi, 0x1001);
        assert_eq!(sas[0].key.len(), 20);
        assert_eq!(sas[0].child, "lab");
    }

    #[test]
    fn errors_never_quote_keys() {
        let secret = "0xdeadbeefdeadbeef";
        let text = format!("[[sa]]\ndirection = \"out\"\nspi = 4097\nencryption = \"aes256\"\nkey = \"{secret}\"\n");
        let diags = parse(&SourceFile::new("k", text), &tunnel()).unwrap_err();
        let all: String = diags.iter().map(|d| format!("{d}")).collect();
        assert!(
            all.contains("`key` has 8 bytes, the algorithm needs 32"),
            "{all}"
        );
        assert!(all.contains("missing key `integrity`"), "{all}");
        assert!(!all.contains("deadbeef"));
        let broken = format!("[[sa]]\nkey = \"{secret}");
        let diags = parse(&SourceFile::new("k", broken), &tunnel()).unwrap_err();
        assert!(!format!("{:?}", diags).contains("deadbeef"));
    }

    #[test]
    fn keys_in_the_wrong_field_are_not_quoted() {
        let (k1, k2, k3, k4) = ("0x1111aaaa", "0x2222bbbb", "0x3333cccc", "0x4444dddd");
        let text = format!(
            "[[sa]]\nchild = \"{k1}\"\ndirection = \"{k2}\"\nspi = 0x5555eeee5555eeee\n\
             encryption = \"{k3}\"\nkey = \"{GCM_KEY}\"\n\
             [[sa]]\ndirection = \"in\"\nspi = 4097\nencryption = \"aes256\"\nkey = \"{k1}\"\n\
             integrity = \"{k4}\"\nintegrity_key = \"{k2}\"\n"
        );
        let diags = parse(&SourceFile::new("k", text), &tunnel()).unwrap_err();
        let all: Vec<String> = diags.iter().map(|d| format!("{d} {d:?}")).collect();
        for secret in ["1111aaaa", "2222bbbb", "3333cccc", "4444dddd", "5555eeee"] {
            assert!(
                all.iter().all(|d| !d.contains(secret)),
                "{secret}: {all:#?}"
            );
        }
        let messages: Vec<&str> = diags.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "`child` names no child of tunnel \"lab\"",
                "`direction` is neither \"out\" nor \"in\" (value not shown: it may be a key)",
                "`spi` in [[sa]] #1 is out of range, expected 256 to 4294967295",
                "`encryption` is not one ESP cipher (value not shown: it may be a key)",
                "`key` has 4 bytes, the algorithm needs 32",
                "`integrity` is not an integrity algorithm (value not shown: it may be a key)",
            ]
        );
    }

    #[test]
    fn every_child_needs_both_directions() {
        let text = format!(
            "[[sa]]\ndirection = \"out\"\nspi = 4097\nencryption = \"aes128gcm16\"\nkey = \"{}\"\n",
            &GCM_KEY[..42]
        );
        let diags = parse(&SourceFile::new("k", text), &tunnel()).unwrap_err();
        assert_eq!(
            diags[0].message,
            "child \"lab\" needs exactly one `in` SA, found 0"
        );
    }
}
