//! IKEv2 load generator for the handshake benchmark (integration/bench-ike): many
//! initiators, one per source address, each running routevpn's engine over a real UDP
//! socket against one responder (a routevpn daemon or a strongSwan charon), `concurrency`
//! of them in flight at once. Prints one JSON line: handshakes completed, failed, seconds.
//!
//! The source addresses must exist on an interface (the benchmark adds them). No kernel
//! state is installed: the load side only negotiates.
//!
//! With `--flood RATE`, it is instead an IKE_SA_INIT flood such as spoofed sources make:
//! each source's first request is sent again and again, RATE datagrams per second for
//! `--timeout` seconds, and answers are counted but never followed up.
//!
//! ike_load --responder ADDR --sources CIDR --count N [--concurrency C] [--ike P]
//!          [--esp P] [--psk-file F] [--timeout SECS] [--flood RATE]

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use routevpn::ike::crypto::Secret;
use routevpn::ike::engine::{
    ChildConfig, Engine, EngineConfig, EngineConnection, Event, IkeConfig,
};
use routevpn::profile::parse_traffic_selector;
use routevpn::proposal::{parse_esp, parse_ike};

struct Args {
    responder: IpAddr,
    sources: IpNet,
    count: usize,
    concurrency: usize,
    ike: String,
    esp: String,
    psk: Secret,
    timeout: Duration,
    flood: Option<u32>,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let get = |name: &str, map: &mut std::collections::HashMap<String, String>| map.remove(name);
    let mut map = std::collections::HashMap::new();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        map.insert(flag, value);
    }
    let need = |v: Option<String>, what: &str| v.ok_or(format!("missing {what}"));
    let responder = need(get("--responder", &mut map), "--responder")?;
    let sources = need(get("--sources", &mut map), "--sources")?;
    let count = need(get("--count", &mut map), "--count")?;
    let psk = match get("--psk-file", &mut map) {
        Some(path) => std::fs::read(&path).map_err(|e| format!("{path}: {e}"))?,
        None => b"bench-psk-0123456789abcdef".to_vec(),
    };
    let args = Args {
        responder: responder.parse().map_err(|e| format!("--responder: {e}"))?,
        sources: sources.parse().map_err(|e| format!("--sources: {e}"))?,
        count: count.parse().map_err(|e| format!("--count: {e}"))?,
        concurrency: get("--concurrency", &mut map)
            .map_or(Ok(32), |v| v.parse())
            .map_err(|e| format!("--concurrency: {e}"))?,
        ike: get("--ike", &mut map).unwrap_or_else(|| "aes256gcm16-prfsha384-x25519".into()),
        esp: get("--esp", &mut map).unwrap_or_else(|| "aes256gcm16".into()),
        psk: Secret::new(psk.trim_ascii_end().to_vec()),
        timeout: Duration::from_secs(
            get("--timeout", &mut map)
                .map_or(Ok(60), |v| v.parse())
                .map_err(|e| format!("--timeout: {e}"))?,
        ),
        flood: get("--flood", &mut map)
            .map(|v| v.parse())
            .transpose()
            .map_err(|e| format!("--flood: {e}"))?,
    };
    if let Some(unknown) = map.keys().next() {
        return Err(format!("unknown option {unknown}"));
    }
    Ok(args)
}

fn connection(args: &Args, local: IpAddr) -> Result<EngineConnection, String> {
    let ts = |t: &str| parse_traffic_selector(t);
    let esp = vec![parse_esp(&args.esp, true).map_err(|e| e.message)?];
    let child = ChildConfig::new("load", vec![ts("dynamic")?], vec![ts("dynamic")?], esp);
    let ike = vec![parse_ike(&args.ike, true).map_err(|e| e.message)?];
    let mut config = IkeConfig::new("load", args.responder, ike, vec![child]);
    config.dpd.delay = Duration::ZERO;
    Ok(EngineConnection::with_psk(config, local, args.psk.clone()))
}

/// One initiator in flight.
struct Flight {
    engine: Engine,
    socket: UdpSocket,
}

enum Outcome {
    Pending,
    Done,
    Failed(String),
}

impl Flight {
    /// Bound and initiated, its IKE_SA_INIT not sent yet.
    fn prepare(args: &Args, source: IpAddr, now: Instant) -> Result<Flight, String> {
        let socket = UdpSocket::bind(SocketAddr::new(source, 500))
            .map_err(|e| format!("bind {source}:500: {e}"))?;
        socket.set_nonblocking(true).map_err(|e| e.to_string())?;
        let mut engine = Engine::new(EngineConfig::default());
        engine.add_connection(connection(args, source)?);
        engine.initiate(now, "load").map_err(|e| e.to_string())?;
        Ok(Flight { engine, socket })
    }

    fn start(args: &Args, source: IpAddr, now: Instant) -> Result<Flight, String> {
        let mut flight = Flight::prepare(args, source, now)?;
        flight.flush();
        Ok(flight)
    }

