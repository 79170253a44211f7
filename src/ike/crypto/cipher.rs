//! Protection of the Encrypted (SK) payload: AES-CBC or AES-CTR with a separate ICV (RFC 7296
//! section 3.14, RFC 5930), and the AEAD ciphers AES-GCM, AES-CCM (RFC 5282) and
//! ChaCha20-Poly1305 (RFC 7634).
//!
//! # What the caller passes, and what each side covers
//!
//! An IKE message carrying an SK payload looks like this:
//!
//! ```text
//! +--------------------+-----------------------+-----------+----+------------+-----+
//! | IKE header (28)    | unencrypted payloads  | SK header | IV | ciphertext | ICV |
//! |                    | (normally none)       | (4)       |    |            |     |
//! +--------------------+-----------------------+-----------+----+------------+-----+
//! |<------------------------ prefix ------------------------>|<------ body ------->|
//! ```
//!
//! * `prefix` is every octet of the message before the IV: the IKE header, any payloads
//!   before the SK payload and the 4-octet generic header of the SK payload (for an RFC 7383
//!   SKF fragment, the 8-octet SKF header). The Length fields in it **must already hold their
//!   final values**: compute them with [`SkCipher::sealed_len`] before calling
//!   [`SkCipher::seal`], because they are authenticated.
//! * `body` is the rest of the SK payload: `IV | ciphertext | ICV`, which `seal` returns and
//!   `open` takes. [`SkCipher::seal_append`] instead appends it to a buffer holding the
//!   prefix.
//! * The ciphertext encrypts `inner payloads | padding | pad length (1 octet)`. `seal` takes
//!   and `open` returns only the inner payloads.
//!
//! AES-CBC: the IV is 16 random octets; padding is the minimum to reach a multiple of 16
//! (zero octets); the ICV is the truncated HMAC with SK_a over `prefix | IV | ciphertext`,
//! i.e. the whole message except the ICV itself. `open` checks the ICV (in constant time)
//! before decrypting anything.
//!
//! AES-GCM: the explicit IV is 8 octets, the nonce is `salt | IV` with the 4-octet salt from
//! the end of SK_e's key material; the additional authenticated data is `prefix`; the ICV is
//! the 16-octet GCM tag. No padding is added (GCM needs no block alignment), only the pad
//! length octet 0. The IV is a counter starting at a random value, so it never repeats under
//! one key (RFC 4106 section 3.1, which RFC 5282 builds on); an [`SkCipher`] cannot be cloned
//! for that reason.
//!
//! AES-CCM (8-, 12- or 16-octet ICV) and ChaCha20-Poly1305 work like GCM, with a 3-octet
//! (CCM) or 4-octet salt; GCM with an 8- or 12-octet ICV sends the start of the tag.
//! AES-CTR takes the counter IV of GCM, but authenticates like CBC with the integrity
//! algorithm; its counter block is `nonce (4) | IV (8) | 1 (4)` (RFC 5930, RFC 3686).
//!
//! A receiver accepts any pad length that fits and ignores the padding contents (section
//! 3.14). Every failure of `open` is an error, never a panic.

use std::fmt;

use openssl::cipher::{Cipher, CipherRef};
use openssl::cipher_ctx::CipherCtx;
use zeroize::{Zeroize, Zeroizing};

use super::integ::IntegKey;
use super::keys::{check_integrity, IkeSaKeys};
use super::{random, CryptoError, Result, Secret};
use crate::proposal::{Encryption, Integrity};

const AES_BLOCK: usize = 16;
/// The explicit IV of every cipher but CBC (RFC 5282, RFC 5930, RFC 7634).
const COUNTER_IV: usize = 8;
/// The full tag OpenSSL computes for GCM and ChaCha20-Poly1305; shorter ICVs are its start.
const FULL_TAG: usize = 16;
/// Salt and explicit IV together: the longest nonce (GCM, CTR, ChaCha20-Poly1305).
const MAX_NONCE: usize = 4 + COUNTER_IV;

/// How the SK payload is built around the cipher.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Construction {
    /// Random IV, whole blocks, separate ICV (RFC 7296 section 3.14).
    Cbc,
    /// Counter IV, no block alignment, separate ICV (RFC 5930).
    Ctr,
    /// Counter IV, AEAD tag over the prefix as additional data (RFC 5282, RFC 7634).
    Aead,
    /// As `Aead`, but OpenSSL's CCM needs a fresh context, the lengths up front and each of
    /// the additional data and the plaintext in one piece.
    Ccm,
}

