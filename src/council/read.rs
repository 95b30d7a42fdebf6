//! Reading one table of the file, row by row, for the import and for
//! verify: counting, answering a cancel, and turning SQLite's errors into
//! the import's.

use pgrx::pg_sys::panic::ErrorReport;

use super::source::{Source, SourceError, TableLayout};
use crate::postgres::interrupts;

/// How often a busy read looks for a cancel itself; SQLite's progress
/// handler covers the time spent inside one step.
const INTERRUPT_ROWS: i64 = 1000;

pub struct RowReader<'s> {
    rows: rusqlite::Rows<'s>,
    source: &'s Source,
    table: &'static str,
    seen: i64,
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
            .map_err(|err| error(source, table, &err))?;
        Ok(RowReader {
            rows,
            source,
            table,
            seen: 0,
        })
    }

    /// The next row with its number (from 1), or None at the end.
    pub fn next(&mut self) -> Result<Option<(i64, &rusqlite::Row<'s>)>, ErrorReport> {
        match self.rows.next() {
            Ok(Some(row)) => {
                self.seen += 1;
                if self.seen % INTERRUPT_ROWS == 0 {
                    interrupts::check();
                }
                Ok(Some((self.seen, row)))
            }
            Ok(None) => Ok(None),
            Err(err) => Err(error(self.source, self.table, &err)),
        }
    }

    /// Rows read so far.
    pub fn seen(&self) -> i64 {
        self.seen
    }
}

fn error(source: &Source, table: &str, err: &rusqlite::Error) -> ErrorReport {
    match source.classify(err, &format!("reading {table}")) {
        SourceError::Interrupted => interrupts::canceled(),
        other => other.into(),
    }
}
