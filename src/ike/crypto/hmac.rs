//! HMAC (RFC 2104) over OpenSSL's SHA-1 / SHA-2 compression functions.
//!
//! A key is prepared once: the hash states after absorbing `K ^ ipad` and `K ^ opad` are kept,
//! so each MAC afterwards costs two state copies plus the message blocks, with no allocation
//! and no OpenSSL context set-up. That matters because `prf+` and the SK payload integrity
//! check MAC under the same key again and again. The result is checked against the RFC 2202 /
//! 4231 / 4868 vectors and, on random inputs, against OpenSSL's own HMAC.

use openssl::sha::{Sha1, Sha256, Sha384, Sha512};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Largest digest (SHA-512) and block (SHA-384/512) sizes.
pub(crate) const MAX_DIGEST: usize = 64;
const MAX_BLOCK: usize = 128;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hash {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    #[cfg(test)]
    pub(crate) const fn digest_len(self) -> usize {
        match self {
            Hash::Sha1 => 20,
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
            Hash::Sha512 => 64,
        }
    }

    const fn block_len(self) -> usize {
        match self {
            Hash::Sha1 | Hash::Sha256 => 64,
            Hash::Sha384 | Hash::Sha512 => 128,
        }
    }
}

/// A running hash computation.
#[derive(Clone)]
enum State {
    Sha1(Sha1),
    Sha256(Sha256),
    Sha384(Sha384),
    Sha512(Sha512),
}

impl State {
    fn new(hash: Hash) -> Self {
        match hash {
            Hash::Sha1 => State::Sha1(Sha1::new()),
            Hash::Sha256 => State::Sha256(Sha256::new()),
            Hash::Sha384 => State::Sha384(Sha384::new()),
            Hash::Sha512 => State::Sha512(Sha512::new()),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            State::Sha1(h) => h.update(data),
            State::Sha256(h) => h.update(data),
            State::Sha384(h) => h.update(data),
            State::Sha512(h) => h.update(data),
        }
    }

    /// Writes the digest into the front of `out` and returns its length.
    fn finish_into(self, out: &mut [u8; MAX_DIGEST]) -> usize {
        fn put(out: &mut [u8; MAX_DIGEST], digest: &[u8]) -> usize {
            out[..digest.len()].copy_from_slice(digest);
            digest.len()
        }
        match self {
            State::Sha1(h) => put(out, &h.finish()),
            State::Sha256(h) => put(out, &h.finish()),
            State::Sha384(h) => put(out, &h.finish()),
            State::Sha512(h) => put(out, &h.finish()),
        }
    }

    /// Overwrites the hash state with zeros.
    fn wipe(&mut self) {
        // SAFETY: each variant wraps an OpenSSL SHA_CTX / SHA256_CTX / SHA512_CTX, C structs
        // made only of integers and integer arrays that own no other memory, for which the
        // all-zero bit pattern is valid; we hold `&mut` so the access is exclusive. The enum
        // tag is left untouched.
        unsafe {
            match self {
                State::Sha1(h) => zeroize::zeroize_flat_type(h as *mut Sha1),
                State::Sha256(h) => zeroize::zeroize_flat_type(h as *mut Sha256),
                State::Sha384(h) => zeroize::zeroize_flat_type(h as *mut Sha384),
                State::Sha512(h) => zeroize::zeroize_flat_type(h as *mut Sha512),
            }
        }
    }
}

/// A digest of up to 64 octets on the stack, wiped on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct Digest {
    bytes: [u8; MAX_DIGEST],
    len: usize,
}

impl Digest {
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// An HMAC key with its inner and outer hash states precomputed. The states are equivalent
/// to the key, so they are wiped on drop.
pub(crate) struct HmacKey {
    inner: State,
    outer: State,
}

impl HmacKey {
    pub(crate) fn new(hash: Hash, key: &[u8]) -> Self {
        let block_len = hash.block_len();
        // K0: the key, hashed first if longer than a block, zero-padded to the block size.
        let mut k0 = [0u8; MAX_BLOCK];
        if key.len() > block_len {
            let mut state = State::new(hash);
            state.update(key);
            let mut digest = [0u8; MAX_DIGEST];
            let n = state.finish_into(&mut digest);
            k0[..n].copy_from_slice(&digest[..n]);
            digest.zeroize();
        } else {
            k0[..key.len()].copy_from_slice(key);
        }
        let k0 = &mut k0[..block_len];

        k0.iter_mut().for_each(|b| *b ^= 0x36);
        let mut inner = State::new(hash);
        inner.update(k0);
        k0.iter_mut().for_each(|b| *b ^= 0x36 ^ 0x5c);
        let mut outer = State::new(hash);
        outer.update(k0);
        k0.zeroize();

        HmacKey { inner, outer }
    }