fn construction(encr: Encryption) -> Construction {
    match encr {
        Encryption::AesCbc(_) => Construction::Cbc,
        Encryption::AesCtr(_) => Construction::Ctr,
        Encryption::AesCcm8(_) | Encryption::AesCcm12(_) | Encryption::AesCcm16(_) => {
            Construction::Ccm
        }
        _ => Construction::Aead,
    }
}

fn cipher_for(encr: Encryption) -> &'static CipherRef {
    let by_size = |ciphers: [&'static CipherRef; 3]| match encr.key_bits() {
        128 => ciphers[0],
        192 => ciphers[1],
        _ => ciphers[2],
    };
    match encr {
        Encryption::AesCbc(_) => by_size([
            Cipher::aes_128_cbc(),
            Cipher::aes_192_cbc(),
            Cipher::aes_256_cbc(),
        ]),
        Encryption::AesCtr(_) => by_size([
            Cipher::aes_128_ctr(),
            Cipher::aes_192_ctr(),
            Cipher::aes_256_ctr(),
        ]),
        Encryption::AesGcm8(_) | Encryption::AesGcm12(_) | Encryption::AesGcm16(_) => by_size([
            Cipher::aes_128_gcm(),
            Cipher::aes_192_gcm(),
            Cipher::aes_256_gcm(),
        ]),
        Encryption::AesCcm8(_) | Encryption::AesCcm12(_) | Encryption::AesCcm16(_) => by_size([
            Cipher::aes_128_ccm(),
            Cipher::aes_192_ccm(),
            Cipher::aes_256_ccm(),
        ]),
        Encryption::ChaCha20Poly1305 => Cipher::chacha20_poly1305(),
    }
}

/// Returns the context in `slot`, creating it with the key schedule loaded on first use.
/// Later messages only set a new IV, which keeps the schedule. `keymat` is SK_e; a salt at
/// its end is not part of the key.
fn ready<'a>(
    slot: &'a mut Option<CipherCtx>,
    encr: Encryption,
    keymat: &[u8],
    encrypt: bool,
) -> Result<&'a mut CipherCtx> {
    let ctx = match slot.take() {
        Some(ctx) => ctx,
        None => {
            let mut ctx = CipherCtx::new()?;
            let cipher = cipher_for(encr);
            let key = &keymat[..cipher.key_length()];
            if encrypt {
                ctx.encrypt_init(Some(cipher), Some(key), None)?;
            } else {
                ctx.decrypt_init(Some(cipher), Some(key), None)?;
            }
            ctx
        }
    };
    Ok(slot.insert(ctx))
}

/// AES-CBC without padding over whole blocks, appending to `out`. `ctx` is ready with its key.
fn cbc_crypt(
    ctx: &mut CipherCtx,
    encrypt: bool,
    iv: &[u8],
    blocks: &[&[u8]],
    out: &mut Vec<u8>,
) -> Result<()> {
    if encrypt {
        ctx.encrypt_init(None, None, Some(iv))?;
    } else {
        ctx.decrypt_init(None, None, Some(iv))?;
    }
    ctx.set_padding(false);
    for data in blocks {
        debug_assert!(data.len() % AES_BLOCK == 0);
        ctx.cipher_update_vec(data, out)?;
    }
    ctx.cipher_final_vec(out)?;
    Ok(())
}

/// Starts an AES-GCM or ChaCha20-Poly1305 encryption: sets the nonce and feeds the
/// additional authenticated data (the concatenated `aad` pieces).
fn gcm_begin(ctx: &mut CipherCtx, nonce: &[u8], aad: &[&[u8]]) -> Result<()> {
    ctx.encrypt_init(None, None, Some(nonce))?;
    for data in aad {
        ctx.cipher_update(data, None)?;
    }
    Ok(())
}

