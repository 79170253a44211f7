//! Key derivation: IKE SA keys (RFC 7296 section 2.14), rekeyed IKE SAs (section 2.18) and
//! Child SA keying material (section 2.17).
//!
//! Inputs are raw octet strings: nonces are the Nonce Data without payload header, SPIs the
//! 8 octets of the IKE header (initiator's first), and Diffie-Hellman shared secrets the
//! fixed-length values [`KeyExchange::shared_secret`](super::KeyExchange::shared_secret)
//! returns (MODP padded to the modulus length, ECP x coordinate, X25519 32 octets).

use super::prf::PrfKey;
use super::{CryptoError, Result, Secret};
use crate::proposal::{Encryption, Integrity, Prf};

/// Checks that the key size is one the cipher has, and that a cipher comes with an integrity
/// algorithm exactly when it is not AEAD.
pub(crate) fn check_integrity(encr: Encryption, integ: Option<Integrity>) -> Result<()> {
    if !matches!(encr.key_bits(), 128 | 192 | 256) {
        return Err(CryptoError::InvalidSuite(
            "AES keys are 128, 192 or 256 bits long",
        ));
    }
    match (encr.is_aead(), integ) {
        (true, None) | (false, Some(_)) => Ok(()),
        (true, Some(_)) => Err(CryptoError::InvalidSuite(
            "an AEAD cipher must not be combined with an integrity algorithm",
        )),
        (false, None) => Err(CryptoError::InvalidSuite(
            "a non-AEAD cipher needs an integrity algorithm",
        )),
    }
}

fn integ_key_len(integ: Option<Integrity>) -> usize {
    integ.map_or(0, Integrity::key_len)
}

/// Splits `keymat` into consecutive secrets of the given lengths.
fn split<const N: usize>(keymat: &Secret, lens: [usize; N]) -> [Secret; N] {
    let mut at = 0;
    lens.map(|len| {
        let key = Secret::from_slice(&keymat.expose()[at..at + len]);
        at += len;
        key
    })
}

/// The transforms of an IKE SA that determine its keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IkeSuite {
    pub encr: Encryption,
    /// `None` exactly when `encr` is an AEAD cipher.
    pub integ: Option<Integrity>,
    pub prf: Prf,
}

impl IkeSuite {
    pub fn new(encr: Encryption, integ: Option<Integrity>, prf: Prf) -> Result<Self> {
        check_integrity(encr, integ)?;
        Ok(IkeSuite { encr, integ, prf })
    }

    /// Octets taken from prf+ for the seven keys.
    pub fn keymat_len(&self) -> usize {
        3 * self.prf.output_len() + 2 * integ_key_len(self.integ) + 2 * self.encr.keymat_len()
    }
}

/// `SKEYSEED = prf(Ni | Nr, g^ir)` for an IKE SA created by IKE_SA_INIT.
///
/// The PRF key is `Ni | Nr` as is, except for AES-XCBC-PRF-128 and AES-CMAC-PRF-128: RFC
/// 7296 section 2.14 keys them with the first 64 bits of each nonce, although RFC 4434 /
/// RFC 4615 would take any key length (strongSwan does the same; found against charon).
pub fn skeyseed(prf: Prf, ni: &[u8], nr: &[u8], shared_secret: &Secret) -> Result<Secret> {
    let half = match prf {
        Prf::AesXcbc | Prf::AesCmac => prf.output_len() / 2,
        _ => usize::MAX,
    };
    let key = Secret::new([&ni[..ni.len().min(half)], &nr[..nr.len().min(half)]].concat());
    PrfKey::new(prf, key.expose())?.compute(shared_secret.expose())
}

/// `SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr)` for an IKE SA rekeyed with
/// CREATE_CHILD_SA; `old_prf` is the PRF of the old IKE SA, which owns the exchange.
pub fn rekey_skeyseed(
    old_prf: Prf,
    old_sk_d: &Secret,
    shared_secret: &Secret,
    ni: &[u8],
    nr: &[u8],
) -> Result<Secret> {
    PrfKey::new(old_prf, old_sk_d.expose())?.compute_concat(&[shared_secret.expose(), ni, nr])
}

