//! What the engine is given for each tunnel: swanctl.conf's connection and children, with
//! the marks / if_ids / reqids the plan chose. The plan builds these (`plan::ike`).

use std::net::IpAddr;

use serde::Serialize;

use super::choices::{
    Dpd, Identity, Mode, NatTraversal, StartAction, CHILD_REKEY_TIME, IKE_REKEY_TIME, REPLAY_WINDOW,
};
use crate::ike::ts::TrafficSelector;
use crate::proposal::{EspProposal, IkeProposal};

#[derive(Clone, Debug, Serialize)]
pub struct IkeConfig {
    pub name: String,
    pub remote: IpAddr,
    pub remote_port: u16,
    /// `None`: the local outer address, once known.
    pub local_id: Option<Identity>,
    pub remote_id: Identity,
    #[serde(serialize_with = "display_list")]
    pub proposals: Vec<IkeProposal>,
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
            replay_window: REPLAY_WINDOW,
        }
    }
}

impl IkeConfig {
    /// A connection to `remote` (its identity: the address) with the profile defaults:
    /// rekey 4 h, DPD 30 s / 150 s / restart, NAT-T auto, no start or close action. For
    /// embedding the engine without profiles.
    pub fn new(
        name: &str,
        remote: IpAddr,
        proposals: Vec<IkeProposal>,
        children: Vec<ChildConfig>,
    ) -> Self {
        let rekey = IKE_REKEY_TIME.as_secs();
        IkeConfig {
            name: name.to_owned(),
            remote,
            remote_port: 500,
            local_id: None,
            remote_id: Identity::Address(remote),
            proposals,
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

pub(crate) fn display_list<T: std::fmt::Display, S: serde::Serializer>(
    list: &[T],
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_seq(list.iter().map(ToString::to_string))
}
