//! State files and locks: untrusted files refused, corrupt ones rebuilt from the kernel,
//! one apply at a time, and never a local apply behind a running daemon.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

use common::dataplane::{all, host, Host};
use routevpn::apply::objects::{Object, ObjectKey};
use routevpn::apply::state::lock;
use routevpn::apply::ApplyError;
use routevpn::plan::Allocations;

fn refused(h: &mut Host, what: &str) -> String {
    let enabled = all(h);
    match h.apply(&enabled) {
        Err(ApplyError::State(e)) => {
            assert!(e.contains(what), "{e}");
            e
        }
        other => panic!("expected a refusal naming {what}, got {other:?}"),
    }
}

#[test]
fn a_symlinked_state_file_or_directory_is_refused() {
    let mut h = host();
    let enabled = all(&h);
    h.apply(&enabled).unwrap();
    let elsewhere = h.dir.path().join("elsewhere.json");
    std::fs::rename(&h.paths.state, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &h.paths.state).unwrap();
    let e = refused(&mut h, "symbolic link");
    assert!(e.starts_with(&h.paths.state.display().to_string()), "{e}");

    let mut h = host();
    let real = h.dir.path().join("real");
    std::fs::create_dir(&real).unwrap();
    std::os::unix::fs::symlink(&real, h.dir.path().join("run")).unwrap();
    refused(&mut h, "run: is a symbolic link");
    assert_eq!(
        std::fs::read_dir(&real).unwrap().count(),
        0,
        "nothing written through it"
    );
}

#[test]
fn a_state_file_others_own_or_may_write_is_refused() {
    let mut h = host();
    let enabled = all(&h);
    h.apply(&enabled).unwrap();
    let mode = |p: &std::path::Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
    };
    mode(&h.paths.allocations, 0o620);
    refused(&mut h, "writable by group or others (mode 620)");
    mode(&h.paths.allocations, 0o600);
    h.apply(&enabled).unwrap();

    // SAFETY: geteuid has no arguments and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        std::os::unix::fs::chown(&h.paths.state, Some(65534), None).unwrap();
        refused(&mut h, "owned by uid 65534");
    }
}

#[test]
fn writes_leave_one_private_file_and_no_temporary() {
    let mut h = host();
    let enabled = all(&h);
    h.apply(&enabled).unwrap();
    h.apply(&enabled).unwrap();
    let dir = h.paths.state.parent().unwrap();
    let names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".lock"))
        .collect();
    assert_eq!(names, vec!["state.json".to_string()]);
    let meta = std::fs::metadata(&h.paths.state).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o600);
}

fn truncate_to_half(path: &std::path::Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    std::fs::write(path, &bytes[..bytes.len() / 2]).unwrap();
    bytes[..bytes.len() / 2].to_vec()
}

/// The corrupt copies set aside beside `of`.
fn kept_copies(of: &std::path::Path) -> Vec<std::path::PathBuf> {
    let name = format!("{}.corrupt-", of.file_name().unwrap().to_string_lossy());
    let dir = of.parent().unwrap();
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(&name))
        .collect()
}

#[test]
fn a_truncated_state_file_is_rebuilt_from_the_kernel() {
    let mut h = host();
    let enabled = all(&h);
    let before = h.kernel.objects.clone();
    h.apply(&enabled).unwrap();
    let applied = h.kernel.objects.clone();
    let bad = truncate_to_half(&h.paths.state);

    let outcome = h.apply(&enabled).unwrap();
    assert_eq!(outcome.writes, 0, "{:?}", outcome.log);
    let warning = outcome.warnings.join("\n");
    let path = h.paths.state.display().to_string();
    assert!(
        warning.contains(&format!("{path} was corrupt ({path}:")),
        "{warning}"
    );
    assert!(
        warning.contains("lost: the values sysctls had"),
        "{warning}"
    );
    let kept = kept_copies(&h.paths.state);
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(std::fs::read(&kept[0]).unwrap(), bad);
    assert_eq!(h.kernel.objects, applied);

    // Teardown removes everything; only the overwritten sysctl's original is lost.
    h.apply(&Default::default()).unwrap();
    let forwarding = ObjectKey::Sysctl {
        key: "net.ipv6.conf.all.forwarding".into(),
    };
    let mut left = h.kernel.objects.clone();
    assert!(matches!(left.remove(&forwarding), Some(Object::Sysctl(s)) if s.value == "1"));
    let mut expected = before;
    expected.remove(&forwarding);
    assert_eq!(left, expected);
}

