//! Quarantine: the rows an import in quarantine mode could not take, kept
//! verbatim in `council_import_rejects` with the reason.

use council_app::QuotedIdentifier;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use rusqlite::types::ValueRef;

use crate::council::catalog::Table;
use crate::council::row::{self, Problem};
use crate::postgres::spi;

pub struct Reject {
    pub source_id: Option<String>,
    pub reason: String,
    pub row: serde_json::Value,
}

impl Reject {
    /// `columns`: the names of the file's columns, in the order of `values`.
    pub fn new(values: &[ValueRef<'_>], columns: &[String], problem: &Problem) -> Reject {
        Reject {
            source_id: row::source_id(values),
            reason: format!(
                "column {}: {} {}",
                problem.column, problem.value, problem.reason
            ),
            row: row::verbatim(columns, values),
        }
    }
}

/// Inserts the rejects of one table, with the caller's privileges.
pub fn save(
    schema: &QuotedIdentifier,
    table: &Table,
    rejects: &[Reject],
) -> Result<(), ErrorReport> {
    if rejects.is_empty() {
        return Ok(());
    }
    let query = format!(
        "INSERT INTO {} (source_table, source_id, reason, row) VALUES ($1, $2, $3, $4::jsonb)",
        QuotedIdentifier::qualified(schema, "council_import_rejects")
    );
    Spi::connect_mut(|client| {
        let text = pg_sys::TEXTOID.into();
        let statement = client.prepare_mut(query.as_str(), &[text, text, text, text])?;
        for reject in rejects {
            client.update(
                &statement,
                None,
                &[
                    table.name.into(),
                    reject.source_id.clone().into(),
                    reject.reason.clone().into(),
                    reject.row.to_string().into(),
                ],
            )?;
        }
        Ok::<_, pgrx::spi::Error>(())
    })
    .map_err(spi::internal_query_failed)
}
