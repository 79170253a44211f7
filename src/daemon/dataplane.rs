//! The daemon's apply: a tunnel whose objects the kernel refuses (a module missing, its
//! device name taken by a foreign device, ...) goes back to the profile it last applied
//! with (a reload must not tear down a working tunnel), or else is left out, and is retried
//! later; the other tunnels are applied either way. An error that no single tunnel owns
//! still fails the whole apply.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::failures::Failing;
use crate::apply::kernel::Kernel;
use crate::apply::state::Paths;
use crate::apply::{ApplyError, Outcome};
use crate::model::Tunnel;
use crate::plan::Plan;

#[derive(Debug)]
pub struct Applied {
    pub outcome: Outcome,
    pub plan: Plan,
    /// The profiles applied: those given, but a failing tunnel's kept one.
    pub tunnels: Vec<Tunnel>,
    /// Tunnels applied again after failures, with how many attempts had failed.
    pub recovered: Vec<(String, u32)>,
    /// Tunnels that failed in this apply: the error, the wait before their retry, and
    /// whether they kept their previous profile (else they were left out).
    pub failed: Vec<(String, String, Duration, bool)>,
}

/// Applies the `enabled` tunnels; one that `failing` waits to retry keeps its previous
/// profile or is left out. Each tunnel the kernel refuses joins `failing` and the rest are
/// applied again: with its profile from `applied_before` if that differs, else without it.
/// `without_sas` are the tunnels without a CHILD SA (on_sa_loss).
#[allow(clippy::too_many_arguments)]
pub fn apply_each(
    kernel: &mut dyn Kernel,
    tunnels: &[Tunnel],
    enabled: &BTreeSet<String>,
    without_sas: &BTreeSet<String>,
    paths: &Paths,
    failing: &mut Failing,
    applied_before: &[Tunnel],
    now: Instant,
) -> Result<Applied, ApplyError> {
    let mut failed = Vec::new();
    loop {
        let selected = failing.to_apply(enabled, now);
        let effective: Vec<Tunnel> = (tunnels.iter())
            .map(|t| match failing.kept(&t.name) {
                Some(kept) if failing.waiting(&t.name, now) => kept.clone(),
                _ => t.clone(),
            })
            .collect();
        let error = match crate::apply::apply_knowing_sas(
            kernel,
            &effective,
            &selected,
            without_sas,
            paths,
        ) {
            Ok((outcome, plan)) => {
                let retried: Vec<&String> = (selected.iter())
                    .filter(|n| !failing.waiting(n, now))
                    .collect();
                let recovered = (retried.into_iter())
                    .filter_map(|n| Some((n.clone(), failing.clear(n)?)))
                    .collect();
                let tunnels = effective
                    .into_iter()
                    .filter(|t| selected.contains(&t.name))
                    .collect();
                return Ok(Applied {
                    outcome,
                    plan,
                    tunnels,
                    recovered,
                    failed,
                });
            }
            Err(error) => error,
        };
        let culprit = culprit(kernel, &effective, &selected, paths, &error)?;
        let Some(tunnel) = culprit.filter(|t| selected.contains(t)) else {
            return Err(error);
        };
        // Each tunnel falls back once, then out: this ends.
        let kept = if failing.waiting(&tunnel, now) {
            None
        } else {
            let current = tunnels.iter().find(|t| t.name == tunnel);
            (failing
                .kept(&tunnel)
                .or_else(|| applied_before.iter().find(|t| t.name == tunnel)))
            .filter(|before| Some(*before) != current)
            .cloned()
        };
        let message = error.to_string();
        let keeps = kept.is_some();
        let wait = failing.record(&tunnel, message.clone(), kept, now);
        failed.push((tunnel, message, wait, keeps));
    }
}

