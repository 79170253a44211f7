//! Feeds untrusted text to the swanctl.conf parser and the import mapping: neither may panic
//! (`swanctl::check_untrusted`, which the parser's proptest calls too).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    routevpn::swanctl::check_untrusted(data);
});
