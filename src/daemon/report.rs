//! `routevpn status` for IKE: the engine's SAs joined with the kernel's counters, as JSON
//! for machines and as text in the shape of `swanctl --list-sas`.

use std::fmt::Write as _;
use std::time::Instant;

use super::control::{ChildSaReport, IkeSaReport, RuntimeConn, StandbyTunnel, TunnelFailure};
use crate::apply::status::SaStatus;
use crate::ike::engine::{IkeSaState, IkeSaStatus};
use crate::model::Mode;

fn state_name(state: IkeSaState) -> &'static str {
    match state {
        IkeSaState::Connecting => "CONNECTING",
        IkeSaState::Authenticating => "AUTHENTICATING",
        IkeSaState::Established => "ESTABLISHED",
        IkeSaState::Deleting => "DELETING",
    }
}

/// Joins the engine's view with the kernel's per-SA counters (by SPI and destination).
pub fn build(sas: &[IkeSaStatus], kernel: &[SaStatus], now: Instant) -> Vec<IkeSaReport> {
    let counters = |spi: u32, dst: std::net::IpAddr| {
        (kernel.iter())
            .find(|k| k.spi == spi && k.dst == dst)
            .map_or((0, 0, None), |k| (k.bytes, k.packets, Some(k.age)))
    };
    sas.iter()
        .map(|sa| IkeSaReport {
            name: sa.name.clone(),
            state: state_name(sa.state).into(),
            initiator: sa.initiator,
            local: sa.local.to_string(),
            remote: sa.remote.to_string(),
            spi_i: format!("{:016x}", sa.spi_i),
            spi_r: format!("{:016x}", sa.spi_r),
            ike: sa.ike.clone(),
            nat_local: sa.local_behind_nat,
            nat_remote: sa.remote_behind_nat,
            established_secs: sa
                .established_at
                .map(|t| now.saturating_duration_since(t).as_secs()),
            children: (sa.children.iter())
                .map(|c| {
                    let (bytes_in, packets_in, age) = counters(c.spi_in, sa.local.ip());
                    let (bytes_out, packets_out, _) = counters(c.spi_out, sa.remote.ip());
                    ChildSaReport {
                        name: c.name.clone(),
                        state: if age.is_some() {
                            "INSTALLED"
                        } else {
                            "MISSING"
                        }
                        .into(),
                        mode: match c.mode {
                            Mode::Tunnel => "TUNNEL",
                            Mode::Transport => "TRANSPORT",
                        }
                        .into(),
                        reqid: c.reqid,
                        esp: c.esp.clone(),
                        encap: sa.local.port() != 500 || sa.remote.port() != 500,
                        spi_in: format!("{:08x}", c.spi_in),
                        spi_out: format!("{:08x}", c.spi_out),
                        bytes_in,
                        packets_in,
                        bytes_out,
                        packets_out,
                        installed_secs: age,
                        local_ts: c.local_ts.iter().map(ToString::to_string).collect(),
                        remote_ts: c.remote_ts.iter().map(ToString::to_string).collect(),
                    }
                })
                .collect(),
        })
        .collect()
}

/// The text form, close to `swanctl --list-sas`.
pub fn render(sas: &[IkeSaReport]) -> String {
    let mut out = String::new();
    if sas.is_empty() {
        out.push_str("no IKE SA\n");
    }
    for sa in sas {
        let role = if sa.initiator {
            "initiator"
        } else {
            "responder"
        };
        let _ = writeln!(
            out,
            "{}: {}, IKEv2, {}_i{} {}_r{}",
            sa.name,
            sa.state,
            sa.spi_i,
            if sa.initiator { "*" } else { "" },
            sa.spi_r,
            if sa.initiator { "" } else { "*" }
        );
        let nat = match (sa.nat_local, sa.nat_remote) {
            (true, _) => " (we are behind a NAT)",
            (_, true) => " (the peer is behind a NAT)",
            _ => "",
        };
        let _ = writeln!(out, "  local  {}\n  remote {}{nat}", sa.local, sa.remote);
        if let Some(ike) = &sa.ike {
            let _ = writeln!(out, "  {ike}");
        }
        if let Some(secs) = sa.established_secs {
            let _ = writeln!(out, "  established {secs}s ago, {role}");
        }
        for c in &sa.children {
            let _ = writeln!(
                out,
                "  {}: {}, reqid {}, {}, ESP{}: {}",
                c.name,
                c.state,
                c.reqid,
                c.mode,
                if c.encap { " in UDP" } else { "" },
                c.esp
            );
            if let Some(secs) = c.installed_secs {
                let _ = writeln!(out, "    installed {secs}s ago");
            }
            let _ = writeln!(
                out,
                "    in  {}, {} bytes, {} packets\n    out {}, {} bytes, {} packets",
                c.spi_in, c.bytes_in, c.packets_in, c.spi_out, c.bytes_out, c.packets_out
            );
            let _ = writeln!(
                out,
                "    local  {}\n    remote {}",
                c.local_ts.join(" "),
                c.remote_ts.join(" ")
            );
        }
    }
    out
}

