//! Cryptographic proposals in strongSwan's string syntax (`aes256-sha256-modp2048`).
//!
//! The same algorithm types are used by the profile validator, the MTU arithmetic and the
//! IKE engine, so a keyword accepted here is exactly one the engine can negotiate.

use std::fmt;

/// Encryption transform (IKEv2 transform type 1). One variant per IANA transform ID: the
/// ICV length of an AEAD cipher is part of its ID, the key length an attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Encryption {
    /// AES-CBC (RFC 3602), key length in bits.
    AesCbc(u16),
    /// AES-CTR (RFC 3686 for ESP, RFC 5930 for IKE), key length in bits.
    AesCtr(u16),
    /// AES-GCM with an 8-, 12- or 16-octet ICV (RFC 4106, RFC 5282), key length in bits.
    AesGcm8(u16),
    AesGcm12(u16),
    AesGcm16(u16),
    /// AES-CCM with an 8-, 12- or 16-octet ICV (RFC 4309, RFC 5282), key length in bits.
    AesCcm8(u16),
    AesCcm12(u16),
    AesCcm16(u16),
    /// ChaCha20-Poly1305 (RFC 7634): a 256-bit key and no Key Length attribute.
    ChaCha20Poly1305,
}

impl Encryption {
    pub const ENCR_AES_CBC: u16 = 12;
    pub const ENCR_AES_CTR: u16 = 13;
    pub const ENCR_AES_CCM_8: u16 = 14;
    pub const ENCR_AES_CCM_12: u16 = 15;
    pub const ENCR_AES_CCM_16: u16 = 16;
    pub const ENCR_AES_GCM_8: u16 = 18;
    pub const ENCR_AES_GCM_12: u16 = 19;
    pub const ENCR_AES_GCM_16: u16 = 20;
    pub const ENCR_CHACHA20_POLY1305: u16 = 28;

    /// IANA transform ID.
    pub fn transform_id(self) -> u16 {
        match self {
            Encryption::AesCbc(_) => Self::ENCR_AES_CBC,
            Encryption::AesCtr(_) => Self::ENCR_AES_CTR,
            Encryption::AesGcm8(_) => Self::ENCR_AES_GCM_8,
            Encryption::AesGcm12(_) => Self::ENCR_AES_GCM_12,
            Encryption::AesGcm16(_) => Self::ENCR_AES_GCM_16,
            Encryption::AesCcm8(_) => Self::ENCR_AES_CCM_8,
            Encryption::AesCcm12(_) => Self::ENCR_AES_CCM_12,
            Encryption::AesCcm16(_) => Self::ENCR_AES_CCM_16,
            Encryption::ChaCha20Poly1305 => Self::ENCR_CHACHA20_POLY1305,
        }
    }

    pub fn key_bits(self) -> u16 {
        match self {
            Encryption::AesCbc(bits)
            | Encryption::AesCtr(bits)
            | Encryption::AesGcm8(bits)
            | Encryption::AesGcm12(bits)
            | Encryption::AesGcm16(bits)
            | Encryption::AesCcm8(bits)
            | Encryption::AesCcm12(bits)
            | Encryption::AesCcm16(bits) => bits,
            Encryption::ChaCha20Poly1305 => 256,
        }
    }

    /// Whether the transform carries a Key Length attribute (RFC 7634 section 2: ChaCha20's
    /// fixed key length is never sent).
    pub fn has_key_length_attribute(self) -> bool {
        self != Encryption::ChaCha20Poly1305
    }

    /// Builds from an IANA transform ID and its Key Length attribute (if sent), if supported.
    pub fn from_transform(id: u16, key_bits: Option<u16>) -> Option<Self> {
        if id == Self::ENCR_CHACHA20_POLY1305 {
            return key_bits.is_none().then_some(Encryption::ChaCha20Poly1305);
        }
        let bits = key_bits.filter(|b| matches!(b, 128 | 192 | 256))?;
        Some(match id {
            Self::ENCR_AES_CBC => Encryption::AesCbc(bits),
            Self::ENCR_AES_CTR => Encryption::AesCtr(bits),
            Self::ENCR_AES_GCM_8 => Encryption::AesGcm8(bits),
            Self::ENCR_AES_GCM_12 => Encryption::AesGcm12(bits),
            Self::ENCR_AES_GCM_16 => Encryption::AesGcm16(bits),
            Self::ENCR_AES_CCM_8 => Encryption::AesCcm8(bits),
            Self::ENCR_AES_CCM_12 => Encryption::AesCcm12(bits),
            Self::ENCR_AES_CCM_16 => Encryption::AesCcm16(bits),
            _ => return None,
        })
    }

