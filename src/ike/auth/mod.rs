//! Credentials for public-key authentication (issue 12): what the engine needs to sign its
//! own AUTH payload and check the peer's, without knowing anything about files or OpenSSL.
//!
//! * [`keys`]: private keys (PEM: PKCS#8, PKCS#1 RSA, SEC1 EC) and public keys (PEM SPKI,
//!   libreswan's RFC 3110 `0s…` RSA form), with the sizes and curves we accept.
//! * [`signature`]: AUTH data for RFC 7427 Digital Signature (method 14) and the classic
//!   methods 1 (RSA, SHA-1) and 9/10/11 (ECDSA, RFC 4754); SIGNATURE_HASH_ALGORITHMS and
//!   the choice of a scheme from what the peer announced.
//! * [`x509`]: our certificate, trust anchors and CRLs; peer chain verification; matching
//!   the peer's IKE identity against the certificate (subject DN or subjectAltName).
//! * [`check_decode`]: the invariants the `decode_credentials` fuzz target and the proptests
//!   check on hostile input.
//!
//! The engine uses them in `engine::authenticators` (`signature`, `pubkey`). Not done yet:
//! CERTREQ-driven choice of our certificate, raw-public-key CERT payloads,
//! OCSP, and encrypted private key files.

mod der;
pub mod keys;
mod selfcheck;
pub mod signature;

pub use selfcheck::check_decode;
pub mod x509;
