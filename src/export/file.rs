//! The council.db an export writes: the app's own `schema.sql` (so the
//! app's next start finds every table and index and adds nothing), the
//! rows, then the journal mode the app keeps (WAL, recorded in the header),
//! all in a file of a temporary name that becomes the final one only when
//! complete.
//!
//! The rows go in with SQLite's journal off and no syncs: the file is not
//! the user's until it is renamed, and a failed export leaves nothing to
//! recover. It is synced once, whole, before the rename.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::ExportError;

/// SQLite's page cache while the rows go in, in KiB: enough for the
/// indexes' working set, small against the 64 MB an export may hold.
const CACHE_KIB: i64 = 16 * 1024;

/// A council.db being written; dropped unfinished, it is removed.
pub struct ExportFile {
    conn: Connection,
    temp: tempfile::TempPath,
}

impl ExportFile {
    /// A new file of a temporary name in `dir`, with the app's tables and
    /// indexes, ready for rows.
    pub fn create_in(dir: &Path) -> Result<ExportFile, ExportError> {
        let temp = tempfile::Builder::new()
            .prefix(".council-export-")
            .suffix(".db")
            .tempfile_in(dir)
            .map_err(|source| ExportError::Write {
                path: dir.to_owned(),
                action: "creating a file in",
                source,
            })?
            .into_temp_path();
        let conn = Connection::open(&temp).map_err(|err| sqlite(&temp, "opening", err))?;
        let file = ExportFile { conn, temp };
        file.conn
            .execute_batch(&format!(
                "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; \
                 PRAGMA cache_size = -{CACHE_KIB};"
            ))
            .map_err(|err| file.error("setting up", err))?;
        file.conn
            .execute_batch(council_app::ddl::SCHEMA)
            .map_err(|err| file.error("creating the app's tables in", err))?;
        file.conn
            .execute_batch("BEGIN")
            .map_err(|err| file.error("writing", err))?;
        Ok(file)
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The error of a failed SQLite call on this file.
    pub fn error(&self, action: &'static str, err: rusqlite::Error) -> ExportError {
        sqlite(&self.temp, action, err)
    }

    /// Commits the rows, switches the file to WAL as the app keeps it, and
    /// syncs it; the file is complete, still under its temporary name.
    pub fn finish(self) -> Result<FinishedFile, ExportError> {
        let ExportFile { conn, temp } = self;
        let fail = |action, err| sqlite(&temp, action, err);
        conn.execute_batch("COMMIT")
            .map_err(|err| fail("writing", err))?;
        // journal_mode = WAL writes it into the header (bytes 18 and 19);
        // the last connection's close checkpoints and removes -wal and -shm.
        conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
            .map_err(|err| fail("switching to WAL", err))?;
        conn.close().map_err(|(_, err)| fail("closing", err))?;
        let io = |action: &'static str| {
            let path = temp.to_path_buf();
            move |source| ExportError::Write {
                path,
                action,
                source,
            }
        };
        let file = fs::File::open(&temp).map_err(io("syncing"))?;
        file.sync_all().map_err(io("syncing"))?;
        Ok(FinishedFile { temp })
    }
}

/// A complete council.db under its temporary name.
pub struct FinishedFile {
    temp: tempfile::TempPath,
}

impl FinishedFile {
    /// Gives the file its final name, which must not exist: a file that
    /// appeared there meanwhile is never replaced. Readable by everyone, as
    /// a file `COPY … TO` writes is.
    pub fn persist(self, path: &Path) -> Result<(), ExportError> {
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(&self.temp, fs::Permissions::from_mode(0o644)).map_err(|source| {
            ExportError::Write {
                path: self.temp.to_path_buf(),
                action: "setting the mode of",
                source,
            }
        })?;
        self.temp.persist_noclobber(path).map_err(|err| {
            if err.error.kind() == io::ErrorKind::AlreadyExists {
                ExportError::Exists(path.to_owned())
            } else {
                ExportError::Write {
                    path: path.to_owned(),
                    action: "renaming the finished file to",
                    source: err.error,
                }
            }
        })?;
        // The new name is durable once the directory is.
        if let Some(dir) = path.parent() {
            let synced = fs::File::open(dir).and_then(|dir| dir.sync_all());
            synced.map_err(|source| ExportError::Write {
                path: dir.to_owned(),
                action: "syncing the directory",
                source,
            })?;
        }
        Ok(())
    }

    /// Where the file is, for a caller that streams it rather than names it.
    pub fn path(&self) -> &Path {
        &self.temp
    }
}

fn sqlite(path: &Path, action: &'static str, err: rusqlite::Error) -> ExportError {
    ExportError::Sqlite {
        path: PathBuf::from(path),
        action,
        reason: err.to_string(),
    }
}