    pub fn is_aead(self) -> bool {
        self.aead_icv_len() != 0
    }

    /// Octets of salt / nonce taken from the key stream after the key and kept secret: 4 for
    /// GCM (RFC 4106 section 8.1), CTR (RFC 3686 section 5.1) and ChaCha20-Poly1305 (RFC 7634
    /// section 2), 3 for CCM (RFC 4309 section 7.1). The kernel takes them at the key's end.
    pub fn salt_len(self) -> usize {
        match self {
            Encryption::AesCbc(_) => 0,
            Encryption::AesCcm8(_) | Encryption::AesCcm12(_) | Encryption::AesCcm16(_) => 3,
            _ => 4,
        }
    }

    /// Key material taken from the key stream: the key followed by its salt.
    pub fn keymat_len(self) -> usize {
        usize::from(self.key_bits() / 8) + self.salt_len()
    }

    /// Explicit IV carried in every ESP / SK payload.
    pub fn iv_len(self) -> usize {
        match self {
            Encryption::AesCbc(_) => 16,
            _ => 8,
        }
    }

    /// The payload plus trailer is padded to a multiple of this (ESP needs at least 4).
    pub fn pad_block(self) -> usize {
        match self {
            Encryption::AesCbc(_) => 16,
            _ => 4,
        }
    }

    /// Integrity check value of an AEAD cipher; 0 for plain ciphers.
    pub fn aead_icv_len(self) -> usize {
        match self {
            Encryption::AesCbc(_) | Encryption::AesCtr(_) => 0,
            Encryption::AesGcm8(_) | Encryption::AesCcm8(_) => 8,
            Encryption::AesGcm12(_) | Encryption::AesCcm12(_) => 12,
            Encryption::AesGcm16(_) | Encryption::AesCcm16(_) => 16,
            Encryption::ChaCha20Poly1305 => 16,
        }
    }
}

impl fmt::Display for Encryption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Encryption::AesCbc(bits) => write!(f, "AES_CBC_{bits}"),
            Encryption::AesCtr(bits) => write!(f, "AES_CTR_{bits}"),
            Encryption::AesGcm8(bits) => write!(f, "AES_GCM_8_{bits}"),
            Encryption::AesGcm12(bits) => write!(f, "AES_GCM_12_{bits}"),
            Encryption::AesGcm16(bits) => write!(f, "AES_GCM_16_{bits}"),
            Encryption::AesCcm8(bits) => write!(f, "AES_CCM_8_{bits}"),
            Encryption::AesCcm12(bits) => write!(f, "AES_CCM_12_{bits}"),
            Encryption::AesCcm16(bits) => write!(f, "AES_CCM_16_{bits}"),
            Encryption::ChaCha20Poly1305 => f.write_str("CHACHA20_POLY1305"),
        }
    }
}

/// Integrity transform (IKEv2 transform type 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Integrity {
    HmacSha1_96,
    /// AES-XCBC-MAC-96 (RFC 3566).
    AesXcbc96,
    /// AES-CMAC-96 (RFC 4494).
    AesCmac96,
    HmacSha256_128,
    HmacSha384_192,
    HmacSha512_256,
}

impl Integrity {
    pub fn transform_id(self) -> u16 {
        match self {
            Integrity::HmacSha1_96 => 2,
            Integrity::AesXcbc96 => 5,
            Integrity::AesCmac96 => 8,
            Integrity::HmacSha256_128 => 12,
            Integrity::HmacSha384_192 => 13,
            Integrity::HmacSha512_256 => 14,
        }
    }

    pub fn from_transform(id: u16) -> Option<Self> {
        match id {
            2 => Some(Integrity::HmacSha1_96),
            5 => Some(Integrity::AesXcbc96),
            8 => Some(Integrity::AesCmac96),
            12 => Some(Integrity::HmacSha256_128),
            13 => Some(Integrity::HmacSha384_192),
            14 => Some(Integrity::HmacSha512_256),
            _ => None,
        }
    }

