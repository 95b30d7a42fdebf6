//! Turning each module's error enum into a PostgreSQL error with the right
//! SQLSTATE, instead of the XX000 a bare `error!()` would give.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::PgSqlErrorCode;

use crate::sqlstate::SqlState;

/// The error code PostgreSQL packs from a five-character SQLSTATE such as
/// "22P02" (its MAKE_SQLSTATE macro).
pub fn error_code(sqlstate: &str) -> PgSqlErrorCode {
    let packed = sqlstate
        .bytes()
        .take(5)
        .enumerate()
        .fold(0i32, |code, (i, c)| {
            code + ((i32::from(c.wrapping_sub(b'0')) & 0x3F) << (6 * i))
        });
    PgSqlErrorCode::from(packed)
}

/// An ERROR with a SQLSTATE, a message for people, and optional DETAIL and HINT.
#[track_caller]
pub fn report(
    sqlstate: SqlState,
    message: impl Into<String>,
    detail: Option<String>,
    hint: Option<String>,
) -> ErrorReport {
    let mut report = ErrorReport::new(error_code(sqlstate.code()), message.into(), "llm_council");
    if let Some(detail) = detail {
        report = report.set_detail(detail);
    }
    if let Some(hint) = hint {
        report = report.set_hint(hint);
    }
    report
}

#[cfg(test)]
mod tests {
    use super::error_code;
    use pgrx::PgSqlErrorCode;

    #[test]
    fn sqlstates_map_to_postgres_error_codes() {
        assert_eq!(
            error_code("22P02"),
            PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION
        );
        assert_eq!(
            error_code("22007"),
            PgSqlErrorCode::ERRCODE_INVALID_DATETIME_FORMAT
        );
        assert_eq!(
            error_code("23503"),
            PgSqlErrorCode::ERRCODE_FOREIGN_KEY_VIOLATION
        );
        assert_eq!(
            error_code("42501"),
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE
        );
        assert_eq!(error_code("58P01"), PgSqlErrorCode::ERRCODE_UNDEFINED_FILE);
        assert_eq!(error_code("57014"), PgSqlErrorCode::ERRCODE_QUERY_CANCELED);
    }

    /// pgrx maps a code it does not know to XX000: each named code must
    /// come back as itself.
    #[test]
    fn pgrx_knows_every_code_the_extension_raises() {
        for sqlstate in crate::sqlstate::ALL {
            let code = error_code(sqlstate.code());
            let internal = code == PgSqlErrorCode::ERRCODE_INTERNAL_ERROR;
            assert_eq!(
                internal,
                *sqlstate == crate::sqlstate::INTERNAL_ERROR,
                "{sqlstate} became {code:?}"
            );
        }
    }

    #[test]
    fn an_unknown_code_would_become_xx000() {
        assert_eq!(error_code("ZZ999"), PgSqlErrorCode::ERRCODE_INTERNAL_ERROR);
    }
}
