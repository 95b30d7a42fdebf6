//! Finding the extension in a database: its schema and version. Every name
//! and operator is qualified, so the caller's search_path plays no part.

/// One row, `(schema, version)`, when the extension is installed; none
/// otherwise.
pub const EXTENSION_QUERY: &str = "SELECT n.nspname::pg_catalog.text, e.extversion::pg_catalog.text
     FROM pg_catalog.pg_extension e
     JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace
     WHERE e.extname OPERATOR(pg_catalog.=) 'llm_council'";
