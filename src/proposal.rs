//! Cryptographic proposals in strongSwan's string syntax (`aes256-sha256-modp2048`).
//!
//! The same algorithm types are used by the profile validator, the MTU arithmetic and the
//! IKE engine, so a keyword accepted here is exactly one the engine can negotiate.

use std::fmt;

/// Encryption transform (IKEv2 transform type 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Encryption {
    /// AES-CBC (RFC 3602), key length in bits.
    AesCbc(u16),
    /// AES-GCM with a 16-octet ICV (RFC 4106), key length in bits.
    AesGcm16(u16),
}

impl Encryption {
    pub const ENCR_AES_CBC: u16 = 12;
    pub const ENCR_AES_GCM_16: u16 = 20;

    /// IANA transform ID.
    pub fn transform_id(self) -> u16 {
        match self {
            Encryption::AesCbc(_) => Self::ENCR_AES_CBC,
            Encryption::AesGcm16(_) => Self::ENCR_AES_GCM_16,
        }
    }

    pub fn key_bits(self) -> u16 {
        match self {
            Encryption::AesCbc(bits) | Encryption::AesGcm16(bits) => bits,
        }
    }

    /// Builds from an IANA transform ID and key-length attribute, if supported.
    pub fn from_transform(id: u16, key_bits: u16) -> Option<Self> {
        if !matches!(key_bits, 128 | 192 | 256) {
            return None;
        }
        match id {
            Self::ENCR_AES_CBC => Some(Encryption::AesCbc(key_bits)),
            Self::ENCR_AES_GCM_16 => Some(Encryption::AesGcm16(key_bits)),
            _ => None,
        }
    }

    pub fn is_aead(self) -> bool {
        matches!(self, Encryption::AesGcm16(_))
    }

    /// Key material taken from the key stream: GCM adds a 4-octet salt (RFC 4106 section 8.1).
    pub fn keymat_len(self) -> usize {
        match self {
            Encryption::AesCbc(bits) => usize::from(bits / 8),
            Encryption::AesGcm16(bits) => usize::from(bits / 8) + 4,
        }
    }

    /// Explicit IV carried in every ESP / SK payload.
    pub fn iv_len(self) -> usize {
        match self {
            Encryption::AesCbc(_) => 16,
            Encryption::AesGcm16(_) => 8,
        }
    }

    /// The payload plus trailer is padded to a multiple of this (ESP needs at least 4).
    pub fn pad_block(self) -> usize {
        match self {
            Encryption::AesCbc(_) => 16,
            Encryption::AesGcm16(_) => 4,
        }
    }

    /// Integrity check value of an AEAD cipher; 0 for plain ciphers.
    pub fn aead_icv_len(self) -> usize {
        match self {
            Encryption::AesCbc(_) => 0,
            Encryption::AesGcm16(_) => 16,
        }
    }
}

impl fmt::Display for Encryption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Encryption::AesCbc(bits) => write!(f, "AES_CBC_{bits}"),
            Encryption::AesGcm16(bits) => write!(f, "AES_GCM_16_{bits}"),
        }
    }
}

/// Integrity transform (IKEv2 transform type 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Integrity {
    HmacSha1_96,
    HmacSha256_128,
    HmacSha384_192,
    HmacSha512_256,
}

impl Integrity {
    pub fn transform_id(self) -> u16 {
        match self {
            Integrity::HmacSha1_96 => 2,
            Integrity::HmacSha256_128 => 12,
            Integrity::HmacSha384_192 => 13,
            Integrity::HmacSha512_256 => 14,
        }
    }

    pub fn from_transform(id: u16) -> Option<Self> {
        match id {
            2 => Some(Integrity::HmacSha1_96),
            12 => Some(Integrity::HmacSha256_128),
            13 => Some(Integrity::HmacSha384_192),
            14 => Some(Integrity::HmacSha512_256),
            _ => None,
        }
    }

    /// HMAC key length (the hash output length, RFC 4868 section 2.1.1).
    pub fn key_len(self) -> usize {
        match self {
            Integrity::HmacSha1_96 => 20,
            Integrity::HmacSha256_128 => 32,
            Integrity::HmacSha384_192 => 48,
            Integrity::HmacSha512_256 => 64,
        }
    }

