//! A table's rows found by primary key, one at a time, through the key's
//! index: no query text, no executor, no copies. The import's skip decision,
//! sync and verify compare each file row whose id the table has with the
//! row found here, column by column, in the columns' own binary form.

use pgrx::pg_sys;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::PgMemoryContexts;

use super::stored_row::{self, StoredRow};
use crate::error::Error;

/// A primary key value.
#[derive(Clone, Debug)]
pub enum KeyDatum {
    BigInt(i64),
    Uuid([u8; 16]),
    /// a text key's bytes, in the database's encoding (a `COLLATE "C"`
    /// key: equal where the bytes are)
    Text(Vec<u8>),
}

/// Rows between resets of the memory the comparisons allocate (detoasted
/// values, parsed JSON).
const ROWS_PER_RESET: u32 = 1024;

pub struct PrimaryKeyLookup {
    heap: pg_sys::Relation,
    index: pg_sys::Relation,
    /// finds one key: descends the index from its root each time
    scan: pg_sys::IndexScanDesc,
    slot: *mut pg_sys::TupleTableSlot,
    /// walks the whole index in key order, for integer keys asked for in
    /// ascending order (a file read in rowid order asks so); none for keys
    /// that are not integers, or that are looked up by descent alone
    ordered: Option<Ordered>,
    /// the equality function of the key's type
    equality: pg_sys::RegProcedure,
    /// the attribute number of each column asked for, in the caller's order
    attnums: Vec<usize>,
    /// a uuid key's bytes, or a text key as a varlena: the scan key points
    /// at them while it runs
    uuid: [u8; 16],
    text: Vec<u8>,
    /// where the scans and slots live, and allocate as they go (btree keeps
    /// the dead tuples it met here): a context that lasts as long as they
    /// do, whatever context the caller runs in (COPY resets its own)
    scan_memory: PgMemoryContexts,
    /// what the comparisons allocate, reset every ROWS_PER_RESET rows
    memory: PgMemoryContexts,
    rows: u32,
}

/// Runs `f` with `context` as the current memory context.
fn in_context<T>(context: pg_sys::MemoryContext, f: impl FnOnce() -> T) -> T {
    // SAFETY: switching the current context is what MemoryContextSwitchTo
    // is for; the previous one is restored after f (an ERROR in f resets the
    // current context itself).
    let previous = unsafe { pg_sys::MemoryContextSwitchTo(context) };
    let result = f();
    // SAFETY: as above.
    unsafe { pg_sys::MemoryContextSwitchTo(previous) };
    result
}

