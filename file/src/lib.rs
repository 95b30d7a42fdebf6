//! The app's `council.db` on disk, opened for reading without writing a byte
//! beside it.
//!
//! The app runs SQLite in WAL mode, which is recorded in the file's header:
//! every council.db it ever touched is a WAL-mode file, also after a clean
//! shutdown that left no `-wal` file. SQLite opens such a file only with a
//! `-shm` file beside it, which it creates when it can (leaving traces in the
//! user's directory) and fails on when it cannot (a directory the reader may
//! not write). So:
//!
//! - a rollback-journal file is opened read-only where it lies;
//! - a WAL-mode file with no committed rows outside it (no `-wal`, or an
//!   empty one) and no `-shm` (no app has it open) is opened as immutable,
//!   which needs neither `-wal` nor `-shm`;
//! - a WAL-mode file whose `-wal` holds rows, or that an app may have open
//!   (a `-shm` beside it: its next commit would land in `-wal` while an
//!   immutable read runs), is copied, with its `-wal`,
//!   into a private directory the caller names, and opened there. A copy
//!   taken while the files changed is taken again; the rows in `-wal` are
//!   never left out.
//! - a WAL-mode file an app is writing to right now (the copy keeps
//!   changing) is read where it lies through its `-shm`, under SQLite's own
//!   locks, which give one consistent snapshot: the live app keeps those
//!   files anyway, and nothing is created.

pub mod layout;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rusqlite::{Connection, OpenFlags};

/// How SQLite keeps a database's uncommitted and recent pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Journal {
    /// A `-journal` file during writes only; the main file is complete.
    Rollback,
    /// Write-ahead log: recent commits may live only in the `-wal` file.
    Wal,
}

/// Which of the two files an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Database,
    Wal,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("could not open \"{}\": {source}", path.display())]
    Access {
        path: PathBuf,
        part: Part,
        #[source]
        source: io::Error,
    },
    #[error("\"{}\" is a directory", path.display())]
    Directory { path: PathBuf },
    #[error("could not copy \"{}\" into \"{}\" to read it with its -wal file: {source}", path.display(), into.display())]
    Snapshot {
        path: PathBuf,
        into: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("\"{}\" and its -wal file changed while they were copied, {tries} times", path.display())]
    Changing { path: PathBuf, tries: u32 },
    #[error("could not open \"{}\": {source}", path.display())]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
}

/// The `-wal` file SQLite pairs with `path`.
pub fn wal_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// The journal mode the header records (bytes 18 and 19: 1 rollback, 2 WAL).
/// A file too short to have a header is left for SQLite to judge.
pub fn journal(path: &Path) -> io::Result<Journal> {
    use std::io::Read as _;
    let mut header = [0u8; 20];
    let mut file = fs::File::open(path)?;
    let mut filled = 0;
    while filled < header.len() {
        match file.read(&mut header[filled..])? {
            0 => return Ok(Journal::Rollback),
            n => filled += n,
        }
    }
    Ok(if header[18] == 2 || header[19] == 2 {
        Journal::Wal
    } else {
        Journal::Rollback
    })
}

/// What identifies a file's contents for the copy's consistency check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

fn stamp(path: &Path) -> io::Result<Option<Stamp>> {
    use std::os::unix::fs::MetadataExt as _;
    match fs::metadata(path) {
        Ok(m) => Ok(Some(Stamp {
            len: m.len(),
            modified: m.modified().ok(),
            inode: m.ino(),
        })),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err),
    }
}

/// A council.db open for reading, and the private copy it was read from, if
/// one was needed; the copy goes when this is dropped.
pub struct ReadOnly {
    pub conn: Connection,
    pub journal: Journal,
    snapshot: Option<tempfile::TempDir>,
    /// For a file read as immutable: how it looked when opened.
    unlocked: Option<Unlocked>,
}

/// A file read without SQLite's locks (immutable), and how it looked then:
/// were an app to start writing to it meanwhile, the read may be torn, and
/// [`Unlocked::check`] says so.
#[derive(Clone, Debug)]
pub struct Unlocked {
    path: PathBuf,
    stamp: Option<Stamp>,
}

