//! Reading profiles, secrets and credentials: regular files only, bounded in size, never blocking.
//!
//! A profile that cannot be read must stop the load (a skipped file would remove its
//! tunnel), and a FIFO or `/dev/zero` named by mistake must not hang or exhaust memory.

use std::fmt;
use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The largest profile or secret file read; real ones are a few kilobytes.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// Why a file cannot be read; says nothing about its content.
#[derive(Debug)]
pub enum FileError {
    DanglingSymlink,
    SymlinkLoop,
    /// Not a regular file: "a directory", "a FIFO", ...
    NotRegular(&'static str),
    TooLarge,
    Io(std::io::Error),
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileError::DanglingSymlink => write!(f, "dangling symlink"),
            FileError::SymlinkLoop => write!(f, "symlink loop"),
            FileError::NotRegular(kind) => write!(f, "is {kind}, not a regular file"),
            FileError::TooLarge => write!(f, "larger than the {} MiB limit", MAX_FILE_BYTES >> 20),
            FileError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for FileError {}

impl FileError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, FileError::Io(e) if e.kind() == std::io::ErrorKind::NotFound)
    }
}

/// What a non-regular file is, for messages.
pub fn kind_of(meta: &Metadata) -> Option<&'static str> {
    let t = meta.file_type();
    if t.is_file() {
        None
    } else if t.is_dir() {
        Some("a directory")
    } else if t.is_fifo() {
        Some("a FIFO")
    } else if t.is_socket() {
        Some("a socket")
    } else if t.is_char_device() {
        Some("a character device")
    } else if t.is_block_device() {
        Some("a block device")
    } else {
        Some("not a file")
    }
}

fn regular(meta: &Metadata) -> Result<(), FileError> {
    match kind_of(meta) {
        Some(kind) => Err(FileError::NotRegular(kind)),
        None if meta.len() > MAX_FILE_BYTES => Err(FileError::TooLarge),
        None => Ok(()),
    }
}

/// Why `path` cannot be examined: a symlink pointing nowhere is named as such.
fn classify(path: &Path, e: std::io::Error) -> FileError {
    if e.raw_os_error() == Some(libc::ELOOP) {
        return FileError::SymlinkLoop;
    }
    let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if is_link && e.kind() == std::io::ErrorKind::NotFound {
        FileError::DanglingSymlink
    } else {
        FileError::Io(e)
    }
}

/// Metadata of the file `path` leads to, if it is a regular file within the size limit.
pub fn examine(path: &Path) -> Result<Metadata, FileError> {
    let meta = std::fs::metadata(path).map_err(|e| classify(path, e))?;
    regular(&meta)?;
    Ok(meta)
}

/// The bytes of the regular file `path`, at most [`MAX_FILE_BYTES`].
pub fn read(path: &Path) -> Result<Vec<u8>, FileError> {
    // Checked before opening so that no device is opened, and again on the open file
    // (the path may have been replaced in between).
    examine(path)?;
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| classify(path, e))?;
    regular(&file.metadata().map_err(FileError::Io)?)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(FileError::Io)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(FileError::TooLarge);
    }
    Ok(bytes)
}

/// Creates a FIFO at `path`, for tests of what must not block.
#[cfg(test)]
pub(crate) fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn only_regular_files_within_the_limit_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str| dir.path().join(name);
        std::fs::write(at("ok.toml"), "kind = \"vti\"\n").unwrap();
        assert_eq!(read(&at("ok.toml")).unwrap(), b"kind = \"vti\"\n");

        symlink(at("gone"), at("dangling.toml")).unwrap();
        symlink(at("loop-b.toml"), at("loop-a.toml")).unwrap();
        symlink(at("loop-a.toml"), at("loop-b.toml")).unwrap();
        mkfifo(&at("fifo.toml"));
        std::fs::create_dir(at("dir.toml")).unwrap();
        let _listener = std::os::unix::net::UnixListener::bind(at("socket.toml")).unwrap();
        std::fs::write(at("big.toml"), vec![b'#'; MAX_FILE_BYTES as usize + 1]).unwrap();
        let why = |name: &str| read(&at(name)).unwrap_err().to_string();
        assert_eq!(why("dangling.toml"), "dangling symlink");
        assert_eq!(why("loop-a.toml"), "symlink loop");
        assert_eq!(why("fifo.toml"), "is a FIFO, not a regular file");
        assert_eq!(why("dir.toml"), "is a directory, not a regular file");
        assert_eq!(why("socket.toml"), "is a socket, not a regular file");
        assert_eq!(why("big.toml"), "larger than the 1 MiB limit");
        assert_eq!(
            read(Path::new("/dev/zero")).unwrap_err().to_string(),
            "is a character device, not a regular file"
        );
        assert!(read(&at("missing.toml")).unwrap_err().is_not_found());
    }
}
