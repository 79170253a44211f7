use std::time::Instant;

use super::strict_parser::{parse, value as find};
use super::*;
use crate::daemon::report;
use crate::ike::engine::{ChildSaStatus, FailureReason, IkeSaState, IkeSaStatus};
use crate::model::Mode;

/// A tunnel name with every character the label syntax must escape.
pub(super) const ODD: &str = "odd\"name\\with\nnewline";

/// A daemon state: tunnel `vti-a` established 100 s ago with one CHILD SA that carried
/// 840 bytes in 10 packets inbound, whose IKE SA was rekeyed once; `ODD` connecting; two
/// failures of `vti-a`; cookies engaged; two applies.
pub(super) struct Known {
    pub recorder: Recorder,
    pub tunnels: Vec<String>,
    pub sas: Vec<IkeSaReport>,
    pub dpd: BTreeMap<String, DpdCounters>,
    pub now: SystemTime,
}

impl Known {
    pub fn snapshot(&self) -> Snapshot<'_> {
        Snapshot {
            tunnels: &self.tunnels,
            ike_tunnels: &self.tunnels,
            sas: &self.sas,
            dpd: &self.dpd,
            failing: &[],
            now: self.now,
        }
    }

    pub fn render(&self) -> String {
        render(&self.recorder, &self.snapshot())
    }
}

pub(super) const NOW: u64 = 1_800_000_000;

pub(super) fn known() -> Known {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(NOW);
    let mono = Instant::now();
    let sa = |name: &str, state, established_at, children| IkeSaStatus {
        name: name.into(),
        unique_id: 1,
        state,
        initiator: true,
        local: "192.0.2.1:500".parse().unwrap(),
        remote: "198.51.100.2:500".parse().unwrap(),
        spi_i: 1,
        spi_r: 2,
        ike: None,
        choice: None,
        local_behind_nat: false,
        remote_behind_nat: false,
        established_at,
        rekey_at: None,
        children,
    };
    let child = ChildSaStatus {
        name: "net".into(),
        unique_id: 2,
        reqid: 3,
        mode: Mode::Tunnel,
        esp: "AES_GCM_16_256".into(),
        choice: crate::ike::select::EspChoice {
            encryption: crate::proposal::Encryption::AesGcm16(256),
            integrity: None,
            dh: None,
            additional: Default::default(),
            esn: false,
        },
        mark: None,
        if_id: None,
        rekey_at: None,
        expire_at: None,
        spi_in: 0xc1a2_b3c4,
        spi_out: 0x1234,
        local_ts: vec![],
        remote_ts: vec![],
    };
    let engine = [
        sa(
            "vti-a",
            IkeSaState::Established,
            mono.checked_sub(Duration::from_secs(100)),
            vec![child],
        ),
        sa(ODD, IkeSaState::Connecting, None, vec![]),
    ];
    let kernel = [report::inbound_sa()];
    let mut recorder = Recorder::default();
    let failed = |reason| Event::Failed {
        name: "vti-a".into(),
        reason,
    };
    let timeout = FailureReason::PeerNotResponding {
        after: Duration::from_secs(165),
    };
    recorder.event(&failed(timeout.clone()), now);
    recorder.event(&failed(timeout), now);
    recorder.event(&failed(FailureReason::refused_by_peer()), now);
    let rekeyed = Event::IkeRekeyed {
        name: "vti-a".into(),
        old: (1, 2),
        new: (3, 4),
    };
    recorder.event(&rekeyed, now - Duration::from_secs(30));
    recorder.event(
        &Event::CookiesRequired {
            engaged: true,
            half_open: 100,
            requests_per_second: 900,
        },
        now,
    );
    recorder.applied(Duration::from_millis(30), 12);
    recorder.applied(Duration::from_secs(2), 0);
    let dpd = [(
        "vti-a".to_string(),
        DpdCounters {
            probes: 7,
            timeouts: 1,
        },
    )]
    .into();
    Known {
        recorder,
        tunnels: vec!["vti-a".into(), ODD.into()],
        sas: report::build(&engine, &kernel, mono),
        dpd,
        now,
    }
}

