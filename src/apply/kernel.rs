//! The boundary between reconciliation and the kernel. The netlink implementation lives in
//! [`super::netlink`]; [`FakeKernel`] keeps objects in memory for tests.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::diff::Change;
use super::objects::{Object, ObjectKey};

/// Where packets to a peer leave: resolves `%defaultroute` and the outer MTU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Egress {
    pub source: IpAddr,
    pub device: String,
    pub mtu: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelError {
    /// The object the kernel refused, if the error concerns one.
    pub object: Option<ObjectKey>,
    pub message: String,
    /// The errno behind the refusal, when there is one: callers decide on it, never on
    /// `message`.
    pub errno: Option<i32>,
}

impl KernelError {
    /// An error that no errno stands behind (a decoding failure, a skipped step).
    pub fn other(object: Option<ObjectKey>, message: impl Into<String>) -> Self {
        KernelError {
            object,
            message: message.into(),
            errno: None,
        }
    }

    /// A change left out because an earlier one failed (later changes depend on earlier
    /// ones: links before addresses, addresses before routes).
    pub fn not_attempted(change: &super::diff::Change) -> Self {
        KernelError::other(Some(change.key()), "not attempted after an earlier failure")
    }

    /// A failed system call or netlink request, keeping its errno.
    pub fn io(object: Option<ObjectKey>, context: &str, error: &std::io::Error) -> Self {
        let message = if context.is_empty() {
            error.to_string()
        } else {
            format!("{context}: {error}")
        };
        KernelError {
            object,
            message,
            errno: super::netlink::socket::errno(error),
        }
    }
}

impl std::fmt::Display for KernelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.object {
            Some(key) => write!(f, "{key}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for KernelError {}

/// What to read: links and sysctls are looked up by name, everything else is dumped.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    pub links: BTreeSet<String>,
    pub sysctls: BTreeSet<String>,
    /// Every link, whatever its name: for rebuilding a lost state from the kernel.
    pub all_links: bool,
}

impl Scope {
    /// The links and sysctls named among `keys`.
    pub fn of(keys: impl IntoIterator<Item = ObjectKey>) -> Scope {
        let mut scope = Scope::default();
        for key in keys {
            match key {
                ObjectKey::Link { name } => {
                    scope.links.insert(name);
                }
                ObjectKey::Sysctl { key } => {
                    scope.sysctls.insert(key);
                }
                _ => {}
            }
        }
        scope
    }
}

pub trait Kernel {
    /// The source address, device and MTU the kernel would use to reach `remote`.
    fn egress(&mut self, remote: IpAddr) -> Result<Egress, KernelError>;

    /// Live objects: the named links and sysctls that exist, plus every address on those
    /// links, every route, rule and XFRM policy, and routevpn's nftables table if present.
    fn read(&mut self, scope: &Scope) -> Result<Vec<Object>, KernelError>;

    /// Carries out `changes` in order; one result per change. Implementations may pipeline
    /// (send all, then collect acknowledgements) since the kernel handles requests in order.
    fn execute(&mut self, changes: &[Change]) -> Vec<Result<(), KernelError>>;

    /// Every installed ESP SA with its counters, for `status`.
    fn sa_status(&mut self) -> Result<Vec<super::status::SaStatus>, KernelError>;
}

/// An in-memory kernel for tests: honours dependencies the way Linux does (objects on a
/// device need the device; deleting it removes them) and can be told to fail.
#[derive(Debug, Default)]
pub struct FakeKernel {
    pub objects: BTreeMap<ObjectKey, Object>,
    pub egress: BTreeMap<IpAddr, Egress>,
    /// Keys whose next write fails, to exercise rollback.
    pub fail_on: BTreeSet<ObjectKey>,
    pub writes: usize,
}

impl FakeKernel {
    fn device_exists(&self, device: &str) -> bool {
        self.objects.contains_key(&ObjectKey::Link {
            name: device.to_string(),
        })
    }

    fn apply_one(&mut self, change: &Change) -> Result<(), KernelError> {
        let key = change.key();
        // Linux's answers: XFRM says ESRCH for a missing SA or policy, rtnetlink ENOENT.
        let refuse = |errno: i32| KernelError {
            object: Some(key.clone()),
            message: std::io::Error::from_raw_os_error(errno).to_string(),
            errno: Some(errno),
        };
        let missing = match key {
            ObjectKey::Sa { .. } | ObjectKey::Policy { .. } => libc::ESRCH,
            _ => libc::ENOENT,
        };
        if self.fail_on.remove(&key) {
            return Err(KernelError::other(Some(key.clone()), "injected failure"));
        }
        match change {
            Change::Create(o) => {
                if self.objects.contains_key(&key) {
                    return Err(refuse(libc::EEXIST));
                }
                if let Some(device) = needs_device(&o.object) {
                    if !self.device_exists(device) {
                        return Err(refuse(libc::ENODEV));
                    }
                }
                self.objects.insert(key, o.object.clone());
            }
            Change::Delete { object, .. } => {
                if self.objects.remove(&key).is_none() {
                    return Err(refuse(missing));
                }
                if let Object::Link(link) = object {
                    let name = link.name.clone();
                    self.objects
                        .retain(|_, o| needs_device(o) != Some(name.as_str()));
                }
            }
            Change::Update { to, .. } => {
                if !self.objects.contains_key(&key) {
                    return Err(refuse(missing));
                }
                self.objects.insert(key, to.object.clone());
            }
        }
        Ok(())
    }
}

fn needs_device(object: &Object) -> Option<&str> {
    match object {
        Object::Address(a) => Some(&a.device),
        Object::Route(r) => r.device.as_deref(),
        Object::Sysctl(s) if s.key.contains(".conf.") => s.key.split('.').nth(3),
        _ => None,
    }
}

impl Kernel for FakeKernel {
    fn egress(&mut self, remote: IpAddr) -> Result<Egress, KernelError> {
        self.egress
            .get(&remote)
            .cloned()
            .ok_or_else(|| KernelError {
                object: None,
                message: format!("no route to {remote}"),
                errno: Some(libc::ENETUNREACH),
            })
    }

    fn read(&mut self, scope: &Scope) -> Result<Vec<Object>, KernelError> {
        Ok(self
            .objects
            .values()
            .filter(|o| match o {
                Object::Link(l) => scope.all_links || scope.links.contains(&l.name),
                Object::Sysctl(s) => scope.sysctls.contains(&s.key),
                Object::Address(a) => scope.all_links || scope.links.contains(&a.device),
                _ => true,
            })
            .cloned()
            .collect())
    }

    fn sa_status(&mut self) -> Result<Vec<super::status::SaStatus>, KernelError> {
        Ok(self
            .objects
            .values()
            .filter_map(|o| match o {
                Object::Sa(sa) => Some(super::status::SaStatus {
                    reqid: sa.reqid,
                    spi: sa.spi,
                    src: sa.src,
                    dst: sa.dst,
                    algorithms: sa.encryption.to_string(),
                    bytes: 0,
                    packets: 0,
                    age: 0,
                }),
                _ => None,
            })
            .collect())
    }

    fn execute(&mut self, changes: &[Change]) -> Vec<Result<(), KernelError>> {
        changes
            .iter()
            .map(|c| {
                self.writes += 1;
                self.apply_one(c)
            })
            .collect()
    }
}
