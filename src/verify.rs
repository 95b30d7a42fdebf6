//! `council_verify`: compares a council.db with what the database holds, row
//! by row after the import's own mapping. Counts alone would call a table
//! whose rows all changed "verified".

use std::path::Path;

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;

use crate::council::compare::Target;
use crate::council::decision::Existing;
use crate::council::read::RowReader;
use crate::council::row;
use crate::council::source::{Source, TableLayout};
use crate::council::{access, source, upload};
use crate::error::Error;
use crate::postgres::{backend, extension};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableVerification {
    pub table: &'static str,
    pub source_rows: i64,
    pub identical: i64,
    pub missing: i64,
    pub differing: i64,
}

fn verify_table(
    relid: pg_sys::Oid,
    source: &Source,
    layout: &TableLayout,
) -> Result<TableVerification, ErrorReport> {
    let table = layout.table;
    let mut result = TableVerification {
        table: table.name,
        ..TableVerification::default()
    };
    if !layout.present {
        return Ok(result);
    }
    let mut target = Target::open(relid, table, None)?;
    let mut statement = source.select(layout)?;
    let mut reader = RowReader::new(source, layout, &mut statement)?;
    while let Some((_, row)) = reader.next()? {
        let outcome = match row::map_row(table, row) {
            Ok(values) => target.compare(&values).map(|found| found.existing),
            // A row the import could not map is not in the table as it is in
            // the file; a row with its id is a different one.
            Err(_) => row::key_of(table, row)
                .filter(|key| target.has(*key))
                .map(|_| Existing::Different),
        };
        match outcome {
            Some(Existing::Identical) => result.identical += 1,
            Some(Existing::Different) => result.differing += 1,
            None => result.missing += 1,
        }
    }
    result.source_rows = reader.seen();
    drop(reader);
    target.close();
    Ok(result)
}

pub fn run_verify(path: &Path) -> Result<Vec<TableVerification>, ErrorReport> {
    backend::check_utf8_database()?;
    let schema = extension::schema()?;
    let tables = access::council_relids(&schema)?;
    access::check_tables(
        &tables,
        pg_sys::ACL_SELECT,
        "SELECT",
        "council_verify reads the rows",
    )?;
    let source = source::open_on_server(path)?;
    let layout = source.layout()?;
    source.begin_snapshot()?;
    let results = layout
        .iter()
        .map(|layout| {
            let relid = tables
                .iter()
                .find(|t| t.name == layout.table.name)
                .map(|t| t.relid)
                .ok_or(Error::CouncilTableMissing(layout.table.name))?;
            verify_table(relid, &source, layout)
        })
        .collect::<Result<Vec<_>, _>>()?;
    source.check_unchanged()?;
    Ok(results)
}

fn rows(
    results: Vec<TableVerification>,
) -> TableIterator<
    'static,
    (
        name!(table_name, String),
        name!(source_rows, i64),
        name!(identical, i64),
        name!(missing, i64),
        name!(differing, i64),
    ),
> {
    TableIterator::new(results.into_iter().map(|r| {
        (
            r.table.to_owned(),
            r.source_rows,
            r.identical,
            r.missing,
            r.differing,
        )
    }))
}

/// SQL's `council_verify(text)`: a file on the server, by path.
#[pg_extern(name = "council_verify", volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn council_verify_path(
    path: &str,
) -> Result<
    TableIterator<
        'static,
        (
            name!(table_name, String),
            name!(source_rows, i64),
            name!(identical, i64),
            name!(missing, i64),
            name!(differing, i64),
        ),
    >,
    ErrorReport,
> {
    access::check_server_file_access("council_verify")?;
    Ok(rows(run_verify(Path::new(path))?))
}

/// SQL's `council_verify(bytea)`: a file sent whole as the argument. Its
/// Rust name, and the next function's, are the C symbols the released
/// scripts bind (see `council_import_upload` in the import).
#[pg_extern(name = "council_verify", volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn council_verify_upload(
    data: &[u8],
) -> Result<
    TableIterator<
        'static,
        (
            name!(table_name, String),
            name!(source_rows, i64),
            name!(identical, i64),
            name!(missing, i64),
            name!(differing, i64),
        ),
    >,
    ErrorReport,
> {
    let file = upload::store(data, pg_sys::ACL_SELECT, "SELECT")?;
    let results = run_verify(file.path())?;
    drop(file);
    Ok(rows(results))
}

/// SQL's `council_verify_upload()`: the file this transaction uploaded with
/// `council_upload`, verified.
#[pg_extern(name = "council_verify_upload", volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn council_verify_streamed() -> Result<
    TableIterator<
        'static,
        (
            name!(table_name, String),
            name!(source_rows, i64),
            name!(identical, i64),
            name!(missing, i64),
            name!(differing, i64),
        ),
    >,
    ErrorReport,
> {
    let path = upload::current_path()?;
    Ok(rows(run_verify(&path)?))
}

extension_sql!(
    "REVOKE ALL ON FUNCTION council_verify(text) FROM PUBLIC;",
    name = "verify_privileges",
    requires = [council_verify_path]
);
