use super::*;
use crate::ike::crypto::testutil::hex;
use proptest::prelude::*;

const SUITES: [(Encryption, Option<Integrity>); 17] = [
    (Encryption::AesCbc(128), Some(Integrity::HmacSha1_96)),
    (Encryption::AesCbc(128), Some(Integrity::HmacSha256_128)),
    (Encryption::AesCbc(192), Some(Integrity::HmacSha384_192)),
    (Encryption::AesCbc(256), Some(Integrity::HmacSha512_256)),
    (Encryption::AesCbc(256), Some(Integrity::AesXcbc96)),
    (Encryption::AesCbc(128), Some(Integrity::AesCmac96)),
    (Encryption::AesCtr(128), Some(Integrity::HmacSha256_128)),
    (Encryption::AesCtr(256), Some(Integrity::AesXcbc96)),
    (Encryption::AesGcm16(128), None),
    (Encryption::AesGcm16(192), None),
    (Encryption::AesGcm16(256), None),
    (Encryption::AesGcm8(128), None),
    (Encryption::AesGcm12(256), None),
    (Encryption::AesCcm8(128), None),
    (Encryption::AesCcm12(192), None),
    (Encryption::AesCcm16(256), None),
    (Encryption::ChaCha20Poly1305, None),
];

/// A cipher whose next explicit IV is `iv` (the counter the known-answer tests start from).
fn cipher_with_iv(
    encr: Encryption,
    integ: Option<Integrity>,
    keymat: &[u8],
    iv: &[u8],
) -> SkCipher {
    let ak = Secret::new(vec![0x5a; integ.map_or(0, Integrity::key_len)]);
    let mut c = SkCipher::new(encr, integ, &Secret::from_slice(keymat), &ak).unwrap();
    c.next_iv = u64::from_be_bytes(iv.try_into().unwrap());
    c
}

/// RFC 3686 section 6, test vectors #1 and #2 (AES-128-CTR), through `seal`: SK_e is the key
/// followed by the nonce, the explicit IV is the RFC's, and the block counter starts at 1.
/// The ciphertext of the payload is followed by that of the pad length octet and the ICV.
#[test]
fn aes_ctr_rfc3686_vectors() {
    let cases = [
        (
            "ae6852f8121067cc4bf7a5765577f39e",
            "00000030",
            "0000000000000000",
            "53696e676c6520626c6f636b206d7367",
            "e4095d4fb7a7b3792d6175a3261311b8",
        ),
        (
            "7e24067817fae0d743d6ce1f32539163",
            "006cb6db",
            "c0543b59da48d90b",
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
            "5104a106168a72d9790d41ee8edad388eb2e1efc46da57c8fce630df9141be28",
        ),
    ];
    let integ = Some(Integrity::HmacSha256_128);
    for (key, nonce, iv, plain, cipher) in cases {
        let keymat = [hex(key), hex(nonce)].concat();
        let mut c = cipher_with_iv(Encryption::AesCtr(128), integ, &keymat, &hex(iv));
        let body = c.seal(b"prefix", &hex(plain)).unwrap();
        let expected = hex(cipher);
        assert_eq!(&body[..8], &hex(iv)[..]);
        assert_eq!(&body[8..8 + expected.len()], &expected[..], "key {key}");
        assert_eq!(body.len(), 8 + expected.len() + 1 + 16);
        let mut receiver = cipher_with_iv(Encryption::AesCtr(128), integ, &keymat, &[0; 8]);
        assert_eq!(receiver.open(b"prefix", &body).unwrap(), hex(plain));
    }
}

