//! FRR's OSPF and PIM neighbors and BGP peers, best effort: read from the daemons' vty
//! sockets the way vtysh does, no program started. Absent FRR (no socket, no answer) means
//! nothing to judge.

use std::io::{Read, Write};
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use super::facts::{BgpPeer, OspfNeighbor, PimNeighbor};

/// FRR's OSPF neighbors through ospfd's vty socket; `None` when ospfd does not answer.
pub fn ospf_neighbors(frr_dir: &Path) -> Option<Vec<OspfNeighbor>> {
    parse_ospf_neighbors(&vty_command(
        frr_dir,
        "ospfd",
        "show ip ospf neighbor json",
    )?)
}

/// FRR's PIM neighbors through pimd's vty socket; `None` when pimd does not answer.
pub fn pim_neighbors(frr_dir: &Path) -> Option<Vec<PimNeighbor>> {
    parse_pim_neighbors(&vty_command(frr_dir, "pimd", "show ip pim neighbor json")?)
}

/// bgpd's peers of every address family; `None` when bgpd does not answer.
pub fn bgp_peers(frr_dir: &Path) -> Option<Vec<BgpPeer>> {
    parse_bgp_peers(&vty_command(frr_dir, "bgpd", "show bgp summary json")?)
}

/// `command`'s answer from `daemon`'s vty socket, in the protocol vtysh speaks: the command
/// NUL-terminated; the answer ends with three NULs and a status byte. `None` when the
/// daemon does not answer (FRR absent): the FRR checks are best effort.
fn vty_command(frr_dir: &Path, daemon: &str, command: &str) -> Option<String> {
    let socket = frr_dir.join(format!("{daemon}.vty"));
    let mut stream = std::os::unix::net::UnixStream::connect(socket).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .write_all(&[command.as_bytes(), b"\0"].concat())
        .ok()?;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    while !(answer.len() >= 4 && answer[answer.len() - 4..answer.len() - 1] == [0, 0, 0]) {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 || answer.len() > 1 << 22 {
            return None;
        }
        answer.extend_from_slice(&chunk[..n]);
    }
    answer.truncate(answer.len() - 4);
    Some(String::from_utf8_lossy(&answer).into_owned())
}

/// `{"neighbors": {"ROUTER-ID": [{"nbrState": "ExStart/DR", "ifaceName": "vti0:10.0.0.1"}]}}`
/// (older FRR: `state` instead of `nbrState`).
pub fn parse_ospf_neighbors(json: &str) -> Option<Vec<OspfNeighbor>> {
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    let mut out = Vec::new();
    for (router_id, entries) in value.get("neighbors")?.as_object()? {
        for entry in entries.as_array()? {
            let field = |k: &str| entry.get(k).and_then(|v| v.as_str());
            let state = field("nbrState").or_else(|| field("state"))?;
            let iface = field("ifaceName")?;
            out.push(OspfNeighbor {
                router_id: router_id.clone(),
                state: state.to_string(),
                device: iface.split(':').next().unwrap_or(iface).to_string(),
            });
        }
    }
    Some(out)
}

/// `{"gre1": {"169.254.104.2": {"interface": "gre1", "neighbor": "169.254.104.2", ...}}}`:
/// interfaces, then neighbors by address.
pub fn parse_pim_neighbors(json: &str) -> Option<Vec<PimNeighbor>> {
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    let mut out = Vec::new();
    for (device, neighbors) in value.as_object()? {
        for address in neighbors.as_object()?.keys() {
            out.push(PimNeighbor {
                device: device.clone(),
                address: address.parse::<IpAddr>().ok()?,
            });
        }
    }
    Some(out)
}

