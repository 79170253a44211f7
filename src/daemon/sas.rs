//! The engine's Child SAs as XFRM states: what `InstallChildSa` and `DeleteChildSa` mean for
//! the kernel, and the record of what the daemon installed, so that `down`, shutdown and a
//! failed install remove exactly those.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::apply::diff::Change;
use crate::apply::kernel::{Kernel, KernelError};
use crate::apply::objects::{KeyMaterial, Object, Owned, Sa};
use crate::ike::crypto::Secret;
use crate::ike::engine::{ChildSaInstall, ChildSaRef, SaDirection};
use crate::model::{Tunnel, REPLAY_WINDOW};

/// What identifies an IKE child's SAs in the kernel: reqid -> (mark, if_id). Deleting a
/// state needs its mark and if_id besides the address and SPI.
pub type Children = BTreeMap<u32, (Option<u32>, Option<u32>)>;

/// The children of the plan's IKE tunnels (not those keyed by hand: `apply` owns theirs).
pub fn children(plan: &crate::plan::Plan) -> Children {
    (plan.tunnels.iter())
        .filter(|t| t.ike.auth.is_some())
        .flat_map(|t| t.ike.children.iter())
        .map(|c| (c.reqid, (c.mark, c.if_id)))
        .collect()
}

/// The two states of a Child SA: inbound first (the peer may use its SA as soon as it has
/// our answer), then outbound. `replay_window` is the child's, in packets.
pub fn states(install: &ChildSaInstall, replay_window: u32) -> [Sa; 2] {
    let state = |d: &SaDirection, encap: Option<(u16, u16)>| Sa {
        src: d.src,
        dst: d.dst,
        spi: d.spi,
        mode: install.mode,
        reqid: install.reqid,
        mark: install.mark,
        if_id: install.if_id,
        encryption: install.algorithms.encryption,
        key: KeyMaterial(d.encryption_key.clone()),
        integrity: install
            .algorithms
            .integrity
            .map(|i| (i, KeyMaterial(d.integrity_key.clone()))),
        encap,
        lifetimes: Some(install.lifetimes),
        esn: install.algorithms.esn,
        replay_window,
    };
    let ports = install.encap.map(|e| (e.local_port, e.remote_port));
    [
        state(&install.inbound, ports.map(|(l, r)| (r, l))),
        state(&install.outbound, ports),
    ]
}

/// The SAs the daemon installed, per connection.
#[derive(Debug, Default)]
pub struct Installed {
    by_connection: BTreeMap<String, Vec<Sa>>,
    /// Outbound states held back (`defer_outbound`), by connection and outbound SPI.
    deferred: BTreeMap<(String, u32), Sa>,
}

fn create(sa: &Sa, connection: &str) -> Change {
    Change::Create(Owned {
        tunnel: Some(connection.to_owned()),
        object: Object::Sa(sa.clone()),
    })
}

/// The record of an installed state: deleting it needs its address, SPI and mark, not
/// its keys, which stay in the kernel only.
fn without_keys(mut sa: Sa) -> Sa {
    sa.key = KeyMaterial(Secret::default());
    if let Some((_, key)) = sa.integrity.as_mut() {
        *key = KeyMaterial(Secret::default());
    }
    sa
}

fn delete(sa: &Sa) -> Change {
    Change::Delete {
        object: Object::Sa(sa.clone()),
        implied: Vec::new(),
    }
}

impl Installed {
    /// Installs both states, or neither: if the second fails, the first is removed. With
    /// `defer_outbound`, the outbound state waits for `activate_outbound`.
    pub fn install(
        &mut self,
        kernel: &mut dyn Kernel,
        install: &ChildSaInstall,
        replay_window: u32,
    ) -> Result<(), KernelError> {
        let [inbound, outbound] = states(install, replay_window);
        let (pair, deferred) = if install.defer_outbound {
            (vec![inbound], Some(outbound))
        } else {
            (vec![inbound, outbound], None)
        };
        let changes: Vec<Change> = pair
            .iter()
            .map(|sa| create(sa, &install.connection))
            .collect();
        let results = kernel.execute(&changes);
        if let Some(Err(error)) = results.iter().find(|r| r.is_err()) {
            let undo: Vec<Change> = (pair.iter().zip(&results))
                .filter(|(_, r)| r.is_ok())
                .map(|(sa, _)| delete(sa))
                .collect();
            kernel.execute(&undo);
            return Err(error.clone());
        }
        if let Some(outbound) = deferred {
            let key = (install.connection.clone(), outbound.spi);
            self.deferred.insert(key, outbound);
        }
        (self
            .by_connection
            .entry(install.connection.clone())
            .or_default())
        .extend(pair.into_iter().map(without_keys));
        Ok(())
    }

