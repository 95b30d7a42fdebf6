//! Reading one table of the file, row by row, for the import and for
//! verify: counting, answering a cancel, and turning SQLite's errors into
//! the import's.

use pgrx::pg_sys::panic::ErrorReport;

use super::source::{Source, SourceError, TableLayout};
use crate::error::Error;
use crate::postgres::interrupts;

/// How often a busy read looks for a cancel itself; SQLite's progress
/// handler covers the time spent inside one step.
const INTERRUPT_ROWS: i64 = 1000;

pub struct RowReader<'s> {
    rows: rusqlite::Rows<'s>,
    source: &'s Source,
    table: &'static str,
    seen: i64,
    /// Read on a thread of the import's own, which may not call into the
    /// server: the backend's thread answers a cancel, and stops the read
    /// through the source's progress handler (see `Source::stop_when`).
    on_thread: bool,
}

impl<'s> RowReader<'s> {
    /// Starts reading `statement`, made by [`Source::select`] for `layout`.
    pub fn new(
        source: &'s Source,
        layout: &TableLayout,
        statement: &'s mut rusqlite::Statement<'_>,
    ) -> Result<RowReader<'s>, ErrorReport> {
        let table = layout.table.name;
        let rows = statement
            .query([])
            .map_err(|err| error(source, table, &err, false))?;
        Ok(RowReader {
            rows,
            source,
            table,
            seen: 0,
            on_thread: false,
        })
    }

    /// As [`RowReader::new`], for a thread other than the backend's.
    pub fn on_thread(
        source: &'s Source,
        layout: &TableLayout,
        statement: &'s mut rusqlite::Statement<'_>,
    ) -> Result<RowReader<'s>, ErrorReport> {
        let mut reader = RowReader::new(source, layout, statement)?;
        reader.on_thread = true;
        Ok(reader)
    }

    /// The next row with its number (from 1), or None at the end.
    pub fn next(&mut self) -> Result<Option<(i64, &rusqlite::Row<'s>)>, ErrorReport> {
        match self.rows.next() {
            Ok(Some(row)) => {
                self.seen += 1;
                if self.seen % INTERRUPT_ROWS == 0 && !self.on_thread {
                    interrupts::check();
                }
                Ok(Some((self.seen, row)))
            }
            Ok(None) => Ok(None),
            Err(err) => Err(error(self.source, self.table, &err, self.on_thread)),
        }
    }

    /// Rows read so far.
    pub fn seen(&self) -> i64 {
        self.seen
    }
}

fn error(source: &Source, table: &str, err: &rusqlite::Error, on_thread: bool) -> ErrorReport {
    match source.classify(err, &format!("reading {table}")) {
        // Stopped by the backend's thread, which raises the cancel itself.
        SourceError::Interrupted if on_thread => Error::Canceled.into(),
        SourceError::Interrupted => interrupts::canceled(),
        other => other.into(),
    }
}
