//! strongSwan's swanctl.conf: read into a located settings [`tree`], imported as profiles,
//! and written from profiles ([`export`]), so that an operator can move between charon and
//! routevpn with the same negotiation.

pub mod export;
pub mod import;
pub mod install;
pub mod parse;
pub mod tree;

pub use parse::{parse_file, parse_text};
pub use tree::{Location, Section, Value};