    /// Installs the outbound state `install` held back.
    pub fn activate_outbound(
        &mut self,
        kernel: &mut dyn Kernel,
        child: &ChildSaRef,
    ) -> Result<(), KernelError> {
        let key = (child.connection.clone(), child.outbound_spi);
        let Some(sa) = self.deferred.remove(&key) else {
            return Ok(());
        };
        if let Some(Err(e)) = kernel.execute(&[create(&sa, &child.connection)]).pop() {
            return Err(e);
        }
        (self
            .by_connection
            .entry(child.connection.clone())
            .or_default())
        .push(without_keys(sa));
        Ok(())
    }

    /// Removes the pair `child` names (both SPIs), if we installed it.
    pub fn remove(&mut self, kernel: &mut dyn Kernel, child: &ChildSaRef) -> Vec<KernelError> {
        self.deferred
            .remove(&(child.connection.clone(), child.outbound_spi));
        let Some(list) = self.by_connection.get_mut(&child.connection) else {
            return Vec::new();
        };
        let is_pair = |sa: &Sa| {
            (sa.spi == child.inbound_spi && sa.dst == child.local)
                || (sa.spi == child.outbound_spi && sa.dst == child.remote)
        };
        let doomed: Vec<Sa> = list.iter().filter(|sa| is_pair(sa)).cloned().collect();
        list.retain(|sa| !is_pair(sa));
        delete_all(kernel, &doomed)
    }

    /// Removes every SA of `connection` (down, or the daemon stopping).
    pub fn remove_connection(
        &mut self,
        kernel: &mut dyn Kernel,
        connection: &str,
    ) -> Vec<KernelError> {
        self.deferred.retain(|(c, _), _| c != connection);
        let doomed = self.by_connection.remove(connection).unwrap_or_default();
        delete_all(kernel, &doomed)
    }

    /// Whether any SA of `connection` is installed (a deferred outbound one waits for its
    /// inbound partner, which counts).
    pub fn holds_sas(&self, connection: &str) -> bool {
        self.by_connection
            .get(connection)
            .is_some_and(|sas| !sas.is_empty())
    }

    pub fn connections(&self) -> Vec<String> {
        self.by_connection.keys().cloned().collect()
    }

    /// Deletes the ESP states with a reqid of `children` that the daemon did not install:
    /// those of a daemon that was killed, whose keys the kernel would otherwise keep until
    /// their hard lifetime. Returns how many went. SPI 0 marks an acquire, not an SA.
    pub fn sweep_orphans(
        &self,
        kernel: &mut dyn Kernel,
        children: &Children,
    ) -> Result<usize, KernelError> {
        let ours: BTreeSet<(IpAddr, u32)> = (self.by_connection.values().flatten())
            .chain(self.deferred.values())
            .map(|sa| (sa.dst, sa.spi))
            .collect();
        let orphans: Vec<Sa> = (kernel.sa_status()?.iter())
            .filter(|s| s.spi != 0 && !ours.contains(&(s.dst, s.spi)))
            .filter_map(|s| {
                let &(mark, if_id) = children.get(&s.reqid)?;
                Some(to_delete(s, mark, if_id))
            })
            .collect();
        match delete_all(kernel, &orphans).into_iter().next() {
            Some(error) => Err(error),
            None => Ok(orphans.len()),
        }
    }
}

/// A state to delete: the kernel finds it by destination, SPI, mark and if_id; the
/// algorithm and keys are placeholders the delete request does not carry.
fn to_delete(s: &crate::apply::status::SaStatus, mark: Option<u32>, if_id: Option<u32>) -> Sa {
    Sa {
        src: s.src,
        dst: s.dst,
        spi: s.spi,
        mode: crate::model::Mode::Tunnel,
        reqid: s.reqid,
        mark,
        if_id,
        encryption: crate::proposal::Encryption::AesGcm16(128),
        key: KeyMaterial(Secret::default()),
        integrity: None,
        encap: None,
        lifetimes: None,
        esn: false,
        replay_window: 0,
    }
}