    /// Key length: the hash output length for HMAC (RFC 4868 section 2.1.1), the AES-128 key
    /// for XCBC (RFC 3566 section 2.1) and CMAC (RFC 4494 section 2).
    pub fn key_len(self) -> usize {
        match self {
            Integrity::HmacSha1_96 => 20,
            Integrity::AesXcbc96 | Integrity::AesCmac96 => 16,
            Integrity::HmacSha256_128 => 32,
            Integrity::HmacSha384_192 => 48,
            Integrity::HmacSha512_256 => 64,
        }
    }

    /// Truncated ICV length.
    pub fn icv_len(self) -> usize {
        match self {
            Integrity::HmacSha1_96 | Integrity::AesXcbc96 | Integrity::AesCmac96 => 12,
            Integrity::HmacSha256_128 => 16,
            Integrity::HmacSha384_192 => 24,
            Integrity::HmacSha512_256 => 32,
        }
    }

    /// The PRF strongSwan derives when an IKE proposal names no PRF.
    pub fn matching_prf(self) -> Prf {
        match self {
            Integrity::HmacSha1_96 => Prf::HmacSha1,
            Integrity::AesXcbc96 => Prf::AesXcbc,
            Integrity::AesCmac96 => Prf::AesCmac,
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
            Integrity::AesXcbc96 => "AES_XCBC_96",
            Integrity::AesCmac96 => "AES_CMAC_96",
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
    /// AES-XCBC-PRF-128 (RFC 4434).
    AesXcbc,
    /// AES-CMAC-PRF-128 (RFC 4615).
    AesCmac,
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

impl Prf {
    pub fn transform_id(self) -> u16 {
        match self {
            Prf::HmacSha1 => 2,
            Prf::AesXcbc => 4,
            Prf::AesCmac => 8,
            Prf::HmacSha256 => 5,
            Prf::HmacSha384 => 6,
            Prf::HmacSha512 => 7,
        }
    }

    pub fn from_transform(id: u16) -> Option<Self> {
        match id {
            2 => Some(Prf::HmacSha1),
            4 => Some(Prf::AesXcbc),
            8 => Some(Prf::AesCmac),
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
            Prf::AesXcbc | Prf::AesCmac => 16,
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
            Prf::AesXcbc => "PRF_AES128_XCBC",
            Prf::AesCmac => "PRF_AES128_CMAC",
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
    Modp1536,
    Modp2048,
    Modp3072,
    Modp4096,
    Modp6144,
    Modp8192,
    Ecp256,
    Ecp384,
    Ecp521,
    Curve25519,
    Curve448,
    /// ML-KEM (FIPS 203), a key encapsulation: the initiator sends the encapsulation key, the
    /// responder the ciphertext (draft-ietf-ipsecme-ikev2-mlkem).
    MlKem512,
    MlKem768,
    MlKem1024,
}

impl DhGroup {
    pub const ALL: [DhGroup; 15] = [
        DhGroup::Modp1024,
        DhGroup::Modp1536,
        DhGroup::Modp2048,
        DhGroup::Modp3072,
        DhGroup::Modp4096,
        DhGroup::Modp6144,
        DhGroup::Modp8192,
        DhGroup::Ecp256,
        DhGroup::Ecp384,
        DhGroup::Ecp521,
        DhGroup::Curve25519,
        DhGroup::Curve448,
        DhGroup::MlKem512,
        DhGroup::MlKem768,
        DhGroup::MlKem1024,
    ];

    pub fn transform_id(self) -> u16 {
        match self {
            DhGroup::Modp1024 => 2,
            DhGroup::Modp1536 => 5,
            DhGroup::Modp2048 => 14,
            DhGroup::Modp3072 => 15,
            DhGroup::Modp4096 => 16,
            DhGroup::Modp6144 => 17,
            DhGroup::Modp8192 => 18,
            DhGroup::Ecp256 => 19,
            DhGroup::Ecp384 => 20,
            DhGroup::Ecp521 => 21,
            DhGroup::Curve25519 => 31,
            DhGroup::Curve448 => 32,
            DhGroup::MlKem512 => 35,
            DhGroup::MlKem768 => 36,
            DhGroup::MlKem1024 => 37,
        }
    }

    /// Whether this is a key encapsulation mechanism, whose two KE payloads differ.
    pub fn is_kem(self) -> bool {
        matches!(
            self,
            DhGroup::MlKem512 | DhGroup::MlKem768 | DhGroup::MlKem1024
        )
    }

    pub fn from_transform(id: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.transform_id() == id)
    }

    /// Length of the initiator's Key Exchange Data (RFC 7296 / RFC 5903 / RFC 8031; for
    /// ML-KEM the encapsulation key, FIPS 203 table 3).
    pub fn public_len(self) -> usize {
        match self {
            DhGroup::Modp1024 => 128,
            DhGroup::Modp1536 => 192,
            DhGroup::Modp2048 => 256,
            DhGroup::Modp3072 => 384,
            DhGroup::Modp4096 => 512,
            DhGroup::Modp6144 => 768,
            DhGroup::Modp8192 => 1024,
            DhGroup::Ecp256 => 64,
            DhGroup::Ecp384 => 96,
            // Two 66-octet coordinates (521 bits rounded up, RFC 5903 section 7).
            DhGroup::Ecp521 => 132,
            DhGroup::Curve25519 => 32,
            DhGroup::Curve448 => 56,
            DhGroup::MlKem512 => 800,
            DhGroup::MlKem768 => 1184,
            DhGroup::MlKem1024 => 1568,
        }
    }

    /// Length of the responder's Key Exchange Data: the ciphertext for ML-KEM, else the
    /// same as the initiator's.
    pub fn responder_len(self) -> usize {
        match self {
            DhGroup::MlKem512 => 768,
            DhGroup::MlKem768 => 1088,
            DhGroup::MlKem1024 => 1568,
            _ => self.public_len(),
        }
    }
}

impl fmt::Display for DhGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DhGroup::Modp1024 => "MODP_1024",
            DhGroup::Modp1536 => "MODP_1536",
            DhGroup::Modp2048 => "MODP_2048",
            DhGroup::Modp3072 => "MODP_3072",
            DhGroup::Modp4096 => "MODP_4096",
            DhGroup::Modp6144 => "MODP_6144",
            DhGroup::Modp8192 => "MODP_8192",
            DhGroup::Ecp256 => "ECP_256",
            DhGroup::Ecp384 => "ECP_384",
            DhGroup::Ecp521 => "ECP_521",
            DhGroup::Curve25519 => "CURVE_25519",
            DhGroup::Curve448 => "CURVE_448",
            DhGroup::MlKem512 => "ML_KEM_512",
            DhGroup::MlKem768 => "ML_KEM_768",
            DhGroup::MlKem1024 => "ML_KEM_1024",
        })
    }
}

