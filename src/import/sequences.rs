//! Moving each identity sequence past the largest id its table now holds,
//! so that the app's next insert gets a fresh id.

use council_app::QuotedIdentifier;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;

use crate::council::catalog::{Kind, TABLES};
use crate::postgres::spi;

pub fn advance(schema: &QuotedIdentifier) -> Result<(), ErrorReport> {
    for table in TABLES.iter().filter(|t| t.key().kind == Kind::BigInt) {
        let qualified = QuotedIdentifier::qualified(schema, table.name);
        // last_value is NULL while the sequence was never used.
        let query = format!(
            "SELECT setval(pg_get_serial_sequence($1, 'id'), m.max_id)
             FROM (SELECT max(id) AS max_id FROM {qualified}) m
             WHERE m.max_id > coalesce((SELECT last_value FROM pg_catalog.pg_sequences
                                       WHERE format('%I.%I', schemaname, sequencename)::regclass
                                             = pg_get_serial_sequence($1, 'id')::regclass), 0)"
        );
        Spi::run_with_args(&query, &[qualified.into()]).map_err(spi::internal_query_failed)?;
    }
    Ok(())
}
