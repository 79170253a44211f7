//! Secret byte strings that are wiped on drop and never printed.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

/// Key material (derived keys, DH private values and shared secrets, PSKs).
///
/// The buffer is zeroized when the value is dropped, `Debug` shows only the length and there
/// is no `Display`. There is deliberately no `PartialEq` (it would invite non-constant-time
/// comparisons); use [`Secret::ct_eq`]. The bytes are reachable only through
/// [`Secret::expose`], which makes every use of them visible at the call site.
#[derive(Clone, Default, Zeroize, ZeroizeOnDrop)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Takes ownership of `bytes` (no copy, so no unwiped duplicate is left behind).
    pub fn new(bytes: Vec<u8>) -> Self {
        Secret(bytes)
    }

    /// Copies `bytes` into a new secret; the caller remains responsible for the original.
    pub fn from_slice(bytes: &[u8]) -> Self {
        Secret(bytes.to_vec())
    }

    /// `len` zero octets, to be filled through [`Secret::expose_mut`].
    pub fn zeroed(len: usize) -> Self {
        Secret(vec![0; len])
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn expose_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Constant-time comparison with `other` (only the lengths may leak).
    pub fn ct_eq(&self, other: &[u8]) -> bool {
        ct_eq(&self.0, other)
    }
}

impl From<Vec<u8>> for Secret {
    fn from(bytes: Vec<u8>) -> Self {
        Secret(bytes)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

/// Compares two byte strings in time independent of their contents (the lengths are not
/// considered secret: different lengths compare unequal at once).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && openssl::memcmp::eq(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_only_the_length() {
        let s = Secret::new(vec![0xde, 0xad, 0xbe, 0xef]);
        let shown = format!("{s:?} {s:#?}");
        assert_eq!(format!("{s:?}"), "Secret(4 bytes)");
        assert!(!shown.contains("de") && !shown.contains("222") && !shown.contains("173"));
    }

    #[test]
    fn zeroize_clears_the_buffer() {
        let mut s = Secret::from_slice(&[1, 2, 3]);
        s.zeroize();
        assert!(s.is_empty());
    }

    #[test]
    fn constant_time_equality() {
        let s = Secret::from_slice(b"abc");
        assert!(s.ct_eq(b"abc"));
        assert!(!s.ct_eq(b"abd"));
        assert!(!s.ct_eq(b"ab"));
        assert!(ct_eq(b"", b""));
    }
}
