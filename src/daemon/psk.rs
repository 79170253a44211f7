//! Reading a pre-shared key file: the key as written (one trailing newline ignored), or
//! `0x` followed by hex digits, as swanctl.conf's `secret` accepts.

use std::path::Path;

use crate::ike::crypto::Secret;

/// Why a PSK file cannot be used; never contains the key.
#[derive(Debug, thiserror::Error)]
pub enum PskError {
    #[error("{path}: {error}")]
    Read {
        path: String,
        error: crate::profile::file::FileError,
    },
    #[error("{path}: the key is empty")]
    Empty { path: String },
    #[error("{path}: after 0x, only an even number of hex digits may follow")]
    BadHex { path: String },
}

pub fn read(path: &Path) -> Result<Secret, PskError> {
    let shown = crate::profile::shown_secret_path(path);
    let bytes = Secret::new(
        crate::profile::file::read(path).map_err(|error| PskError::Read {
            path: shown.clone(),
            error,
        })?,
    );
    parse(bytes.expose()).map_err(|e| match e {
        ParseError::Empty => PskError::Empty { path: shown },
        ParseError::BadHex => PskError::BadHex { path: shown },
    })
}

enum ParseError {
    Empty,
    BadHex,
}

fn parse(text: &[u8]) -> Result<Secret, ParseError> {
    let line = text
        .strip_suffix(b"\n")
        .map_or(text, |t| t.strip_suffix(b"\r").unwrap_or(t));
    if line.is_empty() {
        return Err(ParseError::Empty);
    }
    let Some(hex) = line.strip_prefix(b"0x") else {
        return Ok(Secret::from_slice(line));
    };
    if hex.is_empty() || hex.len() % 2 != 0 {
        return Err(ParseError::BadHex);
    }
    let digit = |c: u8| (c as char).to_digit(16).ok_or(ParseError::BadHex);
    let mut key = Vec::with_capacity(hex.len() / 2);
    for pair in hex.chunks_exact(2) {
        let &[high, low] = <&[u8; 2]>::try_from(pair).map_err(|_| ParseError::BadHex)?;
        key.push((digit(high)? * 16 + digit(low)?) as u8);
    }
    Ok(Secret::new(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &[u8]) -> Option<Vec<u8>> {
        parse(text).ok().map(|s| s.expose().to_vec())
    }

    #[test]
    fn raw_keys_lose_one_newline_and_hex_keys_are_decoded() {
        assert_eq!(key(b"s3cret\n").unwrap(), b"s3cret");
        assert_eq!(key(b"s3cret\r\n").unwrap(), b"s3cret");
        assert_eq!(key(b"with space \n\n").unwrap(), b"with space \n");
        assert_eq!(key(b"0xdeadBEEF\n").unwrap(), [0xde, 0xad, 0xbe, 0xef]);
        assert!(key(b"\n").is_none());
        assert!(key(b"0xabc").is_none());
        assert!(key(b"0xzz").is_none());
    }

    #[test]
    fn errors_name_the_file_but_never_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.psk");
        std::fs::write(&path, "0xSECRETSECRET").unwrap();
        let message = read(&path).unwrap_err().to_string();
        assert!(
            message.contains("bad.psk") && !message.contains("SECRET"),
            "{message}"
        );
        // A key written where the file name belongs.
        let message = read(&dir.path().join("MySecretKey123"))
            .unwrap_err()
            .to_string();
        assert!(!message.contains("MySecretKey123"), "{message}");
        assert!(message.starts_with("<redacted>: "), "{message}");
    }
}
