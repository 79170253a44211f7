//! Key exchange for the KE payload: MODP groups (RFC 2409 group 2, RFC 3526 groups 5 and
//! 14-18), random ECP groups 19-21 (RFC 5903), Curve25519 / Curve448 (RFC 7748, RFC 8031) and
//! the ML-KEM key encapsulation (FIPS 203, in `mlkem`).
//!
//! A Diffie-Hellman group is symmetric; a KEM is not: the initiator keeps a
//! [`KeyExchange`] (its decapsulation key) while the responder answers with
//! [`KeyExchange::respond`], which encapsulates. The engine uses `respond` for every method.
//!
//! Public values are in the wire format of the KE payload's Key Exchange Data:
//!
//! * MODP: `g^x mod p`, big endian, left-padded with zeros to the length of the prime;
//! * ECP: `x | y`, each coordinate big endian and padded to the field size, no 0x04 prefix
//!   (RFC 5903 section 7);
//! * Curve25519 / Curve448: the 32- / 56-octet u-coordinate (RFC 8031 section 2);
//! * ML-KEM: the encapsulation key from the initiator, the ciphertext from the responder.
//!
//! Shared secrets, in the form RFC 7296 section 2.14 feeds to the PRF: MODP `g^xy` padded to
//! the prime length, ECP the x coordinate of the shared point (RFC 5903 section 7),
//! Curve25519 / Curve448 the 32- / 56-octet X25519 / X448 output.

use std::fmt;
use std::sync::OnceLock;

use openssl::bn::{BigNum, BigNumContext, BigNumRef, MsbOption};
use openssl::derive::Deriver;
use openssl::ec::{EcGroup, EcKey, EcPoint, EcPointRef};
use openssl::error::ErrorStack;
use openssl::nid::Nid;
use openssl::pkey::{self, HasPrivate, HasPublic, Id, PKey, PKeyRef};

use super::{ct_eq, CryptoError, Result, Secret};
use crate::proposal::DhGroup;

mod mlkem;

/// Length of the private exponent for a MODP group, in bits.
///
/// The MODP groups use safe primes `p = 2q + 1` with the generator 2 of the subgroup of prime
/// order `q`, so there are no small subgroups through which a short exponent could be
/// recovered piecewise; the best attack on an `n`-bit exponent is Pollard's lambda method at
/// about `2^(n/2)` operations (van Oorschot and Wiener). An exponent of twice the group's
/// security strength (NIST SP 800-57: about 80, 112, 128 and 150 bits for 1024-, 2048-, 3072-
/// and 4096-bit groups; NIST SP 800-56A requires at least `2s` bits, RFC 3526 section 8 gives
/// similar sizes) therefore costs no security, while modular exponentiation time grows
/// linearly with the exponent: 256 bits instead of 2048 makes both `g^x` and `y^x` about eight
/// times faster for MODP-2048, which is on every handshake's critical path. We round up and
/// never go below 256 bits.
const fn modp_exponent_bits(group: DhGroup) -> i32 {
    match group {
        DhGroup::Modp3072 => 320,
        DhGroup::Modp4096 => 384,
        DhGroup::Modp6144 => 448,
        DhGroup::Modp8192 => 512,
        _ => 256,
    }
}

/// Returns the value a `OnceLock` holds, computing it on first use.
fn cached<T>(
    cell: &'static OnceLock<T>,
    make: impl FnOnce() -> Result<T, ErrorStack>,
) -> Result<&'static T> {
    if let Some(value) = cell.get() {
        return Ok(value);
    }
    let value = make()?;
    Ok(cell.get_or_init(|| value))
}

/// How a group's values are computed.
#[derive(Clone, Copy)]
enum Family {
    Modp,
    Ecp,
    /// X25519 / X448 (RFC 7748), with OpenSSL's key type.
    Montgomery(Id),
    Kem,
}

fn family(group: DhGroup) -> Family {
    match group {
        DhGroup::Modp1024
        | DhGroup::Modp1536
        | DhGroup::Modp2048
        | DhGroup::Modp3072
        | DhGroup::Modp4096
        | DhGroup::Modp6144
        | DhGroup::Modp8192 => Family::Modp,
        DhGroup::Ecp256 | DhGroup::Ecp384 | DhGroup::Ecp521 => Family::Ecp,
        DhGroup::Curve25519 => Family::Montgomery(Id::X25519),
        DhGroup::Curve448 => Family::Montgomery(Id::X448),
        DhGroup::MlKem512 | DhGroup::MlKem768 | DhGroup::MlKem1024 => Family::Kem,
    }
}

/// A MODP group's prime `p` and `p - 1` (the generator is 2 for all of them).
struct Modp {
    p: BigNum,
    p_minus_1: BigNum,
}