    /// Truncated ICV length.
    pub fn icv_len(self) -> usize {
        match self {
            Integrity::HmacSha1_96 => 12,
            Integrity::HmacSha256_128 => 16,
            Integrity::HmacSha384_192 => 24,
            Integrity::HmacSha512_256 => 32,
        }
    }

    /// The PRF strongSwan derives when an IKE proposal names no PRF.
    pub fn matching_prf(self) -> Prf {
        match self {
            Integrity::HmacSha1_96 => Prf::HmacSha1,
            Integrity::HmacSha256_128 => Prf::HmacSha256,
            Integrity::HmacSha384_192 => Prf::HmacSha384,
            Integrity::HmacSha512_256 => Prf::HmacSha512,
        }
    }
}

impl fmt::Display for Integrity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Integrity::HmacSha1_96 => "HMAC_SHA1_96",
            Integrity::HmacSha256_128 => "HMAC_SHA2_256_128",
            Integrity::HmacSha384_192 => "HMAC_SHA2_384_192",
            Integrity::HmacSha512_256 => "HMAC_SHA2_512_256",
        })
    }
}

/// Pseudo-random function (IKEv2 transform type 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Prf {
    HmacSha1,
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

impl Prf {
    pub fn transform_id(self) -> u16 {
        match self {
            Prf::HmacSha1 => 2,
            Prf::HmacSha256 => 5,
            Prf::HmacSha384 => 6,
            Prf::HmacSha512 => 7,
        }
    }

    pub fn from_transform(id: u16) -> Option<Self> {
        match id {
            2 => Some(Prf::HmacSha1),
            5 => Some(Prf::HmacSha256),
            6 => Some(Prf::HmacSha384),
            7 => Some(Prf::HmacSha512),
            _ => None,
        }
    }

    /// Output length, which is also the preferred key length (RFC 7296 section 2.13).
    pub fn output_len(self) -> usize {
        match self {
            Prf::HmacSha1 => 20,
            Prf::HmacSha256 => 32,
            Prf::HmacSha384 => 48,
            Prf::HmacSha512 => 64,
        }
    }
}

impl fmt::Display for Prf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Prf::HmacSha1 => "PRF_HMAC_SHA1",
            Prf::HmacSha256 => "PRF_HMAC_SHA2_256",
            Prf::HmacSha384 => "PRF_HMAC_SHA2_384",
            Prf::HmacSha512 => "PRF_HMAC_SHA2_512",
        })
    }
}

/// Key exchange method (IKEv2 transform type 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DhGroup {
    Modp1024,
    Modp2048,
    Modp3072,
    Modp4096,
    Ecp256,
    Ecp384,
    Curve25519,
}

impl DhGroup {
    pub fn transform_id(self) -> u16 {
        match self {
            DhGroup::Modp1024 => 2,
            DhGroup::Modp2048 => 14,
            DhGroup::Modp3072 => 15,
            DhGroup::Modp4096 => 16,
            DhGroup::Ecp256 => 19,
            DhGroup::Ecp384 => 20,
            DhGroup::Curve25519 => 31,
        }
    }

    pub fn from_transform(id: u16) -> Option<Self> {
        match id {
            2 => Some(DhGroup::Modp1024),
            14 => Some(DhGroup::Modp2048),
            15 => Some(DhGroup::Modp3072),
            16 => Some(DhGroup::Modp4096),
            19 => Some(DhGroup::Ecp256),
            20 => Some(DhGroup::Ecp384),
            31 => Some(DhGroup::Curve25519),
            _ => None,
        }
    }

    /// Length of the public value in a KE payload (RFC 7296 / RFC 5903 / RFC 8031).
    pub fn public_len(self) -> usize {
        match self {
            DhGroup::Modp1024 => 128,
            DhGroup::Modp2048 => 256,
            DhGroup::Modp3072 => 384,
            DhGroup::Modp4096 => 512,
            DhGroup::Ecp256 => 64,
            DhGroup::Ecp384 => 96,
            DhGroup::Curve25519 => 32,
        }
    }
}