/// The replay window `install`'s child asks for; the default for a child no profile names
/// any more (removed by a reload while it was negotiated).
pub fn replay_window(tunnels: &[Tunnel], install: &ChildSaInstall) -> u32 {
    tunnels
        .iter()
        .filter(|t| t.name == install.connection)
        .flat_map(|t| &t.children)
        .find(|c| c.name == install.child)
        .map_or(REPLAY_WINDOW, |c| c.replay_window)
}

/// Deletes each SA; one the kernel already dropped (hard lifetime) is not an error.
fn delete_all(kernel: &mut dyn Kernel, sas: &[Sa]) -> Vec<KernelError> {
    let changes: Vec<Change> = sas.iter().map(delete).collect();
    kernel
        .execute(&changes)
        .into_iter()
        .filter_map(Result::err)
        .filter(|e| e.errno != Some(libc::ESRCH))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::kernel::FakeKernel;
    use crate::apply::objects::ObjectKey;
    use crate::ike::crypto::Secret;
    use crate::ike::engine::{Lifetimes, UdpEncap};
    use crate::ike::select::EspChoice;
    use crate::model::Mode;
    use crate::proposal::{Encryption, Integrity};
    use std::time::Duration;

    fn install(encap: Option<UdpEncap>) -> ChildSaInstall {
        let direction = |src: &str, dst: &str, spi: u32, key: u8| SaDirection {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            spi,
            encryption_key: Secret::new(vec![key; 32]),
            integrity_key: Secret::new(vec![key + 1; 32]),
        };
        ChildSaInstall {
            connection: "vti-a".into(),
            child: "net".into(),
            reqid: 7,
            mode: Mode::Tunnel,
            mark: Some(0x5200_0001),
            if_id: None,
            algorithms: EspChoice {
                encryption: Encryption::AesCbc(256),
                integrity: Some(Integrity::HmacSha256_128),
                dh: None,
                additional: Default::default(),
                esn: false,
            },
            inbound: direction("198.51.100.2", "192.0.2.1", 0xc000_0001, 1),
            outbound: direction("192.0.2.1", "198.51.100.2", 0xc000_0002, 3),
            encap,
            local_ts: vec![],
            remote_ts: vec![],
            lifetimes: Lifetimes {
                soft: Duration::from_secs(3300),
                hard: Duration::from_secs(3960),
                soft_bytes: 0,
                hard_bytes: 0,
                soft_packets: 0,
                hard_packets: 0,
            },
            defer_outbound: false,
        }
    }

    #[test]
    fn a_child_is_two_states_with_the_plans_identity_and_mirrored_encap_ports() {
        let i = install(Some(UdpEncap {
            local_port: 4500,
            remote_port: 44000,
        }));
        let [inbound, outbound] = states(&i, 64);
        assert_eq!(
            (inbound.spi, inbound.dst.to_string()),
            (0xc000_0001, "192.0.2.1".into())
        );
        assert_eq!(
            (outbound.spi, outbound.dst.to_string()),
            (0xc000_0002, "198.51.100.2".into())
        );
        assert_eq!(inbound.encap, Some((44000, 4500)));
        assert_eq!(outbound.encap, Some((4500, 44000)));
        for sa in [&inbound, &outbound] {
            assert_eq!(
                (sa.reqid, sa.mark, sa.mode),
                (7, Some(0x5200_0001), Mode::Tunnel)
            );
            assert_eq!(sa.lifetimes.unwrap().hard, Duration::from_secs(3960));
            assert_eq!((sa.esn, sa.replay_window), (false, 64));
        }
        assert_ne!(inbound.key, outbound.key, "each direction has its own key");
    }

    #[test]
    fn negotiated_esn_reaches_both_states() {
        let mut i = install(None);
        i.algorithms.esn = true;
        for sa in states(&i, 128) {
            assert_eq!((sa.esn, sa.replay_window), (true, 128));
        }
    }

    #[test]
    fn installs_both_or_neither_and_removes_exactly_its_own() {
        let mut kernel = FakeKernel::default();
        let mut installed = Installed::default();
        let i = install(None);
        // The outbound state fails: the inbound one must not stay behind.
        kernel.fail_on.insert(ObjectKey::Sa {
            dst: "198.51.100.2".parse().unwrap(),
            spi: 0xc000_0002,
        });
        assert!(installed.install(&mut kernel, &i, 32).is_err());
        assert!(kernel.objects.is_empty());
        assert!(installed.connections().is_empty());

        installed.install(&mut kernel, &i, 32).unwrap();
        assert_eq!(kernel.objects.len(), 2);
        // The ESP keys went to the kernel; the daemon's record keeps none.
        let records = &installed.by_connection["vti-a"];
        assert!(records
            .iter()
            .all(|sa| sa.key.0.is_empty()
                && sa.integrity.as_ref().is_none_or(|(_, k)| k.0.is_empty())));
        let errors = installed.remove(&mut kernel, &i.reference());
        assert!(errors.is_empty() && kernel.objects.is_empty());

        installed.install(&mut kernel, &i, 32).unwrap();
        assert!(installed.remove_connection(&mut kernel, "vti-a").is_empty());
        assert!(kernel.objects.is_empty());
    }

    #[test]
    fn a_state_the_kernel_already_dropped_is_not_an_error_but_a_refusal_is() {
        let mut kernel = FakeKernel::default();
        let mut installed = Installed::default();
        let i = install(None);
        installed.install(&mut kernel, &i, 32).unwrap();
        // The hard lifetime took one state: its delete answers ESRCH, which is success here.
        let inbound = kernel.objects.keys().next().unwrap().clone();
        kernel.objects.remove(&inbound);
        assert!(installed.remove(&mut kernel, &i.reference()).is_empty());
        assert!(kernel.objects.is_empty());

        installed.install(&mut kernel, &i, 32).unwrap();
        let outbound = kernel.objects.keys().last().unwrap().clone();
        kernel.fail_on.insert(outbound);
        let errors = installed.remove(&mut kernel, &i.reference());
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].errno, None);
    }

    #[test]
    fn a_deferred_outbound_state_waits_for_its_activation() {
        let mut kernel = FakeKernel::default();
        let mut installed = Installed::default();
        let mut i = install(None);
        i.defer_outbound = true;
        installed.install(&mut kernel, &i, 32).unwrap();
        let outbound = ObjectKey::Sa {
            dst: "198.51.100.2".parse().unwrap(),
            spi: 0xc000_0002,
        };
        assert_eq!(kernel.objects.len(), 1, "inbound only");
        assert!(!kernel.objects.contains_key(&outbound));
        installed
            .activate_outbound(&mut kernel, &i.reference())
            .unwrap();
        assert!(kernel.objects.contains_key(&outbound));
        // Activating twice does nothing; removal takes both.
        installed
            .activate_outbound(&mut kernel, &i.reference())
            .unwrap();
        assert!(installed.remove(&mut kernel, &i.reference()).is_empty());
        assert!(kernel.objects.is_empty());
        // Removed before activation: nothing is left to activate.
        installed.install(&mut kernel, &i, 32).unwrap();
        installed.remove(&mut kernel, &i.reference());
        installed
            .activate_outbound(&mut kernel, &i.reference())
            .unwrap();
        assert!(kernel.objects.is_empty());
    }

    #[test]
    fn the_sweep_removes_only_unowned_states_of_ike_children() {
        let mut kernel = FakeKernel::default();
        let mut installed = Installed::default();
        // Left by a killed daemon: reqid 7, as the plan gives the child.
        let mut left = install(None);
        left.inbound.spi = 0xc000_0011;
        left.outbound.spi = 0xc000_0012;
        Installed::default()
            .install(&mut kernel, &left, 32)
            .unwrap();
        // Installed by this daemon, same reqid: stays.
        installed.install(&mut kernel, &install(None), 32).unwrap();
        // A manually keyed tunnel's state (reqid 8, not an IKE child): stays.
        let mut manual = install(None);
        manual.reqid = 8;
        manual.inbound.spi = 0x100;
        manual.outbound.spi = 0x101;
        Installed::default()
            .install(&mut kernel, &manual, 32)
            .unwrap();
        assert_eq!(kernel.objects.len(), 6);

        let children = Children::from([(7, (Some(0x5200_0001), None))]);
        assert_eq!(installed.sweep_orphans(&mut kernel, &children), Ok(2));
        let spis: BTreeSet<u32> = (kernel.objects.keys())
            .filter_map(|k| match k {
                ObjectKey::Sa { spi, .. } => Some(*spi),
                _ => None,
            })
            .collect();
        assert_eq!(spis, [0xc000_0001, 0xc000_0002, 0x100, 0x101].into());
        assert_eq!(installed.sweep_orphans(&mut kernel, &children), Ok(0));
    }
}
