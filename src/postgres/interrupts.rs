//! Cancel, statement_timeout and termination, while the backend is busy in
//! Rust or in SQLite rather than in PostgreSQL's own loops.

use pgrx::pg_sys;
use pgrx::pg_sys::panic::ErrorReport;

use crate::error::Error;

/// Whether an interrupt waits: SQLite's progress handler asks this, and
/// stops the statement it runs.
pub fn pending() -> bool {
    // SAFETY: a plain read of a flag the signal handlers set; a stale value
    // only delays the cancel to the next check.
    unsafe { pg_sys::InterruptPending != 0 }
}

/// Raises the pending interrupt, if there is one.
pub fn check() {
    pg_sys::check_for_interrupts!();
}

/// The error for a read that SQLite stopped because an interrupt waits:
/// PostgreSQL's own, raised here if it is still pending.
pub fn canceled() -> ErrorReport {
    check();
    Error::Canceled.into()
}