impl fmt::Display for DhGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DhGroup::Modp1024 => "MODP_1024",
            DhGroup::Modp2048 => "MODP_2048",
            DhGroup::Modp3072 => "MODP_3072",
            DhGroup::Modp4096 => "MODP_4096",
            DhGroup::Ecp256 => "ECP_256",
            DhGroup::Ecp384 => "ECP_384",
            DhGroup::Curve25519 => "CURVE_25519",
        })
    }
}

/// An IKE SA proposal: every combination of the listed algorithms is acceptable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IkeProposal {
    pub encryption: Vec<Encryption>,
    pub integrity: Vec<Integrity>,
    pub prf: Vec<Prf>,
    pub dh: Vec<DhGroup>,
}

/// An ESP proposal. An empty `dh` means no PFS on CREATE_CHILD_SA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EspProposal {
    pub encryption: Vec<Encryption>,
    pub integrity: Vec<Integrity>,
    pub dh: Vec<DhGroup>,
    /// Extended sequence numbers offered, in preference order (`false` = no ESN).
    pub esn: Vec<bool>,
}

impl EspProposal {
    pub fn has_pfs(&self) -> bool {
        !self.dh.is_empty()
    }
}

/// Why a proposal string was refused, pointing at the offending keyword.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProposalError {
    /// Byte offset of the offending keyword inside the proposal string.
    pub offset: usize,
    /// The offending keyword, or the whole proposal when no single keyword is at fault.
    pub token: String,
    pub message: String,
    pub hint: Option<String>,
}

#[derive(Clone, Copy)]
enum Kind {
    Ike,
    Esp,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Keyword {
    Encr(Encryption),
    Integ(Integrity),
    Prf(Prf),
    Dh(DhGroup),
    Esn(bool),
}

const LEGACY_SHA1: &str =
    "SHA-1 is deprecated for IPsec (RFC 8221/8247); accept it only when the peer cannot do SHA-2";
const LEGACY_MODP1024: &str =
    "MODP-1024 is within reach of well-funded attackers (Logjam); RFC 8247 says SHOULD NOT";

/// A keyword routevpn implements, with the reason it is legacy (needs `allow_legacy`), if it is.
fn lookup(word: &str) -> Option<(Keyword, Option<&'static str>)> {
    use Keyword::*;
    let modern = |k| Some((k, None));
    match word {
        "aes128" => modern(Encr(Encryption::AesCbc(128))),
        "aes192" => modern(Encr(Encryption::AesCbc(192))),
        "aes256" => modern(Encr(Encryption::AesCbc(256))),
        "aes128gcm16" | "aes128gcm128" | "aes128gcm" => modern(Encr(Encryption::AesGcm16(128))),
        "aes192gcm16" | "aes192gcm128" | "aes192gcm" => modern(Encr(Encryption::AesGcm16(192))),
        "aes256gcm16" | "aes256gcm128" | "aes256gcm" => modern(Encr(Encryption::AesGcm16(256))),
        "sha256" | "sha2_256" => modern(Integ(Integrity::HmacSha256_128)),
        "sha384" | "sha2_384" => modern(Integ(Integrity::HmacSha384_192)),
        "sha512" | "sha2_512" => modern(Integ(Integrity::HmacSha512_256)),
        "prfsha256" => modern(Prf(self::Prf::HmacSha256)),
        "prfsha384" => modern(Prf(self::Prf::HmacSha384)),
        "prfsha512" => modern(Prf(self::Prf::HmacSha512)),
        "modp2048" => modern(Dh(DhGroup::Modp2048)),
        "modp3072" => modern(Dh(DhGroup::Modp3072)),
        "modp4096" => modern(Dh(DhGroup::Modp4096)),
        "ecp256" => modern(Dh(DhGroup::Ecp256)),
        "ecp384" => modern(Dh(DhGroup::Ecp384)),
        "curve25519" | "x25519" => modern(Dh(DhGroup::Curve25519)),
        "esn" => modern(Esn(true)),
        "noesn" => modern(Esn(false)),
        "sha1" | "sha" => Some((Integ(Integrity::HmacSha1_96), Some(LEGACY_SHA1))),
        "prfsha1" => Some((Prf(self::Prf::HmacSha1), Some(LEGACY_SHA1))),
        "modp1024" => Some((Dh(DhGroup::Modp1024), Some(LEGACY_MODP1024))),
        _ => None,
    }
}

/// Why a keyword strongSwan knows is refused outright: it is cryptographically broken.
fn weakness(word: &str) -> Option<&'static str> {
    match word {
        "des" | "3des" | "blowfish" | "blowfish128" | "cast128" => {
            Some("64-bit block ciphers are open to birthday attacks (Sweet32)")
        }
        "null" => Some("null encryption sends traffic in clear"),
        "md5" | "md5_128" | "prfmd5" => Some("MD5 is broken (practical collisions)"),
        "modp768" | "modp1536" | "modp1024s160" | "modp2048s224" | "modp2048s256" => {
            Some("this group is too small or has a suspect subgroup (RFC 8247)")
        }
        _ => None,
    }
}

