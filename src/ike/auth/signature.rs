//! Signature AUTH payloads: RFC 7427 Digital Signature (method 14) and the classic methods
//! for peers that do not send SIGNATURE_HASH_ALGORITHMS: 1 (RSA, PKCS#1 v1.5 over SHA-1,
//! RFC 7296) and 9/10/11 (ECDSA on P-256/384/521 with SHA-256/384/512, raw `r || s`,
//! RFC 4754). The signed octets are the same as for PSK (`crypto::signed_octets`).
//!
//! Method 14 AUTH data: one octet with the length of the AlgorithmIdentifier, its DER, then
//! the signature (DER `Ecdsa-Sig-Value` for ECDSA). We send the DER forms RFC 7427 lists
//! (RSASSA-PSS with explicit hash, MGF1 with the same hash, salt = hash length, trailer
//! omitted) and parse the peer's structurally, so an explicit default trailer or absent NULL
//! hash parameters are accepted. SHA-1 is accepted only through method 1, and only when the
//! allowed list contains `RsaPkcs1(Sha1)`: RFC 8247 forbids it in method 14.

use std::fmt;

use openssl::bn::BigNum;
use openssl::ecdsa::EcdsaSig;
use openssl::hash::MessageDigest;
use openssl::pkey::{HasPrivate, HasPublic, PKeyRef};
use openssl::rsa::Padding;
use openssl::sign::{RsaPssSaltlen, Signer, Verifier};

use super::der::{tlv, Der, INTEGER, NULL, OID, SEQUENCE};
use super::keys::{Curve, KeyKind, PrivateKey, PublicKey};
use crate::ike::codec::{AuthMethod, Notify};

/// A digest used by a signature scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Digest {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl Digest {
    fn message_digest(self) -> MessageDigest {
        match self {
            Digest::Sha1 => MessageDigest::sha1(),
            Digest::Sha256 => MessageDigest::sha256(),
            Digest::Sha384 => MessageDigest::sha384(),
            Digest::Sha512 => MessageDigest::sha512(),
        }
    }

    fn len(self) -> usize {
        match self {
            Digest::Sha1 => 20,
            Digest::Sha256 => 32,
            Digest::Sha384 => 48,
            Digest::Sha512 => 64,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Digest::Sha1 => "sha1",
            Digest::Sha256 => "sha256",
            Digest::Sha384 => "sha384",
            Digest::Sha512 => "sha512",
        }
    }

    /// DER content of the hash algorithm's OID.
    fn oid(self) -> &'static [u8] {
        match self {
            Digest::Sha1 => &[0x2b, 0x0e, 0x03, 0x02, 0x1a],
            Digest::Sha256 => &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01],
            Digest::Sha384 => &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02],
            Digest::Sha512 => &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03],
        }
    }

    const ALL: [Digest; 4] = [Digest::Sha1, Digest::Sha256, Digest::Sha384, Digest::Sha512];

    fn from_oid(oid: &[u8]) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.oid() == oid)
    }
}

/// Hash algorithm numbers of SIGNATURE_HASH_ALGORITHMS (RFC 7427 section 4, RFC 8420).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SignatureHash {
    Sha1 = 1,
    Sha256 = 2,
    Sha384 = 3,
    Sha512 = 4,
    /// The data is signed as is: Ed25519.
    Identity = 5,
}

impl SignatureHash {
    pub fn from_u16(value: u16) -> Option<Self> {
        Some(match value {
            1 => SignatureHash::Sha1,
            2 => SignatureHash::Sha256,
            3 => SignatureHash::Sha384,
            4 => SignatureHash::Sha512,
            5 => SignatureHash::Identity,
            _ => return None,
        })
    }

    pub fn to_u16(self) -> u16 {
        self as u16
    }
}

/// SIGNATURE_HASH_ALGORITHMS announcing `hashes`, in order.
pub fn hash_algorithms_notify(hashes: &[SignatureHash]) -> Notify {
    let ids: Vec<u16> = hashes.iter().map(|h| h.to_u16()).collect();
    Notify::signature_hash_algorithms(&ids)
}

