//! Two IKE engines talking over a simulated network with a simulated clock.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use routevpn::ike::codec::{ExchangeType, Message};
use routevpn::ike::crypto::Secret;
use routevpn::ike::engine::{
    ChildConfig, ChildSaInstall, ChildSaRef, Dpd, DpdAction, Engine, EngineConfig,
    EngineConnection, Event, FailureReason, Identity, IkeConfig, IkeSaState, KernelAction, Mode,
    NatTraversal, StartAction, Transmit,
};
use routevpn::ike::ts::TrafficSelector;
use routevpn::profile::parse_traffic_selector;
use routevpn::proposal::{parse_esp, parse_ike};

const PSK: &[u8] = b"psk-SECRET-do-not-print-0123456789";
const A: &str = "192.0.2.1";
const B: &str = "198.51.100.2";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// One side's configuration; the other side mirrors it.
#[derive(Clone)]
struct Side {
    name: &'static str,
    local: IpAddr,
    remote: IpAddr,
    local_id: Identity,
    remote_id: Identity,
    ike: Vec<&'static str>,
    esp: Vec<&'static str>,
    mode: Mode,
    local_ts: Vec<&'static str>,
    remote_ts: Vec<&'static str>,
    reqid: u32,
    mark: Option<u32>,
    if_id: Option<u32>,
    psk: &'static [u8],
}

fn pair(ike: &[&'static str], esp: &[&'static str]) -> (Side, Side) {
    let a = Side {
        name: "to-b",
        local: ip(A),
        remote: ip(B),
        local_id: Identity::Fqdn("a.example".into()),
        remote_id: Identity::Fqdn("b.example".into()),
        ike: ike.to_vec(),
        esp: esp.to_vec(),
        mode: Mode::Tunnel,
        local_ts: vec!["10.1.0.0/16"],
        remote_ts: vec!["10.2.0.0/16"],
        reqid: 1,
        mark: Some(0x100),
        if_id: None,
        psk: PSK,
    };
    let b = Side {
        name: "to-a",
        local: ip(B),
        remote: ip(A),
        local_id: Identity::Fqdn("b.example".into()),
        remote_id: Identity::Fqdn("a.example".into()),
        local_ts: vec!["10.2.0.0/16"],
        remote_ts: vec!["10.1.0.0/16"],
        reqid: 7,
        mark: Some(0x200),
        ..a.clone()
    };
    (a, b)
}

fn connection(s: &Side) -> EngineConnection {
    let ts = |list: &[&str]| -> Vec<TrafficSelector> {
        list.iter()
            .map(|t| parse_traffic_selector(t).unwrap())
            .collect()
    };
    let child = ChildConfig {
        name: "net".into(),
        reqid: s.reqid,
        mode: s.mode,
        local_ts: ts(&s.local_ts),
        remote_ts: ts(&s.remote_ts),
        esp_proposals: s.esp.iter().map(|p| parse_esp(p, true).unwrap()).collect(),
        mark: s.mark,
        if_id: s.if_id,
        rekey_time: 3600,
        life_time: 3960,
        rand_time: 360,
        rekey_bytes: 0,
        life_bytes: 0,
        rekey_packets: 0,
        life_packets: 0,
        replay_window: 32,
    };
    let config = IkeConfig {
        name: s.name.into(),
        remote: s.remote,
        remote_port: 500,
        local_id: Some(s.local_id.clone()),
        remote_id: s.remote_id.clone(),
        proposals: s.ike.iter().map(|p| parse_ike(p, true).unwrap()).collect(),
        rekey_time: 14400,
        over_time: 1440,
        rand_time: 1440,
        // No liveness checks or automatic restarts: these tests follow single exchanges
        // (tests/ike_dpd.rs covers DPD and restarts).
        dpd: Dpd {
            delay: Duration::ZERO,
            timeout: Duration::from_secs(150),
            action: DpdAction::Clear,
        },
        nat_traversal: NatTraversal::Auto,
        start_action: StartAction::None,
        close_action: StartAction::None,
        children: vec![child],
    };
    EngineConnection::with_psk(config, s.local, Secret::from_slice(s.psk))
}

/// Network conditions; all randomness comes from the seed.
#[derive(Clone, Copy)]
struct Conditions {
    loss: f64,
    duplicate: f64,
    max_delay: Duration,
}

const PERFECT: Conditions = Conditions {
    loss: 0.0,
    duplicate: 0.0,
    max_delay: Duration::from_millis(10),
};

#[derive(Default)]
struct Log {
    events: Vec<Event>,
    installs: Vec<ChildSaInstall>,
    deletes: Vec<ChildSaRef>,
    /// (time since start, datagram) of everything this side sent.
    sent: Vec<(Duration, Vec<u8>)>,
}

