//! One source row to one target row: each SQLite value through the mapping
//! its column's kind names, or the reason it cannot be imported.

use std::borrow::Cow;

use rusqlite::types::ValueRef;
use uuid::Uuid;

use super::catalog::{Column, Kind, Table};
use crate::mapping::{self, text, timestamp::Timestamp};
use crate::sqlstate::{self, SqlState};

/// A value ready for its target column.
#[derive(Clone, Debug, PartialEq)]
pub enum Value<'a> {
    Null,
    /// conversations.id and the legacy text it came from, if any
    Conversation {
        id: Uuid,
        legacy_id: Option<String>,
    },
    Uuid(Uuid),
    BigInt(i64),
    Integer(i32),
    Double(f64),
    Boolean(bool),
    Text(Cow<'a, str>),
    Timestamp(Timestamp),
    Json(Cow<'a, str>),
}

impl Value<'_> {
    /// The value as PostgreSQL text for the column's type (for comparisons by
    /// query parameter); `None` is NULL. A conversation id yields its uuid; its
    /// legacy id is [`Value::legacy_text`].
    pub fn sql_text(&self) -> Option<String> {
        match self {
            Value::Null => None,
            Value::Conversation { id, .. } | Value::Uuid(id) => Some(id.to_string()),
            Value::BigInt(v) => Some(v.to_string()),
            Value::Integer(v) => Some(v.to_string()),
            // Debug prints the shortest text that reads back as the same double.
            Value::Double(v) => Some(format!("{v:?}")),
            Value::Boolean(v) => Some(v.to_string()),
            Value::Text(v) | Value::Json(v) => Some(v.to_string()),
            Value::Timestamp(v) => Some(v.to_string()),
        }
    }

    pub fn legacy_text(&self) -> Option<String> {
        match self {
            Value::Conversation { legacy_id, .. } => legacy_id.clone(),
            _ => None,
        }
    }
}

/// A row's identity in its table, for parents, duplicates and skips.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    Uuid(Uuid),
    Int(i64),
}

impl Key {
    pub fn of(value: &Value<'_>) -> Option<Key> {
        match value {
            Value::Conversation { id, .. } | Value::Uuid(id) => Some(Key::Uuid(*id)),
            Value::BigInt(v) => Some(Key::Int(*v)),
            _ => None,
        }
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Key::Uuid(id) => write!(f, "{id}"),
            Key::Int(id) => write!(f, "{id}"),
        }
    }
}

/// Why one value cannot be imported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub column: Cow<'static, str>,
    pub sqlstate: SqlState,
    pub reason: String,
    /// the offending value, cut for messages
    pub value: String,
}

/// Characters of a value shown in an error message or a reject's reason.
pub const SHOWN_CHARS: usize = 60;

/// The value as a person reads it in an error message.
pub fn show(value: ValueRef<'_>) -> String {
    match value {
        ValueRef::Null => "NULL".into(),
        ValueRef::Integer(v) => v.to_string(),
        ValueRef::Real(v) => format!("{v:?}"),
        ValueRef::Text(bytes) => format!("'{}'", text::cut_bytes(bytes, SHOWN_CHARS)),
        ValueRef::Blob(bytes) => format!("a {}-byte BLOB", bytes.len()),
    }
}

fn problem(
    column: &Column,
    value: ValueRef<'_>,
    sqlstate: SqlState,
    reason: impl Into<String>,
) -> Problem {
    Problem {
        column: column.name.into(),
        sqlstate,
        reason: reason.into(),
        value: show(value),
    }
}

/// Text as SQLite holds it: TEXT, or a BLOB that is UTF-8. NUL bytes and
/// invalid UTF-8 cannot live in a PostgreSQL text value.
fn text_of<'a>(column: &Column, value: ValueRef<'a>) -> Result<Cow<'a, str>, Problem> {
    match value {
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => text::check(bytes)
            .map(Cow::Borrowed)
            .map_err(|err| problem(column, value, err.sqlstate(), err.to_string())),
        // A number written into a column without TEXT affinity stays a number;
        // its decimal text is what the app meant.
        ValueRef::Integer(v) => Ok(Cow::Owned(v.to_string())),
        ValueRef::Real(v) => Ok(Cow::Owned(format!("{v:?}"))),
        ValueRef::Null => Ok(Cow::Borrowed("")),
    }
}