/// The hashes a peer announced, unknown numbers skipped (RFC 7427 section 4); `None` if
/// the notification is not SIGNATURE_HASH_ALGORITHMS or its length is odd.
pub fn announced_hashes(notify: &Notify) -> Option<Vec<SignatureHash>> {
    let ids = notify.hash_algorithms()?;
    Some(
        ids.into_iter()
            .filter_map(SignatureHash::from_u16)
            .collect(),
    )
}

/// How a signature is made and what it is checked with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SignatureScheme {
    /// RSASSA-PSS, MGF1 with the same digest, salt of the digest's length.
    RsaPss(Digest),
    RsaPkcs1(Digest),
    Ecdsa(Digest),
    /// Pure Ed25519 (RFC 8420).
    Ed25519,
}

impl fmt::Display for SignatureScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignatureScheme::RsaPss(d) => write!(f, "rsa-pss-{}", d.name()),
            SignatureScheme::RsaPkcs1(d) => write!(f, "rsa-pkcs1-{}", d.name()),
            SignatureScheme::Ecdsa(d) => write!(f, "ecdsa-{}", d.name()),
            SignatureScheme::Ed25519 => f.write_str("ed25519"),
        }
    }
}

// DER contents of the signature algorithm OIDs.
const PKCS1: [u8; 8] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];
const RSASSA_PSS: [u8; 9] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a];
const MGF1: [u8; 9] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08];
const ECDSA_WITH_SHA1: [u8; 7] = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01];
const ECDSA_WITH_SHA2: [u8; 7] = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03];
const ED25519: [u8; 3] = [0x2b, 0x65, 0x70];

fn pkcs1_oid(digest: Digest) -> Vec<u8> {
    let last = match digest {
        Digest::Sha1 => 0x05,
        Digest::Sha256 => 0x0b,
        Digest::Sha384 => 0x0c,
        Digest::Sha512 => 0x0d,
    };
    [&PKCS1[..], &[last]].concat()
}

fn ecdsa_oid(digest: Digest) -> Vec<u8> {
    match digest {
        Digest::Sha1 => ECDSA_WITH_SHA1.to_vec(),
        Digest::Sha256 => [&ECDSA_WITH_SHA2[..], &[2]].concat(),
        Digest::Sha384 => [&ECDSA_WITH_SHA2[..], &[3]].concat(),
        Digest::Sha512 => [&ECDSA_WITH_SHA2[..], &[4]].concat(),
    }
}

/// `SEQUENCE { hash OID, NULL }`, the form RFC 4055 asks for.
fn hash_algorithm(digest: Digest) -> Vec<u8> {
    tlv(SEQUENCE, &[tlv(OID, digest.oid()), tlv(NULL, &[])].concat())
}

/// A hash AlgorithmIdentifier's content: OID and absent or NULL parameters.
fn parse_hash_algorithm(content: &[u8]) -> Option<Digest> {
    let mut der = Der::new(content);
    let digest = Digest::from_oid(der.read(OID)?)?;
    (der.is_empty() || der.read_last(NULL) == Some(&[])).then_some(digest)
}

impl SignatureScheme {
    /// The digest named in SIGNATURE_HASH_ALGORITHMS for this scheme.
    pub fn hash(self) -> SignatureHash {
        match self.digest() {
            Some(Digest::Sha1) => SignatureHash::Sha1,
            Some(Digest::Sha256) => SignatureHash::Sha256,
            Some(Digest::Sha384) => SignatureHash::Sha384,
            Some(Digest::Sha512) => SignatureHash::Sha512,
            None => SignatureHash::Identity,
        }
    }

    fn digest(self) -> Option<Digest> {
        match self {
            SignatureScheme::RsaPss(d)
            | SignatureScheme::RsaPkcs1(d)
            | SignatureScheme::Ecdsa(d) => Some(d),
            SignatureScheme::Ed25519 => None,
        }
    }

