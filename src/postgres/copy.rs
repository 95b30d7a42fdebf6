//! Writing rows through PostgreSQL's own COPY machinery: a callback hands
//! COPY's binary stream to `CopyFrom`, which inserts in batches and
//! maintains indexes, constraints and foreign-key triggers as `COPY … FROM`
//! would, after the same privilege check.

use std::cell::Cell;
use std::ffi::{c_int, c_void, CString};
use std::ptr;

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::PgLogLevel;

/// Produces the next piece of the COPY stream into the buffer; `Ok(false)`
/// once the stream (trailer included) is complete.
pub type Produce<'a> = dyn FnMut(&mut Vec<u8>) -> Result<bool, ErrorReport> + 'a;

struct Pump<'a> {
    produce: &'a mut Produce<'a>,
    pending: Vec<u8>,
    offset: usize,
    done: bool,
}

thread_local! {
    // COPY's callback takes no argument of ours: the pump it reads from is
    // published here for the duration of one CopyFrom.
    static PUMP: Cell<*mut c_void> = const { Cell::new(ptr::null_mut()) };
}

struct Published;

impl Published {
    fn new(pump: &mut Pump<'_>) -> Published {
        PUMP.with(|p| p.set(ptr::from_mut(pump).cast()));
        Published
    }
}

impl Drop for Published {
    fn drop(&mut self) {
        PUMP.with(|p| p.set(ptr::null_mut()));
    }
}