struct Sim {
    t0: Instant,
    now: Instant,
    engines: [Engine; 2],
    logs: [Log; 2],
    addrs: [IpAddr; 2],
    rng: StdRng,
    net: Conditions,
    /// Deliveries by (time, sequence number).
    queue: BTreeMap<(Instant, u64), (usize, Transmit)>,
    seq: u64,
    /// Side 1 is unplugged: it receives nothing.
    mute_b: bool,
    /// Side 0 sits behind a NAT with this public address and port.
    nat: Option<SocketAddr>,
}

impl Sim {
    fn new(a: &Side, b: &Side, seed: u64, net: Conditions) -> Sim {
        let mut engines = [
            Engine::new(EngineConfig::default()),
            Engine::new(EngineConfig::default()),
        ];
        engines[0].add_connection(connection(a));
        engines[1].add_connection(connection(b));
        let t0 = Instant::now();
        Sim {
            t0,
            now: t0,
            engines,
            logs: [Log::default(), Log::default()],
            addrs: [a.local, b.local],
            rng: StdRng::seed_from_u64(seed),
            net,
            queue: BTreeMap::new(),
            seq: 0,
            mute_b: false,
            nat: None,
        }
    }

    fn initiate(&mut self) {
        self.engines[0].initiate(self.now, "to-b").unwrap();
    }

    /// Moves what the engines produced into the logs and the network.
    fn collect(&mut self) {
        for side in 0..2 {
            while let Some(t) = self.engines[side].poll_transmit() {
                assert_eq!(t.local.ip(), self.addrs[side]);
                self.logs[side]
                    .sent
                    .push((self.now - self.t0, t.payload.clone()));
                let mut t = t;
                let to = if t.remote.ip() == self.addrs[0]
                    || Some(t.remote.ip()) == self.nat.map(|n| n.ip())
                {
                    0
                } else {
                    1
                };
                if to == 1 && self.mute_b {
                    continue;
                }
                // The NAT maps side 0's port p to public port + (p - 500), and back.
                if let Some(public) = self.nat {
                    if to == 1 {
                        t.local =
                            SocketAddr::new(public.ip(), public.port() + (t.local.port() - 500));
                    } else {
                        t.remote =
                            SocketAddr::new(self.addrs[0], t.remote.port() - public.port() + 500);
                    }
                }
                let copies = if self.rng.gen_bool(self.net.duplicate) {
                    2
                } else {
                    1
                };
                for _ in 0..copies {
                    if self.rng.gen_bool(self.net.loss) {
                        continue;
                    }
                    let delay = self.net.max_delay.mul_f64(self.rng.gen::<f64>());
                    self.seq += 1;
                    self.queue
                        .insert((self.now + delay, self.seq), (to, t.clone()));
                }
            }
            while let Some(action) = self.engines[side].poll_action() {
                match action {
                    KernelAction::InstallChildSa(i) => self.logs[side].installs.push(*i),
                    KernelAction::ActivateOutbound(_) => {}
                    KernelAction::DeleteChildSa(r) => self.logs[side].deletes.push(r),
                }
            }
            while let Some(e) = self.engines[side].poll_event() {
                self.logs[side].events.push(e);
            }
        }
    }

    /// Runs until nothing is left to do or `limit` has passed since the start.
    fn run(&mut self, limit: Duration) {
        loop {
            self.collect();
            let next = [
                self.queue.keys().next().map(|k| k.0),
                self.engines[0].next_timeout(),
                self.engines[1].next_timeout(),
            ]
            .into_iter()
            .flatten()
            .min();
            let Some(next) = next else { break };
            if next > self.t0 + limit {
                break;
            }
            self.now = self.now.max(next);
            while let Some(entry) = self.queue.first_entry() {
                if entry.key().0 > self.now {
                    break;
                }
                let (to, t) = entry.remove();
                self.engines[to].handle_datagram(self.now, t.remote, t.local, &t.payload);
            }
            for engine in &mut self.engines {
                if engine.next_timeout().is_some_and(|d| d <= self.now) {
                    engine.handle_timeout(self.now);
                }
            }
        }
        self.collect();
    }

    fn established(&self, side: usize) -> bool {
        (self.logs[side].events.iter()).any(|e| matches!(e, Event::Established { .. }))
    }

    fn failures(&self, side: usize) -> Vec<FailureReason> {
        (self.logs[side].events.iter())
            .filter_map(|e| match e {
                Event::Failed { reason, .. } => Some(reason.clone()),
                _ => None,
            })
            .collect()
    }
}

fn exchange_of(datagram: &[u8]) -> (ExchangeType, bool) {
    let m = Message::decode(datagram).unwrap();
    (m.header.exchange, m.header.flags.response)
}

