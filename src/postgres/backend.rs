//! Facts about this backend and its transaction, and the locks and
//! snapshots an import holds.

use std::ffi::{CStr, OsStr};
use std::os::unix::ffi::OsStrExt as _;
use std::path::PathBuf;

use pgrx::pg_sys;
use pgrx::pg_sys::panic::ErrorReport;

use crate::error::Error;

/// Whether the postmaster is loading the library from
/// shared_preload_libraries right now: the one time shared memory, workers
/// and postmaster-level settings can be had.
pub fn preloading() -> bool {
    // SAFETY: a plain read of a flag the postmaster sets before loading
    // preloaded libraries and clears after.
    unsafe { pg_sys::process_shared_preload_libraries_in_progress }
}

/// SQLite text is UTF-8; so must the database be that holds it.
pub fn check_utf8_database() -> Result<(), ErrorReport> {
    // SAFETY: the database encoding is fixed once the backend has connected.
    if unsafe { pg_sys::GetDatabaseEncoding() } == pg_sys::pg_enc::PG_UTF8 as i32 {
        return Ok(());
    }
    Err(Error::NotUtf8Database.into())
}

/// The server's data directory, where relative paths start.
pub fn data_directory() -> PathBuf {
    // SAFETY: DataDir is set at start-up, before any backend runs SQL, and
    // never changes after.
    let dir = unsafe { CStr::from_ptr(pg_sys::DataDir) };
    PathBuf::from(OsStr::from_bytes(dir.to_bytes()))
}

/// The role whose privileges apply now.
pub fn current_user() -> pg_sys::Oid {
    // SAFETY: reads the backend's current user, set whenever SQL runs.
    unsafe { pg_sys::GetUserId() }
}

/// Whether the current user holds any of `privileges` on table `relid`;
/// None when there is no such table (dropped since it was looked up).
pub fn table_privilege(relid: pg_sys::Oid, privileges: u32) -> Option<bool> {
    let mut missing = false;
    // SAFETY: a catalog lookup that reports a missing table instead of
    // raising an ERROR; `missing` is a local.
    let result = unsafe {
        pg_sys::pg_class_aclcheck_ext(
            relid,
            current_user(),
            pg_sys::AclMode::from(privileges),
            &mut missing,
        )
    };
    (!missing).then_some(result == pg_sys::AclResult::ACLCHECK_OK)
}

/// The current subtransaction's id, which is new for each subtransaction
/// of the running transaction.
pub fn current_subtransaction() -> pg_sys::SubTransactionId {
    // SAFETY: reads the backend's transaction state, set whenever SQL runs.
    unsafe { pg_sys::GetCurrentSubTransactionId() }
}

/// Whether transaction `a` is older than `b`, modulo wraparound.
pub fn transaction_precedes(a: pg_sys::TransactionId, b: pg_sys::TransactionId) -> bool {
    // SAFETY: a pure comparison of two ids.
    unsafe { pg_sys::TransactionIdPrecedes(a, b) }
}

/// Whether row-level security applies to the current user on `relid`.
pub fn row_level_security_applies(relid: pg_sys::Oid) -> bool {
    // SAFETY: a catalog lookup; noError = true returns instead of raising.
    let rls = unsafe { pg_sys::check_enable_rls(relid, pg_sys::InvalidOid, true) };
    rls == pg_sys::CheckEnableRlsResult::RLS_ENABLED as i32
}

/// The server files a role may use, as `COPY … FROM 'file'` and `COPY …
/// TO 'file'` allow them.
#[derive(Clone, Copy, Debug)]
pub enum ServerFiles {
    Read,
    Write,
}

/// Whether the current user is a superuser or has the privileges of
/// pg_read_server_files (or pg_write_server_files).
pub fn may_use_server_files(files: ServerFiles) -> bool {
    let role = match files {
        ServerFiles::Read => pg_sys::ROLE_PG_READ_SERVER_FILES,
        ServerFiles::Write => pg_sys::ROLE_PG_WRITE_SERVER_FILES,
    };
    // SAFETY: catalog lookups for the current user.
    unsafe {
        pg_sys::superuser() || pg_sys::has_privs_of_role(current_user(), pg_sys::Oid::from(role))
    }
}

/// Whether the current user could `SET` the superuser-only setting `name`
/// itself: a superuser, or one granted SET on it.
pub fn may_set(name: &CStr) -> bool {
    // SAFETY: catalog lookups for the current user; `name` outlives them.
    unsafe {
        pg_sys::superuser()
            || pg_sys::pg_parameter_aclcheck(
                name.as_ptr(),
                current_user(),
                pg_sys::AclMode::from(pg_sys::ACL_SET),
            ) == pg_sys::AclResult::ACLCHECK_OK
    }
}