/// Number of Additional Key Exchange transform types, ADDKE1..ADDKE7 (RFC 9370 section 2.2).
pub const ADDITIONAL_KE_SLOTS: usize = 7;

/// The methods offered for each additional key exchange (`ke1_` .. `ke7_`), in preference
/// order; `None` is the NONE transform, which makes that exchange optional. An empty slot is
/// not offered at all.
pub type AdditionalKes = [Vec<Option<DhGroup>>; ADDITIONAL_KE_SLOTS];

/// An IKE SA proposal: every combination of the listed algorithms is acceptable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IkeProposal {
    pub encryption: Vec<Encryption>,
    pub integrity: Vec<Integrity>,
    pub prf: Vec<Prf>,
    pub dh: Vec<DhGroup>,
    pub additional: AdditionalKes,
}

/// An ESP proposal. An empty `dh` means no PFS on CREATE_CHILD_SA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EspProposal {
    pub encryption: Vec<Encryption>,
    pub integrity: Vec<Integrity>,
    pub dh: Vec<DhGroup>,
    /// Additional key exchanges on CREATE_CHILD_SA (RFC 9370), after the PFS group.
    pub additional: AdditionalKes,
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
    /// `ke<n>_<group>` / `ke<n>_none`: slot `n - 1` of [`AdditionalKes`].
    AddKe(usize, Option<DhGroup>),
    Esn(bool),
}

const LEGACY_SHA1: &str =
    "SHA-1 is deprecated for IPsec (RFC 8221/8247); accept it only when the peer cannot do SHA-2";
const LEGACY_MODP1024: &str =
    "MODP-1024 is within reach of well-funded attackers (Logjam); RFC 8247 says SHOULD NOT";
const LEGACY_MODP1536: &str =
    "MODP-1536 (group 5) is below the 2048 bits RFC 8247 asks for; RFC 8247 says SHOULD NOT";

