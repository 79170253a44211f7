//! IKEv2 cryptography: PRFs, key derivation, SK payload protection, key exchange.