impl Modp {
    fn with_prime(p: BigNum) -> Result<Self, ErrorStack> {
        let mut p_minus_1 = BigNumRef::to_owned(&p)?;
        p_minus_1.sub_word(1)?;
        Ok(Modp { p, p_minus_1 })
    }
}

fn modp_group(group: DhGroup) -> Result<&'static Modp> {
    static P1024: OnceLock<Modp> = OnceLock::new();
    static P1536: OnceLock<Modp> = OnceLock::new();
    static P2048: OnceLock<Modp> = OnceLock::new();
    static P3072: OnceLock<Modp> = OnceLock::new();
    static P4096: OnceLock<Modp> = OnceLock::new();
    static P6144: OnceLock<Modp> = OnceLock::new();
    static P8192: OnceLock<Modp> = OnceLock::new();
    let (cell, prime): (_, fn() -> Result<BigNum, ErrorStack>) = match group {
        DhGroup::Modp1024 => (&P1024, BigNum::get_rfc2409_prime_1024),
        DhGroup::Modp1536 => (&P1536, BigNum::get_rfc3526_prime_1536),
        DhGroup::Modp2048 => (&P2048, BigNum::get_rfc3526_prime_2048),
        DhGroup::Modp3072 => (&P3072, BigNum::get_rfc3526_prime_3072),
        DhGroup::Modp4096 => (&P4096, BigNum::get_rfc3526_prime_4096),
        DhGroup::Modp6144 => (&P6144, BigNum::get_rfc3526_prime_6144),
        DhGroup::Modp8192 => (&P8192, BigNum::get_rfc3526_prime_8192),
        _ => return Err(CryptoError::InvalidSuite("not a MODP group")),
    };
    cached(cell, || Modp::with_prime(prime()?))
}

/// An ECP group and its field prime.
struct Curve {
    group: EcGroup,
    p: BigNum,
}

impl Curve {
    fn new(nid: Nid) -> Result<Self, ErrorStack> {
        let group = EcGroup::from_curve_name(nid)?;
        let mut ctx = BigNumContext::new()?;
        let (mut p, mut a, mut b) = (BigNum::new()?, BigNum::new()?, BigNum::new()?);
        group.components_gfp(&mut p, &mut a, &mut b, &mut ctx)?;
        Ok(Curve { group, p })
    }
}

fn curve(group: DhGroup) -> Result<&'static Curve> {
    static P256: OnceLock<Curve> = OnceLock::new();
    static P384: OnceLock<Curve> = OnceLock::new();
    static P521: OnceLock<Curve> = OnceLock::new();
    match group {
        DhGroup::Ecp256 => cached(&P256, || Curve::new(Nid::X9_62_PRIME256V1)),
        DhGroup::Ecp384 => cached(&P384, || Curve::new(Nid::SECP384R1)),
        DhGroup::Ecp521 => cached(&P521, || Curve::new(Nid::SECP521R1)),
        _ => Err(CryptoError::InvalidSuite("not an ECP group")),
    }
}

fn ec_group(group: DhGroup) -> Result<&'static EcGroup> {
    Ok(&curve(group)?.group)
}

enum PrivateKey {
    /// The exponent, in OpenSSL's secure heap and flagged for constant-time exponentiation.
    Modp(BigNum),
    Ecp(PKey<pkey::Private>),
    Montgomery(PKey<pkey::Private>),
    Kem(mlkem::DecapsulationKey),
}

/// One side's ephemeral key pair for a KE payload. The private part is never exposed and is
/// wiped by OpenSSL when the value is dropped.
pub struct KeyExchange {
    group: DhGroup,
    public: Vec<u8>,
    private: PrivateKey,
}

impl KeyExchange {
    /// Generates a fresh key pair from OpenSSL's CSPRNG.
    pub fn new(group: DhGroup) -> Result<Self> {
        match family(group) {
            Family::Modp => {
                let mut x = BigNum::new_secure()?;
                x.rand(modp_exponent_bits(group), MsbOption::ONE, false)?;
                Self::modp(group, x)
            }
            Family::Ecp => {
                let key = EcKey::generate(ec_group(group)?)?;
                Self::ecp(group, key)
            }
            Family::Montgomery(_) if group == DhGroup::Curve448 => {
                Self::montgomery(group, PKey::generate_x448()?)
            }
            Family::Montgomery(_) => Self::montgomery(group, PKey::generate_x25519()?),
            Family::Kem => Self::kem(group, None),
        }
    }

    /// The responder's answer to the initiator's Key Exchange Data: our own Key Exchange Data
    /// and the shared secret. For a Diffie-Hellman group a fresh key pair; for ML-KEM the
    /// ciphertext encapsulated to the initiator's key (validated as FIPS 203 section 7.2 asks).
    pub fn respond(group: DhGroup, peer_public: &[u8]) -> Result<(Vec<u8>, Secret)> {
        if let Family::Kem = family(group) {
            check_len("key exchange data", group.public_len(), peer_public.len())?;
            return mlkem::encapsulate(group, peer_public, None);
        }
        let ours = Self::new(group)?;
        let shared = ours.shared_secret(peer_public)?;
        Ok((ours.public, shared))
    }