    /// Whether a key of this kind can make or check this scheme's signatures.
    pub fn fits(self, kind: KeyKind) -> bool {
        matches!(
            (self, kind),
            (
                SignatureScheme::RsaPss(_) | SignatureScheme::RsaPkcs1(_),
                KeyKind::Rsa { .. }
            ) | (SignatureScheme::Ecdsa(_), KeyKind::Ecdsa(_))
                | (SignatureScheme::Ed25519, KeyKind::Ed25519)
        )
    }

    /// The DER AlgorithmIdentifier we send in method 14.
    pub fn algorithm_identifier(self) -> Vec<u8> {
        let content = match self {
            SignatureScheme::RsaPkcs1(d) => [tlv(OID, &pkcs1_oid(d)), tlv(NULL, &[])].concat(),
            SignatureScheme::Ecdsa(d) => tlv(OID, &ecdsa_oid(d)),
            SignatureScheme::Ed25519 => tlv(OID, &ED25519),
            SignatureScheme::RsaPss(d) => {
                let salt = u8::try_from(d.len()).unwrap_or(u8::MAX);
                let params = [
                    tlv(0xa0, &hash_algorithm(d)),
                    tlv(
                        0xa1,
                        &tlv(SEQUENCE, &[tlv(OID, &MGF1), hash_algorithm(d)].concat()),
                    ),
                    tlv(0xa2, &tlv(INTEGER, &[salt])),
                ]
                .concat();
                [tlv(OID, &RSASSA_PSS), tlv(SEQUENCE, &params)].concat()
            }
        };
        tlv(SEQUENCE, &content)
    }

    /// Recognises a peer's AlgorithmIdentifier.
    pub fn from_algorithm_identifier(der: &[u8]) -> Result<Self, SignatureError> {
        let unknown = || SignatureError::UnknownAlgorithm(hex(der));
        let mut content = Der::new(Der::new(der).read_last(SEQUENCE).ok_or_else(unknown)?);
        let oid = content.read(OID).ok_or_else(unknown)?;
        let params = content.rest();
        let no_params = params.is_empty();
        let null_params = no_params || Der::new(params).read_last(NULL) == Some(&[]);
        let scheme = if oid == RSASSA_PSS {
            parse_pss_params(Der::new(params)).map(SignatureScheme::RsaPss)
        } else if oid == ED25519 && no_params {
            Some(SignatureScheme::Ed25519)
        } else if let Some(d) = Digest::ALL.into_iter().find(|d| oid == pkcs1_oid(*d)) {
            null_params.then_some(SignatureScheme::RsaPkcs1(d))
        } else if let Some(d) = Digest::ALL.into_iter().find(|d| oid == ecdsa_oid(*d)) {
            no_params.then_some(SignatureScheme::Ecdsa(d))
        } else {
            None
        };
        scheme.ok_or_else(unknown)
    }
}

