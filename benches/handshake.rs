//! Engine-only handshake cost and memory: a responder engine serving N initiators (one
//! connection each, distinct addresses), fed in-process, no sockets or kernel. Prints the
//! responder's CPU time per IKE_SA_INIT + IKE_AUTH (with the first CHILD SA), the rate that
//! gives on one core, and the heap bytes each established IKE SA + CHILD SA keeps.
//!
//! `cargo bench --bench handshake` (ROUTEVPN_BENCH_SAS=N, default 1000). The comparison
//! with strongSwan's charon needs real processes and sockets: integration/bench-ike.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use routevpn::ike::crypto::Secret;
use routevpn::ike::engine::{
    ChildConfig, Engine, EngineConfig, EngineConnection, IkeConfig, IkeSaState,
};
use routevpn::profile::parse_traffic_selector;
use routevpn::proposal::{parse_esp, parse_ike};

/// Counts live heap bytes, so memory per SA is measured, not estimated.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const RESPONDER: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 2));

fn initiator_addr(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i + 1))
}

fn connection(
    name: String,
    local: IpAddr,
    remote: IpAddr,
    ike: &str,
    esp: &str,
    initiator: bool,
) -> EngineConnection {
    let (ours, theirs) = if initiator {
        ("10.1.0.0/16", "10.2.0.0/16")
    } else {
        ("10.2.0.0/16", "10.1.0.0/16")
    };
    let ts = |net: &str| vec![parse_traffic_selector(net).unwrap()];
    let esp = vec![parse_esp(esp, false).unwrap()];
    let child = ChildConfig::new("net", ts(ours), ts(theirs), esp);
    let mut config = IkeConfig::new(
        &name,
        remote,
        vec![parse_ike(ike, false).unwrap()],
        vec![child],
    );
    config.dpd.delay = Duration::ZERO;
    EngineConnection::with_psk(
        config,
        local,
        Secret::from_slice(b"bench-psk-0123456789abcdef"),
    )
}

struct Row {
    suite: String,
    sas: u32,
    responder_per_handshake: Duration,
    pair_per_handshake: Duration,
    bytes_per_sa: isize,
    challenged: u32,
}

fn run(ike: &str, esp: &str, n: u32) -> Row {
    let mut responder = Engine::new(EngineConfig::default());
    for i in 0..n {
        let peer = initiator_addr(i);
        responder.add_connection(connection(
            format!("peer-{i}"),
            RESPONDER,
            peer,
            ike,
            esp,
            false,
        ));
    }
    let live_before = LIVE.load(Ordering::Relaxed);
    let mut responder_time = Duration::ZERO;
    let mut challenged = 0;
    let start = Instant::now();
    for i in 0..n {
        let local = initiator_addr(i);
        let mut initiator = Engine::new(EngineConfig::default());
        initiator.add_connection(connection(
            "to-responder".into(),
            local,
            RESPONDER,
            ike,
            esp,
            true,
        ));
        let now = Instant::now();
        initiator.initiate(now, "to-responder").unwrap();
        // Two round trips, three when the responder asks for a cookie (under this load
        // its request-rate trigger engages, as it would for charon's half-open one).
        let mut cookies = 0;
        while let Some(request) = initiator.poll_transmit() {
            let t = Instant::now();
            responder.handle_datagram(now, request.remote, request.local, &request.payload);
            let response = responder.poll_transmit().expect("a response");
            while responder.poll_action().is_some() {}
            while responder.poll_event().is_some() {}
            responder_time += t.elapsed();
            cookies += usize::from(response.payload.len() < 80 && request.payload.len() > 200);
            initiator.handle_datagram(now, response.remote, response.local, &response.payload);
        }
        challenged += u32::from(cookies > 0);
    }
    let pair_time = start.elapsed();
    let live_after = LIVE.load(Ordering::Relaxed);
    let established = (responder.status().iter())
        .filter(|s| s.state == IkeSaState::Established && s.children.len() == 1)
        .count();
    assert_eq!(established, n as usize, "every handshake must complete");
    Row {
        suite: format!("{ike} / {esp}"),
        sas: n,
        responder_per_handshake: responder_time / n,
        pair_per_handshake: pair_time / n,
        bytes_per_sa: (live_after - live_before) / n as isize,
        challenged,
    }
}

fn main() {
    let n: u32 = std::env::var("ROUTEVPN_BENCH_SAS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let suites = [
        ("aes256-sha256-modp2048", "aes256-sha256"),
        ("aes128gcm16-prfsha256-ecp256", "aes128gcm16"),
        ("aes256gcm16-prfsha384-x25519", "aes256gcm16"),
    ];
    println!("| suite (IKE / ESP) | SAs | responder CPU per handshake | responder handshakes/s (1 core) | pair wall time per handshake | heap per IKE SA + CHILD SA | cookie round trips |");
    println!("|---|---|---|---|---|---|---|");
    for (ike, esp) in suites {
        let r = run(ike, esp, n);
        println!(
            "| {} | {} | {:.1} µs | {:.0} | {:.1} µs | {} B | {} |",
            r.suite,
            r.sas,
            r.responder_per_handshake.as_secs_f64() * 1e6,
            1.0 / r.responder_per_handshake.as_secs_f64(),
            r.pair_per_handshake.as_secs_f64() * 1e6,
            r.bytes_per_sa,
            r.challenged
        );
    }
}
