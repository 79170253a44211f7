//! What the IKE engine is given for each tunnel: swanctl.conf's connection and children,
//! with the marks / if_ids / reqids the plan chose. The PSK stays a path.

use std::net::IpAddr;
use std::path::PathBuf;

use serde::Serialize;

use super::{Allocations, Endpoint};
use crate::model::{
    Auth, Dpd, Identity, Mode, NatTraversal, StartAction, TrafficSelector, Tunnel, TunnelKind,
    CHILD_REKEY_TIME, IKE_REKEY_TIME,
};
use crate::proposal::{EspProposal, IkeProposal};

#[derive(Clone, Debug, Serialize)]
pub struct IkeConfig {
    pub name: String,
    pub local: Endpoint,
    pub remote: IpAddr,
    pub remote_port: u16,
    /// `None`: the local outer address, once known.
    pub local_id: Option<Identity>,
    pub remote_id: Identity,
    #[serde(serialize_with = "display_list")]
    pub proposals: Vec<IkeProposal>,
    #[serde(serialize_with = "secret_path")]
    pub psk_file: Option<PathBuf>,
    /// Manual keying (a debugging aid): the dataplane installs these SAs, no IKE runs.
    #[serde(serialize_with = "secret_path")]
    pub manual_keys_file: Option<PathBuf>,
    pub rekey_time: u64,
    pub over_time: u64,
    pub rand_time: u64,
    pub dpd: Dpd,
    pub nat_traversal: NatTraversal,
    pub start_action: StartAction,
    pub close_action: StartAction,
    pub children: Vec<ChildConfig>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ChildConfig {
    pub name: String,
    pub reqid: u32,
    pub mode: Mode,
    pub local_ts: Vec<TrafficSelector>,
    pub remote_ts: Vec<TrafficSelector>,
    #[serde(serialize_with = "display_list")]
    pub esp_proposals: Vec<EspProposal>,
    /// VTI: both directions carry the tunnel's mark (swanctl's mark_in / mark_out).
    pub mark: Option<u32>,
    /// XFRM interfaces: if_id_in / if_id_out.
    pub if_id: Option<u32>,
    pub rekey_time: u64,
    pub life_time: u64,
    pub rand_time: u64,
    pub rekey_bytes: u64,
    pub life_bytes: u64,
    pub rekey_packets: u64,
    pub life_packets: u64,
    /// Packets; 0: no replay protection.
    pub replay_window: u32,
}

impl ChildConfig {
    /// A tunnel-mode child with the default lifetimes, reqid 1, no mark or if_id: for
    /// embedding the engine without profiles (tests, benchmarks, load generators).
    pub fn new(
        name: &str,
        local_ts: Vec<TrafficSelector>,
        remote_ts: Vec<TrafficSelector>,
        esp_proposals: Vec<EspProposal>,
    ) -> Self {
        let rekey = CHILD_REKEY_TIME.as_secs();
        ChildConfig {
            name: name.to_owned(),
            reqid: 1,
            mode: Mode::Tunnel,
            local_ts,
            remote_ts,
            esp_proposals,
            mark: None,
            if_id: None,
            rekey_time: rekey,
            life_time: rekey + rekey / 10,
            rand_time: rekey / 10,
            rekey_bytes: 0,
            life_bytes: 0,
            rekey_packets: 0,
            life_packets: 0,
            replay_window: crate::model::REPLAY_WINDOW,
        }
    }
}

impl IkeConfig {
    /// A connection from `local` to `remote` (identities: the addresses) with the profile
    /// defaults: rekey 4 h, DPD 30 s / 150 s / restart, NAT-T auto, no start or close
    /// action. For embedding the engine without profiles.
    pub fn new(
        name: &str,
        local: IpAddr,
        remote: IpAddr,
        proposals: Vec<IkeProposal>,
        children: Vec<ChildConfig>,
    ) -> Self {
        let rekey = IKE_REKEY_TIME.as_secs();
        IkeConfig {
            name: name.to_owned(),
            local: Endpoint::Address(local),
            remote,
            remote_port: 500,
            local_id: None,
            remote_id: Identity::Address(remote),
            proposals,
            psk_file: None,
            manual_keys_file: None,
            rekey_time: rekey,
            over_time: rekey / 10,
            rand_time: rekey / 10,
            dpd: Dpd::default(),
            nat_traversal: NatTraversal::Auto,
            start_action: StartAction::None,
            close_action: StartAction::None,
            children,
        }
    }
}

fn display_list<T: std::fmt::Display, S: serde::Serializer>(
    list: &[T],
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_seq(list.iter().map(ToString::to_string))
}

/// A secret file's path as [`crate::profile::shown_secret_path`] shows it.
fn secret_path<S: serde::Serializer>(path: &Option<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
    match path {
        Some(path) => s.serialize_some(&crate::profile::shown_secret_path(path)),
        None => s.serialize_none(),
    }
}

pub fn config(tunnel: &Tunnel, allocations: &Allocations) -> IkeConfig {
    let (psk_file, manual_keys_file) = match &tunnel.ike.auth {
        Auth::Psk { file } => (Some(file.clone()), None),
        Auth::Manual { keys_file } => (None, Some(keys_file.clone())),
    };
    let mark = (tunnel.kind == TunnelKind::Vti).then(|| allocations.marks[&tunnel.name]);
    let if_id = (tunnel.kind == TunnelKind::Xfrm).then(|| allocations.if_ids[&tunnel.name]);
    let children = tunnel
        .children
        .iter()
        .map(|c| ChildConfig {
            name: c.name.clone(),
            reqid: allocations.reqids[&format!("{}/{}", tunnel.name, c.name)],
            mode: c.mode,
            local_ts: c.local_ts.clone(),
            remote_ts: c.remote_ts.clone(),
            esp_proposals: c.esp_proposals.clone(),
            mark,
            if_id,
            rekey_time: c.rekey_time.as_secs(),
            life_time: c.life_time.as_secs(),
            rand_time: c.rand_time.as_secs(),
            rekey_bytes: c.rekey_bytes,
            life_bytes: c.life_bytes,
            rekey_packets: c.rekey_packets,
            life_packets: c.life_packets,
            replay_window: c.replay_window,
        })
        .collect();
    IkeConfig {
        name: tunnel.name.clone(),
        local: Endpoint::from(tunnel.local),
        remote: tunnel.remote,
        remote_port: tunnel.ike.remote_port,
        local_id: tunnel.local_id.clone(),
        remote_id: tunnel.remote_id.clone(),
        proposals: tunnel.ike.proposals.clone(),
        psk_file,
        manual_keys_file,
        rekey_time: tunnel.ike.rekey_time.as_secs(),
        over_time: tunnel.ike.over_time.as_secs(),
        rand_time: tunnel.ike.rand_time.as_secs(),
        dpd: tunnel.ike.dpd,
        nat_traversal: tunnel.ike.nat_traversal,
        start_action: tunnel.ike.start_action,
        close_action: tunnel.ike.close_action,
        children,
    }
}