/// Both sides' installs mirror each other: SPIs swapped, same algorithms and key bytes per
/// direction, the rest from each side's own configuration.
fn assert_mirrored(sim: &Sim, a: &Side, b: &Side) {
    let ([ia], [ib]) = (
        sim.logs[0].installs.as_slice(),
        sim.logs[1].installs.as_slice(),
    ) else {
        panic!("one install per side expected");
    };
    assert_eq!(ia.outbound.spi, ib.inbound.spi);
    assert_eq!(ia.inbound.spi, ib.outbound.spi);
    assert_ne!(ia.inbound.spi, ia.outbound.spi);
    assert_eq!(ia.algorithms, ib.algorithms);
    assert!(ia
        .outbound
        .encryption_key
        .ct_eq(ib.inbound.encryption_key.expose()));
    assert!(ia
        .outbound
        .integrity_key
        .ct_eq(ib.inbound.integrity_key.expose()));
    assert!(ia
        .inbound
        .encryption_key
        .ct_eq(ib.outbound.encryption_key.expose()));
    assert!(ia
        .inbound
        .integrity_key
        .ct_eq(ib.outbound.integrity_key.expose()));
    assert!(!ia
        .inbound
        .encryption_key
        .ct_eq(ia.outbound.encryption_key.expose()));
    assert_eq!(
        ia.outbound.encryption_key.len(),
        ia.algorithms.encryption.keymat_len()
    );
    for (install, side) in [(ia, a), (ib, b)] {
        assert_eq!(install.reqid, side.reqid);
        assert_eq!(install.mark, side.mark);
        assert_eq!(install.if_id, side.if_id);
        assert_eq!(install.mode, side.mode);
        assert_eq!(install.connection, side.name);
        assert_eq!(install.child, "net");
        assert_eq!(
            (install.outbound.src, install.outbound.dst),
            (side.local, side.remote)
        );
        assert_eq!(
            (install.inbound.src, install.inbound.dst),
            (side.remote, side.local)
        );
        // ESP goes in UDP exactly when a NAT sits between the sides.
        assert_eq!(install.encap.is_some(), sim.nat.is_some());
        let l = install.lifetimes;
        assert!(l.soft <= Duration::from_secs(3600) && l.soft >= Duration::from_secs(3240));
        assert_eq!(l.hard, Duration::from_secs(3960));
    }
    assert_eq!(ia.local_ts, ib.remote_ts);
    assert_eq!(ia.remote_ts, ib.local_ts);
    // Status: both sides see the same IKE SA and the same Child SA SPIs.
    let (sa, sb) = (sim.engines[0].status(), sim.engines[1].status());
    let ([sa], [sb]) = (sa.as_slice(), sb.as_slice()) else {
        panic!("one IKE SA per side expected");
    };
    assert_eq!(
        (sa.state, sb.state),
        (IkeSaState::Established, IkeSaState::Established)
    );
    assert_eq!((sa.spi_i, sa.spi_r), (sb.spi_i, sb.spi_r));
    assert!(sa.initiator && !sb.initiator);
    assert_eq!(sa.ike, sb.ike);
    assert!(sa.established_at.is_some() && sb.established_at.is_some());
    let (ca, cb) = (&sa.children[0], &sb.children[0]);
    assert_eq!((ca.spi_in, ca.spi_out), (cb.spi_out, cb.spi_in));
    assert_eq!((ca.spi_in, ca.spi_out), (ia.inbound.spi, ia.outbound.spi));
    assert_eq!(ca.esp, cb.esp);
}

const MATRIX: [(&str, &str); 3] = [
    ("aes256-sha256-modp2048", "aes256-sha256"),
    ("aes128gcm16-prfsha256-ecp256", "aes128gcm16"),
    ("aes256gcm16-prfsha384-x25519", "aes256gcm16-x25519"),
];

#[test]
fn interop_matrix_establishes_with_mirrored_sas() {
    for (i, (ike, esp)) in MATRIX.into_iter().enumerate() {
        let (mut a, mut b) = pair(&[ike], &[esp]);
        if i == 1 {
            // XFRM interfaces instead of VTI marks.
            (a.mark, b.mark, a.if_id, b.if_id) = (None, None, Some(41), Some(42));
        }
        let mut sim = Sim::new(&a, &b, i as u64, PERFECT);
        sim.initiate();
        sim.run(Duration::from_secs(10));
        assert!(sim.established(0) && sim.established(1), "{ike} / {esp}");
        assert!(sim.failures(0).is_empty() && sim.failures(1).is_empty());
        assert_mirrored(&sim, &a, &b);
        for status in [&sim.engines[0].status()[0], &sim.engines[1].status()[0]] {
            assert!(!status.local_behind_nat && !status.remote_behind_nat);
        }
        let install = &sim.logs[0].installs[0];
        let expected = parse_esp(esp, true).unwrap();
        assert_eq!(install.algorithms.encryption, expected.encryption[0]);
        assert_eq!(install.algorithms.dh, None, "the first child has no PFS");
        // Exactly IKE_SA_INIT and IKE_AUTH, once each way.
        let kinds: Vec<_> = (sim.logs[0].sent.iter())
            .map(|(_, d)| exchange_of(d))
            .collect();
        assert_eq!(
            kinds,
            [
                (ExchangeType::IkeSaInit, false),
                (ExchangeType::IkeAuth, false)
            ]
        );
        let status = &sim.engines[0].status()[0];
        assert_eq!(
            status.ike.as_deref(),
            Some(parse_ike(ike, true).unwrap().to_string().as_str())
        );
    }
}

