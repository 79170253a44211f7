//! The messages charon's vici plugin sends, field names and formats as charon writes them
//! (so `swanctl` prints them as it prints charon's), built from the engine's SAs and
//! connections and the kernel's SA counters. Fields routevpn has no value for are left
//! out, as charon leaves out what it does not know; none is made up.

use std::time::Instant;

use super::codec::Message;
use crate::apply::status::SaStatus;
use crate::ike::engine::{
    ChildSaStatus, DpdAction, EngineConnection, Event, IkeSaState, IkeSaStatus, LocalAuth, Mode,
    RemoteAuth, StartAction,
};
use crate::ike::select::{EspChoice, IkeChoice};
use crate::proposal::Encryption;

/// `success = yes`, or `no` with charon's `errmsg`.
pub fn outcome(result: Result<(), String>) -> Message {
    match result {
        Ok(()) => Message::new().kv("success", "yes"),
        Err(e) => Message::new().kv("success", "no").kv("errmsg", e),
    }
}

/// The answer to `version`.
pub fn version() -> Message {
    let (sysname, release, machine) = uname();
    Message::new()
        .kv("daemon", "routevpn")
        .kv("version", env!("CARGO_PKG_VERSION"))
        .kv("sysname", sysname)
        .kv("release", release)
        .kv("machine", machine)
}

fn uname() -> (String, String, String) {
    // SAFETY: uname fills the zeroed struct; its fields are NUL-terminated.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return Default::default();
    }
    let text = |field: &[libc::c_char]| {
        let bytes: Vec<u8> = field
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    (text(&u.sysname), text(&u.release), text(&u.machine))
}

/// What `stats` reports of the daemon: one loop thread, answering this request.
pub struct Stats {
    pub running_secs: u64,
    /// Start time as charon prints it (`Dec  4 11:00:00 2026`).
    pub since: String,
    /// Requests and datagrams waiting for the daemon's loop.
    pub queued: usize,
}

pub fn stats(daemon: &Stats, sas: &[IkeSaStatus]) -> Message {
    let half_open = (sas.iter())
        .filter(|s| matches!(s.state, IkeSaState::Connecting | IkeSaState::Authenticating))
        .count();
    let active = Message::new()
        .kv("critical", 0)
        .kv("high", 0)
        .kv("medium", 1)
        .kv("low", 0);
    let queues = Message::new()
        .kv("critical", 0)
        .kv("high", 0)
        .kv("medium", daemon.queued)
        .kv("low", 0);
    Message::new()
        .section(
            "uptime",
            Message::new()
                .kv("running", time_delta(daemon.running_secs))
                .kv("since", &daemon.since),
        )
        .section(
            "workers",
            Message::new()
                .kv("total", 1)
                .kv("idle", 0)
                .section("active", active),
        )
        .section("queues", queues)
        .section(
            "ikesas",
            Message::new()
                .kv("total", sas.len())
                .kv("half-open", half_open),
        )
        .list("plugins", Vec::<String>::new())
}

/// A duration as charon's `%V` prints it.
fn time_delta(secs: u64) -> String {
    let (value, unit) = match secs {
        s if s > 2 * 86_400 => (s / 86_400, "day"),
        s if s > 2 * 3600 => (s / 3600, "hour"),
        s if s > 2 * 60 => (s / 60, "minute"),
        s => (s, "second"),
    };
    format!("{value} {unit}{}", if value == 1 { "" } else { "s" })
}

fn state_name(state: IkeSaState) -> &'static str {
    match state {
        // charon has one state for both exchanges before the IKE SA is up.
        IkeSaState::Connecting | IkeSaState::Authenticating => "CONNECTING",
        IkeSaState::Established => "ESTABLISHED",
        IkeSaState::Deleting => "DELETING",
    }
}

/// Which SAs a `list-sas` or `terminate` names (charon's `ike`, `ike-id`, `child`,
/// `child-id`).
#[derive(Debug, Default)]
pub struct Filter {
    pub ike: Option<String>,
    pub ike_id: Option<u32>,
    pub child: Option<String>,
    pub child_id: Option<u32>,
}

impl Filter {
    /// Reads the filter keys; a number that is not one is an error, not "all".
    pub fn from_request(request: &Message) -> Result<Filter, String> {
        let number = |key: &str| -> Result<Option<u32>, String> {
            request
                .str(key)
                .map(|v| {
                    v.parse()
                        .map_err(|_| format!("{key} is not a number: {v:?}"))
                })
                .transpose()
        };
        Ok(Filter {
            ike: request.str("ike").map(str::to_owned),
            ike_id: number("ike-id")?.filter(|&id| id != 0),
            child: request.str("child").map(str::to_owned),
            child_id: number("child-id")?.filter(|&id| id != 0),
        })
    }

