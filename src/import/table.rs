//! Importing one table: read its rows from the file, decide each, and
//! stream the imported ones through COPY in binary format.

use std::collections::HashSet;

use council_app::QuotedIdentifier;
use pgrx::pg_sys::panic::ErrorReport;

use rusqlite::types::ValueRef;

use super::binary_copy;
use super::rejects::{self, Reject};
use super::{Mode, Run};
use crate::council::catalog::{Kind, Table, TABLES};
use crate::council::compare::{Batch, Found, Target};
use crate::council::decision::{Decider, Decision, Existing, KeySet, ParentKeys, Resolution};
use crate::council::read::RowReader;
use crate::council::record::TableReport;
use crate::council::row::{self, Key, Problem};
use crate::council::source::{Source, TableLayout};
use crate::error::{report, Error};
use crate::postgres::{copy, spi};
use crate::sqlstate;

/// How often the import reports progress.
const PROGRESS_ROWS: i64 = 10_000;
/// How much COPY data one call of the producer prepares.
const COPY_CHUNK: usize = 1 << 18;

const STRICT_HINT: &str =
    "run with mode => 'quarantine' to import the rest and keep this row in council_import_rejects";
const SYNC_HINT: &str = "a sync makes the tables equal to the file, so it takes every row or none: fix the row in the file, or import with mode => 'quarantine', which keeps it in council_import_rejects";

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
        target: Target::open(run.relids[table.name], table, run.provenance.clone())?,
        updates: Batch::new(&run.schema, table),
        decider: decider(run, table, total)?,
        rejects: Vec::new(),
        imported: 0,
        skipped: 0,
        updated: 0,
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
fn decider(run: &mut Run, table: &'static Table, rows: i64) -> Result<Decider, ErrorReport> {
    // A parent's keys are its children's parents: they are read first.
    // Other tables ask the target row by row, through the lookup that
    // compares them anyway, whose walk along the key's index also finds the
    // rows a sync deletes (see `TableImport::finish`).
    let existing = if is_parent(table) {
        Some(existing_keys(&run.schema, table)?)
    } else {
        None
    };
    let taken = match table.unique {
        Some(column) if existing.as_ref().is_none_or(|keys| !keys.is_empty()) => {
            spi::read_column::<String>(&format!(
                "SELECT {}::text FROM {}",
                QuotedIdentifier::new(column),
                QuotedIdentifier::qualified(&run.schema, table.name)
            ))?
            .into_iter()
            .collect()
        }
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
    let mut decider = Decider::new(table, existing, taken, parent, run.mode == Mode::Sync);
    decider.expect_rows(usize::try_from(rows).unwrap_or(0));
    Ok(decider)
}

fn existing_keys(schema: &QuotedIdentifier, table: &Table) -> Result<KeySet, ErrorReport> {
    let query = format!(
        "SELECT id FROM {}",
        QuotedIdentifier::qualified(schema, table.name)
    );
    Ok(if table.key().kind == Kind::ConversationId {
        spi::read_column::<pgrx::Uuid>(&query)?
            .iter()
            .map(|id| Key::Uuid(uuid::Uuid::from_bytes(*id.as_bytes())))
            .collect()
    } else {
        spi::read_column::<i64>(&query)?
            .into_iter()
            .map(Key::Int)
            .collect()
    })
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
    /// the target's rows, found by id to compare
    target: Target,
    /// sync: changed rows waiting to be written over the target's
    updates: Batch,
    decider: Decider,
    rejects: Vec<Reject>,
    imported: i64,
    skipped: i64,
    updated: i64,
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

    /// Decides one row: into the COPY stream, into the batch compared with
    /// the target, or rejected.
    fn take(&mut self, row: &rusqlite::Row<'_>, buf: &mut Vec<u8>) -> Result<(), ErrorReport> {
        let mapped = row::map_row(self.table, row)
            .map_err(|problem| (problem, row::key_of(self.table, row)));
        let unplaced = unplaced_value(row, self.table, &self.columns);
        // Without the target's keys, the lookup says whether the row's id is
        // there, and its answer serves the comparison too.
        let looked_up = match &mapped {
            Ok(values) if !self.decider.knows_target() => Some(self.target.compare(values)),
            _ => None,
        };
        let in_target = looked_up.map(|found| found.is_some());
        match self.decider.decide(mapped, unplaced, in_target) {
            Decision::Import(values, _) => {
                binary_copy::row(buf, &values);
                self.imported += 1;
            }
            Decision::Compare(values, key) => {
                let found = match looked_up {
                    Some(found) => found,
                    None => self.target.compare(&values),
                };
                match self.decider.resolve(key, found.map(|f| f.existing)) {
                    Resolution::Skip => self.skipped += 1,
                    Resolution::Update => {
                        guard_overwrite(self.table, key, found)?;
                        self.updates.push(&values);
                        if self.updates.is_full() {
                            self.write_updates()?;
                        }
                    }
                    Resolution::Reject(problem) => {
                        let refs = row::refs(row, self.columns.len());
                        self.reject(row::source_id(&refs), &refs, problem)?;
                    }
                }
            }
            Decision::Reject(problem, _) => {
                let refs = row::refs(row, self.columns.len());
                self.reject(row::source_id(&refs), &refs, problem)?;
            }
        }
        Ok(())
    }

    /// Writes the changed rows gathered so far over the target's.
    fn write_updates(&mut self) -> Result<(), ErrorReport> {
        if self.updates.is_empty() {
            return Ok(());
        }
        let expected = self.updates.len();
        let updated = self.updates.update()?;
        if updated != expected as u64 {
            return Err(Error::ChangedCount {
                statement: "UPDATE",
                table: self.table.name,
                changed: updated,
                expected,
            }
            .into());
        }
        self.updated += i64::try_from(updated).unwrap_or(i64::MAX);
        self.updates.clear();
        Ok(())
    }

    /// A rejected row: the import's error in strict mode and in a sync,
    /// kept in the quarantine otherwise.
    fn reject(
        &mut self,
        source_id: Option<String>,
        row: &[ValueRef<'_>],
        problem: Problem,
    ) -> Result<(), ErrorReport> {
        if self.mode == Mode::Quarantine {
            self.rejects.push(Reject::new(row, &self.columns, &problem));
            return Ok(());
        }
        Err(row_error(self.table, self.mode, &source_id, &problem))
    }

    /// Checks COPY's count, keeps the rejects, and hands the keys on to the
    /// tables that refer to this one.
    fn finish(
        mut self,
        run: &mut Run,
        inserted: u64,
        seen: i64,
    ) -> Result<TableReport, ErrorReport> {
        self.write_updates()?;
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
            updated: self.updated,
            deleted: 0,
        };
        notice(format!(
            "llm_council import: {} done: {} imported, {} skipped, {} rejected{}",
            self.table.name,
            report_row.imported,
            report_row.skipped,
            report_row.rejected,
            if self.mode == Mode::Sync {
                format!(", {} updated", report_row.updated)
            } else {
                String::new()
            }
        ));
        let walked_past = match self.mode {
            Mode::Sync if !self.decider.knows_target() => Some(self.target.never_compared()),
            _ => None,
        };
        self.target.close();
        let mut keys = self.decider.finish();
        if self.mode == Mode::Sync {
            if self.table.name == "conversations" && keys.held > 0 && keys.absent.len() == keys.held
            {
                return Err(Error::SyncOtherDeployment { held: keys.held }.into());
            }
            let absent = match walked_past {
                None => std::mem::take(&mut keys.absent),
                Some(Some(walked_past)) => walked_past,
                // The ids came out of order: the target's keys, less the
                // file's.
                Some(None) => existing_keys(&run.schema, self.table)?
                    .into_iter()
                    .filter(|key| !keys.present.contains(key))
                    .collect(),
            };
            run.absent.push((self.table, absent));
        }
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

/// Sync's guard: a row is overwritten only when an import or sync wrote the
/// version it replaces.
fn guard_overwrite(
    table: &'static Table,
    key: Key,
    found: Option<Found>,
) -> Result<(), ErrorReport> {
    match found {
        Some(Found {
            existing: Existing::Different,
            by_import: false,
        }) => Err(Error::SyncWouldErase {
            table: table.name,
            id: key.to_string(),
            action: "overwrite",
        }
        .into()),
        _ => Ok(()),
    }
}

fn row_error(
    table: &Table,
    mode: Mode,
    source_id: &Option<String>,
    problem: &Problem,
) -> ErrorReport {
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
        Some(
            if mode == Mode::Sync {
                SYNC_HINT
            } else {
                STRICT_HINT
            }
            .into(),
        ),
    )
}

/// Sync's last step: deletes each table's rows the file lacks, children
/// first so that every row is counted where it was (no cascade does it
/// unseen), once the guard has found each of them written by an import.
pub fn delete_absent(run: &Run, reports: &mut [TableReport]) -> Result<(), ErrorReport> {
    for (table, keys) in run.absent.iter().rev() {
        if keys.is_empty() {
            continue;
        }
        let qualified = QuotedIdentifier::qualified(&run.schema, table.name);
        let key_type = table.key().kind.sql_type();
        let mut target = Target::open(run.relids[table.name], table, run.provenance.clone())?;
        let foreign = keys
            .iter()
            .find(|key| target.written_by_import(**key) == Some(false));
        target.close();
        if let Some(key) = foreign {
            return Err(Error::SyncWouldErase {
                table: table.name,
                id: key.to_string(),
                action: "delete",
            }
            .into());
        }
        let ids: Vec<String> = keys.iter().map(ToString::to_string).collect();
        let delete = format!("DELETE FROM {qualified} t WHERE t.id = ANY($1::{key_type}[])");
        let deleted = spi::write(&delete, &[ids.into()])?;
        if deleted != keys.len() as u64 {
            return Err(Error::ChangedCount {
                statement: "DELETE",
                table: table.name,
                changed: deleted,
                expected: keys.len(),
            }
            .into());
        }
        notice(format!(
            "llm_council import: {} {deleted} deleted",
            table.name
        ));
        if let Some(report) = reports.iter_mut().find(|r| r.table == table.name) {
            report.deleted = i64::try_from(deleted).unwrap_or(i64::MAX);
        }
    }
    Ok(())
}
