//! The negotiated pseudo-random function and `prf+` (RFC 7296 section 2.13).
//!
//! HMAC PRFs (RFC 2104 with SHA-1, RFC 4868 with SHA-2) take keys of any length: keys
//! longer than the hash block are hashed first, shorter ones are zero-padded. The AES PRFs
//! (AES-XCBC-PRF-128, RFC 4434; AES-CMAC-PRF-128, RFC 4615) bring any key to 16 octets by
//! their own rules (see [`AesMac::prf_key`]); SKEYSEED's XCBC quirk is in [`super::keys`].

use std::fmt;

use super::aes_mac::AesMac;
use super::hmac::{Hash, HmacKey, MAX_DIGEST};
use super::{CryptoError, Result, Secret};
use crate::proposal::Prf;

fn hash_of(alg: Prf) -> Option<Hash> {
    match alg {
        Prf::HmacSha1 => Some(Hash::Sha1),
        Prf::HmacSha256 => Some(Hash::Sha256),
        Prf::HmacSha384 => Some(Hash::Sha384),
        Prf::HmacSha512 => Some(Hash::Sha512),
        Prf::AesXcbc | Prf::AesCmac => None,
    }
}

fn aes_mac_of(alg: Prf) -> Option<AesMac> {
    match alg {
        Prf::AesXcbc => Some(AesMac::Xcbc),
        Prf::AesCmac => Some(AesMac::Cmac),
        _ => None,
    }
}

// The HMAC states are the common case and live briefly on the stack; boxing them would
// allocate for every PRF key.
#[allow(clippy::large_enum_variant)]
enum KeyState {
    Hmac(HmacKey),
    /// The 16-octet AES key, derived from the PRF key by the algorithm's rule.
    Aes(AesMac, Secret),
}

/// A PRF with its key set up once, for repeated use under the same key.
pub struct PrfKey {
    alg: Prf,
    key: KeyState,
}

impl PrfKey {
    pub fn new(alg: Prf, key: &[u8]) -> Result<Self> {
        let key = match (hash_of(alg), aes_mac_of(alg)) {
            (Some(hash), _) => KeyState::Hmac(HmacKey::new(hash, key)),
            (None, Some(mac)) => KeyState::Aes(mac, Secret::from_slice(&mac.prf_key(key)?[..])),
            (None, None) => return Err(CryptoError::InvalidSuite("PRF without implementation")),
        };
        Ok(PrfKey { alg, key })
    }

    pub fn alg(&self) -> Prf {
        self.alg
    }

    /// `prf(K, data)`.
    pub fn compute(&self, data: &[u8]) -> Result<Secret> {
        self.compute_concat(&[data])
    }

    /// `prf(K, parts[0] | parts[1] | ...)` without building the concatenation.
    pub fn compute_concat(&self, parts: &[&[u8]]) -> Result<Secret> {
        match &self.key {
            KeyState::Hmac(key) => {
                let mut mac = key.start();
                parts.iter().for_each(|part| mac.update(part));
                Ok(Secret::from_slice(mac.finish().as_bytes()))
            }
            KeyState::Aes(mac, key) => {
                Ok(Secret::from_slice(&mac.compute(key.expose(), parts)?[..]))
            }
        }
    }

    /// `prf+(K, S)` truncated to `len` octets, where `S = seed[0] | seed[1] | ...`:
    ///
    /// ```text
    /// prf+ (K,S) = T1 | T2 | T3 | T4 | ...
    /// T1 = prf (K, S | 0x01)
    /// Tn = prf (K, Tn-1 | S | n)
    /// ```
    ///
    /// Fails if `len` needs more than 255 blocks (the counter is a single octet).
    pub fn expand(&self, seed: &[&[u8]], len: usize) -> Result<Secret> {
        let block = self.alg.output_len();
        let max = 255 * block;
        if len > max {
            return Err(CryptoError::PrfPlusTooLong {
                requested: len,
                max,
            });
        }
        // Exact capacity: the buffer is never reallocated, so no unwiped copy is left behind.
        let mut out = Vec::with_capacity(len);
        let mut previous = [0u8; MAX_DIGEST];
        let mut previous_len = 0;
        let mut counter = 1u8;
        while out.len() < len {
            let mut parts = Vec::with_capacity(seed.len() + 2);
            parts.push(&previous[..previous_len]);
            parts.extend_from_slice(seed);
            let counter_octet = [counter];
            parts.push(&counter_octet);
            let t = self.compute_concat(&parts)?;
            let t = t.expose();
            let take = t.len().min(len - out.len());
            out.extend_from_slice(&t[..take]);
            previous[..t.len()].copy_from_slice(t);
            previous_len = t.len();
            counter = counter.wrapping_add(1);
        }
        zeroize::Zeroize::zeroize(&mut previous);
        Ok(Secret::new(out))
    }
}

