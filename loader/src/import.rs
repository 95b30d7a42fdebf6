//! `council-loader import` and `verify`: check the file here first, then have
//! the server read it where it lies, or upload it when the server cannot.

use std::fs;
use std::io::Read as _;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::UNIX_EPOCH;

use council_app::catalog::EXTENSION_QUERY;
use council_app::QuotedIdentifier;
use indicatif::{ProgressBar, ProgressStyle};
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::Type;
use postgres::Client;
use rusqlite::OpenFlags;

/// The size of one row of the upload's COPY. The server allocates each row
/// afresh; below glibc's mmap threshold (128 kB) that reuses its heap, above
/// it every row is a new mapping of zeroed pages. Measured on a 1 GB file:
/// 0.6 s to send it in 64 kB rows, 1.8 to 2.8 s in 256 kB or 1 MB rows.
const UPLOAD_CHUNK: usize = 64 << 10;

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
    #[error("{path}: {message}")]
    Open { path: PathBuf, message: String },
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
    // Read without leaving a trace beside the user's file: SQLite would
    // create -wal and -shm files next to a WAL-mode database.
    let read = council_file::open(&path, OpenFlags::SQLITE_OPEN_NO_MUTEX, &tempfile::tempdir)
        .map_err(|err| FileError::Open {
            path: path.clone(),
            message: err.to_string(),
        })?;
    let conn = &read.conn;
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
    for table in council_app::tables::COUNCIL {
        if names.iter().any(|n| n.eq_ignore_ascii_case(table)) {
            let n: i64 = conn
                .query_row(&format!("SELECT count(*) FROM \"{table}\""), [], |r| {
                    r.get(0)
                })
                .map_err(sqlite)?;
            rows.push((table.to_owned(), u64::try_from(n).unwrap_or(0)));
        }
    }
    let wal = council_file::wal_path(&path);
    Ok(LocalFile {
        size: metadata.len(),
        modified: metadata
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .and_then(|d| i64::try_from(d.as_secs()).ok()),
        has_wal: fs::metadata(wal).map(|m| m.len() > 0).unwrap_or(false),
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

/// Sends the file to this transaction's upload on the server, as rows of
/// `COPY council_upload_stream FROM STDIN (FORMAT binary)`: the client sends
/// while the server writes, with no round trip per chunk. Reports the bytes
/// sent to `sent`.
fn upload(
    transaction: &mut postgres::Transaction<'_>,
    schema: &QuotedIdentifier,
    path: &Path,
    sent: &dyn Fn(u64),
) -> Result<(), UploadError> {
    let mut file = fs::File::open(path)?;
    let copy = transaction.copy_in(&format!(
        "COPY {schema}.council_upload_stream FROM STDIN (FORMAT binary)"
    ))?;
    let mut rows = BinaryCopyInWriter::new(copy, &[Type::BYTEA]);
    let mut chunk = vec![0u8; UPLOAD_CHUNK];
    let mut total = 0u64;
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
            rows.finish()?;
            return Ok(());
        }
        rows.write(&[&&chunk[..filled]])?;
        total += filled as u64;
        sent(total);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error(transparent)]
    Postgres(#[from] postgres::Error),
    #[error("reading the file: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    File(#[from] FileError),
    /// The connection broke while COMMIT was under way: the import may or
    /// may not have committed.
    #[error("the connection was lost during COMMIT ({0}): the outcome is unknown; run council-loader verify on the file to see what the database holds")]
    OutcomeUnknown(postgres::Error),
}

/// A report the extension returns per table: council_import's or
/// council_verify's.
pub trait Report {
    /// The extension's function that returns it.
    const FUNCTION: &'static str;
    /// Its result columns, in order: the table, its source rows, then the
    /// counts of each outcome; printed as the report's headers.
    const COLUMNS: &'static [&'static str];
}

/// council_import's report: per table, the rows imported, skipped (already
/// in the database, identical) and rejected (kept in council_import_rejects).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Import {}

impl Report for Import {
    const FUNCTION: &'static str = "council_import";
    const COLUMNS: &'static [&'static str] = &[
        "table_name",
        "source_rows",
        "imported",
        "skipped",
        "rejected",
        "updated",
        "deleted",
    ];
}

/// council_verify's report: per table, the rows identical in the database,
/// missing from it, and differing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verify {}

impl Report for Verify {
    const FUNCTION: &'static str = "council_verify";
    const COLUMNS: &'static [&'static str] = &[
        "table_name",
        "source_rows",
        "identical",
        "missing",
        "differing",
    ];
}

/// One table's line of report `R`: the table, its rows in the file, and
/// the counts of how they came out, in the order of `R::COLUMNS`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableCounts<R> {
    pub table: String,
    pub source_rows: i64,
    pub outcomes: Vec<i64>,
    report: PhantomData<R>,
}

impl<R: Report> TableCounts<R> {
    pub fn new(table: String, source_rows: i64, outcomes: Vec<i64>) -> Self {
        TableCounts {
            table,
            source_rows,
            outcomes,
            report: PhantomData,
        }
    }
}

impl TableCounts<Import> {
    pub fn imported(&self) -> i64 {
        self.outcomes[0]
    }

    pub fn skipped(&self) -> i64 {
        self.outcomes[1]
    }

    pub fn rejected(&self) -> i64 {
        self.outcomes[2]
    }

    /// sync: rows written over with the file's version
    pub fn updated(&self) -> i64 {
        self.outcomes[3]
    }

    /// sync: rows the file does not have
    pub fn deleted(&self) -> i64 {
        self.outcomes[4]
    }
}

