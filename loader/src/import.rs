//! `council-loader import` and `verify`: check the file here first, then have
//! the server read it where it lies, or upload it when the server cannot.

use std::fs;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::UNIX_EPOCH;

use indicatif::{ProgressBar, ProgressStyle};
use postgres::Client;
use rusqlite::{Connection, OpenFlags};

/// The council tables, in the order the import reports them.
pub const TABLES: [&str; 8] = [
    "conversations",
    "messages",
    "stage1_responses",
    "stage2_rankings",
    "stage3_synthesis",
    "deliberation_metadata",
    "api_keys",
    "api_key_audit_log",
];

/// One bytea value carries at most 1 GB; the upload leaves room for the
/// varlena header.
const MAX_UPLOAD: u64 = (1 << 30) - 1024;
const UPLOAD_CHUNK: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{path}: no such file")]
    Missing { path: PathBuf },
    #[error("{path}: is a directory")]
    Directory { path: PathBuf },
    #[error("{path}: cannot read it: {source}")]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not an SQLite database")]
    NotSqlite { path: PathBuf },
    #[error("{path}: an SQLite database without the council tables (found: {found})")]
    NotCouncil { path: PathBuf, found: String },
    #[error("{path}: {message}")]
    Sqlite { path: PathBuf, message: String },
    #[error("{path}: {size} bytes is more than one upload can carry (1 GB); copy the file to the database server and import it there")]
    TooLarge { path: PathBuf, size: u64 },
}

/// A council.db checked here before anything is sent.
#[derive(Debug)]
pub struct LocalFile {
    pub path: PathBuf,
    pub size: u64,
    pub modified: Option<i64>,
    /// rows per council table present in the file
    pub rows: Vec<(String, u64)>,
    pub has_wal: bool,
}

impl LocalFile {
    pub fn total_rows(&self) -> u64 {
        self.rows.iter().map(|(_, n)| n).sum()
    }
}

/// Exists, is readable, is SQLite, has the council tables.
pub fn check(path: &Path) -> Result<LocalFile, FileError> {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let metadata = fs::metadata(&path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => FileError::Missing { path: path.clone() },
        _ => FileError::Unreadable {
            path: path.clone(),
            source,
        },
    })?;
    if metadata.is_dir() {
        return Err(FileError::Directory { path });
    }
    let mut header = [0u8; 16];
    let mut file = fs::File::open(&path).map_err(|source| FileError::Unreadable {
        path: path.clone(),
        source,
    })?;
    if file.read_exact(&mut header).is_err() || &header != b"SQLite format 3\0" {
        return Err(FileError::NotSqlite { path });
    }
    let sqlite = |err: rusqlite::Error| FileError::Sqlite {
        path: path.clone(),
        message: err.to_string(),
    };
    let conn = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite)?;
    let names: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table'")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(sqlite)?;
    if !["conversations", "messages"]
        .iter()
        .all(|t| names.iter().any(|n| n.eq_ignore_ascii_case(t)))
    {
        return Err(FileError::NotCouncil {
            found: if names.is_empty() {
                "no tables".into()
            } else {
                names.join(", ")
            },
            path,
        });
    }
    let mut rows = Vec::new();
    for table in TABLES {
        if names.iter().any(|n| n.eq_ignore_ascii_case(table)) {
            let n: i64 = conn
                .query_row(&format!("SELECT count(*) FROM \"{table}\""), [], |r| {
                    r.get(0)
                })
                .map_err(sqlite)?;
            rows.push((table.to_owned(), u64::try_from(n).unwrap_or(0)));
        }
    }
    let mut wal = path.clone().into_os_string();
    wal.push("-wal");
    Ok(LocalFile {
        size: metadata.len(),
        modified: metadata
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .and_then(|d| i64::try_from(d.as_secs()).ok()),
        has_wal: fs::metadata(PathBuf::from(wal))
            .map(|m| m.len() > 0)
            .unwrap_or(false),
        rows,
        path,
    })
}

/// Whether the server sees this very file at the same path: same size and
/// modification time through pg_stat_file (which needs the same privileges
/// the path form of the import does).
pub fn server_reads_same_file(client: &mut Client, file: &LocalFile) -> bool {
    let path = file.path.to_string_lossy().into_owned();
    let row = client.query_opt(
        "SELECT size, extract(epoch FROM modification)::bigint FROM pg_stat_file($1, true)",
        &[&path],
    );
    match row {
        Ok(Some(row)) => {
            let size: Option<i64> = row.get(0);
            let modified: Option<i64> = row.get(1);
            size == i64::try_from(file.size).ok() && modified == file.modified
        }
        _ => false,
    }
}

/// How the server gets the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transfer {
    ServerPath,
    Upload,
}

