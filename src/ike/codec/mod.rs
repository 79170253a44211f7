//! IKEv2 message codec: one type per payload, parsing never panics, every length checked.
//!
//! Receive: [`Header::decode`] for dispatch, [`Message::decode`] for the message; a
//! protected message ends with [`Payload::Encrypted`], whose body the crypto module opens
//! (using [`Message::protected_layout`] for the AAD), and [`decode_payloads`] reads the
//! plaintext. Send: [`encode_payloads`] makes the plaintext, the crypto module seals it into
//! an [`SkFrame`]; unprotected messages go through [`Message::new`] and [`Message::encode`].
//!
//! No cryptography here, and no policy: unknown algorithms, selector types, notifications
//! and non-critical payloads decode to values the engine can inspect and refuse.

// Decoding runs on untrusted input: outside tests, no indexing that can panic, no unchecked
// arithmetic, no unwrap (only `selfcheck` asserts, on purpose).
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::cast_possible_truncation
    )
)]

mod algorithms;
mod delete;
mod encrypted;
mod error;
mod fragments;
mod header;
mod identity;
mod key_exchange;
mod message;
mod non_esp;
mod notify;
mod opaque;
mod payload;
mod payload_type;
mod reader;
mod sa;
mod selfcheck;
mod ts;
mod writer;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod sa_init_vector;

pub use algorithms::ProposalTransforms;
pub use delete::Delete;
pub use encrypted::{patch_message_length, Encrypted, EncryptedFragment, ProtectedLayout, SkFrame};
pub use error::{DecodeError, EncodeError, ErrorKind, Expected, Location};
pub use fragments::{
    fragment, max_message_len, Fragment, Ignored, Reassembler, Reassembly, ReassemblyLimits,
    IPV4_DEFAULT_MTU, IPV6_DEFAULT_MTU,
};
pub use header::{ExchangeType, Flags, Header};
pub use identity::{Auth, AuthMethod, Certificate, Identification, Identity};
pub use key_exchange::{KeyExchange, Nonce};
pub use message::Message;
pub use non_esp::{
    add_non_esp_marker, classify_udp_4500, strip_non_esp_marker, Udp4500, NON_ESP_MARKER,
};
pub use notify::{Notify, NotifyType};
pub use opaque::{Configuration, Eap, UnknownPayload, VendorId};
pub use payload::{decode_payloads, encode_payloads, Payload, PayloadLookup};
pub use payload_type::PayloadType;
pub use sa::{
    Attribute, AttributeValue, Proposal, ProtocolId, SecurityAssociation, Transform, TransformType,
};
pub use selfcheck::check_decode;
pub use ts::{AddressRange, TrafficSelector, TrafficSelectors};