/// RFC 8439 section 2.8.2 through `seal`, as RFC 7634 maps it: SK_e is the key followed by
/// the salt 07000000, the explicit IV is 4041424344454647, the prefix is the AAD. The RFC's
/// plaintext plus our pad length octet changes the tag, so the tag is checked by the
/// lower-level functions and the ciphertext by `seal`.
#[test]
fn chacha20_poly1305_rfc8439_vector() {
    let keymat = [
        hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"),
        hex("07000000"),
    ]
    .concat();
    let aad = hex("50515253c0c1c2c3c4c5c6c7");
    let plain = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip \
for the future, sunscreen would be it.";
    let expected = hex(
        "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6
         3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36
         92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc
         3ff4def08e4b7a9de576d26586cec64b6116",
    );
    let encr = Encryption::ChaCha20Poly1305;
    let mut c = cipher_with_iv(encr, None, &keymat, &hex("4041424344454647"));
    let body = c.seal(&aad, plain).unwrap();
    assert_eq!(&body[8..8 + expected.len()], &expected[..]);

    let nonce = c.nonce(&hex("4041424344454647"));
    assert_eq!(&nonce[..], &hex("070000004041424344454647")[..]);
    let mut enc = ctx(encr, &keymat, true);
    gcm_begin(&mut enc, &nonce, &[&aad]).unwrap();
    let mut out = Vec::new();
    let tag = gcm_finish(&mut enc, &[plain], &mut out).unwrap();
    assert_eq!(out, expected);
    assert_eq!(tag[..], hex("1ae10b594f09e26a7e902ecbd0600691")[..]);
    let mut receiver = cipher_with_iv(encr, None, &keymat, &[0; 8]);
    assert_eq!(receiver.open(&aad, &body).unwrap(), plain);
}

/// RFC 3610 section 8, packet vector #1 (13-octet nonce, 8-octet tag) through the CCM
/// functions `seal` / `open` use; IPsec's 11-octet nonce (RFC 4309) goes the same way and is
/// checked by the round trips.
#[test]
fn aes_ccm_rfc3610_vector() {
    let encr = Encryption::AesCcm8(128);
    let key = hex("c0c1c2c3c4c5c6c7c8c9cacbcccdcecf");
    let nonce = hex("00000003020100a0a1a2a3a4a5");
    let aad = hex("0001020304050607");
    let plain = hex("08090a0b0c0d0e0f101112131415161718191a1b1c1d1e");
    let expected = hex("588c979a61c663d2f066d0c2c0f989806d5f6b61dac38417e8d12cfdf926e0");
    let mut out = Vec::new();
    ccm_seal(encr, &key, &nonce, &aad, &plain, &mut out).unwrap();
    assert_eq!(out, expected);
    let (ciphertext, tag) = expected.split_at(plain.len());
    let mut back = Vec::new();
    ccm_open(encr, &key, &nonce, &aad, ciphertext, tag, &mut back).unwrap();
    assert_eq!(back, plain);
    let mut bad_tag = tag.to_vec();
    bad_tag[0] ^= 1;
    let mut junk = Vec::new();
    assert!(matches!(
        ccm_open(encr, &key, &nonce, &aad, ciphertext, &bad_tag, &mut junk),
        Err(CryptoError::IntegrityCheckFailed)
    ));
    assert!(junk.is_empty());
}

/// The nonce of each cipher: its salt (the last 3 or 4 octets of SK_e) and the IV.
#[test]
fn salts_come_from_the_end_of_the_key() {
    for (encr, salt) in [
        (Encryption::AesGcm8(128), 4),
        (Encryption::AesCcm16(128), 3),
        (Encryption::AesCtr(128), 4),
        (Encryption::ChaCha20Poly1305, 4),
    ] {
        let integ = (!encr.is_aead()).then_some(Integrity::HmacSha256_128);
        let (c, _) = pair(encr, integ);
        let key = c.key.expose().to_vec();
        let nonce = c.nonce(&[0xee; 8]);
        assert_eq!(nonce.len(), salt + 8, "{encr}");
        assert_eq!(&nonce[..salt], &key[key.len() - salt..], "{encr}");
    }
}

/// A sender and a receiver sharing one direction's keys.
fn pair(encr: Encryption, integ: Option<Integrity>) -> (SkCipher, SkCipher) {
    let ek = Secret::new(
        (0..encr.keymat_len() as u8)
            .map(|b| b.wrapping_mul(7))
            .collect(),
    );
    let ak = Secret::new(vec![0x5a; integ.map_or(0, Integrity::key_len)]);
    (
        SkCipher::new(encr, integ, &ek, &ak).unwrap(),
        SkCipher::new(encr, integ, &ek, &ak).unwrap(),
    )
}