/// Real algorithms (strongSwan keywords) that routevpn's engine does not implement.
fn is_unimplemented(word: &str) -> bool {
    matches!(
        word,
        "aes128ctr"
            | "aes192ctr"
            | "aes256ctr"
            | "aes128ccm16"
            | "aes256ccm16"
            | "aes128ccm8"
            | "aes256ccm8"
            | "aes128gcm8"
            | "aes256gcm8"
            | "aes128gcm12"
            | "aes256gcm12"
            | "chacha20poly1305"
            | "camellia128"
            | "camellia256"
            | "aesxcbc"
            | "aescmac"
            | "prfaesxcbc"
            | "prfaescmac"
            | "sha256_96"
            | "modp6144"
            | "modp8192"
            | "ecp192"
            | "ecp224"
            | "ecp521"
            | "curve448"
            | "x448"
            | "ecp256bp"
            | "ecp384bp"
            | "ecp512bp"
    )
}

const SUPPORTED_HINT: &str = "supported: aes128 aes192 aes256 aes128gcm16 aes192gcm16 aes256gcm16, \
sha256 sha384 sha512, prfsha256 prfsha384 prfsha512, modp2048 modp3072 modp4096 ecp256 ecp384 x25519";

/// strongSwan's own default IKE proposals, restricted to what routevpn implements.
pub const DEFAULT_IKE: &[&str] = &[
    "aes256gcm16-aes128gcm16-prfsha384-prfsha256-x25519-ecp384-ecp256-modp3072",
    "aes256-aes128-sha384-sha256-x25519-ecp384-ecp256-modp3072",
];

/// Default ESP proposals (no PFS, like strongSwan's `default` for ESP).
pub const DEFAULT_ESP: &[&str] = &["aes256gcm16-aes128gcm16", "aes256-aes128-sha384-sha256"];

struct Parsed {
    encryption: Vec<Encryption>,
    integrity: Vec<Integrity>,
    prf: Vec<Prf>,
    dh: Vec<DhGroup>,
    esn: Vec<bool>,
}