#[test]
fn establishment_survives_loss_duplication_and_reordering() {
    let lossy = Conditions {
        loss: 0.3,
        duplicate: 0.2,
        max_delay: Duration::from_millis(1500),
    };
    let mut retransmitted = 0;
    for seed in 0..20 {
        let (ike, esp) = MATRIX[seed as usize % 3];
        let (a, b) = pair(&[ike], &[esp]);
        let mut sim = Sim::new(&a, &b, seed, lossy);
        sim.initiate();
        sim.run(Duration::from_secs(600));
        assert!(
            sim.established(0) && sim.established(1),
            "seed {seed}: {:?} / {:?}",
            sim.logs[0].events,
            sim.logs[1].events
        );
        assert_mirrored(&sim, &a, &b);
        retransmitted += sim.logs[0].sent.len() - 2;
    }
    assert!(
        retransmitted > 0,
        "the loss must have forced retransmissions"
    );
}

#[test]
fn retransmitted_request_is_answered_from_the_cache() {
    let (a, b) = pair(&[MATRIX[0].0], &[MATRIX[0].1]);
    let mut sim = Sim::new(&a, &b, 1, PERFECT);
    let (ea, eb) = (SocketAddr::new(ip(A), 500), SocketAddr::new(ip(B), 500));
    sim.initiate();
    let [ref mut ia, ref mut ib] = sim.engines;
    let now = sim.now;
    // Each request reaches the responder twice; both answers are the same octets and the
    // request is processed once.
    let init = ia.poll_transmit().unwrap().payload;
    ib.handle_datagram(now, eb, ea, &init);
    ib.handle_datagram(now, eb, ea, &init);
    let (r1, r2) = (ib.poll_transmit().unwrap(), ib.poll_transmit().unwrap());
    assert_eq!(r1, r2);
    assert_eq!(ib.status().len(), 1);
    ia.handle_datagram(now, ea, eb, &r1.payload);
    ia.handle_datagram(now, ea, eb, &r2.payload);
    let auth = ia.poll_transmit().unwrap().payload;
    assert!(
        ia.poll_transmit().is_none(),
        "the duplicate response is ignored"
    );
    ib.handle_datagram(now, eb, ea, &auth);
    ib.handle_datagram(now, eb, ea, &auth);
    let (r1, r2) = (ib.poll_transmit().unwrap(), ib.poll_transmit().unwrap());
    assert_eq!(r1, r2);
    assert!(matches!(
        ib.poll_action(),
        Some(KernelAction::InstallChildSa(_))
    ));
    assert!(ib.poll_action().is_none(), "installed once");
    ia.handle_datagram(now, ea, eb, &r1.payload);
    ia.handle_datagram(now, ea, eb, &r2.payload);
    assert!(matches!(
        ia.poll_action(),
        Some(KernelAction::InstallChildSa(_))
    ));
    assert!(ia.poll_action().is_none(), "installed once");
    // Nothing outstanding: the next timer is the Child SA's rekey, most of an hour away.
    let next = ia.next_timeout().expect("the rekey timer");
    assert!(
        next > now + Duration::from_secs(3000),
        "nothing outstanding"
    );
}

#[test]
fn wrong_psk_fails_on_both_sides_and_installs_nothing() {
    let (a, mut b) = pair(&[MATRIX[1].0], &[MATRIX[1].1]);
    b.psk = b"another key entirely";
    let mut sim = Sim::new(&a, &b, 2, PERFECT);
    sim.initiate();
    sim.run(Duration::from_secs(200));
    for side in 0..2 {
        let failures = sim.failures(side);
        assert!(
            matches!(
                failures.as_slice(),
                [FailureReason::AuthenticationFailed { .. }]
            ),
            "side {side}: {failures:?}"
        );
        assert!(sim.logs[side].installs.is_empty());
        assert!(!sim.established(side));
        assert!(sim.engines[side].status().is_empty(), "no state left");
        // The responder checks the MIC; the initiator only learns it was refused.
        let expected = [
            "refused our authentication",
            "same pre-shared key and identities",
        ];
        let text = failures[0].to_string();
        assert!(text.contains(expected[side]), "side {side}: {text}");
    }
}

