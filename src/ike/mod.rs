//! The embedded IKEv2 engine (RFC 7296): a sans-I/O core fed with datagrams and time.

pub mod auth;
pub mod codec;
pub mod crypto;
pub mod engine;
pub mod select;
pub mod ts;
