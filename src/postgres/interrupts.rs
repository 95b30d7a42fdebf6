//! Cancel, statement_timeout and termination, while the backend is busy in
//! Rust or in SQLite rather than in PostgreSQL's own loops.

use pgrx::pg_sys;
use pgrx::pg_sys::panic::ErrorReport;

use crate::error::Error;

/// Whether a cancel (or statement_timeout), a termination or a lost client
/// waits: SQLite's progress handler asks this, and stops the statement it
/// runs, which cannot be resumed. Only those: `InterruptPending` alone is
/// also set for what ends nothing (a request to log memory contexts, a
/// ProcSignalBarrier, a parallel worker's message), which must not stop an
/// import.
pub fn pending() -> bool {
    // SAFETY: plain reads of flags the signal handlers set; a stale value
    // only delays the cancel to the next check.
    unsafe {
        pg_sys::InterruptPending != 0
            && (pg_sys::QueryCancelPending != 0
                || pg_sys::ProcDiePending != 0
                || pg_sys::ClientConnectionLost != 0)
    }
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
