//! Post-quantum key exchange engine to engine: ML-KEM (FIPS 203) as the IKE_SA_INIT key
//! exchange and as RFC 9370 additional key exchanges over IKE_INTERMEDIATE (RFC 9242),
//! fragmented on a 1280-octet path and retransmitted when lost; optional (`ke1_none`) and
//! mandatory additional exchanges against a peer without them; and CHILD SA and IKE SA
//! rekeys with additional exchanges in IKE_FOLLOWUP_KE (RFC 9370 section 2.2.4), which
//! never run weaker on an IKE SA whose peer does not know RFC 9370.

mod common;

use std::time::Duration;

use common::peers::{engine, with_proposals, Pair, TO_A, TO_B};
use routevpn::ike::codec::{ExchangeType, Message, Payload, PayloadLookup};
use routevpn::ike::engine::{
    ChildSaInstall, EngineConfig, Event, FailureReason, IkeSaState, KernelAction, Transmit,
};
use routevpn::proposal::DhGroup;

fn side(a: bool, ike: &str, esp: &str, config: EngineConfig) -> routevpn::ike::engine::Engine {
    engine(config, with_proposals(a, ike, esp))
}

fn pair(ike_a: &str, ike_b: &str, esp: &str, config: EngineConfig) -> Pair {
    Pair::new(
        side(true, ike_a, esp, config.clone()),
        side(false, ike_b, esp, config),
    )
}

/// Side a initiates; everything is delivered at once.
fn established(ike: &str) -> Pair {
    let mut p = pair(ike, ike, "aes128gcm16", EngineConfig::default());
    p.engines[0].initiate(p.now, TO_B).unwrap();
    p.settle();
    assert_established(&p);
    p
}

fn assert_established(p: &Pair) {
    for side in 0..2 {
        let status = p.engines[side].status();
        assert_eq!(status.len(), 1, "side {side}");
        assert_eq!(status[0].state, IkeSaState::Established, "side {side}");
    }
    assert_eq!((p.children(0), p.children(1)), (1, 1));
}

/// The header of each datagram `side` sent (fragments included).
fn sent(p: &Pair, side: usize) -> Vec<(ExchangeType, bool, usize)> {
    (p.records[side].sent.iter())
        .map(|(_, bytes)| {
            let h = Message::decode(bytes).unwrap().header;
            (h.exchange, h.flags.response, bytes.len())
        })
        .collect()
}

/// How many times `side` sent a request (or a response) of `exchange`: each message
/// counted once per transmission, however many fragments it took.
fn sends(p: &Pair, side: usize, exchange: ExchangeType, response: bool) -> usize {
    (p.records[side].sent.iter())
        .map(|(_, bytes)| Message::decode(bytes).unwrap())
        .filter(|m| m.header.exchange == exchange && m.header.flags.response == response)
        .filter(|m| {
            m.encrypted_fragment()
                .is_none_or(|f| f.fragment_number == 1)
        })
        .count()
}

fn count(p: &Pair, side: usize, exchange: ExchangeType) -> usize {
    (sent(p, side).iter())
        .filter(|(e, _, _)| *e == exchange)
        .count()
}

fn installs(p: &Pair, side: usize) -> Vec<&ChildSaInstall> {
    (p.records[side].actions.iter())
        .filter_map(|(_, k)| match k {
            KernelAction::InstallChildSa(i) => Some(&**i),
            _ => None,
        })
        .collect()
}

/// The newest Child SA of both sides has the same keys each way.
fn assert_child_keys_agree(p: &Pair) {
    let (a, b) = (installs(p, 0), installs(p, 1));
    let (a, b) = (a.last().unwrap(), b.last().unwrap());
    assert_eq!(
        a.outbound.encryption_key.expose(),
        b.inbound.encryption_key.expose()
    );
    assert_eq!(
        a.inbound.encryption_key.expose(),
        b.outbound.encryption_key.expose()
    );
}

/// The KE payload of side's first IKE_SA_INIT datagram: (group, data length).
fn init_ke(p: &Pair, side: usize) -> (u16, usize) {
    let (_, bytes) = &p.records[side].sent[0];
    let message = Message::decode(bytes).unwrap();
    (message.payloads.iter())
        .find_map(|payload| match payload {
            Payload::KeyExchange(ke) => Some((ke.group, ke.data.len())),
            _ => None,
        })
        .unwrap()
}