fn parse(text: &str, kind: Kind, allow_legacy: bool) -> Result<Parsed, ProposalError> {
    let whole = |message: String, hint: Option<String>| ProposalError {
        offset: 0,
        token: text.to_string(),
        message,
        hint,
    };
    if text.is_empty() {
        return Err(whole("empty proposal".into(), Some(SUPPORTED_HINT.into())));
    }
    let mut parsed = Parsed {
        encryption: vec![],
        integrity: vec![],
        prf: vec![],
        dh: vec![],
        esn: vec![],
    };
    let mut offset = 0;
    for word in text.split('-') {
        let at = |message: String, hint: Option<String>| ProposalError {
            offset,
            token: word.to_string(),
            message,
            hint,
        };
        let keyword = match lookup(word) {
            Some((keyword, None)) => keyword,
            Some((keyword, Some(_))) if allow_legacy => keyword,
            Some((_, Some(why))) => {
                return Err(at(
                    format!("legacy algorithm `{word}`: {why}"),
                    Some(
                        "ask the peer for a SHA-2 / 2048-bit (or stronger) proposal, \
or set `allow_legacy = true` under [ike] if its sheet leaves no choice"
                            .into(),
                    ),
                ))
            }
            None => {
                let message = if let Some(why) = weakness(word) {
                    format!("weak algorithm `{word}` refused: {why}")
                } else if is_unimplemented(word) {
                    format!("algorithm `{word}` is not supported by routevpn's IKE engine")
                } else {
                    format!("unknown algorithm `{word}`")
                };
                return Err(at(message, Some(SUPPORTED_HINT.into())));
            }
        };
        let duplicate = match keyword {
            Keyword::Encr(e) => push_unique(&mut parsed.encryption, e),
            Keyword::Integ(i) => push_unique(&mut parsed.integrity, i),
            Keyword::Prf(_) if matches!(kind, Kind::Esp) => {
                return Err(at(
                    format!("`{word}` is a PRF, which only IKE proposals take"),
                    Some("remove it from the ESP proposal".into()),
                ))
            }
            Keyword::Prf(p) => push_unique(&mut parsed.prf, p),
            Keyword::Dh(d) => push_unique(&mut parsed.dh, d),
            Keyword::Esn(_) if matches!(kind, Kind::Ike) => {
                return Err(at(
                    format!("`{word}` only applies to ESP proposals"),
                    Some("remove it from the IKE proposal".into()),
                ))
            }
            Keyword::Esn(e) => push_unique(&mut parsed.esn, e),
        };
        if duplicate {
            return Err(at(format!("`{word}` is listed twice"), None));
        }
        offset += word.len() + 1;
    }
    check_shape(text, kind, &parsed)?;
    Ok(parsed)
}

fn push_unique<T: PartialEq>(list: &mut Vec<T>, value: T) -> bool {
    if list.contains(&value) {
        return true;
    }
    list.push(value);
    false
}

fn check_shape(text: &str, kind: Kind, p: &Parsed) -> Result<(), ProposalError> {
    let error = |token: &str, message: String, hint: &str| ProposalError {
        offset: text.find(token).unwrap_or(0),
        token: token.to_string(),
        message,
        hint: Some(hint.to_string()),
    };
    if p.encryption.is_empty() {
        return Err(error(
            text,
            "no encryption algorithm".into(),
            "start the proposal with a cipher, e.g. aes256 or aes256gcm16",
        ));
    }
    let aead = p.encryption.iter().filter(|e| e.is_aead()).count();
    if aead != 0 && aead != p.encryption.len() {
        return Err(error(
            text,
            "AEAD and classic ciphers mixed in one proposal".into(),
            "split them into two proposals, e.g. \"aes256gcm16-...\" and \"aes256-sha256-...\"",
        ));
    }
    if aead != 0 {
        if let Some(integrity) = p.integrity.first() {
            let word = text
                .split('-')
                .find(|w| matches!(lookup(w), Some((Keyword::Integ(i), _)) if i == *integrity))
                .unwrap_or(text);
            return Err(error(
                word,
                format!(
                    "AEAD cipher {} already authenticates; integrity algorithm `{word}` cannot be combined with it",
                    p.encryption[0]
                ),
                "remove the integrity algorithm, or use a CBC cipher such as aes256",
            ));
        }
    } else if p.integrity.is_empty() {
        return Err(error(
            text,
            "no integrity algorithm for a non-AEAD cipher".into(),
            "add one, e.g. sha256",
        ));
    }
    if let Kind::Ike = kind {
        if p.dh.is_empty() {
            return Err(error(
                text,
                "no key exchange group in an IKE proposal".into(),
                "add one, e.g. modp2048, ecp256 or x25519",
            ));
        }
        if aead != 0 && p.prf.is_empty() {
            return Err(error(
                text,
                "an AEAD IKE proposal needs an explicit PRF".into(),
                "add one, e.g. prfsha256",
            ));
        }
    }
    Ok(())
}

/// One cipher keyword (`aes256`, `aes128gcm16`), legacy ones included.
pub fn parse_encryption(word: &str) -> Option<Encryption> {
    match lookup(word)? {
        (Keyword::Encr(e), _) => Some(e),
        _ => None,
    }
}

/// One integrity keyword (`sha256`), legacy ones included.
pub fn parse_integrity(word: &str) -> Option<Integrity> {
    match lookup(word)? {
        (Keyword::Integ(i), _) => Some(i),
        _ => None,
    }
}