/// The tunnels on standby, one line each; nothing when there are none.
pub fn render_standby(standby: &[StandbyTunnel]) -> String {
    let mut out = String::new();
    for s in standby {
        let _ = writeln!(
            out,
            "{}: standby: its local address {} is not on this host",
            s.name, s.local
        );
    }
    out
}

/// The tunnels left out of the dataplane, one line each; nothing when there are none.
pub fn render_failures(failures: &[TunnelFailure]) -> String {
    let mut out = String::new();
    for f in failures {
        let kept = if f.kept_previous {
            ", keeping its previous profile"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "{}: FAILED ({} attempt(s){kept}), retrying in {}s: {}",
            f.name, f.attempts, f.retry_in_secs, f.error
        );
    }
    out
}

/// The connections loaded over VICI, beside the profiles' tunnels.
pub fn render_runtime(conns: &[RuntimeConn]) -> String {
    if conns.is_empty() {
        return String::new();
    }
    let listed: String = (conns.iter())
        .map(|conn| match conn.applied {
            true => format!("  {}: applied\n", conn.name),
            false => format!(
                "  {}: left out: a credential it needs is not loaded\n",
                conn.name
            ),
        })
        .collect();
    format!("Run-time connections (loaded over VICI, gone when the daemon restarts):\n{listed}")
}

/// The kernel's inbound SA of reqid 3 (SPI c1a2b3c4, 192.0.2.1 from 198.51.100.2): 840
/// bytes in 10 packets.
#[cfg(test)]
pub fn inbound_sa() -> SaStatus {
    SaStatus {
        reqid: 3,
        spi: 0xc1a2_b3c4,
        src: "198.51.100.2".parse().unwrap(),
        dst: "192.0.2.1".parse().unwrap(),
        algorithms: String::new(),
        bytes: 840,
        packets: 10,
        age: 5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ike::engine::{ChildSaStatus, Selector};

    #[test]
    fn joins_counters_by_spi_and_prints_like_swanctl() {
        let now = Instant::now();
        let sa = IkeSaStatus {
            name: "vti-a".into(),
            unique_id: 1,
            state: IkeSaState::Established,
            initiator: true,
            local: "192.0.2.1:500".parse().unwrap(),
            remote: "198.51.100.2:500".parse().unwrap(),
            spi_i: 0x0123_4567_89ab_cdef,
            spi_r: 0xfedc_ba98_7654_3210,
            ike: Some("AES_CBC_256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048".into()),
            choice: None,
            local_behind_nat: false,
            remote_behind_nat: false,
            established_at: Some(now),
            rekey_at: None,
            children: vec![ChildSaStatus {
                name: "net".into(),
                unique_id: 2,
                reqid: 3,
                mode: Mode::Tunnel,
                esp: "AES_CBC_256/HMAC_SHA2_256_128".into(),
                choice: crate::ike::select::EspChoice {
                    encryption: crate::proposal::Encryption::AesCbc(256),
                    integrity: Some(crate::proposal::Integrity::HmacSha256_128),
                    dh: None,
                    additional: Default::default(),
                    esn: false,
                },
                mark: None,
                if_id: None,
                rekey_at: None,
                expire_at: None,
                spi_in: 0xc1a2_b3c4,
                spi_out: 0x0000_1234,
                local_ts: vec![Selector {
                    net: "10.1.0.0/16".parse().unwrap(),
                    protocol: 0,
                    ports: None,
                }],
                remote_ts: vec![],
            }],
        };
        let kernel = [
            inbound_sa(),
            // Same SPI towards another host: not ours.
            SaStatus {
                reqid: 9,
                spi: 0x0000_1234,
                src: "192.0.2.1".parse().unwrap(),
                dst: "203.0.113.9".parse().unwrap(),
                algorithms: String::new(),
                bytes: 1,
                packets: 1,
                age: 1,
            },
        ];
        let report = build(&[sa], &kernel, now);
        let c = &report[0].children[0];
        assert_eq!(
            (report[0].spi_i.as_str(), c.spi_in.as_str()),
            ("0123456789abcdef", "c1a2b3c4")
        );
        assert_eq!(
            (c.bytes_in, c.packets_in, c.bytes_out, c.packets_out),
            (840, 10, 0, 0)
        );
        assert_eq!(c.state, "INSTALLED");
        let text = render(&report);
        assert!(
            text.contains("vti-a: ESTABLISHED, IKEv2, 0123456789abcdef_i* fedcba9876543210_r"),
            "{text}"
        );
        assert!(
            text.contains("in  c1a2b3c4, 840 bytes, 10 packets"),
            "{text}"
        );
        assert!(text.contains("local  10.1.0.0/16"), "{text}");
    }
}
