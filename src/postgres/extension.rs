//! Where the extension is installed in this database.

use council_app::catalog::EXTENSION_QUERY;
use council_app::QuotedIdentifier;
use pgrx::pg_sys;
use pgrx::pg_sys::panic::ErrorReport;

use super::spi;
use crate::error::Error;

/// A table of the extension in `schema`, or None when it is missing.
pub fn table(schema: &QuotedIdentifier, name: &str) -> Result<Option<pg_sys::Oid>, ErrorReport> {
    spi::read_one::<pg_sys::Oid>(
        "SELECT pg_catalog.to_regclass($1)::pg_catalog.oid",
        &[QuotedIdentifier::qualified(schema, name).into()],
    )
}

/// The extension's schema, quoted for SQL text.
pub fn schema() -> Result<QuotedIdentifier, ErrorReport> {
    spi::read_one::<String>(EXTENSION_QUERY, &[])?
        .map(|name| QuotedIdentifier::new(&name))
        .ok_or_else(|| Error::ExtensionMissing.into())
}