    pub fn ike_matches(&self, sa: &IkeSaStatus) -> bool {
        self.ike.as_ref().is_none_or(|n| *n == sa.name)
            && self.ike_id.is_none_or(|id| id == sa.unique_id)
    }

    pub fn child_matches(&self, child: &ChildSaStatus) -> bool {
        self.child.as_ref().is_none_or(|n| *n == child.name)
            && self.child_id.is_none_or(|id| id == child.unique_id)
    }
}

/// One `list-sa` event per IKE SA the filter selects.
pub fn list_sas(
    sas: &[IkeSaStatus],
    connections: &[&EngineConnection],
    kernel: &[SaStatus],
    filter: &Filter,
    now: Instant,
) -> Vec<Message> {
    sas.iter()
        .filter(|sa| filter.ike_matches(sa))
        .map(|sa| {
            let connection = connections.iter().find(|c| c.name() == sa.name);
            let mut children = Message::new();
            for c in sa.children.iter().filter(|c| filter.child_matches(c)) {
                let name = format!("{}-{}", c.name, c.unique_id);
                children = children.section(&name, child_sa(sa, c, kernel, now));
            }
            Message::new().section(
                &sa.name,
                ike_sa(sa, connection.copied(), now).section("child-sas", children),
            )
        })
        .collect()
}

/// The events charon raises for an engine event, in charon's shapes: `ike-updown`,
/// `child-updown`, `ike-rekey`, `child-rekey`. An SA the engine no longer holds (deleted,
/// or replaced by a rekey) is described only by what the event names.
pub fn sa_events(
    event: &Event,
    sas: &[IkeSaStatus],
    connections: &[&EngineConnection],
    kernel: &[SaStatus],
    now: Instant,
) -> Vec<(String, Message)> {
    let connection = |name: &str| connections.iter().find(|c| c.name() == name).copied();
    let up = Message::new().kv("up", "yes");
    let with_child = |spi_in: u32| {
        sas.iter().find_map(|sa| {
            let child = sa.children.iter().find(|c| c.spi_in == spi_in)?;
            Some((sa, child))
        })
    };
    let event_message = match event {
        Event::Established { name, .. } => sas
            .iter()
            .filter(|sa| sa.name == *name && sa.state == IkeSaState::Established)
            .max_by_key(|sa| sa.established_at)
            .map(|sa| {
                let ike = ike_sa(sa, connection(name), now);
                ("ike-updown", up.section(name, ike))
            }),
        Event::Deleted { name, .. } => {
            Some(("ike-updown", Message::new().section(name, Message::new())))
        }
        Event::ChildInstalled { name, spi_in, .. } => with_child(*spi_in).map(|(sa, c)| {
            let child = child_sa(sa, c, kernel, now);
            let children = Message::new().section(&format!("{}-{}", c.name, c.unique_id), child);
            let ike = ike_sa(sa, connection(name), now).section("child-sas", children);
            ("child-updown", up.section(name, ike))
        }),
        Event::ChildRekeyed {
            name,
            old_spi_in,
            spi_in,
            ..
        } => with_child(*spi_in).map(|(sa, c)| {
            let old = match with_child(*old_spi_in) {
                Some((old_sa, old)) => child_sa(old_sa, old, kernel, now),
                None => Message::new().kv("spi-in", format_args!("{old_spi_in:08x}")),
            };
            let pair = Message::new()
                .section("old", old)
                .section("new", child_sa(sa, c, kernel, now));
            let children = Message::new().section(&c.name, pair);
            let ike = ike_sa(sa, connection(name), now).section("child-sas", children);
            ("child-rekey", Message::new().section(name, ike))
        }),
        Event::IkeRekeyed { name, old, new } => sas
            .iter()
            .find(|sa| (sa.spi_i, sa.spi_r) == *new)
            .map(|sa| {
                let old = Message::new()
                    .kv("initiator-spi", format_args!("{:016x}", old.0))
                    .kv("responder-spi", format_args!("{:016x}", old.1));
                let pair = Message::new()
                    .section("old", old)
                    .section("new", ike_sa(sa, connection(name), now));
                ("ike-rekey", Message::new().section(name, pair))
            }),
        _ => None,
    };
    event_message
        .into_iter()
        .map(|(name, message)| (name.to_owned(), message))
        .collect()
}

fn seconds_until(at: Option<Instant>, now: Instant) -> Option<u64> {
    at.map(|t| t.saturating_duration_since(now).as_secs())
}

