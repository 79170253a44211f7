//! AES-128 MACs for IKE and ESP integrity and as PRFs: AES-XCBC-MAC (RFC 3566; OpenSSL has
//! no XCBC, so it is built here on AES-ECB) and AES-CMAC (RFC 4493, OpenSSL's CMAC).
//!
//! As integrity algorithms (AES-XCBC-96, RFC 3566; AES-CMAC-96, RFC 4494) both take exactly a
//! 16-octet key and send the first 96 bits. As PRFs (AES-XCBC-PRF-128, RFC 4434;
//! AES-CMAC-PRF-128, RFC 4615) they take keys of any length through [`prf_key`].

use openssl::cipher::Cipher;
use openssl::cipher_ctx::CipherCtx;
use openssl::pkey::PKey;
use openssl::sign::Signer;
use zeroize::{Zeroize, Zeroizing};

use super::{CryptoError, Result};

pub(crate) const BLOCK: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AesMac {
    Xcbc,
    Cmac,
}

/// A 128-bit AES MAC value.
pub(crate) type Tag = Zeroizing<[u8; BLOCK]>;

impl AesMac {
    /// The MAC of the concatenated `parts` under the 16-octet `key`.
    pub(crate) fn compute(self, key: &[u8], parts: &[&[u8]]) -> Result<Tag> {
        if key.len() != BLOCK {
            return Err(CryptoError::BadLength {
                what: "AES MAC key",
                expected: BLOCK,
                actual: key.len(),
            });
        }
        match self {
            AesMac::Xcbc => xcbc(key, parts),
            AesMac::Cmac => cmac(key, parts),
        }
    }

    /// The 16-octet key a PRF of any key length uses. XCBC (RFC 4434 section 2): shorter keys
    /// are zero-padded, longer ones replaced by their MAC under the all-zero key. CMAC (RFC
    /// 4615 section 3): any key that is not 16 octets is replaced by its MAC under the
    /// all-zero key.
    pub(crate) fn prf_key(self, key: &[u8]) -> Result<Tag> {
        let mut out = Zeroizing::new([0u8; BLOCK]);
        match (self, key.len()) {
            (_, BLOCK) => out.copy_from_slice(key),
            (AesMac::Xcbc, n) if n < BLOCK => out[..n].copy_from_slice(key),
            _ => return self.compute(&[0; BLOCK], &[key]),
        }
        Ok(out)
    }
}

/// One AES-128 block encryption under a prepared ECB context.
fn encrypt_block(ctx: &mut CipherCtx, block: &mut [u8; BLOCK]) -> Result<()> {
    let mut out = [0u8; 2 * BLOCK];
    let n = ctx.cipher_update(&block[..], Some(&mut out))?;
    debug_assert_eq!(n, BLOCK);
    block.copy_from_slice(&out[..BLOCK]);
    out.zeroize();
    Ok(())
}

fn ecb(key: &[u8]) -> Result<CipherCtx> {
    let mut ctx = CipherCtx::new()?;
    ctx.encrypt_init(Some(Cipher::aes_128_ecb()), Some(key), None)?;
    ctx.set_padding(false);
    Ok(ctx)
}

/// AES-XCBC-MAC (RFC 3566 section 4): CBC-MAC under K1 = AES-K(0x01..), the last block
/// XORed with K2 = AES-K(0x02..) if complete, else padded with 0x80 0x00.. and XORed with
/// K3 = AES-K(0x03..).
fn xcbc(key: &[u8], parts: &[&[u8]]) -> Result<Tag> {
    let mut base = ecb(key)?;
    let mut derived = |fill: u8| -> Result<Tag> {
        let mut k = Zeroizing::new([fill; BLOCK]);
        encrypt_block(&mut base, &mut k)?;
        Ok(k)
    };
    let (k1, k2, k3) = (derived(1)?, derived(2)?, derived(3)?);
    let mut ctx = ecb(&k1[..])?;

    let message = Zeroizing::new(parts.concat());
    // Every block but the last (which may be partial or, for an empty message, empty).
    let last_start = message.len().saturating_sub(1) / BLOCK * BLOCK;
    let mut state = Zeroizing::new([0u8; BLOCK]);
    for block in message[..last_start].chunks_exact(BLOCK) {
        state.iter_mut().zip(block).for_each(|(s, m)| *s ^= m);
        encrypt_block(&mut ctx, &mut state)?;
    }
    let last = &message[last_start..];
    let mask = if last.len() == BLOCK {
        &k2
    } else {
        state[last.len()] ^= 0x80;
        &k3
    };
    state.iter_mut().zip(last).for_each(|(s, m)| *s ^= m);
    state.iter_mut().zip(mask.iter()).for_each(|(s, k)| *s ^= k);
    encrypt_block(&mut ctx, &mut state)?;
    Ok(state)
}