impl TableCounts<Verify> {
    pub fn identical(&self) -> i64 {
        self.outcomes[0]
    }

    pub fn missing(&self) -> i64 {
        self.outcomes[1]
    }

    pub fn differing(&self) -> i64 {
        self.outcomes[2]
    }
}

type Parameter<'a> = &'a (dyn postgres::types::ToSql + Sync);

/// Runs the report's function (in the extension's `schema`) on the file, by
/// path or upload, in one transaction; `extra` arguments follow the file.
pub fn run<R: Report>(
    client: &mut Client,
    file: &LocalFile,
    transfer: Transfer,
    schema: &QuotedIdentifier,
    extra: &[Parameter<'_>],
    sent: &dyn Fn(u64),
) -> Result<Vec<TableCounts<R>>, UploadError> {
    let columns = R::COLUMNS.join(", ");
    let function = R::FUNCTION;
    let mut transaction = client.transaction()?;
    let rows = match transfer {
        Transfer::ServerPath => {
            let path = file.path.to_string_lossy().into_owned();
            let mut params: Vec<Parameter<'_>> = vec![&path];
            params.extend_from_slice(extra);
            let placeholders: String = (0..extra.len()).map(|i| format!(", ${}", i + 2)).collect();
            transaction.query(
                &format!("SELECT {columns} FROM {schema}.{function}($1{placeholders})"),
                &params,
            )?
        }
        Transfer::Upload => {
            // Rows only in a -wal file are folded into a private copy first:
            // the server gets one self-contained file.
            let scratch = tempfile::tempdir()?;
            let path = council_file::self_contained(&file.path, scratch.path()).map_err(|err| {
                FileError::Open {
                    path: file.path.clone(),
                    message: err.to_string(),
                }
            })?;
            upload(&mut transaction, schema, &path, sent)?;
            let placeholders: String = (1..=extra.len())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ");
            transaction.query(
                &format!("SELECT {columns} FROM {schema}.{function}_upload({placeholders})"),
                extra,
            )?
        }
    };
    commit(transaction)?;
    Ok(rows
        .iter()
        .map(|r| {
            let outcomes = (2..R::COLUMNS.len()).map(|i| r.get(i)).collect();
            TableCounts::new(r.get(0), r.get(1), outcomes)
        })
        .collect())
}

/// An ERROR at COMMIT (a deferred constraint) means it rolled back; a
/// broken connection, or a FATAL, leaves open whether it committed.
fn commit(transaction: postgres::Transaction<'_>) -> Result<(), UploadError> {
    transaction.commit().map_err(|err| match err.as_db_error() {
        Some(db) if db.parsed_severity() == Some(postgres::error::Severity::Error) => {
            UploadError::Postgres(err)
        }
        _ => UploadError::OutcomeUnknown(err),
    })
}

/// Turns the import's NOTICEs into a progress bar on a terminal, or passes
/// them on as lines.
#[derive(Clone)]
pub struct Progress {
    bar: Option<ProgressBar>,
    state: Arc<Mutex<Tally>>,
}

/// Whole rows per second since the bar started: the rows shown over the
/// time shown, not a smoothed estimate with decimals.
fn rows_per_second(state: &indicatif::ProgressState, out: &mut dyn std::fmt::Write) {
    let seconds = state.elapsed().as_secs_f64();
    let rate = if seconds > 0.0 {
        (state.pos() as f64 / seconds).round() as u64
    } else {
        0
    };
    let _ = write!(out, "{rate} rows/s");
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
                    "{spinner} {msg:22} [{bar:40}] {pos}/{len} rows ({rate}, {eta})",
                )
                .map(|style| style.with_key("rate", rows_per_second))
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

    /// Shows how much of an upload has been sent.
    pub fn uploaded(&self, sent: u64, total: u64) {
        match &self.bar {
            Some(bar) => bar.set_message(format!("upload {}%", sent * 100 / total.max(1))),
            None if sent == total => eprintln!("council-loader: uploaded {sent} bytes"),
            None => {}
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

/// Why the database cannot take an import or verify.
#[derive(Debug, thiserror::Error)]
pub enum ExtensionError {
    #[error(
        "the llm_council extension is not installed in database \"{database}\": run \
         council-loader install (with the same connection settings), or CREATE EXTENSION \
         llm_council as a role that may"
    )]
    NotInstalled { database: String },
    /// 0.1.0 has no council_upload_stream.
    #[error(
        "llm_council 0.1.0 in database \"{database}\" cannot receive a streamed upload: run \
         council-loader install, or ALTER EXTENSION llm_council UPDATE"
    )]
    NoUpload { database: String },
    #[error(transparent)]
    Postgres(#[from] postgres::Error),
}

/// The extension's schema, when the database can take an import or verify
/// by this `transfer`.
pub fn find_extension(
    client: &mut Client,
    transfer: Transfer,
) -> Result<QuotedIdentifier, ExtensionError> {
    let row = client.query_opt(EXTENSION_QUERY, &[])?;
    let database = |client: &mut Client| -> Result<String, postgres::Error> {
        Ok(client
            .query_one("SELECT pg_catalog.current_database()::pg_catalog.text", &[])?
            .get(0))
    };
    let Some(row) = row else {
        return Err(ExtensionError::NotInstalled {
            database: database(client)?,
        });
    };
    let (schema, version): (String, String) = (row.get(0), row.get(1));
    if transfer == Transfer::Upload && version == "0.1.0" {
        return Err(ExtensionError::NoUpload {
            database: database(client)?,
        });
    }
    Ok(QuotedIdentifier::new(&schema))
}
