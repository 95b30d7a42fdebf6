//! Where the extension is installed in this database.

use council_app::catalog::EXTENSION_QUERY;
use council_app::QuotedIdentifier;
use pgrx::pg_sys::panic::ErrorReport;

use super::spi;
use crate::error::report;
use crate::sqlstate;

/// The extension's schema, quoted for SQL text.
pub fn schema() -> Result<QuotedIdentifier, ErrorReport> {
    spi::read_one::<String>(EXTENSION_QUERY, &[])?
        .map(|name| QuotedIdentifier::new(&name))
        .ok_or_else(|| {
            report(
                sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
                "the llm_council extension is not installed in this database",
                None,
                None,
            )
        })
}
