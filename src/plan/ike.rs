//! What the IKE side of a tunnel is planned as: the engine's connection settings
//! ([`IkeConfig`], owned by the engine) with the marks / if_ids / reqids the plan chose, and
//! where the daemon finds the local address and the credentials. Secrets stay paths.

use std::ops::Deref;
use std::path::PathBuf;

use serde::Serialize;

use super::{Allocations, Endpoint};
use crate::ike::engine::{ChildConfig, IkeConfig};
use crate::model::{Auth, IkeAuth, Tunnel, TunnelKind};

#[derive(Clone, Debug, Serialize)]
pub struct IkePlan {
    pub local: Endpoint,
    /// How each side authenticates; `None` with manual keying. Secret paths are shown as
    /// [`crate::profile::shown_secret_path`] shows them.
    pub auth: Option<IkeAuth>,
    /// Manual keying (a debugging aid): the dataplane installs these SAs, no IKE runs.
    #[serde(serialize_with = "secret_path")]
    pub manual_keys_file: Option<PathBuf>,
    /// What the engine runs.
    #[serde(flatten)]
    pub connection: IkeConfig,
}

/// The plan reads the connection's settings as its own (`tunnel.ike.children`).
impl Deref for IkePlan {
    type Target = IkeConfig;

    fn deref(&self) -> &IkeConfig {
        &self.connection
    }
}

/// A secret file's path as [`crate::profile::shown_secret_path`] shows it.
fn secret_path<S: serde::Serializer>(path: &Option<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
    match path {
        Some(path) => s.serialize_some(&crate::profile::shown_secret_path(path)),
        None => s.serialize_none(),
    }
}

pub fn config(tunnel: &Tunnel, allocations: &Allocations) -> IkePlan {
    let (auth, manual_keys_file) = match &tunnel.ike.auth {
        Auth::Ike(auth) => (Some(auth.clone()), None),
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
        })
        .collect();
    let connection = IkeConfig {
        name: tunnel.name.clone(),
        remote: tunnel.remote,
        remote_port: tunnel.ike.remote_port,
        local_id: tunnel.local_id.clone(),
        remote_id: tunnel.remote_id.clone(),
        proposals: tunnel.ike.proposals.clone(),
        rekey_time: tunnel.ike.rekey_time.as_secs(),
        over_time: tunnel.ike.over_time.as_secs(),
        rand_time: tunnel.ike.rand_time.as_secs(),
        dpd: tunnel.ike.dpd,
        nat_traversal: tunnel.ike.nat_traversal,
        start_action: tunnel.ike.start_action,
        close_action: tunnel.ike.close_action,
        children,
    };
    IkePlan {
        local: Endpoint::from(tunnel.local),
        auth,
        manual_keys_file,
        connection,
    }
}