/// The network loses the first datagram of `exchange` each side sends.
fn lose_first(p: &mut Pair, exchange: ExchangeType) {
    let mut dropped = [false; 2];
    p.network = Some(Box::new(move |side: usize, datagrams: Vec<Transmit>| {
        (datagrams.into_iter())
            .filter(|t| {
                let h = Message::decode(&t.payload).unwrap().header;
                let drop = h.exchange == exchange && !dropped[side];
                dropped[side] |= drop;
                !drop
            })
            .collect()
    }));
}

fn failed_no_proposal(p: &Pair, side: usize) -> bool {
    (p.records[side].events.iter()).any(|(_, e)| {
        matches!(
            e,
            Event::Failed {
                reason: FailureReason::NoProposalChosen { .. },
                ..
            }
        )
    })
}

#[test]
fn x25519_with_ke1_mlkem768_runs_one_ike_intermediate() {
    let p = established("aes256gcm16-prfsha256-x25519-ke1_mlkem768");
    assert_eq!(init_ke(&p, 0), (31, 32), "x25519 in IKE_SA_INIT");
    assert_eq!(count(&p, 0, ExchangeType::IkeIntermediate), 1);
    assert_eq!(count(&p, 1, ExchangeType::IkeIntermediate), 1);
    // IKE_AUTH comes after it, with the next message ID.
    let a = sent(&p, 0);
    let order: Vec<ExchangeType> = a.iter().map(|(e, _, _)| *e).collect();
    assert_eq!(
        order,
        [
            ExchangeType::IkeSaInit,
            ExchangeType::IkeIntermediate,
            ExchangeType::IkeAuth
        ]
    );
    // The initiator's encapsulation key and the responder's ciphertext travel encrypted:
    // 1184 and 1088 octets plus headers.
    assert!(a[1].2 > 1184, "{a:?}");
    let b = sent(&p, 1);
    assert!(b[1].2 > 1088 && b[1].2 < 1184, "{b:?}");
    assert_child_keys_agree(&p);
}

#[test]
fn pure_mlkem768_in_ike_sa_init() {
    let p = established("aes256gcm16-prfsha384-mlkem768");
    assert_eq!(init_ke(&p, 0), (36, 1184), "encapsulation key");
    assert_eq!(init_ke(&p, 1), (36, 1088), "ciphertext");
    assert_eq!(count(&p, 0, ExchangeType::IkeIntermediate), 0);
    assert_child_keys_agree(&p);
}

#[test]
fn two_additional_exchanges_fragmented_on_a_1280_octet_path() {
    let config = EngineConfig {
        fragment_size: 1280,
        ..EngineConfig::default()
    };
    let ike = "aes256gcm16-prfsha384-ecp384-ke1_mlkem1024-ke2_mlkem512";
    let mut p = pair(ike, ike, "aes256gcm16", config);
    p.engines[0].initiate(p.now, TO_B).unwrap();
    p.settle();
    assert_established(&p);
    assert_child_keys_agree(&p);
    for side in 0..2 {
        let intermediate: Vec<usize> = (sent(&p, side).into_iter())
            .filter(|(e, _, _)| *e == ExchangeType::IkeIntermediate)
            .map(|(_, _, len)| len)
            .collect();
        // ML-KEM-1024's 1568-octet key and ciphertext each need two fragments; ML-KEM-512's
        // 800 / 768 octets fit one datagram.
        assert_eq!(intermediate.len(), 3, "side {side}: {intermediate:?}");
        assert!(
            intermediate.iter().all(|len| *len <= 1280 - 20 - 8),
            "side {side}: {intermediate:?}"
        );
    }
}

#[test]
fn a_lost_ike_intermediate_is_retransmitted() {
    let ike = "aes256gcm16-prfsha256-x25519-ke1_mlkem768";
    let mut p = pair(ike, ike, "aes128gcm16", EngineConfig::default());
    // The first IKE_INTERMEDIATE request and the first response are lost.
    lose_first(&mut p, ExchangeType::IkeIntermediate);
    p.engines[0].initiate(p.now, TO_B).unwrap();
    p.run_until(Duration::from_secs(30));
    assert_established(&p);
    assert_child_keys_agree(&p);
    // Request sent three times (lost, answered but the answer lost, answered); the
    // responder processed it once and repeated its answer.
    assert_eq!(count(&p, 0, ExchangeType::IkeIntermediate), 3);
    assert_eq!(count(&p, 1, ExchangeType::IkeIntermediate), 2);
}

