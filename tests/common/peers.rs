//! Two engines, "a" (192.0.2.1, LAN 10.1/16) and "b" (198.51.100.2, LAN 10.2/16), with
//! one PSK connection each way, and a lossless network between them driven by a simulated
//! clock. For tests about timers and load; tests/ike_engine.rs has the lossy harness.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use routevpn::ike::crypto::Secret;
use routevpn::ike::engine::{
    ChildConfig, Dpd, DpdAction, Engine, EngineConfig, EngineConnection, Event, IkeConfig,
    IkeSaState, KernelAction, StartAction, Transmit,
};
use routevpn::profile::parse_traffic_selector;
use routevpn::proposal::{parse_esp, parse_ike};

pub const A: &str = "192.0.2.1";
pub const B: &str = "198.51.100.2";
/// Connection names: a's connection to b, b's connection to a.
pub const TO_B: &str = "to-b";
pub const TO_A: &str = "to-a";

pub fn addr(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), port)
}

/// Side a's (`a == true`) or side b's connection, with the given liveness settings.
pub fn connection(a: bool, dpd: Dpd, start: StartAction, close: StartAction) -> EngineConnection {
    let (name, local, remote, nets) = if a {
        (TO_B, A, B, ("10.1.0.0/16", "10.2.0.0/16"))
    } else {
        (TO_A, B, A, ("10.2.0.0/16", "10.1.0.0/16"))
    };
    let ts = |net: &str| vec![parse_traffic_selector(net).unwrap()];
    let esp = vec![parse_esp("aes128gcm16", false).unwrap()];
    let mut child = ChildConfig::new("net", ts(nets.0), ts(nets.1), esp);
    child.mark = Some(0x52000001);
    let (local, remote): (IpAddr, IpAddr) = (local.parse().unwrap(), remote.parse().unwrap());
    let ike = vec![parse_ike("aes128gcm16-prfsha256-x25519", false).unwrap()];
    let mut config = IkeConfig::new(name, remote, ike, vec![child]);
    (config.dpd, config.start_action, config.close_action) = (dpd, start, close);
    EngineConnection::with_psk(
        config,
        local,
        Secret::from_slice(b"peers-test-psk-0123456789"),
    )
}

/// Side a's or b's connection (no DPD, nothing started or restarted by itself) with one IKE
/// and one ESP proposal; legacy algorithms allowed, as a partner's sheet may name them.
pub fn with_proposals(a: bool, ike: &str, esp: &str) -> EngineConnection {
    let mut c = connection(
        a,
        dpd(0, 150, DpdAction::Clear),
        StartAction::None,
        StartAction::None,
    );
    c.config.proposals = vec![parse_ike(ike, true).unwrap()];
    c.config.children[0].esp_proposals = vec![parse_esp(esp, true).unwrap()];
    c
}

/// The connection without IKE or Child SA lifetimes, so rekeys add no messages, Deletes or
/// timers to what a test counts.
pub fn without_rekey(mut c: EngineConnection) -> EngineConnection {
    c.config.rekey_time = 0;
    for child in &mut c.config.children {
        (child.rekey_time, child.life_time, child.rand_time) = (0, 0, 0);
    }
    c
}

pub fn dpd(delay: u64, timeout: u64, action: DpdAction) -> Dpd {
    Dpd {
        delay: Duration::from_secs(delay),
        timeout: Duration::from_secs(timeout),
        action,
    }
}

pub fn engine(config: EngineConfig, connection: EngineConnection) -> Engine {
    let mut e = Engine::new(config);
    e.add_connection(connection);
    e
}

/// What one side did, in order.
#[derive(Default)]
pub struct Record {
    pub events: Vec<(Duration, Event)>,
    pub actions: Vec<(Duration, KernelAction)>,
    /// Datagrams sent (time since start, bytes).
    pub sent: Vec<(Duration, Vec<u8>)>,
}