#[test]
fn a_truncated_allocations_file_gets_the_values_the_kernel_carries() {
    let mut h = host();
    let enabled = all(&h);
    h.apply(&enabled).unwrap();
    // Values other than each name's first choice (as after collisions), in use.
    let text = std::fs::read(&h.paths.allocations).unwrap();
    let mut shifted: Allocations = serde_json::from_slice(&text).unwrap();
    for value in (shifted.marks.values_mut())
        .chain(shifted.if_ids.values_mut())
        .chain(shifted.reqids.values_mut())
    {
        *value += 1;
    }
    std::fs::write(&h.paths.allocations, serde_json::to_vec(&shifted).unwrap()).unwrap();
    assert!(h.apply(&enabled).unwrap().writes > 0);
    truncate_to_half(&h.paths.allocations);

    let outcome = h.apply(&enabled).unwrap();
    assert_eq!(outcome.writes, 0, "{:?}", outcome.log);
    let warning = outcome.warnings.join("\n");
    assert!(
        warning.contains("rebuilt the marks, if_ids and reqids"),
        "{warning}"
    );
    let text = std::fs::read(&h.paths.allocations).unwrap();
    let recovered: Allocations = serde_json::from_slice(&text).unwrap();
    assert_eq!(recovered, shifted);
    assert_eq!(kept_copies(&h.paths.allocations).len(), 1);
}

#[test]
fn a_second_apply_waits_and_says_for_whom() {
    let dir = common::dataplane::state_dir();
    let path = dir.path().join("apply.lock");
    let first = lock::exclusive(&path, "apply", |_| panic!("nobody holds it")).unwrap();
    let (said, heard) = mpsc::channel();
    let acquired = Arc::new(AtomicBool::new(false));
    let second = {
        let (path, acquired) = (path.clone(), acquired.clone());
        std::thread::spawn(move || {
            let held = lock::exclusive(&path, "down", |m| said.send(m.to_string()).unwrap());
            acquired.store(true, Ordering::SeqCst);
            held.map(|_| ())
        })
    };
    let message = heard.recv().unwrap();
    assert_eq!(
        message,
        format!(
            "waiting for another routevpn (pid {}, `apply`) to finish…",
            std::process::id()
        )
    );
    assert!(!acquired.load(Ordering::SeqCst), "took a held lock");
    drop(first);
    second.join().unwrap().unwrap();
    assert!(heard.try_recv().is_err(), "said once");
}

#[test]
fn the_daemon_lock_is_exclusive_and_tells_who_holds_it() {
    let dir = common::dataplane::state_dir();
    let path = dir.path().join("daemon.lock");
    assert_eq!(lock::holder_of(&path).unwrap(), None);
    let held = lock::try_exclusive(&path, "daemon").unwrap();
    let holder = format!("pid {}, `daemon`", std::process::id());
    assert_eq!(lock::holder_of(&path).unwrap(), Some(holder.clone()));
    let e = lock::try_exclusive(&path, "daemon").unwrap_err();
    assert!(e.contains(&holder), "{e}");
    drop(held);
    // Other tests of this process spawn the CLI: a child forked while the lock's descriptor
    // was open shares it until its exec closes it (O_CLOEXEC), so the release is awaited.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while lock::holder_of(&path).unwrap().is_some() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(lock::holder_of(&path).unwrap(), None);
}

/// `down` and `apply` without an answering daemon that holds its lock: refused, nothing
/// applied (no state written) and the reason given.
#[test]
fn the_cli_never_applies_behind_a_daemon() {
    let dir = common::dataplane::state_dir();
    let _daemon = lock::try_exclusive(&dir.path().join("daemon.lock"), "daemon").unwrap();
    // No profiles: even a broken check could not change this host's dataplane.
    let profiles = dir.path().join("profiles");
    std::fs::create_dir(&profiles).unwrap();
    for args in [
        &["down", "vti-telecom"][..],
        &["apply"],
        &["up", "vti-telecom"],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_routevpn"))
            .arg("--state-dir")
            .arg(dir.path())
            .arg("--config-dir")
            .arg(&profiles)
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "a routevpn daemon (pid {}, `daemon`)",
                std::process::id()
            )) && stderr.contains("not changing the dataplane behind its back"),
            "{args:?}: {stderr}"
        );
        assert!(!dir.path().join("state.json").exists(), "{args:?}");
    }
}
