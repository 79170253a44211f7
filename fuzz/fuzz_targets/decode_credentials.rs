//! Feeds untrusted octets to the credential layer: AUTH data of every method against fixed
//! keys, CERT payloads, DER and text distinguished names, RFC 3110 keys. The checks live in
//! `auth::check_decode`, which the auth proptests call too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    routevpn::ike::auth::check_decode(data);
});