/// The walk in key order, which serves ascending integer keys without a
/// descent per key, and the key it stands at.
struct Ordered {
    scan: pg_sys::IndexScanDesc,
    slot: *mut pg_sys::TupleTableSlot,
    state: Walk,
    /// the last key asked for
    last: i64,
    /// whether the key the walk stands at was asked for
    asked: bool,
    /// the keys the walk went past without being asked for them
    unasked: Vec<i64>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Walk {
    NotStarted,
    /// at the row of this key, which the slot holds
    At(i64),
    /// past the last row
    Done,
    /// keys came out of order: every key is looked up by descent
    Abandoned,
}

/// The table's primary key index.
///
/// # Safety
/// `heap` is an open relation.
// SAFETY: unsafe to call because `heap` is a raw relation pointer; sound
// when it is open, which keeps its relcache entry valid for the call.
unsafe fn primary_key_index(heap: pg_sys::Relation) -> pg_sys::Oid {
    #[cfg(not(feature = "pg18"))]
    // SAFETY: `heap` is open (the caller's promise), so its relcache entry
    // and index list are valid; the call only reads them.
    unsafe {
        pg_sys::RelationGetPrimaryKeyIndex(heap)
    }
    #[cfg(feature = "pg18")]
    // SAFETY: as above. 18 asks whether a deferrable key counts: it does
    // not here, as it never did before.
    unsafe {
        pg_sys::RelationGetPrimaryKeyIndex(heap, false)
    }
}

/// An index scan with `nkeys` keys and no ordering, not instrumented.
///
/// # Safety
/// `index` is an open index of the open `heap`; `snapshot` is registered
/// or active for as long as the scan runs.
// SAFETY: unsafe to call because of the raw relation and snapshot pointers;
// sound when both relations are open and the snapshot outlives the scan.
unsafe fn begin_index_scan(
    heap: pg_sys::Relation,
    index: pg_sys::Relation,
    snapshot: pg_sys::Snapshot,
    nkeys: std::ffi::c_int,
) -> pg_sys::IndexScanDesc {
    #[cfg(not(feature = "pg18"))]
    // SAFETY: `index` is an open index of the open `heap` and `snapshot`
    // stays registered while the scan runs (the caller's promise); the scan
    // is allocated in the current memory context.
    unsafe {
        pg_sys::index_beginscan(heap, index, snapshot, nkeys, 0)
    }
    #[cfg(feature = "pg18")]
    // SAFETY: as above. 18 takes the scan's instrumentation, which only
    // EXPLAIN ANALYZE asks for: a null pointer means none.
    unsafe {
        pg_sys::index_beginscan(heap, index, snapshot, std::ptr::null_mut(), nkeys, 0)
    }
}

impl PrimaryKeyLookup {
    /// Opens `relid` and its primary key's index; `columns` are the names
    /// [`StoredRow`] answers for, by their index in this slice. Integer
    /// keys asked for in ascending order are served by a walk of the index.
    pub fn open(
        relid: pg_sys::Oid,
        key: KeyDatum,
        columns: &[&str],
    ) -> Result<PrimaryKeyLookup, ErrorReport> {
        let walks = matches!(key, KeyDatum::BigInt(_));
        PrimaryKeyLookup::open_with(relid, key, columns, walks)
    }

    /// [`open`](Self::open), every key looked up by descending the index:
    /// for a few keys in no useful order (a search's page), which a walk
    /// from the index's first key would serve far more slowly.
    pub fn open_by_descent(
        relid: pg_sys::Oid,
        key: KeyDatum,
        columns: &[&str],
    ) -> Result<PrimaryKeyLookup, ErrorReport> {
        PrimaryKeyLookup::open_with(relid, key, columns, false)
    }

