//! The real daemon under a stand-in systemd: `$NOTIFY_SOCKET` is a unix datagram socket
//! of the test, the daemon runs in a network namespace of its own with no profile (the
//! host kernel has no ESP or VTI), and its metrics are scraped over a unix socket. Needs
//! root (netlink and a namespace); skipped with a note otherwise.

use std::io::{Read, Write};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn signal(daemon: &Daemon, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(daemon.0.id()).unwrap();
    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
}

/// The next notification that is not a watchdog ping (within 10 s); counts the pings.
fn next(systemd: &UnixDatagram, pings: &mut usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "only watchdog pings for 10 s");
        systemd.set_read_timeout(Some(left)).unwrap();
        let n = systemd.recv(&mut buf).expect("a notification within 10 s");
        let message = String::from_utf8(buf[..n].to_vec()).unwrap();
        if message == "WATCHDOG=1" {
            *pings += 1;
        } else {
            return message;
        }
    }
}

#[test]
fn the_daemon_notifies_ready_reloading_stopping_and_pings_the_watchdog() {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        eprintln!("skipping: the daemon needs root (netlink, a network namespace)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let profiles = dir.path().join("tunnels");
    std::fs::create_dir(&profiles).unwrap();
    let notify = dir.path().join("notify");
    let systemd = UnixDatagram::bind(&notify).unwrap();
    systemd
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let metrics = dir.path().join("metrics.sock");
    // Stands in for the journal's stream: JOURNAL_STREAM names it by device and inode.
    let journal_path = dir.path().join("journal");
    let journal = std::fs::File::create(&journal_path).unwrap();
    let stream = {
        use std::os::unix::fs::MetadataExt;
        let m = journal.metadata().unwrap();
        format!("{}:{}", m.dev(), m.ino())
    };
    let mut command = Command::new(env!("CARGO_BIN_EXE_routevpn"));
    command
        .arg("--config-dir")
        .arg(&profiles)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("daemon")
        .arg("--metrics")
        .arg(format!("unix:{}", metrics.display()))
        .arg("--log-level")
        .arg("error,daemon=info")
        .env("JOURNAL_STREAM", stream)
        .env("NOTIFY_SOCKET", &notify)
        // A ping every 200 ms.
        .env("WATCHDOG_USEC", "400000")
        .env_remove("WATCHDOG_PID")
        .stderr(Stdio::from(journal));
    // SAFETY: unshare(2) between fork and exec touches nothing of the parent's.
    unsafe {
        command.pre_exec(|| {
            if libc::unshare(libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let daemon = Daemon(command.spawn().unwrap());
    let mut pings = 0;
    assert_eq!(
        next(&systemd, &mut pings),
        "READY=1\nSTATUS=0 tunnel(s), 0 established"
    );
    assert_eq!(pings, 0, "no ping before READY");

    // Ready means serving: the metrics answer now.
    let mut scrape = UnixStream::connect(&metrics).unwrap();
    scrape.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
    let mut answer = String::new();
    scrape.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.contains("\nroutevpn_tunnels 0\n"), "{answer}");

    // Pings keep coming while the loop runs.
    let started = Instant::now();
    let mut buf = [0; 64];
    while pings < 3 {
        let n = systemd.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"WATCHDOG=1");
        pings += 1;
    }
    assert!(started.elapsed() < Duration::from_secs(5));

    signal(&daemon, libc::SIGHUP);
    let reloading = next(&systemd, &mut pings);
    let usec = reloading
        .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
        .unwrap_or_else(|| panic!("{reloading:?}"));
    assert!(usec.parse::<u64>().unwrap() > 0);
    assert_eq!(
        next(&systemd, &mut pings),
        "READY=1\nSTATUS=0 tunnel(s), 0 established"
    );

    signal(&daemon, libc::SIGTERM);
    assert_eq!(next(&systemd, &mut pings), "STOPPING=1");
    let mut daemon = daemon;
    let status = daemon.0.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(
        !metrics.exists(),
        "the metrics socket is removed on the way out"
    );
    // Daemon records at info, with the journal's priority prefix; nothing else.
    let log = std::fs::read_to_string(&journal_path).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert!(
        lines
            .first()
            .is_some_and(|l| l.starts_with("<6>daemon: serving metrics on unix:")),
        "{log}"
    );
    assert!(lines.iter().all(|l| l.starts_with("<6>daemon: ")), "{log}");
    assert_eq!(lines.last(), Some(&"<6>daemon: stopped"), "{log}");
}
