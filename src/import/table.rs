//! Importing one table: read its rows from the file, decide each, and
//! stream the imported ones through COPY in binary format.

use std::collections::HashSet;

use council_app::QuotedIdentifier;
use pgrx::pg_sys::panic::ErrorReport;

use super::binary_copy;
use super::decision::{Decider, Decision, KeySet, ParentKeys};
use super::read::RowReader;
use super::rejects::{self, Reject};
use super::row::{self, Key, Problem};
use super::source::{Source, TableLayout};
use super::tables::{Kind, Table, TABLES};
use super::{compare, Mode, Run, TableReport};
use crate::error::{report, Error};
use crate::postgres::{copy, spi};
use crate::sqlstate;

/// How often the import reports progress.
const PROGRESS_ROWS: i64 = 10_000;
/// How much COPY data one call of the producer prepares.
const COPY_CHUNK: usize = 1 << 18;

const STRICT_HINT: &str =
    "run with mode => 'quarantine' to import the rest and keep this row in council_import_rejects";

pub fn import(
    run: &mut Run,
    source: &Source,
    layout: &TableLayout,
) -> Result<TableReport, ErrorReport> {
    let table = layout.table;
    if !layout.present {
        // Rows of a table the file lacks can still be parents: the ones
        // already in the database.
        if is_parent(table) {
            let existing = existing_keys(&run.schema, table)?;
            run.present.insert(table.name, existing);
        }
        return Ok(TableReport::empty(table.name));
    }
    let total = i64::try_from(source.count(layout)?).unwrap_or(i64::MAX);
    notice(format!("llm_council import: {} 0/{total}", table.name));

    let mut state = TableImport {
        table,
        mode: run.mode,
        total,
        columns: Source::row_columns(layout),
        compare_query: compare::query(&run.schema, table),
        decider: decider(run, table)?,
        rejects: Vec::new(),
        imported: 0,
        skipped: 0,
        header_written: false,
    };
    let mut statement = source.select(layout)?;
    let mut reader = RowReader::new(source, layout, &mut statement)?;
    let inserted = copy::copy_into(
        run.relids[table.name],
        &table.target_columns(),
        run.skip_fk_triggers,
        &mut |buf| state.fill(&mut reader, buf),
    );
    let seen = reader.seen();
    drop(reader);
    state.finish(run, inserted, seen)
}

/// The keys and unique values this table's rows are decided against.
fn decider(run: &mut Run, table: &'static Table) -> Result<Decider, ErrorReport> {
    let existing = existing_keys(&run.schema, table)?;
    let taken = match table.unique {
        Some(column) if !existing.is_empty() => spi::read_texts(&format!(
            "SELECT {}::text FROM {}",
            QuotedIdentifier::new(column),
            QuotedIdentifier::qualified(&run.schema, table.name)
        ))?
        .into_iter()
        .collect(),
        _ => HashSet::new(),
    };
    // Borrowed out of the run for the length of this table, not copied.
    let parent = table.parent.and_then(|p| {
        Some(ParentKeys {
            table: p.table,
            column: table.column_index(p.column)?,
            present: run.present.remove(p.table).unwrap_or_default(),
            rejected: run.rejected.remove(p.table).unwrap_or_default(),
        })
    });
    Ok(Decider::new(table, existing, taken, parent))
}

fn existing_keys(schema: &QuotedIdentifier, table: &Table) -> Result<KeySet, ErrorReport> {
    let query = format!(
        "SELECT id::text FROM {}",
        QuotedIdentifier::qualified(schema, table.name)
    );
    let is_uuid = table.key().kind == Kind::ConversationId;
    Ok(spi::read_texts(&query)?
        .iter()
        .filter_map(|text| {
            if is_uuid {
                uuid::Uuid::parse_str(text).ok().map(Key::Uuid)
            } else {
                text.parse::<i64>().ok().map(Key::Int)
            }
        })
        .collect())
}

fn is_parent(table: &Table) -> bool {
    TABLES
        .iter()
        .any(|t| t.parent.is_some_and(|p| p.table == table.name))
}

fn notice(message: String) {
    pgrx::notice!("{message}");
}

/// One table's import while COPY pulls its rows.
struct TableImport {
    table: &'static Table,
    mode: Mode,
    total: i64,
    /// the file's columns, in the order rows hold them
    columns: Vec<String>,
    compare_query: String,
    decider: Decider,
    rejects: Vec<Reject>,
    imported: i64,
    skipped: i64,
    header_written: bool,
}