#[test]
fn optional_additional_exchange_is_skipped_with_a_peer_without_it() {
    for (a, b) in [
        (
            "aes256gcm16-prfsha256-x25519-ke1_mlkem768-ke1_none",
            "aes256gcm16-prfsha256-x25519",
        ),
        (
            "aes256gcm16-prfsha256-x25519",
            "aes256gcm16-prfsha256-x25519-ke1_mlkem768-ke1_none",
        ),
    ] {
        let mut p = pair(a, b, "aes128gcm16", EngineConfig::default());
        p.engines[0].initiate(p.now, TO_B).unwrap();
        p.settle();
        assert_established(&p);
        assert_eq!(count(&p, 0, ExchangeType::IkeIntermediate), 0, "{a} / {b}");
    }
}

#[test]
fn mandatory_additional_exchange_is_refused_by_or_to_a_peer_without_it() {
    let (mandatory, plain) = (
        "aes256gcm16-prfsha256-x25519-ke1_mlkem768",
        "aes256gcm16-prfsha256-x25519",
    );
    for (a, b) in [(mandatory, plain), (plain, mandatory)] {
        let mut p = pair(a, b, "aes128gcm16", EngineConfig::default());
        p.engines[0].initiate(p.now, TO_B).unwrap();
        p.settle();
        assert_eq!((p.children(0), p.children(1)), (0, 0), "{a} / {b}");
        assert!(
            failed_no_proposal(&p, 0),
            "initiator reports NO_PROPOSAL_CHOSEN"
        );
        assert!(failed_no_proposal(&p, 1), "responder logs what it refused");
        assert_eq!(count(&p, 0, ExchangeType::IkeIntermediate), 0);
    }
    // What the responder's log shows names the additional exchange it missed.
    let mut p = pair(plain, mandatory, "aes128gcm16", EngineConfig::default());
    p.engines[0].initiate(p.now, TO_B).unwrap();
    p.settle();
    let ours = (p.records[1].events.iter()).find_map(|(_, e)| match e {
        Event::Failed {
            reason: FailureReason::NoProposalChosen { ours, .. },
            ..
        } => Some(ours.join(" ")),
        _ => None,
    });
    assert!(ours.unwrap().contains("ADDKE1:ML_KEM_768"));
}

/// The events of `side` that say a rekey failed, with their reasons.
fn rekey_failures(p: &Pair, side: usize) -> Vec<String> {
    (p.records[side].events.iter())
        .filter_map(|(_, e)| match e {
            Event::IkeRekeyFailed { reason, .. } | Event::RekeyFailed { reason, .. } => {
                Some(reason.clone())
            }
            _ => None,
        })
        .collect()
}

#[test]
fn child_rekeys_run_their_additional_exchanges_in_ike_followup_ke() {
    let ike = "aes256gcm16-prfsha256-x25519-ke1_mlkem768-ke1_none";
    let esp = "aes128gcm16-x25519-ke1_mlkem768-ke2_mlkem512";
    let mut p = pair(ike, ike, esp, EngineConfig::default());
    p.engines[0].initiate(p.now, TO_B).unwrap();
    p.settle();
    assert_established(&p);
    // From b, then from a: each rekey is CREATE_CHILD_SA and two IKE_FOLLOWUP_KE.
    p.engines[1].rekey_children(p.now, TO_A).unwrap();
    p.settle();
    p.engines[0].rekey_children(p.now, TO_B).unwrap();
    p.settle();
    assert_eq!(installs(&p, 0).len(), 3, "{:?}", rekey_failures(&p, 0));
    assert_eq!(installs(&p, 1).len(), 3, "{:?}", rekey_failures(&p, 1));
    for side in 0..2 {
        let rekeyed = installs(&p, side)[2];
        assert_eq!(rekeyed.algorithms.dh, Some(DhGroup::Curve25519));
        assert_eq!(
            &rekeyed.algorithms.additional[..2],
            [Some(DhGroup::MlKem768), Some(DhGroup::MlKem512)]
        );
        // Two requests for its own rekey, two answers to the peer's.
        let followups = |response| sends(&p, side, ExchangeType::IkeFollowupKe, response);
        assert_eq!((followups(false), followups(true)), (2, 2), "side {side}");
    }
    assert_child_keys_agree(&p);
    assert_eq!((p.children(0), p.children(1)), (1, 1));
}

