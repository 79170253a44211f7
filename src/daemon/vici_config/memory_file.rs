//! A credential loaded over VICI as an anonymous, sealed in-memory file (memfd): never on
//! any file system, gone when its last holder drops it. Its `/proc/PID/fd/N` path lets
//! the profile check and the daemon's authenticators read it as they read any key file,
//! so a loaded connection authenticates exactly as a profile with key files does; the
//! daemon's PID, not `self`, so that `routevpn status` and `check` (as root) read the
//! loaded connections' profiles too.

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;

pub struct MemoryFile {
    fd: OwnedFd,
}

/// The path only: the content may be a private key.
impl std::fmt::Debug for MemoryFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MemoryFile({})", self.path().display())
    }
}

impl MemoryFile {
    /// A file of mode 0600 holding `content`, sealed against any change.
    pub fn new(content: &[u8]) -> Result<MemoryFile, String> {
        let failed = |what: &str| format!("{what}: {}", std::io::Error::last_os_error());
        // SAFETY: a NUL-terminated name and flags; the result is checked.
        let raw = unsafe {
            libc::memfd_create(
                c"routevpn-credential".as_ptr(),
                libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
            )
        };
        if raw < 0 {
            return Err(failed("memfd_create"));
        }
        // SAFETY: `raw` is a descriptor just opened and owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: a valid descriptor; the result is checked.
        if unsafe { libc::fchmod(fd.as_raw_fd(), 0o600) } != 0 {
            return Err(failed("fchmod of a memfd"));
        }
        let mut file = std::fs::File::from(fd);
        file.write_all(content)
            .map_err(|e| format!("writing a memfd: {e}"))?;
        let fd = OwnedFd::from(file);
        let seals =
            libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE | libc::F_SEAL_SEAL;
        // SAFETY: a valid descriptor and seal flags; the result is checked.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
            return Err(failed("sealing a memfd"));
        }
        Ok(MemoryFile { fd })
    }

    /// Where this process, and root, read it.
    pub fn path(&self) -> PathBuf {
        let pid = std::process::id();
        PathBuf::from(format!("/proc/{pid}/fd/{}", self.fd.as_raw_fd()))
    }
}
