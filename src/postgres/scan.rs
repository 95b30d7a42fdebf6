//! Every row of a table visible to the active snapshot, in the heap's order,
//! read in its stored form: what an export reads. No query text, no
//! executor and no copies, as for the lookup by key; the caller checks the
//! privileges a SELECT would.

use pgrx::pg_sys;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::PgMemoryContexts;

use super::stored_row::{self, StoredRow};
use crate::error::Error;

/// Rows between resets of the memory the caller's reading of a row
/// allocates (detoasted values, printed JSON).
const ROWS_PER_RESET: u32 = 1024;

pub struct TableScan {
    heap: pg_sys::Relation,
    scan: pg_sys::TableScanDesc,
    slot: *mut pg_sys::TupleTableSlot,
    /// the attribute number of each column asked for, in the caller's order
    attnums: Vec<usize>,
    /// where the scan and its slot live: as long as they do, whatever
    /// context the caller runs in
    scan_memory: PgMemoryContexts,
    /// what reading a row allocates, reset every ROWS_PER_RESET rows
    memory: PgMemoryContexts,
    rows: u32,
}

impl TableScan {
    /// Opens `relid` for reading under the active snapshot; `columns` are
    /// the names [`StoredRow`] answers for, by their index in this slice.
    pub fn open(relid: pg_sys::Oid, columns: &[&str]) -> Result<TableScan, ErrorReport> {
        let attnums = stored_row::attnums(relid, columns)?;
        // SAFETY: GetActiveSnapshot is set while a statement runs, which a
        // function call always is; checked for NULL all the same.
        let snapshot = unsafe { pg_sys::GetActiveSnapshot() };
        if snapshot.is_null() {
            return Err(Error::InternalQuery("no active snapshot".into()).into());
        }
        let scan_memory = PgMemoryContexts::new("llm_council table scan");
        // SAFETY: relid is a council table resolved in this transaction;
        // AccessShareLock is held until its end. The scan and slot are
        // released in `close`, or with the transaction should an error end
        // it first.
        let (heap, scan, slot) = unsafe {
            let previous = pg_sys::MemoryContextSwitchTo(scan_memory.value());
            let heap = pg_sys::table_open(relid, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
            let scan = pg_sys::table_beginscan(heap, snapshot, 0, std::ptr::null_mut());
            let slot = pg_sys::table_slot_create(heap, std::ptr::null_mut());
            pg_sys::MemoryContextSwitchTo(previous);
            (heap, scan, slot)
        };
        Ok(TableScan {
            heap,
            scan,
            slot,
            attnums,
            scan_memory,
            memory: PgMemoryContexts::new("llm_council scanned rows"),
            rows: 0,
        })
    }

    /// Hands the next row to `f`; None after the last one.
    pub fn next<T>(&mut self, f: impl FnOnce(&StoredRow<'_>) -> T) -> Option<T> {
        self.rows += 1;
        if self.rows.is_multiple_of(ROWS_PER_RESET) {
            // SAFETY: nothing allocated in this context outlives one row.
            unsafe { self.memory.reset() };
        }
        // SAFETY: the scan is open; the slot is the table's own type. The
        // scan's own allocations go to its context.
        let found = unsafe {
            let previous = pg_sys::MemoryContextSwitchTo(self.scan_memory.value());
            let found = pg_sys::table_scan_getnextslot(
                self.scan,
                pg_sys::ScanDirection::ForwardScanDirection,
                self.slot,
            );
            pg_sys::MemoryContextSwitchTo(previous);
            found
        };
        if !found {
            return None;
        }
        // SAFETY: the slot holds the tuple just read until the next call.
        let row = unsafe { StoredRow::from_slot(self.slot, &self.attnums) };
        // SAFETY: reading the row allocates in this context, reset every
        // ROWS_PER_RESET rows.
        Some(unsafe { self.memory.switch_to(|_| f(&row)) })
    }

    /// Ends the scan and closes the table (its lock stays until the
    /// transaction ends).
    pub fn close(self) {
        drop(self);
    }
}

impl Drop for TableScan {
    fn drop(&mut self) {
        // While a PostgreSQL error unwinds, the transaction's abort releases
        // the scan, the slot's buffer pin and the table; calling into
        // PostgreSQL then is not safe.
        if std::thread::panicking() {
            return;
        }
        // SAFETY: each was opened in `open` and is released here, once.
        unsafe {
            let previous = pg_sys::MemoryContextSwitchTo(self.scan_memory.value());
            pg_sys::ExecDropSingleTupleTableSlot(self.slot);
            pg_sys::table_endscan(self.scan);
            pg_sys::table_close(self.heap, pg_sys::NoLock as pg_sys::LOCKMODE);
            pg_sys::MemoryContextSwitchTo(previous);
        }
    }
}