#[test]
fn a_lost_ike_followup_ke_is_retransmitted() {
    let ike = "aes256gcm16-prfsha256-x25519-ke1_mlkem768";
    let esp = "aes128gcm16-x25519-ke1_mlkem768";
    let mut p = pair(ike, ike, esp, EngineConfig::default());
    p.engines[0].initiate(p.now, TO_B).unwrap();
    p.settle();
    lose_first(&mut p, ExchangeType::IkeFollowupKe);
    p.engines[0].rekey_children(p.now, TO_B).unwrap();
    p.run_until(Duration::from_secs(30));
    assert_eq!(installs(&p, 0).len(), 2, "{:?}", rekey_failures(&p, 0));
    assert_child_keys_agree(&p);
    // Lost, answered but the answer lost, answered again from the responder's copy.
    assert_eq!(sends(&p, 0, ExchangeType::IkeFollowupKe, false), 3);
    assert_eq!(sends(&p, 1, ExchangeType::IkeFollowupKe, true), 2);
    assert_eq!((p.children(0), p.children(1)), (1, 1));
}

/// The IKE SA's status line on `side` (its algorithms).
fn ike_algorithms(p: &Pair, side: usize) -> String {
    let status = p.engines[side].status();
    let live: Vec<_> = (status.iter())
        .filter(|s| s.state == IkeSaState::Established)
        .collect();
    assert_eq!(live.len(), 1, "side {side}: {status:?}");
    format!("{:?}", live[0])
}

#[test]
fn ike_rekeys_run_their_additional_exchanges_in_ike_followup_ke() {
    let ike = "aes256gcm16-prfsha256-x25519-ke1_mlkem768-ke2_mlkem512";
    let mut p = pair(ike, ike, "aes128gcm16", EngineConfig::default());
    p.engines[0].initiate(p.now, TO_B).unwrap();
    p.settle();
    // From a, then from b (under the new IKE SA, which inherits the peer's RFC 9370).
    p.engines[0].rekey_ike(p.now, TO_B).unwrap();
    p.settle();
    p.run_until(Duration::from_secs(1));
    p.engines[1].rekey_ike(p.now, TO_A).unwrap();
    p.settle();
    p.run_until(Duration::from_secs(2));
    for side in 0..2 {
        let rekeyed = (p.records[side].events.iter())
            .filter(|(_, e)| matches!(e, Event::IkeRekeyed { .. }))
            .count();
        assert_eq!(rekeyed, 2, "side {side}: {:?}", rekey_failures(&p, side));
        let followups = |response| sends(&p, side, ExchangeType::IkeFollowupKe, response);
        assert_eq!((followups(false), followups(true)), (2, 2), "side {side}");
        assert!(ike_algorithms(&p, side).contains("ML_KEM_512"));
    }
    // The newest IKE SA works: a CHILD SA rekey under it.
    p.engines[0].rekey_children(p.now, TO_B).unwrap();
    p.settle();
    assert_eq!(installs(&p, 0).len(), 2);
    assert_child_keys_agree(&p);
    assert_eq!((p.children(0), p.children(1)), (1, 1));
}

/// Both ends rekey the IKE SA at once with additional exchanges: each refuses the other's
/// for now (crossing rekeys are settled only without them), and the retries, spread at
/// random, end with one new IKE SA.
#[test]
fn crossing_ike_rekeys_with_additional_exchanges_end_with_one_ike_sa() {
    let ike = "aes256gcm16-prfsha256-x25519-ke1_mlkem768";
    let mut p = pair(ike, ike, "aes128gcm16", EngineConfig::default());
    p.engines[0].initiate(p.now, TO_B).unwrap();
    p.settle();
    p.engines[0].rekey_ike(p.now, TO_B).unwrap();
    p.engines[1].rekey_ike(p.now, TO_A).unwrap();
    p.run_until(Duration::from_secs(120));
    for side in 0..2 {
        let rekeyed = (p.records[side].events.iter())
            .filter(|(_, e)| matches!(e, Event::IkeRekeyed { .. }))
            .count();
        assert!(rekeyed >= 1, "side {side}: {:?}", rekey_failures(&p, side));
        ike_algorithms(&p, side);
    }
    assert_eq!((p.children(0), p.children(1)), (1, 1));
    p.engines[0].rekey_children(p.now, TO_B).unwrap();
    p.settle();
    assert_child_keys_agree(&p);
}