/// Maps one SQLite value to its target column's value.
pub fn map_value<'a>(column: &Column, value: ValueRef<'a>) -> Result<Value<'a>, Problem> {
    if let ValueRef::Null = value {
        if column.not_null {
            return Err(problem(
                column,
                value,
                sqlstate::NOT_NULL_VIOLATION,
                "is NULL, but the column is NOT NULL",
            ));
        }
        return Ok(Value::Null);
    }
    let not_a = |what: &str| {
        problem(
            column,
            value,
            sqlstate::INVALID_TEXT_REPRESENTATION,
            format!("is not {what}"),
        )
    };
    match (column.kind, value) {
        (Kind::ConversationId, _) => {
            let mapped = mapping::conversation_id::map(&text_of(column, value)?);
            Ok(Value::Conversation {
                id: mapped.id,
                legacy_id: mapped.legacy_id,
            })
        }
        (Kind::ConversationRef, _) => Ok(Value::Uuid(
            mapping::conversation_id::map(&text_of(column, value)?).id,
        )),
        (Kind::BigInt, ValueRef::Integer(v)) => Ok(Value::BigInt(v)),
        (Kind::Integer, ValueRef::Integer(v)) => {
            i32::try_from(v).map(Value::Integer).map_err(|_| {
                problem(
                    column,
                    value,
                    sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
                    "does not fit in a 32-bit integer",
                )
            })
        }
        (Kind::BigInt | Kind::Integer, _) => Err(not_a("an integer")),
        (Kind::Double, ValueRef::Real(v)) => Ok(Value::Double(v)),
        // Integers past 2^53 would change as a double.
        (Kind::Double, ValueRef::Integer(v)) if v.unsigned_abs() <= 1 << 53 => {
            Ok(Value::Double(v as f64))
        }
        (Kind::Double, _) => Err(not_a("a number")),
        (Kind::Boolean, ValueRef::Integer(v)) => mapping::boolean(v)
            .map(Value::Boolean)
            .map_err(|err| problem(column, value, err.sqlstate(), err.to_string())),
        (Kind::Boolean, _) => Err(not_a("0 or 1")),
        (Kind::Text { max_chars, allowed }, _) => text_value(column, value, max_chars, allowed),
        (Kind::Timestamp, _) => timestamp_value(column, value),
        (Kind::Json, _) => json_value(column, value),
    }
}

fn text_value<'a>(
    column: &Column,
    value: ValueRef<'a>,
    max_chars: Option<usize>,
    allowed: Option<&'static [&'static str]>,
) -> Result<Value<'a>, Problem> {
    let text = text_of(column, value)?;
    if let Some(max) = max_chars {
        if text.chars().count() > max {
            return Err(problem(
                column,
                value,
                sqlstate::STRING_DATA_RIGHT_TRUNCATION,
                format!("is longer than the {max} characters the column holds"),
            ));
        }
    }
    if let Some(allowed) = allowed {
        if !allowed.contains(&text.as_ref()) {
            return Err(problem(
                column,
                value,
                sqlstate::CHECK_VIOLATION,
                format!("is not one of {}", allowed.join(", ")),
            ));
        }
    }
    Ok(Value::Text(text))
}

fn timestamp_value<'a>(column: &Column, value: ValueRef<'a>) -> Result<Value<'a>, Problem> {
    let parsed = match value {
        ValueRef::Integer(v) => mapping::timestamp::parse_epoch_integer(v).map(Some),
        ValueRef::Real(v) => mapping::timestamp::parse_epoch_real(v).map(Some),
        _ => mapping::timestamp::parse(&text_of(column, value)?),
    };
    match parsed {
        Ok(Some(time)) => Ok(Value::Timestamp(time)),
        Ok(None) => empty(column, value),
        Err(err) => Err(problem(column, value, err.sqlstate(), err.to_string())),
    }
}

fn json_value<'a>(column: &Column, value: ValueRef<'a>) -> Result<Value<'a>, Problem> {
    let text = text_of(column, value)?;
    // '' is what the app's JSON migration wrote for "nothing".
    if text.trim().is_empty() {
        return empty(column, value);
    }
    mapping::json::validate(&text)
        .map_err(|err| problem(column, value, err.sqlstate(), err.to_string()))?;
    Ok(Value::Json(text))
}

/// An empty time or document: NULL, where the column allows it.
fn empty<'a>(column: &Column, value: ValueRef<'_>) -> Result<Value<'a>, Problem> {
    if column.not_null {
        return Err(problem(
            column,
            value,
            sqlstate::NOT_NULL_VIOLATION,
            "is empty, but the column is NOT NULL",
        ));
    }
    Ok(Value::Null)
}

/// Maps every council column of a row (the first `table.columns.len()`
/// columns `row` holds).
pub fn map_row<'a>(table: &Table, row: &'a rusqlite::Row<'_>) -> Result<Vec<Value<'a>>, Problem> {
    let mut values = Vec::with_capacity(table.columns.len());
    for (i, column) in table.columns.iter().enumerate() {
        let value = row.get_ref(i).map_err(|err| Problem {
            column: column.name.into(),
            sqlstate: sqlstate::DATA_CORRUPTED,
            reason: format!("could not be read: {err}"),
            value: String::new(),
        })?;
        values.push(map_value(column, value)?);
    }
    Ok(values)
}