/// Two engines on a lossless network; a side that is "down" loses what is sent to it.
pub struct Pair {
    pub t0: Instant,
    pub now: Instant,
    pub engines: [Engine; 2],
    pub records: [Record; 2],
    pub down: [bool; 2],
    /// Side a sits behind a NAT: its port p appears as this address's port + (p - 500);
    /// datagrams to ports the NAT has no mapping for are dropped.
    pub nat: Option<SocketAddr>,
    /// Every kernel action of both sides in the order they happened: (side, index into
    /// that side's `records.actions`).
    pub action_order: Vec<(usize, usize)>,
    /// What arrives of the datagrams a side sent in one go (default: all, in order).
    pub network: Option<Box<Network>>,
}

pub type Network = dyn FnMut(usize, Vec<Transmit>) -> Vec<Transmit>;

impl Pair {
    pub fn new(a: Engine, b: Engine) -> Pair {
        let t0 = Instant::now();
        Pair {
            t0,
            now: t0,
            engines: [a, b],
            records: [Record::default(), Record::default()],
            down: [false, false],
            nat: None,
            action_order: Vec::new(),
            network: None,
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.t0
    }

    /// Delivers everything in flight (instantly) until both sides are quiet.
    pub fn settle(&mut self) {
        loop {
            let mut moved = false;
            for side in 0..2 {
                let at = self.elapsed();
                // Kernel actions first, as the daemon does them: a new SA is installed
                // before the message that lets the peer use it leaves.
                while let Some(e) = self.engines[side].poll_event() {
                    self.records[side].events.push((at, e));
                }
                while let Some(k) = self.engines[side].poll_action() {
                    self.action_order
                        .push((side, self.records[side].actions.len()));
                    self.records[side].actions.push((at, k));
                }
                let mut sent = Vec::new();
                while let Some(t) = self.engines[side].poll_transmit() {
                    moved = true;
                    self.records[side].sent.push((at, t.payload.clone()));
                    sent.push(t);
                }
                if let Some(network) = self.network.as_mut() {
                    sent = network(side, sent);
                }
                for mut t in sent {
                    if !self.translate(side, &mut t) || self.down[1 - side] {
                        continue;
                    }
                    self.engines[1 - side].handle_datagram(self.now, t.remote, t.local, &t.payload);
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// Applies the NAT to a datagram `side` sent; false if the NAT drops it.
    fn translate(&self, side: usize, t: &mut Transmit) -> bool {
        let Some(public) = self.nat else {
            return true;
        };
        if side == 0 {
            t.local = SocketAddr::new(public.ip(), public.port() + (t.local.port() - 500));
            return true;
        }
        let Some(offset) = t.remote.port().checked_sub(public.port()) else {
            return false;
        };
        t.remote = SocketAddr::new(A.parse().unwrap(), 500 + offset);
        true
    }

    /// Runs both engines' timers, in order, up to `elapsed` since the start.
    pub fn run_until(&mut self, elapsed: Duration) {
        let end = self.t0 + elapsed;
        for _ in 0..1_000_000 {
            self.settle();
            let next = (self.engines.iter()).filter_map(Engine::next_timeout).min();
            match next {
                Some(at) if at <= end => {
                    self.now = self.now.max(at);
                    for e in &mut self.engines {
                        e.handle_timeout(self.now);
                    }
                }
                _ => {
                    self.now = end;
                    self.settle();
                    return;
                }
            }
        }
        panic!("timers do not advance: stuck at {:?}", self.elapsed());
    }

    /// Installed Child SAs of established IKE SAs on `side`.
    pub fn children(&self, side: usize) -> usize {
        (self.engines[side].status().iter())
            .filter(|s| s.state == IkeSaState::Established)
            .map(|s| s.children.len())
            .sum()
    }

    /// When `side` last logged an event matching `f`.
    pub fn last_event(&self, side: usize, f: impl Fn(&Event) -> bool) -> Option<Duration> {
        (self.records[side].events.iter())
            .filter(|(_, e)| f(e))
            .map(|(at, _)| *at)
            .last()
    }
}