/// An AES keyword in strongSwan's syntax: `aes<bits>` (CBC), `aes<bits>ctr`,
/// `aes<bits>gcm<icv>` and `aes<bits>ccm<icv>`, the ICV in octets (8/12/16) or bits
/// (64/96/128); a bare `gcm` / `ccm` means a 16-octet ICV.
fn aes(word: &str) -> Option<Encryption> {
    let rest = word.strip_prefix("aes")?;
    let (bits, mode) = ["128", "192", "256"]
        .into_iter()
        .find_map(|b| Some((b.parse().ok()?, rest.strip_prefix(b)?)))?;
    let icv = |suffix: &str| match suffix {
        "8" | "64" => Some(8),
        "12" | "96" => Some(12),
        "" | "16" | "128" => Some(16),
        _ => None,
    };
    Some(match mode {
        "" => Encryption::AesCbc(bits),
        "ctr" => Encryption::AesCtr(bits),
        _ => {
            if let Some(suffix) = mode.strip_prefix("gcm") {
                match icv(suffix)? {
                    8 => Encryption::AesGcm8(bits),
                    12 => Encryption::AesGcm12(bits),
                    _ => Encryption::AesGcm16(bits),
                }
            } else {
                match icv(mode.strip_prefix("ccm")?)? {
                    8 => Encryption::AesCcm8(bits),
                    12 => Encryption::AesCcm12(bits),
                    _ => Encryption::AesCcm16(bits),
                }
            }
        }
    })
}

/// strongSwan 6's additional key exchange keywords: `ke1_mlkem768`, `ke3_none`.
fn additional_ke(word: &str) -> Option<(Keyword, Option<&'static str>)> {
    let rest = word.strip_prefix("ke")?;
    let (digit, method) = rest.split_once('_')?;
    let slot = match digit.parse::<usize>() {
        Ok(n @ 1..=ADDITIONAL_KE_SLOTS) if digit.len() == 1 => n - 1,
        _ => return None,
    };
    if method == "none" {
        return Some((Keyword::AddKe(slot, None), None));
    }
    match lookup(method)? {
        (Keyword::Dh(group), legacy) => Some((Keyword::AddKe(slot, Some(group)), legacy)),
        _ => None,
    }
}

/// A keyword routevpn implements, with the reason it is legacy (needs `allow_legacy`), if it is.
fn lookup(word: &str) -> Option<(Keyword, Option<&'static str>)> {
    use Keyword::*;
    let modern = |k| Some((k, None));
    if let Some(e) = aes(word) {
        return modern(Encr(e));
    }
    if word.starts_with("ke") {
        return additional_ke(word);
    }
    match word {
        "chacha20poly1305" => modern(Encr(Encryption::ChaCha20Poly1305)),
        "sha256" | "sha2_256" => modern(Integ(Integrity::HmacSha256_128)),
        "sha384" | "sha2_384" => modern(Integ(Integrity::HmacSha384_192)),
        "sha512" | "sha2_512" => modern(Integ(Integrity::HmacSha512_256)),
        "aesxcbc" => modern(Integ(Integrity::AesXcbc96)),
        "aescmac" => modern(Integ(Integrity::AesCmac96)),
        "prfsha256" => modern(Prf(self::Prf::HmacSha256)),
        "prfsha384" => modern(Prf(self::Prf::HmacSha384)),
        "prfsha512" => modern(Prf(self::Prf::HmacSha512)),
        "prfaesxcbc" => modern(Prf(self::Prf::AesXcbc)),
        "prfaescmac" => modern(Prf(self::Prf::AesCmac)),
        "modp2048" => modern(Dh(DhGroup::Modp2048)),
        "modp3072" => modern(Dh(DhGroup::Modp3072)),
        "modp4096" => modern(Dh(DhGroup::Modp4096)),
        "modp6144" => modern(Dh(DhGroup::Modp6144)),
        "modp8192" => modern(Dh(DhGroup::Modp8192)),
        "ecp256" => modern(Dh(DhGroup::Ecp256)),
        "ecp384" => modern(Dh(DhGroup::Ecp384)),
        "ecp521" => modern(Dh(DhGroup::Ecp521)),
        "curve25519" | "x25519" => modern(Dh(DhGroup::Curve25519)),
        "curve448" | "x448" => modern(Dh(DhGroup::Curve448)),
        "mlkem512" => modern(Dh(DhGroup::MlKem512)),
        "mlkem768" => modern(Dh(DhGroup::MlKem768)),
        "mlkem1024" => modern(Dh(DhGroup::MlKem1024)),
        "esn" => modern(Esn(true)),
        "noesn" => modern(Esn(false)),
        "sha1" | "sha" => Some((Integ(Integrity::HmacSha1_96), Some(LEGACY_SHA1))),
        "prfsha1" => Some((Prf(self::Prf::HmacSha1), Some(LEGACY_SHA1))),
        "modp1024" => Some((Dh(DhGroup::Modp1024), Some(LEGACY_MODP1024))),
        "modp1536" => Some((Dh(DhGroup::Modp1536), Some(LEGACY_MODP1536))),
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
        "modp768" | "modp1024s160" | "modp2048s224" | "modp2048s256" => {
            Some("this group is too small or has a suspect subgroup (RFC 8247)")
        }
        _ => None,
    }
}

