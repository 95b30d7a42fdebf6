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
pub fn read_column<A: FromDatum + IntoDatum>(
    query: &str,
    args: &[DatumWithOid<'_>],
) -> Result<Vec<A>, ErrorReport> {
    Spi::connect(|client| {
        let mut values = Vec::new();
        for row in client.select(query, None, args)? {
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
