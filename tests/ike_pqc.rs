//! Post-quantum key exchange engine to engine: ML-KEM (FIPS 203) as the IKE_SA_INIT key
//! exchange and as RFC 9370 additional key exchanges over IKE_INTERMEDIATE (RFC 9242),
//! fragmented on a 1280-octet path and retransmitted when lost; optional (`ke1_none`) and
//! mandatory additional exchanges against a peer without them; and rekeys, which never
//! carry additional exchanges (IKE_FOLLOWUP_KE is not implemented) and so refuse clearly
//! where they are mandatory.

mod common;

use std::time::Duration;

use common::peers::{connection, dpd, engine, Pair, TO_A, TO_B};
use routevpn::ike::codec::{ExchangeType, Message, Payload};
use routevpn::ike::engine::{
    ChildSaInstall, DpdAction, EngineConfig, Event, FailureReason, IkeSaState, KernelAction,
    StartAction, Transmit,
};
use routevpn::proposal::{parse_esp, parse_ike, DhGroup};

fn side(a: bool, ike: &str, esp: &str, config: EngineConfig) -> routevpn::ike::engine::Engine {
    let mut c = connection(
        a,
        dpd(0, 150, DpdAction::Clear),
        StartAction::None,
        StartAction::None,
    );
    c.config.proposals = vec![parse_ike(ike, false).unwrap()];
    c.config.children[0].esp_proposals = vec![parse_esp(esp, false).unwrap()];
    engine(config, c)
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
    let mut dropped = [false; 2];
    p.network = Some(Box::new(move |side: usize, datagrams: Vec<Transmit>| {
        (datagrams.into_iter())
            .filter(|t| {
                let h = Message::decode(&t.payload).unwrap().header;
                let drop = h.exchange == ExchangeType::IkeIntermediate && !dropped[side];
                dropped[side] |= drop;
                !drop
            })
            .collect()
    }));
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

#[test]
fn rekeys_of_an_sa_with_optional_additional_exchanges_run_without_them() {
    let ike = "aes256gcm16-prfsha256-x25519-ke1_mlkem768-ke1_none";
    let esp = "aes128gcm16-x25519-ke1_mlkem768-ke1_none";
    let mut p = pair(ike, ike, esp, EngineConfig::default());
    p.engines[0].initiate(p.now, TO_B).unwrap();
    p.settle();
    assert_established(&p);
    assert_eq!(count(&p, 0, ExchangeType::IkeIntermediate), 1);
    p.engines[1].rekey_children(p.now, TO_A).unwrap();
    p.settle();
    assert_eq!(installs(&p, 0).len(), 2, "child rekeyed");
    let rekeyed = installs(&p, 0)[1];
    assert_eq!(rekeyed.algorithms.dh, Some(DhGroup::Curve25519));
    assert_eq!(rekeyed.algorithms.additional, [None; 7]);
    assert_child_keys_agree(&p);
    p.engines[0].rekey_ike(p.now, TO_B).unwrap();
    p.settle();
    for side in 0..2 {
        let rekeyed = (p.records[side].events.iter())
            .filter(|(_, e)| matches!(e, Event::IkeRekeyed { .. }))
            .count();
        assert_eq!(rekeyed, 1, "IKE SA rekeyed on side {side}");
    }
    p.engines[0].rekey_children(p.now, TO_B).unwrap();
    p.settle();
    assert_eq!(installs(&p, 0).len(), 3, "child rekey under the new IKE SA");
    assert_child_keys_agree(&p);
}

#[test]
fn rekeys_that_need_additional_exchanges_fail_clearly_and_keep_the_sa() {
    let ike = "aes256gcm16-prfsha256-x25519-ke1_mlkem768";
    let esp = "aes128gcm16-x25519-ke1_mlkem768";
    let mut p = pair(ike, ike, esp, EngineConfig::default());
    p.engines[0].initiate(p.now, TO_B).unwrap();
    p.settle();
    assert_established(&p);
    p.engines[0].rekey_ike(p.now, TO_B).unwrap();
    p.engines[0].rekey_children(p.now, TO_B).unwrap();
    p.settle();
    let reasons: Vec<&str> = (p.records[0].events.iter())
        .filter_map(|(_, e)| match e {
            Event::IkeRekeyFailed { reason, .. } | Event::RekeyFailed { reason, .. } => {
                Some(reason.as_str())
            }
            _ => None,
        })
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons.iter().all(|r| r.contains("IKE_FOLLOWUP_KE")),
        "{reasons:?}"
    );
    // Nothing went on the wire: no weaker rekey was offered.
    assert_eq!(count(&p, 0, ExchangeType::CreateChildSa), 0);
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

/// The responder's side of the same refusal: a peer's rekey without the additional
/// exchange our proposals make mandatory is answered NO_PROPOSAL_CHOSEN, not accepted
/// weaker, and the SA stays.
#[test]
fn a_rekey_without_a_mandatory_additional_exchange_is_refused_by_the_responder() {
    let optional = "aes256gcm16-prfsha256-x25519-ke1_mlkem768-ke1_none";
    let mandatory = "aes256gcm16-prfsha256-x25519-ke1_mlkem768";
    let a = side(
        true,
        optional,
        "aes128gcm16-x25519-ke1_mlkem768-ke1_none",
        EngineConfig::default(),
    );
    let b = side(
        false,
        mandatory,
        "aes128gcm16-x25519-ke1_mlkem768",
        EngineConfig::default(),
    );
    let mut p = Pair::new(a, b);
    p.engines[0].initiate(p.now, TO_B).unwrap();
    p.settle();
    assert_established(&p);
    p.engines[0].rekey_children(p.now, TO_B).unwrap();
    p.settle();
    p.engines[0].rekey_ike(p.now, TO_B).unwrap();
    p.settle();
    let refused = (p.records[0].events.iter())
        .filter(|(_, e)| {
            matches!(
                e,
                Event::RekeyFailed { reason, .. } | Event::IkeRekeyFailed { reason, .. }
                    if reason.contains("NoProposalChosen")
            )
        })
        .count();
    assert_eq!(refused, 2, "{:?}", p.records[0].events);
    // Both requests went out without ADDKE and came back refused.
    assert_eq!(count(&p, 0, ExchangeType::CreateChildSa), 2);
    assert_established(&p);
    assert_eq!(installs(&p, 0).len(), 1);
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
