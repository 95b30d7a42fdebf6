//! llm_council: the LLM Council app's schema, a lossless import of its SQLite
//! database, and its response cache, as a PostgreSQL extension.

::pgrx::pg_module_magic!(name, version);

mod cache;
mod error;
mod import;
mod mapping;
mod schema;
mod verify;

/// Hooks `cargo pgrx test` looks for at the crate root.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
