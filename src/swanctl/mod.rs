//! strongSwan's swanctl.conf: read into a located settings [`tree`], imported as profiles,
//! and written from profiles ([`export`]), so that an operator can move between charon and
//! routevpn with the same negotiation.

pub mod export;
pub mod import;
pub mod install;
pub mod parse;
pub mod tree;
pub mod vici;

pub use parse::{parse_file, parse_text};
pub use tree::{Location, Section, Value};

/// Parses and imports `data` as a swanctl.conf, for the fuzz target and the proptest: any
/// outcome is fine but a panic. Includes are refused and credential directories point
/// nowhere, so no file of the host is read.
pub fn check_untrusted(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = std::path::Path::new("/nonexistent/swanctl.conf");
    if let Ok(root) = parse_text(path, text, false) {
        let _ = import::import(
            &root,
            std::path::Path::new("/nonexistent"),
            Default::default(),
        );
    }
}