impl Unlocked {
    /// Fails if the file, or a `-wal` beside it, changed since it was opened.
    pub fn check(&self) -> Result<(), OpenError> {
        let wal_rows = fs::metadata(wal_path(&self.path))
            .map(|m| m.len() > 0)
            .unwrap_or(false);
        if wal_rows || stamp(&self.path).ok().flatten() != self.stamp {
            return Err(OpenError::Changing {
                path: self.path.clone(),
                tries: 1,
            });
        }
        Ok(())
    }
}

impl ReadOnly {
    /// Where the private copy is, when the file had rows in its `-wal`.
    pub fn snapshot(&self) -> Option<&Path> {
        self.snapshot.as_ref().map(|dir| dir.path())
    }

    /// The connection, the private copy it reads (keep it until the
    /// connection is closed), and the check for a file read without locks.
    pub fn into_parts(self) -> (Connection, Option<tempfile::TempDir>, Option<Unlocked>) {
        (self.conn, self.snapshot, self.unlocked)
    }
}

/// How many times a copy of a database that keeps changing is tried.
const COPY_TRIES: u32 = 3;

/// The file read where it lies, under SQLite's own locks. A writer holds
/// them for the moment of its commit; the read waits that long rather than
/// fail.
fn in_place(path: &Path, flags: OpenFlags, journal: Journal) -> Result<ReadOnly, OpenError> {
    let sqlite = |source| OpenError::Sqlite {
        path: path.to_owned(),
        source,
    };
    let conn = Connection::open_with_flags(path, flags).map_err(sqlite)?;
    conn.busy_timeout(std::time::Duration::from_secs(1))
        .map_err(sqlite)?;
    Ok(ReadOnly {
        conn,
        journal,
        snapshot: None,
        unlocked: None,
    })
}

/// Opens `path` read-only (plus `flags`) without creating, changing or
/// removing any file beside it. `private_dir` makes the directory a copy goes
/// to when the `-wal` file holds rows; it should be readable by nobody else.
pub fn open(
    path: &Path,
    flags: OpenFlags,
    private_dir: &dyn Fn() -> io::Result<tempfile::TempDir>,
) -> Result<ReadOnly, OpenError> {
    let access = |part: Part, path: &Path| {
        let path = path.to_owned();
        move |source: io::Error| OpenError::Access { path, part, source }
    };
    let metadata = fs::metadata(path).map_err(access(Part::Database, path))?;
    if metadata.is_dir() {
        return Err(OpenError::Directory {
            path: path.to_owned(),
        });
    }
    let journal = journal(path).map_err(access(Part::Database, path))?;
    let flags = flags | OpenFlags::SQLITE_OPEN_READ_ONLY;
    let sqlite = |source| OpenError::Sqlite {
        path: path.to_owned(),
        source,
    };
    if journal == Journal::Rollback {
        return in_place(path, flags, journal);
    }
    let wal = wal_path(path);
    let wal_rows = match fs::File::open(&wal) {
        Ok(file) => file.metadata().map_err(access(Part::Wal, &wal))?.len() > 0,
        Err(err) if err.kind() == io::ErrorKind::NotFound => false,
        Err(err) => return Err(access(Part::Wal, &wal)(err)),
    };
    if !wal_rows && !shm_path(path).exists() {
        let unlocked = Unlocked {
            path: path.to_owned(),
            stamp: stamp(path).map_err(access(Part::Database, path))?,
        };
        let conn =
            Connection::open_with_flags(immutable_uri(path), flags | OpenFlags::SQLITE_OPEN_URI)
                .map_err(sqlite)?;
        return Ok(ReadOnly {
            conn,
            journal,
            snapshot: None,
            unlocked: Some(unlocked),
        });
    }
    let dir = private_dir().map_err(|source| OpenError::Snapshot {
        path: path.to_owned(),
        into: std::env::temp_dir(),
        source,
    })?;
    let copy = match copy_with_wal(path, dir.path()) {
        Ok(copy) => copy,
        Err(OpenError::Changing { .. }) if shm_path(path).exists() => {
            // A live writer: read in place, under its locks.
            return in_place(path, flags, journal);
        }
        Err(other) => return Err(other),
    };
    let conn = Connection::open_with_flags(&copy, flags).map_err(sqlite)?;
    Ok(ReadOnly {
        conn,
        journal,
        snapshot: Some(dir),
        unlocked: None,
    })
}