fn cmac(key: &[u8], parts: &[&[u8]]) -> Result<Tag> {
    let pkey = PKey::cmac(&openssl::symm::Cipher::aes_128_cbc(), key)?;
    let mut signer = Signer::new_without_digest(&pkey)?;
    for part in parts {
        signer.update(part)?;
    }
    let mut tag = Zeroizing::new([0u8; BLOCK]);
    let n = signer.sign(&mut tag[..])?;
    debug_assert_eq!(n, BLOCK);
    Ok(tag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ike::crypto::testutil::hex;

    fn message(len: usize) -> Vec<u8> {
        (0..len as u8).collect()
    }

    /// RFC 3566 section 4.6, test cases 1-6 (key 000102..0f, messages 000102.. of 0, 3, 16,
    /// 20, 32 and 34 octets); the 96-bit ICV is the start of each.
    #[test]
    fn xcbc_rfc3566_vectors() {
        let key = hex("000102030405060708090a0b0c0d0e0f");
        for (len, expected) in [
            (0, "75f0251d528ac01c4573dfd584d79f29"),
            (3, "5b376580ae2f19afe7219ceef172756f"),
            (16, "d2a246fa349b68a79998a4394ff7a263"),
            (20, "47f51b4564966215b8985c63055ed308"),
            (32, "f54f0ec8d2b9f3d36807734bd5283fd4"),
            (34, "becbb3bccdb518a30677d5481fb6b4d8"),
        ] {
            let tag = AesMac::Xcbc.compute(&key, &[&message(len)]).unwrap();
            assert_eq!(tag[..], hex(expected)[..], "{len} octets");
        }
        // Split input gives the same MAC as the concatenation.
        let m = message(34);
        let split = AesMac::Xcbc.compute(&key, &[&m[..5], &m[5..]]).unwrap();
        assert_eq!(split[..], hex("becbb3bccdb518a30677d5481fb6b4d8")[..]);
    }

    /// RFC 4434 section 4: AES-XCBC-PRF-128 with keys of 16, 10 and 18 octets over the
    /// 20-octet message 000102..13.
    #[test]
    fn xcbc_prf_rfc4434_key_lengths() {
        let m = message(20);
        for (key, expected) in [
            (
                "000102030405060708090a0b0c0d0e0f",
                "47f51b4564966215b8985c63055ed308",
            ),
            ("00010203040506070809", "0fa087af7d866e7653434e602fdde835"),
            (
                "000102030405060708090a0b0c0d0e0fedcb",
                "8cd3c93ae598a9803006ffb67c40e9e4",
            ),
        ] {
            let k = AesMac::Xcbc.prf_key(&hex(key)).unwrap();
            let out = AesMac::Xcbc.compute(&k[..], &[&m]).unwrap();
            assert_eq!(out[..], hex(expected)[..], "key {key}");
        }
    }

    /// RFC 4493 section 4 examples 1-4 (AES-CMAC; RFC 4494's CMAC-96 is their start).
    #[test]
    fn cmac_rfc4493_vectors() {
        let key = hex("2b7e151628aed2a6abf7158809cf4f3c");
        let m = hex(
            "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51\
             30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710",
        );
        for (len, expected) in [
            (0, "bb1d6929e95937287fa37d129b756746"),
            (16, "070a16b46b4d4144f79bdd9dd04a287c"),
            (40, "dfa66747de9ae63030ca32611497c827"),
            (64, "51f0bebf7e3b9d92fc49741779363cfe"),
        ] {
            let tag = AesMac::Cmac.compute(&key, &[&m[..len]]).unwrap();
            assert_eq!(tag[..], hex(expected)[..], "{len} octets");
        }
    }

    /// RFC 4615 section 4: AES-CMAC-PRF-128 with keys of 18, 16 and 10 octets.
    #[test]
    fn cmac_prf_rfc4615_key_lengths() {
        let m = message(20);
        for (key, expected) in [
            (
                "000102030405060708090a0b0c0d0e0fedcb",
                "84a348a4a45d235babfffc0d2b4da09a",
            ),
            (
                "000102030405060708090a0b0c0d0e0f",
                "980ae87b5f4c9c5214f5b6a8455e4c2d",
            ),
            ("00010203040506070809", "290d9e112edb09ee141fcf64c0b72f3d"),
        ] {
            let k = AesMac::Cmac.prf_key(&hex(key)).unwrap();
            let out = AesMac::Cmac.compute(&k[..], &[&m]).unwrap();
            assert_eq!(out[..], hex(expected)[..], "key {key}");
        }
    }

    #[test]
    fn raw_mac_needs_a_16_octet_key() {
        assert!(AesMac::Xcbc.compute(&[0; 15], &[b"x"]).is_err());
        assert!(AesMac::Cmac.compute(&[0; 17], &[b"x"]).is_err());
    }
}
