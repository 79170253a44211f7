//! Runs a real initiator/responder exchange in which the fuzzer decides, datagram by
//! datagram, whether each message is delivered, dropped, duplicated, truncated, bit-flipped
//! or replaced by fuzzer bytes, and how far the clock moves. Unlike `decode_message` this
//! reaches the states behind authentication (keys agreed, SK payloads opened, CHILD SAs
//! installed, deletes), where a mutated field meets live state. Bits of the first byte
//! switch on a signature (Ed25519, raw key) for side a, so AUTH method 14 is checked, and a
//! small fragment size, so IKE_AUTH and later messages travel as SKF fragments.
#![no_main]

use std::net::IpAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use std::sync::Arc;

use routevpn::ike::auth::keys::PrivateKey;
use routevpn::ike::crypto::Secret;
use routevpn::ike::engine::{
    ChildConfig, Engine, EngineConfig, EngineConnection, Identity, IkeConfig, LocalAuth,
    RemoteAuth, SendCert, StartAction, Transmit,
};
use routevpn::profile::parse_traffic_selector;
use routevpn::proposal::{parse_esp, parse_ike};

/// Bounds one input's work so a slow path shows up as a timeout, not a hang.
const MAX_STEPS: usize = 64;

/// A fixed key: generating one per input would dominate the run time.
const ED25519_KEY: &[u8] = b"-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIPm+S7PclnU4R0AWVl6hdfhLE570Sw/oRL+Erlq/Sqm4
-----END PRIVATE KEY-----
";

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    // The first byte picks the outer family, so both address paths are fuzzed.
    let (a, b): (IpAddr, IpAddr) = if data.first().is_some_and(|f| f & 1 == 1) {
        (
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
        )
    } else {
        (
            "192.0.2.1".parse().unwrap(),
            "198.51.100.2".parse().unwrap(),
        )
    };
    let flags = data.first().copied().unwrap_or(0);
    let config = EngineConfig {
        fragment_size: if flags & 4 != 0 { 300 } else { 1280 },
        ..EngineConfig::default()
    };
    let mut engines = [Engine::new(config.clone()), Engine::new(config)];
    let mut to_b = connection("to-b", a, b, "a.example", "b.example");
    let mut to_a = connection("to-a", b, a, "b.example", "a.example");
    if flags & 2 != 0 {
        let key = Arc::new(PrivateKey::from_pem(ED25519_KEY, "fuzz key").unwrap());
        to_a.remote_auth = RemoteAuth::PublicKey {
            key: key.public_key(),
        };
        to_b.local_auth = LocalAuth::Signature {
            key,
            chain: None,
            send_cert: SendCert::Never,
        };
    }
    engines[0].add_connection(to_b);
    engines[1].add_connection(to_a);
    let mut now = Instant::now();
    engines[0].initiate(now, "to-b").unwrap();

    let mut in_flight: Vec<(usize, Transmit)> = Vec::new();
    for _ in 0..MAX_STEPS {
        for (side, engine) in engines.iter_mut().enumerate() {
            while let Some(t) = engine.poll_transmit() {
                in_flight.push((1 - side, t));
            }
            while engine.poll_action().is_some() {}
            while engine.poll_event().is_some() {}
        }
        let Some(op) = input.byte() else { break };
        now += Duration::from_millis(u64::from(input.byte().unwrap_or(0)) * 250);
        match op % 8 {
            // Operator commands and timers interleave with the traffic.
            0 => {
                for e in &mut engines {
                    e.handle_timeout(now);
                }
            }
            1 => {
                let _ = engines[usize::from(op >> 7)]
                    .terminate(now, ["to-b", "to-a"][usize::from(op >> 7)]);
            }
            2 => {
                let _ = engines[usize::from(op >> 7)]
                    .check_liveness(now, ["to-b", "to-a"][usize::from(op >> 7)]);
            }
            _ if in_flight.is_empty() => {}
            kind => {
                let (to, mut t) = in_flight.remove(usize::from(op >> 3) % in_flight.len());
                match kind {
                    3 => continue,                        // dropped
                    4 => in_flight.push((to, t.clone())), // duplicated (delivered later too)
                    5 => {
                        let keep = usize::from(input.byte().unwrap_or(0)) % (t.payload.len() + 1);
                        t.payload.truncate(keep);
                    }
                    6 => {
                        let at = usize::from(input.u16()) % t.payload.len().max(1);
                        if let Some(octet) = t.payload.get_mut(at) {
                            *octet ^= input.byte().unwrap_or(1).max(1);
                        }
                    }
                    _ => {
                        // Fuzzer bytes behind the genuine header, so they reach the SA.
                        let n = usize::from(input.byte().unwrap_or(0));
                        t.payload.truncate(28);
                        t.payload.extend_from_slice(input.take(n));
                    }
                }
                engines[to].handle_datagram(now, t.remote, t.local, &t.payload);
            }
        }
        for e in &engines {
            let _ = e.status();
        }
    }
});

struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(first)
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte().unwrap_or(0), self.byte().unwrap_or(0)])
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }
}

fn connection(name: &str, local: IpAddr, remote: IpAddr, me: &str, peer: &str) -> EngineConnection {
    let (local_net, remote_net) = if name == "to-b" {
        ("10.1.0.0/16", "10.2.0.0/16")
    } else {
        ("10.2.0.0/16", "10.1.0.0/16")
    };
    let ts = |net: &str| vec![parse_traffic_selector(net).unwrap()];
    // Two proposals, one with PFS, so selection and the KE in IKE_AUTH's child paths run.
    let esp = vec![
        parse_esp("aes128gcm16-x25519", false).unwrap(),
        parse_esp("aes256-sha256", false).unwrap(),
    ];
    let mut child = ChildConfig::new("net", ts(local_net), ts(remote_net), esp);
    child.mark = Some(0x100);
    // x25519 keeps each execution cheap; the codec is the same for every group.
    let ike = vec![parse_ike("aes128gcm16-prfsha256-x25519", false).unwrap()];
    let mut config = IkeConfig::new(name, remote, ike, vec![child]);
    config.local_id = Some(Identity::Fqdn(me.into()));
    config.remote_id = Identity::Fqdn(peer.into());
    config.start_action = StartAction::Start;
    EngineConnection::with_psk(config, local, Secret::from_slice(b"fuzz-psk-0123456789abcdef"))
}
