//! The app's response cache, kept in PostgreSQL so that every app instance
//! shares it.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::JsonB;

pub mod key;
pub mod stats;

extension_sql_file!(
    "../../sql/cache.sql",
    name = "cache",
    requires = ["schema", stats::council_cache_count_event]
);

impl From<key::CacheKeyError> for ErrorReport {
    fn from(err: key::CacheKeyError) -> ErrorReport {
        crate::error::report(
            err.sqlstate(),
            format!("cannot compute a cache key: {err}"),
            None,
            Some("options must be what the app passes: a JSON object of plain values".into()),
        )
    }
}

/// The app's cache key for a query: byte for byte what the Python app
/// computes, so SQL and the app find the same entries.
#[pg_extern(immutable, parallel_safe)]
fn council_cache_key(
    query: &str,
    models: Vec<Option<String>>,
    voting_method: default!(&str, "'borda'"),
    options: default!(Option<JsonB>, "'{}'"),
) -> Result<String, ErrorReport> {
    let models = models
        .iter()
        .map(|model| model.as_deref())
        .collect::<Option<Vec<&str>>>()
        .ok_or(crate::error::Error::NullModel)?;
    let options = options.as_ref().map(|options| &options.0);
    let key_json = key::key_json(query, &models, voting_method, options)?;
    Ok(key::cache_key(&key_json))
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn the_sql_key_equals_the_apps_key() {
        // Vector "ascii_upper" of tests/fixtures/cache_key_vectors.json,
        // computed by the Python app's own code.
        let key = Spi::get_one::<String>(
            "SELECT council_cache_key('What Is The CAPITAL of FRANCE?', \
             ARRAY['gpt-4o', 'claude-3-opus', 'gemini-1.5-pro'], 'borda', '{}')",
        )
        .expect("council_cache_key failed");
        assert_eq!(key.as_deref(), Some("3f8ba65500ca60806adabd1e872eb37b"));
    }

    #[pg_test(error = "models must not contain NULL")]
    fn a_null_model_is_refused() {
        Spi::get_one::<String>("SELECT council_cache_key('q', ARRAY['a', NULL])")
            .expect("should have raised");
    }
}
