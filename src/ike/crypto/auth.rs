//! Shared-key AUTH payloads (RFC 7296 section 2.15, authentication method 2).
//!
//! ```text
//! AUTH = prf( prf(Shared Secret, "Key Pad for IKEv2"), <SignedOctets> )
//!
//! InitiatorSignedOctets = RealMessage1 | NonceRData | MACedIDForI
//! MACedIDForI = prf(SK_pi, RestOfInitIDPayload)
//! ResponderSignedOctets = RealMessage2 | NonceIData | MACedIDForR
//! MACedIDForR = prf(SK_pr, RestOfRespIDPayload)
//! ```
//!
//! `prf` is the IKE SA's negotiated PRF throughout.

use super::prf::PrfKey;
use super::{CryptoError, Result, Secret};
use crate::proposal::Prf;

/// The 17 ASCII octets of the key pad, without a terminating NUL.
pub const KEY_PAD: &[u8] = b"Key Pad for IKEv2";

/// Builds `<SignedOctets>` for the side whose AUTH payload is computed or checked:
///
/// * `message`: that side's IKE_SA_INIT message, every octet as sent on the wire (from the
///   IKE header to the end, without a UDP-encapsulation non-ESP marker);
/// * `peer_nonce`: the Nonce Data of the *other* side's IKE_SA_INIT Nonce payload;
/// * `sk_p`: that side's SK_p (SK_pi for the initiator, SK_pr for the responder);
/// * `id_body`: that side's ID payload without its 4-octet generic header, i.e. ID Type,
///   the three RESERVED octets and the Identification Data.
///
/// To compute our AUTH we pass our message, the peer's nonce, our SK_p and our ID; to
/// verify the peer's AUTH, the peer's message, our nonce, the peer's SK_p and the peer's ID.
pub fn signed_octets(
    prf: Prf,
    message: &[u8],
    peer_nonce: &[u8],
    sk_p: &Secret,
    id_body: &[u8],
) -> Result<Vec<u8>> {
    let maced_id = PrfKey::new(prf, sk_p.expose())?.compute(id_body)?;
    let mut octets = Vec::with_capacity(message.len() + peer_nonce.len() + maced_id.len());
    octets.extend_from_slice(message);
    octets.extend_from_slice(peer_nonce);
    octets.extend_from_slice(maced_id.expose());
    Ok(octets)
}

/// `prf(prf(PSK, "Key Pad for IKEv2"), signed_octets)`, kept as a secret until it is sent.
fn expected_auth(prf: Prf, psk: &Secret, signed_octets: &[u8]) -> Result<Secret> {
    let pad_key = PrfKey::new(prf, psk.expose())?.compute(KEY_PAD)?;
    PrfKey::new(prf, pad_key.expose())?.compute(signed_octets)
}

/// The Authentication Data of our AUTH payload (method 2, shared key MIC), of
/// `prf.output_len()` octets.
pub fn psk_auth(prf: Prf, psk: &Secret, signed_octets: &[u8]) -> Result<Vec<u8>> {
    Ok(expected_auth(prf, psk, signed_octets)?.expose().to_vec())
}

/// Checks the peer's Authentication Data in constant time;
/// [`CryptoError::AuthenticationFailed`] if it does not match (answer AUTHENTICATION_FAILED).
pub fn verify_psk_auth(
    prf: Prf,
    psk: &Secret,
    signed_octets: &[u8],
    received_auth: &[u8],
) -> Result<()> {
    if expected_auth(prf, psk, signed_octets)?.ct_eq(received_auth) {
        Ok(())
    } else {
        Err(CryptoError::AuthenticationFailed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ike::crypto::prf;
    use crate::ike::crypto::testutil::hex;

    fn example() -> (Vec<u8>, Vec<u8>, Secret, Vec<u8>) {
        let message: Vec<u8> = (0..100).collect();
        let nonce = vec![0xaa; 32];
        let sk_p = Secret::from_slice(&[0x55; 32]);
        let id_body = [&[2u8, 0, 0, 0][..], b"vpn.example.com"].concat(); // ID_FQDN
        (message, nonce, sk_p, id_body)
    }

    /// By hand from the formula, and pinned to a value computed with Python's `hmac`.
    #[test]
    fn psk_auth_value() {
        assert_eq!(KEY_PAD.len(), 17);
        let (message, nonce, sk_p, id_body) = example();
        let alg = Prf::HmacSha256;
        let octets = signed_octets(alg, &message, &nonce, &sk_p, &id_body).unwrap();
        let maced_id = prf(alg, sk_p.expose(), &id_body).unwrap();
        assert_eq!(octets, [&message[..], &nonce, maced_id.expose()].concat());
        assert_eq!(
            maced_id.expose(),
            &hex("772ce2f4d854bb7d37865d81c3a4bf824476a61c386e0addc63dceffc88817a4")[..]
        );

        let psk = Secret::from_slice(b"correct horse battery staple");
        let auth = psk_auth(alg, &psk, &octets).unwrap();
        let by_hand = prf(
            alg,
            prf(alg, psk.expose(), KEY_PAD).unwrap().expose(),
            &octets,
        )
        .unwrap();
        assert_eq!(auth, by_hand.expose());
        assert_eq!(
            auth,
            hex("39b99978031a7d82c1a8c686ae638a01ab2b23d7d3c3b5e3c54d1383b781ac04")
        );
        verify_psk_auth(alg, &psk, &octets, &auth).unwrap();
    }

    #[test]
    fn verification_fails_on_any_difference() {
        let (message, nonce, sk_p, id_body) = example();
        for alg in [
            Prf::HmacSha1,
            Prf::HmacSha256,
            Prf::HmacSha384,
            Prf::HmacSha512,
            Prf::AesXcbc,
            Prf::AesCmac,
        ] {
            let psk = Secret::from_slice(b"secret");
            let octets = signed_octets(alg, &message, &nonce, &sk_p, &id_body).unwrap();
            let auth = psk_auth(alg, &psk, &octets).unwrap();
            assert_eq!(auth.len(), alg.output_len());
            verify_psk_auth(alg, &psk, &octets, &auth).unwrap();

            let fails = |r: Result<()>| matches!(r, Err(CryptoError::AuthenticationFailed));
            let wrong_psk = Secret::from_slice(b"Secret");
            assert!(fails(verify_psk_auth(alg, &wrong_psk, &octets, &auth)));
            let mut bad = auth.clone();
            bad[0] ^= 1;
            assert!(fails(verify_psk_auth(alg, &psk, &octets, &bad)));
            assert!(fails(verify_psk_auth(alg, &psk, &octets, &auth[1..])));
            assert!(fails(verify_psk_auth(alg, &psk, &octets, &[])));
            // Another identity, nonce or SK_p changes the signed octets.
            let other_id = signed_octets(alg, &message, &nonce, &sk_p, b"\x02\0\0\0other").unwrap();
            assert!(fails(verify_psk_auth(alg, &psk, &other_id, &auth)));
            let other_nonce = signed_octets(alg, &message, &[0xab; 32], &sk_p, &id_body).unwrap();
            assert!(fails(verify_psk_auth(alg, &psk, &other_nonce, &auth)));
            let other_skp = Secret::from_slice(&[0x56; 32]);
            let other = signed_octets(alg, &message, &nonce, &other_skp, &id_body).unwrap();
            assert!(fails(verify_psk_auth(alg, &psk, &other, &auth)));
        }
    }
}