/// Without RFC 9370 on the IKE SA (the initiator names no additional exchange anywhere, so
/// announces no IKE_INTERMEDIATE), CREATE_CHILD_SA carries none: a CHILD SA whose proposal
/// requires one is not rekeyed by its side, with the reason, and refuses the peer's rekey.
#[test]
fn without_rfc_9370_on_the_ike_sa_child_rekeys_never_run_weaker() {
    let plain = "aes256gcm16-prfsha256-x25519";
    let mut p = Pair::new(
        side(true, plain, "aes128gcm16-x25519", EngineConfig::default()),
        side(
            false,
            plain,
            "aes128gcm16-x25519-ke1_mlkem768",
            EngineConfig::default(),
        ),
    );
    p.engines[0].initiate(p.now, TO_B).unwrap();
    p.settle();
    assert_established(&p);
    // a offers none; b's proposal requires one and refuses.
    p.engines[0].rekey_children(p.now, TO_B).unwrap();
    p.settle();
    let reasons = rekey_failures(&p, 0);
    assert!(
        reasons.len() == 1 && reasons[0].contains("NoProposalChosen"),
        "{reasons:?}"
    );
    // b cannot offer what its proposal requires, and says so without sending anything.
    p.engines[1].rekey_children(p.now, TO_A).unwrap();
    p.settle();
    let reasons = rekey_failures(&p, 1);
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("did not announce RFC 9370")),
        "{reasons:?}"
    );
    assert_eq!(sends(&p, 1, ExchangeType::CreateChildSa, false), 0);
    assert_eq!(count(&p, 0, ExchangeType::IkeFollowupKe), 0);
    assert_established(&p);
    assert_eq!(installs(&p, 0).len(), 1);
}

/// The responder's fragmented answer is lost: the initiator's fragments, sent again under
/// the keys the responder has already left, still get the answer again.
#[test]
fn a_lost_fragmented_answer_is_repeated_after_the_responder_rekeyed() {
    let config = EngineConfig {
        fragment_size: 1280,
        ..EngineConfig::default()
    };
    let ike = "aes256gcm16-prfsha384-ecp384-ke1_mlkem1024";
    let mut p = pair(ike, ike, "aes256gcm16", config);
    let mut dropped = false;
    p.network = Some(Box::new(move |side: usize, datagrams: Vec<Transmit>| {
        let answer = |t: &Transmit| {
            Message::decode(&t.payload).unwrap().header.exchange == ExchangeType::IkeIntermediate
        };
        if side == 1 && !dropped && datagrams.iter().any(answer) {
            dropped = true;
            return datagrams.into_iter().filter(|t| !answer(t)).collect();
        }
        datagrams
    }));
    p.engines[0].initiate(p.now, TO_B).unwrap();
    p.run_until(Duration::from_secs(30));
    assert_established(&p);
    assert_child_keys_agree(&p);
    // Two fragments each way, the answer twice.
    assert_eq!(count(&p, 0, ExchangeType::IkeIntermediate), 4);
    assert_eq!(count(&p, 1, ExchangeType::IkeIntermediate), 4);
}