/// Rereads the configuration files, as a background worker does after
/// SIGHUP.
pub fn reload_configuration() {
    // SAFETY: called from a worker's main loop, outside any transaction.
    unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
}

/// This backend's current top-level transaction, as a number that is new
/// for each transaction.
#[cfg(any(feature = "pg15", feature = "pg16"))]
pub fn local_transaction() -> pg_sys::LocalTransactionId {
    // SAFETY: MyProc is this backend's PGPROC, set up before any SQL runs.
    unsafe { (*pg_sys::MyProc).lxid }
}

/// See above; 17 moved the number into the PGPROC's virtual transaction id.
#[cfg(not(any(feature = "pg15", feature = "pg16")))]
pub fn local_transaction() -> pg_sys::LocalTransactionId {
    // SAFETY: MyProc is this backend's PGPROC, set up before any SQL runs.
    unsafe { (*pg_sys::MyProc).vxid.lxid }
}

/// The transaction's isolation level is READ COMMITTED.
pub fn read_committed() -> bool {
    // SAFETY: a plain read of the running transaction's isolation level.
    unsafe { pg_sys::XactIsoLevel == pg_sys::XACT_READ_COMMITTED as i32 }
}

/// Raises PostgreSQL's own 25006 in a read-only transaction, as COPY FROM
/// does.
pub fn prevent_if_read_only(command: &CStr) {
    // SAFETY: raises an ERROR or returns; `command` outlives the call.
    unsafe { pg_sys::PreventCommandIfReadOnly(command.as_ptr()) };
}

/// Whether the transaction may not write: READ ONLY, or on a standby.
pub fn transaction_read_only() -> bool {
    // SAFETY: a plain read of the backend's own transaction state.
    unsafe { pg_sys::XactReadOnly }
}

/// Locks a table SHARE ROW EXCLUSIVE until the transaction ends: other
/// writers wait, readers go on.
pub fn lock_against_writers(relid: pg_sys::Oid) {
    // SAFETY: takes a lock on an existing relation for the transaction; an
    // ERROR (deadlock, lock_timeout) aborts it, which releases the lock.
    unsafe {
        pg_sys::LockRelationOid(relid, pg_sys::ShareRowExclusiveLock as pg_sys::LOCKMODE);
    }
}

/// A fresh snapshot, active until dropped: queries see what committed
/// before it was taken, including writers that held locks we waited for.
pub struct ActiveSnapshot(());

impl ActiveSnapshot {
    pub fn take() -> ActiveSnapshot {
        // SAFETY: pushes a snapshot of the running transaction; `end` pops
        // it, or an ERROR's abort does.
        unsafe { pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot()) };
        ActiveSnapshot(())
    }

    /// Pops it. Not done in Drop: while an ERROR unwinds, the abort pops
    /// every snapshot itself, and a second pop would be one too many.
    pub fn end(self) {
        // SAFETY: pops the snapshot pushed by `take`, still the active one:
        // everything pushed since has been popped by its own code.
        unsafe { pg_sys::PopActiveSnapshot() };
    }
}

/// Runs `f` with the privileges of `role`, as PostgreSQL runs a table's
/// maintenance as its owner: for the extension's own bookkeeping, which the
/// caller may neither read nor forge. The previous user comes back when `f`
/// returns, and, should it raise an error, when the (sub)transaction
/// aborts, which restores it.
pub fn as_role<T>(role: pg_sys::Oid, f: impl FnOnce() -> T) -> T {
    let mut previous = pg_sys::InvalidOid;
    let mut context: std::ffi::c_int = 0;
    // SAFETY: both functions only read or set the backend's user and
    // security context; the pointers are to locals.
    unsafe { pg_sys::GetUserIdAndSecContext(&mut previous, &mut context) };
    let changed = context
        | pg_sys::SECURITY_LOCAL_USERID_CHANGE as std::ffi::c_int
        | pg_sys::SECURITY_RESTRICTED_OPERATION as std::ffi::c_int;
    // SAFETY: as above; role is a role's oid from pg_class.
    unsafe { pg_sys::SetUserIdAndSecContext(role, changed) };
    let result = f();
    // SAFETY: as above.
    unsafe { pg_sys::SetUserIdAndSecContext(previous, context) };
    result
}

/// The current (sub)transaction's full id, assigning one if it has none:
/// the `xmin` of every row it writes.
pub fn current_full_transaction_id() -> u64 {
    // SAFETY: called inside a transaction, where an id can be assigned.
    unsafe { pg_sys::GetCurrentFullTransactionId() }.value
}
