//! `council_import`: every row of a council.db into the council tables, in
//! the caller's transaction, through COPY.
//!
//! Per table, in dependency order: read the SQLite rows in one snapshot, map
//! each value, decide for each row whether it is imported, skipped (already
//! present, identical) or rejected (with its reason), and stream the
//! imported ones into COPY. Strict mode turns the first rejection into an
//! error, which rolls the whole import back.
//!
//! Rows whose ids the target already has are compared with it in batches
//! (`compare`): skipped when identical; a conflict, or in a sync an update,
//! when not. A sync then deletes the target's rows the file lacks, children
//! first, and its guard refuses to overwrite or delete what was not written
//! by an import.

pub(crate) mod binary_copy;
mod rejects;
mod sequences;
mod table;
pub mod trigger_skip;
pub mod upload;

use std::collections::HashMap;
use std::path::Path;

use council_app::QuotedIdentifier;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;

use crate::council;
use crate::council::decision::KeySet;
use crate::council::record::TableReport;
use crate::council::source::SourceError;
use crate::council::{access, catalog, compare, digest, record, row, search_documents, source};
use crate::error::{report, Error};
use crate::postgres::backend::{self, ActiveSnapshot};
use crate::postgres::{extension, notice, subtransaction};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// every row imported or skipped as identical, or nothing
    Strict,
    /// rows that cannot be imported go to council_import_rejects
    Quarantine,
    /// the tables become equal to the file: every row of it or nothing, with
    /// changed rows updated and rows the file lacks deleted
    Sync,
}

impl Mode {
    pub fn parse(text: &str) -> Result<Mode, ErrorReport> {
        match text {
            "strict" => Ok(Mode::Strict),
            "quarantine" => Ok(Mode::Quarantine),
            "sync" => Ok(Mode::Sync),
            other => {
                Err(Error::UnknownMode(crate::mapping::text::cut(other, row::SHOWN_CHARS)).into())
            }
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Strict => "strict",
            Mode::Quarantine => "quarantine",
            Mode::Sync => "sync",
        }
    }
}

impl From<SourceError> for ErrorReport {
    fn from(err: SourceError) -> ErrorReport {
        report(
            err.sqlstate(),
            format!("council_import: {err}"),
            None,
            err.hint(),
        )
    }
}

/// The state an import carries from table to table.
pub struct Run {
    schema: QuotedIdentifier,
    /// the council tables' oids, resolved once
    relids: HashMap<&'static str, pg_sys::Oid>,
    mode: Mode,
    /// PostgreSQL's per-row foreign-key triggers are redundant (see
    /// `trigger_skip`) and skipped.
    skip_fk_triggers: bool,
    /// keys present after this import, for the tables children refer to
    present: HashMap<&'static str, KeySet>,
    /// keys rejected by this import, to say why a child is rejected
    rejected: HashMap<&'static str, KeySet>,
    /// sync: who wrote the target's rows, for the guard
    provenance: Option<compare::Provenance>,
    /// sync: each table's rows to delete, in dependency order
    absent: Vec<(&'static catalog::Table, Vec<row::Key>)>,
}

impl Run {
    /// A run over the locked `tables`: whether their foreign keys are
    /// checked here, and, for a sync, who wrote their rows.
    fn new(
        schema: QuotedIdentifier,
        tables: &[access::CouncilTable],
        mode: Mode,
    ) -> Result<Run, ErrorReport> {
        let skip_fk_triggers = trigger_skip::foreign_keys_checked_here(tables)?;
        notice::debug1(format!(
            "llm_council import: foreign keys checked by {}",
            if skip_fk_triggers {
                "the import (PostgreSQL's per-row triggers skipped)"
            } else {
                "PostgreSQL's per-row triggers"
            }
        ));
        let provenance = match mode {
            Mode::Sync => Some(record::provenance(&schema)?),
            _ => None,
        };
        Ok(Run {
            schema,
            relids: tables.iter().map(|t| (t.name, t.relid)).collect(),
            mode,
            skip_fk_triggers,
            present: HashMap::new(),
            rejected: HashMap::new(),
            provenance,
            absent: Vec::new(),
        })
    }
}

/// Strict mode refuses a file with columns the council schema lacks: their
/// values would be lost.
fn refuse_extra_columns(layout: &[source::TableLayout]) -> Result<(), ErrorReport> {
    let Some(extra) = layout.iter().find(|l| !l.extra_columns.is_empty()) else {
        return Ok(());
    };
    Err(Error::ExtraColumns {
        table: extra.table.name,
        columns: extra.extra_columns.clone(),
    }
    .into())
}

/// The import itself, shared by the path and the upload forms. `source`
/// names the file in `council_imports`.
pub fn run_import(
    path: &Path,
    source_name: &str,
    mode: Mode,
    dry_run: bool,
) -> Result<Vec<TableReport>, ErrorReport> {
    let started = std::time::Instant::now();
    backend::check_utf8_database()?;
    // Privileges first: a role that may not finish the import gets no lock,
    // and has no file copied for it.
    let schema = extension::schema()?;
    let tables = access::council_relids(&schema)?;
    access::check_import(&schema, &tables, mode == Mode::Sync)?;
    let mut source = source::open_on_server(path)?;
    let layout = source.layout()?;
    if mode != Mode::Quarantine {
        refuse_extra_columns(&layout)?;
    }
    source.begin_snapshot()?;

    // Concurrent writers could invalidate what the import checks (parents,
    // existing ids); readers go on undisturbed. Parents first, like every
    // import, so two imports never wait on each other in a cycle.
    for table in &tables {
        backend::lock_against_writers(table.relid);
    }
    // Read what the tables hold as of now, after the locks: writers that
    // committed while we waited for them are seen.
    let snapshot = ActiveSnapshot::take();
    let mut run = Run::new(schema, &tables, mode)?;
    // The searched tables this import fills from empty get their search
    // documents in bulk, after their rows (see `search`); with search off,
    // none get any.
    let indexed_in_bulk = if search_documents::enabled() {
        search_documents::empty_tables(&tables)?
    } else {
        Vec::new()
    };
    let mut import_all = |run: &mut Run| -> Result<Vec<TableReport>, ErrorReport> {
        let deferred = search_documents::defer(indexed_in_bulk.clone());
        let mut reports = layout
            .iter()
            .map(|table_layout| table::import(run, &mut source, table_layout))
            .collect::<Result<Vec<_>, _>>()?;
        source.check_unchanged()?;
        drop(deferred);
        // A dry run's rows are rolled back: they need no documents.
        if !dry_run {
            search_documents::fill(&run.schema, &indexed_in_bulk)?;
        }
        table::delete_absent(run, &mut reports)?;
        Ok(reports)
    };
    let reports = if dry_run {
        subtransaction::rolled_back(|| import_all(&mut run))?
    } else {
        let digest = digest::Hashing::start(path);
        let reports = import_all(&mut run)?;
        sequences::advance(&run.schema)?;
        record::record(
            &run.schema,
            source_name,
            &digest.finish()?,
            mode.as_str(),
            record::import_rows(&reports),
            started.elapsed(),
        )?;
        reports
    };
    snapshot.end();
    Ok(reports)
}

type ReportRow = (
    name!(table_name, String),
    name!(source_rows, i64),
    name!(imported, i64),
    name!(skipped, i64),
    name!(rejected, i64),
    name!(updated, i64),
    name!(deleted, i64),
);

fn rows(reports: Vec<TableReport>) -> TableIterator<'static, ReportRow> {
    TableIterator::new(reports.into_iter().map(|r| {
        (
            r.table.to_owned(),
            r.source_rows,
            r.imported,
            r.skipped,
            r.rejected,
            r.updated,
            r.deleted,
        )
    }))
}

