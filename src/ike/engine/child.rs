//! Child SAs as IKE_AUTH and CREATE_CHILD_SA carry them: the payloads that propose and
//! answer one, the checks of both sides, and what the kernel is told to install.

use std::time::Instant;

use super::config::{ChildConfig, Mode};
use crate::ike::codec::{
    AddressRange, Notify, NotifyType, Payload, PayloadLookup, Proposal, SecurityAssociation,
    TrafficSelectors,
};
use crate::ike::crypto::{ChildSaKeys, CryptoError, Secret};
use crate::ike::select::{
    accepts_esp_reply, in_create_child_sa, select_esp, single_additional, EspChoice,
    KeyExchange as Ke,
};
use crate::ike::ts::{narrow, within, TsRange};
use crate::proposal::EspProposal;

use super::config::EngineConnection;
use super::events::{
    ChildSaInstall, Event, FailureReason, Lifetimes, SaDirection, Selector, UdpEncap,
};
use super::sa::{ChildSa, IkeSa, PendingChild};
use super::transport_nat::{substitute, NatSides, Substitutions};

/// IKE_AUTH carries no KE payload: offer the ESP proposals without their PFS groups.
pub fn without_dh(proposals: &[EspProposal]) -> Vec<EspProposal> {
    proposals
        .iter()
        .map(|p| EspProposal {
            dh: Vec::new(),
            additional: Default::default(),
            ..p.clone()
        })
        .collect()
}

/// The proposals a CREATE_CHILD_SA without additional key exchanges can use (see
/// [`in_create_child_sa`]).
pub fn for_create_child(proposals: &[EspProposal]) -> Vec<EspProposal> {
    (proposals.iter())
        .filter_map(|p| {
            Some(EspProposal {
                additional: in_create_child_sa(&p.additional)?,
                ..p.clone()
            })
        })
        .collect()
}

pub fn address_ranges(ranges: &[TsRange]) -> Vec<AddressRange> {
    ranges
        .iter()
        .map(|r| AddressRange {
            ip_protocol: r.protocol,
            start_port: r.start_port,
            end_port: r.end_port,
            start_address: r.start,
            end_address: r.end,
        })
        .collect()
}

/// The payloads that propose or answer a Child SA, in both exchanges and roles:
/// USE_TRANSPORT_MODE for transport mode, the SA, then `keying` (CREATE_CHILD_SA's Nonce
/// and KE; nothing in IKE_AUTH), then TSi and TSr (the initiator's side first).
pub fn payloads(
    mode: Mode,
    sa: SecurityAssociation,
    keying: impl IntoIterator<Item = Payload>,
    tsi: &[TsRange],
    tsr: &[TsRange],
) -> Vec<Payload> {
    let transport = (mode == Mode::Transport)
        .then(|| Payload::Notify(Notify::new(NotifyType::UseTransportMode, Vec::new())));
    (transport.into_iter())
        .chain([Payload::SecurityAssociation(sa)])
        .chain(keying)
        .chain([
            Payload::TsInitiator(TrafficSelectors::new(address_ranges(tsi))),
            Payload::TsResponder(TrafficSelectors::new(address_ranges(tsr))),
        ])
        .collect()
}

/// The responder's answer accepting `negotiated` (proposal `number`, our inbound SPI).
pub fn answer(
    negotiated: &Negotiated,
    number: u8,
    spi_in: u32,
    keying: impl IntoIterator<Item = Payload>,
) -> Vec<Payload> {
    let sa = SecurityAssociation {
        proposals: vec![Proposal::from_esp(
            number,
            &negotiated.choice.as_proposal(),
            spi_in,
        )],
    };
    // TSi is the initiator's side, our remote one; both as the peer named them.
    let (tsr, tsi) = (negotiated.substitutions).wire(&negotiated.local_ts, &negotiated.remote_ts);
    payloads(negotiated.mode, sa, keying, &tsi, &tsr)
}