/// Encrypts the concatenated `plaintext` pieces after [`gcm_begin`], appending the ciphertext
/// to `out`, and returns the full tag (a truncated ICV is its start).
fn gcm_finish(
    ctx: &mut CipherCtx,
    plaintext: &[&[u8]],
    out: &mut Vec<u8>,
) -> Result<[u8; FULL_TAG]> {
    for data in plaintext {
        ctx.cipher_update_vec(data, out)?;
    }
    ctx.cipher_final_vec(out)?;
    let mut tag = [0u8; FULL_TAG];
    ctx.tag(&mut tag)?;
    Ok(tag)
}

/// AES-GCM or ChaCha20-Poly1305 decryption, appending the plaintext to `out`; a tag mismatch
/// is [`CryptoError::IntegrityCheckFailed`] and leaves nothing in `out`.
fn gcm_open(
    ctx: &mut CipherCtx,
    nonce: &[u8],
    aad: &[u8],
    ciphertext: &[u8],
    tag: &[u8],
    out: &mut Vec<u8>,
) -> Result<()> {
    ctx.decrypt_init(None, None, Some(nonce))?;
    ctx.set_tag(tag)?;
    ctx.cipher_update(aad, None)?;
    let start = out.len();
    ctx.cipher_update_vec(ciphertext, out)?;
    if ctx.cipher_final_vec(out).is_err() {
        return Err(forged(out, start));
    }
    Ok(())
}

/// A tag that does not verify: whatever was decrypted past `start` is wiped and dropped.
fn forged(out: &mut Vec<u8>, start: usize) -> CryptoError {
    out[start..].zeroize();
    out.truncate(start);
    CryptoError::IntegrityCheckFailed
}

/// A CCM context for one message (RFC 4309 / RFC 5282: 11-octet nonce, `icv_len` tag).
fn ccm_context(
    encr: Encryption,
    keymat: &[u8],
    nonce: &[u8],
    icv_len: usize,
    encrypt: bool,
) -> Result<CipherCtx> {
    let cipher = cipher_for(encr);
    let key = &keymat[..cipher.key_length()];
    let mut ctx = CipherCtx::new()?;
    if encrypt {
        ctx.encrypt_init(Some(cipher), None, None)?;
    } else {
        ctx.decrypt_init(Some(cipher), None, None)?;
    }
    ctx.set_iv_length(nonce.len())?;
    ctx.set_tag_length(icv_len)?;
    if encrypt {
        ctx.encrypt_init(None, Some(key), Some(nonce))?;
    } else {
        ctx.decrypt_init(None, Some(key), Some(nonce))?;
    }
    Ok(ctx)
}

/// AES-CCM encryption of `plaintext` with additional data `aad`, appending the ciphertext
/// and then the `icv_len`-octet tag to `out`.
fn ccm_seal(
    encr: Encryption,
    keymat: &[u8],
    nonce: &[u8],
    aad: &[u8],
    plaintext: &[u8],
    out: &mut Vec<u8>,
) -> Result<()> {
    let icv_len = encr.aead_icv_len();
    let mut ctx = ccm_context(encr, keymat, nonce, icv_len, true)?;
    ctx.set_data_len(plaintext.len())?;
    ctx.cipher_update(aad, None)?;
    ctx.cipher_update_vec(plaintext, out)?;
    ctx.cipher_final_vec(out)?;
    let mut tag = [0u8; FULL_TAG];
    ctx.tag(&mut tag[..icv_len])?;
    out.extend_from_slice(&tag[..icv_len]);
    Ok(())
}

/// AES-CCM decryption, appending the plaintext to `out`; a tag mismatch is
/// [`CryptoError::IntegrityCheckFailed`] and leaves nothing in `out`.
fn ccm_open(
    encr: Encryption,
    keymat: &[u8],
    nonce: &[u8],
    aad: &[u8],
    ciphertext: &[u8],
    tag: &[u8],
    out: &mut Vec<u8>,
) -> Result<()> {
    let mut ctx = ccm_context(encr, keymat, nonce, tag.len(), false)?;
    ctx.set_tag(tag)?;
    ctx.set_data_len(ciphertext.len())?;
    ctx.cipher_update(aad, None)?;
    let start = out.len();
    // OpenSSL checks the CCM tag in this update; the final call has nothing left to do.
    if ctx.cipher_update_vec(ciphertext, out).is_err() {
        return Err(forged(out, start));
    }
    Ok(())
}

