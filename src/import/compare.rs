//! Comparing mapped source rows with the target's rows of the same ids, in
//! bulk: for the import's skip-or-conflict decision, for sync's updates and
//! for verify.
//!
//! Rows gather in a [`Batch`] of bounded size; one query per batch joins
//! them, passed as one text array per column and cast to each column's type
//! (so jsonb compares as jsonb and times as times), with the target by its
//! primary key. A row per query would cost a round through the executor
//! each; a batch of thousands costs one.

use council_app::QuotedIdentifier;
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;

use super::decision::Existing;
use super::row::Value;
use super::tables::{Kind, Table};
use crate::postgres::spi;

/// Rows per batch: enough to make the query's own cost vanish.
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
    /// (asked only by sync, whose guard needs it; true otherwise).
    pub by_import: bool,
}

/// The transactions that wrote rows as imports or syncs, for sync's guard:
/// a target row whose `xmin` is none of them, and is not older than the
/// baseline, was written by someone else.
#[derive(Clone, Debug, Default)]
pub struct Provenance {
    pub transactions: Vec<String>,
    /// rows older than this transaction predate the record (the update to
    /// 0.2.0) and count as imported
    pub baseline: Option<String>,
}

/// Rows waiting for their comparison, and the queries that compare and
/// update them.
pub struct Batch {
    compare: String,
    update: String,
    provenance: Option<Provenance>,
    /// one array per query parameter: the table's columns, then a
    /// conversation's legacy id
    columns: Vec<Vec<Option<String>>>,
    len: usize,
    bytes: usize,
}