/// An IKE header (28) and SK payload header (4) whose Length fields match a body of
/// `body_len` octets, as the codec would build it.
fn prefix(body_len: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(32);
    p.extend_from_slice(&[0x11; 8]); // SPIi
    p.extend_from_slice(&[0x22; 8]); // SPIr
    p.extend_from_slice(&[46, 0x20, 35, 0x08]); // next: SK, version 2.0, IKE_AUTH, initiator
    p.extend_from_slice(&1u32.to_be_bytes()); // message ID
    p.extend_from_slice(&((32 + body_len) as u32).to_be_bytes());
    p.extend_from_slice(&[35, 0]); // SK header: first inner payload IDi
    p.extend_from_slice(&((4 + body_len) as u16).to_be_bytes());
    p
}

fn ctx(encr: Encryption, key: &[u8], encrypt: bool) -> CipherCtx {
    let mut slot = None;
    ready(&mut slot, encr, key, encrypt).unwrap();
    slot.unwrap()
}

/// RFC 3602 section 4, cases 1-4 (AES-128-CBC), and NIST SP 800-38A F.2.3 / F.2.5
/// (AES-192/256-CBC), through the same context handling `seal` / `open` use. Each context is
/// used twice to check that setting a new IV on a reused context works.
#[test]
fn aes_cbc_known_answers() {
    let sp800_38a_plain = "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51
                           30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710";
    let cases = [
        (
            128,
            "06a9214036b8a15b512e03d534120006",
            "3dafba429d9eb430b422da802c9fac41",
            hex("53696e676c6520626c6f636b206d7367"), // "Single block msg"
            "e353779c1079aeb82708942dbe77181a",
        ),
        (
            128,
            "c286696d887c9aa0611bbb3e2025a45a",
            "562e17996d093d28ddb3ba695a2e6f58",
            (0..32).collect(),
            "d296cd94c2cccf8a3a863028b5e1dc0a7586602d253cfff91b8266bea6d61ab1",
        ),
        (
            128,
            "6c3ea0477630ce21a2ce334aa746c2cd",
            "c782dc4c098c66cbd9cd27d825682c81",
            b"This is a 48-byte message (exactly 3 AES blocks)".to_vec(),
            "d0a02b3836451753d493665d33f0e8862dea54cdb293abc7506939276772f8d5
             021c19216bad525c8579695d83ba2684",
        ),
        (
            128,
            "56e47a38c5598974bc46903dba290349",
            "8ce82eefbea0da3c44699ed7db51b7d9",
            (0xa0..=0xdf).collect(),
            "c30e32ffedc0774e6aff6af0869f71aa0f3af07a9a31a9c684db207eb0ef8e4e
             35907aa632c3ffdf868bb7b29d3d46ad83ce9f9a102ee99d49a53e87f4c3da55",
        ),
        (
            192,
            "8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b",
            "000102030405060708090a0b0c0d0e0f",
            hex(sp800_38a_plain),
            "4f021db243bc633d7178183a9fa071e8b4d9ada9ad7dedf4e5e738763f69145a
             571b242012fb7ae07fa9baac3df102e008b0e27988598881d920a9e64f5615cd",
        ),
        (
            256,
            "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4",
            "000102030405060708090a0b0c0d0e0f",
            hex(sp800_38a_plain),
            "f58c4c04d6e5f1ba779eabfb5f7bfbd69cfc4e967edb808d679f777bc6702c7d
             39f23369a9d9bacfa530e26304231461b2eb05e2c39be9fcda6c19078c6a9d1b",
        ),
    ];
    for (bits, key, iv, plain, cipher) in cases {
        let encr = Encryption::AesCbc(bits);
        let (key, iv, cipher) = (hex(key), hex(iv), hex(cipher));
        let mut enc = ctx(encr, &key, true);
        let mut dec = ctx(encr, &key, false);
        for _ in 0..2 {
            let mut out = Vec::new();
            cbc_crypt(&mut enc, true, &iv, &[&plain], &mut out).unwrap();
            assert_eq!(out, cipher, "AES-{bits}-CBC encrypt");
            let mut back = Vec::new();
            cbc_crypt(&mut dec, false, &iv, &[&cipher], &mut back).unwrap();
            assert_eq!(back, plain, "AES-{bits}-CBC decrypt");
        }
    }
}