/// A responder that does not know ADDKE transforms ignores them (RFC 7296 3.3.6 leaves it
/// to take what it knows): the network here strips them from the request, and the
/// initiator, whose proposal makes the exchange mandatory, refuses the answer and says why.
#[test]
fn a_responder_ignoring_a_mandatory_additional_exchange_is_refused_clearly() {
    use routevpn::ike::codec::TransformType;
    let mandatory = "aes256gcm16-prfsha256-x25519-ke1_mlkem768";
    let mut p = pair(
        mandatory,
        "aes256gcm16-prfsha256-x25519",
        "aes128gcm16",
        EngineConfig::default(),
    );
    p.network = Some(Box::new(|side: usize, datagrams: Vec<Transmit>| {
        (datagrams.into_iter())
            .map(|mut t| {
                let message = Message::decode(&t.payload).unwrap();
                if side == 0 && message.header.exchange == ExchangeType::IkeSaInit {
                    let payloads = (message.payloads.into_iter())
                        .map(|payload| match payload {
                            Payload::SecurityAssociation(mut sa) => {
                                for proposal in &mut sa.proposals {
                                    proposal.transforms.retain(|t| {
                                        !matches!(
                                            t.transform_type,
                                            TransformType::AdditionalKeyExchange(_)
                                        )
                                    });
                                }
                                Payload::SecurityAssociation(sa)
                            }
                            other => other,
                        })
                        .collect();
                    t.payload = Message::new(message.header, payloads)
                        .unwrap()
                        .encode()
                        .unwrap();
                }
                t
            })
            .collect()
    }));
    p.engines[0].initiate(p.now, TO_B).unwrap();
    p.settle();
    let why = (p.records[0].events.iter()).find_map(|(_, e)| match e {
        Event::Failed {
            reason: FailureReason::Protocol(why),
            ..
        } => Some(why.clone()),
        _ => None,
    });
    assert!(
        why.as_deref()
            .is_some_and(|w| w.contains("lacks the additional key exchanges")),
        "{why:?}"
    );
    assert_eq!(p.children(0), 0);
    assert_eq!(
        count(&p, 0, ExchangeType::IkeAuth),
        0,
        "nothing authenticated"
    );
}

/// Both ends rekey the same Child SA at once, each with an additional exchange: one new
/// pair survives (RFC 7296 2.8.1, the lowest nonce decides), with the same keys both sides.
#[test]
fn crossing_child_rekeys_with_followups_leave_one_pair() {
    let ike = "aes256gcm16-prfsha256-x25519-ke1_mlkem768";
    let esp = "aes128gcm16-x25519-ke1_mlkem768";
    let mut p = pair(ike, ike, esp, EngineConfig::default());
    p.engines[0].initiate(p.now, TO_B).unwrap();
    p.settle();
    p.engines[0].rekey_children(p.now, TO_B).unwrap();
    p.engines[1].rekey_children(p.now, TO_A).unwrap();
    p.run_until(Duration::from_secs(30));
    assert_eq!((p.children(0), p.children(1)), (1, 1));
    let live = |side: usize| {
        let status = p.engines[side].status();
        let child = &status[0].children[0];
        (child.spi_in, child.spi_out)
    };
    let (a, b) = (live(0), live(1));
    assert_eq!((a.0, a.1), (b.1, b.0), "the same pair on both sides");
    let install = |side: usize, spi_in: u32| {
        (installs(&p, side).into_iter())
            .find(|i| i.inbound.spi == spi_in)
            .unwrap()
    };
    let (ia, ib) = (install(0, a.0), install(1, b.0));
    assert_eq!(
        ia.outbound.encryption_key.expose(),
        ib.inbound.encryption_key.expose()
    );
    assert_eq!(
        ia.inbound.encryption_key.expose(),
        ib.outbound.encryption_key.expose()
    );
    assert_eq!(ia.algorithms.additional[0], Some(DhGroup::MlKem768));
}

/// ESP proposals alone naming an additional exchange announce RFC 9370 in IKE_SA_INIT, so
/// their CHILD SA rekeys follow up although the IKE SA itself has none.
#[test]
fn esp_additional_exchanges_alone_make_child_rekeys_follow_up() {
    let plain = "aes256gcm16-prfsha256-x25519";
    let esp = "aes128gcm16-x25519-ke1_mlkem1024";
    let mut p = pair(plain, plain, esp, EngineConfig::default());
    p.engines[0].initiate(p.now, TO_B).unwrap();
    p.settle();
    assert_established(&p);
    assert_eq!(count(&p, 0, ExchangeType::IkeIntermediate), 0);
    p.engines[1].rekey_children(p.now, TO_A).unwrap();
    p.settle();
    assert_eq!(installs(&p, 0).len(), 2, "{:?}", rekey_failures(&p, 1));
    assert_eq!(sends(&p, 1, ExchangeType::IkeFollowupKe, false), 1);
    assert_child_keys_agree(&p);
}