/// Messages far beyond any IKE message (UDP and RFC 8229 TCP framing both stop at 64 KiB)
/// are refused before they reach OpenSSL, whose bindings take `int` lengths.
const MAX_MESSAGE: usize = 1 << 24;

fn check_size(len: usize) -> Result<()> {
    if len > MAX_MESSAGE {
        return Err(CryptoError::MalformedPayload("message too long"));
    }
    Ok(())
}

/// Removes `padding | pad length` from decrypted SK payload contents.
fn strip_padding(mut plaintext: Vec<u8>) -> Result<Vec<u8>> {
    let Some(&pad_len) = plaintext.last() else {
        return Err(CryptoError::MalformedPayload("no pad length octet"));
    };
    let trailer = usize::from(pad_len) + 1;
    if trailer > plaintext.len() {
        return Err(CryptoError::MalformedPayload(
            "pad length exceeds the encrypted data",
        ));
    }
    plaintext.truncate(plaintext.len() - trailer);
    Ok(plaintext)
}

/// SK payload protection in one direction: SK_ei (+ SK_ai) or SK_er (+ SK_ar).
///
/// The sender of that direction calls [`seal`](Self::seal), the receiver
/// [`open`](Self::open). OpenSSL contexts are created on first use and reused.
pub struct SkCipher {
    encr: Encryption,
    integ: Option<IntegKey>,
    /// SK_e: the key, followed by its salt (all but CBC).
    key: Secret,
    encrypt_ctx: Option<CipherCtx>,
    decrypt_ctx: Option<CipherCtx>,
    /// All but CBC: the next explicit IV, and how many remain before the counter would wrap.
    next_iv: u64,
    ivs_left: u64,
}

impl SkCipher {
    /// `encr_key` is SK_e as derived (`encr.keymat_len()` octets, salt included);
    /// `integ_key` is SK_a, empty for AEAD ciphers.
    pub fn new(
        encr: Encryption,
        integ: Option<Integrity>,
        encr_key: &Secret,
        integ_key: &Secret,
    ) -> Result<Self> {
        check_integrity(encr, integ)?;
        if encr_key.len() != encr.keymat_len() {
            return Err(CryptoError::BadLength {
                what: "encryption key",
                expected: encr.keymat_len(),
                actual: encr_key.len(),
            });
        }
        let integ = match integ {
            Some(alg) => Some(IntegKey::new(alg, integ_key.expose())?),
            None if integ_key.is_empty() => None,
            None => {
                return Err(CryptoError::BadLength {
                    what: "integrity key of an AEAD cipher",
                    expected: 0,
                    actual: integ_key.len(),
                })
            }
        };
        let mut start = [0u8; 8];
        random::fill(&mut start)?;
        Ok(SkCipher {
            encr,
            integ,
            key: encr_key.clone(),
            encrypt_ctx: None,
            decrypt_ctx: None,
            next_iv: u64::from_be_bytes(start),
            ivs_left: u64::MAX,
        })
    }

    pub fn encr(&self) -> Encryption {
        self.encr
    }

    pub fn integ(&self) -> Option<Integrity> {
        self.integ.as_ref().map(IntegKey::alg)
    }

    /// Octets of IV at the start of the body.
    pub fn iv_len(&self) -> usize {
        self.encr.iv_len()
    }

    /// Octets of ICV at the end of the body.
    pub fn icv_len(&self) -> usize {
        match &self.integ {
            Some(integ) => integ.icv_len(),
            None => self.encr.aead_icv_len(),
        }
    }

    /// Exact length of the body [`seal`](Self::seal) returns for `plaintext_len` octets of
    /// inner payloads: IV, encrypted payloads with padding and pad length, ICV. The SK
    /// payload's Length field is this plus 4, the message length that plus the prefix.
    pub fn sealed_len(&self, plaintext_len: usize) -> usize {
        let encrypted = match construction(self.encr) {
            Construction::Cbc => (plaintext_len / AES_BLOCK + 1) * AES_BLOCK,
            // Stream ciphers need no alignment: no padding, only the pad length octet.
            _ => plaintext_len + 1,
        };
        self.iv_len() + encrypted + self.icv_len()
    }

    /// Smallest body [`open`](Self::open) can accept (empty inner payloads).
    pub fn min_body_len(&self) -> usize {
        self.sealed_len(0)
    }