#[test]
fn proposal_mismatch_names_both_sides_proposals() {
    let (a, mut b) = pair(&["aes256-sha256-modp2048"], &["aes256-sha256"]);
    b.ike = vec!["aes128gcm16-prfsha256-ecp256"];
    let mut sim = Sim::new(&a, &b, 3, PERFECT);
    sim.initiate();
    sim.run(Duration::from_secs(200));
    let ours_a = parse_ike(a.ike[0], true).unwrap().to_string();
    let ours_b = parse_ike(b.ike[0], true).unwrap().to_string();
    assert_eq!(
        sim.failures(0),
        [FailureReason::NoProposalChosen {
            ours: vec![ours_a.clone()],
            theirs: None
        }]
    );
    let responder = sim.failures(1);
    assert_eq!(
        responder,
        [FailureReason::NoProposalChosen {
            ours: vec![ours_b.clone()],
            theirs: Some(vec![ours_a.clone()])
        }]
    );
    let text = responder[0].to_string();
    assert!(text.contains(&ours_a) && text.contains(&ours_b), "{text}");
    assert!(sim.engines[0].status().is_empty() && sim.engines[1].status().is_empty());
}

#[test]
fn invalid_ke_payload_retry_establishes() {
    // The initiator's first group (MODP2048) is not acceptable; its second (ECP256) is.
    let (a, mut b) = pair(&["aes256-sha256-modp2048-ecp256"], &["aes256-sha256"]);
    b.ike = vec!["aes256-sha256-ecp256"];
    let mut sim = Sim::new(&a, &b, 4, PERFECT);
    sim.initiate();
    sim.run(Duration::from_secs(10));
    assert!(sim.established(0) && sim.established(1));
    assert_mirrored(&sim, &a, &b);
    let inits: Vec<Message> = (sim.logs[0].sent.iter())
        .map(|(_, d)| Message::decode(d).unwrap())
        .filter(|m| m.header.exchange == ExchangeType::IkeSaInit)
        .collect();
    use routevpn::ike::codec::PayloadLookup;
    let groups: Vec<u16> = inits
        .iter()
        .map(|m| m.key_exchange().unwrap().group)
        .collect();
    assert_eq!(groups, [14, 19]);
    assert_eq!(inits[0].header.initiator_spi, inits[1].header.initiator_spi);
    assert!(sim.engines[0].status()[0]
        .ike
        .as_ref()
        .unwrap()
        .contains("ECP_256"));
}

#[test]
fn request_for_a_group_we_lack_fails_clearly() {
    use routevpn::ike::codec::{Flags, Header, Notify, Payload};
    let (a, b) = pair(&["aes256-sha256-modp2048"], &["aes256-sha256"]);
    let mut sim = Sim::new(&a, &b, 5, PERFECT);
    sim.initiate();
    let request = Message::decode(&sim.engines[0].poll_transmit().unwrap().payload).unwrap();
    // A (misbehaving) responder asks for ECP256, which we never offered.
    let header = Header::new(
        ExchangeType::IkeSaInit,
        request.header.initiator_spi,
        0,
        0,
        Flags {
            response: true,
            ..Flags::default()
        },
    );
    let answer = Message::new(
        header,
        vec![Payload::Notify(Notify::invalid_ke_payload(19))],
    )
    .unwrap()
    .encode()
    .unwrap();
    let (ea, eb) = (SocketAddr::new(ip(A), 500), SocketAddr::new(ip(B), 500));
    sim.engines[0].handle_datagram(sim.now, ea, eb, &answer);
    sim.collect();
    assert_eq!(
        sim.failures(0),
        [FailureReason::InvalidKePayload { requested: 19 }]
    );
    assert!(sim.failures(0)[0].to_string().contains("group 19"));
    assert!(sim.engines[0].status().is_empty());
}

#[test]
fn silent_peer_gives_up_after_the_back_off_schedule() {
    let (a, b) = pair(&[MATRIX[0].0], &[MATRIX[0].1]);
    let mut sim = Sim::new(&a, &b, 6, PERFECT);
    sim.mute_b = true;
    sim.initiate();
    sim.run(Duration::from_secs(1000));
    let times: Vec<f64> = (sim.logs[0].sent.iter())
        .map(|(t, _)| t.as_secs_f64())
        .collect();
    let gaps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    let expected = [4.0, 7.2, 12.96, 23.328, 41.9904];
    assert_eq!(gaps.len(), expected.len(), "{times:?}");
    for (got, want) in gaps.iter().zip(expected) {
        assert!((got - want).abs() < 1e-6, "{gaps:?}");
    }
    // Every send is the same IKE_SA_INIT request.
    assert!(sim.logs[0]
        .sent
        .iter()
        .all(|(_, d)| *d == sim.logs[0].sent[0].1));
    match sim.failures(0).as_slice() {
        [FailureReason::PeerNotResponding { after }] => {
            let want = 4.0 + 7.2 + 12.96 + 23.328 + 41.9904 + 75.58272;
            assert!((after.as_secs_f64() - want).abs() < 1e-6, "{after:?}");
        }
        other => panic!("{other:?}"),
    }
    assert!(sim.engines[0].status().is_empty());
    assert_eq!(sim.engines[0].next_timeout(), None);
}

