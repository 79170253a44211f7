//! A host with the example profiles and an in-memory kernel, its state files in a tempdir.

use std::collections::BTreeSet;
use std::path::PathBuf;

use routevpn::apply::kernel::{Egress, FakeKernel};
use routevpn::apply::objects::{Object, ObjectKey, Route, RouteType, Sysctl, MAIN_TABLE};
use routevpn::apply::state::Paths;
use routevpn::apply::{self, ApplyError};
use routevpn::model::Tunnel;
use routevpn::profile::{self, Options};

pub fn examples() -> Vec<Tunnel> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("profiles");
    profile::load(&[dir], Options::default())
        .tunnels
        .expect("examples load")
}

pub struct Host {
    pub kernel: FakeKernel,
    pub paths: Paths,
    pub dir: tempfile::TempDir,
    pub tunnels: Vec<Tunnel>,
}

pub fn user_route() -> Object {
    Object::Route(Route {
        table: MAIN_TABLE,
        to: "10.99.0.0/16".parse().unwrap(),
        metric: 0,
        route_type: RouteType::Unicast,
        device: None,
        via: Some("192.0.2.254".parse().unwrap()),
        src: None,
        protocol: 4, // static, as `ip route add` makes it
    })
}

/// A kernel holding what the host had before routevpn: a user's route and a sysctl that
/// routevpn changes (so teardown must restore it).
pub fn host_kernel() -> FakeKernel {
    let mut kernel = FakeKernel::default();
    // The datacenter profile uses %defaultroute: the fake kernel routes its peer via eth0.
    kernel.egress.insert(
        "198.51.100.20".parse().unwrap(),
        Egress {
            source: "10.1.1.246".parse().unwrap(),
            device: "eth0".into(),
            mtu: 9001,
        },
    );
    let global = Sysctl {
        key: "net.ipv6.conf.all.forwarding".into(),
        value: "0".into(),
    };
    kernel.objects.insert(
        ObjectKey::Sysctl {
            key: global.key.clone(),
        },
        Object::Sysctl(global),
    );
    let route = user_route();
    kernel.objects.insert(route.key(), route);
    kernel
}

/// A private directory, in memory where possible: every apply syncs its files to disk.
pub fn state_dir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    }
}

pub fn host() -> Host {
    let dir = state_dir();
    let paths = Paths {
        state: dir.path().join("run/state.json"),
        allocations: dir.path().join("lib/alloc.json"),
    };
    Host {
        kernel: host_kernel(),
        paths,
        dir,
        tunnels: examples(),
    }
}

pub fn all(h: &Host) -> BTreeSet<String> {
    h.tunnels.iter().map(|t| t.name.clone()).collect()
}

impl Host {
    pub fn apply(&mut self, enabled: &BTreeSet<String>) -> Result<apply::Outcome, ApplyError> {
        apply::apply(&mut self.kernel, &self.tunnels, enabled, &self.paths).map(|(o, _)| o)
    }
}
