//! ML-KEM (FIPS 203) as an IKEv2 key exchange method (draft-ietf-ipsecme-ikev2-mlkem): the
//! initiator's KE payload carries its encapsulation key, the responder's the ciphertext it
//! encapsulated to that key, and both sides' shared secret is the KEM's 32-octet key.

use ml_kem::kem::{Decapsulate, Encapsulate};
use ml_kem::{
    Ciphertext, EncapsulateDeterministic, Encoded, EncodedSizeUser, KemCore, MlKem1024, MlKem512,
    MlKem768, B32,
};
use rand::rngs::OsRng;

use super::super::{CryptoError, Result, Secret};
use crate::proposal::DhGroup;

type Dk<K> = <K as KemCore>::DecapsulationKey;
type Ek<K> = <K as KemCore>::EncapsulationKey;

/// The initiator's decapsulation key, wiped on drop (the crate's `zeroize` feature).
pub(super) enum DecapsulationKey {
    K512(Box<Dk<MlKem512>>),
    K768(Box<Dk<MlKem768>>),
    K1024(Box<Dk<MlKem1024>>),
}

/// FIPS 203's key generation seed `d | z`, for known-answer tests.
pub(super) const SEED_LEN: usize = 64;

fn key_pair<K: KemCore>(seed: Option<&[u8]>) -> Result<(Box<Dk<K>>, Vec<u8>)> {
    let (dk, ek) = match seed {
        None => K::generate(&mut OsRng),
        Some(seed) => {
            let (d, z) = (b32(&seed[..32])?, b32(&seed[32..])?);
            K::generate_deterministic(&d, &z)
        }
    };
    Ok((Box::new(dk), ek.as_bytes().to_vec()))
}

fn b32(bytes: &[u8]) -> Result<B32> {
    B32::try_from(bytes).map_err(|_| CryptoError::InvalidPrivateKey)
}

/// A fresh key pair, or with `seed` (`d | z`) FIPS 203's deterministic ML-KEM.KeyGen_internal:
/// the decapsulation key and the encapsulation key's octets.
pub(super) fn generate(group: DhGroup, seed: Option<&[u8]>) -> Result<(DecapsulationKey, Vec<u8>)> {
    if seed.is_some_and(|s| s.len() != SEED_LEN) {
        return Err(CryptoError::InvalidPrivateKey);
    }
    Ok(match group {
        DhGroup::MlKem512 => {
            let (dk, ek) = key_pair::<MlKem512>(seed)?;
            (DecapsulationKey::K512(dk), ek)
        }
        DhGroup::MlKem768 => {
            let (dk, ek) = key_pair::<MlKem768>(seed)?;
            (DecapsulationKey::K768(dk), ek)
        }
        DhGroup::MlKem1024 => {
            let (dk, ek) = key_pair::<MlKem1024>(seed)?;
            (DecapsulationKey::K1024(dk), ek)
        }
        _ => return Err(CryptoError::InvalidSuite("not an ML-KEM parameter set")),
    })
}

fn encapsulate_with<K: KemCore>(ek: &[u8], m: Option<&B32>) -> Result<(Vec<u8>, Secret)> {
    let encoded = Encoded::<Ek<K>>::try_from(ek).map_err(|_| CryptoError::InvalidPublicValue)?;
    let key = Ek::<K>::from_bytes(&encoded);
    // FIPS 203 section 7.2's modulus check: decoding reduces coefficients mod q, so a key
    // with one at or above q does not encode back to the octets received.
    if key.as_bytes() != encoded {
        return Err(CryptoError::InvalidPublicValue);
    }
    let encapsulated = match m {
        None => key.encapsulate(&mut OsRng).ok(),
        Some(m) => key.encapsulate_deterministic(m).ok(),
    };
    let (ct, shared) = encapsulated.ok_or(CryptoError::InvalidPublicValue)?;
    Ok((ct.to_vec(), Secret::from_slice(&shared)))
}

/// The responder's side: the ciphertext for the peer's encapsulation key and the shared
/// secret. `m` fixes FIPS 203's encapsulation randomness, for known-answer tests only.
pub(super) fn encapsulate(
    group: DhGroup,
    ek: &[u8],
    m: Option<&[u8]>,
) -> Result<(Vec<u8>, Secret)> {
    let m = m.map(b32).transpose()?;
    let m = m.as_ref();
    match group {
        DhGroup::MlKem512 => encapsulate_with::<MlKem512>(ek, m),
        DhGroup::MlKem768 => encapsulate_with::<MlKem768>(ek, m),
        DhGroup::MlKem1024 => encapsulate_with::<MlKem1024>(ek, m),
        _ => Err(CryptoError::InvalidSuite("not an ML-KEM parameter set")),
    }
}

fn decapsulate_with<K: KemCore>(dk: &Dk<K>, ct: &[u8]) -> Result<Secret> {
    let ct = Ciphertext::<K>::try_from(ct).map_err(|_| CryptoError::InvalidPublicValue)?;
    // Implicit rejection: a forged ciphertext yields a pseudorandom key, and AUTH fails.
    let shared = dk
        .decapsulate(&ct)
        .map_err(|_| CryptoError::InvalidPublicValue)?;
    Ok(Secret::from_slice(&shared))
}

impl DecapsulationKey {
    /// The initiator's shared secret from the responder's ciphertext.
    pub(super) fn decapsulate(&self, ct: &[u8]) -> Result<Secret> {
        match self {
            DecapsulationKey::K512(dk) => decapsulate_with::<MlKem512>(dk, ct),
            DecapsulationKey::K768(dk) => decapsulate_with::<MlKem768>(dk, ct),
            DecapsulationKey::K1024(dk) => decapsulate_with::<MlKem1024>(dk, ct),
        }
    }
}
