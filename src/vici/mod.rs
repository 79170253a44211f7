//! strongSwan's VICI protocol, so that `swanctl` and every VICI tool can drive routevpn:
//! the wire format ([`codec`]) and the messages charon sends, built from the engine's
//! state ([`messages`]). The daemon serves them on its VICI socket.

pub mod codec;
pub mod messages;