fn ike_sa(sa: &IkeSaStatus, connection: Option<&EngineConnection>, now: Instant) -> Message {
    let mut m = Message::new()
        .kv("uniqueid", sa.unique_id)
        .kv("version", 2)
        .kv("state", state_name(sa.state))
        .kv("local-host", sa.local.ip())
        .kv("local-port", sa.local.port());
    if let Some(c) = connection {
        m = m.kv("local-id", c.local_identity());
    }
    m = m
        .kv("remote-host", sa.remote.ip())
        .kv("remote-port", sa.remote.port());
    if let Some(c) = connection {
        m = m.kv("remote-id", c.remote_identity());
    }
    if sa.initiator {
        m = m.kv("initiator", "yes");
    }
    m = m
        .kv("initiator-spi", format_args!("{:016x}", sa.spi_i))
        .kv("responder-spi", format_args!("{:016x}", sa.spi_r));
    if sa.local_behind_nat {
        m = m.kv("nat-local", "yes");
    }
    if sa.remote_behind_nat {
        m = m.kv("nat-remote", "yes");
    }
    if sa.local_behind_nat || sa.remote_behind_nat {
        m = m.kv("nat-any", "yes");
    }
    if let Some(choice) = &sa.choice {
        m = ike_algorithms(m, choice);
    }
    if let Some(at) = sa.established_at {
        m = m.kv("established", now.saturating_duration_since(at).as_secs());
    }
    if let Some(secs) = seconds_until(sa.rekey_at, now) {
        m = m.kv("rekey-time", secs);
    }
    m
}

fn encryption(m: Message, e: Encryption) -> Message {
    match e {
        Encryption::AesCbc(bits) => m.kv("encr-alg", "AES_CBC").kv("encr-keysize", bits),
        Encryption::AesCtr(bits) => m.kv("encr-alg", "AES_CTR").kv("encr-keysize", bits),
        Encryption::AesGcm8(bits) => m.kv("encr-alg", "AES_GCM_8").kv("encr-keysize", bits),
        Encryption::AesGcm12(bits) => m.kv("encr-alg", "AES_GCM_12").kv("encr-keysize", bits),
        Encryption::AesGcm16(bits) => m.kv("encr-alg", "AES_GCM_16").kv("encr-keysize", bits),
        Encryption::AesCcm8(bits) => m.kv("encr-alg", "AES_CCM_8").kv("encr-keysize", bits),
        Encryption::AesCcm12(bits) => m.kv("encr-alg", "AES_CCM_12").kv("encr-keysize", bits),
        Encryption::AesCcm16(bits) => m.kv("encr-alg", "AES_CCM_16").kv("encr-keysize", bits),
        // charon gives no key size where the proposal has none (RFC 7634: always 256).
        Encryption::ChaCha20Poly1305 => m.kv("encr-alg", "CHACHA20_POLY1305"),
    }
}

fn ike_algorithms(mut m: Message, choice: &IkeChoice) -> Message {
    m = encryption(m, choice.encryption);
    if let Some(integrity) = choice.integrity {
        m = m.kv("integ-alg", integrity);
    }
    m.kv("prf-alg", choice.prf).kv("dh-group", choice.dh)
}

fn esp_algorithms(mut m: Message, choice: &EspChoice) -> Message {
    m = encryption(m, choice.encryption);
    if let Some(integrity) = choice.integrity {
        m = m.kv("integ-alg", integrity);
    }
    if let Some(dh) = choice.dh {
        m = m.kv("dh-group", dh);
    }
    if choice.esn {
        m = m.kv("esn", 1);
    }
    m
}

