//! The state of one IKE SA and its Child SAs.

use std::net::SocketAddr;
use std::time::Instant;

use super::config::Mode;
use super::ike_intermediate::Intermediate;
use crate::ike::auth::signature::{announced_hashes, SignatureHash};
use crate::ike::codec::{Message, NotifyType, Payload, PayloadLookup, PayloadType, Reassembler};
use crate::ike::crypto::{IkeSaKeys, KeyExchange, SkCiphers};
use crate::ike::select::{EspChoice, IkeChoice};
use crate::ike::ts::TsRange;

use super::events::{ChildSaRef, ChildSaStatus, IkeSaState, IkeSaStatus, Selector};
use super::protect::{self, ProtectError};
use super::rekey::{PeerRekey, PendingRekey};
use super::retransmit::Outstanding;
use super::transport_nat::Substitutions;

/// An installed Child SA pair.
#[derive(Debug)]
pub struct ChildSa {
    pub name: String,
    pub unique_id: u32,
    pub reqid: u32,
    pub mode: Mode,
    pub choice: EspChoice,
    pub spi_in: u32,
    pub spi_out: u32,
    pub local_ts: Vec<Selector>,
    pub remote_ts: Vec<Selector>,
    /// The same selectors as negotiated, offered again when rekeying.
    pub local_ranges: Vec<TsRange>,
    pub remote_ranges: Vec<TsRange>,
    /// How the selectors differ on the wire (transport mode across a NAT).
    pub substitutions: Substitutions,
    pub mark: Option<u32>,
    pub if_id: Option<u32>,
    /// Soft lifetime: when we start rekeying it (None once rekeyed or if unlimited).
    pub rekey_at: Option<Instant>,
    /// Hard lifetime: the kernel drops it then; so do we.
    pub expire_at: Option<Instant>,
    /// Replaced by a rekey; waits for its Delete.
    pub superseded: bool,
    /// Responder of a rekey: the outbound SA waits until the Child SA with this inbound
    /// SPI, the one replaced, is gone.
    pub outbound_after: Option<u32>,
}

/// The Child SA the initiator proposed in IKE_AUTH, awaiting the answer.
#[derive(Debug)]
pub struct PendingChild {
    pub index: usize,
    pub spi_in: u32,
    pub local_ts: Vec<TsRange>,
    pub remote_ts: Vec<TsRange>,
    /// How the selectors offered differ on the wire (transport mode across a NAT).
    pub substitutions: Substitutions,
}

/// Where an IKE SA stands, as a plain value to compare (see [`State`] for its data).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    InitSent,
    Auth,
    Established,
    Deleting,
}

/// Where an IKE SA stands, with what exists only there: the handshake's material goes with
/// the handshake, nothing is cleared by hand.
pub enum State {
    /// Initiator: our IKE_SA_INIT request is outstanding.
    InitSent(Box<InitSent>),
    /// Keys derived: the initiator's IKE_AUTH request is outstanding, or the responder
    /// waits for it.
    Auth(Box<Authenticating>),
    Established,
    /// Our Delete of the IKE SA is outstanding.
    Deleting,
}

/// The initiator before the responder's IKE_SA_INIT answer.
pub struct InitSent {
    /// Our DH private value.
    pub kex: KeyExchange,
    /// Our IKE_SA_INIT request as sent, for AUTH.
    pub request: Vec<u8>,
    /// The responder's cookie, echoed first in every retry of the request.
    pub cookie: Option<Vec<u8>>,
    /// INVALID_KE_PAYLOAD retries so far (one per group at most).
    pub ke_retries: u32,
    pub cookie_retries: u32,
}

impl InitSent {
    pub fn new(kex: KeyExchange) -> Self {
        InitSent {
            kex,
            request: Vec::new(),
            cookie: None,
            ke_retries: 0,
            cookie_retries: 0,
        }
    }
}