    /// [`Self::respond`] for ML-KEM with FIPS 203's encapsulation randomness `m` fixed, for
    /// known-answer tests only.
    #[cfg(test)]
    fn encapsulate_deterministic(
        group: DhGroup,
        peer_public: &[u8],
        m: &[u8],
    ) -> Result<(Vec<u8>, Secret)> {
        mlkem::encapsulate(group, peer_public, Some(m))
    }

    fn kem(group: DhGroup, seed: Option<&[u8]>) -> Result<Self> {
        let (dk, ek) = mlkem::generate(group, seed)?;
        Ok(KeyExchange {
            group,
            public: ek,
            private: PrivateKey::Kem(dk),
        })
    }

    /// A key pair from a fixed private value, for known-answer tests (never for real
    /// exchanges): a big-endian MODP exponent or ECP scalar, a 32- / 56-octet X25519 /
    /// X448 scalar, or ML-KEM's 64-octet key generation seed `d | z`.
    pub fn from_private_key(group: DhGroup, private: &[u8]) -> Result<Self> {
        match family(group) {
            Family::Modp => {
                let mut x = BigNum::new_secure()?;
                x.copy_from_slice(private)?;
                if x.num_bits() == 0 || x >= modp_group(group)?.p_minus_1 {
                    return Err(CryptoError::InvalidPrivateKey);
                }
                Self::modp(group, x)
            }
            Family::Ecp => {
                let ec = ec_group(group)?;
                let mut ctx = BigNumContext::new_secure()?;
                let mut d = BigNum::new_secure()?;
                d.copy_from_slice(private)?;
                let mut order = BigNum::new()?;
                ec.order(&mut order, &mut ctx)?;
                if d.num_bits() == 0 || d >= order {
                    return Err(CryptoError::InvalidPrivateKey);
                }
                let mut point = EcPoint::new(ec)?;
                point.mul_generator2(ec, &d, &mut ctx)?;
                let key = EcKey::from_private_components(ec, &d, &point)?;
                key.check_key()?;
                Self::ecp(group, key)
            }
            Family::Montgomery(id) => {
                check_len(
                    "X25519 / X448 private key",
                    group.public_len(),
                    private.len(),
                )?;
                Self::montgomery(group, PKey::private_key_from_raw_bytes(private, id)?)
            }
            Family::Kem => {
                check_len("ML-KEM seed", mlkem::SEED_LEN, private.len())?;
                Self::kem(group, Some(private))
            }
        }
    }

    fn modp(group: DhGroup, mut x: BigNum) -> Result<Self> {
        x.set_const_time();
        let modp = modp_group(group)?;
        let g = BigNum::from_u32(2)?;
        let mut ctx = BigNumContext::new_secure()?;
        let mut y = BigNum::new()?;
        y.mod_exp(&g, &x, &modp.p, &mut ctx)?;
        Ok(KeyExchange {
            group,
            public: y.to_vec_padded(group.public_len() as i32)?,
            private: PrivateKey::Modp(x),
        })
    }

    fn ecp(group: DhGroup, key: EcKey<pkey::Private>) -> Result<Self> {
        let public = ec_point_bytes(group, key.public_key())?;
        Ok(KeyExchange {
            group,
            public,
            private: PrivateKey::Ecp(PKey::from_ec_key(key)?),
        })
    }

    fn montgomery(group: DhGroup, key: PKey<pkey::Private>) -> Result<Self> {
        Ok(KeyExchange {
            group,
            public: key.raw_public_key()?,
            private: PrivateKey::Montgomery(key),
        })
    }

    pub fn group(&self) -> DhGroup {
        self.group
    }

    /// The Key Exchange Data of our KE payload (`group.public_len()` octets), sent by the
    /// initiator of the exchange (see [`Self::respond`] for the responder).
    pub fn public_value(&self) -> &[u8] {
        &self.public
    }

