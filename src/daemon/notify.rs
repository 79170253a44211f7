//! The systemd notification protocol (sd_notify(3)) without libsystemd: datagrams of
//! `KEY=VALUE` lines to the unix socket named by `$NOTIFY_SOCKET` (a path, or an abstract
//! name written with a leading `@`). `READY=1` once the first apply is done and the
//! sockets listen, `STATUS=` as the tunnels come and go, `RELOADING=1` with
//! `MONOTONIC_USEC=` (systemd ≥ 253 wants both) and `READY=1` around a reload,
//! `STOPPING=1`, and `WATCHDOG=1` at half of `$WATCHDOG_USEC`, sent from the daemon's loop
//! so that a hung loop stops the pings and systemd restarts the daemon.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

/// Where notifications go; `None` (not under systemd) makes every call a no-op.
#[derive(Debug)]
pub struct Notifier {
    target: Option<(UnixDatagram, Target)>,
    /// The interval of the watchdog pings, when systemd watches this process.
    pub watchdog: Option<Duration>,
    /// The last STATUS sent, so that an unchanged one is not sent again.
    status: String,
}

#[derive(Debug)]
enum Target {
    Path(PathBuf),
    Abstract(Vec<u8>),
}

impl Notifier {
    /// From `$NOTIFY_SOCKET`, `$WATCHDOG_USEC` and `$WATCHDOG_PID`, read once at start.
    pub fn from_env() -> Result<Notifier, String> {
        let var = |name| std::env::var(name).ok().filter(|v| !v.is_empty());
        Notifier::new(
            var("NOTIFY_SOCKET").as_deref(),
            var("WATCHDOG_USEC").as_deref(),
            var("WATCHDOG_PID").as_deref(),
            std::process::id(),
        )
    }

    pub fn new(
        socket: Option<&str>,
        watchdog_usec: Option<&str>,
        watchdog_pid: Option<&str>,
        pid: u32,
    ) -> Result<Notifier, String> {
        let target = match socket {
            None => None,
            Some(name) => {
                let target = match name.strip_prefix('@') {
                    Some(abstract_name) => Target::Abstract(abstract_name.as_bytes().to_vec()),
                    None if name.starts_with('/') => Target::Path(name.into()),
                    None => return Err(format!("NOTIFY_SOCKET={name:?}: neither /path nor @name")),
                };
                let socket = UnixDatagram::unbound()
                    .map_err(|e| format!("NOTIFY_SOCKET: making a socket: {e}"))?;
                Some((socket, target))
            }
        };
        let for_us = match watchdog_pid {
            None => true,
            Some(p) => {
                p.parse::<u32>()
                    .map_err(|_| format!("WATCHDOG_PID={p:?}: not a pid"))?
                    == pid
            }
        };
        let watchdog = match watchdog_usec {
            Some(usec) if for_us && target.is_some() => {
                let usec: u64 = (usec.parse().ok().filter(|u| *u > 0))
                    .ok_or_else(|| format!("WATCHDOG_USEC={usec:?}: not a positive number"))?;
                Some(Duration::from_micros(usec) / 2)
            }
            _ => None,
        };
        Ok(Notifier {
            target,
            watchdog,
            status: String::new(),
        })
    }

    fn send(&self, message: &str) -> std::io::Result<()> {
        let Some((socket, target)) = &self.target else {
            return Ok(());
        };
        match target {
            Target::Path(path) => socket.send_to(message.as_bytes(), path).map(drop),
            Target::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                let address = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                socket.send_to_addr(message.as_bytes(), &address).map(drop)
            }
        }
    }

    /// Started (or reloaded): ready, with the tunnels' status.
    pub fn ready(&mut self, status: String) -> std::io::Result<()> {
        self.send(&format!("READY=1\nSTATUS={status}"))?;
        self.status = status;
        Ok(())
    }

    /// Sends `status` if it differs from the last one sent.
    pub fn status(&mut self, status: String) -> std::io::Result<()> {
        if status == self.status {
            return Ok(());
        }
        self.send(&format!("STATUS={status}"))?;
        self.status = status;
        Ok(())
    }

    pub fn reloading(&self) -> std::io::Result<()> {
        self.send(&format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec()))
    }

    pub fn stopping(&self) -> std::io::Result<()> {
        self.send("STOPPING=1")
    }

    pub fn watchdog_ping(&self) -> std::io::Result<()> {
        self.send("WATCHDOG=1")
    }
}

