//! The server's own temporary space for what an import reads that is not the
//! user's file itself: uploads, and private copies of a file whose `-wal`
//! holds rows. Every name starts with `pgsql_tmp`, as PostgreSQL's own
//! temporary files do, so crash recovery removes what a killed backend left;
//! every other exit removes it here.
//!
//! - An upload is a PostgreSQL temporary file (fd.c) owned by the
//!   transaction: it goes at commit, at abort and at backend exit, and counts
//!   against `temp_file_limit` like a sort's.
//! - A private copy is a directory (SQLite needs the `-wal` file next to the
//!   database under its own name), removed when the reader is dropped, and
//!   by an exit callback when the backend ends by FATAL, which unwinds no
//!   Rust frames.

use std::ffi::CStr;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use pgrx::pg_sys;
use pgrx::pg_sys::panic::ErrorReport;

use crate::error::Error;

/// Where PostgreSQL keeps temporary files of the default tablespace,
/// relative to the data directory, which is the backend's working directory.
const TEMP_DIR: &str = "base/pgsql_tmp";

fn private_prefix() -> String {
    // SAFETY: MyProcPid is set before any backend runs SQL and never changes.
    let pid = unsafe { pg_sys::MyProcPid };
    format!("pgsql_tmp{pid}.llm_council.")
}

static EXIT_CLEANUP: AtomicBool = AtomicBool::new(false);

/// A new directory, 0700, for a private copy; removed when dropped, and at
/// backend exit if it is still there.
pub fn private_dir() -> io::Result<tempfile::TempDir> {
    if !EXIT_CLEANUP.swap(true, Ordering::SeqCst) {
        // SAFETY: registering a plain function with no argument; the
        // callback list is the backend's own.
        unsafe { pg_sys::on_proc_exit(Some(remove_private_dirs), pg_sys::Datum::from(0)) };
    }
    std::fs::create_dir_all(TEMP_DIR)?;
    tempfile::Builder::new()
        .prefix(&private_prefix())
        .tempdir_in(TEMP_DIR)
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn remove_private_dirs(_code: std::ffi::c_int, _arg: pg_sys::Datum) {
    let prefix = private_prefix();
    let Ok(entries) = std::fs::read_dir(TEMP_DIR) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            // Nothing to report to at exit; crash recovery's sweep of
            // pgsql_tmp* is the fallback.
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A temporary file that lives until the end of the current transaction.
pub struct TransactionFile {
    file: pg_sys::File,
    path: PathBuf,
    size: u64,
}

/// Restores the resource owner it replaced, also when an ERROR unwinds.
struct OwnerSwitch(pg_sys::ResourceOwner);

impl Drop for OwnerSwitch {
    fn drop(&mut self) {
        // SAFETY: puts back the owner that was current when the switch was made.
        unsafe { pg_sys::CurrentResourceOwner = self.0 };
    }
}

impl TransactionFile {
    /// A new, empty file. It belongs to the transaction, not to the statement:
    /// a later statement of the same transaction can still read it.
    pub fn create() -> TransactionFile {
        // SAFETY: the top transaction's resource owner exists while a
        // transaction runs, which it does whenever SQL calls us.
        let _switch = unsafe {
            let switch = OwnerSwitch(pg_sys::CurrentResourceOwner);
            pg_sys::CurrentResourceOwner = pg_sys::TopTransactionResourceOwner;
            switch
        };
        // SAFETY: OpenTemporaryFile raises an ERROR rather than return an
        // invalid file.
        let file = unsafe { pg_sys::OpenTemporaryFile(false) };
        // SAFETY: fd.c keeps the name for as long as the file is open.
        let name = unsafe { CStr::from_ptr(pg_sys::FilePathName(file)) };
        let path = PathBuf::from(name.to_string_lossy().into_owned());
        TransactionFile {
            file,
            path,
            size: 0,
        }
    }

    /// Appends `data`; an ERROR (full disk, temp_file_limit) aborts the
    /// transaction, which removes the file.
    pub fn append(&mut self, data: &[u8]) -> Result<(), ErrorReport> {
        const PIECE: usize = 1 << 20;
        for piece in data.chunks(PIECE) {
            let offset = pg_sys::off_t::try_from(self.size).unwrap_or(pg_sys::off_t::MAX);
            // SAFETY: the file is open for this transaction; FileWrite only
            // reads `piece.len()` bytes of `piece`, at most PIECE, which
            // fits the amount's type on every major (int before 16,
            // size_t since).
            let written = unsafe {
                pg_sys::FileWrite(
                    self.file,
                    piece.as_ptr().cast_mut().cast(),
                    piece.len() as _,
                    offset,
                    pg_sys::WaitEventIO::WAIT_EVENT_BUFFILE_WRITE,
                )
            };
            if usize::try_from(written).ok() != Some(piece.len()) {
                return Err(Error::UploadSpaceFull {
                    error: io::Error::last_os_error(),
                    stored: self.size,
                }
                .into());
            }
            self.size += piece.len() as u64;
        }
        Ok(())
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TransactionFile {
    fn drop(&mut self) {
        // Closing a temporary file deletes it. At transaction end the
        // resource owner has closed it already, and this runs no more:
        // the upload state forgets a file of an earlier transaction
        // without dropping it.
        // SAFETY: the file belongs to the running transaction (see above).
        unsafe { pg_sys::FileClose(self.file) };
    }
}