/// Parses one IKE proposal. Without an explicit PRF the PRFs follow the integrity algorithms.
pub fn parse_ike(text: &str, allow_legacy: bool) -> Result<IkeProposal, ProposalError> {
    let p = parse(text, Kind::Ike, allow_legacy)?;
    let prf = if p.prf.is_empty() {
        p.integrity.iter().map(|i| i.matching_prf()).collect()
    } else {
        p.prf
    };
    Ok(IkeProposal {
        encryption: p.encryption,
        integrity: p.integrity,
        prf,
        dh: p.dh,
    })
}

/// Parses one ESP proposal. Without `esn` / `noesn` only "no ESN" is offered, as strongSwan does.
pub fn parse_esp(text: &str, allow_legacy: bool) -> Result<EspProposal, ProposalError> {
    let p = parse(text, Kind::Esp, allow_legacy)?;
    Ok(EspProposal {
        encryption: p.encryption,
        integrity: p.integrity,
        dh: p.dh,
        esn: if p.esn.is_empty() { vec![false] } else { p.esn },
    })
}

/// The keyword swanctl.conf writes for each algorithm, in the order proposals list them.
const KEYWORDS: [&str; 21] = [
    "aes128",
    "aes192",
    "aes256",
    "aes128gcm16",
    "aes192gcm16",
    "aes256gcm16",
    "sha1",
    "sha256",
    "sha384",
    "sha512",
    "prfsha1",
    "prfsha256",
    "prfsha384",
    "prfsha512",
    "modp1024",
    "modp2048",
    "modp3072",
    "modp4096",
    "ecp256",
    "ecp384",
    "x25519",
];

fn keyword(k: Keyword) -> String {
    let found = KEYWORDS
        .iter()
        .find(|w| lookup(w).is_some_and(|(known, _)| known == k));
    found.map_or_else(String::new, |w| w.to_string())
}

impl IkeProposal {
    /// The proposal as swanctl.conf writes it: `aes256gcm16-prfsha384-x25519`.
    pub fn keywords(&self) -> String {
        let words = (self.encryption.iter().map(|&e| keyword(Keyword::Encr(e))))
            .chain(self.integrity.iter().map(|&i| keyword(Keyword::Integ(i))))
            .chain(self.prf.iter().map(|&p| keyword(Keyword::Prf(p))))
            .chain(self.dh.iter().map(|&d| keyword(Keyword::Dh(d))));
        words.collect::<Vec<_>>().join("-")
    }
}

impl EspProposal {
    /// The proposal as swanctl.conf writes it: `aes256gcm16-ecp256-esn`.
    pub fn keywords(&self) -> String {
        let mut words: Vec<String> = (self.encryption.iter())
            .map(|&e| keyword(Keyword::Encr(e)))
            .chain(self.integrity.iter().map(|&i| keyword(Keyword::Integ(i))))
            .chain(self.dh.iter().map(|&d| keyword(Keyword::Dh(d))))
            .collect();
        if self.esn != [false] {
            words.extend(
                self.esn
                    .iter()
                    .map(|&e| if e { "esn" } else { "noesn" }.to_string()),
            );
        }
        words.join("-")
    }
}

impl fmt::Display for IkeProposal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .encryption
            .iter()
            .map(ToString::to_string)
            .chain(self.integrity.iter().map(ToString::to_string))
            .chain(self.prf.iter().map(ToString::to_string))
            .chain(self.dh.iter().map(ToString::to_string))
            .collect();
        f.write_str(&parts.join("/"))
    }
}

