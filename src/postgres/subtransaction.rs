//! `dry_run => true`: the whole import inside a subtransaction of its own,
//! rolled back at the end, also when the import fails. A failure must not
//! leave that subtransaction open: the caller's PL/pgSQL EXCEPTION block
//! would then roll back ours in place of its own, and go on with its locks
//! and snapshot in the wrong state.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::PgTryBuilder;

/// Where the caller's memory context and resource owner are, for after
/// the subtransaction.
struct Caller {
    context: pg_sys::MemoryContext,
    owner: pg_sys::ResourceOwner,
}

impl Caller {
    fn begin_subtransaction() -> Caller {
        // SAFETY: read while a transaction runs, as every SQL call does.
        let caller = unsafe {
            Caller {
                context: pg_sys::CurrentMemoryContext,
                owner: pg_sys::CurrentResourceOwner,
            }
        };
        // SAFETY: a subtransaction of the running transaction; it switches
        // to its own memory context, which we leave for the caller's.
        unsafe {
            pg_sys::BeginInternalSubTransaction(std::ptr::null());
            pg_sys::MemoryContextSwitchTo(caller.context);
        }
        caller
    }

    fn roll_back(&self) {
        // SAFETY: rolls back the subtransaction begun above, the innermost
        // one whether the import finished or failed (an ERROR inside it has
        // been caught, not yet acted on), and returns to the caller's state.
        unsafe {
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
            pg_sys::MemoryContextSwitchTo(self.context);
            pg_sys::CurrentResourceOwner = self.owner;
        }
    }
}

/// Runs `import` in a subtransaction that is rolled back afterwards, and
/// returns what it returned; an ERROR raised inside is re-raised after the
/// rollback.
pub fn rolled_back<T>(import: impl FnOnce() -> Result<T, ErrorReport>) -> Result<T, ErrorReport> {
    let caller = Caller::begin_subtransaction();
    // The import's state is not used again after an ERROR: it only unwinds.
    PgTryBuilder::new(std::panic::AssertUnwindSafe(import))
        .finally(|| caller.roll_back())
        .execute()
}
