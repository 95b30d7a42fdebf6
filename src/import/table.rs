//! Importing one table: read its rows from the file, decide each, and
//! stream the imported ones through COPY in binary format. A table that
//! holds no rows yet (a first import) is read and decided on a thread of
//! its own while the backend's COPY writes what it has: reading SQLite and
//! mapping its values were a third of the import's time, spent while the
//! second core idled.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::Duration;

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
use crate::postgres::notice::notice;
use crate::postgres::{copy, interrupts, spi, threads};
use crate::sqlstate;

/// How often the import reports progress.
const PROGRESS_ROWS: i64 = 10_000;
/// How much COPY data one call of the producer prepares.
const COPY_CHUNK: usize = 1 << 18;
/// A piece's room: the chunk, and the row that crosses its end.
const PIECE_CAPACITY: usize = COPY_CHUNK + (COPY_CHUNK >> 2);

const STRICT_HINT: &str =
    "run with mode => 'quarantine' to import the rest and keep this row in council_import_rejects";
const SYNC_HINT: &str = "a sync makes the tables equal to the file, so it takes every row or none: fix the row in the file, or import with mode => 'quarantine', which keeps it in council_import_rejects";

pub fn import(
    run: &mut Run,
    source: &mut Source,
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

    let decider = decider(run, table, total)?;
    // A table that holds no rows yet (a first import) needs nothing of the
    // server to decide its rows: they are read and decided on a thread of
    // their own while the backend's COPY writes the ones before. A sync,
    // and a table with rows, ask the target row by row here.
    let on_thread = run.mode != Mode::Sync
        && if decider.knows_target() {
            decider.target_is_empty()
        } else {
            holds_no_rows(&run.schema, table)?
        };
    let mut state = TableImport {
        rows: Rows {
            table,
            mode: run.mode,
            columns: Source::row_columns(layout),
            decider,
            rejects: Vec::new(),
            imported: 0,
        },
        total,
        target: Target::open(run.relids[table.name], table, run.provenance.clone())?,
        updates: Batch::new(&run.schema, table),
        skipped: 0,
        updated: 0,
        header_written: false,
    };
    let relid = run.relids[table.name];
    let columns = table.target_columns();
    let skip_fk_triggers = run.skip_fk_triggers;
    let (inserted, seen) = if on_thread {
        let total = state.total;
        import_on_thread(&mut state.rows, source, layout, total, &mut |produce| {
            copy::copy_into(relid, &columns, skip_fk_triggers, produce)
        })?
    } else {
        let source: &Source = source;
        let mut statement = source.select(layout)?;
        let mut reader = RowReader::new(source, layout, &mut statement)?;
        let inserted = copy::copy_into(relid, &columns, skip_fk_triggers, &mut |buf| {
            state.fill(&mut reader, buf)
        });
        (inserted, reader.seen())
    };
    state.finish(run, inserted, seen)
}

/// What the reading thread hands the backend's COPY: a piece of the binary
/// stream, with the rows read so far; or why it stopped.
type Piece = Result<(Vec<u8>, i64), ErrorReport>;