/// McGrew & Viega, "The Galois/Counter Mode of Operation (GCM)", test cases 3 and 4
/// (AES-128) and 15 and 16 (AES-256), all with a 96-bit IV, through the GCM helpers.
#[test]
fn aes_gcm_known_answers() {
    let key128 = hex("feffe9928665731c6d6a8f9467308308");
    let key256 = hex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308");
    let nonce: [u8; 12] = hex("cafebabefacedbaddecaf888").try_into().unwrap();
    let p64 = hex(
        "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72
                   1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
    );
    let aad = hex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
    let c128 = hex(
        "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e
                    21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985",
    );
    let c256 = hex(
        "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa
                    8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
    );
    let cases = [
        (
            3,
            128,
            &key128,
            &[][..],
            64,
            &c128,
            "4d5c2af327cd64a62cf35abd2ba6fab4",
        ),
        (
            4,
            128,
            &key128,
            &aad[..],
            60,
            &c128,
            "5bc94fbc3221a5db94fae95ae7121a47",
        ),
        (
            15,
            256,
            &key256,
            &[][..],
            64,
            &c256,
            "b094dac5d93471bdec1a502270e3cc6c",
        ),
        (
            16,
            256,
            &key256,
            &aad[..],
            60,
            &c256,
            "76fc6ece0f4e1768cddf8853bb2d551b",
        ),
    ];
    for (case, bits, key, aad, len, cipher, tag) in cases {
        let encr = Encryption::AesGcm16(bits);
        let (plain, cipher, tag) = (&p64[..len], &cipher[..len], hex(tag));
        let mut enc = ctx(encr, key, true);
        let mut dec = ctx(encr, key, false);
        for _ in 0..2 {
            let mut out = Vec::new();
            gcm_begin(&mut enc, &nonce, &[aad]).unwrap();
            let got_tag = gcm_finish(&mut enc, &[plain], &mut out).unwrap();
            assert_eq!(
                (&out[..], &got_tag[..]),
                (cipher, &tag[..]),
                "test case {case}"
            );
            let mut back = Vec::new();
            gcm_open(&mut dec, &nonce, aad, cipher, &tag, &mut back).unwrap();
            assert_eq!(back, plain, "test case {case}");
            let mut bad_tag = tag.clone();
            bad_tag[15] ^= 1;
            let mut junk = Vec::new();
            assert!(matches!(
                gcm_open(&mut dec, &nonce, aad, cipher, &bad_tag, &mut junk),
                Err(CryptoError::IntegrityCheckFailed)
            ));
            assert!(
                junk.is_empty(),
                "unauthenticated plaintext must not be returned"
            );
        }
    }
}

#[test]
fn round_trip_every_suite_and_length() {
    for (encr, integ) in SUITES {
        let (mut tx, mut rx) = pair(encr, integ);
        for len in [0, 1, 2, 3, 4, 14, 15, 16, 17, 31, 32, 33, 100, 1000] {
            let plain: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let body_len = tx.sealed_len(len);
            let prefix = prefix(body_len);
            let body = tx.seal(&prefix, &plain).unwrap();
            assert_eq!(body.len(), body_len, "{encr} {len}");
            assert_eq!(rx.open(&prefix, &body).unwrap(), plain, "{encr} {len}");
        }
    }
}

/// Sealing into the message buffer gives the same result as sealing with a separate prefix.
#[test]
fn seal_append_matches_seal() {
    for (encr, integ) in SUITES {
        let (mut tx, mut rx) = pair(encr, integ);
        let plain = b"inner payloads".to_vec();
        let mut message = prefix(tx.sealed_len(plain.len()));
        let prefix_len = message.len();
        tx.seal_append(&mut message, &plain).unwrap();
        assert_eq!(message.len(), prefix_len + tx.sealed_len(plain.len()));
        let (prefix, body) = message.split_at(prefix_len);
        assert_eq!(rx.open(prefix, body).unwrap(), plain, "{encr}");
        // The prefix counts from the start of the buffer: a shorter one does not verify.
        assert!(rx.open(&prefix[4..], body).is_err());
    }
}

