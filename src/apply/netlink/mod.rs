//! The Linux kernel behind [`Kernel`]: rtnetlink for links, addresses, routes and rules;
//! XFRM netlink for policies; nf_tables for routevpn's table; /proc/sys for sysctls.
//! No `ip`, `nft` or `sysctl` process is ever started.

pub mod nft;
pub mod rtnl;
pub mod socket;
mod sysctl;
pub mod xfrm;

use super::diff::Change;
use super::kernel::{Egress, Kernel, KernelError, Scope};
use super::objects::Object;

/// One family of kernel objects.
pub trait Backend {
    /// Appends the live objects of this family within `scope`.
    fn read(&mut self, scope: &Scope, out: &mut Vec<Object>) -> Result<(), KernelError>;
    /// Carries out changes to objects of this family, one result each, in order.
    fn execute(&mut self, changes: &[&Change]) -> Vec<Result<(), KernelError>>;
}

/// Which backend handles an object.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    Route,
    Sysctl,
    Xfrm,
    Nft,
}

fn family(object: &Object) -> Family {
    match object {
        Object::Link(_) | Object::Address(_) | Object::Route(_) | Object::Rule(_) => Family::Route,
        Object::Sysctl(_) => Family::Sysctl,
        Object::Policy(_) | Object::Sa(_) => Family::Xfrm,
        Object::Nft(_) => Family::Nft,
    }
}

fn object_of(change: &Change) -> &Object {
    match change {
        Change::Create(o) | Change::Update { to: o, .. } => &o.object,
        Change::Delete { object, .. } => object,
    }
}

pub struct LinuxKernel {
    pub route: Box<dyn RouteBackend>,
    pub sysctl: sysctl::Sysctls,
    pub xfrm: xfrm::Xfrm,
    pub nft: Box<dyn Backend>,
}

/// rtnetlink also answers where a peer is reached from.
pub trait RouteBackend: Backend {
    fn egress(&mut self, remote: std::net::IpAddr) -> Result<Egress, KernelError>;
}

impl LinuxKernel {
    /// Netlink sockets in the calling thread's network namespace.
    pub fn open() -> std::io::Result<LinuxKernel> {
        Ok(LinuxKernel {
            route: Box::new(rtnl::Rtnl::open()?),
            sysctl: sysctl::Sysctls,
            xfrm: xfrm::Xfrm::open()?,
            nft: Box::new(nft::Nft::open()?),
        })
    }

    /// As [`open`](Self::open), remembering the nftables table between runs in `memo` so
    /// an unchanged table is not dumped again (see [`nft`]'s memo).
    pub fn open_with_memo(memo: &std::path::Path) -> std::io::Result<LinuxKernel> {
        Ok(LinuxKernel {
            nft: Box::new(nft::Nft::open()?.with_memo(memo)),
            ..LinuxKernel::open()?
        })
    }

    fn backend(&mut self, family: Family) -> &mut dyn Backend {
        match family {
            Family::Route => self.route.as_mut(),
            Family::Sysctl => &mut self.sysctl,
            Family::Xfrm => &mut self.xfrm,
            Family::Nft => self.nft.as_mut(),
        }
    }
}

impl Kernel for LinuxKernel {
    fn egress(&mut self, remote: std::net::IpAddr) -> Result<Egress, KernelError> {
        self.route.egress(remote)
    }

    fn sa_status(&mut self) -> Result<Vec<super::status::SaStatus>, KernelError> {
        self.xfrm.sa_status()
    }

    fn read(&mut self, scope: &Scope) -> Result<Vec<Object>, KernelError> {
        let mut out = Vec::new();
        let clock = std::time::Instant::now();
        self.route.read(scope, &mut out)?;
        let route = clock.elapsed();
        // Devices' IPv4 settings came with the link dump; /proc is read for the rest only.
        let mut rest = scope.clone();
        for object in &out {
            if let Object::Sysctl(s) = object {
                rest.sysctls.remove(&s.key);
            }
        }
        self.sysctl.read(&rest, &mut out)?;
        let sysctl = clock.elapsed();
        self.xfrm.read(scope, &mut out)?;
        let xfrm = clock.elapsed();
        self.nft.read(scope, &mut out)?;
        if std::env::var_os("ROUTEVPN_TIMINGS").is_some() {
            let nft = clock.elapsed();
            eprintln!(
                "read timings: rtnetlink {:.3}s, sysctl {:.3}s, xfrm {:.3}s, nftables {:.3}s",
                route.as_secs_f64(),
                (sysctl - route).as_secs_f64(),
                (xfrm - sysctl).as_secs_f64(),
                (nft - xfrm).as_secs_f64()
            );
        }
        Ok(out)
    }

    /// Runs of consecutive changes of one family go to their backend as one batch, so the
    /// overall order (links before addresses before routes ...) is kept.
    fn execute(&mut self, changes: &[Change]) -> Vec<Result<(), KernelError>> {
        in_runs(
            changes,
            |c| family(object_of(c)),
            |run| {
                let family = family(object_of(&run[0]));
                let run: Vec<&Change> = run.iter().collect();
                self.backend(family).execute(&run)
            },
        )
    }
}

/// Executes `changes` in stretches sharing `group(change)`, one `run` call each, in order.
/// After a failed stretch the rest are reported as not attempted: later changes depend on
/// earlier ones (links before addresses, addresses before routes).
fn in_runs<C: std::borrow::Borrow<Change>, G: PartialEq>(
    changes: &[C],
    group: impl Fn(&Change) -> G,
    mut run: impl FnMut(&[C]) -> Vec<Result<(), KernelError>>,
) -> Vec<Result<(), KernelError>> {
    let mut results = Vec::with_capacity(changes.len());
    let mut start = 0;
    while start < changes.len() {
        let key = group(changes[start].borrow());
        let end = changes[start..]
            .iter()
            .position(|c| group(c.borrow()) != key)
            .map_or(changes.len(), |n| start + n);
        let outcome = run(&changes[start..end]);
        let failed = outcome.iter().any(Result::is_err);
        results.extend(outcome);
        start = end;
        if failed {
            let rest = changes[start..].iter();
            results.extend(rest.map(|c| Err(KernelError::not_attempted(c.borrow()))));
            break;
        }
    }
    results
}