/// Real algorithms (strongSwan keywords) that routevpn's engine does not implement.
fn is_unimplemented(word: &str) -> bool {
    matches!(
        word,
        "camellia128"
            | "camellia192"
            | "camellia256"
            | "sha256_96"
            | "ecp192"
            | "ecp224"
            | "ecp256bp"
            | "ecp384bp"
            | "ecp512bp"
    )
}

const SUPPORTED_HINT: &str = "supported: aes128 aes192 aes256 (CBC), aes256ctr, \
aes256gcm16/12/8, aes256ccm16/12/8, chacha20poly1305, sha256 sha384 sha512 aesxcbc aescmac, \
prfsha256 prfsha384 prfsha512 prfaesxcbc prfaescmac, modp2048 modp3072 modp4096 modp6144 \
modp8192 ecp256 ecp384 ecp521 x25519 x448 mlkem512 mlkem768 mlkem1024, and additional key \
exchanges ke1_<group> .. ke7_<group> (ke<n>_none makes one optional)";

/// The legacy keywords of a proposal string, each with its byte offset and why it is legacy:
/// the validator warns about every one it accepts under `allow_legacy`.
pub fn legacy_keywords(text: &str) -> Vec<(usize, &str, &'static str)> {
    let mut offset = 0;
    let mut out = Vec::new();
    for word in text.split('-') {
        if let Some((_, Some(why))) = lookup(word) {
            out.push((offset, word, why));
        }
        offset += word.len() + 1;
    }
    out
}

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
    additional: AdditionalKes,
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
        additional: Default::default(),
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
            Keyword::AddKe(slot, method) => push_unique(&mut parsed.additional[slot], method),
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
    check_additional(text, p)?;
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

/// Additional key exchanges follow a main one, and each offered slot names a method.
fn check_additional(text: &str, p: &Parsed) -> Result<(), ProposalError> {
    let offered = p
        .additional
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.is_empty());
    for (slot, methods) in offered {
        let token = format!("ke{}_", slot + 1);
        let at = |message: String, hint: String| ProposalError {
            offset: text.find(&token).unwrap_or(0),
            token: text
                .split('-')
                .find(|w| w.starts_with(&token))
                .unwrap_or(text)
                .to_string(),
            message,
            hint: Some(hint),
        };
        if p.dh.is_empty() {
            return Err(at(
                format!("additional key exchange {token}* without a main key exchange group"),
                "add a main group before it, e.g. x25519-ke1_mlkem768".into(),
            ));
        }
        if methods.iter().all(Option::is_none) {
            return Err(at(
                format!(
                    "{token}none makes additional key exchange {} optional but names no method",
                    slot + 1
                ),
                format!("add a method, e.g. {token}mlkem768, or remove {token}none"),
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
        additional: p.additional,
    })
}

/// Parses one ESP proposal. Without `esn` / `noesn` only "no ESN" is offered, as strongSwan does.
pub fn parse_esp(text: &str, allow_legacy: bool) -> Result<EspProposal, ProposalError> {
    let p = parse(text, Kind::Esp, allow_legacy)?;
    Ok(EspProposal {
        encryption: p.encryption,
        integrity: p.integrity,
        dh: p.dh,
        additional: p.additional,
        esn: if p.esn.is_empty() { vec![false] } else { p.esn },
    })
}

/// The keyword swanctl.conf writes for each algorithm, in the order proposals list them.
const KEYWORDS: [&str; 24] = [
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
    "mlkem512",
    "mlkem768",
    "mlkem1024",
];

fn keyword(k: Keyword) -> String {
    if let Keyword::AddKe(slot, method) = k {
        let name = method.map_or_else(|| "none".to_string(), |g| keyword(Keyword::Dh(g)));
        return format!("ke{}_{name}", slot + 1);
    }
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
            .chain(self.dh.iter().map(|&d| keyword(Keyword::Dh(d))))
            .chain(additional_keywords(&self.additional));
        words.collect::<Vec<_>>().join("-")
    }
}