fn child_sa(sa: &IkeSaStatus, c: &ChildSaStatus, kernel: &[SaStatus], now: Instant) -> Message {
    let counters =
        |spi: u32, dst: std::net::IpAddr| kernel.iter().find(|k| k.spi == spi && k.dst == dst);
    let inbound = counters(c.spi_in, sa.local.ip());
    let outbound = counters(c.spi_out, sa.remote.ip());
    let state = match (inbound, outbound) {
        (Some(_), Some(_)) => "INSTALLED",
        // A rekey's responder holds its new outbound SA back until the old pair is gone.
        (Some(_), None) => "INSTALLING",
        // Not in the kernel although negotiated: `routevpn status` says the same.
        _ => "MISSING",
    };
    let mut m = Message::new()
        .kv("name", &c.name)
        .kv("uniqueid", c.unique_id)
        .kv("reqid", c.reqid)
        .kv("state", state)
        .kv(
            "mode",
            match c.mode {
                Mode::Tunnel => "TUNNEL",
                Mode::Transport => "TRANSPORT",
            },
        )
        .kv("protocol", "ESP");
    if sa.local.port() != 500 || sa.remote.port() != 500 {
        m = m.kv("encap", "yes");
    }
    m = m
        .kv("spi-in", format_args!("{:08x}", c.spi_in))
        .kv("spi-out", format_args!("{:08x}", c.spi_out));
    if let Some(mark) = c.mark {
        m = m
            .kv("mark-in", format_args!("{mark:08x}"))
            .kv("mark-mask-in", "ffffffff")
            .kv("mark-out", format_args!("{mark:08x}"))
            .kv("mark-mask-out", "ffffffff");
    }
    if let Some(if_id) = c.if_id {
        m = m
            .kv("if-id-in", format_args!("{if_id:08x}"))
            .kv("if-id-out", format_args!("{if_id:08x}"));
    }
    m = esp_algorithms(m, &c.choice);
    let (bytes_in, packets_in) = inbound.map_or((0, 0), |k| (k.bytes, k.packets));
    let (bytes_out, packets_out) = outbound.map_or((0, 0), |k| (k.bytes, k.packets));
    m = m
        .kv("bytes-in", bytes_in)
        .kv("packets-in", packets_in)
        .kv("bytes-out", bytes_out)
        .kv("packets-out", packets_out);
    if let Some(secs) = seconds_until(c.rekey_at, now) {
        m = m.kv("rekey-time", secs);
    }
    if let Some(secs) = seconds_until(c.expire_at, now) {
        m = m.kv("life-time", secs);
    }
    if let Some(k) = inbound {
        m = m.kv("install-time", k.age);
    }
    m.list("local-ts", &c.local_ts)
        .list("remote-ts", &c.remote_ts)
}

/// One `list-conn` event per connection (`ike` selects one).
/// `ike_port` is the engine's own IKE port.
pub fn list_conns(
    connections: &[&EngineConnection],
    ike: Option<&str>,
    ike_port: u16,
) -> Vec<Message> {
    (connections.iter())
        .filter(|c| ike.is_none_or(|n| n == c.name()))
        .map(|c| Message::new().section(c.name(), connection(c, ike_port)))
        .collect()
}

/// charon's `action_names`.
fn action_name(action: StartAction) -> &'static str {
    match action {
        StartAction::None => "none",
        StartAction::Trap => "trap",
        StartAction::Start => "start",
    }
}

fn auth_class(psk: bool) -> &'static str {
    if psk {
        "pre-shared key"
    } else {
        "public key"
    }
}

fn connection(c: &EngineConnection, ike_port: u16) -> Message {
    let config = &c.config;
    let mut m = Message::new()
        .list("local_addrs", [c.local_addr])
        .list("remote_addrs", [config.remote])
        .kv("local_port", ike_port)
        .kv("remote_port", config.remote_port)
        .kv("version", "IKEv2")
        .kv("reauth_time", 0)
        .kv("rekey_time", config.rekey_time);
    if !config.dpd.delay.is_zero() {
        m = m.kv("dpd_delay", config.dpd.delay.as_secs());
    }
    if !config.dpd.timeout.is_zero() {
        m = m.kv("dpd_timeout", config.dpd.timeout.as_secs());
    }
    let local_psk = matches!(c.local_auth, LocalAuth::Psk(_));
    let remote_psk = matches!(c.remote_auth, RemoteAuth::Psk(_));
    m = m
        .section(
            "local-1",
            Message::new()
                .kv("class", auth_class(local_psk))
                .kv("id", c.local_identity()),
        )
        .section(
            "remote-1",
            Message::new()
                .kv("class", auth_class(remote_psk))
                .kv("id", c.remote_identity()),
        );
    let dpd_action = match config.dpd.action {
        DpdAction::Clear => "none",
        DpdAction::Trap => "trap",
        DpdAction::Restart => "start",
    };
    let mut children = Message::new();
    for child in &config.children {
        let mode = match child.mode {
            Mode::Tunnel => "TUNNEL",
            Mode::Transport => "TRANSPORT",
        };
        let child_message = Message::new()
            .kv("mode", mode)
            .kv("rekey_time", child.rekey_time)
            .kv("rekey_bytes", child.rekey_bytes)
            .kv("rekey_packets", child.rekey_packets)
            .kv("dpd_action", dpd_action)
            .kv("close_action", action_name(config.close_action))
            .list("local-ts", &child.local_ts)
            .list("remote-ts", &child.remote_ts);
        children = children.section(&child.name, child_message);
    }
    m.section("children", children)
}

#[cfg(test)]
#[path = "messages_tests.rs"]
mod tests;
