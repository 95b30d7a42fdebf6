//! Full-text search over the council's deliberations: `council_search`,
//! and the documents its row triggers keep current, all in
//! `sql/search.sql` (PL/pgSQL, with plans cached per session). What is Rust
//! here is what SQL cannot hold: whether search is on (`llm_council.search`,
//! a boolean PostgreSQL itself parses once the library is loaded, which
//! asking loads), and whether the import has deferred a table's documents
//! (`council::search_documents` keeps that).

use pgrx::prelude::*;

use crate::council::search_documents;

extension_sql_file!(
    "../sql/search.sql",
    name = "search",
    requires = ["schema", council_search_deferred, council_search_enabled]
);

/// Whether search documents are kept: `llm_council.search`, on unless set
/// off for the database, the role or the session.
#[pg_extern(stable, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn council_search_enabled() -> bool {
    search_documents::enabled()
}

/// Whether the search triggers skip this insert into `table`: only inside
/// the import that deferred it, which indexes the table's rows itself
/// before it returns. Anyone may ask; no one but the import can say yes.
#[pg_extern(volatile, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn council_search_deferred(table: pg_sys::Oid) -> bool {
    search_documents::is_deferred(table)
}