#[test]
fn sealed_lengths() {
    let (cbc, _) = pair(Encryption::AesCbc(128), Some(Integrity::HmacSha256_128));
    // IV 16 + padded to 16 (at least the pad length octet) + ICV 16.
    assert_eq!(cbc.sealed_len(0), 16 + 16 + 16);
    assert_eq!(cbc.sealed_len(15), 16 + 16 + 16);
    assert_eq!(cbc.sealed_len(16), 16 + 32 + 16);
    assert_eq!(cbc.min_body_len(), 48);
    let (gcm, _) = pair(Encryption::AesGcm16(256), None);
    // IV 8 + data + pad length octet + ICV 16.
    assert_eq!(gcm.sealed_len(0), 8 + 1 + 16);
    assert_eq!(gcm.sealed_len(100), 8 + 101 + 16);
    assert_eq!((gcm.iv_len(), gcm.icv_len()), (8, 16));
}

/// Flipping any bit of the header, IV, ciphertext or ICV makes `open` fail.
#[test]
fn any_tampering_is_detected() {
    for (encr, integ) in SUITES {
        let (mut tx, mut rx) = pair(encr, integ);
        let plain = b"IDi, AUTH, SAi2, TSi, TSr payloads".to_vec();
        let prefix = prefix(tx.sealed_len(plain.len()));
        let body = tx.seal(&prefix, &plain).unwrap();
        for i in 0..prefix.len() {
            let mut bad = prefix.clone();
            bad[i] ^= 0x01;
            assert!(rx.open(&bad, &body).is_err(), "{encr}: header octet {i}");
        }
        for i in 0..body.len() {
            for bit in [0x01, 0x80] {
                let mut bad = body.clone();
                bad[i] ^= bit;
                assert!(rx.open(&prefix, &bad).is_err(), "{encr}: body octet {i}");
            }
        }
        // Truncation and extension, and a missing or extra header octet.
        assert!(rx.open(&prefix, &body[..body.len() - 1]).is_err());
        assert!(rx.open(&prefix, &[&body[..], &[0]].concat()).is_err());
        assert!(rx.open(&prefix[1..], &body).is_err());
        assert!(rx.open(&[&prefix[..], &[0]].concat(), &body).is_err());
        // The untouched message still opens (the contexts survive failures).
        assert_eq!(rx.open(&prefix, &body).unwrap(), plain);
    }
}

#[test]
fn the_other_directions_keys_do_not_open() {
    let suite = crate::ike::crypto::IkeSuite::new(
        Encryption::AesGcm16(128),
        None,
        crate::proposal::Prf::HmacSha256,
    )
    .unwrap();
    let gir = Secret::from_slice(&[3; 32]);
    let keys = IkeSaKeys::derive(suite, &gir, &[1; 32], &[2; 32], &[4; 8], &[5; 8]).unwrap();
    let mut initiator = SkCiphers::new(&keys, true).unwrap();
    let mut responder = SkCiphers::new(&keys, false).unwrap();
    let prefix = prefix(initiator.outbound.sealed_len(5));
    let request = initiator.seal(&prefix, b"hello").unwrap();
    assert_eq!(responder.open(&prefix, &request).unwrap(), b"hello");
    // The initiator cannot open its own message with its inbound (SK_er) keys.
    assert!(initiator.open(&prefix, &request).is_err());
    let response = responder.seal(&prefix, b"world").unwrap();
    assert_eq!(initiator.open(&prefix, &response).unwrap(), b"world");
}

