//! The daemon's log at its most verbose (trace: every datagram, every kernel action whole,
//! every event) over a full exchange, rekeys included: neither the PSK nor any key the
//! exchange derived appears in it, in any spelling `Debug` could give it.

mod common;

use std::sync::{Arc, Mutex};

use common::peers::{addr, connection, dpd, engine, Pair, A, B, TO_B};
use routevpn::daemon::ike_log;
use routevpn::daemon::logging::{self, Sink};
use routevpn::ike::engine::{DpdAction, EngineConfig, KernelAction, StartAction};

const PSK: &[u8] = b"peers-test-psk-0123456789";

fn spellings(bytes: &[u8]) -> Vec<String> {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    vec![
        hex.clone(),
        hex.to_uppercase(),
        format!("{bytes:?}"),
        String::from_utf8_lossy(bytes).into_owned(),
    ]
}

#[test]
fn trace_logs_of_a_full_exchange_hold_no_psk_and_no_key() {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    logging::init("trace".parse().unwrap(), Sink::Memory(Arc::clone(&buffer))).unwrap();
    let side = |a| {
        connection(
            a,
            dpd(0, 150, DpdAction::Clear),
            StartAction::None,
            StartAction::None,
        )
    };
    let mut p = Pair::new(
        engine(EngineConfig::default(), side(true)),
        engine(EngineConfig::default(), side(false)),
    );
    p.engines[0].initiate(p.now, TO_B).unwrap();
    p.settle();
    p.engines[0].rekey_children(p.now, TO_B).unwrap();
    p.settle();
    p.engines[0].rekey_ike(p.now, TO_B).unwrap();
    p.settle();
    assert_eq!((p.children(0), p.children(1)), (1, 1), "tunnel up");

    // What the daemon logs of each side's output (what one side sent, the other received).
    let (a, b) = (addr(A, 500), addr(B, 500));
    let mut keys = Vec::new();
    for (side, (local, remote)) in [(a, b), (b, a)].into_iter().enumerate() {
        let record = &p.records[side];
        for (_, bytes) in &record.sent {
            ike_log::received(remote, local, bytes);
        }
        for (_, action) in &record.actions {
            ike_log::action(action);
            if let KernelAction::InstallChildSa(install) = action {
                for direction in [&install.inbound, &install.outbound] {
                    keys.push(direction.encryption_key.expose().to_vec());
                }
            }
        }
        for (_, event) in &record.events {
            ike_log::event(event);
        }
    }
    let log = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
    // The log is not empty: the exchange, the installs and the events are in it.
    for expected in [
        "IkeAuth request",
        "InstallChildSa",
        "encryption_key",
        "IKE SA established",
        "CHILD SA rekeyed",
    ] {
        assert!(
            log.contains(expected),
            "{expected:?} not in the log:\n{log}"
        );
    }
    assert!(keys.len() >= 8, "{} keys", keys.len());
    for secret in std::iter::once(PSK.to_vec()).chain(keys) {
        assert!(secret.len() >= 16);
        for spelling in spellings(&secret) {
            assert!(
                !log.contains(&spelling),
                "a secret in the log as {spelling:?}"
            );
        }
    }
}