impl Batch {
    /// `provenance`: also ask who wrote each target row (see [`Found`]).
    pub fn new(schema: &QuotedIdentifier, table: &Table, provenance: Option<Provenance>) -> Batch {
        let parameters = parameter_count(table);
        Batch {
            compare: compare_query(schema, table, provenance.is_some()),
            update: update_query(schema, table),
            provenance,
            columns: vec![Vec::new(); parameters],
            len: 0,
            bytes: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the batch should be compared before it takes more rows.
    pub fn is_full(&self) -> bool {
        self.len >= BATCH_ROWS || self.bytes >= BATCH_BYTES
    }

    /// Adds a mapped row; its index in the batch is the order of pushes.
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

    /// Adds a row known only by its id, for verify: whether the target has
    /// the id.
    pub fn push_id(&mut self, id: String) {
        self.bytes += id.len();
        let mut texts = std::iter::once(Some(id));
        for column in &mut self.columns {
            column.push(texts.next().flatten());
        }
        self.len += 1;
    }

    /// Compares every row of the batch, in push order: None where the target
    /// has no row of that id.
    pub fn compare(&self) -> Result<Vec<Option<Found>>, ErrorReport> {
        let mut found = vec![None; self.len];
        if self.len == 0 {
            return Ok(found);
        }
        let mut args = self.arguments();
        if let Some(provenance) = &self.provenance {
            args.push(provenance.transactions.clone().into());
            args.push(provenance.baseline.clone().into());
        }
        Spi::connect(|client| {
            for row in client.select(&self.compare, None, &args)? {
                let n = row.get::<i64>(1)?.unwrap_or(0);
                let same = row.get::<bool>(2)?.unwrap_or(false);
                let by_import = row.get::<bool>(3)?.unwrap_or(false);
                let slot = usize::try_from(n - 1).ok().and_then(|i| found.get_mut(i));
                if let Some(slot) = slot {
                    *slot = Some(Found {
                        existing: if same {
                            Existing::Identical
                        } else {
                            Existing::Different
                        },
                        by_import,
                    });
                }
            }
            Ok::<_, pgrx::spi::Error>(())
        })
        .map_err(spi::internal_query_failed)?;
        Ok(found)
    }

    /// Overwrites the target's rows with the batch's rows at `indexes` (in
    /// push order); returns how many rows changed.
    pub fn update(&self, indexes: &[usize]) -> Result<u64, ErrorReport> {
        if indexes.is_empty() {
            return Ok(0);
        }
        let ordinals: Vec<i64> = indexes
            .iter()
            .filter_map(|i| i64::try_from(*i + 1).ok())
            .collect();
        let mut args = self.arguments();
        args.push(ordinals.into());
        spi::write(&self.update, &args)
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

/// `unnest($1::text[], …) WITH ORDINALITY AS s(c1, …, n)`: the batch as a
/// relation, each row numbered in push order.
fn batch_relation(table: &Table) -> String {
    let parameters = parameter_count(table);
    let arrays: Vec<String> = (1..=parameters).map(|i| format!("${i}::text[]")).collect();
    let names: Vec<String> = (1..=parameters).map(|i| format!("c{i}")).collect();
    // unnest of several arrays is grammar (ROWS FROM), not a function one
    // may qualify; the functions run with search_path pinned to pg_catalog.
    format!(
        "unnest({}) WITH ORDINALITY AS s({}, n)",
        arrays.join(", "),
        names.join(", ")
    )
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

/// `SELECT s.n, ROW(t.a, …) IS NOT DISTINCT FROM ROW(s.c2::…, …), <written
/// by an import> FROM <batch> JOIN t ON t.id = s.c1::…`
pub fn compare_query(schema: &QuotedIdentifier, table: &Table, provenance: bool) -> String {
    let pairs = column_pairs(table);
    let target: Vec<String> = pairs.iter().map(|(name, _)| format!("t.{name}")).collect();
    let source: Vec<String> = pairs.iter().map(|(_, value)| value.clone()).collect();
    let by_import = if provenance {
        written_by_import(parameter_count(table) + 1)
    } else {
        "true".into()
    };
    format!(
        "SELECT s.n, ROW({}) IS NOT DISTINCT FROM ROW({}), {by_import} FROM {} JOIN {} t ON {}",
        target.join(", "),
        source.join(", "),
        batch_relation(table),
        QuotedIdentifier::qualified(schema, table.name),
        join_condition(table)
    )
}

/// Whether the target row `t`'s current version was written by one of the
/// transactions in parameter `$first` (xid[]), or before the one in
/// `$first + 1` (see [`Provenance`]).
pub fn written_by_import(first: usize) -> String {
    let baseline = first + 1;
    format!("(t.xmin = ANY(${first}::xid[]) OR age(t.xmin) > age(${baseline}::xid)) IS TRUE")
}

/// `UPDATE t SET a = s.c2::…, … FROM <batch> WHERE t.id = s.c1::… AND s.n =
/// ANY($k)`: the chosen rows of the batch, written over the target's.
fn update_query(schema: &QuotedIdentifier, table: &Table) -> String {
    let assignments: Vec<String> = column_pairs(table)
        .into_iter()
        .map(|(name, value)| format!("{name} = {value}"))
        .collect();
    format!(
        "UPDATE {} t SET {} FROM {} WHERE {} AND s.n = ANY(${}::bigint[])",
        QuotedIdentifier::qualified(schema, table.name),
        assignments.join(", "),
        batch_relation(table),
        join_condition(table),
        parameter_count(table) + 1
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::tables::by_name;

    #[test]
    fn a_conversation_compares_its_legacy_id_too() {
        let table = by_name("conversations").unwrap_or_else(|| unreachable!());
        let schema = QuotedIdentifier::new("public");
        let query = compare_query(&schema, table, false);
        assert!(query.contains("t.legacy_id"), "{query}");
        assert!(query.contains("$8::text[]"), "{query}");
        assert!(query.contains("t.id = s.c1::uuid"), "{query}");
        let update = update_query(&schema, table);
        assert!(update.contains("legacy_id = s.c8"), "{update}");
        assert!(update.ends_with("s.n = ANY($9::bigint[])"), "{update}");
    }
}
