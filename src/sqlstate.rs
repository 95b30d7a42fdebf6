//! The SQLSTATEs the extension raises, by name, as PostgreSQL's
//! errcodes.txt names them. pgrx turns a code it does not know into XX000
//! without a word, so a typo would hide the real condition from every
//! client; the test below checks that pgrx knows each one. Pure Rust, so the
//! value mapping can name its codes too.

use std::fmt;

/// A five-character SQLSTATE. Only the constants below exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SqlState(&'static str);

impl SqlState {
    pub const fn code(self) -> &'static str {
        self.0
    }
}

impl fmt::Display for SqlState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// Tests and callers that hold a code as text compare it directly.
impl PartialEq<&str> for SqlState {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

macro_rules! sqlstates {
    ($($(#[$doc:meta])* $name:ident = $code:literal;)*) => {
        $($(#[$doc])* pub const $name: SqlState = SqlState($code);)*
        /// Every code above, for the test that pgrx knows them all.
        #[cfg(test)]
        pub const ALL: &[SqlState] = &[$($name),*];
    };
}

sqlstates! {
    FEATURE_NOT_SUPPORTED = "0A000";
    STRING_DATA_RIGHT_TRUNCATION = "22001";
    NUMERIC_VALUE_OUT_OF_RANGE = "22003";
    NULL_VALUE_NOT_ALLOWED = "22004";
    INVALID_DATETIME_FORMAT = "22007";
    DATETIME_FIELD_OVERFLOW = "22008";
    INVALID_TIME_ZONE_DISPLACEMENT_VALUE = "22009";
    CHARACTER_NOT_IN_REPERTOIRE = "22021";
    INVALID_PARAMETER_VALUE = "22023";
    INVALID_TEXT_REPRESENTATION = "22P02";
    UNTRANSLATABLE_CHARACTER = "22P05";
    NOT_NULL_VIOLATION = "23502";
    FOREIGN_KEY_VIOLATION = "23503";
    UNIQUE_VIOLATION = "23505";
    CHECK_VIOLATION = "23514";
    TRIGGER_PROTOCOL_VIOLATED = "39P01";
    INSUFFICIENT_PRIVILEGE = "42501";
    DATATYPE_MISMATCH = "42804";
    WRONG_OBJECT_TYPE = "42809";
    UNDEFINED_COLUMN = "42703";
    UNDEFINED_TABLE = "42P01";
    INVALID_COLUMN_REFERENCE = "42P10";
    INVALID_NAME = "42602";
    DISK_FULL = "53100";
    STATEMENT_TOO_COMPLEX = "54001";
    OBJECT_NOT_IN_PREREQUISITE_STATE = "55000";
    OBJECT_IN_USE = "55006";
    QUERY_CANCELED = "57014";
    IO_ERROR = "58030";
    UNDEFINED_FILE = "58P01";
    DUPLICATE_FILE = "58P02";
    /// Only for what cannot happen short of a bug: the caller can do nothing.
    INTERNAL_ERROR = "XX000";
    DATA_CORRUPTED = "XX001";
}
