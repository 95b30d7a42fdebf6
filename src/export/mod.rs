//! `council_export`: the way back. Every row of the council tables into a
//! new council.db that the app opens and runs on unchanged: the app's own
//! schema, text for text, its journal mode, and values it reads back as it
//! wrote them (see `table`).
//!
//! One snapshot for all tables, so the file is one consistent state, also
//! while the app writes. Rows are read in their stored form by a table scan,
//! after the privilege checks a SELECT makes. Backend memory holds a batch
//! of rows and SQLite's page cache, whatever the size.
//!
//! - `council_export(path)` writes a file on the server, as `COPY … TO`
//!   does, for the same roles; it refuses to replace a file, and the file
//!   appears under its name when the transaction commits, complete.
//! - `council_export_stream()` writes it in the server's temporary space and
//!   returns its bytes in rows, for `council-loader export` on any host.

mod file;
mod table;

use std::path::{Path, PathBuf};
use std::time::Instant;

use council_app::QuotedIdentifier;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;

use crate::council::access::{self, CouncilTable};
use crate::council::catalog::TABLES;
use crate::council::{digest, record};
use crate::error::report;
use crate::postgres::backend::{self, ActiveSnapshot};
use crate::postgres::{extension, temp_space};
use crate::sqlstate::{self, SqlState};
use file::{ExportFile, FinishedFile};

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("council_export: relative path not allowed for a file the server writes")]
    RelativePath,
    #[error("council_export: \"{}\" already exists", .0.display())]
    Exists(PathBuf),
    #[error("council_export: {action} \"{}\" failed: {source}", path.display())]
    Write {
        path: PathBuf,
        action: &'static str,
        source: std::io::Error,
    },
    #[error("council_export: {action} \"{}\" failed: {reason}", path.display())]
    Sqlite {
        path: PathBuf,
        action: &'static str,
        reason: String,
    },
    #[error("council_export: {table} row {id}, column {column}: {reason}")]
    Value {
        table: &'static str,
        id: String,
        column: &'static str,
        sqlstate: SqlState,
        reason: String,
    },
    #[error("permission denied to write a server file with council_export")]
    ServerFileDenied,
    /// PostgreSQL's own error, raised while reading the tables.
    #[error("{0:?}")]
    Postgres(ErrorReport),
}

impl ExportError {
    fn sqlstate(&self) -> SqlState {
        match self {
            ExportError::RelativePath => sqlstate::INVALID_NAME,
            ExportError::Exists(_) => sqlstate::DUPLICATE_FILE,
            ExportError::Write { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound => sqlstate::UNDEFINED_FILE,
                std::io::ErrorKind::PermissionDenied => sqlstate::INSUFFICIENT_PRIVILEGE,
                std::io::ErrorKind::StorageFull => sqlstate::DISK_FULL,
                _ => sqlstate::IO_ERROR,
            },
            ExportError::Sqlite { .. } => sqlstate::IO_ERROR,
            ExportError::Value { sqlstate, .. } => *sqlstate,
            ExportError::ServerFileDenied => sqlstate::INSUFFICIENT_PRIVILEGE,
            ExportError::Postgres(_) => sqlstate::INTERNAL_ERROR,
        }
    }

    fn detail(&self) -> Option<String> {
        match self {
            ExportError::Value {
                table, id, column, ..
            } => Some(format!("table {table}, row id {id}, column {column}")),
            ExportError::ServerFileDenied => Some(
                "Only roles with privileges of the \"pg_write_server_files\" role may write \
                 server files."
                    .into(),
            ),
            _ => None,
        }
    }

