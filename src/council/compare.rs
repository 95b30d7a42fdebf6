//! Comparing mapped source rows with the target's rows of the same ids:
//! for the import's skip-or-conflict decision, for sync and for verify.
//!
//! Each row is found through the primary key's index and compared column
//! by column in the target's own binary form (`postgres::lookup`): integers,
//! times and uuids as they are stored, text as bytes, jsonb as PostgreSQL
//! compares jsonb. A query per row, or text cast back to each type, cost
//! several times the import itself.
//!
//! Sync's updates go out in batches of bounded size ([`Batch`]): one UPDATE
//! per batch, the rows passed as one text array per column, cast to each
//! column's type.

use std::collections::HashSet;

use council_app::QuotedIdentifier;
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;

use super::catalog::{Kind, Table};
use super::decision::Existing;
use super::row::{Key, Value};
use crate::mapping::jsonb::Document;
use crate::postgres::lookup::{KeyDatum, PrimaryKeyLookup};
use crate::postgres::stored_row::StoredRow;
use crate::postgres::{backend, spi};

/// Rows per batch of updates.
const BATCH_ROWS: usize = 4096;
/// Text per batch: the bound on the backend memory a batch holds (twice:
/// the strings, then the arrays made of them). Below the default work_mem,
/// so that unnest's result stays in memory rather than in a temporary file.
const BATCH_BYTES: usize = 2 << 20;

/// How one source row compares with the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Found {
    pub existing: Existing,
    /// Its current version was written by an llm_council import or sync
    /// (known only with a [`Provenance`], for a row that differs; true
    /// otherwise).
    pub by_import: bool,
}

/// The transactions that wrote rows as imports or syncs, for sync's guard:
/// a target row whose `xmin` is none of them, and is not older than the
/// baseline, was written by someone else.
#[derive(Clone, Debug, Default)]
pub struct Provenance {
    pub transactions: HashSet<pg_sys::TransactionId>,
    /// rows older than this transaction predate the record (the update to
    /// 0.2.0) and count as imported
    pub baseline: Option<pg_sys::TransactionId>,
}

impl Provenance {
    fn wrote(&self, xmin: pg_sys::TransactionId) -> bool {
        self.transactions.contains(&xmin)
            || self
                .baseline
                .is_some_and(|baseline| backend::transaction_precedes(xmin, baseline))
    }
}

/// One table's rows, found by id and compared.
pub struct Target {
    table: &'static Table,
    lookup: PrimaryKeyLookup,
    provenance: Option<Provenance>,
}

impl Target {
    pub fn open(
        relid: pg_sys::Oid,
        table: &'static Table,
        provenance: Option<Provenance>,
    ) -> Result<Target, ErrorReport> {
        let mut columns: Vec<&str> = table.columns.iter().map(|c| c.name).collect();
        if table.key().kind == Kind::ConversationId {
            columns.push("legacy_id");
        }
        let key = match table.key().kind {
            Kind::ConversationId => KeyDatum::Uuid([0; 16]),
            _ => KeyDatum::BigInt(0),
        };
        Ok(Target {
            table,
            lookup: PrimaryKeyLookup::open(relid, key, &columns)?,
            provenance,
        })
    }