#[test]
fn transport_mode_gre_child() {
    let (mut a, mut b) = pair(&[MATRIX[2].0], &[MATRIX[2].1]);
    for side in [&mut a, &mut b] {
        side.mode = Mode::Transport;
        side.local_ts = vec!["dynamic[gre]"];
        side.remote_ts = vec!["dynamic[gre]"];
    }
    let mut sim = Sim::new(&a, &b, 7, PERFECT);
    sim.initiate();
    sim.run(Duration::from_secs(10));
    // The responder chooses transport mode only when the request carries
    // USE_TRANSPORT_MODE, the initiator only when the answer does.
    assert_mirrored(&sim, &a, &b);
    let install = &sim.logs[0].installs[0];
    assert_eq!(install.mode, Mode::Transport);
    assert_eq!(install.local_ts[0].to_string(), "192.0.2.1/32[gre]");
    assert_eq!(install.remote_ts[0].to_string(), "198.51.100.2/32[gre]");
}

#[test]
fn transport_mode_mismatch_is_reported() {
    let (a, mut b) = pair(&[MATRIX[0].0], &[MATRIX[0].1]);
    b.mode = Mode::Transport;
    let mut sim = Sim::new(&a, &b, 8, PERFECT);
    sim.initiate();
    sim.run(Duration::from_secs(10));
    assert!(matches!(
        sim.failures(1).as_slice(),
        [FailureReason::ModeMismatch {
            ours: Mode::Transport,
            ..
        }]
    ));
    assert!(sim.logs[0].installs.is_empty() && sim.logs[1].installs.is_empty());
    // The IKE SA itself stands; the initiator learns why the child failed.
    assert!(sim.established(0) && sim.established(1));
    assert_eq!(sim.failures(0).len(), 1);
}

#[test]
fn traffic_selector_mismatch_is_reported() {
    let (a, mut b) = pair(&[MATRIX[1].0], &[MATRIX[1].1]);
    b.remote_ts = vec!["172.16.0.0/12"];
    let mut sim = Sim::new(&a, &b, 9, PERFECT);
    sim.initiate();
    sim.run(Duration::from_secs(10));
    match sim.failures(1).as_slice() {
        [FailureReason::TsUnacceptable { ours, theirs, .. }] => {
            assert!(ours.iter().any(|t| t == "172.16.0.0/12"), "{ours:?}");
            assert!(theirs.as_ref().unwrap().iter().any(|t| t == "10.1.0.0/16"));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        sim.failures(0).as_slice(),
        [FailureReason::TsUnacceptable { theirs: None, .. }]
    ));
}

#[test]
fn terminate_deletes_on_both_sides() {
    let (a, b) = pair(&[MATRIX[0].0], &[MATRIX[0].1]);
    let mut sim = Sim::new(&a, &b, 10, PERFECT);
    sim.initiate();
    sim.run(Duration::from_secs(10));
    sim.engines[0].terminate(sim.now, "to-b").unwrap();
    sim.run(Duration::from_secs(20));
    for side in 0..2 {
        let install = &sim.logs[side].installs[0];
        assert_eq!(sim.logs[side].deletes, [install.reference()]);
        assert!(sim.engines[side].status().is_empty());
        assert_eq!(sim.engines[side].next_timeout(), None);
    }
    assert!(sim.logs[0].events.contains(&Event::Deleted {
        name: "to-b".into(),
        by_peer: false
    }));
    assert!(sim.logs[1].events.contains(&Event::Deleted {
        name: "to-a".into(),
        by_peer: true
    }));
}

#[test]
fn liveness_check_is_answered() {
    let (a, b) = pair(&[MATRIX[1].0], &[MATRIX[1].1]);
    let mut sim = Sim::new(&a, &b, 11, PERFECT);
    sim.initiate();
    sim.run(Duration::from_secs(10));
    let sent = sim.logs[1].sent.len();
    sim.engines[0].check_liveness(sim.now, "to-b").unwrap();
    assert!(sim.engines[0].next_timeout().is_some());
    sim.run(Duration::from_secs(20));
    assert_eq!(sim.logs[1].sent.len(), sent + 1, "one answer");
    // Answer accepted: only the Child SA's rekey timer, most of an hour away, is left.
    let next = sim.engines[0].next_timeout().expect("the rekey timer");
    assert!(
        next > sim.now + Duration::from_secs(3000),
        "answer accepted"
    );
    assert!(sim.failures(0).is_empty() && sim.failures(1).is_empty());
    assert_eq!(sim.engines[0].status()[0].state, IkeSaState::Established);
}

