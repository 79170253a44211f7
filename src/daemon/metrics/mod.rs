//! Prometheus metrics of the daemon: what the loop records as things happen ([`Recorder`]:
//! failures, rekeys, cookies, applies) joined at scrape time with the IKE and CHILD SAs and
//! their kernel counters (the same join as `status`), rendered in the text format. Labels
//! carry tunnel and child names, states and failure kinds only: never a key, an identity
//! or a message text.

pub mod exposition;
pub mod server;
#[cfg(test)]
mod strict_parser;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use super::control::{IkeSaReport, TunnelFailure};
use crate::ike::engine::{DpdCounters, Event};
use exposition::{Exposition, Kind};

/// Upper bounds of the apply duration buckets, in seconds.
const APPLY_BUCKETS: [f64; 9] = [0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0];

const IKE_STATES: [&str; 4] = ["CONNECTING", "AUTHENTICATING", "ESTABLISHED", "DELETING"];
const CHILD_STATES: [&str; 2] = ["INSTALLED", "MISSING"];

#[derive(Debug, Default)]
struct Histogram {
    /// Observations per bucket of [`APPLY_BUCKETS`] (not cumulative), then above them.
    counts: [u64; APPLY_BUCKETS.len() + 1],
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, value: f64) {
        let bucket = (APPLY_BUCKETS.iter())
            .position(|bound| value <= *bound)
            .unwrap_or(APPLY_BUCKETS.len());
        self.counts[bucket] += 1;
        self.sum += value;
    }
}

/// What the daemon's loop records as it happens.
#[derive(Debug, Default)]
pub struct Recorder {
    failures: BTreeMap<(String, &'static str), u64>,
    ike_rekeyed: BTreeMap<String, SystemTime>,
    child_rekeyed: BTreeMap<(String, String), SystemTime>,
    cookies_engaged: bool,
    applies: Histogram,
    changes: u64,
}

impl Recorder {
    pub fn event(&mut self, event: &Event, now: SystemTime) {
        match event {
            Event::Failed { name, reason } => {
                *self
                    .failures
                    .entry((name.clone(), reason.kind()))
                    .or_default() += 1;
            }
            Event::IkeRekeyed { name, .. } => {
                self.ike_rekeyed.insert(name.clone(), now);
            }
            Event::ChildRekeyed { name, child, .. } => {
                self.child_rekeyed
                    .insert((name.clone(), child.clone()), now);
            }
            Event::CookiesRequired { engaged, .. } => self.cookies_engaged = *engaged,
            _ => {}
        }
    }

    /// One apply of the dataplane: how long it took and how many kernel objects it wrote.
    pub fn applied(&mut self, took: Duration, changes: u64) {
        self.applies.observe(took.as_secs_f64());
        self.changes += changes;
    }
}

/// The daemon's state at scrape time.
pub struct Snapshot<'a> {
    /// Every tunnel of the profiles.
    pub tunnels: &'a [String],
    /// The tunnels negotiated by IKE (their SA states are shown even without an SA).
    pub ike_tunnels: &'a [String],
    pub sas: &'a [IkeSaReport],
    pub dpd: &'a BTreeMap<String, DpdCounters>,
    pub failing: &'a [TunnelFailure],
    pub now: SystemTime,
}

fn unix_seconds(at: SystemTime) -> f64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Each family's samples, by label set, summed where several SAs share one (an SA and
/// its successor during a rekey).
#[derive(Default)]
struct Family(BTreeMap<Vec<String>, f64>);

impl Family {
    fn add(&mut self, labels: &[&str], value: f64) {
        let key = labels.iter().map(|l| l.to_string()).collect();
        *self.0.entry(key).or_default() += value;
    }

    fn max(&mut self, labels: &[&str], value: f64) {
        let key = labels.iter().map(|l| l.to_string()).collect();
        let slot = self.0.entry(key).or_insert(value);
        *slot = slot.max(value);
    }

    fn write(&self, out: &mut Exposition, name: &str, label_names: &[&str]) {
        for (values, value) in &self.0 {
            let labels: Vec<(&str, &str)> = (label_names.iter().copied())
                .zip(values.iter().map(String::as_str))
                .collect();
            out.sample(name, &labels, *value);
        }
    }
}

pub fn render(recorder: &Recorder, snapshot: &Snapshot<'_>) -> String {
    let mut out = Exposition::default();
    out.family(
        "routevpn_build_info",
        Kind::Gauge,
        "The routevpn version that runs (always 1).",
    );
    out.sample(
        "routevpn_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1.0,
    );
    out.family(
        "routevpn_tunnels",
        Kind::Gauge,
        "Tunnels defined by the profiles.",
    );
    out.sample("routevpn_tunnels", &[], snapshot.tunnels.len() as f64);
    out.family(
        "routevpn_dataplane_failing_tunnels",
        Kind::Gauge,
        "Tunnels whose dataplane the kernel refused, waiting for their retry.",
    );
    out.sample(
        "routevpn_dataplane_failing_tunnels",
        &[],
        snapshot.failing.len() as f64,
    );
    render_sas(&mut out, recorder, snapshot);
    render_engine(&mut out, recorder, snapshot);
    render_applies(&mut out, recorder);
    out.into_text()
}