    /// Starts a MAC computation; feed it with [`Mac::update`].
    pub(crate) fn start(&self) -> Mac<'_> {
        Mac {
            key: self,
            inner: self.inner.clone(),
        }
    }

    /// HMAC of `data` in one call.
    #[cfg(test)]
    pub(crate) fn mac(&self, data: &[u8]) -> Digest {
        let mut mac = self.start();
        mac.update(data);
        mac.finish()
    }
}

impl Drop for HmacKey {
    fn drop(&mut self) {
        self.inner.wipe();
        self.outer.wipe();
    }
}

/// An HMAC computation in progress (the message may be fed in pieces).
pub(crate) struct Mac<'a> {
    key: &'a HmacKey,
    inner: State,
}

impl Mac<'_> {
    pub(crate) fn update(&mut self, data: &[u8]) {
        self.inner.update(data);
    }

    pub(crate) fn finish(self) -> Digest {
        let mut inner_digest = [0u8; MAX_DIGEST];
        let n = self.inner.finish_into(&mut inner_digest);
        let mut outer = self.key.outer.clone();
        outer.update(&inner_digest[..n]);
        inner_digest.zeroize();
        let mut digest = Digest {
            bytes: [0; MAX_DIGEST],
            len: 0,
        };
        digest.len = outer.finish_into(&mut digest.bytes);
        digest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ike::crypto::testutil::hex;
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::sign::Signer;
    use proptest::prelude::*;

    fn openssl_hmac(hash: Hash, key: &[u8], data: &[u8]) -> Vec<u8> {
        let md = match hash {
            Hash::Sha1 => MessageDigest::sha1(),
            Hash::Sha256 => MessageDigest::sha256(),
            Hash::Sha384 => MessageDigest::sha384(),
            Hash::Sha512 => MessageDigest::sha512(),
        };
        let pkey = PKey::hmac(key).unwrap();
        let mut signer = Signer::new(md, &pkey).unwrap();
        signer.update(data).unwrap();
        signer.sign_to_vec().unwrap()
    }

    #[test]
    fn pieces_and_whole_agree() {
        let key = HmacKey::new(Hash::Sha256, b"key");
        let mut mac = key.start();
        mac.update(b"Hi ");
        mac.update(b"");
        mac.update(b"There");
        assert_eq!(mac.finish().as_bytes(), key.mac(b"Hi There").as_bytes());
    }

    #[test]
    fn key_can_be_reused() {
        let key = HmacKey::new(Hash::Sha512, &[0x0b; 20]);
        let first = key.mac(b"Hi There").as_bytes().to_vec();
        let _ = key.mac(b"something else");
        assert_eq!(key.mac(b"Hi There").as_bytes(), &first[..]);
        // RFC 4231 test case 1, HMAC-SHA-512.
        assert_eq!(
            first,
            hex(
                "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde
                 daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854"
            )
        );
    }

    /// OpenSSL 3.0 refuses empty HMAC keys, so this case is pinned (Python's `hmac`).
    #[test]
    fn empty_key_and_message() {
        assert_eq!(
            HmacKey::new(Hash::Sha256, b"").mac(b"").as_bytes(),
            hex("b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad")
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Keys shorter than, equal to and longer than the block size; data across blocks.
        #[test]
        fn matches_openssl_hmac(
            key in proptest::collection::vec(any::<u8>(), 1..300),
            data in proptest::collection::vec(any::<u8>(), 0..400),
        ) {
            for hash in [Hash::Sha1, Hash::Sha256, Hash::Sha384, Hash::Sha512] {
                let ours = HmacKey::new(hash, &key).mac(&data);
                prop_assert_eq!(ours.as_bytes(), &openssl_hmac(hash, &key, &data)[..]);
                prop_assert_eq!(ours.as_bytes().len(), hash.digest_len());
            }
        }
    }
}