    /// How a mapped row compares with the target's row of its id; None when
    /// the target has no such row (or the row has no usable id).
    pub fn compare(&mut self, values: &[Value<'_>]) -> Option<Found> {
        let key = values.first().and_then(Key::of)?;
        let (table, provenance) = (self.table, &self.provenance);
        self.lookup.find(datum(key), |row| {
            if same(table, values, row) {
                // Left as it is: who wrote it does not matter.
                Found {
                    existing: Existing::Identical,
                    by_import: true,
                }
            } else {
                Found {
                    existing: Existing::Different,
                    by_import: provenance.as_ref().is_none_or(|p| p.wrote(row.xmin())),
                }
            }
        })
    }

    /// Whether the target has a row of this id.
    pub fn has(&mut self, key: Key) -> bool {
        self.lookup.find(datum(key), |_| ()).is_some()
    }

    /// Whether an import wrote the current version of the target's row of
    /// this id; None when there is no such row.
    pub fn written_by_import(&mut self, key: Key) -> Option<bool> {
        let provenance = &self.provenance;
        self.lookup.find(datum(key), |row| {
            provenance.as_ref().is_none_or(|p| p.wrote(row.xmin()))
        })
    }

    /// The target's rows of ids never compared (in a sync: the rows the
    /// file lacks); None when that is not known, because ids came out of
    /// order or are uuids.
    pub fn never_compared(&mut self) -> Option<Vec<Key>> {
        Some(
            self.lookup
                .unasked_keys()?
                .into_iter()
                .map(Key::Int)
                .collect(),
        )
    }

    pub fn close(self) {
        self.lookup.close();
    }
}

fn datum(key: Key) -> KeyDatum {
    match key {
        Key::Int(id) => KeyDatum::BigInt(id),
        Key::Uuid(id) => KeyDatum::Uuid(*id.as_bytes()),
    }
}

/// Every column but the id, and a conversation's legacy id, equal.
fn same(table: &Table, values: &[Value<'_>], row: &StoredRow<'_>) -> bool {
    let columns_equal = values
        .iter()
        .enumerate()
        .skip(1)
        .all(|(i, value)| equal(value, row, i));
    match values.first() {
        Some(Value::Conversation { legacy_id, .. }) => {
            columns_equal
                && row.text(table.columns.len()) == legacy_id.as_deref().map(str::as_bytes)
        }
        _ => columns_equal,
    }
}

/// A value and the target's column `i`, equal as `IS NOT DISTINCT FROM`
/// would find them.
fn equal(value: &Value<'_>, row: &StoredRow<'_>, i: usize) -> bool {
    match value {
        Value::Null => row.is_null(i),
        Value::Conversation { id, .. } | Value::Uuid(id) => row.uuid(i) == Some(*id.as_bytes()),
        Value::BigInt(v) => row.int8(i) == Some(*v),
        Value::Integer(v) => row.int4(i) == Some(*v),
        // float8 equality: NaN equals NaN, and -0 equals 0.
        Value::Double(v) => row
            .float8(i)
            .is_some_and(|t| t == *v || (t.is_nan() && v.is_nan())),
        Value::Boolean(v) => row.bool(i) == Some(*v),
        Value::Text(v) => row.text(i) == Some(v.as_bytes()),
        Value::Timestamp(v) => row.int8(i) == Some(v.postgres_micros()),
        // In jsonb's binary form first; PostgreSQL's own comparison for
        // what that cannot tell, or finds different (numbers equal in value
        // but not in spelling, 1.5 and 1.50, are equal jsonb).
        Value::Json(v) => row.jsonb_container(i).is_some_and(|stored| {
            Document::parse(v).and_then(|document| document.matches(stored)) == Some(true)
                || row.jsonb_equals(i, v) == Some(true)
        }),
    }
}

/// Rows to be written over the target's, and the query that does it.
pub struct Batch {
    update: String,
    /// one array per query parameter: the table's columns, then a
    /// conversation's legacy id
    columns: Vec<Vec<Option<String>>>,
    len: usize,
    bytes: usize,
}

impl Batch {
    pub fn new(schema: &QuotedIdentifier, table: &Table) -> Batch {
        let parameters = parameter_count(table);
        Batch {
            update: update_query(schema, table),
            columns: vec![Vec::new(); parameters],
            len: 0,
            bytes: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the batch should be written before it takes more rows.
    pub fn is_full(&self) -> bool {
        self.len >= BATCH_ROWS || self.bytes >= BATCH_BYTES
    }

    /// Adds a mapped row.
    pub fn push(&mut self, values: &[Value<'_>]) {
        let mut texts: Vec<Option<String>> = values.iter().map(Value::sql_text).collect();
        if let Some(first @ Value::Conversation { .. }) = values.first() {
            texts.push(first.legacy_text());
        }
        texts.resize(self.columns.len(), None);
        for (column, text) in self.columns.iter_mut().zip(texts) {
            self.bytes += text.as_ref().map_or(0, String::len);
            column.push(text);
        }
        self.len += 1;
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Writes the batch's rows over the target's; returns how many rows
    /// changed.
    pub fn update(&self) -> Result<u64, ErrorReport> {
        if self.len == 0 {
            return Ok(0);
        }
        spi::write(&self.update, &self.arguments())
    }

    pub fn clear(&mut self) {
        for column in &mut self.columns {
            column.clear();
        }
        self.len = 0;
        self.bytes = 0;
    }

    /// One text[] per column, made from the strings where they are.
    fn arguments(&self) -> Vec<DatumWithOid<'static>> {
        self.columns
            .iter()
            .map(|column| {
                let texts: Vec<Option<&str>> = column.iter().map(Option::as_deref).collect();
                texts.into()
            })
            .collect()
    }
}

/// The table's columns and, for conversations, the legacy id.
fn parameter_count(table: &Table) -> usize {
    table.columns.len() + usize::from(table.key().kind == Kind::ConversationId)
}

/// `unnest($1::text[], …) AS s(c1, …)`: the batch as a relation.
fn batch_relation(table: &Table) -> String {
    let parameters = parameter_count(table);
    let arrays: Vec<String> = (1..=parameters).map(|i| format!("${i}::text[]")).collect();
    let names: Vec<String> = (1..=parameters).map(|i| format!("c{i}")).collect();
    // unnest of several arrays is grammar (ROWS FROM), not a function one
    // may qualify; the functions run with search_path pinned to pg_catalog.
    format!("unnest({}) AS s({})", arrays.join(", "), names.join(", "))
}

/// Each target column (besides the id) with the batch's value for it, cast
/// to the column's type.
fn column_pairs(table: &Table) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = table
        .columns
        .iter()
        .enumerate()
        .skip(1)
        .map(|(i, column)| {
            (
                QuotedIdentifier::new(column.name).to_string(),
                format!("s.c{}::{}", i + 1, column.kind.sql_type()),
            )
        })
        .collect();
    if table.key().kind == Kind::ConversationId {
        pairs.push((
            "legacy_id".into(),
            format!("s.c{}", table.columns.len() + 1),
        ));
    }
    pairs
}

fn join_condition(table: &Table) -> String {
    format!("t.id = s.c1::{}", table.key().kind.sql_type())
}

/// `UPDATE t SET a = s.c2::…, … FROM <batch> WHERE t.id = s.c1::…`: the
/// batch's rows, written over the target's.
fn update_query(schema: &QuotedIdentifier, table: &Table) -> String {
    let assignments: Vec<String> = column_pairs(table)
        .into_iter()
        .map(|(name, value)| format!("{name} = {value}"))
        .collect();
    format!(
        "UPDATE {} t SET {} FROM {} WHERE {}",
        QuotedIdentifier::qualified(schema, table.name),
        assignments.join(", "),
        batch_relation(table),
        join_condition(table),
    )
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    /// The comparison trusts `Document::matches` to read jsonb's binary
    /// form as PostgreSQL lays it out; PostgreSQL is the judge.
    #[pg_test]
    fn a_document_matches_what_postgres_stores_for_it_and_nothing_else() {
        let mut documents = vec![
            r#"{"model": "google/gemini-1.5-pro", "average_rank": 1.25, "rankings_count": 4, "borda_score": 15}"#.to_owned(),
            r#"{"owner": "zo\u00eb@example.com", "team": "data", "x": {"b": [1, 2.50, 0.0, -3], "a": null}}"#.to_owned(),
            r#"{"a":1,"b":2,"a":3}"#.to_owned(),
            r#" [ "\ud83d\ude00", "\/", "\u0001\u001f\u007f", "\b\f\n\r\t\"\\" ] "#.to_owned(),
            r#"{"\u00e9": 1, "e": 2, "ee": 3, "": 4}"#.to_owned(),
            "true".to_owned(),
            "null".to_owned(),
            "\"plain\"".to_owned(),
            "-12.000".to_owned(),
            "0.000042".to_owned(),
            "123456789012345678901234567890.123456789".to_owned(),
            "[]".to_owned(),
            "{}".to_owned(),
            "[{}, [], [[]], {\"a\": {}}, false]".to_owned(),
        ];
        // Past 32 children jsonb stores offsets, not lengths, in some entries.
        documents.push(format!(
            "[{}]",
            (0..70)
                .map(|i| format!("\"item {i}\""))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        documents.push(format!(
            "{{{}}}",
            (0..70)
                .map(|i| format!("\"key {i:03}\": [{i}.5, \"v\"]"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        Spi::run("CREATE TEMP TABLE documents (id int, doc jsonb)").expect("table");
        for (id, document) in documents.iter().enumerate() {
            Spi::run_with_args(
                "INSERT INTO documents VALUES ($1, $2::jsonb)",
                &[(id as i32).into(), document.as_str().into()],
            )
            .expect("insert");
        }
        for (id, document) in documents.iter().enumerate() {
            let changed = document.replacen('1', "7", 1);
            let judged = stored_matches(id, &[document.as_str(), changed.as_str()]);
            assert_eq!(judged[0], Some(true), "{document}");
            // Never the same where PostgreSQL finds them different (it may
            // say different where jsonb is equal by value: the caller then
            // asks PostgreSQL).
            let equal = Spi::get_one_with_args::<bool>(
                "SELECT $1::jsonb = $2::jsonb",
                &[document.as_str().into(), changed.as_str().into()],
            )
            .expect("jsonb_eq")
            .expect("not null");
            if !equal {
                assert_eq!(judged[1], Some(false), "{changed}");
            }
        }
    }

    /// Whether the stored document of `id` matches each of `texts`.
    fn stored_matches(id: usize, texts: &[&str]) -> Vec<Option<bool>> {
        use crate::mapping::jsonb::Document;
        let relid = Spi::get_one::<pg_sys::Oid>("SELECT 'documents'::regclass::oid")
            .expect("oid")
            .expect("documents");
        // A snapshot that sees the rows inserted since the statement began.
        let snapshot = crate::postgres::backend::ActiveSnapshot::take();
        let mut scan = crate::postgres::scan::TableScan::open(relid, &["id", "doc"]).expect("scan");
        let mut judged = Vec::new();
        while let Some(found) = scan.next(|row| {
            (row.int4(0) == Some(id as i32)).then(|| {
                texts
                    .iter()
                    .map(|text| {
                        Document::parse(text).and_then(|d| d.matches(row.jsonb_container(1)?))
                    })
                    .collect::<Vec<_>>()
            })
        }) {
            if let Some(found) = found {
                judged = found;
            }
        }
        scan.close();
        snapshot.end();
        judged
    }

    #[test]
    fn a_conversation_update_writes_its_legacy_id_too() {
        use super::{update_query, QuotedIdentifier};
        use crate::council::catalog::by_name;
        let table = by_name("conversations").unwrap_or_else(|| unreachable!());
        let schema = QuotedIdentifier::new("public");
        let update = update_query(&schema, table);
        assert!(update.contains("legacy_id = s.c8"), "{update}");
        assert!(update.contains("$8::text[]"), "{update}");
        assert!(update.ends_with("t.id = s.c1::uuid"), "{update}");
    }
}
