//! `council_overview()`: the system at a glance, for the DBA and for
//! `council-loader status` (PL/pgSQL in `sql/overview.sql`).

use pgrx::prelude::*;

extension_sql_file!(
    "../sql/overview.sql",
    name = "overview",
    requires = [
        "schema",
        "search",
        "search_triggers",
        "cache",
        council_library_preloaded
    ]
);

/// Whether the postmaster loaded the library (shared_preload_libraries),
/// which the cache's hit counters and the expiry worker need. Unlike the
/// setting itself, anyone may read this.
#[pg_extern(stable, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn council_library_preloaded() -> bool {
    crate::cache::stats::preloaded()
}