impl fmt::Display for EspProposal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = self
            .encryption
            .iter()
            .map(ToString::to_string)
            .chain(self.integrity.iter().map(ToString::to_string))
            .chain(self.dh.iter().map(ToString::to_string))
            .collect();
        if self.esn.contains(&true) {
            parts.push("ESN".into());
        }
        f.write_str(&parts.join("/"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_ike_proposal_derives_prf_from_integrity() {
        let p = parse_ike("aes256-sha256-modp2048", false).unwrap();
        assert_eq!(p.encryption, vec![Encryption::AesCbc(256)]);
        assert_eq!(p.integrity, vec![Integrity::HmacSha256_128]);
        assert_eq!(p.prf, vec![Prf::HmacSha256]);
        assert_eq!(p.dh, vec![DhGroup::Modp2048]);
        assert_eq!(
            p.to_string(),
            "AES_CBC_256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048"
        );
    }

    #[test]
    fn aead_ike_proposals_from_the_interop_matrix_parse() {
        let p = parse_ike("aes128gcm16-prfsha256-ecp256", false).unwrap();
        assert_eq!(p.encryption, vec![Encryption::AesGcm16(128)]);
        assert!(p.integrity.is_empty());
        let p = parse_ike("aes256gcm16-prfsha384-x25519", false).unwrap();
        assert_eq!(p.dh, vec![DhGroup::Curve25519]);
        assert_eq!(p.prf, vec![Prf::HmacSha384]);
    }

    #[test]
    fn esp_proposal_with_and_without_pfs() {
        assert!(!parse_esp("aes256-sha256", false).unwrap().has_pfs());
        let p = parse_esp("aes256gcm16-x25519", false).unwrap();
        assert_eq!(p.dh, vec![DhGroup::Curve25519]);
        assert_eq!(p.esn, vec![false]);
        assert_eq!(
            parse_esp("aes128gcm16-esn-noesn", false).unwrap().esn,
            vec![true, false]
        );
    }

    #[test]
    fn aead_with_integrity_points_at_the_integrity_keyword() {
        let e = parse_esp("aes256gcm16-sha256-modp2048", false).unwrap_err();
        assert_eq!(e.token, "sha256");
        assert_eq!(e.offset, 12);
    }

    #[test]
    fn weak_and_legacy_algorithms() {
        let e = parse_ike("3des-sha1-modp1024", false).unwrap_err();
        assert_eq!((e.offset, e.token.as_str()), (0, "3des"));
        assert!(e.message.contains("Sweet32"));
        let e = parse_ike("aes256-sha1-modp2048", false).unwrap_err();
        assert_eq!((e.offset, e.token.as_str()), (7, "sha1"));
        let p = parse_ike("aes256-sha1-modp1024", true).unwrap();
        assert_eq!(p.dh, vec![DhGroup::Modp1024]);
        assert_eq!(p.prf, vec![Prf::HmacSha1]);
    }

    #[test]
    fn structural_errors() {
        assert!(parse_ike("aes256-sha256", false)
            .unwrap_err()
            .message
            .contains("key exchange"));
        assert!(parse_ike("aes256gcm16-ecp256", false)
            .unwrap_err()
            .message
            .contains("PRF"));
        assert!(parse_esp("aes256", false)
            .unwrap_err()
            .message
            .contains("integrity"));
        assert!(parse_esp("aes256-aes128gcm16", false)
            .unwrap_err()
            .message
            .contains("mixed"));
        assert!(parse_esp("aes256-sha256-prfsha256", false)
            .unwrap_err()
            .message
            .contains("PRF"));
        assert!(parse_esp("aes256-sha256-sha256", false)
            .unwrap_err()
            .message
            .contains("twice"));
        let e = parse_esp("aes256-sha256-chacha", false).unwrap_err();
        assert_eq!(e.message, "unknown algorithm `chacha`");
        let e = parse_esp("chacha20poly1305", false).unwrap_err();
        assert!(e.message.contains("not supported"));
    }

    #[test]
    fn defaults_parse() {
        for p in DEFAULT_IKE {
            parse_ike(p, false).unwrap();
        }
        for p in DEFAULT_ESP {
            parse_esp(p, false).unwrap();
        }
    }

    #[test]
    fn transform_ids_round_trip() {
        for d in [
            DhGroup::Modp1024,
            DhGroup::Modp2048,
            DhGroup::Modp3072,
            DhGroup::Modp4096,
            DhGroup::Ecp256,
            DhGroup::Ecp384,
            DhGroup::Curve25519,
        ] {
            assert_eq!(DhGroup::from_transform(d.transform_id()), Some(d));
        }
        for e in [Encryption::AesCbc(128), Encryption::AesGcm16(256)] {
            assert_eq!(
                Encryption::from_transform(e.transform_id(), e.key_bits()),
                Some(e)
            );
        }
    }
}
