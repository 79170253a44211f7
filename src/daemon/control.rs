//! The control socket: one JSON request per connection, one JSON response, newline-ended.
//! `routevpn up / down / status` are its clients.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where the daemon listens: beside the state file, so `--state-dir` separates instances.
pub fn socket_path(state_dir: Option<&Path>) -> PathBuf {
    state_dir.map_or_else(
        || PathBuf::from("/run/routevpn/routevpn.sock"),
        |dir| dir.join("routevpn.sock"),
    )
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase")]
pub enum Request {
    /// Apply the tunnel's dataplane and initiate; with `wait`, answer once its CHILD SAs
    /// are installed or the attempt failed.
    Up {
        name: String,
        wait: bool,
    },
    /// Delete the IKE SA (telling the peer), remove its SAs and the tunnel's dataplane.
    Down {
        name: String,
    },
    Status,
    /// Rekey the tunnel's CHILD SAs, or with `ike` its IKE SA, now (make-before-break).
    Rekey {
        name: String,
        #[serde(default)]
        ike: bool,
    },
    /// Re-read the profiles and apply them.
    Reload,
    /// Apply every tunnel's dataplane and initiate the IKE tunnels not established yet;
    /// answers at once, naming in `negotiating` the tunnels to wait for (`up --all`).
    #[serde(rename = "up-all")]
    UpAll,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    pub message: String,
    #[serde(default)]
    pub ike_sas: Vec<IkeSaReport>,
    /// Tunnels whose dataplane the kernel refused, waiting for their retry.
    #[serde(default)]
    pub failures: Vec<TunnelFailure>,
    /// The IKE tunnels an `up --all` started or found negotiating.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub negotiating: Vec<String>,
    /// Each tunnel's last failed IKE negotiation, until it works again.
    #[serde(default)]
    pub ike_failures: Vec<IkeFailure>,
    /// IKE tunnels waiting for their `local` address (an HA standby's).
    #[serde(default)]
    pub standby: Vec<StandbyTunnel>,
    /// Connections loaded over VICI (`swanctl --load-all`), which live beside the profiles
    /// until the daemon restarts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runtime_conns: Vec<RuntimeConn>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StandbyTunnel {
    pub name: String,
    pub local: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeConn {
    pub name: String,
    /// False while left out: a credential it needs is not loaded.
    pub applied: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IkeFailure {
    pub name: String,
    /// As the engine words it, e.g. `authentication failed`.
    pub reason: String,
    pub secs_ago: u64,
}

impl Response {
    pub fn ok(message: impl Into<String>) -> Self {
        Response {
            ok: true,
            message: message.into(),
            ..Response::default()
        }
    }

    pub fn error(message: impl Into<String>) -> Self {
        Response {
            ok: false,
            message: message.into(),
            ..Response::default()
        }
    }
}

/// A tunnel left out of the dataplane because the kernel refused it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelFailure {
    pub name: String,
    pub error: String,
    /// Failed attempts in a row.
    pub attempts: u32,
    /// It runs on the profile it last applied with until the retry.
    pub kept_previous: bool,
    pub retry_in_secs: u64,
}

/// An IKE SA as `status --json` shows it (swanctl --list-sas's fields). SPIs are lowercase
/// hex without 0x, as swanctl prints them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IkeSaReport {
    pub name: String,
    pub state: String,
    pub initiator: bool,
    pub local: String,
    pub remote: String,
    pub spi_i: String,
    pub spi_r: String,
    pub ike: Option<String>,
    pub nat_local: bool,
    pub nat_remote: bool,
    pub established_secs: Option<u64>,
    pub children: Vec<ChildSaReport>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildSaReport {
    pub name: String,
    pub state: String,
    pub mode: String,
    pub reqid: u32,
    pub esp: String,
    pub encap: bool,
    pub spi_in: String,
    pub spi_out: String,
    pub bytes_in: u64,
    pub packets_in: u64,
    pub bytes_out: u64,
    pub packets_out: u64,
    pub installed_secs: Option<u64>,
    pub local_ts: Vec<String>,
    pub remote_ts: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("routevpn daemon is not running (no socket at {0})")]
    NotRunning(PathBuf),
    #[error("talking to the daemon at {path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("the daemon sent an answer routevpn cannot read: {0}")]
    Garbled(String),
}

/// Sends one request and waits up to `timeout` for the answer.
pub fn request(
    socket: &Path,
    request: &Request,
    timeout: Duration,
) -> Result<Response, ClientError> {
    let io = |error| ClientError::Io {
        path: socket.to_path_buf(),
        error,
    };
    let mut stream = UnixStream::connect(socket).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
            ClientError::NotRunning(socket.to_path_buf())
        }
        _ => io(e),
    })?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    let mut line =
        serde_json::to_string(request).map_err(|e| ClientError::Garbled(e.to_string()))?;
    line.push('\n');
    stream.write_all(line.as_bytes()).map_err(io)?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).map_err(io)?;
    serde_json::from_str(&answer).map_err(|e| ClientError::Garbled(e.to_string()))
}

/// The tunnels of `names` whose IKE SA is established with CHILD SAs, per `sas`.
pub fn established<'a>(names: &'a [String], sas: &[IkeSaReport]) -> Vec<&'a str> {
    (names.iter())
        .filter(|n| {
            (sas.iter())
                .any(|sa| sa.name == **n && sa.state == "ESTABLISHED" && !sa.children.is_empty())
        })
        .map(String::as_str)
        .collect()
}

/// Asks for the status every `poll` until every tunnel of `names` is established or
/// `deadline` passes, telling `progress` (established, total) each time; returns the
/// tunnels still not established.
pub fn wait_established(
    socket: &Path,
    names: &[String],
    deadline: std::time::Instant,
    poll: Duration,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<String>, ClientError> {
    loop {
        let status = request(socket, &Request::Status, Duration::from_secs(10))?;
        if !status.ok {
            return Err(ClientError::Garbled(status.message));
        }
        let up = established(names, &status.ike_sas);
        progress(up.len(), names.len());
        if up.len() == names.len() || std::time::Instant::now() >= deadline {
            let missing = names.iter().filter(|n| !up.contains(&n.as_str()));
            return Ok(missing.cloned().collect());
        }
        std::thread::sleep(poll);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_tagged_json_lines() {
        let up = Request::Up {
            name: "vti-a".into(),
            wait: true,
        };
        let text = serde_json::to_string(&up).unwrap();
        assert_eq!(text, r#"{"cmd":"up","name":"vti-a","wait":true}"#);
        assert_eq!(serde_json::from_str::<Request>(&text).unwrap(), up);
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"cmd":"status"}"#).unwrap(),
            Request::Status
        );
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"format-disk"}"#).is_err());
        let all = serde_json::to_string(&Request::UpAll).unwrap();
        assert_eq!(all, r#"{"cmd":"up-all"}"#);
    }

    #[test]
    fn the_socket_follows_the_state_dir() {
        assert_eq!(
            socket_path(None),
            PathBuf::from("/run/routevpn/routevpn.sock")
        );
        assert_eq!(
            socket_path(Some(Path::new("/tmp/site-a"))),
            PathBuf::from("/tmp/site-a/routevpn.sock")
        );
    }

    #[test]
    fn a_missing_daemon_reads_as_not_running() {
        let dir = tempfile::tempdir().unwrap();
        let err = request(
            &dir.path().join("routevpn.sock"),
            &Request::Status,
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(matches!(err, ClientError::NotRunning(_)));
        assert!(
            err.to_string().contains("routevpn daemon is not running"),
            "{err}"
        );
    }
}