/// SQL's `council_import(text, …)`: a file on the server, by path.
#[pg_extern(name = "council_import", volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn council_import_path(
    path: &str,
    mode: default!(&str, "'strict'"),
    dry_run: default!(bool, false),
) -> Result<
    TableIterator<
        'static,
        (
            name!(table_name, String),
            name!(source_rows, i64),
            name!(imported, i64),
            name!(skipped, i64),
            name!(rejected, i64),
            name!(updated, i64),
            name!(deleted, i64),
        ),
    >,
    ErrorReport,
> {
    access::check_server_file_access("council_import")?;
    let mode = Mode::parse(mode)?;
    // A relative path names a file in the data directory (the backend's
    // working directory), as for COPY.
    Ok(rows(run_import(Path::new(path), path, mode, dry_run)?))
}

/// SQL's `council_import(bytea, …)`: a file sent whole as the argument.
///
/// The Rust names of this function and the next are not their SQL names:
/// pgrx names the C symbol after the Rust function, and the released 0.1.0
/// and 0.2.0 scripts bind SQL's functions to these symbols. Renaming would
/// break every database created by those scripts until it is updated.
#[pg_extern(name = "council_import", volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn council_import_upload(
    data: &[u8],
    mode: default!(&str, "'strict'"),
    dry_run: default!(bool, false),
) -> Result<
    TableIterator<
        'static,
        (
            name!(table_name, String),
            name!(source_rows, i64),
            name!(imported, i64),
            name!(skipped, i64),
            name!(rejected, i64),
            name!(updated, i64),
            name!(deleted, i64),
        ),
    >,
    ErrorReport,
> {
    let mode = Mode::parse(mode)?;
    let file = council::upload::store(data, pg_sys::ACL_INSERT, "INSERT")?;
    let reports = run_import(file.path(), record::UPLOAD, mode, dry_run)?;
    drop(file);
    Ok(rows(reports))
}

/// SQL's `council_import_upload(…)`: the file this transaction uploaded with
/// `council_upload`, imported. (Its Rust name: see above.)
#[pg_extern(name = "council_import_upload", volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn council_import_streamed(
    mode: default!(&str, "'strict'"),
    dry_run: default!(bool, false),
) -> Result<
    TableIterator<
        'static,
        (
            name!(table_name, String),
            name!(source_rows, i64),
            name!(imported, i64),
            name!(skipped, i64),
            name!(rejected, i64),
            name!(updated, i64),
            name!(deleted, i64),
        ),
    >,
    ErrorReport,
> {
    let mode = Mode::parse(mode)?;
    let path = council::upload::current_path()?;
    Ok(rows(run_import(&path, record::UPLOAD, mode, dry_run)?))
}

extension_sql!(
    "REVOKE ALL ON FUNCTION council_import(text, text, boolean) FROM PUBLIC;",
    name = "import_privileges",
    requires = [council_import_path]
);
