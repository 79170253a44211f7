//! Feeds untrusted octets to the IKEv2 codec (SKF reassembly included). The checks live in
//! `check_decode`, which the codec's proptests call too, so stable CI asserts the same
//! invariants the fuzzer does.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    routevpn::ike::codec::check_decode(data);
});
