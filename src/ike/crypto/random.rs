//! Nonces, SPIs and IVs from the operating system's RNG (getrandom(2)).

use rand::rngs::OsRng;
use rand::RngCore;

use super::{CryptoError, Result};

/// Default nonce length: 256 bits, at least half the key size of every supported PRF
/// (RFC 7296 section 2.10).
pub const NONCE_LEN: usize = 32;
/// Nonce Data length limits (RFC 7296 section 3.9).
pub const NONCE_MIN_LEN: usize = 16;
pub const NONCE_MAX_LEN: usize = 256;

/// Fills `buf` from the OS RNG.
pub fn fill(buf: &mut [u8]) -> Result<()> {
    OsRng.try_fill_bytes(buf).map_err(|_| CryptoError::Rng)
}

/// A fresh nonce of [`NONCE_LEN`] octets.
pub fn nonce() -> Result<Vec<u8>> {
    nonce_of_len(NONCE_LEN)
}

/// A fresh nonce of `len` octets, which must be within 16..=256.
pub fn nonce_of_len(len: usize) -> Result<Vec<u8>> {
    if !(NONCE_MIN_LEN..=NONCE_MAX_LEN).contains(&len) {
        return Err(CryptoError::BadLength {
            what: "nonce",
            expected: NONCE_LEN,
            actual: len,
        });
    }
    let mut nonce = vec![0; len];
    fill(&mut nonce)?;
    Ok(nonce)
}

/// A fresh IKE SA SPI: 8 random octets, never all zero (zero means "not yet known" in the
/// IKE header, RFC 7296 section 3.1).
pub fn ike_spi() -> Result<[u8; 8]> {
    loop {
        let mut spi = [0u8; 8];
        fill(&mut spi)?;
        if spi != [0; 8] {
            return Ok(spi);
        }
    }
}

/// A fresh ESP SPI, outside the range 0..=255 that RFC 4303 reserves.
pub fn esp_spi() -> Result<u32> {
    loop {
        let mut spi = [0u8; 4];
        fill(&mut spi)?;
        let spi = u32::from_be_bytes(spi);
        if spi > 255 {
            return Ok(spi);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_have_the_requested_length_and_differ() {
        let (a, b) = (nonce().unwrap(), nonce().unwrap());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert_eq!(nonce_of_len(16).unwrap().len(), 16);
        assert_eq!(nonce_of_len(256).unwrap().len(), 256);
        assert!(nonce_of_len(15).is_err());
        assert!(nonce_of_len(257).is_err());
    }

    #[test]
    fn spis_are_valid() {
        for _ in 0..100 {
            assert_ne!(ike_spi().unwrap(), [0; 8]);
            assert!(esp_spi().unwrap() > 255);
        }
        assert_ne!(ike_spi().unwrap(), ike_spi().unwrap());
    }
}