    fn open_with(
        relid: pg_sys::Oid,
        key: KeyDatum,
        columns: &[&str],
        walks: bool,
    ) -> Result<PrimaryKeyLookup, ErrorReport> {
        let lock = pg_sys::AccessShareLock as pg_sys::LOCKMODE;
        // SAFETY: the relation is a council table, whose oid was resolved
        // in this transaction; AccessShareLock is held until its end.
        let heap = unsafe { pg_sys::table_open(relid, lock) };
        let attnums = stored_row::attnums(relid, columns)?;
        // SAFETY: heap is open; the primary key index is the table's own.
        let index_oid = unsafe { primary_key_index(heap) };
        if index_oid == pg_sys::InvalidOid {
            return Err(Error::InternalQuery("a council table has no primary key".into()).into());
        }
        // SAFETY: GetActiveSnapshot is set while a statement runs, which a
        // function call always is; checked for NULL all the same.
        let snapshot = unsafe { pg_sys::GetActiveSnapshot() };
        if snapshot.is_null() {
            return Err(Error::InternalQuery("no active snapshot".into()).into());
        }
        let scan_memory = PgMemoryContexts::new("llm_council primary key lookup");
        // SAFETY: the index belongs to heap; the scan and slot are freed in
        // `close`, or with the transaction should an error end it first.
        let (index, scan, slot, ordered) = in_context(scan_memory.value(), || unsafe {
            let index = pg_sys::index_open(index_oid, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
            let scan = begin_index_scan(heap, index, snapshot, 1);
            let slot = pg_sys::table_slot_create(heap, std::ptr::null_mut());
            let ordered = walks.then(|| Ordered {
                scan: begin_index_scan(heap, index, snapshot, 0),
                slot: pg_sys::table_slot_create(heap, std::ptr::null_mut()),
                state: Walk::NotStarted,
                last: i64::MIN,
                asked: false,
                unasked: Vec::new(),
            });
            (index, scan, slot, ordered)
        });
        let equality = match key {
            KeyDatum::BigInt(_) => pg_sys::F_INT8EQ,
            KeyDatum::Uuid(_) => pg_sys::F_UUID_EQ,
            KeyDatum::Text(_) => pg_sys::F_TEXTEQ,
        };
        Ok(PrimaryKeyLookup {
            heap,
            index,
            scan,
            slot,
            ordered,
            equality: pg_sys::RegProcedure::from(equality),
            attnums,
            uuid: [0; 16],
            text: Vec::new(),
            scan_memory,
            memory: PgMemoryContexts::new("llm_council row comparison"),
            rows: 0,
        })
    }

    /// Finds the row whose key is `key` and hands it to `f`; None when the
    /// table has none visible to this statement.
    pub fn find<T>(&mut self, key: KeyDatum, f: impl FnOnce(&StoredRow<'_>) -> T) -> Option<T> {
        self.rows += 1;
        if self.rows.is_multiple_of(ROWS_PER_RESET) {
            // SAFETY: nothing allocated in this context outlives one find.
            unsafe { self.memory.reset() };
        }
        let slot = match key {
            KeyDatum::BigInt(id)
                if self
                    .ordered
                    .as_ref()
                    .is_some_and(|walk| walk.state != Walk::Abandoned) =>
            {
                match self.walk_to(id) {
                    Some(found) => found,
                    None => self.descend(key),
                }
            }
            _ => self.descend(key),
        };
        let slot = slot?;
        // SAFETY: the slot holds the tuple just found, and keeps it until
        // the next find.
        let row = unsafe { StoredRow::from_slot(slot, &self.attnums) };
        // SAFETY: the comparisons' allocations go to this context, reset
        // every ROWS_PER_RESET rows.
        Some(unsafe { self.memory.switch_to(|_| f(&row)) })
    }

    /// Finds a key by descending the index.
    fn descend(&mut self, key: KeyDatum) -> Option<*mut pg_sys::TupleTableSlot> {
        let datum = match key {
            KeyDatum::BigInt(v) => pg_sys::Datum::from(v),
            KeyDatum::Uuid(bytes) => {
                self.uuid = bytes;
                pg_sys::Datum::from(self.uuid.as_ptr())
            }
            KeyDatum::Text(bytes) => {
                // a varlena with a 4-byte header; a key is a lexeme, far
                // below a varlena's 1 GB
                let len = i32::try_from(bytes.len() + 4).unwrap_or(i32::MAX);
                self.text.clear();
                self.text.extend_from_slice(&[0; 4]);
                self.text.extend_from_slice(&bytes);
                // SAFETY: the buffer starts with the 4 bytes of the header,
                // at malloc's alignment.
                unsafe { pgrx::varlena::set_varsize_4b(self.text.as_mut_ptr().cast(), len) };
                pg_sys::Datum::from(self.text.as_ptr())
            }
        };
        let mut scan_key = pg_sys::ScanKeyData::default();
        let (scan, slot, equality) = (self.scan, self.slot, self.equality);
        // SAFETY: the scan is open; the key's datum (a uuid's bytes or a
        // text in self) outlives the scan step; the slot is the table's own
        // type. ScanKeyInit compares in the C collation, the key's own.
        let found = in_context(self.scan_memory.value(), || unsafe {
            pg_sys::ScanKeyInit(
                &mut scan_key,
                1,
                pg_sys::BTEqualStrategyNumber as pg_sys::StrategyNumber,
                equality,
                datum,
            );
            pg_sys::index_rescan(scan, &mut scan_key, 1, std::ptr::null_mut(), 0);
            pg_sys::index_getnext_slot(scan, pg_sys::ScanDirection::ForwardScanDirection, slot)
        });
        found.then_some(slot)
    }

    /// Walks the index forward to `id`: Some(the row) or Some(None) when
    /// the table has no such key; None when `id` is behind a key asked for
    /// before, which ends the walk for good.
    fn walk_to(&mut self, id: i64) -> Option<Option<*mut pg_sys::TupleTableSlot>> {
        let context = self.scan_memory.value();
        let walk = self.ordered.as_mut()?;
        if id < walk.last {
            walk.state = Walk::Abandoned;
            return None;
        }
        walk.last = id;
        let attnum = self.attnums.first().copied().unwrap_or(1);
        loop {
            match walk.state {
                Walk::At(at) if at >= id => {
                    let found = at == id;
                    walk.asked |= found;
                    return Some(found.then_some(walk.slot));
                }
                Walk::Done => return Some(None),
                Walk::Abandoned => return None,
                Walk::NotStarted | Walk::At(_) => in_context(context, || walk.advance(attnum)),
            }
        }
    }

    /// The table's keys never asked for, in key order: the rest of the
    /// walk, taken to its end. None when keys were asked for out of order
    /// (or are uuids), which leaves the walk no record of them.
    pub fn unasked_keys(&mut self) -> Option<Vec<i64>> {
        let context = self.scan_memory.value();
        let attnum = self.attnums.first().copied().unwrap_or(1);
        let walk = self.ordered.as_mut()?;
        loop {
            match walk.state {
                Walk::Abandoned => return None,
                Walk::Done => return Some(std::mem::take(&mut walk.unasked)),
                Walk::NotStarted | Walk::At(_) => in_context(context, || walk.advance(attnum)),
            }
        }
    }

    /// Ends the scan and closes the relations (their locks stay until the
    /// transaction ends).
    pub fn close(self) {
        drop(self);
    }
}

impl Drop for PrimaryKeyLookup {
    fn drop(&mut self) {
        // While a PostgreSQL error unwinds, the transaction's abort releases
        // the scan, the slot's buffer pin and the relations; calling into
        // PostgreSQL then is not safe.
        if std::thread::panicking() {
            return;
        }
        // SAFETY: each was opened in `open` and is released here, once, in the
        // context it was made in.
        in_context(self.scan_memory.value(), || unsafe {
            if let Some(walk) = &self.ordered {
                pg_sys::ExecDropSingleTupleTableSlot(walk.slot);
                pg_sys::index_endscan(walk.scan);
            }
            pg_sys::ExecDropSingleTupleTableSlot(self.slot);
            pg_sys::index_endscan(self.scan);
            pg_sys::index_close(self.index, pg_sys::NoLock as pg_sys::LOCKMODE);
            pg_sys::table_close(self.heap, pg_sys::NoLock as pg_sys::LOCKMODE);
        });
    }
}

impl Ordered {
    /// Moves to the next row, noting the key it leaves if nobody asked for
    /// it; `attnum` is the key's column.
    fn advance(&mut self, attnum: usize) {
        match self.state {
            Walk::NotStarted => {
                // SAFETY: the scan is open and takes no keys.
                unsafe {
                    pg_sys::index_rescan(
                        self.scan,
                        std::ptr::null_mut(),
                        0,
                        std::ptr::null_mut(),
                        0,
                    )
                };
            }
            Walk::At(at) if !self.asked => self.unasked.push(at),
            _ => {}
        }
        self.asked = false;
        self.state = self.step(attnum);
    }

    /// The next row in key order; `attnum` is the key's column.
    fn step(&mut self, attnum: usize) -> Walk {
        // SAFETY: the scan is open and positioned by index_rescan; the slot
        // is the table's own type; the key column is a NOT NULL bigint.
        unsafe {
            if !pg_sys::index_getnext_slot(
                self.scan,
                pg_sys::ScanDirection::ForwardScanDirection,
                self.slot,
            ) {
                return Walk::Done;
            }
            let mut is_null = false;
            let key = pg_sys::slot_getattr(
                self.slot,
                std::ffi::c_int::try_from(attnum).unwrap_or(1),
                &mut is_null,
            );
            if is_null {
                return Walk::Abandoned;
            }
            Walk::At(key.value() as i64)
        }
    }
}
