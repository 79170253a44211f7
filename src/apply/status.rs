//! `routevpn status`: each tunnel's objects as the kernel holds them, against the plan.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::objects::{Object, ObjectKey, Owned};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presence {
    /// Exactly as planned.
    Present,
    /// Exists with other values (drift): `apply` repairs it.
    Differs,
    /// Missing: `apply` creates it.
    Missing,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectStatus {
    pub key: ObjectKey,
    pub presence: Presence,
}

/// An installed SA as the kernel reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaStatus {
    pub reqid: u32,
    pub spi: u32,
    pub src: std::net::IpAddr,
    pub dst: std::net::IpAddr,
    pub algorithms: String,
    pub bytes: u64,
    pub packets: u64,
    /// Seconds since the SA was added.
    pub age: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunnelStatus {
    pub name: String,
    pub objects: Vec<ObjectStatus>,
    pub sas: Vec<SaStatus>,
}

impl TunnelStatus {
    pub fn missing(&self) -> usize {
        self.objects
            .iter()
            .filter(|o| o.presence != Presence::Present)
            .count()
    }
}

/// Groups the desired objects by tunnel and says how the kernel holds each.
/// `reqids` maps each tunnel to its children's reqids, to attach the SAs.
pub fn report(
    desired: &[Owned],
    live: &[Object],
    sas: &[SaStatus],
    reqids: &BTreeMap<String, Vec<u32>>,
) -> Vec<TunnelStatus> {
    let live: BTreeMap<ObjectKey, &Object> = live.iter().map(|o| (o.key(), o)).collect();
    let mut tunnels: BTreeMap<String, TunnelStatus> = BTreeMap::new();
    for owned in desired {
        let name = owned.tunnel.clone().unwrap_or_else(|| "(shared)".into());
        let key = owned.object.key();
        let presence = match live.get(&key) {
            Some(found) if **found == owned.object => Presence::Present,
            Some(_) => Presence::Differs,
            None => Presence::Missing,
        };
        tunnels
            .entry(name.clone())
            .or_insert_with(|| TunnelStatus {
                name,
                objects: vec![],
                sas: vec![],
            })
            .objects
            .push(ObjectStatus { key, presence });
    }
    for (name, ids) in reqids {
        if let Some(t) = tunnels.get_mut(name) {
            t.sas = sas
                .iter()
                .filter(|sa| ids.contains(&sa.reqid))
                .cloned()
                .collect();
        }
    }
    tunnels.into_values().collect()
}

pub fn render(tunnels: &[TunnelStatus]) -> String {
    let mut out = String::new();
    for t in tunnels {
        let state = match t.missing() {
            0 => "in place".to_string(),
            n => format!("{n} object(s) missing or different: run `routevpn apply`"),
        };
        let _ = writeln!(out, "{}: {state}", t.name);
        for o in &t.objects {
            let mark = match o.presence {
                Presence::Present => "ok     ",
                Presence::Differs => "differs",
                Presence::Missing => "missing",
            };
            let _ = writeln!(out, "  {mark} {}", o.key);
        }
        if t.name != "(shared)" {
            if t.sas.is_empty() {
                let _ = writeln!(
                    out,
                    "  no SAs installed: traffic for this tunnel is dropped"
                );
            }
            for sa in &t.sas {
                let _ = writeln!(
                    out,
                    "  sa {:08x} {} -> {} {} reqid {} {} bytes {} packets {}s old",
                    sa.spi, sa.src, sa.dst, sa.algorithms, sa.reqid, sa.bytes, sa.packets, sa.age
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::objects::Sysctl;

    fn sysctl(key: &str, value: &str) -> Object {
        Object::Sysctl(Sysctl {
            key: key.into(),
            value: value.into(),
        })
    }

    #[test]
    fn presence_of_each_object() {
        let desired = vec![
            Owned {
                tunnel: Some("a".into()),
                object: sysctl("k1", "1"),
            },
            Owned {
                tunnel: Some("a".into()),
                object: sysctl("k2", "1"),
            },
            Owned {
                tunnel: Some("a".into()),
                object: sysctl("k3", "1"),
            },
        ];
        let live = vec![sysctl("k1", "1"), sysctl("k2", "0")];
        let sas = vec![SaStatus {
            reqid: 7,
            spi: 0xc0ffee,
            src: "192.0.2.1".parse().unwrap(),
            dst: "192.0.2.2".parse().unwrap(),
            algorithms: "rfc4106(gcm(aes))".into(),
            bytes: 840,
            packets: 10,
            age: 3,
        }];
        let reqids = BTreeMap::from([("a".to_string(), vec![7])]);
        let report = report(&desired, &live, &sas, &reqids);
        assert_eq!(report.len(), 1);
        let presences: Vec<Presence> = report[0].objects.iter().map(|o| o.presence).collect();
        assert_eq!(
            presences,
            vec![Presence::Present, Presence::Differs, Presence::Missing]
        );
        assert_eq!(report[0].missing(), 2);
        let text = render(&report);
        assert!(text.contains("a: 2 object(s) missing or different"));
        assert!(text.contains(
            "sa 00c0ffee 192.0.2.1 -> 192.0.2.2 rfc4106(gcm(aes)) reqid 7 840 bytes 10 packets"
        ));
    }
}