/// IKE_AUTH under way: what the AUTH payloads sign and the first Child SA.
pub struct Authenticating {
    /// Both IKE_SA_INIT messages as sent.
    pub request: Vec<u8>,
    pub response: Vec<u8>,
    /// Initiator: the Child SA proposed with IKE_AUTH.
    pub first_child: Option<PendingChild>,
    /// Responder: the half-open SA is forgotten at this time.
    pub half_open_until: Option<Instant>,
    /// Responder: IKE_AUTH was refused; kept only to answer retransmits of it.
    pub rejected: bool,
    /// What the peer's IKE_SA_INIT message said about authentication.
    pub peer: PeerOffers,
    /// Additional key exchanges (IKE_INTERMEDIATE) and their IntAuth.
    pub intermediate: Intermediate,
    /// Message ID of the IKE_AUTH request, which IntAuth ends with.
    pub auth_message_id: u32,
}

/// What a peer announces for public-key authentication: the signature hashes it accepts
/// (RFC 7427) and whether it asked for our certificate (CERTREQ).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerOffers {
    /// `None`: no SIGNATURE_HASH_ALGORITHMS, so only the classic methods.
    pub hashes: Option<Vec<SignatureHash>>,
    pub certificate_requested: bool,
}

impl PeerOffers {
    pub fn of(payloads: &impl PayloadLookup) -> Self {
        PeerOffers {
            hashes: (payloads.notify(NotifyType::SignatureHashAlgorithms))
                .and_then(announced_hashes),
            certificate_requested: (payloads.payloads_of(PayloadType::CertificateRequest))
                .next()
                .is_some(),
        }
    }
}

pub struct IkeSa {
    /// The connection this SA belongs to (for a responder, chosen by address until
    /// IKE_AUTH names the peer).
    pub connection: String,
    pub unique_id: u32,
    pub initiator: bool,
    pub state: State,
    pub spi_i: u64,
    pub spi_r: u64,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub choice: Option<IkeChoice>,
    pub nonce_i: Vec<u8>,
    pub nonce_r: Vec<u8>,
    pub keys: Option<IkeSaKeys>,
    pub ciphers: Option<SkCiphers>,
    /// Message ID of our next request.
    pub next_request_id: u32,
    /// Message ID of the peer's next request.
    pub expected_request_id: u32,
    pub outstanding: Option<Outstanding>,
    /// Our last response (one datagram or its fragments) and the ID of the request it
    /// answered, for retransmissions.
    pub last_response: Option<(u32, Vec<Vec<u8>>)>,
    /// Both sides announced IKEV2_FRAGMENTATION_SUPPORTED (RFC 7383).
    pub fragmentation: bool,
    /// Both sides announced INTERMEDIATE_EXCHANGE_SUPPORTED, so the peer knows RFC 9370:
    /// CREATE_CHILD_SA may then carry additional key exchanges (IKE_FOLLOWUP_KE).
    pub followup_ke: bool,
    /// Fragments of the peer's message being collected.
    pub reassembly: Option<Reassembler>,
    /// A message whose fragments are all in: its ID and inner payloads, for the handler
    /// that opens it ([`IkeSa::open`]).
    pub reassembled: Option<(u32, protect::Opened)>,
    pub children: Vec<ChildSa>,
    pub local_behind_nat: bool,
    pub remote_behind_nat: bool,
    pub established_at: Option<Instant>,
    /// Responder: when the peer's IKE_SA_INIT arrived; its INITIAL_CONTACT makes stale only
    /// SAs established before then (later ones crossed it and are live).
    pub began_at: Option<Instant>,
    /// The IKE SA runs on the NAT-T ports: ESP is UDP-encapsulated on them.
    pub udp_encap: bool,
    pub last_keepalive: Option<Instant>,
    /// The last authenticated message from the peer (DPD counts silence from here).
    pub last_heard: Option<Instant>,
    /// When our outstanding liveness check was first sent.
    pub dpd_probe_sent: Option<Instant>,
    /// `terminate` came while another request was outstanding: send the Delete once it is
    /// answered (window size 1).
    pub delete_pending: bool,
    /// Our CREATE_CHILD_SA rekey request, until answered (boxed, as the next one: rare,
    /// and every tunnel's SA would otherwise carry their room).
    pub pending_rekey: Option<Box<PendingRekey>>,
    /// The peer's rekeys of Child SAs we were rekeying too (collisions, rekey.rs).
    pub peer_rekeys: Vec<PeerRekey>,
    /// Inbound SPIs of the Child SAs our outstanding Delete names.
    pub pending_deletes: Vec<u32>,
    /// Replaced by a rekeyed IKE SA (ike_rekey.rs): waits for the peer's Delete, or for
    /// the answer to ours when we rekeyed.
    pub retired_at: Option<Instant>,
    /// The redundant one of two crossed initiations, the peer's to delete (ike_auth.rs):
    /// when we delete it ourselves if the peer has not, as one without our rule won't.
    pub redundant_until: Option<Instant>,
    /// When we rekey this IKE SA (its connection's rekey_time minus jitter).
    pub ike_rekey_at: Option<Instant>,
    /// Responder: a Child SA agreed in CREATE_CHILD_SA whose additional key exchanges
    /// (IKE_FOLLOWUP_KE) are under way.
    pub awaiting_followup: Option<Box<super::followup::Awaiting>>,
    /// Our CREATE_CHILD_SA rekeying this IKE SA, until answered.
    pub pending_ike_rekey: Option<Box<super::ike_rekey::PendingIkeRekey>>,
    /// Our SPI of the IKE SA the peer's rekey made while ours was in flight (section
    /// 2.8.2); which of the two new IKE SAs survives is settled when ours is answered.
    pub collided: Option<u64>,
    /// Initiator: configured Child SAs beyond the first, still to be asked for one by one.
    pub children_to_request: std::collections::VecDeque<String>,
}

