//! Named network namespaces, made the way `ip netns add` makes them (a bind mount under
//! /run/netns), so an operator can look inside a kept demo with `ip netns exec`.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub const RUN_NETNS: &str = "/run/netns";

pub struct Namespace {
    pub name: String,
    file: File,
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn c_path(path: &Path) -> CString {
    // Paths built here from fixed parts and a checked name hold no NUL.
    CString::new(path.as_os_str().as_bytes()).expect("path without NUL")
}

pub fn path_of(name: &str) -> PathBuf {
    Path::new(RUN_NETNS).join(name)
}

impl Namespace {
    /// A new, empty network namespace named `name`; refuses to reuse an existing one.
    pub fn create(name: &str) -> io::Result<Namespace> {
        let path = path_of(name);
        if path.exists() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists", path.display()),
            ));
        }
        std::fs::create_dir_all(RUN_NETNS)?;
        File::create(&path)?;
        let target = path.clone();
        // unshare() moves only the calling thread: do it in a thread of its own, pin the new
        // namespace with a bind mount of that thread's handle, and let the thread end.
        let made = std::thread::spawn(move || -> io::Result<()> {
            // SAFETY: plain system calls with valid, NUL-terminated paths.
            unsafe {
                check(libc::unshare(libc::CLONE_NEWNET))?;
                let source = c_path(Path::new("/proc/thread-self/ns/net"));
                let target = c_path(&target);
                check(libc::mount(
                    source.as_ptr(),
                    target.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null(),
                ))
            }
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("namespace thread panicked")));
        if let Err(e) = made {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        let file = File::open(&path)?;
        Ok(Namespace {
            name: name.to_string(),
            file,
        })
    }

    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// Runs `f` in a thread that lives in this namespace: sockets it opens belong here.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
        let fd = self.fd();
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    // SAFETY: `fd` is an open namespace handle owned by `self`, alive here.
                    check(unsafe { libc::setns(fd, libc::CLONE_NEWNET) })?;
                    f()
                })
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("thread in namespace panicked")))
        })
    }

    /// Keeps the namespace after this handle goes (`--keep`); `remove` deletes it later.
    pub fn leak(self) {
        std::mem::forget(self);
    }
}

/// Unmounts and deletes a namespace by name: what `ip netns delete` does. The namespace
/// itself goes once nothing else (a process, a socket) holds it.
pub fn remove(name: &str) -> io::Result<()> {
    let path = path_of(name);
    let target = c_path(&path);
    // SAFETY: a valid NUL-terminated path.
    let unmounted = check(unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) });
    match std::fs::remove_file(&path) {
        Ok(()) => unmounted,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = remove(&self.name);
    }
}