/// The notification that refuses a Child SA the responder could not agree to.
pub fn refusal(reason: &FailureReason) -> NotifyType {
    match reason {
        FailureReason::TsUnacceptable { .. } => NotifyType::TsUnacceptable,
        _ => NotifyType::NoProposalChosen,
    }
}

/// The address ranges of a TS payload (other selector types are narrowed away).
pub fn ts_ranges(ts: &TrafficSelectors) -> Vec<TsRange> {
    ts.ranges()
        .filter(|r| r.start_address.is_ipv6() == r.end_address.is_ipv6())
        .map(|r| TsRange {
            protocol: r.ip_protocol,
            start_port: r.start_port,
            end_port: r.end_port,
            start: r.start_address,
            end: r.end_address,
        })
        .collect()
}

fn show_ranges(ranges: &[TsRange]) -> Vec<String> {
    ranges.iter().map(|r| selector(r).to_string()).collect()
}

fn selector(r: &TsRange) -> Selector {
    Selector {
        net: r.covering_prefix(),
        protocol: r.protocol,
        ports: r.ports(),
    }
}

/// What both sides agreed on for a Child SA.
#[derive(Debug)]
pub struct Negotiated {
    pub choice: EspChoice,
    /// The peer's inbound SPI.
    pub spi_out: u32,
    /// Selectors from our point of view, as the kernel installs them.
    pub local_ts: Vec<TsRange>,
    pub remote_ts: Vec<TsRange>,
    /// How they differ on the wire (transport mode across a NAT).
    pub substitutions: Substitutions,
    pub mode: Mode,
}

/// The ESP algorithms of a one-proposal answer naming exactly one of each kind (and, with
/// a key exchange in the exchange, at most one group).
fn single_esp_choice(proposal: &Proposal, ke: Ke) -> Option<EspChoice> {
    let t = proposal.esp_transforms()?;
    if !t.unsupported.is_empty() {
        return None;
    }
    let p = t.supported;
    let dh = match (ke, p.dh.as_slice()) {
        (_, []) => None,
        (Ke::Present | Ke::Followup, [one]) => Some(*one),
        _ => return None,
    };
    let integrity = match p.integrity.as_slice() {
        [] => None,
        [one] => Some(*one),
        _ => return None,
    };
    match (p.encryption.as_slice(), p.esn.as_slice()) {
        ([encryption], [esn]) => Some(EspChoice {
            encryption: *encryption,
            integrity,
            dh,
            additional: match ke {
                Ke::Present | Ke::Followup => single_additional(&p.additional)?,
                Ke::Absent => Default::default(),
            },
            esn: *esn,
        }),
        _ => None,
    }
}

/// Our offer as the peer saw it (our address behind a NAT as published, not the private
/// one the kernel gets): what its logs and its refusal are about.
fn offered_on_the_wire(pending: &PendingChild) -> Vec<String> {
    let (local, remote) = (pending.substitutions).wire(&pending.local_ts, &pending.remote_ts);
    (show_ranges(&local).into_iter())
        .chain(["<->".to_owned()])
        .chain(show_ranges(&remote))
        .collect()
}