impl std::fmt::Debug for IkeSa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IkeSa")
            .field("connection", &self.connection)
            .field("initiator", &self.initiator)
            .field("phase", &self.phase())
            .field("spi_i", &format_args!("{:016x}", self.spi_i))
            .field("spi_r", &format_args!("{:016x}", self.spi_r))
            .field("local", &self.local)
            .field("remote", &self.remote)
            .field("choice", &self.choice)
            .field("keys", &self.keys)
            .field("children", &self.children)
            .finish_non_exhaustive()
    }
}

/// A number no other SA of this process has had (like charon's unique IDs, which VICI
/// clients use to name an SA).
pub fn next_unique_id() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl IkeSa {
    pub fn new(
        connection: String,
        initiator: bool,
        state: State,
        (local, remote): (SocketAddr, SocketAddr),
    ) -> Self {
        IkeSa {
            connection,
            unique_id: next_unique_id(),
            initiator,
            state,
            spi_i: 0,
            spi_r: 0,
            local,
            remote,
            choice: None,
            nonce_i: Vec::new(),
            nonce_r: Vec::new(),
            keys: None,
            ciphers: None,
            next_request_id: 0,
            expected_request_id: 0,
            outstanding: None,
            last_response: None,
            fragmentation: false,
            followup_ke: false,
            awaiting_followup: None,
            reassembly: None,
            reassembled: None,
            children: Vec::new(),
            local_behind_nat: false,
            remote_behind_nat: false,
            established_at: None,
            began_at: None,
            udp_encap: false,
            last_keepalive: None,
            last_heard: None,
            dpd_probe_sent: None,
            delete_pending: false,
            pending_rekey: None,
            peer_rekeys: Vec::new(),
            pending_deletes: Vec::new(),
            retired_at: None,
            redundant_until: None,
            ike_rekey_at: None,
            pending_ike_rekey: None,
            collided: None,
            children_to_request: std::collections::VecDeque::new(),
        }
    }

    /// Established, and the configured Child SA `name` is neither installed nor asked for.
    pub fn misses_child(&self, name: &str) -> bool {
        self.phase() == Phase::Established
            && self.retired_at.is_none()
            && !self.delete_pending
            && !self.children.iter().any(|c| c.name == name)
            && !self.children_to_request.iter().any(|n| n == name)
            && self.pending_rekey.as_ref().is_none_or(|p| p.name != name)
    }

    /// Between messages of an established SA: the keys only the handshake needed go (SK_p
    /// that AUTH used; SK_e and SK_a live on in the ciphers, SK_d for rekeys), and so do the
    /// cipher contexts (rebuilt per message) and spare room in its lists.
    pub fn go_idle(&mut self) {
        if let Some(keys) = self.keys.as_mut() {
            keys.retain_sk_d_only();
        }
        if let Some(ciphers) = self.ciphers.as_mut() {
            ciphers.release_contexts();
        }
        // A first push leaves room for four Child SAs; most tunnels have one.
        self.children.shrink_to_fit();
        self.peer_rekeys.shrink_to_fit();
        self.pending_deletes.shrink_to_fit();
        for response in self.last_response.iter_mut().flat_map(|(_, r)| r) {
            response.shrink_to_fit();
        }
    }

    /// The inner payloads of a protected message: decrypted, or reassembled from its
    /// fragments by the engine before the handler was called.
    pub fn open(&mut self, message: &Message, bytes: &[u8]) -> Result<Vec<Payload>, ProtectError> {
        self.open_whole(message, bytes)
            .map(|opened| opened.payloads)
    }

    /// [`Self::open`], keeping the plaintext the payloads came in.
    pub fn open_whole(
        &mut self,
        message: &Message,
        bytes: &[u8],
    ) -> Result<protect::Opened, ProtectError> {
        if message.encrypted_fragment().is_some() {
            return match self.reassembled.take() {
                Some((id, opened)) if id == message.header.message_id => Ok(opened),
                _ => Err(ProtectError::NotProtected),
            };
        }
        let ciphers = self.ciphers.as_mut().ok_or(ProtectError::NotProtected)?;
        protect::open_whole(ciphers, message, bytes)
    }

    pub fn phase(&self) -> Phase {
        match self.state {
            State::InitSent(_) => Phase::InitSent,
            State::Auth(_) => Phase::Auth,
            State::Established => Phase::Established,
            State::Deleting => Phase::Deleting,
        }
    }

    /// Responder: IKE_AUTH was refused; the SA only answers retransmits until it expires.
    pub fn rejected(&self) -> bool {
        matches!(&self.state, State::Auth(auth) if auth.rejected)
    }

    /// Responder: when a half-open SA is forgotten.
    pub fn half_open_until(&self) -> Option<Instant> {
        match &self.state {
            State::Auth(auth) => auth.half_open_until,
            _ => None,
        }
    }

    /// Our SPI, the key of the engine's SA table.
    pub fn local_spi(&self) -> u64 {
        if self.initiator {
            self.spi_i
        } else {
            self.spi_r
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        let retransmit = self.outstanding.as_ref().map(Outstanding::deadline);
        match (retransmit, self.half_open_until()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn child_refs(&self) -> Vec<ChildSaRef> {
        self.children.iter().map(|c| self.child_ref(c)).collect()
    }

    pub fn child_ref(&self, c: &ChildSa) -> ChildSaRef {
        ChildSaRef {
            connection: self.connection.clone(),
            child: c.name.clone(),
            reqid: c.reqid,
            local: self.local.ip(),
            remote: self.remote.ip(),
            inbound_spi: c.spi_in,
            outbound_spi: c.spi_out,
            mark: c.mark,
            if_id: c.if_id,
        }
    }

    pub fn status(&self) -> IkeSaStatus {
        IkeSaStatus {
            name: self.connection.clone(),
            unique_id: self.unique_id,
            state: match self.phase() {
                Phase::InitSent => IkeSaState::Connecting,
                Phase::Auth => IkeSaState::Authenticating,
                Phase::Established => IkeSaState::Established,
                Phase::Deleting => IkeSaState::Deleting,
            },
            initiator: self.initiator,
            local: self.local,
            remote: self.remote,
            spi_i: self.spi_i,
            spi_r: self.spi_r,
            ike: self.choice.map(|c| c.to_string()),
            choice: self.choice,
            local_behind_nat: self.local_behind_nat,
            remote_behind_nat: self.remote_behind_nat,
            established_at: self.established_at,
            rekey_at: self.ike_rekey_at,
            children: self
                .children
                .iter()
                .map(|c| ChildSaStatus {
                    name: c.name.clone(),
                    unique_id: c.unique_id,
                    reqid: c.reqid,
                    mode: c.mode,
                    esp: c.choice.to_string(),
                    choice: c.choice,
                    mark: c.mark,
                    if_id: c.if_id,
                    rekey_at: c.rekey_at,
                    expire_at: c.expire_at,
                    spi_in: c.spi_in,
                    spi_out: c.spi_out,
                    local_ts: c.local_ts.clone(),
                    remote_ts: c.remote_ts.clone(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::ike::engine::config::RetransmitConfig;
    use crate::proposal::{Encryption, Integrity};

    fn authenticating(half_open_until: Option<Instant>) -> State {
        State::Auth(Box::new(Authenticating {
            request: vec![1; 300],
            response: vec![2; 300],
            first_child: None,
            half_open_until,
            rejected: false,
            peer: PeerOffers::default(),
            intermediate: Intermediate::default(),
            auth_message_id: 1,
        }))
    }

    fn sa(initiator: bool) -> IkeSa {
        let mut sa = IkeSa::new(
            "t".into(),
            initiator,
            authenticating(None),
            (
                "192.0.2.1:500".parse().unwrap(),
                "198.51.100.2:500".parse().unwrap(),
            ),
        );
        (sa.spi_i, sa.spi_r) = (0x11, 0x22);
        sa
    }

    #[test]
    fn our_spi_depends_on_the_role() {
        assert_eq!(sa(true).local_spi(), 0x11);
        assert_eq!(sa(false).local_spi(), 0x22);
    }

    #[test]
    fn deadline_is_the_earlier_timer() {
        let now = Instant::now();
        let mut s = sa(false);
        assert_eq!(s.next_deadline(), None);
        let expiry = now + Duration::from_secs(30);
        s.state = authenticating(Some(expiry));
        assert_eq!(s.next_deadline(), Some(expiry));
        s.outstanding = Some(Outstanding::new(
            now,
            1,
            vec![],
            &RetransmitConfig::default(),
        ));
        assert_eq!(s.next_deadline(), Some(now + Duration::from_secs(4)));
    }

    #[test]
    fn the_half_open_expiry_and_refusal_go_with_the_handshake() {
        let mut s = sa(false);
        s.state = authenticating(Some(Instant::now()));
        if let State::Auth(auth) = &mut s.state {
            auth.rejected = true;
        }
        assert!(s.rejected() && s.half_open_until().is_some());
        assert_eq!(s.phase(), Phase::Auth);
        s.state = State::Established;
        assert!(!s.rejected());
        assert_eq!((s.half_open_until(), s.next_deadline()), (None, None));
        assert_eq!(s.status().state, IkeSaState::Established);
    }

    #[test]
    fn status_lists_children_with_both_spis() {
        let mut s = sa(true);
        s.state = State::Established;
        s.children.push(ChildSa {
            name: "net".into(),
            unique_id: next_unique_id(),
            reqid: 3,
            mode: Mode::Tunnel,
            choice: EspChoice {
                encryption: Encryption::AesCbc(256),
                integrity: Some(Integrity::HmacSha256_128),
                dh: None,
                additional: Default::default(),
                esn: false,
            },
            spi_in: 0x1000,
            spi_out: 0x2000,
            local_ts: vec![],
            remote_ts: vec![],
            local_ranges: vec![],
            remote_ranges: vec![],
            substitutions: Substitutions::default(),
            mark: Some(9),
            if_id: None,
            rekey_at: None,
            expire_at: None,
            superseded: false,
            outbound_after: None,
        });
        let status = s.status();
        assert_eq!(status.state, IkeSaState::Established);
        assert_eq!(
            (status.children[0].spi_in, status.children[0].spi_out),
            (0x1000, 0x2000)
        );
        assert_eq!(status.children[0].esp, "AES_CBC_256/HMAC_SHA2_256_128");
        let refs = s.child_refs();
        assert_eq!((refs[0].inbound_spi, refs[0].mark), (0x1000, Some(9)));
        assert_eq!(refs[0].remote.to_string(), "198.51.100.2");
    }
}
