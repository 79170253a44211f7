//! A crash after any kernel write of an apply (state on disk as the crash left it): the next
//! apply converges to exactly the plan, and teardown leaves the host as it was.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use common::dataplane::{examples, host, Host};
use routevpn::apply::diff::Change;
use routevpn::apply::kernel::{Egress, FakeKernel, Kernel, KernelError, Scope};
use routevpn::apply::objects::{Object, ObjectKey};
use routevpn::apply::{self, status::SaStatus};
use routevpn::model::{MtuSetting, Tunnel};

/// The unwinding payload standing for a kill: nothing after it runs, no rollback, no save.
struct Crash;

/// Carries out `budget` writes, then crashes (before reporting anything).
struct Crashing<'a> {
    inner: &'a mut FakeKernel,
    budget: usize,
}

impl Crashing<'_> {
    fn crash_if_spent(&self) {
        if self.budget == 0 {
            // resume_unwind skips the panic hook: a crash is expected, not reported.
            std::panic::resume_unwind(Box::new(Crash));
        }
    }
}

impl Kernel for Crashing<'_> {
    fn egress(&mut self, remote: IpAddr) -> Result<Egress, KernelError> {
        self.inner.egress(remote)
    }

    fn read(&mut self, scope: &Scope) -> Result<Vec<Object>, KernelError> {
        self.inner.read(scope)
    }

    fn execute(&mut self, changes: &[Change]) -> Vec<Result<(), KernelError>> {
        let mut results = Vec::new();
        for change in changes {
            self.crash_if_spent();
            self.budget -= 1;
            results.extend(self.inner.execute(std::slice::from_ref(change)));
        }
        self.crash_if_spent();
        results
    }

    fn sa_status(&mut self) -> Result<Vec<SaStatus>, KernelError> {
        self.inner.sa_status()
    }
}

/// The profiles of each run: all; one removed and one changed; the removed one back and
/// another removed; none (teardown).
fn runs() -> Vec<Vec<Tunnel>> {
    let all = examples();
    let without =
        |gone: &str| -> Vec<Tunnel> { all.iter().filter(|t| t.name != gone).cloned().collect() };
    let mut changed = without("gre-datacenter");
    for t in changed.iter_mut().filter(|t| t.name == "vti-telecom") {
        t.interface.mtu = MtuSetting::Fixed(1300);
    }
    vec![all.clone(), changed, without("xfrm-dualstack"), vec![]]
}

fn names(tunnels: &[Tunnel]) -> BTreeSet<String> {
    tunnels.iter().map(|t| t.name.clone()).collect()
}

fn run(h: &mut Host, tunnels: &[Tunnel]) -> apply::Outcome {
    let (outcome, _) = apply::apply(&mut h.kernel, tunnels, &names(tunnels), &h.paths)
        .unwrap_or_else(|e| panic!("apply: {e}"));
    outcome
}

/// Runs `tunnels` with a crash after `budget` writes; true if it crashed.
fn crashing_run(h: &mut Host, tunnels: &[Tunnel], budget: usize) -> bool {
    let mut kernel = Crashing {
        inner: &mut h.kernel,
        budget,
    };
    let paths = h.paths.clone();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        apply::apply(&mut kernel, tunnels, &names(tunnels), &paths).map(|_| ())
    }));
    match outcome {
        Err(payload) if payload.is::<Crash>() => true,
        Err(payload) => std::panic::resume_unwind(payload),
        Ok(result) => {
            result.unwrap_or_else(|e| panic!("apply: {e}"));
            false
        }
    }
}

fn kernel_objects(h: &Host) -> BTreeMap<ObjectKey, Object> {
    h.kernel.objects.clone()
}

#[test]
fn every_crash_point_of_every_run_converges_and_tears_down_cleanly() {
    let runs = runs();
    let before = kernel_objects(&host());
    // What each run leaves when nothing crashes.
    let mut reference = host();
    let expected: Vec<BTreeMap<ObjectKey, Object>> = runs
        .iter()
        .map(|tunnels| {
            run(&mut reference, tunnels);
            kernel_objects(&reference)
        })
        .collect();
    assert_eq!(
        expected.last(),
        Some(&before),
        "plain teardown restores the host"
    );

    let mut crash_points = 0;
    for (i, tunnels) in runs.iter().enumerate() {
        // The recovering apply either repeats the crashed run or already runs the next
        // profiles (added, changed, removed meanwhile).
        for next in [i, (i + 1).min(runs.len() - 1)] {
            for budget in 0.. {
                let mut h = host();
                for earlier in &runs[..i] {
                    run(&mut h, earlier);
                }
                if !crashing_run(&mut h, tunnels, budget) {
                    break;
                }
                crash_points += 1;
                let context = format!("run {i} crashed after {budget} writes, then run {next}");
                run(&mut h, &runs[next]);
                assert_eq!(kernel_objects(&h), expected[next], "{context}: converges");
                let again = run(&mut h, &runs[next]);
                assert_eq!(again.writes, 0, "{context}: {:?}", again.log);
                run(&mut h, &[]);
                assert_eq!(
                    kernel_objects(&h),
                    before,
                    "{context}: teardown leaves nothing"
                );
            }
        }
    }
    // Every run but the last writes dozens of changes; each was a crash point.
    assert!(crash_points > 100, "only {crash_points} crash points");
    eprintln!("{crash_points} crash points, each converged and tore down cleanly");
}