/// The initiator's check of the responder's Child SA answer, in IKE_AUTH (`Ke::Absent`) or
/// CREATE_CHILD_SA (`Ke::Present`: PFS groups count); `nat`: the IKE SA's sides behind a
/// NAT, whose selectors are substituted in transport mode before they are checked.
pub fn initiator_accepts(
    child: &ChildConfig,
    pending: &PendingChild,
    payloads: &[Payload],
    ke: Ke,
    nat: NatSides,
) -> Result<Negotiated, FailureReason> {
    let ours_esp = || {
        child
            .esp_proposals
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    let (Some(sa), Some(tsi), Some(tsr)) = (
        payloads.security_association(),
        payloads.ts_initiator(),
        payloads.ts_responder(),
    ) else {
        return Err(match payloads.error_notify().map(|n| n.notify_type) {
            Some(NotifyType::NoProposalChosen) => FailureReason::NoChildProposalChosen {
                child: child.name.clone(),
                ours: ours_esp(),
                theirs: None,
            },
            Some(NotifyType::TsUnacceptable) => FailureReason::TsUnacceptable {
                child: child.name.clone(),
                ours: offered_on_the_wire(pending),
                theirs: None,
            },
            Some(other) => FailureReason::PeerError {
                notify: other.to_u16(),
            },
            None => FailureReason::Protocol("IKE_AUTH response without the Child SA".into()),
        });
    };
    let answer = match sa.proposals.as_slice() {
        [one] => one,
        _ => {
            return Err(FailureReason::Protocol(
                "ESP answer must hold one proposal".into(),
            ))
        }
    };
    let offered = match ke {
        Ke::Absent => without_dh(&child.esp_proposals),
        Ke::Present => for_create_child(&child.esp_proposals),
        Ke::Followup => child.esp_proposals.clone(),
    };
    let choice = single_esp_choice(answer, ke)
        .filter(|c| accepts_esp_reply(&offered, c, ke))
        .ok_or_else(|| {
            FailureReason::Protocol("the peer chose ESP algorithms we did not offer".into())
        })?;
    let spi_out = answer
        .spi_u32()
        .filter(|spi| *spi > 255)
        .ok_or_else(|| FailureReason::Protocol("invalid ESP SPI in the answer".into()))?;
    let transport = payloads.notify(NotifyType::UseTransportMode).is_some();
    let mode = if transport && child.mode == Mode::Transport {
        Mode::Transport
    } else {
        Mode::Tunnel
    };
    let nat = if mode == Mode::Transport {
        nat
    } else {
        NatSides::default()
    };
    let (local_ts, local) = substitute(&ts_ranges(tsi), nat.local);
    let (remote_ts, remote) = substitute(&ts_ranges(tsr), nat.remote);
    if !within(&pending.local_ts, &local_ts) || !within(&pending.remote_ts, &remote_ts) {
        return Err(FailureReason::TsUnacceptable {
            child: child.name.clone(),
            ours: offered_on_the_wire(pending),
            theirs: Some(
                show_ranges(&ts_ranges(tsi))
                    .into_iter()
                    .chain(show_ranges(&ts_ranges(tsr)))
                    .collect(),
            ),
        });
    }
    Ok(Negotiated {
        choice,
        spi_out,
        local_ts,
        remote_ts,
        substitutions: Substitutions { local, remote },
        mode,
    })
}

/// What the initiator of a Child SA asks for.
pub struct Request<'p> {
    pub sa: &'p SecurityAssociation,
    pub tsi: &'p TrafficSelectors,
    pub tsr: &'p TrafficSelectors,
    pub transport: bool,
    /// IKE_AUTH: `Absent`; CREATE_CHILD_SA: `Present` (PFS groups must match).
    pub ke: Ke,
    /// A rekey: only the child being rekeyed may answer.
    pub only: Option<&'p str>,
    /// The IKE SA's sides behind a NAT, for a transport-mode child.
    pub nat: NatSides,
}

