//! Integrity algorithms: truncated HMAC (RFC 2404 HMAC-SHA1-96, RFC 4868 HMAC-SHA2) and
//! truncated AES MACs (RFC 3566 AES-XCBC-MAC-96, RFC 4494 AES-CMAC-96).

use std::fmt;

use super::aes_mac::AesMac;
use super::hmac::{Hash, HmacKey};
use super::{ct_eq, CryptoError, Result, Secret};
use crate::proposal::Integrity;

enum Mac {
    Hmac(Hash),
    Aes(AesMac),
}

fn mac_of(alg: Integrity) -> Mac {
    match alg {
        Integrity::HmacSha1_96 => Mac::Hmac(Hash::Sha1),
        Integrity::HmacSha256_128 => Mac::Hmac(Hash::Sha256),
        Integrity::HmacSha384_192 => Mac::Hmac(Hash::Sha384),
        Integrity::HmacSha512_256 => Mac::Hmac(Hash::Sha512),
        Integrity::AesXcbc96 => Mac::Aes(AesMac::Xcbc),
        Integrity::AesCmac96 => Mac::Aes(AesMac::Cmac),
    }
}

/// An integrity key (SK_ai / SK_ar) to compute and check ICVs: the HMAC of the data,
/// truncated to `alg.icv_len()` octets (its leftmost bits). The key is kept as is and the
/// HMAC states are derived per message: an IKE SA sends few messages once established,
/// and the precomputed states of both directions cost every tunnel close to a kilobyte.
pub struct IntegKey {
    alg: Integrity,
    key: Secret,
}

impl IntegKey {
    /// The key must be exactly `alg.key_len()` octets (RFC 4868 section 2.1.1).
    pub fn new(alg: Integrity, key: &[u8]) -> Result<Self> {
        if key.len() != alg.key_len() {
            return Err(CryptoError::BadLength {
                what: "integrity key",
                expected: alg.key_len(),
                actual: key.len(),
            });
        }
        Ok(Self::with_any_key(alg, key))
    }

    /// No length check: only for the generic HMAC test vectors.
    fn with_any_key(alg: Integrity, key: &[u8]) -> Self {
        IntegKey {
            alg,
            key: Secret::from_slice(key),
        }
    }

    pub fn alg(&self) -> Integrity {
        self.alg
    }

    pub fn icv_len(&self) -> usize {
        self.alg.icv_len()
    }

    /// The ICV of `data`.
    pub fn compute(&self, data: &[u8]) -> Result<Vec<u8>> {
        self.compute_concat(&[data])
    }

    /// The ICV of `parts[0] | parts[1] | ...`, without building the concatenation.
    pub fn compute_concat(&self, parts: &[&[u8]]) -> Result<Vec<u8>> {
        let mut icv = Vec::with_capacity(self.icv_len());
        self.append_icv(parts, &mut icv)?;
        Ok(icv)
    }

    /// Appends the ICV of the concatenated `parts` to `out`.
    pub(crate) fn append_icv(&self, parts: &[&[u8]], out: &mut Vec<u8>) -> Result<()> {
        match mac_of(self.alg) {
            Mac::Hmac(hash) => {
                let key = HmacKey::new(hash, self.key.expose());
                let mut mac = key.start();
                parts.iter().for_each(|part| mac.update(part));
                out.extend_from_slice(&mac.finish().as_bytes()[..self.icv_len()]);
            }
            Mac::Aes(mac) => {
                let tag = mac.compute(self.key.expose(), parts)?;
                out.extend_from_slice(&tag[..self.icv_len()]);
            }
        }
        Ok(())
    }

    /// Checks `icv` against the ICV of `data` in constant time.
    pub fn verify(&self, data: &[u8], icv: &[u8]) -> Result<()> {
        self.verify_concat(&[data], icv)
    }

    /// Checks `icv` against the ICV of the concatenated `parts` in constant time.
    pub fn verify_concat(&self, parts: &[&[u8]], icv: &[u8]) -> Result<()> {
        let expected = zeroize::Zeroizing::new(self.compute_concat(parts)?);
        if ct_eq(&expected, icv) {
            Ok(())
        } else {
            Err(CryptoError::IntegrityCheckFailed)
        }
    }
}