/// Reads and decides the rows of `layout` on a thread of the import's own
/// while `copy` runs COPY on the backend's, fed with what the thread wrote.
/// The thread never calls into the server: the backend answers a cancel
/// (stopping the thread's SQLite statement through the source's progress
/// handler) and reports progress. Returns COPY's count and the rows read.
fn import_on_thread(
    rows: &mut Rows,
    source: &mut Source,
    layout: &TableLayout,
    total: i64,
    copy: &mut dyn FnMut(&mut copy::Produce<'_>) -> u64,
) -> Result<(u64, i64), ErrorReport> {
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = Arc::clone(&stop);
    source.stop_when(move || stopped.load(Ordering::Relaxed));
    let source = InterruptsAgain(source);
    // the reading thread's alone until it is joined
    let reading_source: &mut Source = &mut *source.0;
    let table = rows.table.name;
    std::thread::scope(|scope| {
        // A few pieces in flight: enough that neither side waits for the
        // other's every step, few enough to bound the memory.
        let (pieces, received) = mpsc::sync_channel::<Piece>(4);
        let reading = threads::spawn_scoped(scope, "llm_council import", move || {
            read_rows(rows, reading_source, layout, &pieces)
        })
        .map_err(|err| {
            Error::InternalQuery(format!("could not start the reading thread: {err}"))
        })?;
        // Whatever ends COPY (an error, a cancel) stops the thread too.
        let _stop = OnDrop(|| stop.store(true, Ordering::Relaxed));
        let mut reported = 0;
        let inserted = copy(&mut |buf| loop {
            match received.recv_timeout(Duration::from_millis(10)) {
                Ok(Ok((bytes, seen))) => {
                    for done in (reported / PROGRESS_ROWS + 1)..=(seen / PROGRESS_ROWS) {
                        notice(format!(
                            "llm_council import: {table} {}/{total}",
                            done * PROGRESS_ROWS
                        ));
                    }
                    reported = seen;
                    // COPY's pump hands an empty buffer; this one takes its place
                    *buf = bytes;
                    return Ok(true);
                }
                Ok(Err(report)) => return Err(report),
                // the thread is done, and so is the stream
                Err(RecvTimeoutError::Disconnected) => return Ok(false),
                Err(RecvTimeoutError::Timeout) => {
                    if interrupts::pending() {
                        stop.store(true, Ordering::Relaxed);
                        return Err(interrupts::canceled());
                    }
                }
            }
        });
        let seen = reading.join().map_err(|_| {
            ErrorReport::from(Error::InternalQuery(format!(
                "the thread reading {table} stopped unexpectedly"
            )))
        })?;
        Ok((inserted, seen))
    })
}

/// The reading thread: the binary COPY stream of the rows of `layout`, in
/// pieces of about `COPY_CHUNK` bytes. Returns the rows read.
fn read_rows(
    rows: &mut Rows,
    source: &Source,
    layout: &TableLayout,
    pieces: &SyncSender<Piece>,
) -> i64 {
    let mut seen = 0;
    let result = (|| -> Result<(), ErrorReport> {
        let mut statement = source.select(layout)?;
        let mut reader = RowReader::on_thread(source, layout, &mut statement)?;
        let mut buf = Vec::with_capacity(PIECE_CAPACITY);
        binary_copy::header(&mut buf);
        while let Some((number, row)) = reader.next()? {
            seen = number;
            rows.take_new(row, &mut buf)?;
            if buf.len() >= COPY_CHUNK {
                let full = std::mem::replace(&mut buf, Vec::with_capacity(PIECE_CAPACITY));
                if pieces.send(Ok((full, seen))).is_err() {
                    // COPY has ended: an error or a cancel, which the
                    // backend reports.
                    return Ok(());
                }
            }
        }
        binary_copy::trailer(&mut buf);
        let _ = pieces.send(Ok((buf, seen)));
        Ok(())
    })();
    if let Err(report) = result {
        let _ = pieces.send(Err(report));
    }
    seen
}

/// The source, read on the backend's interrupts again once the reading
/// thread is done (also when an error ends the import).
struct InterruptsAgain<'a>(&'a mut Source);

impl Drop for InterruptsAgain<'_> {
    fn drop(&mut self) {
        self.0.stop_on_interrupts();
    }
}

/// Runs a closure when dropped, also when an error unwinds past it.
struct OnDrop<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

