//! Queries through SPI. The ones that only read take no transaction id, so
//! they also run on a hot standby and in read-only transactions.

use std::ffi::{c_int, CString};

use pgrx::datum::{DatumWithOid, FromDatum, IntoDatum};
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::{PgLogLevel, PgMemoryContexts};

use super::stored_row::StoredRow;
use crate::error::Error;

/// The first column of the first row of a read-only query, or None. Unlike
/// `Spi::get_one`, it takes no transaction id.
pub fn read_one<A: FromDatum + IntoDatum>(
    query: &str,
    args: &[DatumWithOid<'_>],
) -> Result<Option<A>, ErrorReport> {
    Spi::connect(|client| {
        let table = client.select(query, Some(1), args)?;
        if table.is_empty() {
            return Ok(None);
        }
        table.first().get_one::<A>()
    })
    .map_err(internal_query_failed)
}

/// Every non-NULL value of the first column of a read-only query.
pub fn read_column<A: FromDatum + IntoDatum>(
    query: &str,
    args: &[DatumWithOid<'_>],
) -> Result<Vec<A>, ErrorReport> {
    Spi::connect(|client| {
        let mut values = Vec::new();
        for row in client.select(query, None, args)? {
            values.extend(row.get::<A>(1)?);
        }
        Ok::<_, pgrx::spi::Error>(values)
    })
    .map_err(internal_query_failed)
}

/// A query of the extension's own that failed: nothing the caller did, so
/// XX000, with SPI's own words.
pub fn internal_query_failed(err: pgrx::spi::Error) -> ErrorReport {
    Error::InternalQuery(err.to_string()).into()
}

/// Runs a statement that writes; returns how many rows it changed.
pub fn write(query: &str, args: &[DatumWithOid<'_>]) -> Result<u64, ErrorReport> {
    Spi::connect_mut(|client| {
        client
            .update(query, None, args)
            .map(|status| status.len() as u64)
    })
    .map_err(internal_query_failed)
}

/// Rows between resets of the memory that reading a row of `each_row`
/// allocates (detoasted values).
const ROWS_PER_RESET: u64 = 1024;

/// Runs a query to its end and hands each row of its result to `row` as the
/// executor makes it, keeping none: unlike SPI's cursors and `select`,
/// which may stop early or keep every row, the query may run in parallel
/// workers, and a row costs no copy. Column `i` of a row is the query's
/// `i + 1`th. It sees what the transaction wrote before it, as a statement
/// of a volatile function does. The executor is in parallel mode
/// meanwhile, so `row` may not write to the database; an error it returns
/// is raised as it is. Returns the rows.
pub fn each_row(
    query: &str,
    args: &[DatumWithOid<'_>],
    row: &mut dyn FnMut(&StoredRow<'_>) -> Result<(), ErrorReport>,
) -> Result<u64, ErrorReport> {
    let text = CString::new(query)
        .map_err(|_| Error::InternalQuery("a query of the extension's holds a NUL".into()))?;
    let nargs = c_int::try_from(args.len())
        .map_err(|_| Error::InternalQuery("a query with too many parameters".into()))?;
    let mut receiver = RowReceiver {
        receiver: pg_sys::DestReceiver {
            receiveSlot: Some(receive_row),
            rStartup: Some(start_rows),
            rShutdown: Some(end_rows),
            rDestroy: Some(end_rows),
            mydest: pg_sys::CommandDest::DestNone,
        },
        row,
        attnums: Vec::new(),
        memory: PgMemoryContexts::new("llm_council query rows"),
        rows: 0,
    };
    Spi::connect(|_| {
        let mut types: Vec<pg_sys::Oid> = args.iter().map(DatumWithOid::oid).collect();
        // SAFETY: SPI is connected for the length of this closure; the plan
        // and the parameter list live in its memory, freed by SPI_finish.
        // The receiver outlives the execution it is handed to, and its
        // first field is the DestReceiver the executor calls back with.
        let status = unsafe {
            let plan = pg_sys::SPI_prepare_cursor(
                text.as_ptr(),
                nargs,
                types.as_mut_ptr(),
                pg_sys::CURSOR_OPT_PARALLEL_OK as c_int,
            );
            if plan.is_null() {
                pg_sys::SPI_result
            } else {
                let params = pg_sys::makeParamList(nargs);
                let slots = (*params).params.as_mut_ptr();
                for (i, arg) in args.iter().enumerate() {
                    let param = &mut *slots.add(i);
                    let datum = arg.datum();
                    param.isnull = datum.is_none();
                    param.value = datum.map_or(pg_sys::Datum::from(0), |d| d.sans_lifetime());
                    param.pflags = pg_sys::PARAM_FLAG_CONST as u16;
                    param.ptype = arg.oid();
                }
                let options = pg_sys::SPIExecuteOptions {
                    params,
                    read_only: false,
                    allow_nonatomic: false,
                    must_return_tuples: false,
                    tcount: 0,
                    dest: std::ptr::from_mut(&mut receiver.receiver),
                    owner: std::ptr::null_mut(),
                };
                pg_sys::SPI_execute_plan_extended(plan, &options)
            }
        };
        if status < 0 {
            return Err(Error::InternalQuery(format!(
                "SPI failed with status {status} on: {query}"
            ))
            .into());
        }
        Ok(receiver.rows)
    })
}

/// The executor's receiver of `each_row`'s rows.
#[repr(C)]
struct RowReceiver<'a> {
    // first, so that the executor's DestReceiver pointer is this one's
    receiver: pg_sys::DestReceiver,
    row: &'a mut dyn FnMut(&StoredRow<'_>) -> Result<(), ErrorReport>,
    /// 1 to the number of columns: a result row's columns are its own
    attnums: Vec<usize>,
    memory: PgMemoryContexts,
    rows: u64,
}

#[pg_guard]
// SAFETY: called by the executor alone, with the receiver each_row handed it.
unsafe extern "C-unwind" fn start_rows(
    receiver: *mut pg_sys::DestReceiver,
    _operation: c_int,
    described: pg_sys::TupleDesc,
) {
    // SAFETY: the executor hands back the receiver each_row gave it, the
    // first field of a live RowReceiver; the descriptor is the result's.
    let (this, columns) = unsafe { (&mut *receiver.cast::<RowReceiver<'_>>(), (*described).natts) };
    this.attnums = (1..=usize::try_from(columns).unwrap_or(0)).collect();
}

#[pg_guard]
// SAFETY: called by the executor alone, with a slot it holds and the
// receiver each_row handed it.
unsafe extern "C-unwind" fn receive_row(
    slot: *mut pg_sys::TupleTableSlot,
    receiver: *mut pg_sys::DestReceiver,
) -> bool {
    // SAFETY: as in start_rows.
    let this = unsafe { &mut *receiver.cast::<RowReceiver<'_>>() };
    this.rows += 1;
    if this.rows.is_multiple_of(ROWS_PER_RESET) {
        // SAFETY: nothing allocated in this context outlives one row.
        unsafe { this.memory.reset() };
    }
    let RowReceiver {
        row,
        attnums,
        memory,
        ..
    } = this;
    // SAFETY: the slot holds the row until the executor's next one.
    let stored = unsafe { StoredRow::from_slot(slot, attnums) };
    // SAFETY: reading the row allocates in this context, reset every
    // ROWS_PER_RESET rows.
    if let Err(report) = unsafe { memory.switch_to(|_| row(&stored)) } {
        report.report(PgLogLevel::ERROR);
    }
    true
}

#[pg_guard]
// SAFETY: reads nothing; the receiver lives on each_row's stack, which
// frees it.
unsafe extern "C-unwind" fn end_rows(_receiver: *mut pg_sys::DestReceiver) {}
