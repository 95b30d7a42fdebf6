//! The SHA-256 `council_imports` keeps of each file read or written, so
//! that a DBA can tell which council.db went in (`sha256sum council.db`
//! prints the same).

use std::io::{self, Read as _};
use std::path::Path;

use pgrx::pg_sys::panic::ErrorReport;
use sha2::{Digest as _, Sha256};

use crate::error::report;
use crate::postgres::interrupts;
use crate::sqlstate;

/// Bytes hashed between two checks for a cancel.
const CHUNK: usize = 1 << 20;

/// The file's SHA-256 in lowercase hex. `cancelled` is asked between
/// chunks: a cancel stops the read with `ErrorKind::Interrupted`.
pub fn sha256_hex(path: &Path, cancelled: impl Fn() -> bool) -> io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; CHUNK];
    loop {
        if cancelled() {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "cancelled"));
        }
        let read = match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        hasher.update(&buffer[..read]);
    }
    Ok(hex(&hasher.finalize()))
}

/// The SHA-256 of a file the server reads or wrote, as `council_imports`
/// records it; a cancel while it reads is reported as one.
pub fn of_file(path: &Path) -> Result<String, ErrorReport> {
    sha256_hex(path, interrupts::pending).map_err(|err| {
        if err.kind() == io::ErrorKind::Interrupted {
            report(
                sqlstate::QUERY_CANCELED,
                "canceling statement due to user request",
                None,
                None,
            )
        } else {
            report(
                sqlstate::IO_ERROR,
                format!(
                    "could not read \"{}\" to record its SHA-256: {err}",
                    path.display()
                ),
                None,
                Some(
                    "the file changed or went away after it was read; run the import again".into(),
                ),
            )
        }
    })
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_is_what_sha256sum_prints() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("f");
        std::fs::write(&path, b"abc").expect("writing");
        assert_eq!(
            sha256_hex(&path, || false).expect("hashing"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // larger than one chunk, so that chunks are joined right
        let big = vec![b'a'; CHUNK + 17];
        std::fs::write(&path, &big).expect("writing");
        assert_eq!(
            sha256_hex(&path, || false).expect("hashing"),
            hex(&Sha256::digest(&big))
        );
    }

    #[test]
    fn a_cancel_stops_the_read() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("f");
        std::fs::write(&path, b"abc").expect("writing");
        let err = sha256_hex(&path, || true).expect_err("a cancel should stop it");
        assert_eq!(err.kind(), io::ErrorKind::Interrupted);
    }
}
