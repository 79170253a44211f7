//! Kernel (crypto API) names of the ESP algorithms, and the key layout each one takes.
//!
//! The names are those of strongSwan's `kernel_netlink_ipsec.c` table and the kernel's
//! `net/xfrm/xfrm_algo.c`. Every key with a salt or nonce carries it at its end, and the key
//! length given to the kernel counts it (so AES-128-GCM is 160 bits):
//!
//! | algorithm | attribute | name | key | ICV |
//! |---|---|---|---|---|
//! | AES-CBC | ALG_CRYPT | `cbc(aes)` | key | (integrity) |
//! | AES-CTR | ALG_CRYPT | `rfc3686(ctr(aes))` | key + 4-octet nonce (RFC 3686 section 5.1) | (integrity) |
//! | AES-GCM | ALG_AEAD | `rfc4106(gcm(aes))` | key + 4-octet salt (RFC 4106 section 8.1) | 64/96/128 bits |
//! | AES-CCM | ALG_AEAD | `rfc4309(ccm(aes))` | key + 3-octet salt (RFC 4309 section 7.1) | 64/96/128 bits |
//! | ChaCha20-Poly1305 | ALG_AEAD | `rfc7539esp(chacha20,poly1305)` | 256-bit key + 4-octet salt (RFC 7634 section 2) | 128 bits |
//! | HMAC-SHA1/SHA2 | ALG_AUTH_TRUNC | `hmac(sha1)`, `hmac(sha256)`, ... | hash-length key | 96/128/192/256 bits |
//! | AES-XCBC-96 | ALG_AUTH_TRUNC | `xcbc(aes)` | 128 bits | 96 bits |
//! | AES-CMAC-96 | ALG_AUTH_TRUNC | `cmac(aes)` | 128 bits | 96 bits |

use crate::proposal::{Encryption, Integrity};

/// Every cipher the kernel is given, for reading SAs back.
const CIPHERS: [fn(u16) -> Encryption; 8] = [
    Encryption::AesCbc,
    Encryption::AesCtr,
    Encryption::AesGcm8,
    Encryption::AesGcm12,
    Encryption::AesGcm16,
    Encryption::AesCcm8,
    Encryption::AesCcm12,
    Encryption::AesCcm16,
];

const INTEGRITY: [Integrity; 6] = [
    Integrity::HmacSha1_96,
    Integrity::HmacSha256_128,
    Integrity::HmacSha384_192,
    Integrity::HmacSha512_256,
    Integrity::AesXcbc96,
    Integrity::AesCmac96,
];

pub fn encryption_name(e: Encryption) -> &'static str {
    match e {
        Encryption::AesCbc(_) => "cbc(aes)",
        Encryption::AesCtr(_) => "rfc3686(ctr(aes))",
        Encryption::AesGcm8(_) | Encryption::AesGcm12(_) | Encryption::AesGcm16(_) => {
            "rfc4106(gcm(aes))"
        }
        Encryption::AesCcm8(_) | Encryption::AesCcm12(_) | Encryption::AesCcm16(_) => {
            "rfc4309(ccm(aes))"
        }
        Encryption::ChaCha20Poly1305 => "rfc7539esp(chacha20,poly1305)",
    }
}

/// The cipher of a kernel SA: its name, key length with salt (octets) and, for AEAD, the
/// ICV length in bits (0 for a plain cipher).
pub fn encryption_from_kernel(name: &str, key_len: usize, icv_bits: u32) -> Option<Encryption> {
    let candidates = CIPHERS
        .iter()
        .filter_map(|make| {
            let salt = make(128).salt_len();
            let bits = u16::try_from(key_len.checked_sub(salt)? * 8).ok()?;
            Some(make(bits))
        })
        .chain([Encryption::ChaCha20Poly1305]);
    let mut matching = candidates.filter(|e| {
        encryption_name(*e) == name
            && e.keymat_len() == key_len
            && matches!(e.key_bits(), 128 | 192 | 256)
            && e.aead_icv_len() * 8 == icv_bits as usize
    });
    matching.next()
}

pub fn integrity_name(i: Integrity) -> &'static str {
    match i {
        Integrity::HmacSha1_96 => "hmac(sha1)",
        Integrity::HmacSha256_128 => "hmac(sha256)",
        Integrity::HmacSha384_192 => "hmac(sha384)",
        Integrity::HmacSha512_256 => "hmac(sha512)",
        Integrity::AesXcbc96 => "xcbc(aes)",
        Integrity::AesCmac96 => "cmac(aes)",
    }
}

pub fn integrity_from_kernel(name: &str, trunc_bits: u32) -> Option<Integrity> {
    INTEGRITY
        .into_iter()
        .find(|i| integrity_name(*i) == name && i.icv_len() * 8 == trunc_bits as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_reads_back_from_its_kernel_form() {
        let ciphers = CIPHERS
            .iter()
            .flat_map(|make| [128, 192, 256].map(make))
            .chain([Encryption::ChaCha20Poly1305]);
        for e in ciphers {
            let icv = (e.aead_icv_len() * 8) as u32;
            let back = encryption_from_kernel(encryption_name(e), e.keymat_len(), icv);
            assert_eq!(back, Some(e), "{e}");
        }
        for i in INTEGRITY {
            assert_eq!(
                integrity_from_kernel(integrity_name(i), (i.icv_len() * 8) as u32),
                Some(i)
            );
        }
        // A GCM key without its salt, or with an ICV the ID does not have, is none of ours.
        assert_eq!(encryption_from_kernel("rfc4106(gcm(aes))", 16, 128), None);
        assert_eq!(encryption_from_kernel("rfc4106(gcm(aes))", 20, 32), None);
        assert_eq!(integrity_from_kernel("xcbc(aes)", 128), None);
    }
}
