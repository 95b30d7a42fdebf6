//! Writes realistic LLM Council `council.db` files: the fixture behind
//! `council-loader sample`, the test suite and the benchmarks.
//!
//! The file is laid out by the app's own `schema.sql` (its tables, column
//! order and indexes) and holds content shaped like the app's own
//! writes (see `docs/sqlite-source.md`): every timestamp form the app
//! produces, JSON as Python's `json.dumps` prints it, non-UUID and
//! upper-case conversation ids, a drifting `message_count`, and optionally
//! a live WAL whose last commits were never checkpointed. Content is a pure
//! function of [`SampleOptions`]: the same options give the same rows on
//! every machine, so tests and benchmarks can compare runs.

mod generate;
mod rng;
mod text;

#[cfg(test)]
mod tests;

use std::fmt;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rusqlite::config::DbConfig;
use rusqlite::Connection;

use generate::Generator;

use council_app::ddl;
use council_app::tables::{COUNCIL, COUNCIL_V1};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SchemaVersion {
    /// Before API keys: six tables.
    V1,
    /// The current app: eight tables.
    #[default]
    V2,
}

impl SchemaVersion {
    pub fn tables(self) -> &'static [&'static str] {
        match self {
            SchemaVersion::V1 => &COUNCIL_V1,
            SchemaVersion::V2 => &COUNCIL,
        }
    }
}

impl fmt::Display for SchemaVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SchemaVersion::V1 => "v1",
            SchemaVersion::V2 => "v2",
        })
    }
}

impl FromStr for SchemaVersion {
    type Err = ParseOptionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "v1" | "1" => Ok(SchemaVersion::V1),
            "v2" | "2" => Ok(SchemaVersion::V2),
            _ => Err(ParseOptionError {
                what: "schema version",
                value: s.to_owned(),
                expected: "v1 or v2",
            }),
        }
    }
}

/// How the finished file is left on disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Journal {
    /// A rollback-journal database, nothing beside it.
    Delete,
    /// What the app leaves: WAL mode (recorded in the header), cleanly
    /// closed, everything checkpointed, no `-wal` left.
    #[default]
    Wal,
    /// A live copy: WAL mode, the last ~10% of conversations (and all their
    /// rows) committed only in `-wal`, never checkpointed; `-shm` too.
    WalUncheckpointed,
}

impl fmt::Display for Journal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Journal::Delete => "delete",
            Journal::Wal => "wal",
            Journal::WalUncheckpointed => "wal-uncheckpointed",
        })
    }
}