/// A copy of the file with the rows of its -wal file folded in (SQLite's
/// backup API), for an upload: the server gets one file, not three.
struct Snapshot {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn snapshot(file: &LocalFile) -> Result<Snapshot, FileError> {
    let sqlite = |err: rusqlite::Error| FileError::Sqlite {
        path: file.path.clone(),
        message: err.to_string(),
    };
    let dir = tempfile::tempdir().map_err(|source| FileError::Unreadable {
        path: file.path.clone(),
        source,
    })?;
    let path = dir.path().join("council.db");
    let source = Connection::open_with_flags(&file.path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(sqlite)?;
    source
        .backup(rusqlite::MAIN_DB, &path, None)
        .map_err(sqlite)?;
    Ok(Snapshot { _dir: dir, path })
}

/// The binary COPY stream of (n, chunk) rows a file is uploaded as.
fn upload(client: &mut postgres::Transaction<'_>, path: &Path) -> Result<(), UploadError> {
    client.batch_execute(
        "CREATE TEMPORARY TABLE council_loader_upload (n integer, chunk bytea) ON COMMIT DROP",
    )?;
    let mut writer =
        client.copy_in("COPY council_loader_upload (n, chunk) FROM STDIN (FORMAT binary)")?;
    writer.write_all(b"PGCOPY\n\xff\r\n\0")?;
    writer.write_all(&0i32.to_be_bytes())?;
    writer.write_all(&0i32.to_be_bytes())?;
    let mut file = fs::File::open(path)?;
    let mut chunk = vec![0u8; UPLOAD_CHUNK];
    let mut n = 0i32;
    loop {
        let mut filled = 0;
        while filled < chunk.len() {
            let read = file.read(&mut chunk[filled..])?;
            if read == 0 {
                break;
            }
            filled += read;
        }
        if filled == 0 {
            break;
        }
        writer.write_all(&2i16.to_be_bytes())?;
        writer.write_all(&4i32.to_be_bytes())?;
        writer.write_all(&n.to_be_bytes())?;
        writer.write_all(&i32::try_from(filled).unwrap_or(i32::MAX).to_be_bytes())?;
        writer.write_all(&chunk[..filled])?;
        n += 1;
    }
    writer.write_all(&(-1i16).to_be_bytes())?;
    writer.finish()?;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error(transparent)]
    Postgres(#[from] postgres::Error),
    #[error("reading the file: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    File(#[from] FileError),
}

pub type Row = (String, i64, i64, i64, i64);

/// Runs `function` (council_import or council_verify) on the file, by path
/// or upload, in one transaction; `arguments` follow the file.
pub fn run(
    client: &mut Client,
    file: &LocalFile,
    transfer: Transfer,
    function: &str,
    columns: &str,
    extra: &[&(dyn postgres::types::ToSql + Sync)],
) -> Result<Vec<Row>, UploadError> {
    let placeholders: String = (0..extra.len()).map(|i| format!(", ${}", i + 2)).collect();
    let mut transaction = client.transaction()?;
    let rows = match transfer {
        Transfer::ServerPath => {
            let path = file.path.to_string_lossy().into_owned();
            let mut params: Vec<&(dyn postgres::types::ToSql + Sync)> = vec![&path];
            params.extend_from_slice(extra);
            transaction.query(
                &format!("SELECT {columns} FROM {function}($1{placeholders})"),
                &params,
            )?
        }
        Transfer::Upload => {
            let snapshot = if file.has_wal {
                Some(snapshot(file)?)
            } else {
                None
            };
            let path = snapshot
                .as_ref()
                .map_or(file.path.as_path(), |s| s.path.as_path());
            let size = fs::metadata(path)?.len();
            if size > MAX_UPLOAD {
                return Err(FileError::TooLarge {
                    path: file.path.clone(),
                    size,
                }
                .into());
            }
            upload(&mut transaction, path)?;
            let mut params: Vec<&(dyn postgres::types::ToSql + Sync)> = Vec::new();
            params.extend_from_slice(extra);
            let placeholders: String = (0..extra.len()).map(|i| format!(", ${}", i + 1)).collect();
            transaction.query(
                &format!(
                    "SELECT {columns} FROM {function}(
                         (SELECT string_agg(chunk, ''::bytea ORDER BY n) FROM council_loader_upload){placeholders})"
                ),
                &params,
            )?
        }
    };
    transaction.commit()?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect())
}

/// Turns the import's NOTICEs into a progress bar on a terminal, or passes
/// them on as lines.
#[derive(Clone)]
pub struct Progress {
    bar: Option<ProgressBar>,
    state: Arc<Mutex<Tally>>,
}

/// Rows of the tables already finished, and each table's size.
struct Tally {
    finished: u64,
    tables: Vec<(String, u64)>,
}

impl Progress {
    pub fn new(file: &LocalFile, show_bar: bool) -> Progress {
        let bar = show_bar.then(|| {
            let bar = ProgressBar::new(file.total_rows());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {msg:22} [{bar:40}] {pos}/{len} rows ({per_sec}, {eta})",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar
        });
        Progress {
            bar,
            state: Arc::new(Mutex::new(Tally {
                finished: 0,
                tables: file.rows.clone(),
            })),
        }
    }

    /// Handles one NOTICE: `llm_council import: TABLE DONE/TOTAL` or
    /// `llm_council import: TABLE done: …`.
    pub fn notice(&self, message: &str) {
        let Some(rest) = message.strip_prefix("llm_council import: ") else {
            self.print(message);
            return;
        };
        let Some(bar) = &self.bar else {
            eprintln!("{message}");
            return;
        };
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let (table, what) = rest.split_once(' ').unwrap_or((rest, ""));
        let table_rows = state
            .tables
            .iter()
            .find(|(t, _)| t == table)
            .map_or(0, |(_, n)| *n);
        if what.starts_with("done") {
            state.finished += table_rows;
            bar.set_position(state.finished);
        } else if let Some((done, _)) = what.split_once('/') {
            bar.set_message(table.to_owned());
            bar.set_position(state.finished + done.parse::<u64>().unwrap_or(0));
        }
    }

    fn print(&self, message: &str) {
        match &self.bar {
            Some(bar) => bar.println(message),
            None => eprintln!("{message}"),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