/// RSASSA-PSS-params (RFC 4055): we accept only hash = MGF1 hash, salt = hash length,
/// trailer 1, and not the SHA-1 defaults.
fn parse_pss_params(params: Der<'_>) -> Option<Digest> {
    let mut seq = Der::new(params.read_last(SEQUENCE)?);
    let hash = Der::new(seq.read(0xa0)?).read_last(SEQUENCE)?;
    let digest = parse_hash_algorithm(hash)?;
    let mut mgf = Der::new(Der::new(seq.read(0xa1)?).read_last(SEQUENCE)?);
    if mgf.read(OID)? != MGF1 || parse_hash_algorithm(mgf.read_last(SEQUENCE)?)? != digest {
        return None;
    }
    let salt = Der::new(seq.read(0xa2)?).read_last(INTEGER)?;
    if salt != [u8::try_from(digest.len()).ok()?] {
        return None;
    }
    if seq.peek_tag() == Some(0xa3) && Der::new(seq.read(0xa3)?).read_last(INTEGER)? != [1] {
        return None;
    }
    (seq.is_empty() && digest != Digest::Sha1).then_some(digest)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a signature could not be made or was not accepted. Never contains key material.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    #[error("signature does not verify")]
    DoesNotVerify,
    #[error("no shared signature hash: the peer announced {peer:?}, we allow {ours:?}")]
    NoSharedHash {
        peer: Vec<SignatureHash>,
        ours: Vec<SignatureScheme>,
    },
    #[error("peer used scheme {0} not allowed")]
    NotAllowed(SignatureScheme),
    #[error("scheme {scheme} does not fit a {key} key")]
    WrongKey {
        scheme: SignatureScheme,
        key: KeyKind,
    },
    #[error("AUTH method {0} is not a signature method")]
    NotSignatureMethod(u8),
    #[error(
        "{0} keys have no classic AUTH method; the peer must announce SIGNATURE_HASH_ALGORITHMS"
    )]
    NoClassicMethod(KeyKind),
    #[error("unknown signature algorithm, AlgorithmIdentifier {0}")]
    UnknownAlgorithm(String),
    #[error("malformed AUTH data: {0}")]
    Malformed(&'static str),
    #[error("signing failed: {0}")]
    Openssl(#[from] openssl::error::ErrorStack),
}

/// The schemes we sign and accept unless configured otherwise, in order of preference.
/// `RsaPkcs1(Sha1)` is there for method 1 peers only.
pub const DEFAULT_SCHEMES: &[SignatureScheme] = &[
    SignatureScheme::Ed25519,
    SignatureScheme::Ecdsa(Digest::Sha256),
    SignatureScheme::Ecdsa(Digest::Sha384),
    SignatureScheme::Ecdsa(Digest::Sha512),
    SignatureScheme::RsaPss(Digest::Sha256),
    SignatureScheme::RsaPss(Digest::Sha384),
    SignatureScheme::RsaPss(Digest::Sha512),
    SignatureScheme::RsaPkcs1(Digest::Sha256),
    SignatureScheme::RsaPkcs1(Digest::Sha384),
    SignatureScheme::RsaPkcs1(Digest::Sha512),
    SignatureScheme::RsaPkcs1(Digest::Sha1),
];

/// The hashes we announce in SIGNATURE_HASH_ALGORITHMS for `allowed` (SHA-1 never).
pub fn our_hashes(allowed: &[SignatureScheme]) -> Vec<SignatureHash> {
    let mut hashes = Vec::new();
    for hash in allowed.iter().map(|s| s.hash()) {
        if hash != SignatureHash::Sha1 && !hashes.contains(&hash) {
            hashes.push(hash);
        }
    }
    hashes
}

/// How we sign our AUTH payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signing {
    /// Method 14 with this scheme.
    Digital(SignatureScheme),
    /// Method 1 or 9/10/11, by key: the peer announced no hashes.
    Classic(AuthMethod),
}

/// Picks how to sign with a key of `kind`: the first allowed scheme for the key whose hash
/// the peer announced, or the key's classic method when it announced nothing.
pub fn select(
    kind: KeyKind,
    peer_hashes: Option<&[SignatureHash]>,
    allowed: &[SignatureScheme],
) -> Result<Signing, SignatureError> {
    let Some(peer) = peer_hashes else {
        let (method, scheme) = classic_for(kind)?;
        return if allowed.contains(&scheme) {
            Ok(Signing::Classic(method))
        } else {
            Err(SignatureError::NoSharedHash {
                peer: vec![],
                ours: allowed.to_vec(),
            })
        };
    };
    allowed
        .iter()
        .copied()
        .filter(|s| s.fits(kind) && s.hash() != SignatureHash::Sha1)
        .find(|s| peer.contains(&s.hash()))
        .map(Signing::Digital)
        .ok_or_else(|| SignatureError::NoSharedHash {
            peer: peer.to_vec(),
            ours: allowed.to_vec(),
        })
}