impl FromStr for Journal {
    type Err = ParseOptionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "delete" => Ok(Journal::Delete),
            "wal" => Ok(Journal::Wal),
            "wal-uncheckpointed" | "live" => Ok(Journal::WalUncheckpointed),
            _ => Err(ParseOptionError {
                what: "journal mode",
                value: s.to_owned(),
                expected: "delete, wal or wal-uncheckpointed",
            }),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown {what} {value:?}: expected {expected}")]
pub struct ParseOptionError {
    what: &'static str,
    value: String,
    expected: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SampleOptions {
    pub conversations: u64,
    pub schema: SchemaVersion,
    pub seed: u64,
    pub journal: Journal,
}

impl Default for SampleOptions {
    fn default() -> Self {
        SampleOptions {
            conversations: 100,
            schema: SchemaVersion::V2,
            seed: 1,
            journal: Journal::Wal,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SampleSummary {
    /// Rows per table, in [`COUNCIL_V1`] / [`COUNCIL`] order.
    pub tables: Vec<(&'static str, u64)>,
    /// Size of the main database file.
    pub bytes: u64,
    /// Size of the `-wal` file left beside it (0 unless
    /// [`Journal::WalUncheckpointed`]).
    pub wal_bytes: u64,
}

impl SampleSummary {
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|(_, n)| n).sum()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error("{}: file already exists; refusing to overwrite it", path.display())]
    Exists { path: PathBuf },
    #[error(
        "{}: a leftover {} exists beside it; remove it first, SQLite would apply it to the new database",
        path.display(),
        sidecar.display()
    )]
    Sidecar { path: PathBuf, sidecar: PathBuf },
    #[error("{}: journal mode wal-uncheckpointed needs at least 1 conversation to leave in the -wal file", path.display())]
    NothingForWal { path: PathBuf },
    #[error("{}: cannot create the file: {source}", path.display())]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: cannot read the size of the written file: {source}", path.display())]
    Stat {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: SQLite error while writing the sample: {source}", path.display())]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("{}: SQLite refused WAL mode (journal_mode stayed {mode:?})", path.display())]
    NotWal { path: PathBuf, mode: String },
}

/// The files SQLite may create beside a database. Any of them left over from
/// an earlier database of the same name would be taken as belonging to the
/// new one.
fn sidecars(path: &Path) -> [PathBuf; 3] {
    ["-wal", "-shm", "-journal"].map(|suffix| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    })
}

/// Writes a new sample database at `path`; fails if anything is there.
pub fn write(path: &Path, options: &SampleOptions) -> Result<SampleSummary, SampleError> {
    if path.symlink_metadata().is_ok() {
        return Err(SampleError::Exists {
            path: path.to_path_buf(),
        });
    }
    for sidecar in sidecars(path) {
        if sidecar.symlink_metadata().is_ok() {
            return Err(SampleError::Sidecar {
                path: path.to_path_buf(),
                sidecar,
            });
        }
    }
    if options.journal == Journal::WalUncheckpointed && options.conversations == 0 {
        return Err(SampleError::NothingForWal {
            path: path.to_path_buf(),
        });
    }
    // create_new claims the name atomically, so a file that appears after
    // the check above is still never overwritten.
    if let Err(source) = OpenOptions::new().write(true).create_new(true).open(path) {
        return Err(if source.kind() == std::io::ErrorKind::AlreadyExists {
            SampleError::Exists {
                path: path.to_path_buf(),
            }
        } else {
            SampleError::Create {
                path: path.to_path_buf(),
                source,
            }
        });
    }
    let result = write_new(path, options);
    if result.is_err() {
        // Every one of these was created by this call (checked above), so a
        // half-written fixture is never left to be mistaken for a good one.
        let _ = std::fs::remove_file(path);
        for sidecar in sidecars(path) {
            let _ = std::fs::remove_file(sidecar);
        }
    }
    result
}

fn write_new(path: &Path, options: &SampleOptions) -> Result<SampleSummary, SampleError> {
    let sql = |source| SampleError::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    let conn = Connection::open(path).map_err(sql)?;
    // foreign_keys as the app sets it, so a generator bug that would break
    // the GOOD fixture fails here. synchronous=OFF: a fixture needs no
    // durability against power loss, and fsyncs would dominate run time.
    conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = OFF;")
        .map_err(sql)?;
    match options.schema {
        SchemaVersion::V1 => conn.execute_batch(&ddl::schema_v1()),
        SchemaVersion::V2 => conn.execute_batch(ddl::SCHEMA),
    }
    .map_err(sql)?;

    let n = options.conversations;
    let split = match options.journal {
        Journal::WalUncheckpointed => n - n.div_ceil(10),
        Journal::Delete | Journal::Wal => n,
    };
    let mut generator = Generator::new(options);
    // The bulk is written in rollback mode straight into the main file: the
    // resulting file is the same as after writing through WAL and
    // checkpointing, without copying every page twice.
    generator.batch(&conn, 0..split, true).map_err(sql)?;
    match options.journal {
        Journal::Delete => {}
        Journal::Wal => set_wal(&conn, path)?,
        Journal::WalUncheckpointed => {
            set_wal(&conn, path)?;
            conn.pragma_update(None, "wal_autocheckpoint", 0)
                .map_err(sql)?;
            generator.batch(&conn, split..n, false).map_err(sql)?;
            // Closing the last connection would checkpoint the WAL into the
            // main file and delete it; a live copy has not had that happen.
            conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
                .map_err(sql)?;
        }
    }
    conn.close().map_err(|(_, source)| sql(source))?;

    let size = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.len())
            .map_err(|source| SampleError::Stat {
                path: p.to_path_buf(),
                source,
            })
    };
    let bytes = size(path)?;
    let wal_bytes = match options.journal {
        Journal::WalUncheckpointed => size(&sidecars(path)[0])?,
        Journal::Delete | Journal::Wal => 0,
    };
    let tables = options
        .schema
        .tables()
        .iter()
        .zip(generator.counts())
        .map(|(name, count)| (*name, count))
        .collect();
    Ok(SampleSummary {
        tables,
        bytes,
        wal_bytes,
    })
}

fn set_wal(conn: &Connection, path: &Path) -> Result<(), SampleError> {
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(|source| SampleError::Sqlite {
            path: path.to_path_buf(),
            source,
        })?;
    if mode.eq_ignore_ascii_case("wal") {
        Ok(())
    } else {
        Err(SampleError::NotWal {
            path: path.to_path_buf(),
            mode,
        })
    }
}
