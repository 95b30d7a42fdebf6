//! Notices (and debug lines) sent from Rust that holds resources.
//!
//! After a message below ERROR has gone out, PostgreSQL's `errfinish` checks for
//! interrupts, so a cancel or statement_timeout that waits is raised from
//! inside the notice. pgrx's `notice!` calls `errfinish` outside its guard:
//! that ERROR would jump over the caller's Rust frames and skip every
//! `Drop` on them (an export's unfinished file stayed on disk, an import's
//! thread would not be joined). Sent from here, the ERROR becomes a Rust
//! panic that unwinds those frames, as an ERROR from any other call into
//! the server does, and is raised again at the function's edge.

use pgrx::pg_sys;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};

/// Sends `message` to the client as a NOTICE (a progress line, say).
#[track_caller]
pub fn notice(message: impl Into<String>) {
    send(PgLogLevel::NOTICE, plain(message.into()));
}

/// Logs `message` at DEBUG1, where `log_min_messages` asks for it.
#[track_caller]
pub fn debug1(message: impl Into<String>) {
    send(PgLogLevel::DEBUG1, plain(message.into()));
}

/// Sends `report` (its SQLSTATE, message, detail and hint) at `level`,
/// which is below ERROR.
pub fn send(level: PgLogLevel, report: ErrorReport) {
    debug_assert!(level < PgLogLevel::ERROR, "an ERROR is returned, not sent");
    // SAFETY: the closure only reports, below ERROR; an ERROR raised inside
    // it is caught by the guard and becomes a panic.
    unsafe { pg_sys::ffi::pg_guard_ffi_boundary(|| report.report(level)) }
}

#[track_caller]
fn plain(message: String) -> ErrorReport {
    ErrorReport::new(
        PgSqlErrorCode::ERRCODE_SUCCESSFUL_COMPLETION,
        message,
        "llm_council",
    )
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use std::cell::Cell;
    use std::panic::AssertUnwindSafe;

    use pgrx::prelude::*;

    struct SetWhenDropped<'a>(&'a Cell<bool>);

    impl Drop for SetWhenDropped<'_> {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }

    #[pg_test]
    fn a_cancel_raised_by_a_notice_unwinds_the_callers_frames() {
        let dropped = Cell::new(false);
        let canceled = PgTryBuilder::new(AssertUnwindSafe(|| {
            let _held = SetWhenDropped(&dropped);
            // What pg_cancel_backend's signal handler sets.
            // SAFETY: plain writes of the flags, in the backend's thread.
            unsafe {
                pg_sys::QueryCancelPending = 1;
                pg_sys::InterruptPending = 1;
            }
            super::notice("llm_council: a notice with a cancel waiting");
            false
        }))
        .catch_when(PgSqlErrorCode::ERRCODE_QUERY_CANCELED, |_| true)
        .execute();
        assert!(canceled, "the notice raised the waiting cancel");
        assert!(dropped.get(), "the caller's frame was unwound");
    }
}