/// The classic methods: method, the scheme it stands for, the curve it requires (`None`:
/// an RSA key).
const CLASSIC_METHODS: [(AuthMethod, SignatureScheme, Option<Curve>); 4] = [
    (
        AuthMethod::RsaSignature,
        SignatureScheme::RsaPkcs1(Digest::Sha1),
        None,
    ),
    (
        AuthMethod::EcdsaSha256P256,
        SignatureScheme::Ecdsa(Digest::Sha256),
        Some(Curve::P256),
    ),
    (
        AuthMethod::EcdsaSha384P384,
        SignatureScheme::Ecdsa(Digest::Sha384),
        Some(Curve::P384),
    ),
    (
        AuthMethod::EcdsaSha512P521,
        SignatureScheme::Ecdsa(Digest::Sha512),
        Some(Curve::P521),
    ),
];

/// The classic method of a key kind and the scheme it implies.
fn classic_for(kind: KeyKind) -> Result<(AuthMethod, SignatureScheme), SignatureError> {
    let curve = match kind {
        KeyKind::Rsa { .. } => None,
        KeyKind::Ecdsa(curve) => Some(curve),
        KeyKind::Ed25519 => return Err(SignatureError::NoClassicMethod(kind)),
    };
    (CLASSIC_METHODS.iter())
        .find(|(_, _, c)| *c == curve)
        .map(|(method, scheme, _)| (*method, *scheme))
        .ok_or(SignatureError::NoClassicMethod(kind))
}

/// The scheme and curve a classic method stands for.
fn classic_scheme(method: AuthMethod) -> Option<(SignatureScheme, Option<Curve>)> {
    (CLASSIC_METHODS.iter())
        .find(|(m, _, _)| *m == method)
        .map(|(_, scheme, curve)| (*scheme, *curve))
}

/// Method 14 Authentication Data: length octet, AlgorithmIdentifier, signature.
pub fn sign(
    key: &PrivateKey,
    scheme: SignatureScheme,
    octets: &[u8],
) -> Result<Vec<u8>, SignatureError> {
    check_fits(scheme, key.kind())?;
    let algorithm = scheme.algorithm_identifier();
    let length = u8::try_from(algorithm.len())
        .map_err(|_| SignatureError::Malformed("long AlgorithmIdentifier"))?;
    let signature = raw_sign(key.pkey(), scheme, octets)?;
    Ok([&[length][..], &algorithm, &signature].concat())
}

/// Classic AUTH (method 1 or 9/10/11, chosen by the key): the method and its data.
pub fn sign_classic(
    key: &PrivateKey,
    octets: &[u8],
) -> Result<(AuthMethod, Vec<u8>), SignatureError> {
    let (method, scheme) = classic_for(key.kind())?;
    let signature = raw_sign(key.pkey(), scheme, octets)?;
    let data = match key.kind() {
        KeyKind::Ecdsa(curve) => ecdsa_der_to_raw(&signature, curve)?,
        _ => signature,
    };
    Ok((method, data))
}

/// Checks the peer's AUTH payload (method and data) over `octets` with its public key;
/// returns the scheme it used.
pub fn verify(
    key: &PublicKey,
    method: AuthMethod,
    auth_data: &[u8],
    octets: &[u8],
    allowed: &[SignatureScheme],
) -> Result<SignatureScheme, SignatureError> {
    let (scheme, signature) = match method {
        AuthMethod::DigitalSignature => {
            let (&len, rest) =
                (auth_data.split_first()).ok_or(SignatureError::Malformed("empty"))?;
            if rest.len() < usize::from(len) {
                return Err(SignatureError::Malformed(
                    "AlgorithmIdentifier length runs past the data",
                ));
            }
            let (algorithm, signature) = rest.split_at(usize::from(len));
            let scheme = SignatureScheme::from_algorithm_identifier(algorithm)?;
            if scheme.digest() == Some(Digest::Sha1) {
                return Err(SignatureError::NotAllowed(scheme));
            }
            (scheme, signature.to_vec())
        }
        other => {
            let (scheme, curve) =
                classic_scheme(other).ok_or(SignatureError::NotSignatureMethod(other.to_u8()))?;
            if let Some(curve) = curve {
                if key.kind() != KeyKind::Ecdsa(curve) {
                    return Err(SignatureError::WrongKey {
                        scheme,
                        key: key.kind(),
                    });
                }
                (scheme, ecdsa_raw_to_der(auth_data, curve)?)
            } else {
                (scheme, auth_data.to_vec())
            }
        }
    };
    if !allowed.contains(&scheme) {
        return Err(SignatureError::NotAllowed(scheme));
    }
    check_fits(scheme, key.kind())?;
    if raw_verify(key.pkey(), scheme, &signature, octets) {
        Ok(scheme)
    } else {
        Err(SignatureError::DoesNotVerify)
    }
}