/// The responder's choice of child, algorithms and selectors: the first configured child
/// whose selectors overlap the offered ones.
pub fn responder_negotiate<'c>(
    conn: &'c EngineConnection,
    request: &Request<'_>,
) -> Result<(&'c ChildConfig, Negotiated, u8), (String, FailureReason)> {
    let Request {
        sa,
        tsi,
        tsr,
        transport: transport_requested,
        ke,
        only,
        nat,
    } = *request;
    let (offered_i, offered_r) = (ts_ranges(tsi), ts_ranges(tsr));
    let first_name = (conn.config.children.first()).map_or_else(String::new, |c| c.name.clone());
    let candidates = (conn.config.children.iter()).filter(|c| only.is_none_or(|n| c.name == n));
    let matched = candidates.into_iter().find_map(|child| {
        let nat = match (child.mode, transport_requested) {
            (Mode::Transport, true) => nat,
            _ => NatSides::default(),
        };
        // The initiator's TSi is the peer's side: our remote selectors.
        let (offered_remote, remote) = substitute(&offered_i, nat.remote);
        let (offered_local, local) = substitute(&offered_r, nat.local);
        let remote_ts = narrow(&conn.remote_ts(child), &offered_remote);
        let local_ts = narrow(&conn.local_ts(child), &offered_local);
        let substitutions = Substitutions { local, remote };
        (!remote_ts.is_empty() && !local_ts.is_empty()).then_some((
            child,
            local_ts,
            remote_ts,
            substitutions,
        ))
    });
    let Some((child, local_ts, remote_ts, substitutions)) = matched else {
        let ours = (conn.config.children.iter())
            .flat_map(|c| {
                show_ranges(&conn.local_ts(c))
                    .into_iter()
                    .chain(show_ranges(&conn.remote_ts(c)))
            })
            .collect();
        let theirs = show_ranges(&offered_r)
            .into_iter()
            .chain(show_ranges(&offered_i))
            .collect();
        return Err((
            first_name.clone(),
            FailureReason::TsUnacceptable {
                child: first_name,
                ours,
                theirs: Some(theirs),
            },
        ));
    };
    let offered: Vec<(u8, u32, EspProposal)> = (sa.proposals.iter())
        .filter_map(|p| Some((p.number, p.spi_u32()?, p.esp_transforms()?.supported)))
        .collect();
    let list: Vec<EspProposal> = offered.iter().map(|(_, _, p)| p.clone()).collect();
    let ours = match ke {
        Ke::Absent => child.esp_proposals.clone(),
        Ke::Present => for_create_child(&child.esp_proposals),
        Ke::Followup => child.esp_proposals.clone(),
    };
    let Some((index, choice)) = select_esp(&ours, &list, ke) else {
        return Err((
            child.name.clone(),
            FailureReason::NoChildProposalChosen {
                child: child.name.clone(),
                ours: child
                    .esp_proposals
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
                theirs: Some(list.iter().map(ToString::to_string).collect()),
            },
        ));
    };
    let Some((number, spi_out, _)) = offered.get(index).filter(|(_, spi, _)| *spi > 255) else {
        return Err((
            child.name.clone(),
            FailureReason::Protocol("invalid ESP SPI offered".into()),
        ));
    };
    let mode = match (child.mode, transport_requested) {
        (Mode::Transport, true) => Mode::Transport,
        (Mode::Tunnel, _) => Mode::Tunnel,
        (Mode::Transport, false) => {
            return Err((
                child.name.clone(),
                FailureReason::ModeMismatch {
                    child: child.name.clone(),
                    ours: Mode::Transport,
                },
            ))
        }
    };
    Ok((
        child,
        Negotiated {
            choice,
            spi_out: *spi_out,
            local_ts,
            remote_ts,
            substitutions,
            mode,
        },
        *number,
    ))
}

fn lifetimes(child: &ChildConfig) -> Lifetimes {
    Lifetimes {
        soft: super::config::rekey_after(child.rekey_time, child.rand_time),
        hard: std::time::Duration::from_secs(child.life_time),
        soft_bytes: child.rekey_bytes,
        hard_bytes: child.life_bytes,
        soft_packets: child.rekey_packets,
        hard_packets: child.life_packets,
    }
}

/// What KEYMAT is derived from (RFC 7296 section 2.17): the nonces of the exchange that
/// made the Child SA, the initiator's first, and the PFS key exchange's secret, if any.
pub struct Keymat<'a> {
    pub ni: &'a [u8],
    pub nr: &'a [u8],
    pub pfs: Option<&'a Secret>,
    /// We sent the request of that exchange (for CREATE_CHILD_SA, either end may).
    pub we_initiated: bool,
}