    fn hint(&self) -> Option<String> {
        Some(
            match self {
                ExportError::RelativePath => "give an absolute path, as for COPY … TO",
                ExportError::Exists(_) => {
                    "an export never replaces a file: name a new one, or move the old one away"
                }
                ExportError::Write { .. } | ExportError::Sqlite { .. } => {
                    "the server process writes the file: it needs write access to the \
                     directory, and room for the file; or export to this host with \
                     council-loader export"
                }
                ExportError::Value { .. } => {
                    "the app cannot hold this value; change it in PostgreSQL, then export again"
                }
                ExportError::ServerFileDenied => {
                    "export to the client's host with council-loader export, which needs \
                     only SELECT on the council tables, or ask for pg_write_server_files"
                }
                ExportError::Postgres(_) => return None,
            }
            .into(),
        )
    }
}

impl From<ExportError> for ErrorReport {
    fn from(err: ExportError) -> ErrorReport {
        if let ExportError::Postgres(report) = err {
            return report;
        }
        report(err.sqlstate(), err.to_string(), err.detail(), err.hint())
    }
}

impl From<ErrorReport> for ExportError {
    fn from(report: ErrorReport) -> ExportError {
        ExportError::Postgres(report)
    }
}

/// What the caller must be allowed: SELECT on every council table, with no
/// row-level security in force (the scan would not apply it).
fn check_access(tables: &[CouncilTable]) -> Result<(), ErrorReport> {
    access::check_tables(
        tables,
        pg_sys::ACL_SELECT,
        "SELECT",
        "the export reads every row",
    )?;
    access::check_no_row_level_security(tables, "council_export")
}

