//! Comparing a mapped source row with the target's row of the same id, for
//! the import's skip-or-conflict decision and for verify.

use council_app::QuotedIdentifier;
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys::panic::ErrorReport;

use super::decision::Existing;
use super::row::Value;
use super::tables::{Kind, Table};
use crate::postgres::spi;

/// `SELECT ROW(t.a, t.b, …) IS NOT DISTINCT FROM ROW($2::…, $3::…, …) FROM t
/// WHERE t.id = $1::…`, every value passed as text and cast to the column's
/// type, so jsonb compares as jsonb and times as times.
pub fn query(schema: &QuotedIdentifier, table: &Table) -> String {
    let mut target = Vec::new();
    let mut params = Vec::new();
    let mut n = 1;
    for column in table.columns.iter().skip(1) {
        n += 1;
        target.push(format!("t.{}", QuotedIdentifier::new(column.name)));
        params.push(format!("${n}::{}", column.kind.sql_type()));
    }
    if table.key().kind == Kind::ConversationId {
        n += 1;
        target.push("t.legacy_id".into());
        params.push(format!("${n}::text"));
    }
    format!(
        "SELECT ROW({}) IS NOT DISTINCT FROM ROW({}) FROM {} t WHERE t.id = $1::{}",
        target.join(", "),
        params.join(", "),
        QuotedIdentifier::qualified(schema, table.name),
        table.key().kind.sql_type()
    )
}

/// The comparison query's parameters for a mapped row.
fn arguments(values: &[Value<'_>]) -> Vec<Option<String>> {
    let mut args: Vec<Option<String>> = values.iter().map(Value::sql_text).collect();
    if let Some(first @ Value::Conversation { .. }) = values.first() {
        args.push(first.legacy_text());
    }
    args
}

/// Runs [`query`] for a mapped row: None when the target has no row of
/// that id.
pub fn existing(query: &str, values: &[Value<'_>]) -> Result<Option<Existing>, ErrorReport> {
    let args: Vec<DatumWithOid> = arguments(values).into_iter().map(Into::into).collect();
    Ok(spi::read_one::<bool>(query, &args)?.map(|same| {
        if same {
            Existing::Identical
        } else {
            Existing::Different
        }
    }))
}