fn render_sas(out: &mut Exposition, recorder: &Recorder, snapshot: &Snapshot<'_>) {
    let mut ike_states = Family::default();
    let mut established = Family::default();
    let mut child_states = Family::default();
    let mut bytes = Family::default();
    let mut packets = Family::default();
    let ike_tunnels: BTreeSet<&str> = (snapshot.ike_tunnels.iter().map(String::as_str))
        .chain(snapshot.sas.iter().map(|sa| sa.name.as_str()))
        .collect();
    for tunnel in &ike_tunnels {
        for state in IKE_STATES {
            ike_states.add(&[tunnel, state], 0.0);
        }
    }
    for sa in snapshot.sas {
        ike_states.add(&[&sa.name, &sa.state], 1.0);
        if let Some(secs) = sa.established_secs {
            let at = snapshot.now.checked_sub(Duration::from_secs(secs));
            established.max(&[&sa.name], at.map_or(0.0, unix_seconds));
        }
        for c in &sa.children {
            for state in CHILD_STATES {
                child_states.add(&[&sa.name, &c.name, state], 0.0);
            }
            child_states.add(&[&sa.name, &c.name, &c.state], 1.0);
            for (direction, b, p) in [
                ("in", c.bytes_in, c.packets_in),
                ("out", c.bytes_out, c.packets_out),
            ] {
                bytes.add(&[&sa.name, &c.name, direction], b as f64);
                packets.add(&[&sa.name, &c.name, direction], p as f64);
            }
        }
    }
    out.family(
        "routevpn_ike_sas",
        Kind::Gauge,
        "IKE SAs of each tunnel by state.",
    );
    ike_states.write(out, "routevpn_ike_sas", &["tunnel", "state"]);
    out.family(
        "routevpn_ike_sa_established_timestamp_seconds",
        Kind::Gauge,
        "When the tunnel's current IKE SA was established (Unix time).",
    );
    established.write(
        out,
        "routevpn_ike_sa_established_timestamp_seconds",
        &["tunnel"],
    );
    out.family(
        "routevpn_ike_sa_last_rekey_timestamp_seconds",
        Kind::Gauge,
        "When the tunnel's IKE SA was last rekeyed (Unix time).",
    );
    for (tunnel, at) in &recorder.ike_rekeyed {
        out.sample(
            "routevpn_ike_sa_last_rekey_timestamp_seconds",
            &[("tunnel", tunnel)],
            unix_seconds(*at),
        );
    }
    out.family(
        "routevpn_child_sas",
        Kind::Gauge,
        "CHILD SAs by state (INSTALLED: its SAs are in the kernel).",
    );
    child_states.write(out, "routevpn_child_sas", &["tunnel", "child", "state"]);
    out.family(
        "routevpn_child_sa_last_rekey_timestamp_seconds",
        Kind::Gauge,
        "When the CHILD SA was last rekeyed (Unix time).",
    );
    for ((tunnel, child), at) in &recorder.child_rekeyed {
        out.sample(
            "routevpn_child_sa_last_rekey_timestamp_seconds",
            &[("tunnel", tunnel), ("child", child)],
            unix_seconds(*at),
        );
    }
    let labels = ["tunnel", "child", "direction"];
    out.family(
        "routevpn_child_sa_bytes_total",
        Kind::Counter,
        "Bytes through the CHILD SA's kernel SAs (reset when it is rekeyed).",
    );
    bytes.write(out, "routevpn_child_sa_bytes_total", &labels);
    out.family(
        "routevpn_child_sa_packets_total",
        Kind::Counter,
        "Packets through the CHILD SA's kernel SAs (reset when it is rekeyed).",
    );
    packets.write(out, "routevpn_child_sa_packets_total", &labels);
}

/// One counter of [`DpdCounters`].
type Count = fn(&DpdCounters) -> u64;

fn render_engine(out: &mut Exposition, recorder: &Recorder, snapshot: &Snapshot<'_>) {
    out.family(
        "routevpn_ike_failures_total",
        Kind::Counter,
        "IKE and CHILD SA negotiations that failed, by reason.",
    );
    for ((tunnel, reason), count) in &recorder.failures {
        out.sample(
            "routevpn_ike_failures_total",
            &[("tunnel", tunnel), ("reason", reason)],
            *count as f64,
        );
    }
    let dpd: [(&str, &str, Count); 2] = [
        (
            "routevpn_dpd_probes_total",
            "Liveness checks (dead peer detection) sent.",
            |c| c.probes,
        ),
        (
            "routevpn_dpd_timeouts_total",
            "Peers given up because a liveness check went unanswered.",
            |c| c.timeouts,
        ),
    ];
    for (name, help, count) in dpd {
        out.family(name, Kind::Counter, help);
        for (tunnel, c) in snapshot.dpd {
            out.sample(name, &[("tunnel", tunnel)], count(c) as f64);
        }
    }
    out.family(
        "routevpn_ike_cookies_engaged",
        Kind::Gauge,
        "1 while the responder asks initiators for cookies (IKE_SA_INIT flood defence).",
    );
    out.sample(
        "routevpn_ike_cookies_engaged",
        &[],
        f64::from(u8::from(recorder.cookies_engaged)),
    );
}

fn render_applies(out: &mut Exposition, recorder: &Recorder) {
    let name = "routevpn_apply_duration_seconds";
    out.family(name, Kind::Histogram, "Time applies of the dataplane took.");
    let h = &recorder.applies;
    let mut cumulative = 0;
    for (bound, count) in APPLY_BUCKETS.iter().zip(h.counts) {
        cumulative += count;
        let le = exposition::format_value(*bound);
        out.sample(&format!("{name}_bucket"), &[("le", &le)], cumulative as f64);
    }
    let total: u64 = h.counts.iter().sum();
    out.sample(&format!("{name}_bucket"), &[("le", "+Inf")], total as f64);
    out.sample(&format!("{name}_sum"), &[], h.sum);
    out.sample(&format!("{name}_count"), &[], total as f64);
    out.family(
        "routevpn_apply_changes_total",
        Kind::Counter,
        "Kernel objects created, updated or deleted by the applies.",
    );
    out.sample("routevpn_apply_changes_total", &[], recorder.changes as f64);
}

#[cfg(test)]
pub(super) mod tests;