/// The seven keys of an IKE SA.
///
/// SK_ai / SK_ei protect messages sent by the *original* initiator of the IKE SA (whoever
/// starts later exchanges), SK_ar / SK_er those sent by the original responder. SK_pi / SK_pr
/// enter the initiator's and responder's AUTH payloads. With an AEAD cipher SK_ai and SK_ar
/// are empty; SK_ei / SK_er include the cipher's salt at their end.
#[derive(Debug)]
pub struct IkeSaKeys {
    pub suite: IkeSuite,
    pub sk_d: Secret,
    pub sk_ai: Secret,
    pub sk_ar: Secret,
    pub sk_ei: Secret,
    pub sk_er: Secret,
    pub sk_pi: Secret,
    pub sk_pr: Secret,
}

impl IkeSaKeys {
    /// Wipes every key but SK_d once the IKE SA is established: SK_p served AUTH only, and
    /// the ciphers hold their own SK_e and SK_a. SK_d is what Child SA and IKE SA rekeys
    /// derive from.
    pub fn retain_sk_d_only(&mut self) {
        for key in [
            &mut self.sk_ai,
            &mut self.sk_ar,
            &mut self.sk_ei,
            &mut self.sk_er,
            &mut self.sk_pi,
            &mut self.sk_pr,
        ] {
            *key = Secret::new(Vec::new());
        }
    }

    /// Keys of a new IKE SA from IKE_SA_INIT (section 2.14):
    ///
    /// ```text
    /// SKEYSEED = prf(Ni | Nr, g^ir)
    /// {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr} = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr)
    /// ```
    pub fn derive(
        suite: IkeSuite,
        shared_secret: &Secret,
        ni: &[u8],
        nr: &[u8],
        spi_i: &[u8; 8],
        spi_r: &[u8; 8],
    ) -> Result<Self> {
        let seed = skeyseed(suite.prf, ni, nr, shared_secret)?;
        Self::from_skeyseed(suite, &seed, ni, nr, spi_i, spi_r)
    }

    /// Keys of the IKE SA replacing `self` after a CREATE_CHILD_SA rekey (section 2.18):
    /// SKEYSEED from the old SA's PRF and SK_d, then the seven keys as in section 2.14 with
    /// the new SA's `suite`, the nonces of the rekey exchange and the new SPIs. `ni` and
    /// `spi_i` are those of the side that initiated the rekeying exchange, which becomes the
    /// original initiator of the new IKE SA.
    pub fn rekey(
        &self,
        suite: IkeSuite,
        shared_secret: &Secret,
        ni: &[u8],
        nr: &[u8],
        spi_i: &[u8; 8],
        spi_r: &[u8; 8],
    ) -> Result<Self> {
        let seed = rekey_skeyseed(self.suite.prf, &self.sk_d, shared_secret, ni, nr)?;
        Self::from_skeyseed(suite, &seed, ni, nr, spi_i, spi_r)
    }

    fn from_skeyseed(
        suite: IkeSuite,
        skeyseed: &Secret,
        ni: &[u8],
        nr: &[u8],
        spi_i: &[u8; 8],
        spi_r: &[u8; 8],
    ) -> Result<Self> {
        check_integrity(suite.encr, suite.integ)?;
        let keymat = PrfKey::new(suite.prf, skeyseed.expose())?
            .expand(&[ni, nr, spi_i, spi_r], suite.keymat_len())?;
        let (p, a, e) = (
            suite.prf.output_len(),
            integ_key_len(suite.integ),
            suite.encr.keymat_len(),
        );
        let [sk_d, sk_ai, sk_ar, sk_ei, sk_er, sk_pi, sk_pr] =
            split(&keymat, [p, a, a, e, e, p, p]);
        Ok(IkeSaKeys {
            suite,
            sk_d,
            sk_ai,
            sk_ar,
            sk_ei,
            sk_er,
            sk_pi,
            sk_pr,
        })
    }

