//! The two sites of the demo and the profiles each writes: a VTI and a GRE-over-IPsec
//! tunnel between them, each with its own outer address pair and LAN.

use std::io;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use ipnet::IpNet;

pub struct Site {
    pub name: &'static str,
    /// Outer addresses on the veth: the VTI's endpoint, then the GRE tunnel's.
    pub wan: [&'static str; 2],
    /// LAN addresses on the dummy device: behind the VTI, then behind GRE.
    pub lan: [&'static str; 2],
    /// This end's address inside the GRE tunnel.
    pub gre_inner: &'static str,
}

pub const SITES: [Site; 2] = [
    Site {
        name: "a",
        wan: ["192.0.2.1/24", "192.0.2.11/24"],
        lan: ["10.81.1.1/24", "10.81.2.1/24"],
        gre_inner: "172.16.81.1/30",
    },
    Site {
        name: "b",
        wan: ["192.0.2.2/24", "192.0.2.12/24"],
        lan: ["10.82.1.1/24", "10.82.2.1/24"],
        gre_inner: "172.16.81.2/30",
    },
];

pub const TUNNELS: [&str; 2] = ["vti-demo", "gre-demo"];

pub fn net(text: &str) -> IpNet {
    text.parse().expect("the demo's addresses are valid")
}

pub fn host(text: &str) -> IpAddr {
    net(text).addr()
}

impl Site {
    pub fn other(&self) -> &'static Site {
        if self.name == "a" {
            &SITES[1]
        } else {
            &SITES[0]
        }
    }
}

/// The profile text of both tunnels of `site`, by file name.
pub fn render(site: &Site) -> [(String, String); 2] {
    let peer = site.other();
    let vti = format!(
        r#"# The demo's VTI: routed traffic between the two LANs, ESP in tunnel mode.
kind = "vti"
local = "{local}"
remote = "{remote}"

[ike]
proposals = ["aes256gcm16-prfsha384-x25519"]
psk_file = "../secrets/demo.psk"
start_action = "none"

[[child]]
local_ts = ["{local_lan}"]
remote_ts = ["{remote_lan}"]
esp_proposals = ["aes256gcm16-x25519"]

[interface]
name = "vti-demo"
addresses = ["{inner}/32"]

[[route]]
to = "{remote_lan}"
src = "{inner}"
"#,
        local = host(site.wan[0]),
        remote = host(peer.wan[0]),
        local_lan = net(site.lan[0]).trunc(),
        remote_lan = net(peer.lan[0]).trunc(),
        inner = host(site.lan[0]),
    );
    let gre = format!(
        r#"# The demo's GRE over IPsec: GRE between the endpoints, protected by ESP in transport mode.
kind = "gre"
local = "{local}"
remote = "{remote}"

[ike]
proposals = ["aes128gcm16-prfsha256-ecp256"]
psk_file = "../secrets/demo.psk"
start_action = "none"

[[child]]
esp_proposals = ["aes128gcm16"]

[interface]
name = "gre-demo"
addresses = ["{inner}"]

[[route]]
to = "{remote_lan}"
src = "{src}"
"#,
        local = host(site.wan[1]),
        remote = host(peer.wan[1]),
        inner = site.gre_inner,
        remote_lan = net(peer.lan[1]).trunc(),
        src = host(site.lan[1]),
    );
    [
        ("vti-demo.toml".to_string(), vti),
        ("gre-demo.toml".to_string(), gre),
    ]
}

/// Writes `site`'s profiles under `dir/tunnels` and the shared key under `dir/secrets`.
pub fn write(dir: &Path, site: &Site, psk: &str) -> io::Result<()> {
    let tunnels = dir.join("tunnels");
    let secrets = dir.join("secrets");
    std::fs::create_dir_all(&tunnels)?;
    std::fs::create_dir_all(&secrets)?;
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o700))?;
    let key = secrets.join("demo.psk");
    std::fs::write(&key, format!("{psk}\n"))?;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
    for (file, text) in render(site) {
        std::fs::write(tunnels.join(file), text)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::LocalEndpoint;
    use crate::profile::{load, Options};

    #[test]
    fn both_sites_profiles_are_valid_and_mirror_each_other() {
        let root = tempfile::tempdir().unwrap();
        let mut loaded_sites = Vec::new();
        for site in &SITES {
            let dir = root.path().join(site.name);
            write(&dir, site, "0x00112233445566778899aabbccddeeff").unwrap();
            let loaded = load(
                &[dir.join("tunnels")],
                Options {
                    insecure_secrets: true,
                },
            );
            assert!(loaded.errors().next().is_none(), "{:?}", loaded.diagnostics);
            let mut tunnels = loaded.tunnels.unwrap();
            tunnels.sort_by(|x, y| x.name.cmp(&y.name));
            let names: Vec<&str> = tunnels.iter().map(|t| t.name.as_str()).collect();
            assert_eq!(names, ["gre-demo", "vti-demo"]);
            loaded_sites.push(tunnels);
        }
        for (a, b) in loaded_sites[0].iter().zip(&loaded_sites[1]) {
            assert_eq!(a.local, LocalEndpoint::Address(b.remote), "{}", a.name);
            assert_eq!(b.local, LocalEndpoint::Address(a.remote), "{}", a.name);
        }
    }
}