fn additional_keywords(additional: &AdditionalKes) -> impl Iterator<Item = String> + '_ {
    (additional.iter().enumerate()).flat_map(|(slot, methods)| {
        methods
            .iter()
            .map(move |&m| keyword(Keyword::AddKe(slot, m)))
    })
}

/// `ADDKE1:ML_KEM_768`, `ADDKE1:NONE`, as the proposal's Display names them.
fn additional_names(additional: &AdditionalKes) -> impl Iterator<Item = String> + '_ {
    (additional.iter().enumerate()).flat_map(|(slot, methods)| {
        methods.iter().map(move |m| {
            let name = m.map_or_else(|| "NONE".to_string(), |g| g.to_string());
            format!("ADDKE{}:{name}", slot + 1)
        })
    })
}

impl EspProposal {
    /// The proposal as swanctl.conf writes it: `aes256gcm16-ecp256-esn`.
    pub fn keywords(&self) -> String {
        let mut words: Vec<String> = (self.encryption.iter())
            .map(|&e| keyword(Keyword::Encr(e)))
            .chain(self.integrity.iter().map(|&i| keyword(Keyword::Integ(i))))
            .chain(self.dh.iter().map(|&d| keyword(Keyword::Dh(d))))
            .chain(additional_keywords(&self.additional))
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
            .chain(additional_names(&self.additional))
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
            .chain(additional_names(&self.additional))
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
    fn ml_kem_and_additional_key_exchanges_as_strongswan_6_writes_them() {
        let text = "aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke1_none-ke3_mlkem1024";
        let p = parse_ike(text, false).unwrap();
        assert_eq!(p.dh, vec![DhGroup::Curve25519]);
        assert_eq!(p.additional[0], vec![Some(DhGroup::MlKem768), None]);
        assert!(p.additional[1].is_empty());
        assert_eq!(p.additional[2], vec![Some(DhGroup::MlKem1024)]);
        assert_eq!(p.keywords(), text);
        assert_eq!(parse_ike(&p.keywords(), false).unwrap(), p);
        assert_eq!(
            p.to_string(),
            "AES_GCM_16_256/PRF_HMAC_SHA2_384/CURVE_25519/ADDKE1:ML_KEM_768/ADDKE1:NONE/\
ADDKE3:ML_KEM_1024"
        );
        let pure = parse_ike("aes256gcm16-prfsha256-mlkem512", false).unwrap();
        assert_eq!(pure.dh, vec![DhGroup::MlKem512]);
        let esp = parse_esp("aes256gcm16-ecp384-ke1_mlkem768-ke2_ecp256", false).unwrap();
        assert_eq!(esp.keywords(), "aes256gcm16-ecp384-ke1_mlkem768-ke2_ecp256");
        for (group, id, ek, ct) in [
            (DhGroup::MlKem512, 35, 800, 768),
            (DhGroup::MlKem768, 36, 1184, 1088),
            (DhGroup::MlKem1024, 37, 1568, 1568),
        ] {
            assert_eq!(group.transform_id(), id);
            assert_eq!((group.public_len(), group.responder_len()), (ek, ct));
            assert!(group.is_kem());
        }
    }

    #[test]
    fn additional_key_exchange_mistakes_are_located() {
        let err = |text: &str| parse_ike(text, false).unwrap_err();
        let e = err("aes256gcm16-prfsha256-x25519-ke8_mlkem768");
        assert_eq!(
            (e.offset, e.message.as_str()),
            (29, "unknown algorithm `ke8_mlkem768`")
        );
        assert_eq!(
            err("aes256gcm16-prfsha256-x25519-ke1_mlkem").token,
            "ke1_mlkem"
        );
        let e = err("aes256gcm16-prfsha256-x25519-ke2_none");
        assert_eq!((e.offset, e.token.as_str()), (29, "ke2_none"));
        assert!(e.message.contains("names no method"), "{}", e.message);
        let e = err("aes256gcm16-prfsha256-x25519-ke1_x448-ke1_x448");
        assert_eq!(
            (e.offset, e.message.as_str()),
            (38, "`ke1_x448` is listed twice")
        );
        let e = err("aes256gcm16-prfsha256-x25519-ke1_modp1024");
        assert!(
            e.message.starts_with("legacy algorithm `ke1_modp1024`"),
            "{}",
            e.message
        );
        let e = parse_esp("aes256gcm16-ke1_mlkem768", false).unwrap_err();
        assert_eq!((e.offset, e.token.as_str()), (12, "ke1_mlkem768"));
        assert!(
            e.message.contains("without a main key exchange"),
            "{}",
            e.message
        );
    }

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
        let e = parse_esp("camellia256-sha256", false).unwrap_err();
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
        for d in DhGroup::ALL {
            assert_eq!(DhGroup::from_transform(d.transform_id()), Some(d));
        }
        for e in [
            Encryption::AesCbc(128),
            Encryption::AesCtr(192),
            Encryption::AesGcm8(256),
            Encryption::AesGcm12(128),
            Encryption::AesGcm16(256),
            Encryption::AesCcm8(128),
            Encryption::AesCcm12(192),
            Encryption::AesCcm16(256),
        ] {
            let bits = Some(e.key_bits());
            assert_eq!(Encryption::from_transform(e.transform_id(), bits), Some(e));
            assert_eq!(Encryption::from_transform(e.transform_id(), None), None);
        }
        // RFC 7634 section 2: no Key Length attribute for ChaCha20-Poly1305.
        let chacha = Encryption::ChaCha20Poly1305;
        assert!(!chacha.has_key_length_attribute());
        assert_eq!(Encryption::from_transform(28, None), Some(chacha));
        assert_eq!(Encryption::from_transform(28, Some(256)), None);
        for i in [Integrity::AesXcbc96, Integrity::AesCmac96] {
            assert_eq!(Integrity::from_transform(i.transform_id()), Some(i));
        }
        for p in [Prf::AesXcbc, Prf::AesCmac] {
            assert_eq!(Prf::from_transform(p.transform_id()), Some(p));
        }
    }