    /// Keying material for a Child SA created under this IKE SA (see [`ChildSaKeys::derive`]).
    pub fn child_sa_keys(
        &self,
        encr: Encryption,
        integ: Option<Integrity>,
        pfs_shared_secret: Option<&Secret>,
        ni: &[u8],
        nr: &[u8],
    ) -> Result<ChildSaKeys> {
        ChildSaKeys::derive(
            self.suite.prf,
            &self.sk_d,
            encr,
            integ,
            pfs_shared_secret,
            ni,
            nr,
        )
    }
}

/// The keys of one ESP Child SA pair (section 2.17).
///
/// "Initiator" and "responder" are those of the exchange that created the Child SA (IKE_AUTH
/// or CREATE_CHILD_SA), whose nonces went into the derivation. `encr_i` / `integ_i` protect
/// the SA carrying traffic from that initiator to the responder, `encr_r` / `integ_r` the
/// opposite direction. Keys of ciphers with a salt or nonce (GCM, CCM, CTR,
/// ChaCha20-Poly1305) end with it, in the layout the kernel expects (see
/// `Encryption::salt_len`); the integrity keys are empty for AEAD.
#[derive(Debug)]
pub struct ChildSaKeys {
    pub encr: Encryption,
    pub integ: Option<Integrity>,
    pub encr_i: Secret,
    pub integ_i: Secret,
    pub encr_r: Secret,
    pub integ_r: Secret,
}