#[test]
fn garbage_and_truncations_are_dropped() {
    let (a, b) = pair(&[MATRIX[0].0], &[MATRIX[0].1]);
    let mut sim = Sim::new(&a, &b, 12, PERFECT);
    sim.initiate();
    sim.run(Duration::from_secs(10));
    let (from, to) = (SocketAddr::new(ip(A), 500), SocketAddr::new(ip(B), 500));
    let mut rng = StdRng::seed_from_u64(99);
    for (_, datagram) in sim.logs[0].sent.clone() {
        for cut in 0..datagram.len() {
            sim.engines[1].handle_datagram(sim.now, to, from, &datagram[..cut]);
        }
        for _ in 0..200 {
            let mut flipped = datagram.clone();
            let at = rng.gen_range(0..flipped.len());
            flipped[at] ^= 1 << rng.gen_range(0..8);
            sim.engines[1].handle_datagram(sim.now, to, from, &flipped);
        }
    }
    sim.collect();
    assert_eq!(sim.logs[1].installs.len(), 1);
    assert!(sim.failures(1).is_empty(), "{:?}", sim.failures(1));
    // A flipped bit in an IKE_SA_INIT request can make another valid request: such
    // half-open SAs expire, the established one stays.
    let later = sim.now + Duration::from_secs(31);
    sim.engines[1].handle_timeout(later);
    let status = sim.engines[1].status();
    assert_eq!(status.len(), 1, "{status:?}");
    assert_eq!(status[0].state, IkeSaState::Established);
}

#[test]
fn secrets_never_appear_in_debug_events_or_status() {
    let (a, b) = pair(&[MATRIX[0].0], &[MATRIX[0].1]);
    let mut sim = Sim::new(&a, &b, 13, PERFECT);
    sim.initiate();
    sim.run(Duration::from_secs(10));
    let psk_text = String::from_utf8_lossy(PSK).to_string();
    let psk_list = format!("{:?}", PSK);
    let key_list = format!(
        "{:?}",
        sim.logs[0].installs[0].outbound.encryption_key.expose()
    );
    let key_hex: String = (sim.logs[0].installs[0]
        .outbound
        .encryption_key
        .expose()
        .iter())
    .map(|b| format!("{b:02x}"))
    .collect();
    let mut shown = Vec::new();
    for side in 0..2 {
        shown.push(format!("{:?}", sim.engines[side]));
        shown.push(format!("{:#?}", sim.engines[side].status()));
        shown.push(format!("{:?}", sim.logs[side].events));
        shown.extend(sim.logs[side].events.iter().map(ToString::to_string));
        shown.push(format!("{:#?}", sim.logs[side].installs));
    }
    shown.push(format!("{:?}", connection(&a)));
    for text in &shown {
        let inner = &PSK[4..20];
        assert!(!text.contains(&psk_text), "{text}");
        assert!(
            !text.contains(std::str::from_utf8(inner).unwrap()),
            "{text}"
        );
        assert!(!text.contains(&psk_list[1..psk_list.len() - 1]), "{text}");
        assert!(!text.contains(&key_list[1..key_list.len() - 1]), "{text}");
        assert!(!text.contains(&key_hex), "{text}");
    }
    assert!(shown[0].contains("Secret("), "keys are shown redacted");
}

#[test]
fn nat_is_detected_and_shown_in_status() {
    let public: SocketAddr = "203.0.113.5:40000".parse().unwrap();
    let (a, mut b) = pair(&[MATRIX[1].0], &[MATRIX[1].1]);
    b.remote = public.ip();
    let mut sim = Sim::new(&a, &b, 14, PERFECT);
    sim.nat = Some(public);
    sim.initiate();
    sim.run(Duration::from_secs(10));
    assert_mirrored(&sim, &a, &b);
    let (sa, sb) = (&sim.engines[0].status()[0], &sim.engines[1].status()[0]);
    assert!(sa.local_behind_nat && !sa.remote_behind_nat);
    assert!(!sb.local_behind_nat && sb.remote_behind_nat);
    // Both moved to NAT-T after IKE_SA_INIT: a's 4500 appears as the NAT's 44000.
    assert_eq!(sa.local.port(), 4500);
    assert_eq!(sa.remote.port(), 4500);
    assert_eq!(sb.remote, "203.0.113.5:44000".parse().unwrap());
    let (ia, ib) = (&sim.logs[0].installs[0], &sim.logs[1].installs[0]);
    assert_eq!(
        ia.encap.map(|e| (e.local_port, e.remote_port)),
        Some((4500, 4500))
    );
    assert_eq!(
        ib.encap.map(|e| (e.local_port, e.remote_port)),
        Some((4500, 44000))
    );
}