    /// Encrypts and authenticates `plaintext` (the inner payloads) and returns the SK body
    /// `IV | ciphertext | ICV`. `prefix` is the message up to the IV, final lengths set (see
    /// the module documentation).
    pub fn seal(&mut self, prefix: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        // One block of slack: OpenSSL's bindings want room for a block more than they write.
        let mut body = Vec::with_capacity(self.sealed_len(plaintext.len()) + AES_BLOCK);
        self.seal_into(prefix, &mut body, plaintext)?;
        Ok(body)
    }

    /// Like [`seal`](Self::seal), but for a `message` buffer that holds the prefix (the
    /// message built so far, up to and including the SK payload header with its final
    /// lengths): the body is appended to it, so the message is complete afterwards and
    /// nothing is copied.
    pub fn seal_append(&mut self, message: &mut Vec<u8>, plaintext: &[u8]) -> Result<()> {
        message.reserve(self.sealed_len(plaintext.len()) + AES_BLOCK);
        self.seal_into(&[], message, plaintext)
    }

    /// Appends the body to `buf`; what is authenticated is `outer_prefix`, then the octets
    /// `buf` already holds (together: the prefix), then the body itself.
    fn seal_into(
        &mut self,
        outer_prefix: &[u8],
        buf: &mut Vec<u8>,
        plaintext: &[u8],
    ) -> Result<()> {
        check_size(outer_prefix.len() + buf.len() + plaintext.len())?;
        let start = buf.len();
        let result = match construction(self.encr) {
            Construction::Cbc => self.seal_cbc(outer_prefix, buf, plaintext),
            Construction::Ctr => self.seal_ctr(outer_prefix, buf, plaintext),
            Construction::Aead | Construction::Ccm => self.seal_aead(outer_prefix, buf, plaintext),
        };
        match result {
            Ok(()) => {
                debug_assert_eq!(buf.len() - start, self.sealed_len(plaintext.len()));
                Ok(())
            }
            Err(e) => {
                buf.truncate(start);
                Err(e)
            }
        }
    }

    fn seal_cbc(&mut self, outer_prefix: &[u8], buf: &mut Vec<u8>, plaintext: &[u8]) -> Result<()> {
        let Some(integ) = &self.integ else {
            return Err(CryptoError::InvalidSuite("AES-CBC without integrity"));
        };
        let mut iv = [0u8; AES_BLOCK];
        random::fill(&mut iv)?;
        buf.extend_from_slice(&iv);

        // Whole blocks straight from the input; the tail, zero padding and the pad length
        // make exactly one more block.
        let whole = plaintext.len() - plaintext.len() % AES_BLOCK;
        let tail = &plaintext[whole..];
        let mut last = [0u8; AES_BLOCK];
        last[..tail.len()].copy_from_slice(tail);
        last[AES_BLOCK - 1] = (AES_BLOCK - 1 - tail.len()) as u8;

        let ctx = ready(&mut self.encrypt_ctx, self.encr, self.key.expose(), true)?;
        cbc_crypt(ctx, true, &iv, &[&plaintext[..whole], &last], buf)?;
        last.zeroize();

        let icv = integ.compute_concat(&[outer_prefix, buf])?;
        buf.extend_from_slice(&icv);
        Ok(())
    }

    /// The next explicit IV of a counter-IV cipher: a counter, so it never repeats under one
    /// key (RFC 4106 section 3.1, RFC 5930 section 2, RFC 7634 section 2).
    fn take_iv(&mut self) -> Result<[u8; COUNTER_IV]> {
        if self.ivs_left == 0 {
            return Err(CryptoError::IvExhausted);
        }
        self.ivs_left -= 1;
        let iv = self.next_iv.to_be_bytes();
        self.next_iv = self.next_iv.wrapping_add(1);
        Ok(iv)
    }

    fn seal_ctr(&mut self, outer_prefix: &[u8], buf: &mut Vec<u8>, plaintext: &[u8]) -> Result<()> {
        let iv = self.take_iv()?;
        let Some(integ) = &self.integ else {
            return Err(CryptoError::InvalidSuite("AES-CTR without integrity"));
        };
        let block = self.counter_block(&iv);
        buf.extend_from_slice(&iv);
        let ctx = ready(&mut self.encrypt_ctx, self.encr, self.key.expose(), true)?;
        ctx.encrypt_init(None, None, Some(&block[..]))?;
        ctx.cipher_update_vec(plaintext, buf)?;
        ctx.cipher_update_vec(&[0], buf)?;
        ctx.cipher_final_vec(buf)?;
        let icv = integ.compute_concat(&[outer_prefix, buf])?;
        buf.extend_from_slice(&icv);
        Ok(())
    }