    fn flush(&mut self) {
        while let Some(t) = self.engine.poll_transmit() {
            let _ = self.socket.send_to(&t.payload, t.remote);
        }
        while self.engine.poll_action().is_some() {}
    }

    fn receive(&mut self, now: Instant) {
        let mut buf = [0u8; 65536];
        while let Ok((n, from)) = self.socket.recv_from(&mut buf) {
            let local = self.socket.local_addr().expect("bound");
            if let Some(datagram) = buf.get(..n) {
                self.engine.handle_datagram(now, local, from, datagram);
            }
        }
        self.flush();
    }

    fn outcome(&mut self) -> Outcome {
        let mut outcome = Outcome::Pending;
        while let Some(event) = self.engine.poll_event() {
            match event {
                Event::ChildInstalled { .. } => outcome = Outcome::Done,
                Event::Failed { reason, .. } => outcome = Outcome::Failed(reason.to_string()),
                _ => {}
            }
        }
        outcome
    }
}

/// Sends each source's first IKE_SA_INIT over and over at `rate` datagrams per second.
fn flood(args: &Args, rate: u32) -> Result<(), String> {
    let now = Instant::now();
    let mut flights = (args.sources.hosts().take(args.count))
        .map(|source| {
            let mut f = Flight::prepare(args, source, now)?;
            let first = f.engine.poll_transmit().ok_or("no IKE_SA_INIT to send")?;
            Ok((f, first.payload, first.remote))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let (mut sent, mut answers) = (0u64, 0u64);
    let start = Instant::now();
    let mut buf = [0u8; 2048];
    'send: while start.elapsed() < args.timeout {
        for (f, datagram, to) in &mut flights {
            if f.socket.send_to(datagram, *to).is_ok() {
                sent += 1;
            }
            while f.socket.recv_from(&mut buf).is_ok() {
                answers += 1;
            }
            // Paced by the clock, so a slow machine sends fewer, not later, datagrams.
            let due = start + interval * u32::try_from(sent).unwrap_or(u32::MAX);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            if start.elapsed() >= args.timeout {
                break 'send;
            }
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{{\"flood_sent\":{sent},\"sources\":{},\"seconds\":{seconds:.3},\"rate\":{:.1},\"answers\":{answers}}}",
        flights.len(),
        sent as f64 / seconds
    );
    Ok(())
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ike_load: {e}");
            std::process::exit(2);
        }
    };
    if let Some(rate) = args.flood {
        if let Err(e) = flood(&args, rate) {
            eprintln!("ike_load: {e}");
            std::process::exit(1);
        }
        return;
    }
    let mut sources = args.sources.hosts().take(args.count);
    let mut flights: Vec<Flight> = Vec::new();
    let (mut done, mut failed) = (0usize, 0usize);
    let mut first_error: Option<String> = None;
    let start = Instant::now();
    let deadline = start + args.timeout;
    loop {
        let now = Instant::now();
        while flights.len() < args.concurrency {
            let Some(source) = sources.next() else { break };
            match Flight::start(&args, source, now) {
                Ok(f) => flights.push(f),
                Err(e) => {
                    failed += 1;
                    first_error.get_or_insert(e);
                }
            }
        }
        if flights.is_empty() || now >= deadline {
            break;
        }
        // Sleep in poll(2) until a socket is readable or an engine timer is due.
        let next = flights.iter().filter_map(|f| f.engine.next_timeout()).min();
        let wait = next.map_or(Duration::from_millis(100), |t| {
            t.saturating_duration_since(now)
        });
        let mut fds: Vec<libc::pollfd> = (flights.iter())
            .map(|f| libc::pollfd {
                fd: f.socket.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let timeout_ms = i32::try_from(wait.as_millis().min(1000)).unwrap_or(1000);
        // SAFETY: fds is a valid array of pollfd of the length passed.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
        let now = Instant::now();
        let mut index = 0;
        flights.retain_mut(|f| {
            let readable = fds.get(index).is_some_and(|p| p.revents != 0);
            index += 1;
            if readable {
                f.receive(now);
            }
            f.engine.handle_timeout(now);
            f.flush();
            match f.outcome() {
                Outcome::Pending => true,
                Outcome::Done => {
                    done += 1;
                    false
                }
                Outcome::Failed(reason) => {
                    failed += 1;
                    first_error.get_or_insert(reason);
                    false
                }
            }
        });
    }
    let seconds = start.elapsed().as_secs_f64();
    let unfinished = flights.len();
    println!(
        "{{\"done\":{done},\"failed\":{failed},\"unfinished\":{unfinished},\"seconds\":{seconds:.3},\"rate\":{:.1},\"first_error\":{}}}",
        done as f64 / seconds,
        first_error.map_or("null".into(), |e| format!("{e:?}"))
    );
}
