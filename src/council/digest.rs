//! The SHA-256 `council_imports` keeps of each file read or written, so
//! that a DBA can tell which council.db went in (`sha256sum council.db`
//! prints the same).

use std::io::{self, Read as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use pgrx::pg_sys::panic::ErrorReport;
use sha2::{Digest as _, Sha256};

use crate::error::report;
use crate::postgres::{interrupts, threads};
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
    sha256_hex(path, interrupts::pending).map_err(|err| read_error(path, &err))
}

/// A file's SHA-256, taken on a thread of its own while the backend reads
/// the file for the import: hashing costs about a tenth of the import's
/// time, which the second core otherwise spends idle. If no thread can be
/// had, the file is hashed when the digest is asked for, as `of_file` does.
pub struct Hashing {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<io::Result<String>>>,
}

impl Hashing {
    pub fn start(path: &Path) -> Hashing {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let path = path.to_owned();
            let stop = Arc::clone(&stop);
            threads::spawn("llm_council sha256", move || {
                sha256_hex(&path, || stop.load(Ordering::Relaxed))
            })
            .ok()
        };
        Hashing {
            path: path.to_owned(),
            stop,
            thread,
        }
    }

    /// The digest, as `of_file` gives it. A cancel of the statement while
    /// it waits stops the hashing and is reported as one.
    pub fn finish(self) -> Result<String, ErrorReport> {
        let path = self.path.clone();
        self.wait(interrupts::pending)
            .map_err(|err| read_error(&path, &err))
    }

    /// The thread's digest once it is done; `cancelled` is asked first and
    /// then every millisecond until it is.
    fn wait(mut self, cancelled: impl Fn() -> bool) -> io::Result<String> {
        let Some(thread) = self.thread.take() else {
            return sha256_hex(&self.path, cancelled);
        };
        loop {
            if cancelled() {
                self.stop.store(true, Ordering::Relaxed);
                let _ = thread.join();
                return Err(io::Error::new(io::ErrorKind::Interrupted, "cancelled"));
            }
            if thread.is_finished() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        match thread.join() {
            Ok(digest) => digest,
            // The thread panicked (it should not): hash here instead.
            Err(_) => sha256_hex(&self.path, cancelled),
        }
    }
}

impl Drop for Hashing {
    /// An import that fails stops the hashing: no thread outlives it.
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.stop.store(true, Ordering::Relaxed);
            let _ = thread.join();
        }
    }
}

fn read_error(path: &Path, err: &io::Error) -> ErrorReport {
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
            Some("the file changed or went away after it was read; run the import again".into()),
        )
    }
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
    fn the_digest_taken_on_a_thread_is_the_same() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("f");
        let big: Vec<u8> = (0..3 * CHUNK + 5).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &big).expect("writing");
        let hashing = Hashing::start(&path);
        assert!(hashing.thread.is_some(), "no thread was started");
        assert_eq!(
            hashing.wait(|| false).expect("hashing"),
            hex(&Sha256::digest(&big))
        );
    }

    #[test]
    fn a_cancel_while_waiting_stops_the_thread() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("f");
        std::fs::write(&path, b"abc").expect("writing");
        let err = Hashing::start(&path)
            .wait(|| true)
            .expect_err("a cancel should stop it");
        assert_eq!(err.kind(), io::ErrorKind::Interrupted);
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