impl TableImport {
    /// COPY's producer: the next piece of the binary stream.
    fn fill(&mut self, reader: &mut RowReader<'_>, buf: &mut Vec<u8>) -> Result<bool, ErrorReport> {
        if !self.header_written {
            binary_copy::header(buf);
            self.header_written = true;
        }
        while buf.len() < COPY_CHUNK {
            let Some((number, row)) = reader.next()? else {
                binary_copy::trailer(buf);
                return Ok(false);
            };
            if number % PROGRESS_ROWS == 0 {
                notice(format!(
                    "llm_council import: {} {number}/{}",
                    self.table.name, self.total
                ));
            }
            self.take(row, buf)?;
        }
        Ok(true)
    }

    /// Decides one row: into the COPY stream, skipped, or rejected.
    fn take(&mut self, row: &rusqlite::Row<'_>, buf: &mut Vec<u8>) -> Result<(), ErrorReport> {
        let mapped = row::map_row(self.table, row)
            .map_err(|problem| (problem, row::key_of(self.table, row)));
        let unplaced = unplaced_value(row, self.table, &self.columns);
        let query = &self.compare_query;
        match self
            .decider
            .decide(mapped, unplaced, |values| compare::existing(query, values))?
        {
            Decision::Import(values, _) => {
                binary_copy::row(buf, &values);
                self.imported += 1;
            }
            Decision::Skip(_) => self.skipped += 1,
            Decision::Reject(problem, _) if self.mode == Mode::Strict => {
                return Err(row_error(self.table, &row::source_id(row), &problem));
            }
            Decision::Reject(problem, _) => {
                self.rejects.push(Reject::new(row, &self.columns, &problem));
            }
        }
        Ok(())
    }

    /// Checks COPY's count, keeps the rejects, and hands the keys on to the
    /// tables that refer to this one.
    fn finish(self, run: &mut Run, inserted: u64, seen: i64) -> Result<TableReport, ErrorReport> {
        if i64::try_from(inserted).ok() != Some(self.imported) {
            return Err(Error::CopyCount {
                table: self.table.name,
                inserted,
                expected: self.imported,
            }
            .into());
        }
        rejects::save(&run.schema, self.table, &self.rejects)?;
        let report_row = TableReport {
            table: self.table.name,
            source_rows: seen,
            imported: self.imported,
            skipped: self.skipped,
            rejected: i64::try_from(self.rejects.len()).unwrap_or(i64::MAX),
        };
        notice(format!(
            "llm_council import: {} done: {} imported, {} skipped, {} rejected",
            self.table.name, report_row.imported, report_row.skipped, report_row.rejected
        ));
        let keys = self.decider.finish();
        if let Some(parent) = keys.parent {
            run.present.insert(parent.table, parent.present);
            run.rejected.insert(parent.table, parent.rejected);
        }
        // Only the tables others refer to keep their keys: memory grows with
        // the parents' rows, not with every row of the file.
        if is_parent(self.table) {
            run.present.insert(self.table.name, keys.present);
            run.rejected.insert(self.table.name, keys.rejected);
        }
        Ok(report_row)
    }
}

/// The first non-NULL value in a column the council schema lacks: it has no
/// place in PostgreSQL, so its row goes to the quarantine whole rather than
/// lose it. (Strict mode refuses such files before reading a row.)
fn unplaced_value(row: &rusqlite::Row<'_>, table: &Table, columns: &[String]) -> Option<Problem> {
    (table.columns.len()..columns.len()).find_map(|i| {
        let value = row.get_ref(i).ok()?;
        if matches!(value, rusqlite::types::ValueRef::Null) {
            return None;
        }
        Some(Problem {
            column: columns.get(i)?.clone().into(),
            sqlstate: sqlstate::UNDEFINED_COLUMN,
            reason: "is in a column the council schema does not have; the row is kept here whole"
                .into(),
            value: row::show(value),
        })
    })
}

fn row_error(table: &Table, source_id: &Option<String>, problem: &Problem) -> ErrorReport {
    let id = source_id
        .as_deref()
        .map(|id| crate::mapping::text::cut(id, row::SHOWN_CHARS))
        .unwrap_or_else(|| "NULL".into());
    report(
        problem.sqlstate,
        format!(
            "council_import: {} row {id}, column {}: {} {}",
            table.name, problem.column, problem.value, problem.reason
        ),
        Some(format!(
            "table {}, source row id {id}, column {}",
            table.name, problem.column
        )),
        Some(STRICT_HINT.into()),
    )
}