/// CLOCK_MONOTONIC in microseconds, the clock systemd compares `MONOTONIC_USEC` with.
fn monotonic_usec() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes only the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    let secs = u64::try_from(now.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(now.tv_nsec).unwrap_or(0);
    secs * 1_000_000 + nanos / 1000
}

/// "3 tunnels, 2 established, 1 failing": what `systemctl status` shows.
pub fn status_line(tunnels: usize, established: usize, manual: usize, failing: usize) -> String {
    let mut line = format!("{tunnels} tunnel(s), {established} established");
    if manual > 0 {
        line += &format!(", {manual} keyed by hand");
    }
    if failing > 0 {
        line += &format!(", {failing} failing");
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receive(socket: &UnixDatagram) -> String {
        let mut buf = [0; 4096];
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let n = socket.recv(&mut buf).expect("a notification within 5 s");
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn sends_the_sequence_to_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let systemd = UnixDatagram::bind(&path).unwrap();
        let mut n = Notifier::new(path.to_str(), Some("10000000"), None, 1).unwrap();
        assert_eq!(n.watchdog, Some(Duration::from_secs(5)));
        n.ready(status_line(3, 3, 0, 0)).unwrap();
        assert_eq!(
            receive(&systemd),
            "READY=1\nSTATUS=3 tunnel(s), 3 established"
        );
        n.status(status_line(3, 3, 0, 0)).unwrap();
        n.status(status_line(3, 2, 0, 1)).unwrap();
        assert_eq!(
            receive(&systemd),
            "STATUS=3 tunnel(s), 2 established, 1 failing"
        );
        let before = monotonic_usec();
        n.reloading().unwrap();
        let reloading = receive(&systemd);
        let usec: u64 = (reloading.strip_prefix("RELOADING=1\nMONOTONIC_USEC="))
            .unwrap_or_else(|| panic!("{reloading:?}"))
            .parse()
            .unwrap();
        assert!(usec >= before && usec <= monotonic_usec());
        n.watchdog_ping().unwrap();
        assert_eq!(receive(&systemd), "WATCHDOG=1");
        n.stopping().unwrap();
        assert_eq!(receive(&systemd), "STOPPING=1");
    }

    #[test]
    fn reaches_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("routevpn-test-{}", std::process::id());
        let address = std::os::unix::net::SocketAddr::from_abstract_name(&name).unwrap();
        let systemd = UnixDatagram::bind_addr(&address).unwrap();
        let n = Notifier::new(Some(&format!("@{name}")), None, None, 1).unwrap();
        assert_eq!(n.watchdog, None);
        n.stopping().unwrap();
        assert_eq!(receive(&systemd), "STOPPING=1");
    }

    #[test]
    fn the_watchdog_is_for_its_pid_only_and_a_bad_setting_is_an_error() {
        let watch = |usec, pid| Notifier::new(Some("/run/x"), usec, pid, 42).map(|n| n.watchdog);
        assert_eq!(
            watch(Some("2000000"), Some("42")),
            Ok(Some(Duration::from_secs(1)))
        );
        assert_eq!(watch(Some("2000000"), Some("7")), Ok(None));
        assert!(watch(Some("soon"), None)
            .unwrap_err()
            .contains("WATCHDOG_USEC"));
        assert!(watch(Some("0"), None).is_err());
        assert!(Notifier::new(Some("relative"), None, None, 1).is_err());
        // Not under systemd: nothing to send, nothing fails.
        let quiet = Notifier::new(None, Some("2000000"), None, 1).unwrap();
        assert_eq!(quiet.watchdog, None);
        quiet.stopping().unwrap();
    }
}