impl Pump<'_> {
    /// Copies up to `room` bytes of the stream into `out`, at least
    /// `wanted` unless the stream ends; returns how many.
    fn fill(&mut self, out: *mut u8, wanted: usize, room: usize) -> usize {
        let mut written = 0usize;
        while written < wanted.max(1) && written < room {
            if self.offset == self.pending.len() {
                if self.done {
                    break;
                }
                self.pending.clear();
                self.offset = 0;
                match (self.produce)(&mut self.pending) {
                    Ok(more) => self.done = !more,
                    Err(report) => report.report(PgLogLevel::ERROR),
                }
                continue;
            }
            let n = (room - written).min(self.pending.len() - self.offset);
            // SAFETY: `out` has room for `room` bytes (COPY's promise to
            // read_pump), `written + n <= room`, and `pending` holds at
            // least `offset + n` bytes.
            unsafe {
                ptr::copy_nonoverlapping(
                    self.pending.as_ptr().add(self.offset),
                    out.add(written),
                    n,
                );
            }
            self.offset += n;
            written += n;
        }
        written
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn read_pump(
    outbuf: *mut c_void,
    minread: c_int,
    maxread: c_int,
) -> c_int {
    let pump = PUMP.with(Cell::get).cast::<Pump<'_>>();
    // SAFETY: CopyFrom calls us only between Published::new and its drop,
    // while the pump lives on copy_into's stack.
    let Some(pump) = (unsafe { pump.as_mut() }) else {
        return 0;
    };
    let wanted = usize::try_from(minread).unwrap_or(0);
    let room = usize::try_from(maxread).unwrap_or(0);
    c_int::try_from(pump.fill(outbuf.cast(), wanted, room)).unwrap_or(0)
}

fn palloc_str(s: &str) -> *mut std::ffi::c_char {
    // Names come from our own table specs and never hold a NUL.
    let c = CString::new(s).unwrap_or_default();
    // SAFETY: copies a NUL-terminated string into the current memory context.
    unsafe { pg_sys::pstrdup(c.as_ptr()) }
}

/// Client encoding, switched to the database's for the length of a COPY:
/// binary text input is converted from the client encoding, and our text is
/// already in the database's (UTF-8).
struct ClientEncoding {
    saved: c_int,
}

impl ClientEncoding {
    fn database() -> ClientEncoding {
        // SAFETY: reads of the session's encodings.
        let (saved, database) = unsafe {
            (
                pg_sys::pg_get_client_encoding(),
                pg_sys::GetDatabaseEncoding(),
            )
        };
        if saved != database {
            // SAFETY: the database encoding converts to itself: no catalog
            // lookup can fail.
            unsafe { pg_sys::SetClientEncoding(database) };
        }
        ClientEncoding { saved }
    }
}

impl Drop for ClientEncoding {
    fn drop(&mut self) {
        // SAFETY: a read of the session's encoding.
        if unsafe { pg_sys::pg_get_client_encoding() } != self.saved {
            // SAFETY: the saved encoding was in use, so its conversion is
            // prepared: switching back touches no catalog, also while an
            // error unwinds.
            unsafe { pg_sys::SetClientEncoding(self.saved) };
        }
    }
}

/// session_replication_role = replica for the length of one COPY: only
/// the foreign-key triggers are on the council tables then (the caller
/// checks), and the import has checked every parent itself.
struct WithoutTriggers {
    nest_level: c_int,
}

impl WithoutTriggers {
    fn set() -> WithoutTriggers {
        // SAFETY: a GUC nest level of our own, as a function's SET clause
        // opens; `reset` closes it, an ERROR's abort closes it otherwise.
        let nest_level = unsafe { pg_sys::NewGUCNestLevel() };
        // SAFETY: sets a built-in GUC to a valid value at the SUSET level
        // (the caller checked the role may); raises an ERROR on failure.
        unsafe {
            pg_sys::set_config_option(
                c"session_replication_role".as_ptr(),
                c"replica".as_ptr(),
                pg_sys::GucContext::PGC_SUSET,
                pg_sys::GucSource::PGC_S_SESSION,
                pg_sys::GucAction::GUC_ACTION_SAVE,
                true,
                0,
                false,
            );
        }
        WithoutTriggers { nest_level }
    }

    fn reset(self) {
        // SAFETY: closes the nest level `set` opened, restoring the setting.
        unsafe { pg_sys::AtEOXact_GUC(true, self.nest_level) };
    }
}

/// A table opened for COPY, with a range table that asks for INSERT on the
/// named columns.
struct Target {
    rel: pg_sys::Relation,
    pstate: *mut pg_sys::ParseState,
    names: *mut pg_sys::List,
}

impl Target {
    const LOCKMODE: pg_sys::LOCKMODE = pg_sys::RowExclusiveLock as pg_sys::LOCKMODE;

    fn open(relid: pg_sys::Oid, columns: &[&str]) -> Target {
        // SAFETY: opens an existing table (the caller resolved and locked
        // it) for the transaction; an ERROR aborts it, which closes it.
        let rel = unsafe { pg_sys::table_open(relid, Self::LOCKMODE) };
        // SAFETY: a parse state in the current memory context.
        let pstate = unsafe { pg_sys::make_parsestate(ptr::null_mut()) };
        // SAFETY: `pstate` and `rel` are valid.
        let item = unsafe {
            pg_sys::addRangeTableEntryForRelation(
                pstate,
                rel,
                Self::LOCKMODE,
                ptr::null_mut(),
                false,
                false,
            )
        };
        let mut names = ptr::null_mut::<pg_sys::List>();
        let mut inserted = ptr::null_mut::<pg_sys::Bitmapset>();
        // SAFETY: each name is palloc'd and outlives the COPY; `relid` is the
        // open table's.
        unsafe {
            for column in columns {
                let name = palloc_str(column);
                let attnum = pg_sys::get_attnum(relid, name);
                inserted = pg_sys::bms_add_member(
                    inserted,
                    c_int::from(attnum) - pg_sys::FirstLowInvalidHeapAttributeNumber,
                );
                names = pg_sys::lappend(names, pg_sys::makeString(name).cast());
            }
        }
        // SAFETY: the namespace item was just made for this table.
        unsafe { request_insert(item, inserted) };
        Target { rel, pstate, names }
    }

    /// INSERT on the table, or on each column, as COPY FROM checks it.
    fn check_privileges(&self) {
        // SAFETY: the range table built in `open`; raises 42501 when denied.
        unsafe { check_range_table((*self.pstate).p_rtable, self.pstate) };
    }

    fn close(self) {
        // SAFETY: frees what `open` made and closes the table, keeping the
        // lock until the transaction ends.
        unsafe {
            pg_sys::free_parsestate(self.pstate);
            pg_sys::table_close(self.rel, pg_sys::NoLock as pg_sys::LOCKMODE);
        }
    }
}

/// Asks for INSERT on the `inserted` columns of the table `item` names:
/// on its range table entry before PostgreSQL 16, on the permission info
/// that 16 split from it since.
///
/// # Safety
/// `item` is a namespace item of the current parse state.
#[cfg(feature = "pg15")]
unsafe fn request_insert(item: *mut pg_sys::ParseNamespaceItem, inserted: *mut pg_sys::Bitmapset) {
    // SAFETY: the caller's promise; the entry is the item's own.
    unsafe {
        let rte = (*item).p_rte;
        (*rte).requiredPerms = pg_sys::AclMode::from(pg_sys::ACL_INSERT);
        (*rte).insertedCols = inserted;
    }
}

/// See the PostgreSQL 15 version above.
///
/// # Safety
/// `item` is a namespace item of the current parse state.
#[cfg(not(feature = "pg15"))]
unsafe fn request_insert(item: *mut pg_sys::ParseNamespaceItem, inserted: *mut pg_sys::Bitmapset) {
    // SAFETY: the caller's promise; a relation's item has its permission info.
    unsafe {
        let perminfo = (*item).p_perminfo;
        (*perminfo).requiredPerms = pg_sys::AclMode::from(pg_sys::ACL_INSERT);
        (*perminfo).insertedCols = inserted;
    }
}

/// Checks what the range table asks for, raising 42501 when denied.
///
/// # Safety
/// `rtable` is `pstate`'s range table.
#[cfg(feature = "pg15")]
unsafe fn check_range_table(rtable: *mut pg_sys::List, _pstate: *mut pg_sys::ParseState) {
    // SAFETY: the caller's promise.
    unsafe { pg_sys::ExecCheckRTPerms(rtable, true) };
}

/// See the PostgreSQL 15 version above.
///
/// # Safety
/// `rtable` is `pstate`'s range table.
#[cfg(not(feature = "pg15"))]
unsafe fn check_range_table(rtable: *mut pg_sys::List, pstate: *mut pg_sys::ParseState) {
    // SAFETY: the caller's promise; the parse state keeps the permission
    // infos its range table entries point to.
    unsafe { pg_sys::ExecCheckPermissions(rtable, (*pstate).p_rteperminfos, true) };
}

/// `(FORMAT binary)`, as COPY's options list.
fn binary_format() -> *mut pg_sys::List {
    let format = palloc_str("format");
    // SAFETY: nodes in the current memory context.
    unsafe {
        let binary = pg_sys::makeString(palloc_str("binary"));
        let option = pg_sys::makeDefElem(format, binary.cast(), -1);
        pg_sys::lappend(ptr::null_mut(), option.cast())
    }
}

/// COPYs the stream `produce` writes into table `relid`'s `columns`, with
/// the caller's INSERT privileges checked as `COPY … FROM` checks them.
/// With `skip_triggers`, the table's (foreign-key) triggers do not fire.
/// Returns the number of rows inserted.
pub fn copy_into(
    relid: pg_sys::Oid,
    columns: &[&str],
    skip_triggers: bool,
    produce: &mut Produce<'_>,
) -> u64 {
    let target = Target::open(relid, columns);
    target.check_privileges();
    let options = binary_format();
    let _encoding = ClientEncoding::database();
    let mut pump = Pump {
        // SAFETY: only the lifetime changes; the pump, and so this borrow,
        // ends before copy_into returns.
        produce: unsafe { std::mem::transmute::<&mut Produce<'_>, &mut Produce<'_>>(produce) },
        pending: Vec::with_capacity(1 << 16),
        offset: 0,
        done: false,
    };
    let _published = Published::new(&mut pump);
    // SAFETY: the parse state, table and lists built above; `read_pump`
    // reads the published pump, which lives until this function returns.
    let cstate = unsafe {
        pg_sys::BeginCopyFrom(
            target.pstate,
            target.rel,
            ptr::null_mut(),
            ptr::null(),
            false,
            Some(read_pump),
            target.names,
            options,
        )
    };
    let triggers_off = skip_triggers.then(WithoutTriggers::set);
    // SAFETY: the COPY state just begun; an ERROR inside aborts the
    // transaction, which ends the COPY and restores the settings.
    let inserted = unsafe { pg_sys::CopyFrom(cstate) };
    if let Some(off) = triggers_off {
        off.reset();
    }
    // SAFETY: ends the COPY begun above, once.
    unsafe { pg_sys::EndCopyFrom(cstate) };
    target.close();
    inserted
}
