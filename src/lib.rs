//! llm_council: the LLM Council app's schema, a lossless import of its SQLite
//! database, and its response cache, as a PostgreSQL extension.

::pgrx::pg_module_magic!(name, version);

mod cache;
mod council;
mod error;
mod export;
mod gucs;
mod import;
mod mapping;
mod overview;
mod postgres;
mod schema;
mod search;
mod sqlstate;
mod verify;
mod worker;

#[pgrx::pg_guard]
pub extern "C-unwind" fn _PG_init() {
    gucs::register();
    // Shared memory and background workers are only to be had while the
    // postmaster preloads the library.
    if postgres::backend::preloading() {
        cache::stats::request_shared_memory();
        worker::register();
    }
}

/// Hooks `cargo pgrx test` looks for at the crate root.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
