//! `routevpn doctor` against a real kernel: a network namespace of its own with faults
//! planted (a more specific route elsewhere, an nftables drop of UDP 500, a strict
//! rp_filter on the device, a foreign XFRM policy shadowing ours), read back by the facts
//! gathering and named by the checks. Needs root; the host has no VTI, so a veth device
//! stands in for the tunnel device. `ip` and `nft` only plant the faults.

#[allow(dead_code)]
#[path = "netlink_nft/support.rs"]
mod support;

use std::path::PathBuf;
use std::time::Duration;

use routevpn::doctor::{self, gather, Finding, Severity};
use routevpn::plan::{self, TunnelPlan};
use routevpn::profile::{self, Options};
use support::{fresh_netns, ip, nft_script};

fn vti_telecom() -> TunnelPlan {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("profiles");
    let tunnels = profile::load(&[dir], Options::default())
        .tunnels
        .expect("example profiles load");
    plan::build(&tunnels, &plan::Context::default())
        .tunnels
        .into_iter()
        .find(|t| t.name == "vti-telecom")
        .expect("vti-telecom")
}

/// Writes `value` to a sysctl of the calling thread's namespace.
fn sysctl(key: &str, value: &str) {
    let path = PathBuf::from("/proc/sys").join(key.replace('.', "/"));
    std::fs::write(&path, value).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// The tunnel's dataplane as apply would leave it, with a veth for the VTI.
fn plant_tunnel(tunnel: &TunnelPlan) {
    ip("link add eth0 type veth peer name eth0-peer");
    ip("link set eth0-peer up");
    ip("addr add 10.0.1.1/24 dev eth0");
    ip("link set eth0 up");
    ip("route add default via 10.0.1.254 dev eth0");
    let dev = &tunnel.link.name;
    ip(&format!(
        "link add {dev} mtu {} type veth peer name tunnel-peer",
        tunnel.link.mtu
    ));
    ip("link set tunnel-peer up");
    ip(&format!("addr add 192.168.1.1/32 dev {dev}"));
    ip(&format!("link set {dev} up"));
    ip(&format!(
        "route add 192.168.255.0/24 dev {dev} src 192.168.1.1 proto 210"
    ));
    for s in &tunnel.sysctls {
        sysctl(&s.key, &s.value);
    }
}

fn diagnose(tunnel: &TunnelPlan) -> Vec<Finding> {
    let dir = tempfile::tempdir().unwrap();
    let options = gather::Options {
        interval: Duration::from_millis(100),
        control_socket: dir.path().join("no-daemon.sock"),
        frr_dir: dir.path().join("no-frr"),
    };
    let facts = gather::gather(std::slice::from_ref(tunnel), &options).expect("facts");
    doctor::diagnose(&facts, std::slice::from_ref(tunnel))
}

fn named(findings: &[Finding], check: &str, text: &str) -> bool {
    findings
        .iter()
        .any(|f| f.check == check && f.severity >= Severity::Warning && f.message.contains(text))
}

#[test]
fn planted_faults_are_found_in_a_real_namespace() {
    fresh_netns();
    let tunnel = vti_telecom();
    plant_tunnel(&tunnel);
    let before = diagnose(&tunnel);
    for (check, text) in [
        ("routes", "192.168.255.0/25"),
        ("nftables", "IKE (UDP 500)"),
        ("sysctls", "rp_filter is 1"),
        ("xfrm", "reqid 77"),
    ] {
        assert!(
            !named(&before, check, text),
            "{check} before planting: {before:#?}"
        );
    }

    ip("route add 192.168.255.0/25 dev eth0");
    nft_script(
        "table inet filter {\n chain input {\n type filter hook input priority 0\n udp dport 500 counter drop\n }\n}\n",
    );
    sysctl("net.ipv4.conf.vti-telecom.rp_filter", "1");
    ip(
        "xfrm policy add src 192.168.1.1/32 dst 192.168.255.0/24 dir out priority 100 \
        tmpl src 10.0.1.1 dst 10.0.255.1 proto esp reqid 77 mode tunnel",
    );

    let after = diagnose(&tunnel);
    for (check, text) in [
        ("routes", "192.168.255.0/25 dev eth0"),
        ("nftables", "a rule drops IKE (UDP 500)"),
        ("sysctls", "net.ipv4.conf.vti-telecom.rp_filter is 1"),
        ("xfrm", "reqid 77"),
    ] {
        assert!(
            named(&after, check, text),
            "{check}: {text} not in {after:#?}"
        );
    }
    assert_eq!(doctor::exit_code(&after), 1);
}

/// `routevpn doctor ARGS` on the example profiles with an empty state directory.
fn doctor_cli(args: &[&str]) -> std::process::Output {
    let profiles = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("profiles");
    let state = tempfile::tempdir().unwrap();
    std::process::Command::new(env!("CARGO_BIN_EXE_routevpn"))
        .arg("--config-dir")
        .arg(&profiles)
        .arg("--state-dir")
        .arg(state.path())
        .arg("doctor")
        .args(args)
        .output()
        .expect("run routevpn")
}

#[test]
fn an_unknown_tunnel_means_doctor_could_not_run() {
    let out = doctor_cli(&["no-such-tunnel"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no tunnel named \"no-such-tunnel\""));
}

#[test]
fn without_a_name_and_with_nothing_enabled_doctor_could_not_run() {
    let out = doctor_cli(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no tunnel is enabled"));
}