/// `{"ipv4Unicast": {"peers": {"169.254.31.1": {"state": "Established", "peerState":
/// "Policy"}}}, "ipv6Unicast": ...}`: one entry per peer and family. FRR's `peerState` is
/// "Policy" while `bgp ebgp-requires-policy` discards the peer's updates for want of a
/// route-map.
pub fn parse_bgp_peers(json: &str) -> Option<Vec<BgpPeer>> {
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    let mut out = Vec::new();
    for (family, summary) in value.as_object()? {
        let Some(peers) = summary.get("peers").and_then(|p| p.as_object()) else {
            continue;
        };
        for (address, peer) in peers {
            let field = |k: &str| peer.get(k).and_then(|v| v.as_str());
            // Peers named by interface (unnumbered) have no address to place on a tunnel.
            let Ok(address) = address.parse::<IpAddr>() else {
                continue;
            };
            out.push(BgpPeer {
                address,
                family: family.clone(),
                state: field("state")?.to_string(),
                policy_missing: field("peerState") == Some("Policy"),
            });
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frr_neighbor_json_is_read() {
        let json = r#"{"neighbors":{"10.255.0.2":[{"nbrState":"ExStart/DROther","ifaceName":"vti0:10.9.0.1"}]}}"#;
        let n = parse_ospf_neighbors(json).unwrap();
        assert_eq!(n[0].device, "vti0");
        assert_eq!(n[0].state, "ExStart/DROther");
        assert_eq!(parse_ospf_neighbors("garbage"), None);
    }

    #[test]
    fn frr_pim_neighbor_json_is_read() {
        let json = r#"{"gre-to-b":{"169.254.104.2":{"interface":"gre-to-b","neighbor":"169.254.104.2"}},"lan":{}}"#;
        let n = parse_pim_neighbors(json).unwrap();
        assert_eq!(
            n,
            [PimNeighbor {
                device: "gre-to-b".into(),
                address: "169.254.104.2".parse().unwrap(),
            }]
        );
        assert_eq!(parse_pim_neighbors("{}"), Some(vec![]));
        assert_eq!(
            parse_pim_neighbors(r#"{"gre1":{"not-an-address":{}}}"#),
            None
        );
        assert_eq!(parse_pim_neighbors("garbage"), None);
    }

    #[test]
    fn frr_bgp_summary_json_is_read() {
        // FRR 8.4's answer, abridged: an eBGP peer held by ebgp-requires-policy, one without
        // that problem, an unnumbered one (no address).
        let json = r#"{"ipv4Unicast":{"routerId":"10.255.0.2","as":64512,"peers":{
            "169.254.31.2":{"remoteAs":65001,"pfxRcd":0,"pfxSnt":0,"state":"Established","peerState":"Policy"},
            "10.2.0.100":{"remoteAs":64512,"state":"Active","peerState":"OK"},
            "eth1":{"state":"Idle","peerState":"OK"}}},
            "ipv6Unicast":{}}"#;
        let peers = parse_bgp_peers(json).unwrap();
        assert_eq!(peers.len(), 2, "{peers:?}");
        let held = peers
            .iter()
            .find(|p| p.address.to_string() == "169.254.31.2");
        let held = held.expect("the peer");
        assert_eq!(
            (held.state.as_str(), held.policy_missing),
            ("Established", true)
        );
        assert_eq!(held.family, "ipv4Unicast");
        assert!(peers
            .iter()
            .any(|p| p.state == "Active" && !p.policy_missing));
        assert_eq!(parse_bgp_peers("garbage"), None);
    }

    #[test]
    fn the_vty_protocol_is_spoken_and_frr_absent_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(ospf_neighbors(dir.path()), None);
        let listener =
            std::os::unix::net::UnixListener::bind(dir.path().join("ospfd.vty")).unwrap();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut command = Vec::new();
            let mut byte = [0u8; 1];
            while stream.read(&mut byte).unwrap() == 1 && byte[0] != 0 {
                command.push(byte[0]);
            }
            let json = r#"{"neighbors":{"10.255.0.2":[{"nbrState":"Exchange/DR","ifaceName":"gre1:10.9.0.1"}]}}"#;
            // The answer in two writes, ending with the terminator and status 0.
            stream.write_all(json.as_bytes()).unwrap();
            stream.write_all(&[0, 0, 0, 0]).unwrap();
            String::from_utf8(command).unwrap()
        });
        let neighbors = ospf_neighbors(dir.path()).expect("answer");
        assert_eq!(server.join().unwrap(), "show ip ospf neighbor json");
        assert_eq!(neighbors[0].device, "gre1");
        assert_eq!(neighbors[0].state, "Exchange/DR");
    }
}
