//! Feeds untrusted octets to the VICI codec, as a VICI client could send them. The checks
//! live in `check_decode`, which the codec's proptests call too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    routevpn::vici::codec::check_decode(data);
});
