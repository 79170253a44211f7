//! What the engine hands back: kernel actions for the XFRM layer, events for the operator
//! log, and status snapshots. Keys travel only as [`Secret`]s, whose `Debug` shows lengths.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use ipnet::IpNet;

use super::config::Mode;
use crate::ike::crypto::Secret;
use crate::ike::select::{EspChoice, IkeChoice};

/// A datagram to send from `local` to `remote`. From the NAT-T port (`EngineConfig::
/// natt_port`) the driver puts the four-octet non-ESP marker in front, except for a
/// keepalive ([`Transmit::is_keepalive`]), and strips it from what it receives there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub payload: Vec<u8>,
}

/// What the XFRM layer must do.
#[derive(Debug)]
pub enum KernelAction {
    InstallChildSa(Box<ChildSaInstall>),
    /// Install the outbound SA held back by `defer_outbound`.
    ActivateOutbound(ChildSaRef),
    DeleteChildSa(ChildSaRef),
}

/// One direction of a Child SA.
#[derive(Debug)]
pub struct SaDirection {
    /// Outer source and destination of the ESP packets of this direction.
    pub src: IpAddr,
    pub dst: IpAddr,
    pub spi: u32,
    /// Cipher key with its salt / nonce at the end (GCM, CCM, CTR, ChaCha20-Poly1305), the
    /// layout the kernel takes.
    pub encryption_key: Secret,
    /// Empty for AEAD ciphers.
    pub integrity_key: Secret,
}

/// UDP encapsulation of ESP (NAT-T): the IKE SA's ports once it runs on 4500.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpEncap {
    pub local_port: u16,
    pub remote_port: u16,
}

/// A negotiated traffic selector as XFRM holds it: a prefix, a protocol (0 = any) and a
/// port range (`None` = any).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Selector {
    pub net: IpNet,
    pub protocol: u8,
    pub ports: Option<(u16, u16)>,
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.net)?;
        match (self.protocol, self.ports) {
            (0, None) => Ok(()),
            (p, None) => write!(f, "[{}]", crate::ike::ts::protocol_name(p)),
            (p, Some((lo, hi))) => write!(f, "[{}/{lo}-{hi}]", crate::ike::ts::protocol_name(p)),
        }
    }
}

/// Time and volume limits of a Child SA; zero volume means unlimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lifetimes {
    /// Rekey time minus a random jitter in `[0, rand_time]`.
    pub soft: Duration,
    pub hard: Duration,
    pub soft_bytes: u64,
    pub hard_bytes: u64,
    pub soft_packets: u64,
    pub hard_packets: u64,
}

/// Everything the XFRM layer needs for one Child SA pair (state and policies).
#[derive(Debug)]
pub struct ChildSaInstall {
    pub connection: String,
    pub child: String,
    pub reqid: u32,
    pub mode: Mode,
    pub mark: Option<u32>,
    pub if_id: Option<u32>,
    pub algorithms: EspChoice,
    pub inbound: SaDirection,
    pub outbound: SaDirection,
    pub encap: Option<UdpEncap>,
    pub local_ts: Vec<Selector>,
    pub remote_ts: Vec<Selector>,
    pub lifetimes: Lifetimes,
    /// Install only the inbound SA for now: the outbound one follows with
    /// [`KernelAction::ActivateOutbound`]. The responder of a rekey keeps sending on the
    /// old SA until the initiator, which installs the new pair only when it reads our
    /// answer, deletes the old one; sending on the new SA earlier could lose packets.
    pub defer_outbound: bool,
}

impl ChildSaInstall {
    pub fn reference(&self) -> ChildSaRef {
        ChildSaRef {
            connection: self.connection.clone(),
            child: self.child.clone(),
            reqid: self.reqid,
            local: self.inbound.dst,
            remote: self.inbound.src,
            inbound_spi: self.inbound.spi,
            outbound_spi: self.outbound.spi,
            mark: self.mark,
            if_id: self.if_id,
        }
    }
}

/// Identifies an installed Child SA pair for deletion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildSaRef {
    pub connection: String,
    pub child: String,
    pub reqid: u32,
    pub local: IpAddr,
    pub remote: IpAddr,
    pub inbound_spi: u32,
    pub outbound_spi: u32,
    pub mark: Option<u32>,
    pub if_id: Option<u32>,
}

