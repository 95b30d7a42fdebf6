//! Turning each module's error enum into a PostgreSQL error with the right
//! SQLSTATE, instead of the XX000 a bare `error!()` would give.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::PgSqlErrorCode;

use crate::sqlstate::{self, SqlState};

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

/// Every error the extension raises of its own, with its SQLSTATE, DETAIL
/// and HINT. The value mapping's, the file's and the cache key's errors
/// have their own enums and conversions.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the llm_council extension is not installed in this database")]
    ExtensionMissing,
    #[error("the council table {0} is missing")]
    CouncilTableMissing(&'static str),
    #[error("the table response_cache is missing")]
    CacheTableMissing,
    #[error("llm_council needs a database with encoding UTF8")]
    NotUtf8Database,
    /// `object` lacks `privilege`, which the caller needs because `why`.
    #[error("permission denied for {object}")]
    PermissionDenied {
        object: String,
        privilege: String,
        why: String,
    },
    #[error("permission denied to read a server file with {0}")]
    ServerFileDenied(&'static str),
    /// The searching role may not read the search's postings.
    #[error("permission denied for table {0}")]
    SearchNotGranted(&'static str),
    #[error("{function} does not support row-level security on table {table}")]
    RowLevelSecurity {
        function: &'static str,
        table: &'static str,
    },
    #[error("permission denied for table response_cache")]
    CacheEventDenied {
        event: String,
        privilege: &'static str,
    },
    #[error("unknown cache event \"{0}\"")]
    UnknownCacheEvent(String),
    #[error("models must not contain NULL")]
    NullModel,
    #[error("unknown import mode \"{0}\"")]
    UnknownMode(String),
    #[error("council_import: table {table} has columns the council schema does not: {}", .columns.join(", "))]
    ExtraColumns {
        table: &'static str,
        columns: Vec<String>,
    },
    #[error("this transaction has uploaded no file")]
    NoUpload,
    #[error("could not store the upload in the server's temporary space: {error}")]
    UploadSpaceFull { error: std::io::Error, stored: u64 },
    #[error("council_upload_stream_append() appends rows inserted into council_upload_stream")]
    NotUploadTrigger,
    #[error("council_upload_stream holds one bytea column: {0}")]
    UploadColumn(String),
    #[error("llm_council: canceling statement due to user request")]
    Canceled,
    #[error("council_search_score: the document must be a tsvector")]
    NotTsVector,
    #[error("council_search_score: the document is not a well-formed tsvector: {0}")]
    MalformedTsVector(&'static str),
    /// council_search_score's query is not what council_search_prepare made.
    #[error("council_search_score: the query is not one council_search_prepare made")]
    MalformedSearchQuery,
    #[error("council_search_snippet: the query is not a well-formed tsquery")]
    MalformedTsQuery,
    #[error("council_search_snippet: the query must be a tsquery")]
    NotTsQuery,
    #[error("council_search_postings: a list is not well-formed: {0}")]
    MalformedPostings(&'static str),
    /// The postings hold whole lexemes; council_search never asks for a prefix.
    #[error("council_search_matches: the query has a prefix operand (word:*), which the postings cannot match")]
    PrefixQuery,
    /// A query of the extension's own failed: nothing the caller did.
    #[error("llm_council: internal query failed: {0}")]
    InternalQuery(String),
    #[error("council_import: COPY into {table} inserted {inserted} rows, expected {expected}")]
    CopyCount {
        table: &'static str,
        inserted: u64,
        expected: i64,
    },
    /// Sync's guard: a row to be overwritten or deleted was written by
    /// someone other than an import or sync.
    #[error("council_import: a sync would {action} {table} row {id}, which was written in PostgreSQL since the last import or sync")]
    SyncWouldErase {
        table: &'static str,
        id: String,
        action: &'static str,
    },
    /// Sync's guard: the database's conversations are not the file's.
    #[error("council_import: the file has none of the database's {held} conversations; a sync would delete them all")]
    SyncOtherDeployment { held: usize },
    #[error("council_import: {statement} of {table} changed {changed} rows, expected {expected}")]
    ChangedCount {
        statement: &'static str,
        table: &'static str,
        changed: u64,
        expected: usize,
    },
}

impl Error {
    pub fn sqlstate(&self) -> SqlState {
        match self {
            Error::ExtensionMissing | Error::NoUpload => sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
            Error::CouncilTableMissing(_) | Error::CacheTableMissing => sqlstate::UNDEFINED_TABLE,
            Error::NotUtf8Database => sqlstate::CHARACTER_NOT_IN_REPERTOIRE,
            Error::PermissionDenied { .. }
            | Error::SearchNotGranted(_)
            | Error::ServerFileDenied(_)
            | Error::CacheEventDenied { .. } => sqlstate::INSUFFICIENT_PRIVILEGE,
            Error::RowLevelSecurity { .. } => sqlstate::FEATURE_NOT_SUPPORTED,
            Error::UnknownCacheEvent(_) | Error::UnknownMode(_) => {
                sqlstate::INVALID_PARAMETER_VALUE
            }
            Error::NullModel => sqlstate::NULL_VALUE_NOT_ALLOWED,
            Error::ExtraColumns { .. } => sqlstate::INVALID_COLUMN_REFERENCE,
            Error::UploadSpaceFull { .. } => sqlstate::DISK_FULL,
            Error::NotUploadTrigger => sqlstate::TRIGGER_PROTOCOL_VIOLATED,
            Error::UploadColumn(_) | Error::NotTsVector | Error::NotTsQuery => {
                sqlstate::DATATYPE_MISMATCH
            }
            Error::MalformedTsVector(_) | Error::MalformedTsQuery | Error::MalformedPostings(_) => {
                sqlstate::DATA_CORRUPTED
            }
            Error::PrefixQuery => sqlstate::FEATURE_NOT_SUPPORTED,
            Error::MalformedSearchQuery => sqlstate::INVALID_PARAMETER_VALUE,
            Error::Canceled => sqlstate::QUERY_CANCELED,
            Error::SyncWouldErase { .. } | Error::SyncOtherDeployment { .. } => {
                sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE
            }
            Error::InternalQuery(_) | Error::CopyCount { .. } | Error::ChangedCount { .. } => {
                sqlstate::INTERNAL_ERROR
            }
        }
    }

    pub fn detail(&self) -> Option<String> {
        match self {
            Error::PermissionDenied { object, privilege, why } => {
                Some(format!("{privilege} on {object} is missing: {why}"))
            }
            Error::ServerFileDenied(_) => Some("Only roles with privileges of the \"pg_read_server_files\" role may read server files.".into()),
            Error::RowLevelSecurity { .. } => Some("the import writes through COPY's machinery, and the export and the search's own tables are read below the executor, so none could apply the table's policies".into()),
            Error::SearchNotGranted(_) => Some("council_search runs with the caller's rights, and reads the search's own tables".into()),
            Error::CacheEventDenied { event, privilege } => {
                Some(format!("counting a {event} needs {privilege} on response_cache"))
            }
            Error::ExtraColumns { .. } => {
                Some("their values have no place in PostgreSQL and would be lost".into())
            }
            Error::NoUpload => {
                Some("an upload lives until the end of the transaction that sent it".into())
            }
            Error::UploadSpaceFull { stored, .. } => Some(format!("{stored} bytes were stored")),
            Error::SyncWouldErase { table, id, .. } => Some(format!(
                "table {table}, row id {id}: its current version was not written by any import or sync recorded in council_imports, so the app (or someone) wrote it in PostgreSQL, and the file does not have it as it is"
            )),
            Error::SyncOtherDeployment { .. } => Some(
                "a file of the deployment this database was imported from shares its conversations".into(),
            ),
            _ => None,
        }
    }

    pub fn hint(&self) -> Option<String> {
        let hint = match self {
            Error::CouncilTableMissing(_) => {
                "ALTER EXTENSION llm_council UPDATE, or re-create the table from a dump"
            }
            Error::NotUtf8Database => "create the database with ENCODING 'UTF8'",
            Error::PermissionDenied { .. } => {
                "council_import needs SELECT and INSERT on the council tables, UPDATE, DELETE or \
                 TRUNCATE on them for its lock (as LOCK TABLE … IN SHARE ROW EXCLUSIVE MODE does), \
                 and UPDATE on their identity sequences; council_verify and uploads need SELECT"
            }
            Error::ServerFileDenied(function) => {
                return Some(format!("upload the file instead (council-loader does): council_upload, then {function}_upload()"))
            }
            Error::RowLevelSecurity { .. } => "run it as the tables' owner or a role with BYPASSRLS",
            Error::CacheEventDenied { .. } => {
                "the cache functions count their own events; there is no need to call this"
            }
            Error::UnknownCacheEvent(_) => "the events are hit, miss, eviction and expiration",
            Error::NullModel => "pass the model names the app deliberated with",
            Error::UnknownMode(_) => "mode is 'strict' (stop at the first bad row), 'quarantine' (keep bad rows in council_import_rejects) or 'sync' (make the tables equal to the file)",
            Error::SyncWouldErase { .. } => "sync is for catching up before the cutover; once the app writes to PostgreSQL the file is no longer the whole truth. Compare with council_verify, or add only the file's new rows with mode => 'quarantine'",
            Error::SyncOtherDeployment { .. } => "check the file's path; to replace the data with another deployment's, TRUNCATE the council tables and import",
            Error::ExtraColumns { .. } => "run with mode => 'quarantine' to import the rows without them (a WARNING counts what is left out)",
            Error::NoUpload => "in one transaction: SELECT council_upload(chunk) for each piece of the file, then SELECT * FROM council_import_upload()",
            Error::UploadSpaceFull { .. } => {
                "free space in the data directory's base/pgsql_tmp or a temp_tablespaces entry"
            }
            Error::MalformedPostings(_) => {
                "the postings are the only copy of the documents they hold: SELECT council_search_reindex() parses them again from the tables"
            }
            Error::PrefixQuery => "search with council_search, which matches whole words",
            Error::SearchNotGranted(_) => {
                "GRANT SELECT ON council_search_documents, council_search_postings, \
                 council_search_statistics TO the searching role"
            }
            _ => return None,
        };
        Some(hint.into())
    }
}

impl From<Error> for ErrorReport {
    #[track_caller]
    fn from(err: Error) -> ErrorReport {
        report(err.sqlstate(), err.to_string(), err.detail(), err.hint())
    }
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
