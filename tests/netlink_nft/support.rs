//! Namespaces, the `nft` tool (used only to inspect and to play the user) and tables.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use routevpn::apply::diff::Change;
use routevpn::apply::kernel::{KernelError, Scope};
use routevpn::apply::netlink::nft::Nft;
use routevpn::apply::netlink::Backend;
use routevpn::apply::objects::{self, Object, Owned};
use routevpn::plan::{self, NftChain, NftRule, NftTable};
use routevpn::profile::{self, Options};

fn require_root() {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the nftables tests create network namespaces and need root (CAP_SYS_ADMIN, \
         CAP_NET_ADMIN); run them as root, as integration/test does in CI"
    );
}

/// Moves the calling thread (each test runs on its own) into a new, empty network
/// namespace; sockets and child processes it opens afterwards live there.
pub fn fresh_netns() {
    require_root();
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(
        rc,
        0,
        "unshare(CLONE_NEWNET): {}",
        io::Error::last_os_error()
    );
}

/// A further namespace, kept alive by the returned handle.
pub fn new_netns() -> File {
    std::thread::spawn(|| {
        fresh_netns();
        File::open("/proc/thread-self/ns/net").expect("open own namespace")
    })
    .join()
    .expect("namespace thread")
}

/// Runs `f` on a thread inside `ns`.
pub fn within<T: Send>(ns: &File, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", io::Error::last_os_error());
            f()
        })
        .join()
        .expect("thread in namespace")
    })
}

/// A path naming `ns` for tools such as `ip link set ... netns PATH`.
pub fn path_of(ns: &File) -> String {
    format!("/proc/{}/fd/{}", std::process::id(), ns.as_raw_fd())
}

fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {program} ({e}): install nftables and iproute2 (integration/test does)"
            )
        });
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(text.as_bytes()).expect("write stdin");
    }
    let out = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// `nft ARGS` in the calling thread's namespace; its output.
pub fn nft(args: &[&str]) -> String {
    run("nft", args, None).unwrap_or_else(|e| panic!("{e}"))
}

/// `nft -f -` with `script`.
pub fn nft_script(script: &str) {
    run("nft", &["-f", "-"], Some(script)).unwrap_or_else(|e| panic!("{e}"));
}

/// `ip ARGS` in the calling thread's namespace.
pub fn ip(args: &str) {
    let args: Vec<&str> = args.split_whitespace().collect();
    run("ip", &args, None).unwrap_or_else(|e| panic!("{e}"));
}

/// The table the example profiles plan.
pub fn example() -> NftTable {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("profiles");
    let tunnels = profile::load(&[dir], Options::default())
        .tunnels
        .expect("example profiles load");
    plan::build(&tunnels, &plan::Context::default()).nftables
}

/// routevpn's three chains with the given rules.
pub fn table(snat: Vec<NftRule>, mss: Vec<NftRule>, accept: Vec<NftRule>) -> NftTable {
    let chain = |name: &str, chain_type: &str, hook: &str, priority, rules| NftChain {
        name: name.into(),
        chain_type: chain_type.into(),
        hook: hook.into(),
        priority,
        rules,
    };
    NftTable {
        name: plan::NFT_TABLE.into(),
        chains: vec![
            chain("postrouting", "nat", "postrouting", 100, snat),
            chain("mss", "filter", "forward", -150, mss),
            chain("forward", "filter", "forward", 0, accept),
        ],
    }
}

pub fn object(table: &NftTable) -> Object {
    Object::Nft(objects::NftTable {
        name: table.name.clone(),
        table: table.clone(),
    })
}

/// Creates or replaces routevpn's table through the backend.
pub fn write(nft: &mut Nft, table: &NftTable) -> Result<(), KernelError> {
    let change = Change::Create(Owned {
        tunnel: None,
        object: object(table),
    });
    nft.execute(&[&change]).remove(0)
}

pub fn delete(nft: &mut Nft, table: &NftTable) -> Result<(), KernelError> {
    let change = Change::Delete {
        object: object(table),
        implied: vec![],
    };
    nft.execute(&[&change]).remove(0)
}

/// What the backend reads: routevpn's table if it exists.
pub fn read(nft: &mut Nft) -> Option<NftTable> {
    let mut out = Vec::new();
    nft.read(&Scope::default(), &mut out).expect("read");
    assert!(out.len() <= 1, "one table at most: {out:?}");
    out.pop().map(|o| match o {
        Object::Nft(t) => {
            assert_eq!(t.name, t.table.name);
            t.table
        }
        other => panic!("not a table: {other:?}"),
    })
}

/// Non-empty lines without their indentation: `nft list` and `to_nft_script` differ only
/// in blank lines, tabs, and `nft` leaving out host prefix lengths.
pub fn normalized(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.trim().replace("/32 ", " ").replace("/128 ", " "))
        .filter(|l| !l.is_empty())
        .collect()
}

/// The expression lists of `nft --debug=netlink list table inet routevpn`: each rule's
/// "inet routevpn CHAIN" line without handles, then its expressions; userdata left out.
pub fn expression_lists() -> Vec<String> {
    nft(&["--debug=netlink", "list", "table", "inet", plan::NFT_TABLE])
        .lines()
        .filter_map(|l| {
            if l.starts_with("inet ") {
                Some(l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            } else if l.starts_with("  [") {
                Some(l.trim().to_string())
            } else {
                None
            }
        })
        .collect()
}