/// Checks the parsed exposition of [`known`] state, family by family.
pub(super) fn check_known(text: &str) {
    let families = parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let value = |name: &str, labels: &[(&str, &str)]| {
        find(&families, name, labels)
            .unwrap_or_else(|| panic!("no sample {name}{labels:?}\n{text}"))
    };
    let kinds: Vec<(&str, &str)> = (families.iter())
        .map(|f| (f.name.as_str(), f.kind.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("routevpn_build_info", "gauge"),
            ("routevpn_tunnels", "gauge"),
            ("routevpn_dataplane_failing_tunnels", "gauge"),
            ("routevpn_ike_sas", "gauge"),
            ("routevpn_ike_sa_established_timestamp_seconds", "gauge"),
            ("routevpn_ike_sa_last_rekey_timestamp_seconds", "gauge"),
            ("routevpn_child_sas", "gauge"),
            ("routevpn_child_sa_last_rekey_timestamp_seconds", "gauge"),
            ("routevpn_child_sa_bytes_total", "counter"),
            ("routevpn_child_sa_packets_total", "counter"),
            ("routevpn_ike_failures_total", "counter"),
            ("routevpn_dpd_probes_total", "counter"),
            ("routevpn_dpd_timeouts_total", "counter"),
            ("routevpn_ike_cookies_engaged", "gauge"),
            ("routevpn_apply_duration_seconds", "histogram"),
            ("routevpn_apply_changes_total", "counter"),
        ]
    );
    assert!(families.iter().all(|f| !f.help.is_empty()));
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(value("routevpn_build_info", &[("version", version)]), 1.0);
    assert_eq!(value("routevpn_tunnels", &[]), 2.0);
    let ike = |tunnel, state| value("routevpn_ike_sas", &[("tunnel", tunnel), ("state", state)]);
    assert_eq!(
        [ike("vti-a", "ESTABLISHED"), ike("vti-a", "CONNECTING")],
        [1.0, 0.0]
    );
    // The escaped name reads back as it was.
    assert_eq!(
        [ike(ODD, "CONNECTING"), ike(ODD, "ESTABLISHED")],
        [1.0, 0.0]
    );
    assert!(
        text.contains(r#"tunnel="odd\"name\\with\nnewline""#),
        "{text}"
    );
    let established = value(
        "routevpn_ike_sa_established_timestamp_seconds",
        &[("tunnel", "vti-a")],
    );
    assert_eq!(established, (NOW - 100) as f64);
    assert_eq!(
        value(
            "routevpn_ike_sa_last_rekey_timestamp_seconds",
            &[("tunnel", "vti-a")]
        ),
        (NOW - 30) as f64
    );
    let child = |state| {
        value(
            "routevpn_child_sas",
            &[("tunnel", "vti-a"), ("child", "net"), ("state", state)],
        )
    };
    assert_eq!([child("INSTALLED"), child("MISSING")], [1.0, 0.0]);
    let traffic = |name, direction| {
        value(
            name,
            &[
                ("tunnel", "vti-a"),
                ("child", "net"),
                ("direction", direction),
            ],
        )
    };
    assert_eq!(
        [
            traffic("routevpn_child_sa_bytes_total", "in"),
            traffic("routevpn_child_sa_packets_total", "in"),
            traffic("routevpn_child_sa_bytes_total", "out"),
        ],
        [840.0, 10.0, 0.0]
    );
    let failures = |reason| {
        value(
            "routevpn_ike_failures_total",
            &[("tunnel", "vti-a"), ("reason", reason)],
        )
    };
    assert_eq!(
        [
            failures("peer_not_responding"),
            failures("authentication_failed")
        ],
        [2.0, 1.0]
    );
    let dpd = &[("tunnel", "vti-a")];
    assert_eq!(
        [
            value("routevpn_dpd_probes_total", dpd),
            value("routevpn_dpd_timeouts_total", dpd)
        ],
        [7.0, 1.0]
    );
    assert_eq!(value("routevpn_ike_cookies_engaged", &[]), 1.0);
    let bucket = |le| value("routevpn_apply_duration_seconds_bucket", &[("le", le)]);
    assert_eq!(
        [
            bucket("0.01"),
            bucket("0.05"),
            bucket("1"),
            bucket("5"),
            bucket("+Inf")
        ],
        [0.0, 1.0, 1.0, 2.0, 2.0]
    );
    assert_eq!(value("routevpn_apply_duration_seconds_count", &[]), 2.0);
    assert_eq!(value("routevpn_apply_duration_seconds_sum", &[]), 2.03);
    assert_eq!(value("routevpn_apply_changes_total", &[]), 12.0);
}

#[test]
fn a_known_state_renders_as_a_valid_exposition_with_its_values() {
    check_known(&known().render());
}

#[test]
fn no_failure_text_reaches_a_label() {
    let mut recorder = Recorder::default();
    let why = FailureReason::AuthenticationFailed {
        peer_id: Some("CN=secret-peer".into()),
        why: Some("signature by key 0xdeadbeef".into()),
    };
    let event = Event::Failed {
        name: "t".into(),
        reason: why,
    };
    recorder.event(&event, SystemTime::UNIX_EPOCH);
    let snapshot = Snapshot {
        tunnels: &[],
        ike_tunnels: &[],
        sas: &[],
        dpd: &BTreeMap::new(),
        failing: &[],
        now: SystemTime::UNIX_EPOCH,
    };
    let text = render(&recorder, &snapshot);
    assert!(text.contains("reason=\"authentication_failed\""), "{text}");
    assert!(!text.contains("secret-peer") && !text.contains("deadbeef"));
}