#[test]
fn ivs_never_repeat() {
    let (mut gcm, _) = pair(Encryption::AesGcm16(128), None);
    let first = gcm.seal(b"hdr", b"x").unwrap();
    let second = gcm.seal(b"hdr", b"x").unwrap();
    let iv = |b: &[u8]| u64::from_be_bytes(b[..8].try_into().unwrap());
    assert_eq!(iv(&second), iv(&first).wrapping_add(1));
    assert_ne!(first, second);

    let (mut cbc, _) = pair(Encryption::AesCbc(128), Some(Integrity::HmacSha256_128));
    let a = cbc.seal(b"hdr", b"x").unwrap();
    let b = cbc.seal(b"hdr", b"x").unwrap();
    assert_ne!(a[..16], b[..16]);

    gcm.ivs_left = 0;
    assert!(matches!(
        gcm.seal(b"hdr", b"x"),
        Err(CryptoError::IvExhausted)
    ));
}

/// Builds a CBC body around an arbitrary decrypted block sequence (valid ICV).
fn cbc_body_with(decrypted: &[u8], key: &[u8], integ_key: &[u8], prefix: &[u8]) -> Vec<u8> {
    let iv = [9u8; 16];
    let mut body = iv.to_vec();
    let mut enc = ctx(Encryption::AesCbc(128), key, true);
    cbc_crypt(&mut enc, true, &iv, &[decrypted], &mut body).unwrap();
    let integ = IntegKey::new(Integrity::HmacSha256_128, integ_key).unwrap();
    let icv = integ.compute_concat(&[prefix, &body]).unwrap();
    body.extend_from_slice(&icv);
    body
}

#[test]
fn padding_rules() {
    let key = [1u8; 16];
    let ak = [2u8; 32];
    let mut rx = SkCipher::new(
        Encryption::AesCbc(128),
        Some(Integrity::HmacSha256_128),
        &Secret::from_slice(&key),
        &Secret::from_slice(&ak),
    )
    .unwrap();
    let prefix = b"prefix";

    // Non-minimal padding with arbitrary contents is accepted (RFC 7296 section 3.14).
    let mut block = vec![0xee; 32];
    block[..10].copy_from_slice(b"0123456789");
    block[31] = 21;
    let body = cbc_body_with(&block, &key, &ak, prefix);
    assert_eq!(rx.open(prefix, &body).unwrap(), b"0123456789");

    // A pad length reaching before the start is refused, even with a valid ICV.
    let mut block = vec![0; 16];
    block[15] = 16;
    let body = cbc_body_with(&block, &key, &ak, prefix);
    assert!(matches!(
        rx.open(prefix, &body),
        Err(CryptoError::MalformedPayload(_))
    ));
    block[15] = 15; // exactly everything: empty inner payloads
    let body = cbc_body_with(&block, &key, &ak, prefix);
    assert_eq!(rx.open(prefix, &body).unwrap(), b"");

    // GCM: an authenticated plaintext whose pad length is too large.
    let gkey = Secret::from_slice(&[3; 20]);
    let mut grx =
        SkCipher::new(Encryption::AesGcm16(128), None, &gkey, &Secret::default()).unwrap();
    let iv = [0u8; 8];
    let nonce = grx.nonce(&iv);
    let mut body = iv.to_vec();
    let mut enc = ctx(Encryption::AesGcm16(128), &[3; 16], true);
    gcm_begin(&mut enc, &nonce, &[prefix]).unwrap();
    let tag = gcm_finish(&mut enc, &[b"ab\x02"], &mut body).unwrap();
    body.extend_from_slice(&tag);
    assert_eq!(grx.open(prefix, &body).unwrap(), b"");
    let mut body = iv.to_vec();
    gcm_begin(&mut enc, &nonce, &[prefix]).unwrap();
    let tag = gcm_finish(&mut enc, &[b"ab\x03"], &mut body).unwrap();
    body.extend_from_slice(&tag);
    assert!(matches!(
        grx.open(prefix, &body),
        Err(CryptoError::MalformedPayload(_))
    ));
}