/// The `-shm` file SQLite pairs with `path`.
fn shm_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-shm");
    PathBuf::from(name)
}

/// Copies the database and its `-wal` into `dir` until both were unchanged
/// across the copy, and returns the copy's path.
pub fn copy_with_wal(path: &Path, dir: &Path) -> Result<PathBuf, OpenError> {
    let name = path.file_name().unwrap_or(path.as_os_str());
    let copy = dir.join(name);
    let wal = wal_path(path);
    for _ in 0..COPY_TRIES {
        let before = (stamp(path), stamp(&wal));
        copy_file(path, &copy, Part::Database)?;
        copy_file(&wal, &wal_path(&copy), Part::Wal)?;
        let after = (stamp(path), stamp(&wal));
        if matches!((&before, &after), ((Ok(a), Ok(b)), (Ok(c), Ok(d))) if a == c && b == d) {
            return Ok(copy);
        }
    }
    Err(OpenError::Changing {
        path: path.to_owned(),
        tries: COPY_TRIES,
    })
}

fn copy_file(from: &Path, to: &Path, part: Part) -> Result<(), OpenError> {
    // The source may be gone or unreadable (its -wal is checkpointed away
    // by the app, or its mode forbids us); the copy may fail for lack of
    // room. The user acts differently on each.
    let mut source = fs::File::open(from).map_err(|source| OpenError::Access {
        path: from.to_owned(),
        part,
        source,
    })?;
    let mut target = fs::File::create(to).map_err(|source| OpenError::Snapshot {
        path: from.to_owned(),
        into: to.to_owned(),
        source,
    })?;
    io::copy(&mut source, &mut target).map_err(|source| OpenError::Snapshot {
        path: from.to_owned(),
        into: to.to_owned(),
        source,
    })?;
    Ok(())
}

/// A `file:` URI for `path` with `immutable=1`: SQLite then reads the main
/// file alone and takes no locks, which is right only when no `-wal` holds
/// rows.
pub fn immutable_uri(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt as _;
    let mut uri = String::from("file:");
    for &byte in path.as_os_str().as_bytes() {
        if byte.is_ascii_alphanumeric() || b"/._-~".contains(&byte) {
            uri.push(char::from(byte));
        } else {
            uri.push_str(&format!("%{byte:02X}"));
        }
    }
    uri.push_str("?immutable=1");
    uri
}