/// Operator-visible events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Established {
        name: String,
        initiator: bool,
        local: SocketAddr,
        remote: SocketAddr,
        ike: String,
        /// How the peer proved its identity ("pre-shared key", "ecdsa-sha256 signature
        /// (AUTH method 14)", ...).
        peer_auth: String,
    },
    ChildInstalled {
        name: String,
        child: String,
        mode: Mode,
        esp: String,
        spi_in: u32,
        spi_out: u32,
    },
    Failed {
        name: String,
        reason: FailureReason,
    },
    Deleted {
        name: String,
        by_peer: bool,
    },
    /// A Child SA was replaced by a new one (CREATE_CHILD_SA); the old one goes once its
    /// Delete is answered.
    ChildRekeyed {
        name: String,
        child: String,
        esp: String,
        old_spi_in: u32,
        spi_in: u32,
        spi_out: u32,
    },
    /// The IKE SA was rekeyed (by either side): the Child SAs now belong to the new one.
    IkeRekeyed {
        name: String,
        old: (u64, u64),
        new: (u64, u64),
    },
    /// Both sides rekeyed the IKE SA at once (RFC 7296 section 2.8.2); normally the rekey
    /// whose exchange did not use the lowest nonce is kept. `IkeRekeyed` names it.
    IkeRekeysCrossed {
        name: String,
        ours_kept: bool,
    },
    /// A rekey did not happen; the old SA stays and the rekey is tried again.
    RekeyFailed {
        name: String,
        child: String,
        reason: String,
    },
    /// Both ends initiated the connection at once and each established an IKE SA; the
    /// one with the lowest of the four nonces goes, deleted by its initiator.
    InitiationsCrossed {
        name: String,
        ours_kept: bool,
    },
    /// Our IKE SA rekey did not happen; the IKE SA stays and the rekey is tried again.
    IkeRekeyFailed {
        name: String,
        reason: String,
    },
    /// Child SAs were removed: deleted by either side, superseded, or expired.
    ChildDeleted {
        name: String,
        spis_in: Vec<u32>,
    },
    /// The connection will be initiated again (DPD restart, close action, or retry).
    Restarting {
        name: String,
        after: std::time::Duration,
    },
    /// A packet for the Child SA found no SA in the kernel: negotiating it (trap).
    Acquired {
        name: String,
        child: String,
    },
    /// After a loss whose action is `trap`, the next packet for the tunnel negotiates it.
    Trapped {
        name: String,
    },
    /// The responder started or stopped asking initiators for cookies (engine-wide).
    CookiesRequired {
        engaged: bool,
        half_open: usize,
        requests_per_second: u32,
    },
}

impl Event {
    /// The connection the event is about; `None` for engine-wide ones.
    pub fn connection(&self) -> Option<&str> {
        match self {
            Event::Established { name, .. }
            | Event::ChildInstalled { name, .. }
            | Event::Failed { name, .. }
            | Event::Deleted { name, .. }
            | Event::ChildRekeyed { name, .. }
            | Event::IkeRekeyed { name, .. }
            | Event::IkeRekeysCrossed { name, .. }
            | Event::InitiationsCrossed { name, .. }
            | Event::RekeyFailed { name, .. }
            | Event::IkeRekeyFailed { name, .. }
            | Event::ChildDeleted { name, .. }
            | Event::Restarting { name, .. }
            | Event::Acquired { name, .. }
            | Event::Trapped { name } => Some(name),
            Event::CookiesRequired { .. } => None,
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Established {
                name,
                initiator,
                local,
                remote,
                ike,
                peer_auth,
            } => {
                let role = if *initiator { "initiator" } else { "responder" };
                write!(
                    f,
                    "{name}: IKE SA established as {role} {local} <-> {remote} ({ike}; peer authenticated by {peer_auth})"
                )
            }
            Event::ChildInstalled {
                name,
                child,
                mode,
                esp,
                spi_in,
                spi_out,
            } => write!(
                f,
                "{name}/{child}: CHILD SA installed, {mode:?} mode, {esp}, SPIs in {spi_in:08x} out {spi_out:08x}"
            ),
            Event::ChildRekeyed {
                name,
                child,
                esp,
                old_spi_in,
                spi_in,
                spi_out,
            } => write!(
                f,
                "{name}/{child}: CHILD SA rekeyed ({esp}), inbound SPI {old_spi_in:08x} -> {spi_in:08x}, out {spi_out:08x}"
            ),
            Event::IkeRekeyed { name, old, new } => write!(
                f,
                "{name}: IKE SA rekeyed, {:016x}_i {:016x}_r -> {:016x}_i {:016x}_r",
                old.0, old.1, new.0, new.1
            ),
            Event::RekeyFailed {
                name,
                child,
                reason,
            } => write!(f, "{name}/{child}: rekeying failed, will retry: {reason}"),
            Event::IkeRekeysCrossed { name, ours_kept } => {
                let kept = if *ours_kept { "ours" } else { "the peer's" };
                write!(f, "{name}: IKE SA rekeys crossed, keeping {kept}")
            }
            Event::InitiationsCrossed { name, ours_kept } => {
                let kept = if *ours_kept { "ours" } else { "the peer's" };
                write!(f, "{name}: both ends initiated at once, keeping {kept} IKE SA")
            }
            Event::IkeRekeyFailed { name, reason } => {
                write!(f, "{name}: rekeying the IKE SA failed, will retry: {reason}")
            }
            Event::ChildDeleted { name, spis_in } => {
                let spis: Vec<String> = spis_in.iter().map(|s| format!("{s:08x}")).collect();
                write!(f, "{name}: CHILD SA removed (inbound SPI {})", spis.join(", "))
            }
            Event::Failed { name, reason } => write!(f, "{name}: {reason}"),
            Event::Deleted { name, by_peer } => {
                let who = if *by_peer { "by the peer" } else { "locally" };
                write!(f, "{name}: IKE SA deleted {who}")
            }
            Event::Restarting { name, after } if after.is_zero() => {
                write!(f, "{name}: initiating again")
            }
            Event::Restarting { name, after } => {
                write!(f, "{name}: initiating again in {} s", after.as_secs())
            }
            Event::Acquired { name, child } => {
                write!(f, "{name}/{child}: traffic for the tunnel, negotiating (trap)")
            }
            Event::Trapped { name } => {
                write!(f, "{name}: waiting for traffic to negotiate again (trap)")
            }
            Event::CookiesRequired {
                engaged,
                half_open,
                requests_per_second,
            } => {
                let what = if *engaged {
                    "asking initiators for cookies"
                } else {
                    "no longer asking for cookies"
                };
                write!(
                    f,
                    "IKE_SA_INIT load: {what} ({half_open} half-open IKE SAs, {requests_per_second} requests/s)"
                )
            }
        }
    }
}

