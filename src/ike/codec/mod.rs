//! IKEv2 message codec: one type per payload, parsing never panics, every length checked.