    /// The shared secret with the peer's Key Exchange Data, after validating it:
    /// MODP `1 < y < p - 1` (RFC 6989 section 2.1, sufficient for safe-prime groups); ECP
    /// coordinates below the field prime and the point on the curve (RFC 6989 section 2.3,
    /// the curves have cofactor 1); Curve25519 / Curve448 an all-zero result (small-order
    /// input) refused (RFC 8031 section 2.3). Any failure is [`CryptoError::InvalidPublicValue`] (or
    /// `BadLength` for a wrong length), to be answered with INVALID_SYNTAX. For ML-KEM the
    /// peer's data is the responder's ciphertext, decapsulated.
    pub fn shared_secret(&self, peer_public: &[u8]) -> Result<Secret> {
        check_len(
            "key exchange data",
            self.group.responder_len(),
            peer_public.len(),
        )?;
        match &self.private {
            PrivateKey::Modp(x) => modp_shared(self.group, x, peer_public),
            PrivateKey::Ecp(key) => {
                let peer = ecp_peer_key(self.group, peer_public)?;
                derive(key, &peer, self.group.public_len() / 2, false)
            }
            PrivateKey::Montgomery(key) => {
                let len = self.group.public_len();
                let peer = PKey::public_key_from_raw_bytes(peer_public, key.id())
                    .map_err(|_| CryptoError::InvalidPublicValue)?;
                let secret = derive(key, &peer, len, true)?;
                if ct_eq(secret.expose(), &vec![0; len]) {
                    return Err(CryptoError::InvalidPublicValue);
                }
                Ok(secret)
            }
            PrivateKey::Kem(dk) => dk.decapsulate(peer_public),
        }
    }
}

impl fmt::Debug for KeyExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyExchange")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

fn check_len(what: &'static str, expected: usize, actual: usize) -> Result<()> {
    if expected == actual {
        Ok(())
    } else {
        Err(CryptoError::BadLength {
            what,
            expected,
            actual,
        })
    }
}

fn modp_shared(group: DhGroup, x: &BigNumRef, peer_public: &[u8]) -> Result<Secret> {
    let modp = modp_group(group)?;
    let y = BigNum::from_slice(peer_public)?;
    // y <= 1 has at most one significant bit.
    if y.num_bits() <= 1 || y >= modp.p_minus_1 {
        return Err(CryptoError::InvalidPublicValue);
    }
    let mut ctx = BigNumContext::new_secure()?;
    let mut z = BigNum::new_secure()?;
    z.mod_exp(&y, x, &modp.p, &mut ctx)?;
    Ok(Secret::new(z.to_vec_padded(group.public_len() as i32)?))
}

fn ec_point_bytes(group: DhGroup, point: &EcPointRef) -> Result<Vec<u8>> {
    let n = (group.public_len() / 2) as i32;
    let mut ctx = BigNumContext::new()?;
    let (mut x, mut y) = (BigNum::new()?, BigNum::new()?);
    point.affine_coordinates(ec_group(group)?, &mut x, &mut y, &mut ctx)?;
    let mut out = x.to_vec_padded(n)?;
    out.extend_from_slice(&y.to_vec_padded(n)?);
    Ok(out)
}

/// Validates an ECP public value and makes it an OpenSSL key.
///
/// Both coordinates must be field elements (below `p`) and the point on the curve; it is
/// then in the prime-order group, as the NIST curves have cofactor 1, and cannot be the point
/// at infinity, which has no affine coordinates (RFC 6989 section 2.3). OpenSSL's full key
/// check would add a scalar multiplication by the group order, doubling the cost of the
/// exchange for nothing, so it is not used.
fn ecp_peer_key(group: DhGroup, public: &[u8]) -> Result<PKey<pkey::Public>> {
    let curve = curve(group)?;
    let n = group.public_len() / 2;
    let x = BigNum::from_slice(&public[..n])?;
    let y = BigNum::from_slice(&public[n..])?;
    if x >= curve.p || y >= curve.p {
        return Err(CryptoError::InvalidPublicValue);
    }
    let mut ctx = BigNumContext::new()?;
    let mut point = EcPoint::new(&curve.group)?;
    point
        .set_affine_coordinates(&curve.group, &x, &y, &mut ctx)
        .map_err(|_| CryptoError::InvalidPublicValue)?;
    if !point.is_on_curve(&curve.group, &mut ctx)? || point.is_infinity(&curve.group) {
        return Err(CryptoError::InvalidPublicValue);
    }
    Ok(PKey::from_ec_key(EcKey::from_public_key(
        &curve.group,
        &point,
    )?)?)
}

/// ECDH / X25519 through EVP_PKEY_derive, into a `len`-octet secret. `check_peer` asks
/// OpenSSL to validate the peer key again.
fn derive<T: HasPrivate, U: HasPublic>(
    private: &PKeyRef<T>,
    peer: &PKeyRef<U>,
    len: usize,
    check_peer: bool,
) -> Result<Secret> {
    let mut deriver = Deriver::new(private)?;
    deriver
        .set_peer_ex(peer, check_peer)
        .map_err(|_| CryptoError::InvalidPublicValue)?;
    let mut secret = Secret::zeroed(len);
    let written = deriver
        .derive(secret.expose_mut())
        .map_err(|_| CryptoError::InvalidPublicValue)?;
    check_len("shared secret", len, written)?;
    Ok(secret)
}

#[cfg(test)]
mod tests;
