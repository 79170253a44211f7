//! Helpers shared by the integration tests (each test binary compiles the parts it uses).
#![allow(dead_code)]

pub mod dataplane;
pub mod peers;
pub mod pki;