    #[test]
    fn partner_sheet_keywords_parse() {
        let cases = [
            (
                "chacha20poly1305-prfsha256-x448",
                Encryption::ChaCha20Poly1305,
            ),
            ("aes128ctr-aesxcbc-ecp521", Encryption::AesCtr(128)),
            ("aes256ccm8-prfaescmac-modp6144", Encryption::AesCcm8(256)),
            ("aes192ccm96-prfsha384-modp8192", Encryption::AesCcm12(192)),
            ("aes128ccm-prfsha256-ecp256", Encryption::AesCcm16(128)),
            ("aes256gcm64-prfsha256-ecp256", Encryption::AesGcm8(256)),
            ("aes128gcm12-prfsha256-ecp256", Encryption::AesGcm12(128)),
        ];
        for (text, encr) in cases {
            let p = parse_ike(text, false).unwrap();
            assert_eq!(p.encryption, vec![encr], "{text}");
        }
        let p = parse_ike("aes128-aesxcbc-curve448", false).unwrap();
        assert_eq!(p.prf, vec![Prf::AesXcbc]);
        assert_eq!(p.dh, vec![DhGroup::Curve448]);
        let p = parse_ike("aes128-aescmac-ecp521", false).unwrap();
        assert_eq!(p.prf, vec![Prf::AesCmac]);
        let p = parse_esp("aes256ctr-aescmac", false).unwrap();
        assert_eq!(p.integrity, vec![Integrity::AesCmac96]);
        // CTR is no AEAD: it needs integrity, and cannot be mixed with AEAD ciphers.
        assert!(parse_esp("aes256ctr", false).is_err());
        assert!(parse_esp("aes256ctr-aes256gcm16", false).is_err());
        // An ICV length the IANA registry does not have.
        let e = parse_esp("aes128gcm10", false).unwrap_err();
        assert_eq!((e.offset, e.token.as_str()), (0, "aes128gcm10"));
    }

    #[test]
    fn group_5_is_legacy_and_located() {
        let e = parse_ike("aes256-sha256-modp1536", false).unwrap_err();
        assert_eq!((e.offset, e.token.as_str()), (14, "modp1536"));
        assert!(e.message.contains("legacy"));
        let p = parse_ike("aes256-sha256-modp1536", true).unwrap();
        assert_eq!(p.dh, vec![DhGroup::Modp1536]);
        assert_eq!(
            legacy_keywords("aes256-sha1-modp1536")
                .iter()
                .map(|(at, word, _)| (*at, *word))
                .collect::<Vec<_>>(),
            vec![(7, "sha1"), (12, "modp1536")]
        );
        assert!(legacy_keywords("aes256-sha256-modp2048").is_empty());
    }
}