impl ChildSaKeys {
    /// `KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr)`, split in the order initiator
    /// encryption key, initiator integrity key, responder encryption key, responder integrity
    /// key. Pass the shared secret of a CREATE_CHILD_SA KE exchange (PFS) as
    /// `pfs_shared_secret`; the nonces are those of IKE_SA_INIT for the first Child SA, else
    /// those of the CREATE_CHILD_SA exchange.
    pub fn derive(
        prf: Prf,
        sk_d: &Secret,
        encr: Encryption,
        integ: Option<Integrity>,
        pfs_shared_secret: Option<&Secret>,
        ni: &[u8],
        nr: &[u8],
    ) -> Result<Self> {
        check_integrity(encr, integ)?;
        let (e, a) = (encr.keymat_len(), integ_key_len(integ));
        let gir = pfs_shared_secret.map_or(&[][..], Secret::expose);
        let keymat = PrfKey::new(prf, sk_d.expose())?.expand(&[gir, ni, nr], 2 * (e + a))?;
        let [encr_i, integ_i, encr_r, integ_r] = split(&keymat, [e, a, e, a]);
        Ok(ChildSaKeys {
            encr,
            integ,
            encr_i,
            integ_i,
            encr_r,
            integ_r,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ike::crypto::testutil::hex;

    fn concat(keys: &[&Secret]) -> Vec<u8> {
        keys.iter().flat_map(|k| k.expose().to_vec()).collect()
    }

    /// A SHA-1 IKEv2 KDF sample in the NIST CAVS (SP 800-135) format with 8-octet nonces,
    /// published with libreswan's test tool and re-checked with Python's `hmac`. Its 132-octet
    /// DKM is exactly the keys of AES-CBC-128 / HMAC-SHA1-96 / PRF-HMAC-SHA1.
    #[test]
    fn cavs_style_sha1_vector() {
        let gir = Secret::new(hex(
            "4b2c1f971981a8ad8d0abeafabf38cf75fc8349c148142465ed9c8b516b8be52",
        ));
        let gir_new = Secret::new(hex(
            "863f3c9d06efd39d2b907b97f8699e5dd5251ef64a2a176f36ee40c87d4f9330",
        ));
        let (ni, nr) = (hex("32b50d5f4a3763f3"), hex("9206a04b26564cb1"));
        let spi_i: [u8; 8] = hex("34c9e7c188868785").try_into().unwrap();
        let spi_r: [u8; 8] = hex("3ff77d760d2b2199").try_into().unwrap();

        assert_eq!(
            skeyseed(Prf::HmacSha1, &ni, &nr, &gir).unwrap().expose(),
            &hex("a9a7b222b59f8f48645f28a1db5b5f5d7479cba7")[..]
        );

        let suite = IkeSuite::new(
            Encryption::AesCbc(128),
            Some(Integrity::HmacSha1_96),
            Prf::HmacSha1,
        )
        .unwrap();
        assert_eq!(suite.keymat_len(), 132);
        let keys = IkeSaKeys::derive(suite, &gir, &ni, &nr, &spi_i, &spi_r).unwrap();
        let dkm = hex(
            "a14293677cc80ff8f9cc0eee30d895da9d8f405666e30ef0dfcb63c634a46002a2a63080e514a062
             768b76606f9fa5e992204fc5a670bde3f10d6b027113936a5c55b648a194ae587b0088d52204b702
             c979fa280870d2ed41efa9c549fd11198af1670b143d384bd275c5f594cf266b05ebadca855e4249
             520a441a81157435a7a56cc4",
        );
        let all = [
            &keys.sk_d,
            &keys.sk_ai,
            &keys.sk_ar,
            &keys.sk_ei,
            &keys.sk_er,
            &keys.sk_pi,
            &keys.sk_pr,
        ];
        assert_eq!(concat(&all), dkm);
        let lens: Vec<usize> = all.iter().map(|k| k.len()).collect();
        assert_eq!(lens, [20, 20, 20, 16, 16, 20, 20]);

        // DKM(Child SA) = prf+(SK_d, Ni | Nr): AES-CBC-128 + HMAC-SHA1-96 takes 72 octets.
        let child = keys
            .child_sa_keys(
                Encryption::AesCbc(128),
                Some(Integrity::HmacSha1_96),
                None,
                &ni,
                &nr,
            )
            .unwrap();
        let dkm_child = hex(
            "8059e3ee8810e6c3a91bc8bcd2a7a41151b8d0e6ae239c7b38093ad85ef4c5811a8e7b5d1cdabd95
             60b2d5e092d1f24e2d4b85eccdf0ad0dc9abd94b51ee71814ca6dbc8bb51b6309f5b9545c7eb35cf",
        );
        let child_all = [&child.encr_i, &child.integ_i, &child.encr_r, &child.integ_r];
        assert_eq!(concat(&child_all), dkm_child[..72]);
        assert_eq!(child.encr_i.expose(), &dkm_child[..16]);
        assert_eq!(child.integ_i.expose(), &dkm_child[16..36]);
        assert_eq!(child.encr_r.expose(), &dkm_child[36..52]);
        assert_eq!(child.integ_r.expose(), &dkm_child[52..72]);

        // DKM(Child SA D-H) = prf+(SK_d, g^ir (new) | Ni | Nr).
        let child_dh = keys
            .child_sa_keys(
                Encryption::AesCbc(128),
                Some(Integrity::HmacSha1_96),
                Some(&gir_new),
                &ni,
                &nr,
            )
            .unwrap();
        let dkm_child_dh = hex(
            "bb43244c1860ad65ee1e211ffe8bb3661750c8f89cb9f547df7f4fa61d37301628190e38c66232ea
             b4b3ab14c400a5197dd3730ed4820a8a10394d51e1c0400052f63ebd36b0e7ef53aaed31eba4a508",
        );
        let child_dh_all = [
            &child_dh.encr_i,
            &child_dh.integ_i,
            &child_dh.encr_r,
            &child_dh.integ_r,
        ];
        assert_eq!(concat(&child_dh_all), dkm_child_dh[..72]);

        // SKEYSEED(Rekey) = prf(SK_d (old), g^ir (new) | Ni | Nr).
        assert_eq!(
            rekey_skeyseed(Prf::HmacSha1, &keys.sk_d, &gir_new, &ni, &nr)
                .unwrap()
                .expose(),
            &hex("63e81194946ebd05df7df5ebf5d8750056bf1f1d")[..]
        );
    }

    /// AEAD suite with SHA-256: no integrity keys, 36-octet SK_e with salt. Expected values
    /// computed independently with Python's `hmac` module.
    #[test]
    fn aead_suite_layout_sha256() {
        let ni: Vec<u8> = (0..32).collect();
        let nr: Vec<u8> = (32..64).collect();
        let gir = Secret::new((0..=255).collect());
        let spi_i = [1, 2, 3, 4, 5, 6, 7, 8];
        let spi_r = [0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18];
        let suite = IkeSuite::new(Encryption::AesGcm16(256), None, Prf::HmacSha256).unwrap();
        assert_eq!(suite.keymat_len(), 168);
        let keys = IkeSaKeys::derive(suite, &gir, &ni, &nr, &spi_i, &spi_r).unwrap();
        assert!(keys.sk_ai.is_empty() && keys.sk_ar.is_empty());
        let expect = |k: &Secret, h: &str| assert_eq!(k.expose(), &hex(h)[..]);
        expect(
            &keys.sk_d,
            "eecd184a60189f0998943f59dca7518e96437c1dda8a4498e8b8608bff642e8b",
        );
        expect(
            &keys.sk_ei,
            "de8f246cf33f05ceb0a9555d30f980834c3682a28030503600128ea86e5ce1a9309e8c4b",
        );
        expect(
            &keys.sk_er,
            "3cdcb652c10c9bb2aab8090df7825f35a3a10010c8df6e75a7d4ae545968cb051d53df85",
        );
        expect(
            &keys.sk_pi,
            "a095a88e2022f44e1027c0328ae4b4b61b345373107d1f342ad7698c96b1cad7",
        );
        expect(
            &keys.sk_pr,
            "828471f3034e553f6662d018246b6439b6572f6dde078c46aab9826c3d5dabdf",
        );

        let gir_new = Secret::new((0..=255).rev().collect());
        let child = keys
            .child_sa_keys(Encryption::AesGcm16(128), None, Some(&gir_new), &ni, &nr)
            .unwrap();
        expect(&child.encr_i, "f9229784f45d911b3ea83a051f3824e02cc03d86");
        expect(&child.encr_r, "7053025ac135b69673e05ccc20ff6ddcc7b962d5");
        assert!(child.integ_i.is_empty() && child.integ_r.is_empty());
    }

    #[test]
    fn rekey_uses_the_old_prf_and_the_new_suite() {
        let old_suite = IkeSuite::new(
            Encryption::AesCbc(128),
            Some(Integrity::HmacSha1_96),
            Prf::HmacSha1,
        )
        .unwrap();
        let gir = Secret::from_slice(&[5; 32]);
        let old = IkeSaKeys::derive(old_suite, &gir, &[1; 16], &[2; 16], &[3; 8], &[4; 8]).unwrap();

        let new_suite = IkeSuite::new(Encryption::AesGcm16(256), None, Prf::HmacSha384).unwrap();
        let gir_new = Secret::from_slice(&[6; 32]);
        let (ni, nr, spi_i, spi_r) = ([7; 32], [8; 32], [9; 8], [10; 8]);
        let new = old
            .rekey(new_suite, &gir_new, &ni, &nr, &spi_i, &spi_r)
            .unwrap();

        // By hand: SKEYSEED with the old PRF (SHA-1), prf+ with the new one (SHA-384).
        let seed = PrfKey::new(Prf::HmacSha1, old.sk_d.expose())
            .unwrap()
            .compute(&[gir_new.expose(), &ni, &nr].concat())
            .unwrap();
        assert_eq!(seed.len(), 20);
        let keymat = PrfKey::new(Prf::HmacSha384, seed.expose())
            .unwrap()
            .expand(
                &[&[ni, nr].concat(), &spi_i, &spi_r],
                new_suite.keymat_len(),
            )
            .unwrap();
        assert_eq!(new.sk_d.expose(), &keymat.expose()[..48]);
        assert_eq!(new.sk_ei.expose(), &keymat.expose()[48..84]);
        assert_eq!(new.sk_pr.expose(), &keymat.expose()[keymat.len() - 48..]);
        assert_eq!(new.suite, new_suite);
    }

    #[test]
    fn key_lengths_follow_the_transforms() {
        let gir = Secret::from_slice(&[1; 48]);
        for (encr, integ, prf) in [
            (
                Encryption::AesCbc(256),
                Some(Integrity::HmacSha512_256),
                Prf::HmacSha512,
            ),
            (
                Encryption::AesCbc(192),
                Some(Integrity::HmacSha384_192),
                Prf::HmacSha256,
            ),
            (Encryption::AesGcm16(192), None, Prf::HmacSha384),
        ] {
            let suite = IkeSuite::new(encr, integ, prf).unwrap();
            let k = IkeSaKeys::derive(suite, &gir, &[2; 32], &[3; 32], &[4; 8], &[5; 8]).unwrap();
            let a = integ.map_or(0, Integrity::key_len);
            assert_eq!(
                [k.sk_d.len(), k.sk_ai.len(), k.sk_ar.len(), k.sk_ei.len()],
                [prf.output_len(), a, a, encr.keymat_len()]
            );
            assert_eq!(
                [k.sk_er.len(), k.sk_pi.len(), k.sk_pr.len()],
                [encr.keymat_len(), prf.output_len(), prf.output_len()]
            );
            let c = k
                .child_sa_keys(encr, integ, None, &[6; 32], &[7; 32])
                .unwrap();
            assert_eq!(
                [
                    c.encr_i.len(),
                    c.integ_i.len(),
                    c.encr_r.len(),
                    c.integ_r.len()
                ],
                [encr.keymat_len(), a, encr.keymat_len(), a]
            );
        }
    }

    #[test]
    fn invalid_suites_are_refused() {
        assert!(IkeSuite::new(
            Encryption::AesGcm16(128),
            Some(Integrity::HmacSha256_128),
            Prf::HmacSha256
        )
        .is_err());
        assert!(IkeSuite::new(Encryption::AesCbc(128), None, Prf::HmacSha256).is_err());
        assert!(IkeSuite::new(Encryption::AesGcm16(64), None, Prf::HmacSha256).is_err());
        let sk_d = Secret::from_slice(&[0; 32]);
        assert!(ChildSaKeys::derive(
            Prf::HmacSha256,
            &sk_d,
            Encryption::AesCbc(128),
            None,
            None,
            &[1],
            &[2]
        )
        .is_err());
    }

    #[test]
    fn debug_never_shows_key_bytes() {
        let suite = IkeSuite::new(Encryption::AesGcm16(128), None, Prf::HmacSha256).unwrap();
        let gir = Secret::from_slice(&[0xab; 32]);
        let keys =
            IkeSaKeys::derive(suite, &gir, &[0xcd; 16], &[0xef; 16], &[1; 8], &[2; 8]).unwrap();
        let shown = format!("{keys:?}");
        assert!(shown.contains("sk_d: Secret(32 bytes)"), "{shown}");
        assert!(shown.contains("sk_ai: Secret(0 bytes)"), "{shown}");
        // No byte array or number other than the lengths is printed.
        assert!(!shown.contains('['), "{shown}");
    }

    /// RFC 7296 section 2.14: AES-XCBC-PRF-128 and AES-CMAC-PRF-128 key SKEYSEED with the
    /// first 64 bits of each nonce (as strongSwan does); HMAC PRFs take both nonces whole.
    #[test]
    fn aes_prf_skeyseed_keys_with_half_of_each_nonce() {
        let (ni, nr) = (vec![0x11; 32], vec![0x22; 32]);
        let gir = Secret::from_slice(&[0x33; 256]);
        let short_key = [&ni[..8], &nr[..8]].concat();
        for prf in [Prf::AesXcbc, Prf::AesCmac] {
            let expected = PrfKey::new(prf, &short_key).unwrap();
            assert!(skeyseed(prf, &ni, &nr, &gir)
                .unwrap()
                .ct_eq(expected.compute(gir.expose()).unwrap().expose()));
        }
        let full_key = [&ni[..], &nr[..]].concat();
        let expected = PrfKey::new(Prf::HmacSha256, &full_key).unwrap();
        assert!(skeyseed(Prf::HmacSha256, &ni, &nr, &gir)
            .unwrap()
            .ct_eq(expected.compute(gir.expose()).unwrap().expose()));
        // Short nonces are taken whole.
        let key = [&[1u8; 4][..], &[2u8; 4][..]].concat();
        let expected = PrfKey::new(Prf::AesXcbc, &key).unwrap();
        assert!(skeyseed(Prf::AesXcbc, &[1; 4], &[2; 4], &gir)
            .unwrap()
            .ct_eq(expected.compute(gir.expose()).unwrap().expose()));
    }
}