impl fmt::Debug for PrfKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrfKey")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// `prf(key, data)` (RFC 7296 section 2.13). The output is `alg.output_len()` octets.
pub fn prf(alg: Prf, key: &[u8], data: &[u8]) -> Result<Secret> {
    PrfKey::new(alg, key)?.compute(data)
}

/// `prf+(key, seed)` truncated to `len` octets; an error if `len > 255 * alg.output_len()`.
pub fn prf_plus(alg: Prf, key: &[u8], seed: &[u8], len: usize) -> Result<Secret> {
    PrfKey::new(alg, key)?.expand(&[seed], len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ike::crypto::testutil::hex;

    const ALL: [Prf; 6] = [
        Prf::HmacSha1,
        Prf::HmacSha256,
        Prf::HmacSha384,
        Prf::HmacSha512,
        Prf::AesXcbc,
        Prf::AesCmac,
    ];

    fn check(alg: Prf, key: &[u8], data: &[u8], expected: &str) {
        assert_eq!(
            prf(alg, key, data).unwrap().expose(),
            &hex(expected)[..],
            "{alg}"
        );
    }

    /// RFC 4434 / RFC 4615 section 4 through `prf` itself: an 18-octet key (longer than the
    /// AES key) over 000102..13.
    #[test]
    fn aes_prfs_take_long_keys() {
        let key = hex("000102030405060708090a0b0c0d0e0fedcb");
        let data: Vec<u8> = (0..20).collect();
        check(
            Prf::AesXcbc,
            &key,
            &data,
            "8cd3c93ae598a9803006ffb67c40e9e4",
        );
        check(
            Prf::AesCmac,
            &key,
            &data,
            "84a348a4a45d235babfffc0d2b4da09a",
        );
    }

    /// RFC 2202 section 3, HMAC-SHA-1 test cases 1-4, 6, 7 (case 5 is truncated: see integ).
    #[test]
    fn rfc2202_hmac_sha1() {
        let sha1 = Prf::HmacSha1;
        check(
            sha1,
            &[0x0b; 20],
            b"Hi There",
            "b617318655057264e28bc0b6fb378c8ef146be00",
        );
        check(
            sha1,
            b"Jefe",
            b"what do ya want for nothing?",
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79",
        );
        check(
            sha1,
            &[0xaa; 20],
            &[0xdd; 50],
            "125d7342b9ac11cd91a39af48aa17b4f63f175d3",
        );
        let key4: Vec<u8> = (1..=25).collect();
        check(
            sha1,
            &key4,
            &[0xcd; 50],
            "4c9007f4026250c6bc8414f9bf50c86c2d7235da",
        );
        check(
            sha1,
            &[0xaa; 80],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
            "aa4ae5e15272d00e95705637ce8a3b55ed402112",
        );
        check(
            sha1,
            &[0xaa; 80],
            b"Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data",
            "e8e99d0f45237d786d6bbaa7965c7808bbff1a91",
        );
    }

    /// RFC 4231 section 4, test cases 1, 2, 3, 4, 6, 7 for SHA-256/384/512. These are also the
    /// RFC 4868 section 2.7.1 PRF test vectors PRF-1 to PRF-6.
    #[test]
    fn rfc4231_hmac_sha2() {
        let key4: Vec<u8> = (1..=25).collect();
        let case7: &[u8] = b"This is a test using a larger than block-size key and a larger \
than block-size data. The key needs to be hashed before being used by the HMAC algorithm.";
        let cases: [(&[u8], &[u8], [&str; 3]); 6] = [
            (
                &[0x0b; 20],
                b"Hi There",
                [
                    "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
                    "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59c
                     faea9ea9076ede7f4af152e8b2fa9cb6",
                    "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde
                     daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854",
                ],
            ),
            (
                b"Jefe",
                b"what do ya want for nothing?",
                [
                    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
                    "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e
                     8e2240ca5e69e2c78b3239ecfab21649",
                    "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554
                     9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
                ],
            ),
            (
                &[0xaa; 20],
                &[0xdd; 50],
                [
                    "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
                    "88062608d3e6ad8a0aa2ace014c8a86f0aa635d947ac9febe83ef4e55966144b
                     2a5ab39dc13814b94e3ab6e101a34f27",
                    "fa73b0089d56a284efb0f0756c890be9b1b5dbdd8ee81a3655f83e33b2279d39
                     bf3e848279a722c806b485a47e67c807b946a337bee8942674278859e13292fb",
                ],
            ),
            (
                &key4,
                &[0xcd; 50],
                [
                    "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
                    "3e8a69b7783c25851933ab6290af6ca77a9981480850009cc5577c6e1f573b4e
                     6801dd23c4a7d679ccf8a386c674cffb",
                    "b0ba465637458c6990e5a8c5f61d4af7e576d97ff94b872de76f8050361ee3db
                     a91ca5c11aa25eb4d679275cc5788063a5f19741120c4f2de2adebeb10a298dd",
                ],
            ),
            (
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First",
                [
                    "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
                    "4ece084485813e9088d2c63a041bc5b44f9ef1012a2b588f3cd11f05033ac4c6
                     0c2ef6ab4030fe8296248df163f44952",
                    "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f352
                     6b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598",
                ],
            ),
            (
                &[0xaa; 131],
                case7,
                [
                    "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
                    "6617178e941f020d351e2f254e8fd32c602420feb0b8fb9adccebb82461e99c5
                     a678cc31e799176d3860e6110c46523e",
                    "e37b6a775dc87dbaa4dfa9f96e5e3ffddebd71f8867289865df5a32d20cdc944
                     b6022cac3c4982b10d5eeb55c3e4de15134676fb6de0446065c97440fa8c6a58",
                ],
            ),
        ];
        for (key, data, [sha256, sha384, sha512]) in cases {
            check(Prf::HmacSha256, key, data, sha256);
            check(Prf::HmacSha384, key, data, sha384);
            check(Prf::HmacSha512, key, data, sha512);
        }
    }

    #[test]
    fn output_lengths() {
        for alg in ALL {
            assert_eq!(prf(alg, b"k", b"d").unwrap().len(), alg.output_len());
        }
    }

    #[test]
    fn concatenated_input_equals_pieces() {
        for alg in ALL {
            let key = PrfKey::new(alg, b"key").unwrap();
            assert!(key
                .compute_concat(&[b"Ni", b"", b"Nr"])
                .unwrap()
                .ct_eq(key.compute(b"NiNr").unwrap().expose()));
        }
    }

    #[test]
    fn prf_plus_first_blocks_by_hand() {
        for alg in ALL {
            let (key, seed) = (b"some key".as_slice(), b"Ni | Nr | SPIi | SPIr".as_slice());
            let n = alg.output_len();
            let out = prf_plus(alg, key, seed, 2 * n + 5).unwrap();
            // T1 = prf(K, S | 0x01)
            let t1 = prf(alg, key, &[seed, &[1u8]].concat()).unwrap();
            // T2 = prf(K, T1 | S | 0x02)
            let t2 = prf(alg, key, &[t1.expose(), seed, &[2u8]].concat()).unwrap();
            let t3 = prf(alg, key, &[t2.expose(), seed, &[3u8]].concat()).unwrap();
            assert_eq!(&out.expose()[..n], t1.expose(), "{alg}");
            assert_eq!(&out.expose()[n..2 * n], t2.expose(), "{alg}");
            assert_eq!(&out.expose()[2 * n..], &t3.expose()[..5], "{alg}");
        }
    }

    /// prf+ pinned to a value computed independently (Python's `hmac` module):
    /// K = 0x0b * 20, S = "Hi There", 40 octets = T1 | T2[..8] with
    /// T1 = HMAC-SHA-256(K, S | 0x01) and T2 = HMAC-SHA-256(K, T1 | S | 0x02).
    #[test]
    fn prf_plus_pinned_value() {
        let out = prf_plus(Prf::HmacSha256, &[0x0b; 20], b"Hi There", 40).unwrap();
        assert_eq!(
            out.expose(),
            &hex(
                "b9bdc08988b4c2b75aa93e596ac84205fa2ddde1bf7a2572067b00e14b237732
                  830509981ad2f94a"
            )[..]
        );
    }

    #[test]
    fn prf_plus_length_limit() {
        for alg in ALL {
            let max = 255 * alg.output_len();
            assert_eq!(prf_plus(alg, b"k", b"s", max).unwrap().len(), max);
            match prf_plus(alg, b"k", b"s", max + 1) {
                Err(CryptoError::PrfPlusTooLong { requested, max: m }) => {
                    assert_eq!((requested, m), (max + 1, max));
                }
                other => panic!("expected PrfPlusTooLong, got {other:?}"),
            }
        }
        assert!(prf_plus(Prf::HmacSha256, b"k", b"s", 0).unwrap().is_empty());
    }

    /// The 255th block uses counter 0xff and is the last one.
    #[test]
    fn prf_plus_last_block_uses_counter_255() {
        let alg = Prf::HmacSha1;
        let n = alg.output_len();
        let key = PrfKey::new(alg, b"k").unwrap();
        let all = key.expand(&[b"s"], 255 * n).unwrap();
        let t254 = &all.expose()[253 * n..254 * n];
        let t255 = key.compute_concat(&[t254, b"s", &[0xff]]).unwrap();
        assert_eq!(&all.expose()[254 * n..], t255.expose());
    }

    #[test]
    fn debug_hides_the_key() {
        let key = PrfKey::new(Prf::HmacSha256, b"hunter2").unwrap();
        assert_eq!(format!("{key:?}"), "PrfKey { alg: HmacSha256, .. }");
    }
}