/// The tunnel that owns the object the kernel refused or that a foreign object blocks.
fn culprit(
    kernel: &mut dyn Kernel,
    tunnels: &[Tunnel],
    selected: &BTreeSet<String>,
    paths: &Paths,
    error: &ApplyError,
) -> Result<Option<String>, ApplyError> {
    let key = match error {
        ApplyError::Kernel { error, .. } => error.object.as_ref(),
        ApplyError::Conflict(conflict) => Some(&conflict.key),
        _ => None,
    };
    match key {
        Some(key) => crate::apply::owner(kernel, tunnels, selected, paths, key),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::apply::kernel::FakeKernel;
    use crate::apply::objects::{Link, LinkKind, Object, ObjectKey, Sysctl};
    use crate::model::LocalEndpoint;
    use crate::profile::{self, Options};

    struct Host {
        kernel: FakeKernel,
        paths: Paths,
        tunnels: Vec<Tunnel>,
        /// What the last apply applied, as the daemon keeps it.
        applied: Vec<Tunnel>,
        failing: Failing,
        _dir: tempfile::TempDir,
    }

    /// The example profiles with a fixed local address, all enabled.
    fn host() -> Host {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("profiles");
        let mut tunnels = profile::load(&[dir], Options::default()).tunnels.unwrap();
        tunnels.retain(|t| t.local != LocalEndpoint::DefaultRoute);
        let mut kernel = FakeKernel::default();
        // The IPv6 forwarding switch exists on every host (`all` is no device).
        let forwarding = Object::Sysctl(Sysctl {
            key: "net.ipv6.conf.all.forwarding".into(),
            value: "0".into(),
        });
        kernel.objects.insert(forwarding.key(), forwarding);
        let dir = tempfile::tempdir().unwrap();
        Host {
            kernel,
            paths: Paths {
                state: dir.path().join("state.json"),
                allocations: dir.path().join("alloc.json"),
            },
            tunnels,
            applied: Vec::new(),
            failing: Failing::default(),
            _dir: dir,
        }
    }

    impl Host {
        fn apply(&mut self, now: Instant) -> Result<Applied, ApplyError> {
            self.apply_without_sas(now, &BTreeSet::new())
        }

        /// As the daemon applies, knowing the tunnels `without` a CHILD SA.
        fn apply_without_sas(
            &mut self,
            now: Instant,
            without: &BTreeSet<String>,
        ) -> Result<Applied, ApplyError> {
            let enabled = self.tunnels.iter().map(|t| t.name.clone()).collect();
            let (kernel, failing) = (&mut self.kernel, &mut self.failing);
            let (tunnels, before) = (&self.tunnels, &self.applied);
            let applied = apply_each(
                kernel,
                tunnels,
                &enabled,
                without,
                &self.paths,
                failing,
                before,
                now,
            )?;
            self.applied.clone_from(&applied.tunnels);
            Ok(applied)
        }

        fn device(&self, i: usize) -> ObjectKey {
            let name = self.tunnels[i].interface.name.clone();
            ObjectKey::Link { name }
        }
    }

    #[test]
    fn a_refused_tunnel_is_left_out_and_retried_while_the_others_apply() {
        let mut h = host();
        let (refused, taken) = (h.tunnels[0].name.clone(), h.tunnels[1].name.clone());
        let (refused_device, taken_device) = (h.device(0), h.device(1));
        // One device the kernel refuses; another name a foreign device holds.
        h.kernel.fail_on.insert(refused_device.clone());
        let ObjectKey::Link { name } = &taken_device else {
            unreachable!()
        };
        let foreign = Object::Link(Link {
            name: name.clone(),
            kind: LinkKind::Xfrm {
                if_id: 999,
                link: None,
            },
            mtu: 1500,
            multicast: false,
            up: true,
        });
        h.kernel
            .objects
            .insert(taken_device.clone(), foreign.clone());

        let now = Instant::now();
        let applied = h.apply(now).expect("the other tunnels apply");
        let failed: BTreeSet<&str> = applied.failed.iter().map(|f| f.0.as_str()).collect();
        assert_eq!(failed, [refused.as_str(), taken.as_str()].into());
        let planned = applied.plan.tunnels.iter().map(|t| t.name.as_str());
        assert!(planned.eq(h.tunnels[2..].iter().map(|t| t.name.as_str())));
        for i in 2..h.tunnels.len() {
            assert!(h.kernel.objects.contains_key(&h.device(i)));
        }
        assert!(!h.kernel.objects.contains_key(&refused_device));
        assert_eq!(h.kernel.objects[&taken_device], foreign, "not taken over");
        let error = h.failing.error(&taken).unwrap();
        assert!(error.contains("not created by routevpn"), "{error}");
        assert!(h
            .failing
            .error(&refused)
            .unwrap()
            .contains("injected failure"));

        // Before the retry is due nothing is tried; once it is, both come back.
        let early = h.apply(now).unwrap();
        assert!(early.recovered.is_empty() && early.failed.is_empty());
        h.kernel.objects.remove(&taken_device);
        let retried = h.apply(now + Duration::from_secs(5)).unwrap();
        let recovered: BTreeSet<(String, u32)> = retried.recovered.into_iter().collect();
        assert_eq!(recovered, [(refused, 1), (taken, 1)].into());
        assert_eq!(retried.plan.tunnels.len(), h.tunnels.len());
        assert!(h.kernel.objects.contains_key(&refused_device));
        assert!(h.failing.next_retry().is_none());
    }

    #[test]
    fn a_changed_profile_the_kernel_refuses_keeps_the_one_that_worked_until_the_retry() {
        let mut h = host();
        let now = Instant::now();
        h.apply(now).unwrap();
        let (name, working) = (h.tunnels[0].name.clone(), h.device(0));
        h.tunnels[0].interface.name = "renamed0".into();
        let renamed = h.device(0);
        h.kernel.fail_on.insert(renamed.clone());

        let applied = h.apply(now).unwrap();
        let [(failed, error, _, kept)] = &applied.failed[..] else {
            panic!("{:?}", applied.failed)
        };
        assert_eq!((failed, *kept), (&name, true), "{error}");
        assert!(h.kernel.objects.contains_key(&working), "still up");
        assert!(!h.kernel.objects.contains_key(&renamed));
        assert!(h.failing.reports(now)[0].kept_previous);
        // Until the retry, it stays on the profile that worked.
        assert!(h.apply(now).unwrap().failed.is_empty());
        assert!(h.kernel.objects.contains_key(&working));

        let retried = h.apply(now + Duration::from_secs(5)).unwrap();
        assert_eq!(retried.recovered, [(name, 1)]);
        assert!(h.kernel.objects.contains_key(&renamed));
        assert!(!h.kernel.objects.contains_key(&working));
    }

    #[test]
    fn a_tunnel_without_sas_that_withdraws_goes_down_and_comes_back() {
        let mut h = host();
        let now = Instant::now();
        let device = ObjectKey::Link {
            name: "vti-cloud-1".into(),
        };
        let up = |h: &Host| matches!(&h.kernel.objects[&device], Object::Link(l) if l.up);
        h.apply(now).unwrap();
        assert!(up(&h));
        let without = BTreeSet::from(["cloud-primary".to_string()]);
        let applied = h.apply_without_sas(now, &without).unwrap();
        assert!(!up(&h));
        assert!(applied
            .plan
            .tunnels
            .iter()
            .all(|t| t.link.up == (t.name != "cloud-primary")));
        assert_eq!(
            h.apply_without_sas(now, &without).unwrap().outcome.writes,
            0
        );
        h.apply(now).unwrap();
        assert!(up(&h));
    }

    #[test]
    fn an_error_no_tunnel_owns_still_fails_the_apply() {
        let mut h = host();
        // The forwarding switch is shared by every tunnel.
        (h.kernel.objects).remove(&ObjectKey::Sysctl {
            key: "net.ipv6.conf.all.forwarding".into(),
        });
        let result = h.apply(Instant::now());
        assert!(
            matches!(result, Err(ApplyError::Kernel { .. })),
            "{result:?}"
        );
        assert!(h.failing.next_retry().is_none());
    }
}