impl fmt::Debug for IntegKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntegKey")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ike::crypto::testutil::hex;

    const ALL: [Integrity; 6] = [
        Integrity::HmacSha1_96,
        Integrity::HmacSha256_128,
        Integrity::HmacSha384_192,
        Integrity::HmacSha512_256,
        Integrity::AesXcbc96,
        Integrity::AesCmac96,
    ];

    /// RFC 3566 section 4.6 test case 4 (AES-XCBC-MAC-96: the first 96 bits) and RFC 4494
    /// section 4 example 2 (AES-CMAC-96).
    #[test]
    fn aes_mac_96_vectors() {
        let key = IntegKey::new(
            Integrity::AesXcbc96,
            &hex("000102030405060708090a0b0c0d0e0f"),
        );
        let data: Vec<u8> = (0..20).collect();
        let icv = key.unwrap().compute(&data).unwrap();
        assert_eq!(icv, hex("47f51b4564966215b8985c63"));
        let key = IntegKey::new(
            Integrity::AesCmac96,
            &hex("2b7e151628aed2a6abf7158809cf4f3c"),
        );
        let icv = key
            .unwrap()
            .compute(&hex("6bc1bee22e409f96e93d7e117393172a"))
            .unwrap();
        assert_eq!(icv, hex("070a16b46b4d4144f79bdd9d"));
    }

    /// RFC 2202 test case 5 (HMAC-SHA-1-96) and RFC 4231 test case 5 (output truncated to
    /// 128 bits; our ICVs for SHA-384/512 are longer, so their first 128 bits are compared).
    #[test]
    fn truncation_test_cases() {
        let data = b"Test With Truncation";
        let key = IntegKey::new(Integrity::HmacSha1_96, &[0x0c; 20]).unwrap();
        assert_eq!(key.compute(data).unwrap(), hex("4c1a03424b55e07fe7f27be1"));
        for (alg, expected) in [
            (
                Integrity::HmacSha256_128,
                "a3b6167473100ee06e0c796c2955552b",
            ),
            (
                Integrity::HmacSha384_192,
                "3abf34c3503b2a23a46efc619baef897",
            ),
            (
                Integrity::HmacSha512_256,
                "415fad6271580a531d4179bc891d87a6",
            ),
        ] {
            let icv = IntegKey::with_any_key(alg, &[0x0c; 20])
                .compute(data)
                .unwrap();
            assert_eq!(icv.len(), alg.icv_len());
            assert_eq!(icv[..16], hex(expected)[..], "{alg}");
        }
    }

    /// RFC 4868 section 2.7.2: authenticator test vectors (AUTH256-1 to -4, AUTH384-1 to -4,
    /// AUTH512-1 to -3), keys of the full hash length, ICVs truncated to half of it.
    #[test]
    fn rfc4868_authenticator_vectors() {
        let jefe = |n: usize| b"Jefe".repeat(n);
        let counting = |n: u8| (1..=n).collect::<Vec<u8>>();
        let key384_4: Vec<u8> = (1..=0x20).chain(0x0a..=0x19).collect();
        let what = b"what do ya want for nothing?".as_slice();
        let cases: Vec<(Integrity, Vec<u8>, &[u8], &str)> = vec![
            (
                Integrity::HmacSha256_128,
                vec![0x0b; 32],
                b"Hi There",
                "198a607eb44bfbc69903a0f1cf2bbdc5",
            ),
            (
                Integrity::HmacSha256_128,
                jefe(8),
                what,
                "167f928588c5cc2eef8e3093caa0e87c",
            ),
            (
                Integrity::HmacSha256_128,
                vec![0xaa; 32],
                &[0xdd; 50],
                "cdcb1220d1ecccea91e53aba3092f962",
            ),
            (
                Integrity::HmacSha256_128,
                counting(32),
                &[0xcd; 50],
                "372efcf9b40b35c2115b1346903d2ef4",
            ),
            (
                Integrity::HmacSha384_192,
                vec![0x0b; 48],
                b"Hi There",
                "b6a8d5636f5c6a7224f9977dcf7ee6c7fb6d0c48cbdee973",
            ),
            (
                Integrity::HmacSha384_192,
                jefe(12),
                what,
                "2c7353974f1842fd66d53c452ca42122b28c0b594cfb184d",
            ),
            (
                Integrity::HmacSha384_192,
                vec![0xaa; 48],
                &[0xdd; 50],
                "809f439be00274321d4a538652164b53554a508184a0c316",
            ),
            (
                Integrity::HmacSha384_192,
                key384_4,
                &[0xcd; 50],
                "5b540085c6e6358096532b2493609ed1cb298f774f87bb5c",
            ),
            (
                Integrity::HmacSha512_256,
                vec![0x0b; 64],
                b"Hi There",
                "637edc6e01dce7e6742a99451aae82df23da3e92439e590e43e761b33e910fb8",
            ),
            (
                Integrity::HmacSha512_256,
                jefe(16),
                what,
                "cb370917ae8a7ce28cfd1d8f4705d6141c173b2a9362c15df235dfb251b15454",
            ),
            (
                Integrity::HmacSha512_256,
                vec![0xaa; 64],
                &[0xdd; 50],
                "2ee7acd783624ca9398710f3ee05ae41b9f9b0510c87e49e586cc9bf961733d8",
            ),
        ];
        for (alg, key, data, expected) in cases {
            let key = IntegKey::new(alg, &key).unwrap();
            assert_eq!(key.compute(data).unwrap(), hex(expected), "{alg}");
            key.verify(data, &hex(expected)).unwrap();
        }
    }

    #[test]
    fn verify_rejects_any_change() {
        for alg in ALL {
            let key = IntegKey::new(alg, &vec![7; alg.key_len()]).unwrap();
            let icv = key.compute_concat(&[b"header", b"body"]).unwrap();
            key.verify(b"headerbody", &icv).unwrap();
            for i in 0..icv.len() {
                let mut bad = icv.clone();
                bad[i] ^= 0x01;
                assert!(matches!(
                    key.verify(b"headerbody", &bad),
                    Err(CryptoError::IntegrityCheckFailed)
                ));
            }
            assert!(key.verify(b"headerbodz", &icv).is_err());
            assert!(key.verify(b"headerbody", &icv[..icv.len() - 1]).is_err());
            assert!(key.verify(b"headerbody", &[]).is_err());
        }
    }

    #[test]
    fn key_length_is_enforced() {
        for alg in ALL {
            assert!(IntegKey::new(alg, &vec![0; alg.key_len() - 1]).is_err());
            assert!(IntegKey::new(alg, &vec![0; alg.key_len() + 1]).is_err());
        }
    }
}
