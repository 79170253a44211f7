//! The XFRM backend against the kernel, each test in its own network namespace (root).
//! What `ip xfrm` prints is the check that values reach the kernel in the right byte order.

use std::process::Command;

use routevpn::apply::diff::Change;
use routevpn::apply::kernel::Scope;
use routevpn::apply::netlink::xfrm::Xfrm;
use routevpn::apply::netlink::Backend;
use routevpn::apply::objects::{Object, Owned, Policy, Template};
use routevpn::model::Mode;
use routevpn::plan::Direction;

fn namespace() {
    assert!(
        unsafe { libc::geteuid() } == 0,
        "these tests need root (CI runs as root): they create network namespaces"
    );
    // SAFETY: unshare affects only the calling thread, which each test owns.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(
        rc,
        0,
        "unshare(CLONE_NEWNET): {}",
        std::io::Error::last_os_error()
    );
}

fn ip_xfrm_policy() -> String {
    let out = Command::new("ip")
        .args(["xfrm", "policy"])
        .output()
        .expect("ip xfrm policy");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn policy() -> Policy {
    Policy {
        direction: Direction::Out,
        src: "10.1.0.0/16".parse().unwrap(),
        dst: "10.2.0.0/16".parse().unwrap(),
        protocol: Some(6),
        src_ports: None,
        dst_ports: Some((443, 443)),
        mark: Some(0x5200_0042),
        if_id: None,
        priority: 0x3000,
        template: Template {
            src: "192.0.2.1".parse().unwrap(),
            dst: "192.0.2.2".parse().unwrap(),
            mode: Mode::Tunnel,
            reqid: 0x1234,
        },
    }
}

fn create(p: &Policy) -> Change {
    Change::Create(Owned {
        tunnel: None,
        object: Object::Policy(p.clone()),
    })
}

#[test]
fn ports_and_marks_reach_the_kernel_as_written() {
    namespace();
    let mut xfrm = Xfrm::open().unwrap();
    let p = policy();
    let results = xfrm.execute(&[&create(&p)]);
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let text = ip_xfrm_policy();
    assert!(text.contains("proto tcp dport 443"), "{text}");
    assert!(text.contains("mark 0x52000042/0xffffffff"), "{text}");
    assert!(text.contains("reqid 4660 mode tunnel"), "{text}");
    let mut live = Vec::new();
    xfrm.read(&Scope::default(), &mut live).unwrap();
    assert_eq!(live, vec![Object::Policy(p.clone())]);

    let results = xfrm.execute(&[&Change::Delete {
        object: Object::Policy(p),
        implied: vec![],
    }]);
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert!(ip_xfrm_policy().trim().is_empty());
}

#[test]
fn a_port_block_reads_back_as_written() {
    namespace();
    let mut xfrm = Xfrm::open().unwrap();
    let p = Policy {
        dst_ports: Some((5000, 5007)),
        ..policy()
    };
    assert!(xfrm.execute(&[&create(&p)]).iter().all(Result::is_ok));
    let text = ip_xfrm_policy();
    assert!(text.contains("dport 5000"), "{text}");
    let mut live = Vec::new();
    xfrm.read(&Scope::default(), &mut live).unwrap();
    assert_eq!(live, vec![Object::Policy(p)]);
}