/// Derives the Child SA keys, records the child in `sa` and returns what the kernel must
/// install and the event to log.
pub fn install(
    sa: &mut IkeSa,
    conn: &EngineConnection,
    child: &ChildConfig,
    negotiated: &Negotiated,
    spi_in: u32,
    keymat: Keymat<'_>,
    now: Instant,
) -> Result<(ChildSaInstall, Event), CryptoError> {
    let Negotiated {
        choice,
        spi_out,
        ref local_ts,
        ref remote_ts,
        substitutions,
        mode,
    } = *negotiated;
    let keys = sa
        .keys
        .as_ref()
        .ok_or(CryptoError::InvalidSuite("IKE SA without keys"))?;
    let ChildSaKeys {
        encr_i,
        integ_i,
        encr_r,
        integ_r,
        ..
    } = keys.child_sa_keys(
        choice.encryption,
        choice.integrity,
        keymat.pfs,
        keymat.ni,
        keymat.nr,
    )?;
    // KEYMAT: the exchange initiator's outbound keys first; for CREATE_CHILD_SA that may be
    // either end of the IKE SA.
    let ((out_e, out_a), (in_e, in_a)): ((Secret, Secret), (Secret, Secret)) =
        if keymat.we_initiated {
            ((encr_i, integ_i), (encr_r, integ_r))
        } else {
            ((encr_r, integ_r), (encr_i, integ_i))
        };
    let (local, remote) = (sa.local, sa.remote);
    let encap = sa.udp_encap.then_some(UdpEncap {
        local_port: local.port(),
        remote_port: remote.port(),
    });
    let local_sel: Vec<Selector> = local_ts.iter().map(selector).collect();
    let remote_sel: Vec<Selector> = remote_ts.iter().map(selector).collect();
    let install = ChildSaInstall {
        connection: conn.name().to_owned(),
        child: child.name.clone(),
        reqid: child.reqid,
        mode,
        mark: child.mark,
        if_id: child.if_id,
        algorithms: choice,
        inbound: SaDirection {
            src: remote.ip(),
            dst: local.ip(),
            spi: spi_in,
            encryption_key: in_e,
            integrity_key: in_a,
        },
        outbound: SaDirection {
            src: local.ip(),
            dst: remote.ip(),
            spi: spi_out,
            encryption_key: out_e,
            integrity_key: out_a,
        },
        encap,
        local_ts: local_sel.clone(),
        remote_ts: remote_sel.clone(),
        lifetimes: lifetimes(child),
        defer_outbound: false,
    };
    let soft = install.lifetimes.soft;
    let hard = install.lifetimes.hard;
    sa.children.push(ChildSa {
        name: child.name.clone(),
        unique_id: super::sa::next_unique_id(),
        reqid: child.reqid,
        mode,
        choice,
        spi_in,
        spi_out,
        local_ts: local_sel,
        remote_ts: remote_sel,
        local_ranges: local_ts.clone(),
        remote_ranges: remote_ts.clone(),
        substitutions,
        mark: child.mark,
        if_id: child.if_id,
        rekey_at: (!soft.is_zero()).then(|| now + soft),
        expire_at: (!hard.is_zero()).then(|| now + hard),
        superseded: false,
        outbound_after: None,
    });
    let event = Event::ChildInstalled {
        name: conn.name().to_owned(),
        child: child.name.clone(),
        mode,
        esp: choice.to_string(),
        spi_in,
        spi_out,
    };
    Ok((install, event))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proposal::parse_esp;

    #[test]
    fn dh_is_stripped_for_ike_auth() {
        let p = parse_esp("aes256gcm16-x25519", true).unwrap();
        let stripped = without_dh(std::slice::from_ref(&p));
        assert!(stripped[0].dh.is_empty());
        assert_eq!(stripped[0].encryption, p.encryption);
    }

    #[test]
    fn ranges_round_trip_through_the_payload() {
        let r = TsRange {
            protocol: 47,
            start_port: 0,
            end_port: 65535,
            start: "10.0.0.0".parse().unwrap(),
            end: "10.0.0.255".parse().unwrap(),
        };
        let ts = TrafficSelectors::new(address_ranges(&[r]));
        assert_eq!(ts_ranges(&ts), vec![r]);
        assert_eq!(selector(&r).to_string(), "10.0.0.0/24[gre]");
    }

    /// Behind a NAT, as responder: libreswan's TSr names the address the NAT publishes us
    /// as. We narrow and install with our own address and answer with the peer's.
    #[test]
    fn a_responder_behind_a_nat_answers_with_the_selectors_it_was_offered() {
        use super::super::config::IkeConfig;
        use crate::ike::crypto::Secret;
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let gre = |a: &str| TsRange {
            protocol: 47,
            start_port: 0,
            end_port: 65535,
            start: ip(a),
            end: ip(a),
        };
        let esp = vec![parse_esp("aes256gcm16", true).unwrap()];
        let dynamic = vec![crate::ike::ts::TrafficSelector {
            net: None,
            protocol: Some(47),
            ports: None,
        }];
        let mut child = ChildConfig::new("gre", dynamic.clone(), dynamic, esp.clone());
        child.mode = Mode::Transport;
        let config = IkeConfig::new("gre", ip("192.0.2.2"), vec![], vec![child]);
        let secret = Secret::from_slice(b"child-test-psk");
        let conn = EngineConnection::with_psk(config, ip("172.16.0.2"), secret);
        let (tsi, tsr) = (
            TrafficSelectors::new(address_ranges(&[gre("192.0.2.2")])),
            TrafficSelectors::new(address_ranges(&[gre("198.51.100.1")])),
        );
        let sa = SecurityAssociation::from_esp_proposals(&esp, 0x1000).unwrap();
        let request = |nat| Request {
            sa: &sa,
            tsi: &tsi,
            tsr: &tsr,
            transport: true,
            ke: Ke::Absent,
            only: None,
            nat,
        };
        let behind = NatSides {
            local: Some(ip("172.16.0.2")),
            remote: None,
        };
        let (_, negotiated, number) = responder_negotiate(&conn, &request(behind)).unwrap();
        assert_eq!(
            negotiated.local_ts,
            [gre("172.16.0.2")],
            "the kernel's view"
        );
        let answer = answer(&negotiated, number, 0x2000, []);
        assert_eq!(
            ts_ranges(answer.ts_responder().unwrap()),
            [gre("198.51.100.1")]
        );
        assert_eq!(
            ts_ranges(answer.ts_initiator().unwrap()),
            [gre("192.0.2.2")]
        );
        // Without the NAT the offer names an address that is not ours.
        let refused = responder_negotiate(&conn, &request(NatSides::default()));
        assert!(matches!(
            refused,
            Err((_, FailureReason::TsUnacceptable { .. }))
        ));
    }

    #[test]
    fn a_reply_must_name_one_algorithm_each() {
        let two = parse_esp("aes256-aes128-sha256", true).unwrap();
        assert!(single_esp_choice(&Proposal::from_esp(1, &two, 0x1000), Ke::Absent).is_none());
        let one = parse_esp("aes256-sha256", true).unwrap();
        let c = single_esp_choice(&Proposal::from_esp(1, &one, 0x1000), Ke::Absent).unwrap();
        assert_eq!(c.as_proposal(), EspProposal { dh: vec![], ..one });
        // A PFS group only where the exchange carries a key exchange.
        let pfs = parse_esp("aes256-sha256-modp2048", true).unwrap();
        let answer = Proposal::from_esp(1, &pfs, 0x1000);
        assert!(single_esp_choice(&answer, Ke::Absent).is_none());
        let c = single_esp_choice(&answer, Ke::Present).unwrap();
        assert_eq!(c.as_proposal(), pfs);
    }
}
