//! `council_imports`: one row per committed import, sync or export, with who
//! ran it, what it read or wrote, and every table's counts. It is the DBA's audit trail,
//! and sync's guard reads it to tell the rows an import wrote from the rows
//! the app wrote since (by their `xmin`).
//!
//! The table belongs to the extension: callers can neither read nor write
//! it through the import, which records and reads it as the table's owner.

use std::time::Duration;

use council_app::QuotedIdentifier;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;

use super::access;
use super::compare::Provenance;
use crate::error::Error;
use crate::postgres::{backend, spi};

/// What happened to one source table's rows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableReport {
    pub table: &'static str,
    pub source_rows: i64,
    /// inserted: rows the target did not have
    pub imported: i64,
    /// left as they are: identical rows already present
    pub skipped: i64,
    pub rejected: i64,
    /// sync: rows written over with the file's version
    pub updated: i64,
    /// sync: rows the file does not have
    pub deleted: i64,
}

impl TableReport {
    pub fn empty(table: &'static str) -> TableReport {
        TableReport {
            table,
            ..TableReport::default()
        }
    }
}

/// What `source` says for a file uploaded by the client.
pub const UPLOAD: &str = "upload";
/// What `source` says for an export streamed to the client.
pub const DOWNLOAD: &str = "download";

/// The role that owns `council_imports`, as whom the record is read and
/// written.
fn owner(schema: &QuotedIdentifier) -> Result<pg_sys::Oid, ErrorReport> {
    let relid = access::relid(schema, "council_imports")?;
    spi::read_one::<pg_sys::Oid>(
        "SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) $1",
        &[relid.into()],
    )?
    .ok_or_else(|| Error::CouncilTableMissing("council_imports").into())
}

fn table(schema: &QuotedIdentifier) -> String {
    QuotedIdentifier::qualified(schema, "council_imports")
}

/// The transactions that imported, and the baseline before which every
/// row counts as imported.
pub fn provenance(schema: &QuotedIdentifier) -> Result<Provenance, ErrorReport> {
    let imports = table(schema);
    let transactions =
        format!("SELECT i.transaction::xid FROM {imports} i WHERE i.mode IN ('strict', 'quarantine', 'sync')");
    let baseline = format!(
        "SELECT i.transaction::xid FROM {imports} i WHERE i.mode = 'baseline' \
         ORDER BY i.id DESC LIMIT 1"
    );
    backend::as_role(owner(schema)?, || {
        Ok(Provenance {
            transactions: spi::read_column::<pg_sys::TransactionId>(&transactions, &[])?
                .into_iter()
                .collect(),
            baseline: spi::read_one::<pg_sys::TransactionId>(&baseline, &[])?,
        })
    })
}

/// An import's counts as `council_imports.rows` holds them: table →
/// outcome → rows.
pub fn import_rows(reports: &[TableReport]) -> serde_json::Value {
    let tables = reports.iter().map(|r| {
        let counts = serde_json::json!({
            "source_rows": r.source_rows,
            "imported": r.imported,
            "skipped": r.skipped,
            "rejected": r.rejected,
            "updated": r.updated,
            "deleted": r.deleted,
        });
        (r.table.to_owned(), counts)
    });
    serde_json::Value::Object(tables.collect())
}

/// Records a committed import (`mode` is its [`Mode`]) or export
/// (`"export"`) of the file whose SHA-256 is `sha256`; `rows` are its
/// counts, per table.
pub fn record(
    schema: &QuotedIdentifier,
    source: &str,
    sha256: &str,
    mode: &str,
    rows: serde_json::Value,
    took: Duration,
) -> Result<(), ErrorReport> {
    let imports = table(schema);
    let insert = format!(
        "INSERT INTO {imports} (transaction, role, source, sha256, mode, rows, duration) \
         VALUES ($1::text::xid8, $2::oid::regrole::name, $3, $4, $5, $6::jsonb, \
                 $7::double precision * interval '1 microsecond')"
    );
    let caller = backend::current_user();
    let args = [
        backend::current_full_transaction_id().to_string().into(),
        caller.into(),
        source.into(),
        sha256.into(),
        mode.into(),
        rows.to_string().into(),
        (took.as_micros() as f64).into(),
    ];
    backend::as_role(owner(schema)?, || spi::write(&insert, &args))?;
    Ok(())
}
