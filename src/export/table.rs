//! One table's rows, from PostgreSQL's stored form into the app's SQLite
//! values: times in the app's own text, NULL times as `''` where the app's
//! column is NOT NULL text, conversation ids back to the id the app gave
//! them, jsonb as JSON text, booleans as 0 and 1, and REAL as the very same
//! double.

use std::collections::HashMap;

use rusqlite::types::{ToSqlOutput, Value as SqliteValue, ValueRef};

use super::file::ExportFile;
use super::ExportError;
use crate::council::catalog::{Kind, Table};
use crate::mapping::timestamp::Timestamp;
use crate::postgres::interrupts;
use crate::postgres::notice::notice;
use crate::postgres::scan::TableScan;
use crate::postgres::stored_row::StoredRow;

/// How often the export reports progress, and looks for a cancel.
const PROGRESS_ROWS: u64 = 10_000;

/// The conversations whose id came from the app as something other than a
/// canonical UUID: the uuid PostgreSQL keys them by, and the app's id.
pub type LegacyIds = HashMap<[u8; 16], String>;

/// How each column of a table goes out.
struct Layout {
    /// the columns read from PostgreSQL: the table's, then a conversation's
    /// legacy_id
    names: Vec<&'static str>,
    /// per column: '' stands for NULL, the app's column being NOT NULL text
    empty_for_null: Vec<bool>,
    insert: String,
}

impl Layout {
    fn of(table: &Table) -> Layout {
        let mut names: Vec<&'static str> = table.columns.iter().map(|c| c.name).collect();
        if table.key().kind == Kind::ConversationId {
            names.push("legacy_id");
        }
        let empty_for_null = table
            .columns
            .iter()
            .map(|c| {
                c.kind == Kind::Timestamp
                    && council_app::ddl::declared_not_null(table.name, c.name) == Some(true)
            })
            .collect();
        let columns: Vec<&str> = table.columns.iter().map(|c| c.name).collect();
        let placeholders: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
        Layout {
            names,
            empty_for_null,
            insert: format!(
                "INSERT INTO {} ({}) VALUES ({})",
                table.name,
                columns.join(", "),
                placeholders.join(", ")
            ),
        }
    }
}

/// Writes every row of `table` into `file`; returns how many. A
/// conversation's id the app gave as other than a canonical UUID is
/// recorded in `legacy` as it goes out, and its messages refer to it so.
pub fn export(
    table: &'static Table,
    relid: pgrx::pg_sys::Oid,
    file: &ExportFile,
    legacy: &mut LegacyIds,
) -> Result<u64, ExportError> {
    let layout = Layout::of(table);
    let mut scan = TableScan::open(relid, &layout.names).map_err(ExportError::Postgres)?;
    let mut insert = file
        .connection()
        .prepare(&layout.insert)
        .map_err(|err| file.error("preparing the insert into", err))?;
    let mut rows = 0u64;
    loop {
        let written = scan.next(|row| -> Result<(), ExportError> {
            for (i, column) in table.columns.iter().enumerate() {
                let value = value(table, &layout, i, column.kind, row, legacy)?;
                insert
                    .raw_bind_parameter(i + 1, value)
                    .map_err(|err| file.error("writing", err))?;
            }
            insert
                .raw_execute()
                .map_err(|err| file.error("writing", err))?;
            Ok(())
        });
        match written {
            None => break,
            Some(result) => result?,
        }
        rows += 1;
        if rows.is_multiple_of(PROGRESS_ROWS) {
            interrupts::check();
            notice(format!("llm_council export: {} {rows}", table.name));
        }
    }
    scan.close();
    notice(format!(
        "llm_council export: {} done: {rows} rows",
        table.name
    ));
    Ok(rows)
}

/// Column `i` of `row` as the app's SQLite holds it.
fn value<'r>(
    table: &'static Table,
    layout: &Layout,
    i: usize,
    kind: Kind,
    row: &'r StoredRow<'_>,
    legacy: &mut LegacyIds,
) -> Result<ToSqlOutput<'r>, ExportError> {
    if row.is_null(i) {
        return Ok(if layout.empty_for_null.get(i) == Some(&true) {
            ToSqlOutput::Borrowed(ValueRef::Text(b""))
        } else {
            ToSqlOutput::Borrowed(ValueRef::Null)
        });
    }
    let text =
        |bytes: Option<&'r [u8]>| ToSqlOutput::Borrowed(ValueRef::Text(bytes.unwrap_or(b"")));
    let integer = |v: Option<i64>| ToSqlOutput::Owned(SqliteValue::Integer(v.unwrap_or(0)));
    Ok(match kind {
        Kind::ConversationId => {
            let id = row.uuid(i).unwrap_or_default();
            // the legacy_id column follows the table's own
            match row.text(layout.names.len() - 1) {
                Some(given) => {
                    let given = String::from_utf8_lossy(given).into_owned();
                    legacy.insert(id, given.clone());
                    ToSqlOutput::Owned(SqliteValue::Text(given))
                }
                None => {
                    ToSqlOutput::Owned(SqliteValue::Text(uuid::Uuid::from_bytes(id).to_string()))
                }
            }
        }
        Kind::ConversationRef => {
            let id = row.uuid(i).unwrap_or_default();
            ToSqlOutput::Owned(SqliteValue::Text(match legacy.get(&id) {
                Some(given) => given.clone(),
                None => uuid::Uuid::from_bytes(id).to_string(),
            }))
        }
        Kind::BigInt => integer(row.int8(i)),
        Kind::Integer => integer(row.int4(i).map(i64::from)),
        Kind::Boolean => integer(row.bool(i).map(i64::from)),
        Kind::Double => ToSqlOutput::Owned(SqliteValue::Real(row.float8(i).unwrap_or(0.0))),
        Kind::Text { .. } => text(row.text(i)),
        Kind::Json => text(row.jsonb_printed(i)),
        Kind::Timestamp => {
            let micros = row.int8(i).unwrap_or(0);
            let time =
                Timestamp::from_postgres_micros(micros).map_err(|err| ExportError::Value {
                    table: table.name,
                    id: key_text(table, row),
                    column: table.columns.get(i).map_or("?", |c| c.name),
                    sqlstate: err.sqlstate(),
                    reason: format!("{err}: the app's Python datetime holds years 1 to 9999 only"),
                })?;
            ToSqlOutput::Owned(SqliteValue::Text(time.app_text()))
        }
    })
}

/// The row's id, for an error message.
fn key_text(table: &Table, row: &StoredRow<'_>) -> String {
    match table.key().kind {
        Kind::ConversationId => row
            .uuid(0)
            .map(|id| uuid::Uuid::from_bytes(id).to_string())
            .unwrap_or_default(),
        _ => row.int8(0).map(|id| id.to_string()).unwrap_or_default(),
    }
}
