//! Feeds untrusted octets to the VICI codec, as a VICI client could send them, and maps
//! what decodes as a `load-conn` would. The checks live in `check_decode` and
//! `check_untrusted`, which the tests call too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    routevpn::vici::codec::check_decode(data);
    routevpn::swanctl::vici::check_untrusted(data);
});