    fn seal_aead(
        &mut self,
        outer_prefix: &[u8],
        buf: &mut Vec<u8>,
        plaintext: &[u8],
    ) -> Result<()> {
        let iv = self.take_iv()?;
        let nonce = self.nonce(&iv);
        if construction(self.encr) == Construction::Ccm {
            let aad = [outer_prefix, buf].concat();
            let padded = Zeroizing::new([plaintext, &[0]].concat());
            buf.extend_from_slice(&iv);
            return ccm_seal(self.encr, self.key.expose(), &nonce, &aad, &padded, buf);
        }
        let icv_len = self.encr.aead_icv_len();
        let ctx = ready(&mut self.encrypt_ctx, self.encr, self.key.expose(), true)?;
        gcm_begin(ctx, &nonce, &[outer_prefix, buf])?;
        buf.extend_from_slice(&iv);
        let tag = gcm_finish(ctx, &[plaintext, &[0]], buf)?;
        buf.extend_from_slice(&tag[..icv_len]);
        Ok(())
    }

    /// Checks and decrypts the SK body `IV | ciphertext | ICV` of a received message whose
    /// octets before the IV are `prefix`, and returns the inner payloads.
    pub fn open(&mut self, prefix: &[u8], body: &[u8]) -> Result<Vec<u8>> {
        check_size(prefix.len() + body.len())?;
        if body.len() < self.min_body_len() {
            return Err(CryptoError::MalformedPayload(
                "shorter than IV, one encrypted block and ICV",
            ));
        }
        match construction(self.encr) {
            Construction::Cbc => self.open_cbc(prefix, body),
            Construction::Ctr => self.open_ctr(prefix, body),
            Construction::Aead | Construction::Ccm => self.open_aead(prefix, body),
        }
    }

    fn open_cbc(&mut self, prefix: &[u8], body: &[u8]) -> Result<Vec<u8>> {
        let Some(integ) = &self.integ else {
            return Err(CryptoError::InvalidSuite("AES-CBC without integrity"));
        };
        let (signed, icv) = body.split_at(body.len() - integ.icv_len());
        let (iv, ciphertext) = signed.split_at(AES_BLOCK);
        if ciphertext.len() % AES_BLOCK != 0 {
            return Err(CryptoError::MalformedPayload(
                "ciphertext is not a whole number of AES blocks",
            ));
        }
        integ.verify_concat(&[prefix, signed], icv)?;

        let ctx = ready(&mut self.decrypt_ctx, self.encr, self.key.expose(), false)?;
        let mut plaintext = Vec::with_capacity(ciphertext.len() + AES_BLOCK);
        cbc_crypt(ctx, false, iv, &[ciphertext], &mut plaintext)?;
        strip_padding(plaintext)
    }

    fn open_ctr(&mut self, prefix: &[u8], body: &[u8]) -> Result<Vec<u8>> {
        let Some(integ) = &self.integ else {
            return Err(CryptoError::InvalidSuite("AES-CTR without integrity"));
        };
        let (signed, icv) = body.split_at(body.len() - integ.icv_len());
        integ.verify_concat(&[prefix, signed], icv)?;
        let (iv, ciphertext) = signed.split_at(COUNTER_IV);
        let block = self.counter_block(iv);
        let ctx = ready(&mut self.decrypt_ctx, self.encr, self.key.expose(), false)?;
        ctx.decrypt_init(None, None, Some(&block[..]))?;
        let mut plaintext = Vec::with_capacity(ciphertext.len() + AES_BLOCK);
        ctx.cipher_update_vec(ciphertext, &mut plaintext)?;
        ctx.cipher_final_vec(&mut plaintext)?;
        strip_padding(plaintext)
    }