/// Whether the table holds no row, under the import's lock.
fn holds_no_rows(schema: &QuotedIdentifier, table: &Table) -> Result<bool, ErrorReport> {
    Ok(spi::read_one::<bool>(
        &format!(
            "SELECT NOT EXISTS (SELECT FROM {})",
            QuotedIdentifier::qualified(schema, table.name)
        ),
        &[],
    )?
    .unwrap_or(false))
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
            spi::read_column::<String>(
                &format!(
                    "SELECT {}::text FROM {}",
                    QuotedIdentifier::new(column),
                    QuotedIdentifier::qualified(&run.schema, table.name)
                ),
                &[],
            )?
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
        spi::read_column::<pgrx::Uuid>(&query, &[])?
            .iter()
            .map(|id| Key::Uuid(uuid::Uuid::from_bytes(*id.as_bytes())))
            .collect()
    } else {
        spi::read_column::<i64>(&query, &[])?
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

/// Deciding the file's rows and writing the imported ones in COPY's
/// format, free of the server: when the target holds no rows yet, this runs
/// on a thread of its own (see `import_on_thread`).
struct Rows {
    table: &'static Table,
    mode: Mode,
    /// the file's columns, in the order rows hold them
    columns: Vec<String>,
    decider: Decider,
    rejects: Vec<Reject>,
    imported: i64,
}

impl Rows {
    /// Decides one row of a table that held no rows when the import began:
    /// into the COPY stream, or rejected. None can be in the target already.
    fn take_new(&mut self, row: &rusqlite::Row<'_>, buf: &mut Vec<u8>) -> Result<(), ErrorReport> {
        let mapped = row::map_row(self.table, row)
            .map_err(|problem| (problem, row::key_of(self.table, row)));
        let unplaced = unplaced_value(row, self.table, &self.columns);
        let in_target = (!self.decider.knows_target()).then_some(false);
        match self.decider.decide(mapped, unplaced, in_target) {
            Decision::Import(values, _) => {
                binary_copy::row(buf, &values);
                self.imported += 1;
                Ok(())
            }
            Decision::Reject(problem, _) => {
                let refs = row::refs(row, self.columns.len());
                self.reject(row::source_id(&refs), &refs, problem)
            }
            Decision::Compare(_, key) => Err(Error::InternalQuery(format!(
                "{} row {key} was found in a table that held no rows",
                self.table.name
            ))
            .into()),
        }
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
}

/// One table's import while COPY pulls its rows.
struct TableImport {
    rows: Rows,
    total: i64,
    /// the target's rows, found by id to compare
    target: Target,
    /// sync: changed rows waiting to be written over the target's
    updates: Batch,
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
                    self.rows.table.name, self.total
                ));
            }
            self.take(row, buf)?;
        }
        Ok(true)
    }

    /// Decides one row: into the COPY stream, into the batch compared with
    /// the target, or rejected.
    fn take(&mut self, row: &rusqlite::Row<'_>, buf: &mut Vec<u8>) -> Result<(), ErrorReport> {
        let mapped = row::map_row(self.rows.table, row)
            .map_err(|problem| (problem, row::key_of(self.rows.table, row)));
        let unplaced = unplaced_value(row, self.rows.table, &self.rows.columns);
        // Without the target's keys, the lookup says whether the row's id is
        // there, and its answer serves the comparison too.
        let looked_up = match &mapped {
            Ok(values) if !self.rows.decider.knows_target() => Some(self.target.compare(values)),
            _ => None,
        };
        let in_target = looked_up.map(|found| found.is_some());
        match self.rows.decider.decide(mapped, unplaced, in_target) {
            Decision::Import(values, _) => {
                binary_copy::row(buf, &values);
                self.rows.imported += 1;
            }
            Decision::Compare(values, key) => {
                let found = match looked_up {
                    Some(found) => found,
                    None => self.target.compare(&values),
                };
                match self.rows.decider.resolve(key, found.map(|f| f.existing)) {
                    Resolution::Skip => self.skipped += 1,
                    Resolution::Update => {
                        guard_overwrite(self.rows.table, key, found)?;
                        self.updates.push(&values);
                        if self.updates.is_full() {
                            self.write_updates()?;
                        }
                    }
                    Resolution::Reject(problem) => {
                        let refs = row::refs(row, self.rows.columns.len());
                        self.rows.reject(row::source_id(&refs), &refs, problem)?;
                    }
                }
            }
            Decision::Reject(problem, _) => {
                let refs = row::refs(row, self.rows.columns.len());
                self.rows.reject(row::source_id(&refs), &refs, problem)?;
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
                table: self.rows.table.name,
                changed: updated,
                expected,
            }
            .into());
        }
        self.updated += i64::try_from(updated).unwrap_or(i64::MAX);
        self.updates.clear();
        Ok(())
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
        if i64::try_from(inserted).ok() != Some(self.rows.imported) {
            return Err(Error::CopyCount {
                table: self.rows.table.name,
                inserted,
                expected: self.rows.imported,
            }
            .into());
        }
        rejects::save(&run.schema, self.rows.table, &self.rows.rejects)?;
        let report_row = TableReport {
            table: self.rows.table.name,
            source_rows: seen,
            imported: self.rows.imported,
            skipped: self.skipped,
            rejected: i64::try_from(self.rows.rejects.len()).unwrap_or(i64::MAX),
            updated: self.updated,
            deleted: 0,
        };
        notice(format!(
            "llm_council import: {} done: {} imported, {} skipped, {} rejected{}",
            self.rows.table.name,
            report_row.imported,
            report_row.skipped,
            report_row.rejected,
            if self.rows.mode == Mode::Sync {
                format!(", {} updated", report_row.updated)
            } else {
                String::new()
            }
        ));
        let walked_past = match self.rows.mode {
            Mode::Sync if !self.rows.decider.knows_target() => Some(self.target.never_compared()),
            _ => None,
        };
        self.target.close();
        let mut keys = self.rows.decider.finish();
        if self.rows.mode == Mode::Sync {
            if self.rows.table.name == "conversations"
                && keys.held > 0
                && keys.absent.len() == keys.held
            {
                return Err(Error::SyncOtherDeployment { held: keys.held }.into());
            }
            let absent = match walked_past {
                None => std::mem::take(&mut keys.absent),
                Some(Some(walked_past)) => walked_past,
                // The ids came out of order: the target's keys, less the
                // file's.
                Some(None) => existing_keys(&run.schema, self.rows.table)?
                    .into_iter()
                    .filter(|key| !keys.present.contains(key))
                    .collect(),
            };
            run.absent.push((self.rows.table, absent));
        }
        if let Some(parent) = keys.parent {
            run.present.insert(parent.table, parent.present);
            run.rejected.insert(parent.table, parent.rejected);
        }
        // Only the tables others refer to keep their keys: memory grows with
        // the parents' rows, not with every row of the file.
        if is_parent(self.rows.table) {
            run.present.insert(self.rows.table.name, keys.present);
            run.rejected.insert(self.rows.table.name, keys.rejected);
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
