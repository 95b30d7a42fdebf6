//! The `llm_council.*` settings, registered when the library loads.
//!
//! The cache and search functions read their settings with
//! `current_setting(…, true)`, so they also take effect in a session that
//! has not loaded the library yet (values set in postgresql.conf, ALTER
//! DATABASE or SET are then placeholders PostgreSQL keeps for us).

use std::ffi::CString;

use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

pub static CACHE_DEFAULT_TTL: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"1h"));
pub static CACHE_MAX_ENTRIES: GucSetting<i32> = GucSetting::<i32>::new(0);
pub static EXPIRE_INTERVAL: GucSetting<i32> = GucSetting::<i32>::new(60);
pub static EXPIRE_DATABASES: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static EXPIRE_ROLE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static SEARCH: GucSetting<bool> = GucSetting::<bool>::new(true);
// Unset by default: the SQL that reads it picks the configuration of its own
// version (0.3.0's council_english), so a library newer than a database's
// extension never names a configuration that database lacks.
pub static SEARCH_CONFIG: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

pub fn register() {
    GucRegistry::define_string_guc(
        c"llm_council.cache_default_ttl",
        c"Time to live of a cache entry put without one.",
        c"An interval ('1h', '30 min'), seconds ('3600'), or '-1' (also 'infinity', 'never') for entries that never expire.",
        &CACHE_DEFAULT_TTL,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"llm_council.cache_max_entries",
        c"Most entries the response cache keeps; 0 means no bound.",
        c"A put beyond the bound evicts the least recently used entries.",
        &CACHE_MAX_ENTRIES,
        0,
        i32::MAX,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"llm_council.search",
        c"Whether full-text search documents are kept: council_search, its triggers and the import's indexing.",
        c"Off: no documents are written, the triggers return at once, and council_search raises an error. Set it for the database, a role or a session; after turning it back on, council_search_reindex() catches up.",
        &SEARCH,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"llm_council.search_config",
        c"Text search configuration of council_search and of the documents it searches.",
        c"Empty: council_english, the extension's own (FTS5's unicode61 splitting, English stemming). Else a configuration name (SELECT cfgname FROM pg_ts_config), schema-qualified unless in pg_catalog. Set it for the database; after a change, council_search_reindex() parses the stored documents again.",
        &SEARCH_CONFIG,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"llm_council.expire_interval",
        c"How often the background worker deletes expired cache entries.",
        c"Takes effect with llm_council in shared_preload_libraries; a reload applies a change.",
        &EXPIRE_INTERVAL,
        1,
        i32::MAX,
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
    // A postmaster-level setting can only be defined while the postmaster
    // preloads the library; without preloading there is no worker to read it.
    if crate::postgres::backend::preloading() {
        define_worker_settings();
    }
}

fn define_worker_settings() {
    GucRegistry::define_string_guc(
        c"llm_council.expire_role",
        c"The role the cache expiry worker connects as.",
        c"A role with LOGIN, and SELECT, UPDATE and DELETE on response_cache. Empty: the worker connects as the bootstrap superuser and runs each expiry as response_cache's owner, in a security-restricted operation. Changing it needs a restart.",
        &EXPIRE_ROLE,
        GucContext::Postmaster,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"llm_council.expire_databases",
        c"Databases whose expired cache entries the background worker deletes.",
        c"A comma-separated list of database names; one worker per database. Changing it needs a restart.",
        &EXPIRE_DATABASES,
        GucContext::Postmaster,
        GucFlags::default(),
    );
}

/// The role in llm_council.expire_role, if one is named.
pub fn expire_role() -> Option<String> {
    EXPIRE_ROLE
        .get()
        .map(|role| role.to_string_lossy().trim().to_owned())
        .filter(|role| !role.is_empty())
}

/// The database names in llm_council.expire_databases.
pub fn expire_databases() -> Vec<String> {
    EXPIRE_DATABASES
        .get()
        .map(|list| {
            list.to_string_lossy()
                .split(',')
                .map(str::trim)
                .filter(|name| !name.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}