    fn open_aead(&mut self, prefix: &[u8], body: &[u8]) -> Result<Vec<u8>> {
        let (iv, rest) = body.split_at(COUNTER_IV);
        let (ciphertext, tag) = rest.split_at(rest.len() - self.encr.aead_icv_len());
        let nonce = self.nonce(iv);
        let mut plaintext = Vec::with_capacity(ciphertext.len() + AES_BLOCK);
        if construction(self.encr) == Construction::Ccm {
            let key = self.key.expose();
            ccm_open(
                self.encr,
                key,
                &nonce,
                prefix,
                ciphertext,
                tag,
                &mut plaintext,
            )?;
        } else {
            let ctx = ready(&mut self.decrypt_ctx, self.encr, self.key.expose(), false)?;
            gcm_open(ctx, &nonce, prefix, ciphertext, tag, &mut plaintext)?;
        }
        strip_padding(plaintext)
    }

    /// The nonce: the salt (last octets of SK_e) followed by the explicit IV.
    fn nonce(&self, iv: &[u8]) -> Zeroizing<Vec<u8>> {
        let key = self.key.expose();
        let mut nonce = Zeroizing::new(Vec::with_capacity(MAX_NONCE));
        nonce.extend_from_slice(&key[key.len() - self.encr.salt_len()..]);
        nonce.extend_from_slice(iv);
        nonce
    }

    /// AES-CTR's first counter block: nonce, IV and a block counter of 1 (RFC 3686 section 4).
    fn counter_block(&self, iv: &[u8]) -> Zeroizing<[u8; AES_BLOCK]> {
        let mut block = Zeroizing::new([0u8; AES_BLOCK]);
        block[..MAX_NONCE].copy_from_slice(&self.nonce(iv));
        block[AES_BLOCK - 1] = 1;
        block
    }
}

impl fmt::Debug for SkCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SkCipher")
            .field("encr", &self.encr)
            .field("integ", &self.integ())
            .finish_non_exhaustive()
    }
}

/// Both directions of an IKE SA's SK payload protection, from one side's point of view.
#[derive(Debug)]
pub struct SkCiphers {
    /// Protects the messages this side sends (requests and responses alike).
    pub outbound: SkCipher,
    /// Checks and decrypts the messages the peer sends.
    pub inbound: SkCipher,
}

impl SkCiphers {
    /// `original_initiator` says whether this side sent the IKE_SA_INIT request that created
    /// the IKE SA. Its messages use SK_ei / SK_ai and the peer's SK_er / SK_ar, for every
    /// later exchange whoever starts it (RFC 7296 section 2.14); after an IKE SA rekey, the
    /// initiator of the rekeying exchange becomes the original initiator of the new SA.
    pub fn new(keys: &IkeSaKeys, original_initiator: bool) -> Result<Self> {
        let (encr, integ) = (keys.suite.encr, keys.suite.integ);
        let initiator = SkCipher::new(encr, integ, &keys.sk_ei, &keys.sk_ai)?;
        let responder = SkCipher::new(encr, integ, &keys.sk_er, &keys.sk_ar)?;
        Ok(if original_initiator {
            SkCiphers {
                outbound: initiator,
                inbound: responder,
            }
        } else {
            SkCiphers {
                outbound: responder,
                inbound: initiator,
            }
        })
    }

    /// Drops both directions' OpenSSL contexts (about a kilobyte each); the next message
    /// builds its own again. An established IKE SA speaks rarely (liveness checks, rekeys),
    /// so keeping them would cost memory on every tunnel for a few microseconds now and then.
    pub fn release_contexts(&mut self) {
        for cipher in [&mut self.outbound, &mut self.inbound] {
            cipher.encrypt_ctx = None;
            cipher.decrypt_ctx = None;
        }
    }

    /// [`SkCipher::seal`] with the outbound keys.
    pub fn seal(&mut self, prefix: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        self.outbound.seal(prefix, plaintext)
    }

    /// [`SkCipher::seal_append`] with the outbound keys.
    pub fn seal_append(&mut self, message: &mut Vec<u8>, plaintext: &[u8]) -> Result<()> {
        self.outbound.seal_append(message, plaintext)
    }

    /// [`SkCipher::open`] with the inbound keys.
    pub fn open(&mut self, prefix: &[u8], body: &[u8]) -> Result<Vec<u8>> {
        self.inbound.open(prefix, body)
    }
}

#[cfg(test)]
mod tests;
