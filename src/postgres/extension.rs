//! Where the extension is installed in this database.

use council_app::catalog::EXTENSION_QUERY;
use council_app::QuotedIdentifier;
use pgrx::pg_sys::panic::ErrorReport;

use super::spi;
use crate::error::Error;

/// The extension's schema, quoted for SQL text.
pub fn schema() -> Result<QuotedIdentifier, ErrorReport> {
    spi::read_one::<String>(EXTENSION_QUERY, &[])?
        .map(|name| QuotedIdentifier::new(&name))
        .ok_or_else(|| Error::ExtensionMissing.into())
}