/// The row's key when its key column maps, whether or not the rest does:
/// a rejected row's key still marks its children.
pub fn key_of(table: &Table, row: &rusqlite::Row<'_>) -> Option<Key> {
    let value = row.get_ref(0).ok()?;
    Key::of(&map_value(table.key(), value).ok()?)
}

/// The first `count` values of a source row, as they are; a column that
/// cannot be read is NULL.
pub fn refs<'a>(row: &'a rusqlite::Row<'_>, count: usize) -> Vec<ValueRef<'a>> {
    (0..count)
        .map(|i| row.get_ref(i).unwrap_or(ValueRef::Null))
        .collect()
}

/// A source row's key (its first value) as text, for reports, whether or
/// not it maps.
pub fn source_id(values: &[ValueRef<'_>]) -> Option<String> {
    match values.first()? {
        ValueRef::Null => None,
        ValueRef::Integer(v) => Some(v.to_string()),
        ValueRef::Real(v) => Some(format!("{v:?}")),
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
            Some(String::from_utf8_lossy(bytes).replace('\0', "\u{FFFD}"))
        }
    }
}

/// The source row verbatim, as a JSON object of column → value, for
/// `council_import_rejects.row`. Text that jsonb cannot hold (invalid UTF-8,
/// NUL) and BLOBs are kept byte for byte as `{"hex": …}`.
pub fn verbatim(columns: &[String], values: &[ValueRef<'_>]) -> serde_json::Value {
    let mut object = serde_json::Map::with_capacity(columns.len());
    for (name, value) in columns.iter().zip(values) {
        let value = match *value {
            ValueRef::Null => serde_json::Value::Null,
            ValueRef::Integer(v) => serde_json::Value::from(v),
            ValueRef::Real(v) => serde_json::Number::from_f64(v)
                .map(serde_json::Value::Number)
                .unwrap_or_else(|| serde_json::Value::String(format!("{v:?}"))),
            ValueRef::Text(bytes) => match text::check(bytes) {
                Ok(text) if !text.contains('\0') => serde_json::Value::String(text.to_owned()),
                _ => hex_object(bytes, "text"),
            },
            ValueRef::Blob(bytes) => hex_object(bytes, "blob"),
        };
        object.insert(name.clone(), value);
    }
    serde_json::Value::Object(object)
}

fn hex_object(bytes: &[u8], sqlite_type: &str) -> serde_json::Value {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    serde_json::json!({ "hex": hex, "sqlite_type": sqlite_type })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::council::catalog::by_name;

    fn column(table: &str, name: &str) -> Column {
        let table = by_name(table).expect("table");
        table.columns[table.column_index(name).expect("column")]
    }

    #[test]
    fn values_map_by_their_column_kind() {
        let created = column("messages", "created_at");
        assert_eq!(map_value(&created, ValueRef::Text(b"")), Ok(Value::Null));
        assert!(matches!(
            map_value(&created, ValueRef::Text(b"2026-01-17T10:20:30.123456+00:00")),
            Ok(Value::Timestamp(t)) if t.unix_micros() == 1_768_645_230_123_456
        ));
        assert!(matches!(
            map_value(&created, ValueRef::Text(b"1760000000")),
            Ok(Value::Timestamp(t)) if t.unix_micros() == 1_760_000_000_000_000
        ));
        let bad = map_value(&created, ValueRef::Text(b"yesterday")).err();
        assert_eq!(bad.map(|p| p.sqlstate.code()), Some("22007"));

        let pinned = column("conversations", "is_pinned");
        assert_eq!(
            map_value(&pinned, ValueRef::Integer(1)),
            Ok(Value::Boolean(true))
        );
        assert!(map_value(&pinned, ValueRef::Integer(2)).is_err());

        let count = column("conversations", "message_count");
        let too_big = map_value(&count, ValueRef::Integer(3_000_000_000)).err();
        assert_eq!(too_big.map(|p| p.sqlstate.code()), Some("22003"));
        let id = column("messages", "id");
        assert_eq!(
            map_value(&id, ValueRef::Integer(3_000_000_000)),
            Ok(Value::BigInt(3_000_000_000))
        );
    }

    #[test]
    fn text_constraints_are_checked_before_postgres_sees_them() {
        let role = column("messages", "role");
        let err = map_value(&role, ValueRef::Text(b"system")).err();
        assert_eq!(err.as_ref().map(|p| p.sqlstate.code()), Some("23514"));
        assert_eq!(err.map(|p| p.value), Some("'system'".to_owned()));

        let prefix = column("api_keys", "key_prefix");
        assert!(map_value(&prefix, ValueRef::Text(b"llmc_abcdefg")).is_ok());
        let long = map_value(&prefix, ValueRef::Text(b"llmc_abcdefgh")).err();
        assert_eq!(long.map(|p| p.sqlstate.code()), Some("22001"));

        let content = column("messages", "content");
        let nul = map_value(&content, ValueRef::Text(b"a\0b")).err();
        assert_eq!(nul.map(|p| p.sqlstate.code()), Some("22021"));
        let latin1 = map_value(&content, ValueRef::Text(b"caf\xe9")).err();
        assert_eq!(latin1.map(|p| p.sqlstate.code()), Some("22021"));

        let model = column("stage1_responses", "model");
        let null = map_value(&model, ValueRef::Null).err();
        assert_eq!(null.map(|p| p.sqlstate.code()), Some("23502"));
    }

    #[test]
    fn json_columns_take_json_and_empty_means_null() {
        let parsed = column("stage2_rankings", "parsed_ranking");
        assert_eq!(map_value(&parsed, ValueRef::Text(b"")), Ok(Value::Null));
        assert!(matches!(
            map_value(&parsed, ValueRef::Text(b"[\"Response A\"]")),
            Ok(Value::Json(_))
        ));
        let bad = map_value(&parsed, ValueRef::Text(b"[\"Response A\"")).err();
        assert_eq!(bad.map(|p| p.sqlstate.code()), Some("22P02"));
        let nul = map_value(&parsed, ValueRef::Text(br#"{"a": "\u0000"}"#)).err();
        assert_eq!(nul.map(|p| p.sqlstate.code()), Some("22P05"));
        let labels = column("deliberation_metadata", "label_to_model");
        assert!(map_value(&labels, ValueRef::Text(b"")).is_err());
    }

    #[test]
    fn conversation_ids_keep_their_legacy_text() {
        let id = column("conversations", "id");
        let uuid = map_value(&id, ValueRef::Text(b"6f1c1a52-8d3e-4a57-9a0e-1f4b6c2d9e10"));
        assert!(matches!(
            uuid,
            Ok(Value::Conversation {
                legacy_id: None,
                ..
            })
        ));
        let legacy = map_value(&id, ValueRef::Text(b"import-2025-0042"));
        assert!(
            matches!(legacy, Ok(Value::Conversation { legacy_id: Some(ref l), .. }) if l == "import-2025-0042")
        );
        let reference = column("messages", "conversation_id");
        let own = match legacy {
            Ok(Value::Conversation { id, .. }) => Some(id),
            _ => None,
        };
        assert_eq!(
            map_value(&reference, ValueRef::Text(b"import-2025-0042")).ok(),
            own.map(Value::Uuid)
        );
    }

    #[test]
    fn sql_text_reads_back_as_the_same_value() {
        assert_eq!(
            Value::Double(0.1 + 0.2).sql_text().as_deref(),
            Some("0.30000000000000004")
        );
        assert_eq!(Value::Boolean(false).sql_text().as_deref(), Some("false"));
        assert_eq!(Value::Null.sql_text(), None);
    }

    fn any_value() -> impl proptest::strategy::Strategy<Value = rusqlite::types::Value> {
        use proptest::prelude::*;
        use rusqlite::types::Value as Sql;
        prop_oneof![
            Just(Sql::Null),
            any::<i64>().prop_map(Sql::Integer),
            any::<f64>().prop_map(Sql::Real),
            ".{0,40}".prop_map(Sql::Text),
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(Sql::Blob),
            // text that looks like the app's own values
            "(\\[|\\{|\"|[0-9]{1,12}|-|:|T| |\\+|Z|\\.|,|\\]|\\}|null|true){0,16}"
                .prop_map(Sql::Text),
        ]
    }

    proptest::proptest! {
        // Whatever SQLite holds, mapping answers with a value or a reason; it
        // never panics (a panic in a backend is an XX000 for the DBA).
        #[test]
        fn every_column_maps_any_value_without_panicking(value in any_value(), column in 0usize..80) {
            let columns: Vec<&Column> = crate::council::catalog::TABLES.iter().flat_map(|t| t.columns.iter()).collect();
            let column = columns[column % columns.len()];
            let value_ref = rusqlite::types::ValueRef::from(&value);
            match map_value(column, value_ref) {
                Ok(mapped) => {
                    // what maps also renders as the text PostgreSQL reads back
                    let _ = mapped.sql_text();
                }
                Err(problem) => {
                    proptest::prop_assert_eq!(problem.column, column.name);
                    proptest::prop_assert_eq!(problem.sqlstate.code().len(), 5);
                }
            }
        }
    }
}