/// Folds the rows of `path`'s `-wal` file into one self-contained file in
/// `dir` (a copy, checkpointed), for sending elsewhere; the original is not
/// touched. Without rows in a `-wal`, the file is already self-contained and
/// its own path is returned.
pub fn self_contained(path: &Path, dir: &Path) -> Result<PathBuf, OpenError> {
    let wal = wal_path(path);
    let wal_rows = fs::metadata(&wal).map(|m| m.len() > 0).unwrap_or(false);
    if journal(path).ok() != Some(Journal::Wal) || !wal_rows {
        return Ok(path.to_owned());
    }
    let copy = copy_with_wal(path, dir)?;
    let sqlite = |source| OpenError::Sqlite {
        path: path.to_owned(),
        source,
    };
    let conn = Connection::open(&copy).map_err(sqlite)?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .map_err(sqlite)?;
    conn.close().map_err(|(_, source)| sqlite(source))?;
    Ok(copy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::config::DbConfig;

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// A WAL-mode file with `checkpointed` rows in the main file and
    /// `in_wal` more only in its `-wal`.
    fn wal_file(dir: &Path, checkpointed: i64, in_wal: i64) -> PathBuf {
        let path = dir.join("council.db");
        let conn = Connection::open(&path).expect("create");
        conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
            .expect("wal");
        conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY)")
            .expect("table");
        for id in 0..checkpointed {
            conn.execute("INSERT INTO t VALUES (?1)", [id])
                .expect("row");
        }
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .expect("checkpoint");
        if in_wal > 0 {
            conn.pragma_update(None, "wal_autocheckpoint", 0)
                .expect("no autocheckpoint");
            for id in checkpointed..checkpointed + in_wal {
                conn.execute("INSERT INTO t VALUES (?1)", [id])
                    .expect("row");
            }
            conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
                .expect("no checkpoint on close");
        }
        drop(conn);
        path
    }

    fn count(read: &ReadOnly) -> i64 {
        read.conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .expect("count")
    }

    fn private() -> io::Result<tempfile::TempDir> {
        tempfile::tempdir()
    }

    #[test]
    fn a_checkpointed_wal_file_is_read_in_place_and_nothing_appears_beside_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = wal_file(dir.path(), 5, 0);
        let before = listing(dir.path());
        assert_eq!(before, vec!["council.db"]);
        let read = open(&path, OpenFlags::empty(), &private).expect("open");
        assert_eq!(read.journal, Journal::Wal);
        assert_eq!(count(&read), 5);
        assert!(read.snapshot().is_none());
        drop(read);
        assert_eq!(listing(dir.path()), before);
    }

    #[test]
    fn rows_only_in_the_wal_are_read_from_a_private_copy() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = wal_file(dir.path(), 5, 7);
        // the DBA copied two of the three files
        fs::remove_file(dir.path().join("council.db-shm")).expect("no shm");
        let before = listing(dir.path());
        let read = open(&path, OpenFlags::empty(), &private).expect("open");
        assert_eq!(count(&read), 12);
        let copy = read.snapshot().expect("a private copy").to_owned();
        drop(read);
        assert!(
            !copy.exists(),
            "the private copy is removed with the reader"
        );
        assert_eq!(listing(dir.path()), before);
    }

    #[test]
    fn an_unreadable_wal_is_named_with_the_missing_access() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = wal_file(dir.path(), 1, 1);
        let wal = wal_path(&path);
        fs::set_permissions(&wal, fs::Permissions::from_mode(0o000)).expect("chmod");
        if fs::File::open(&wal).is_ok() {
            return; // root reads any file; the integration tests run this as a server user
        }
        let err = open(&path, OpenFlags::empty(), &private).err();
        assert!(
            matches!(&err, Some(OpenError::Access { part: Part::Wal, path: p, source })
                if *p == wal && source.kind() == io::ErrorKind::PermissionDenied),
            "{err:?}"
        );
    }

    #[test]
    fn a_file_read_as_immutable_says_when_an_app_wrote_to_it_meanwhile() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = wal_file(dir.path(), 5, 0);
        let read = open(&path, OpenFlags::empty(), &private).expect("open");
        let (_conn, _, unlocked) = read.into_parts();
        let unlocked = unlocked.expect("read as immutable");
        assert!(unlocked.check().is_ok());
        let app = Connection::open(&path).expect("the app");
        app.execute("INSERT INTO t VALUES (100)", [])
            .expect("a write");
        assert!(matches!(unlocked.check(), Err(OpenError::Changing { .. })));
    }

    #[test]
    fn a_rollback_journal_file_is_read_in_place() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("council.db");
        Connection::open(&path)
            .and_then(|c| c.execute_batch("CREATE TABLE t (id INTEGER); INSERT INTO t VALUES (1);"))
            .expect("create");
        let read = open(&path, OpenFlags::empty(), &private).expect("open");
        assert_eq!(read.journal, Journal::Rollback);
        assert_eq!(count(&read), 1);
        drop(read);
        assert_eq!(listing(dir.path()), vec!["council.db"]);
    }

    #[test]
    fn self_contained_folds_the_wal_into_a_copy() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = wal_file(dir.path(), 3, 4);
        let before = listing(dir.path());
        let out = tempfile::tempdir().expect("tempdir");
        let folded = self_contained(&path, out.path()).expect("fold");
        assert_ne!(folded, path);
        assert_eq!(listing(dir.path()), before);
        assert!(
            !wal_path(&folded).exists()
                || fs::metadata(wal_path(&folded))
                    .map(|m| m.len())
                    .unwrap_or(0)
                    == 0
        );
        let read = open(&folded, OpenFlags::empty(), &private).expect("open");
        assert_eq!(count(&read), 7);
    }

    #[test]
    fn uris_escape_what_sqlite_would_parse() {
        assert_eq!(
            immutable_uri(Path::new("/srv/a b/c?d#e%f.db")),
            "file:/srv/a%20b/c%3Fd%23e%25f.db?immutable=1"
        );
    }
}