/// Why an IKE or Child SA could not be established, in words an operator can act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailureReason {
    /// No IKE proposal in common. `theirs` is `None` when the peer refused ours without
    /// saying what it supports (an initiator only learns NO_PROPOSAL_CHOSEN).
    NoProposalChosen {
        ours: Vec<String>,
        theirs: Option<Vec<String>>,
    },
    /// No ESP proposal in common for the child.
    NoChildProposalChosen {
        child: String,
        ours: Vec<String>,
        theirs: Option<Vec<String>>,
    },
    /// AUTH did not verify, or the peer's identity is not the configured one. `why`: what
    /// exactly (wrong signature, unknown CA, expired, revoked, ID not in the certificate,
    /// no shared signature hash, ...), when known; never secret material.
    AuthenticationFailed {
        peer_id: Option<String>,
        why: Option<String>,
    },
    /// The traffic selectors do not overlap.
    TsUnacceptable {
        child: String,
        ours: Vec<String>,
        theirs: Option<Vec<String>>,
    },
    /// One side wants transport mode, the other tunnel mode.
    ModeMismatch {
        child: String,
        ours: Mode,
    },
    PeerNotResponding {
        after: Duration,
    },
    /// The peer asked for a key exchange group none of our proposals contains.
    InvalidKePayload {
        requested: u16,
    },
    /// The peer answered with an error notification this engine does not act on.
    PeerError {
        notify: u16,
    },
    /// A protocol violation by the peer (missing payloads, bad key exchange value, ...).
    Protocol(String),
}

impl FailureReason {
    /// The peer answered or told us AUTHENTICATION_FAILED: it did not accept our AUTH.
    pub fn refused_by_peer() -> Self {
        FailureReason::AuthenticationFailed {
            peer_id: None,
            why: Some("the peer refused our authentication (AUTHENTICATION_FAILED)".into()),
        }
    }

    /// We could not make our own AUTH (no signature hash the peer accepts, ...).
    pub fn cannot_authenticate(problem: impl fmt::Display) -> Self {
        FailureReason::AuthenticationFailed {
            peer_id: None,
            why: Some(format!("we cannot authenticate ourselves: {problem}")),
        }
    }
}

impl FailureReason {
    /// A stable, secret-free name of the kind of failure (a metrics label).
    pub fn kind(&self) -> &'static str {
        match self {
            FailureReason::NoProposalChosen { .. } => "no_proposal_chosen",
            FailureReason::NoChildProposalChosen { .. } => "no_child_proposal_chosen",
            FailureReason::AuthenticationFailed { .. } => "authentication_failed",
            FailureReason::TsUnacceptable { .. } => "ts_unacceptable",
            FailureReason::ModeMismatch { .. } => "mode_mismatch",
            FailureReason::PeerNotResponding { .. } => "peer_not_responding",
            FailureReason::InvalidKePayload { .. } => "invalid_ke_payload",
            FailureReason::PeerError { .. } => "peer_error",
            FailureReason::Protocol(_) => "protocol",
        }
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".into()
    } else {
        items.join(", ")
    }
}

