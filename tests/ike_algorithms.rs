//! Every algorithm partners' sheets name, engine to engine: an IKE SA and a Child SA with
//! it, then the XFRM state the daemon would install, checked against the key layout the
//! Linux kernel expects (`src/apply/netlink/xfrm/algorithms.rs`): algorithm name, key length
//! with the salt / nonce at its end, ICV length. A Child SA rekey with PFS and an IKE SA
//! rekey then run through the new key exchange groups.

mod common;

use common::peers::{engine, with_proposals as side, Pair, TO_A, TO_B};
use netlink_packet_xfrm::XfrmAttrs;
use routevpn::apply::netlink::xfrm::state::add_message;
use routevpn::daemon::sas::states;
use routevpn::ike::engine::{ChildSaInstall, EngineConfig, Event, KernelAction};
use routevpn::proposal::{parse_esp, parse_ike};

/// One cell: IKE proposal, ESP proposal, then what the kernel must be given for the ESP
/// cipher (name, key bits with salt, ICV bits for AEAD) and integrity (name, key bits,
/// truncation bits).
struct Cell {
    ike: &'static str,
    esp: &'static str,
    cipher: (&'static str, u32, Option<u32>),
    integrity: Option<(&'static str, u32, u32)>,
}

const CELLS: &[Cell] = &[
    Cell {
        ike: "chacha20poly1305-prfsha256-x25519",
        esp: "chacha20poly1305",
        cipher: ("rfc7539esp(chacha20,poly1305)", 256 + 32, Some(128)),
        integrity: None,
    },
    Cell {
        ike: "aes256ctr-sha256-ecp384",
        esp: "aes256ctr-sha256",
        cipher: ("rfc3686(ctr(aes))", 256 + 32, None),
        integrity: Some(("hmac(sha256)", 256, 128)),
    },
    Cell {
        ike: "aes128ctr-aesxcbc-modp2048",
        esp: "aes128ctr-aesxcbc",
        cipher: ("rfc3686(ctr(aes))", 128 + 32, None),
        integrity: Some(("xcbc(aes)", 128, 96)),
    },
    Cell {
        ike: "aes128-aescmac-ecp256",
        esp: "aes128-aescmac",
        cipher: ("cbc(aes)", 128, None),
        integrity: Some(("cmac(aes)", 128, 96)),
    },
    Cell {
        ike: "aes256ccm16-prfaescmac-ecp521",
        esp: "aes256ccm16",
        cipher: ("rfc4309(ccm(aes))", 256 + 24, Some(128)),
        integrity: None,
    },
    Cell {
        ike: "aes128ccm12-prfaesxcbc-curve448",
        esp: "aes192ccm12",
        cipher: ("rfc4309(ccm(aes))", 192 + 24, Some(96)),
        integrity: None,
    },
    Cell {
        ike: "aes128ccm8-prfsha256-modp3072",
        esp: "aes128ccm8",
        cipher: ("rfc4309(ccm(aes))", 128 + 24, Some(64)),
        integrity: None,
    },
    Cell {
        ike: "aes256gcm8-prfsha384-modp6144",
        esp: "aes256gcm8",
        cipher: ("rfc4106(gcm(aes))", 256 + 32, Some(64)),
        integrity: None,
    },
    Cell {
        ike: "aes128gcm12-prfsha256-modp8192",
        esp: "aes128gcm12",
        cipher: ("rfc4106(gcm(aes))", 128 + 32, Some(96)),
        integrity: None,
    },
    Cell {
        ike: "aes256-sha256-modp1536",
        esp: "aes256-sha256",
        cipher: ("cbc(aes)", 256, None),
        integrity: Some(("hmac(sha256)", 256, 128)),
    },
];

// allow_legacy (in `with_proposals`): the MODP-1536 cell is a partner sheet's "group 5".

fn established(ike: &str, esp: &str) -> Pair {
    let mut p = Pair::new(
        engine(EngineConfig::default(), side(true, ike, esp)),
        engine(EngineConfig::default(), side(false, ike, esp)),
    );
    p.engines[0].initiate(p.now, TO_B).unwrap();
    p.settle();
    assert_eq!((p.children(0), p.children(1)), (1, 1), "{ike} / {esp}");
    p
}

fn installs(p: &Pair, side: usize) -> Vec<&ChildSaInstall> {
    (p.records[side].actions.iter())
        .filter_map(|(_, k)| match k {
            KernelAction::InstallChildSa(i) => Some(&**i),
            _ => None,
        })
        .collect()
}

/// A cipher as the kernel reads it: name, key bits (salt included), ICV bits for AEAD.
type KernelCipher = (String, u32, Option<u32>);
/// An integrity algorithm as the kernel reads it: name, key bits, truncation bits.
type KernelIntegrity = (String, u32, u32);

/// The cipher and integrity attributes of each XFRM state of a Child SA.
fn kernel_algorithms(install: &ChildSaInstall) -> Vec<(KernelCipher, Option<KernelIntegrity>)> {
    let text = |name: &[u8]| {
        String::from_utf8(name.iter().take_while(|b| **b != 0).copied().collect()).unwrap()
    };
    states(install, 32)
        .iter()
        .map(|sa| {
            let message = add_message(sa);
            let (mut cipher, mut integrity) = (None, None);
            for nla in &message.nlas {
                match nla {
                    XfrmAttrs::EncryptionAlgAead(a) => {
                        assert_eq!(a.alg_key.len() * 8, a.alg_key_len as usize);
                        cipher = Some((text(&a.alg_name), a.alg_key_len, Some(a.alg_icv_len)));
                    }
                    XfrmAttrs::EncryptionAlg(a) => {
                        assert_eq!(a.alg_key.len() * 8, a.alg_key_len as usize);
                        cipher = Some((text(&a.alg_name), a.alg_key_len, None));
                    }
                    XfrmAttrs::AuthenticationAlgTrunc(a) => {
                        assert_eq!(a.alg_key.len() * 8, a.alg_key_len as usize);
                        integrity = Some((text(&a.alg_name), a.alg_key_len, a.alg_trunc_len));
                    }
                    _ => {}
                }
            }
            (cipher.expect("a cipher attribute"), integrity)
        })
        .collect()
}

#[test]
fn every_new_algorithm_establishes_and_installs_the_kernel_layout() {
    for cell in CELLS {
        let p = established(cell.ike, cell.esp);
        let (sa, sb) = (&p.engines[0].status()[0], &p.engines[1].status()[0]);
        let ike = parse_ike(cell.ike, true).unwrap().to_string();
        assert_eq!(sa.ike.as_deref(), Some(ike.as_str()), "{}", cell.ike);
        assert_eq!(sa.ike, sb.ike);

        let (ia, ib) = (installs(&p, 0), installs(&p, 1));
        let ([ia], [ib]) = (ia.as_slice(), ib.as_slice()) else {
            panic!("one install per side: {}", cell.esp);
        };
        let expected = parse_esp(cell.esp, true).unwrap();
        assert_eq!(
            ia.algorithms.encryption, expected.encryption[0],
            "{}",
            cell.esp
        );
        assert_eq!(ia.algorithms.integrity, expected.integrity.first().copied());
        // Same keys per direction on both sides, salt included.
        assert_eq!(
            ia.outbound.encryption_key.expose(),
            ib.inbound.encryption_key.expose()
        );
        assert_eq!(
            ia.inbound.integrity_key.expose(),
            ib.outbound.integrity_key.expose()
        );
        let want_cipher = (cell.cipher.0.to_string(), cell.cipher.1, cell.cipher.2);
        let want_integrity = cell.integrity.map(|(n, k, t)| (n.to_string(), k, t));
        for install in [ia, ib] {
            for (cipher, integrity) in kernel_algorithms(install) {
                assert_eq!(cipher, want_cipher, "{}", cell.esp);
                assert_eq!(integrity, want_integrity, "{}", cell.esp);
            }
        }
    }
}

#[test]
fn rekeys_run_through_the_new_groups() {
    for (ike, esp) in [
        ("aes256gcm16-prfsha384-ecp521", "chacha20poly1305-curve448"),
        ("chacha20poly1305-prfaesxcbc-curve448", "aes128ccm16-ecp521"),
        ("aes128ctr-aescmac-x448", "aes256gcm12-modp6144"),
    ] {
        let mut p = established(ike, esp);
        p.engines[1].rekey_children(p.now, TO_A).unwrap();
        p.settle();
        let (ia, ib) = (installs(&p, 0), installs(&p, 1));
        assert_eq!((ia.len(), ib.len()), (2, 2), "{esp}: child rekeyed");
        let (a, b) = (ia[1], ib[1]);
        let group = parse_esp(esp, true).unwrap().dh[0];
        assert_eq!(a.algorithms.dh, Some(group), "{esp}: PFS group");
        assert_eq!(
            a.outbound.encryption_key.expose(),
            b.inbound.encryption_key.expose()
        );
        assert_ne!(
            ia[0].outbound.encryption_key.expose(),
            a.outbound.encryption_key.expose()
        );

        p.engines[0].rekey_ike(p.now, TO_B).unwrap();
        p.settle();
        for side in 0..2 {
            let rekeyed = (p.records[side].events.iter())
                .filter(|(_, e)| matches!(e, Event::IkeRekeyed { .. }))
                .count();
            assert_eq!(rekeyed, 1, "{ike}: IKE SA rekeyed on side {side}");
        }
        // The new IKE SA works: one more Child SA rekey under it.
        p.engines[0].rekey_children(p.now, TO_B).unwrap();
        p.settle();
        assert_eq!(
            installs(&p, 0).len(),
            3,
            "{ike}: child rekey under the new IKE SA"
        );
        assert_eq!((p.children(0), p.children(1)), (1, 1));
    }
}

/// Peers whose IKE proposals differ only in the new cipher install nothing, and the
/// initiator reports the failure.
#[test]
fn mismatched_new_algorithms_fail_clearly() {
    let mut p = Pair::new(
        engine(
            EngineConfig::default(),
            side(true, "chacha20poly1305-prfsha256-curve448", "aes128ccm8"),
        ),
        engine(
            EngineConfig::default(),
            side(false, "aes256gcm16-prfsha256-curve448", "aes128ccm8"),
        ),
    );
    p.engines[0].initiate(p.now, TO_B).unwrap();
    p.settle();
    assert_eq!((p.children(0), p.children(1)), (0, 0));
    let failed = |side: usize| {
        (p.records[side].events.iter()).any(|(_, e)| matches!(e, Event::Failed { .. }))
    };
    assert!(failed(0), "the initiator reports the refusal");
}