#[test]
fn initiator_refusing_the_child_has_the_responder_delete_it() {
    // The initiator wants transport mode, the responder's configuration says tunnel: the
    // responder installs a tunnel-mode SA, which the initiator refuses and deletes.
    let (mut a, b) = pair(&[MATRIX[0].0], &[MATRIX[0].1]);
    a.mode = Mode::Transport;
    let mut sim = Sim::new(&a, &b, 15, PERFECT);
    sim.initiate();
    sim.run(Duration::from_secs(10));
    assert!(matches!(
        sim.failures(0).as_slice(),
        [FailureReason::ModeMismatch {
            ours: Mode::Transport,
            ..
        }]
    ));
    assert!(sim.logs[0].installs.is_empty());
    let install = &sim.logs[1].installs[0];
    assert_eq!(install.mode, Mode::Tunnel);
    assert_eq!(sim.logs[1].deletes, [install.reference()]);
    for side in 0..2 {
        let status = sim.engines[side].status();
        assert_eq!(status[0].state, IkeSaState::Established);
        assert!(status[0].children.is_empty());
        // Only the IKE SA's own rekey (rekey_time 4 h, up to 10 % earlier) is pending.
        let rekey = sim.engines[side].next_timeout().expect("IKE rekey timer");
        assert!(rekey >= sim.now + Duration::from_secs(3 * 3600), "{side}");
    }
}

#[test]
fn acceptable_ke_group_is_taken_without_a_round_trip() {
    // The responder prefers ECP256 but also accepts MODP2048, the group of the initiator's
    // KE payload: it chooses that group instead of asking for another.
    let (a, mut b) = pair(&["aes256-sha256-modp2048-ecp256"], &["aes256-sha256"]);
    b.ike = vec!["aes256-sha256-ecp256-modp2048"];
    let mut sim = Sim::new(&a, &b, 16, PERFECT);
    sim.initiate();
    sim.run(Duration::from_secs(10));
    assert_mirrored(&sim, &a, &b);
    assert_eq!(sim.logs[0].sent.len(), 2, "one IKE_SA_INIT, one IKE_AUTH");
    let ike = sim.engines[1].status()[0].ike.clone().unwrap();
    assert!(ike.contains("MODP_2048"), "{ike}");
}

#[test]
fn initial_contact_from_a_restarted_peer_replaces_the_old_sas() {
    let (a, b) = pair(&[MATRIX[1].0], &[MATRIX[1].1]);
    let mut sim = Sim::new(&a, &b, 17, PERFECT);
    sim.initiate();
    sim.run(Duration::from_secs(10));
    // Initiating again while established does nothing.
    sim.engines[0].initiate(sim.now, "to-b").unwrap();
    sim.collect();
    assert_eq!(sim.logs[0].sent.len(), 2);
    let old = sim.logs[1].installs.remove(0);
    // The initiator restarts: a fresh engine, same configuration.
    sim.engines[0] = Engine::new(EngineConfig::default());
    sim.engines[0].add_connection(connection(&a));
    sim.logs[0] = Log::default();
    sim.initiate();
    sim.run(Duration::from_secs(20));
    assert_eq!(sim.logs[1].deletes, [old.reference()]);
    assert!(sim.logs[1].events.contains(&Event::Deleted {
        name: "to-a".into(),
        by_peer: true
    }));
    assert_mirrored(&sim, &a, &b);
}

#[test]
fn terminate_during_a_liveness_check_still_tells_the_peer() {
    let (a, b) = pair(&[MATRIX[2].0], &[MATRIX[2].1]);
    let mut sim = Sim::new(&a, &b, 18, PERFECT);
    sim.initiate();
    sim.run(Duration::from_secs(10));
    sim.engines[0].check_liveness(sim.now, "to-b").unwrap();
    sim.engines[0].terminate(sim.now, "to-b").unwrap();
    sim.run(Duration::from_secs(20));
    let kinds: Vec<_> = (sim.logs[0].sent.iter())
        .map(|(_, d)| exchange_of(d))
        .collect();
    assert_eq!(
        kinds[2..],
        [
            (ExchangeType::Informational, false),
            (ExchangeType::Informational, false)
        ]
    );
    assert!(sim.logs[1].events.contains(&Event::Deleted {
        name: "to-a".into(),
        by_peer: true
    }));
    for side in 0..2 {
        assert_eq!(sim.logs[side].deletes.len(), 1);
        assert!(sim.engines[side].status().is_empty());
    }
}
