//! Queries through SPI. The ones that only read take no transaction id, so
//! they also run on a hot standby and in read-only transactions.

use pgrx::datum::{DatumWithOid, FromDatum, IntoDatum};
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;

use crate::error::Error;

/// The first column of the first row of a read-only query, or None. Unlike
/// `Spi::get_one`, it takes no transaction id.
pub fn read_one<A: FromDatum + IntoDatum>(
    query: &str,
    args: &[DatumWithOid<'_>],
) -> Result<Option<A>, ErrorReport> {
    Spi::connect(|client| {
        let table = client.select(query, Some(1), args)?;
        if table.is_empty() {
            return Ok(None);
        }
        table.first().get_one::<A>()
    })
    .map_err(internal_query_failed)
}

/// Every non-NULL value of the first column of a read-only query.
pub fn read_column<A: FromDatum + IntoDatum>(query: &str) -> Result<Vec<A>, ErrorReport> {
    Spi::connect(|client| {
        let mut values = Vec::new();
        for row in client.select(query, None, &[])? {
            values.extend(row.get::<A>(1)?);
        }
        Ok::<_, pgrx::spi::Error>(values)
    })
    .map_err(internal_query_failed)
}

/// A query of the extension's own that failed: nothing the caller did, so
/// XX000, with SPI's own words.
pub fn internal_query_failed(err: pgrx::spi::Error) -> ErrorReport {
    Error::InternalQuery(err.to_string()).into()
}

/// Runs a statement that writes; returns how many rows it changed.
pub fn write(query: &str, args: &[DatumWithOid<'_>]) -> Result<u64, ErrorReport> {
    Spi::connect_mut(|client| {
        client
            .update(query, None, args)
            .map(|status| status.len() as u64)
    })
    .map_err(internal_query_failed)
}

thread_local! {
    // A search's lookup, planned once per backend and table: planning it
    // anew cost a search that finds a few rows a tenth of its time.
    static KEPT: std::cell::RefCell<Vec<(pg_sys::Oid, &'static str, pgrx::spi::OwnedPreparedStatement)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// The schema-qualified, quoted name of table `relid`.
fn qualified_name(relid: pg_sys::Oid) -> Result<String, ErrorReport> {
    // SAFETY: catalog lookups by oid, which return NULL for none; the
    // strings are palloc'd in the current context and copied at once.
    unsafe {
        let relation = pg_sys::get_rel_name(relid);
        let namespace = pg_sys::get_namespace_name(pg_sys::get_rel_namespace(relid));
        if relation.is_null() || namespace.is_null() {
            return Err(Error::InternalQuery(format!("no relation of oid {relid:?}")).into());
        }
        let quoted = pg_sys::quote_qualified_identifier(namespace, relation);
        Ok(std::ffi::CStr::from_ptr(quoted).to_string_lossy().into_owned())
    }
}

/// Hands each row of a read-only query over table `relid` to `row`: the
/// query is `query` with the table's qualified name for `{table}`, planned
/// once per backend (as PL/pgSQL keeps its plans) with parameters of
/// `types`, and run as the current user, with the privileges and
/// row-level security any query of theirs has.
pub fn select_kept(
    relid: pg_sys::Oid,
    query: &'static str,
    types: &[PgOid],
    args: &[DatumWithOid<'_>],
    mut row: impl FnMut(&pgrx::spi::SpiHeapTupleData<'_>) -> Result<(), ErrorReport>,
) -> Result<(), ErrorReport> {
    let text = if KEPT.with_borrow(|kept| kept.iter().any(|k| k.0 == relid && k.1 == query)) {
        None
    } else {
        Some(query.replace("{table}", &qualified_name(relid)?))
    };
    Spi::connect(|client| -> Result<(), ErrorReport> {
        if let Some(text) = text {
            let prepared = client
                .prepare(text.as_str(), types)
                .map_err(internal_query_failed)?
                .keep();
            KEPT.with_borrow_mut(|kept| kept.push((relid, query, prepared)));
        }
        KEPT.with_borrow(|kept| -> Result<(), ErrorReport> {
            let Some((_, _, prepared)) = kept.iter().find(|k| k.0 == relid && k.1 == query) else {
                return Err(Error::InternalQuery("a kept plan went missing".into()).into());
            };
            for tuple in client
                .select(prepared, None, args)
                .map_err(internal_query_failed)?
            {
                row(&tuple)?;
            }
            Ok(())
        })
    })
}