fn theirs(items: &Option<Vec<String>>) -> String {
    match items {
        Some(items) => list(items),
        None => "not disclosed by the peer (compare with its configuration)".into(),
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureReason::NoProposalChosen { ours, theirs: t } => write!(
                f,
                "no IKE proposal chosen: ours {}; theirs {}",
                list(ours),
                theirs(t)
            ),
            FailureReason::NoChildProposalChosen {
                child,
                ours,
                theirs: t,
            } => write!(
                f,
                "no ESP proposal chosen for child {child}: ours {}; theirs {}",
                list(ours),
                theirs(t)
            ),
            FailureReason::AuthenticationFailed { peer_id, why } => {
                write!(f, "authentication failed")?;
                if let Some(id) = peer_id {
                    write!(f, " (peer identity {id})")?;
                }
                match why {
                    Some(why) => write!(f, ": {why}"),
                    None => write!(
                        f,
                        ": check that both sides use the same credentials and identities"
                    ),
                }
            }
            FailureReason::TsUnacceptable {
                child,
                ours,
                theirs: t,
            } => write!(
                f,
                "traffic selectors of child {child} unacceptable: ours {}; theirs {}",
                list(ours),
                theirs(t)
            ),
            FailureReason::ModeMismatch { child, ours } => write!(
                f,
                "child {child}: we want {ours:?} mode but the peer does not agree (check both sides' mode)"
            ),
            FailureReason::PeerNotResponding { after } => write!(
                f,
                "peer not responding after {:.1} s (check reachability of UDP 500/4500 and the peer's configuration)",
                after.as_secs_f64()
            ),
            FailureReason::InvalidKePayload { requested } => write!(
                f,
                "peer requires key exchange group {requested}, which none of our proposals contains"
            ),
            FailureReason::PeerError { notify } => {
                write!(f, "peer answered with error notification {notify}")
            }
            FailureReason::Protocol(what) => write!(f, "protocol error: {what}"),
        }
    }
}

/// State of an IKE SA as `status()` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IkeSaState {
    /// Initiator: IKE_SA_INIT sent.
    Connecting,
    /// Initiator: IKE_AUTH sent; responder: IKE_SA_INIT answered.
    Authenticating,
    Established,
    /// Our Delete is outstanding.
    Deleting,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildSaStatus {
    pub name: String,
    /// Numbers this Child SA among all the engine's SAs (VICI's `uniqueid`).
    pub unique_id: u32,
    pub reqid: u32,
    pub mode: Mode,
    pub esp: String,
    pub choice: EspChoice,
    pub mark: Option<u32>,
    pub if_id: Option<u32>,
    pub rekey_at: Option<Instant>,
    pub expire_at: Option<Instant>,
    pub spi_in: u32,
    pub spi_out: u32,
    pub local_ts: Vec<Selector>,
    pub remote_ts: Vec<Selector>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IkeSaStatus {
    pub name: String,
    /// Numbers this IKE SA among all the engine's SAs (VICI's `uniqueid`).
    pub unique_id: u32,
    pub state: IkeSaState,
    pub initiator: bool,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub spi_i: u64,
    pub spi_r: u64,
    /// The negotiated IKE algorithms, once chosen.
    pub ike: Option<String>,
    pub choice: Option<IkeChoice>,
    /// NAT detection: our address is translated / the peer's is.
    pub local_behind_nat: bool,
    pub remote_behind_nat: bool,
    pub established_at: Option<Instant>,
    pub rekey_at: Option<Instant>,
    pub children: Vec<ChildSaStatus>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_read_well() {
        let r = FailureReason::NoProposalChosen {
            ours: vec!["AES_CBC_256/HMAC_SHA2_256_128".into()],
            theirs: None,
        };
        let text = r.to_string();
        assert!(text.contains("ours AES_CBC_256"), "{text}");
        assert!(text.contains("not disclosed"), "{text}");
        let auth = FailureReason::AuthenticationFailed {
            peer_id: None,
            why: None,
        }
        .to_string();
        assert!(auth.contains("same credentials"), "{auth}");
        let slow = FailureReason::PeerNotResponding {
            after: Duration::from_millis(165_060),
        };
        assert!(slow.to_string().contains("165.1 s"));
    }
}