/// Writes every council table into a new file in `dir` under one snapshot;
/// returns the file, complete, and each table's rows.
fn write_file(
    tables: &[CouncilTable],
    dir: &Path,
) -> Result<(FinishedFile, Vec<(&'static str, u64)>), ErrorReport> {
    let snapshot = ActiveSnapshot::take();
    let file = ExportFile::create_in(dir)?;
    let mut legacy = table::LegacyIds::new();
    let mut counts = Vec::with_capacity(TABLES.len());
    for (spec, council) in TABLES.iter().zip(tables) {
        let rows = table::export(spec, council.relid, &file, &mut legacy)?;
        counts.push((spec.name, rows));
    }
    let finished = file.finish()?;
    snapshot.end();
    Ok((finished, counts))
}

fn counts_json(counts: &[(&'static str, u64)]) -> serde_json::Value {
    serde_json::Value::Object(
        counts
            .iter()
            .map(|(table, rows)| ((*table).to_owned(), serde_json::json!({ "exported": rows })))
            .collect(),
    )
}

/// Records the export in `council_imports`, unless the transaction is read
/// only (a standby), where nothing can be written.
fn record_export(
    schema: &QuotedIdentifier,
    source: &str,
    file: &FinishedFile,
    counts: &[(&'static str, u64)],
    started: Instant,
) -> Result<(), ErrorReport> {
    if backend::transaction_read_only() {
        return Ok(());
    }
    record::record(
        schema,
        source,
        &digest::of_file(file.path())?,
        "export",
        counts_json(counts),
        started.elapsed(),
    )
}

#[pg_extern(name = "council_export", volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn council_export_path(
    path: &str,
) -> Result<TableIterator<'static, (name!(table_name, String), name!(rows, i64))>, ErrorReport> {
    let started = Instant::now();
    check_server_file_write()?;
    let target = Path::new(path);
    if target.is_relative() {
        return Err(ExportError::RelativePath.into());
    }
    // Said early; the rename at the end checks again, without a race.
    if target.symlink_metadata().is_ok() {
        return Err(ExportError::Exists(target.to_owned()).into());
    }
    let dir = target.parent().unwrap_or(Path::new("/"));
    let schema = extension::schema()?;
    let tables = access::council_relids(&schema)?;
    check_access(&tables)?;
    let (finished, counts) = write_file(&tables, dir)?;
    record_export(&schema, path, &finished, &counts, started)?;
    persist_at_commit(finished, target.to_owned());
    Ok(TableIterator::new(counts.into_iter().map(
        |(table, rows)| (table.to_owned(), i64::try_from(rows).unwrap_or(i64::MAX)),
    )))
}

/// Gives the finished file its name when the transaction commits, and
/// removes it if the transaction aborts: the file appears if and only if
/// the export committed, with its record in `council_imports`, whatever
/// ends the transaction (an error after the export, a cancel while its
/// result goes out, a ROLLBACK).
fn persist_at_commit(finished: FinishedFile, target: PathBuf) {
    use pgrx::{register_xact_callback, PgXactCallbackEvent};
    use std::sync::{Arc, Mutex};
    let file = Arc::new(Mutex::new(Some(finished)));
    let at_abort = Arc::clone(&file);
    register_xact_callback(PgXactCallbackEvent::PreCommit, move || {
        let finished = file.lock().ok().and_then(|mut file| file.take());
        if let Some(finished) = finished {
            // An ERROR here still aborts the transaction, cleanly.
            if let Err(err) = finished.persist(&target) {
                ErrorReport::from(err).report(PgLogLevel::ERROR);
            }
        }
    });
    register_xact_callback(PgXactCallbackEvent::Abort, move || {
        // Dropping the temporary file removes it.
        drop(at_abort.lock().ok().and_then(|mut file| file.take()));
    });
}

/// Writing a server file is for superusers and members of
/// pg_write_server_files, as for `COPY … TO 'file'`.
fn check_server_file_write() -> Result<(), ExportError> {
    if backend::may_use_server_files(backend::ServerFiles::Write) {
        Ok(())
    } else {
        Err(ExportError::ServerFileDenied)
    }
}

/// Bytes per row of the stream: large enough that rows cost nothing, small
/// enough that the backend never holds much.
const STREAM_CHUNK: usize = 1 << 20;

/// The export, streamed: the file is written in the server's temporary
/// space, then returned in rows of up to 1 MB. Call it in the select list,
/// `SELECT council_export_stream()`, where each row goes out as it is read;
/// in FROM, PostgreSQL would first gather every row in a tuplestore.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn council_export_stream() -> Result<SetOfIterator<'static, Vec<u8>>, ErrorReport> {
    let started = Instant::now();
    let schema = extension::schema()?;
    let tables = access::council_relids(&schema)?;
    check_access(&tables)?;
    let dir = temp_space::private_dir().map_err(|source| ExportError::Write {
        path: PathBuf::from("base/pgsql_tmp"),
        action: "creating a private directory in",
        source,
    })?;
    let (finished, counts) = write_file(&tables, dir.path())?;
    record_export(&schema, record::DOWNLOAD, &finished, &counts, started)?;
    let reader = std::fs::File::open(finished.path()).map_err(|source| ExportError::Write {
        path: finished.path().to_owned(),
        action: "reading",
        source,
    })?;
    Ok(SetOfIterator::new(Chunks {
        reader,
        _file: finished,
        _dir: dir,
    }))
}

/// The finished file's bytes, a chunk at a time; the file and its directory
/// go when this is dropped (at the end of the stream, or when the query
/// ends otherwise).
struct Chunks {
    reader: std::fs::File,
    _file: FinishedFile,
    _dir: tempfile::TempDir,
}

impl Iterator for Chunks {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        use std::io::Read as _;
        let mut chunk = Vec::with_capacity(STREAM_CHUNK);
        match (&mut self.reader)
            .take(STREAM_CHUNK as u64)
            .read_to_end(&mut chunk)
        {
            Ok(0) => None,
            Ok(_) => Some(chunk),
            Err(source) => {
                let err = ExportError::Write {
                    path: self._file.path().to_owned(),
                    action: "reading",
                    source,
                };
                ErrorReport::from(err).report(PgLogLevel::ERROR);
                None
            }
        }
    }
}

extension_sql!(
    "REVOKE ALL ON FUNCTION council_export(text) FROM PUBLIC;",
    name = "export_privileges",
    requires = [council_export_path]
);
