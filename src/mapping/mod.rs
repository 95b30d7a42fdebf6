//! Mapping of SQLite values from council.db to PostgreSQL values, free of pgrx
//! so that every rule can be unit-tested without a server.
//!
//! Each error type has `sqlstate()` giving the code PostgreSQL itself would
//! raise for the same bad input, so the caller can report it faithfully.

// A panic inside a PostgreSQL backend aborts the whole import; keep the
// non-test code provably free of the obvious panicking shortcuts.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

use crate::sqlstate::{self, SqlState};

pub mod conversation_id;
pub mod json;
pub mod jsonb;
pub mod text;
pub mod timestamp;

/// An SQLite INTEGER that should have been 0 or 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BoolError {
    #[error("expected 0 or 1 for a boolean, got {0}")]
    NotZeroOrOne(i64),
}

impl BoolError {
    #[must_use]
    pub fn sqlstate(&self) -> SqlState {
        match self {
            // invalid_text_representation, as for `'2'::boolean`.
            BoolError::NotZeroOrOne(_) => sqlstate::INVALID_TEXT_REPRESENTATION,
        }
    }
}

/// SQLite has no boolean type; the app stores 0 and 1 in INTEGER columns.
pub fn boolean(value: i64) -> Result<bool, BoolError> {
    match value {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(BoolError::NotZeroOrOne(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boolean_zero_and_one() {
        assert_eq!(boolean(0), Ok(false));
        assert_eq!(boolean(1), Ok(true));
    }

    #[test]
    fn boolean_rejects_everything_else() {
        for v in [2, -1, i64::MIN, i64::MAX, 10] {
            let err = boolean(v).unwrap_err();
            assert_eq!(err, BoolError::NotZeroOrOne(v));
            assert_eq!(err.sqlstate(), "22P02");
        }
        assert_eq!(
            boolean(2).unwrap_err().to_string(),
            "expected 0 or 1 for a boolean, got 2"
        );
    }
}
