//! IKEv2 cryptography: PRFs, key derivation, SK payload protection, key exchange.
//!
//! Everything here works on byte slices and knows nothing about the message codec. The
//! pieces, in the order a handshake uses them:
//!
//! * [`random`]: nonces and SPIs from the OS RNG.
//! * [`dh`]: [`KeyExchange`] for the MODP, ECP, Curve25519 and Curve448 groups, in KE
//!   payload format.
//! * [`prf`](mod@prf): `prf` and `prf+` (RFC 7296 section 2.13).
//! * [`keys`]: SKEYSEED and the IKE SA keys (section 2.14), rekeyed IKE SAs (2.18) and
//!   Child SA keying material (2.17).
//! * [`cipher`]: the Encrypted (SK) payload, AES-CBC / AES-CTR with an integrity algorithm
//!   (section 3.14, RFC 5930) and the AEAD ciphers AES-GCM, AES-CCM (RFC 5282) and
//!   ChaCha20-Poly1305 (RFC 7634).
//! * `aes_mac`: AES-XCBC and AES-CMAC, for integrity and as PRFs.
//! * [`auth`]: shared-key AUTH payloads (section 2.15).
//!
//! Every secret (keys, DH private values and shared secrets, PSKs) is held in a [`Secret`],
//! which zeroizes its memory on drop and whose `Debug` prints only its length.

mod aes_mac;
pub mod auth;
pub mod cipher;
pub mod dh;
mod hmac;
pub mod integ;
pub mod keys;
pub mod prf;
pub mod random;
pub mod secret;

#[cfg(test)]
mod flow_tests;
#[cfg(test)]
mod testutil;

pub use auth::{psk_auth, signed_octets, verify_psk_auth};
pub use cipher::{SkCipher, SkCiphers};
pub use dh::KeyExchange;
pub use integ::IntegKey;
pub use keys::{ChildSaKeys, IkeSaKeys, IkeSuite};
pub use prf::{prf, prf_plus, PrfKey};
pub use secret::{ct_eq, Secret};

/// Why a cryptographic operation failed. Messages never contain key material.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// `prf+` can produce at most 255 blocks (RFC 7296 section 2.13).
    #[error("prf+ output of {requested} octets exceeds the limit of {max} (255 PRF blocks)")]
    PrfPlusTooLong { requested: usize, max: usize },
    /// An input (key, public value, ...) does not have the length the algorithm needs.
    #[error("{what} has {actual} octets, expected {expected}")]
    BadLength {
        what: &'static str,
        expected: usize,
        actual: usize,
    },
    /// An encryption algorithm paired with an integrity algorithm it cannot be used with
    /// (AEAD with integrity, or a plain cipher without).
    #[error("invalid transform combination: {0}")]
    InvalidSuite(&'static str),
    /// The peer's key exchange value failed validation (range, curve membership, small order).
    #[error("invalid key exchange value from the peer")]
    InvalidPublicValue,
    /// A fixed private key (for known-answer tests) outside the group's range.
    #[error("private key out of range for the group")]
    InvalidPrivateKey,
    /// An integrity check value or AEAD tag did not verify.
    #[error("integrity check failed")]
    IntegrityCheckFailed,
    /// An Encrypted payload that cannot be valid whatever the keys (too short, misaligned,
    /// impossible padding).
    #[error("malformed encrypted payload: {0}")]
    MalformedPayload(&'static str),
    /// A received AUTH value does not match the expected one.
    #[error("AUTH payload does not verify")]
    AuthenticationFailed,
    /// The explicit IV counter of an AEAD key ran out (2^64 messages).
    #[error("IV space of this key is exhausted")]
    IvExhausted,
    /// The operating system's random number generator failed.
    #[error("random number generator failed")]
    Rng,
    /// An OpenSSL call failed.
    #[error("OpenSSL: {0}")]
    Openssl(#[from] openssl::error::ErrorStack),
}

pub type Result<T, E = CryptoError> = std::result::Result<T, E>;