fn check_fits(scheme: SignatureScheme, key: KeyKind) -> Result<(), SignatureError> {
    if scheme.fits(key) {
        Ok(())
    } else {
        Err(SignatureError::WrongKey { scheme, key })
    }
}

/// PSS padding for both signer and verifier (they have the same setters, no shared trait).
macro_rules! set_padding {
    ($ctx:expr, $scheme:expr) => {
        match $scheme {
            SignatureScheme::RsaPss(d) => {
                $ctx.set_rsa_padding(Padding::PKCS1_PSS)?;
                $ctx.set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH)?;
                $ctx.set_rsa_mgf1_md(d.message_digest())?;
            }
            SignatureScheme::RsaPkcs1(_) => $ctx.set_rsa_padding(Padding::PKCS1)?,
            SignatureScheme::Ecdsa(_) | SignatureScheme::Ed25519 => {}
        }
    };
}

/// The signature as OpenSSL makes it (DER for ECDSA).
fn raw_sign<T: HasPrivate>(
    key: &PKeyRef<T>,
    scheme: SignatureScheme,
    octets: &[u8],
) -> Result<Vec<u8>, SignatureError> {
    let mut signer = match scheme.digest() {
        Some(d) => Signer::new(d.message_digest(), key)?,
        None => Signer::new_without_digest(key)?,
    };
    set_padding!(signer, scheme);
    Ok(signer.sign_oneshot_to_vec(octets)?)
}

fn raw_verify<T: HasPublic>(
    key: &PKeyRef<T>,
    scheme: SignatureScheme,
    signature: &[u8],
    octets: &[u8],
) -> bool {
    let check = || -> Result<bool, openssl::error::ErrorStack> {
        let mut verifier = match scheme.digest() {
            Some(d) => Verifier::new(d.message_digest(), key)?,
            None => Verifier::new_without_digest(key)?,
        };
        set_padding!(verifier, scheme);
        verifier.verify_oneshot(signature, octets)
    };
    // OpenSSL reports some malformed signatures as errors rather than `false`.
    check().unwrap_or(false)
}

/// RFC 4754: `r || s`, each left-padded to the curve's field length.
fn ecdsa_der_to_raw(der: &[u8], curve: Curve) -> Result<Vec<u8>, SignatureError> {
    let sig = EcdsaSig::from_der(der)?;
    let len = i32::try_from(curve.field_len()).unwrap_or(i32::MAX);
    Ok([sig.r().to_vec_padded(len)?, sig.s().to_vec_padded(len)?].concat())
}

fn ecdsa_raw_to_der(raw: &[u8], curve: Curve) -> Result<Vec<u8>, SignatureError> {
    if raw.len() != 2 * curve.field_len() {
        return Err(SignatureError::Malformed(
            "ECDSA signature length does not fit the curve",
        ));
    }
    let (r, s) = raw.split_at(curve.field_len());
    let sig = EcdsaSig::from_private_components(BigNum::from_slice(r)?, BigNum::from_slice(s)?)?;
    Ok(sig.to_der()?)
}

#[cfg(test)]
mod tests;