#[test]
fn short_and_misaligned_bodies() {
    for (encr, integ) in SUITES {
        let (_, mut rx) = pair(encr, integ);
        for len in 0..rx.min_body_len() {
            assert!(matches!(
                rx.open(b"hdr", &vec![0; len]),
                Err(CryptoError::MalformedPayload(_))
            ));
        }
    }
    let (mut tx, mut rx) = pair(Encryption::AesCbc(256), Some(Integrity::HmacSha256_128));
    let huge = vec![0; MAX_MESSAGE + 1];
    assert!(matches!(
        rx.open(b"hdr", &huge),
        Err(CryptoError::MalformedPayload(_))
    ));
    assert!(tx.seal(b"hdr", &huge).is_err());
    let misaligned = vec![0; 16 + 17 + 16];
    assert!(matches!(
        rx.open(b"hdr", &misaligned),
        Err(CryptoError::MalformedPayload(_))
    ));
}

#[test]
fn key_lengths_are_checked() {
    let ok = Secret::from_slice(&[0; 16]);
    let ak = Secret::from_slice(&[0; 32]);
    let integ = Some(Integrity::HmacSha256_128);
    assert!(SkCipher::new(Encryption::AesCbc(128), integ, &ok, &ak).is_ok());
    assert!(SkCipher::new(Encryption::AesCbc(256), integ, &ok, &ak).is_err());
    assert!(SkCipher::new(Encryption::AesCbc(128), integ, &ok, &ok).is_err());
    // GCM keys carry the salt: 16 octets is too short for AES-128-GCM.
    assert!(SkCipher::new(Encryption::AesGcm16(128), None, &ok, &Secret::default()).is_err());
    let gk = Secret::from_slice(&[0; 20]);
    assert!(SkCipher::new(Encryption::AesGcm16(128), None, &gk, &Secret::default()).is_ok());
    assert!(SkCipher::new(Encryption::AesGcm16(128), None, &gk, &ak).is_err());
    assert!(SkCipher::new(Encryption::AesGcm16(128), integ, &gk, &ak).is_err());
    // A key size AES does not have is refused, not mapped to another one.
    let odd = Secret::from_slice(&[0; 12]);
    assert!(SkCipher::new(Encryption::AesCbc(96), integ, &odd, &ak).is_err());
}

#[test]
fn debug_shows_no_keys() {
    let (c, _) = pair(Encryption::AesCbc(128), Some(Integrity::HmacSha256_128));
    assert_eq!(
        format!("{c:?}"),
        "SkCipher { encr: AesCbc(128), integ: Some(HmacSha256_128), .. }"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Random bytes never open (and never panic), whatever their length.
    #[test]
    fn open_rejects_garbage(
        suite in 0..SUITES.len(),
        prefix in proptest::collection::vec(any::<u8>(), 0..64),
        body in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let (encr, integ) = SUITES[suite];
        let (_, mut rx) = pair(encr, integ);
        prop_assert!(rx.open(&prefix, &body).is_err());
    }

    /// Garbage shaped like a valid body (right alignment, plausible length) is refused too.
    #[test]
    fn open_rejects_well_formed_garbage(
        suite in 0..SUITES.len(),
        blocks in 1usize..8,
        fill in any::<u8>(),
        seed in proptest::collection::vec(any::<u8>(), 1..32),
    ) {
        let (encr, integ) = SUITES[suite];
        let (_, mut rx) = pair(encr, integ);
        let len = rx.sealed_len(blocks * 16 - 1);
        let body: Vec<u8> = (0..len).map(|i| seed[i % seed.len()] ^ fill).collect();
        prop_assert!(rx.open(&prefix(len), &body).is_err());
    }

    #[test]
    fn round_trip_random(
        suite in 0..SUITES.len(),
        plain in proptest::collection::vec(any::<u8>(), 0..600),
        extra in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        let (encr, integ) = SUITES[suite];
        let (mut tx, mut rx) = pair(encr, integ);
        // Unencrypted payloads before the SK payload are part of the prefix, too.
        let prefix = [&prefix(tx.sealed_len(plain.len()))[..], &extra[..]].concat();
        let body = tx.seal(&prefix, &plain).unwrap();
        prop_assert_eq!(rx.open(&prefix, &body).unwrap(), plain);
    }
}
