//! The background worker that expires cache entries without cron: with the
//! library in shared_preload_libraries, one worker per database named in
//! llm_council.expire_databases runs council_cache_expire() every
//! llm_council.expire_interval.

use std::time::Duration;

use pgrx::bgworkers::{
    BackgroundWorker, BackgroundWorkerBuilder, BgWorkerStartTime, SignalWakeFlags,
};
use pgrx::prelude::*;

use council_app::QuotedIdentifier;

use crate::gucs;
use crate::postgres::{backend, extension, spi};

/// After an error the postmaster starts the worker again after this long.
const RESTART_AFTER: Duration = Duration::from_secs(10);

/// Registers the workers; only while the postmaster preloads the library.
pub fn register() {
    for database in gucs::expire_databases() {
        BackgroundWorkerBuilder::new(&format!("llm_council cache expiry in {database}"))
            .set_type("llm_council cache expiry")
            .set_library("llm_council")
            .set_function("llm_council_expire_worker_main")
            .set_extra(&database)
            .enable_spi_access()
            .set_start_time(BgWorkerStartTime::RecoveryFinished)
            .set_restart_time(Some(RESTART_AFTER))
            .load();
    }
}

fn interval() -> Duration {
    Duration::from_secs(
        u64::try_from(gucs::EXPIRE_INTERVAL.get())
            .unwrap_or(60)
            .max(1),
    )
}

/// Who owns the cache table, named by the extension's quoted schema.
const CACHE_OWNER: &str = "SELECT c.relowner FROM pg_catalog.pg_class c
WHERE c.oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass($1)";

/// One expiry run in its own transaction: how many entries went, or None
/// when the extension is not installed in this database.
///
/// Nothing a database owner controls redirects it: search_path is pinned
/// and every name and operator qualified. Without llm_council.expire_role
/// it runs as the cache table's owner in a security-restricted operation,
/// as VACUUM runs a table's code.
fn expire_once(as_owner: bool) -> Option<i64> {
    BackgroundWorker::transaction(|| {
        Spi::run("SET LOCAL search_path = pg_catalog, pg_temp").ok()?;
        let schema = extension::schema().ok()?;
        let owner = spi::read_one::<pg_sys::Oid>(
            CACHE_OWNER,
            &[QuotedIdentifier::qualified(&schema, "response_cache").into()],
        )
        .ok()??;
        let query = format!("SELECT {schema}.council_cache_expire()");
        if !as_owner {
            return Spi::get_one::<i64>(&query).ok().flatten();
        }
        backend::as_role(owner, || Spi::get_one::<i64>(&query).ok().flatten())
    })
}

#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn llm_council_expire_worker_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    let database = BackgroundWorker::get_extra().to_owned();
    let role = gucs::expire_role();
    BackgroundWorker::connect_worker_to_spi(Some(&database), role.as_deref());
    log!(
        "llm_council: expiring cache entries in database \"{database}\" every {} s, as {}",
        interval().as_secs(),
        role.as_deref().unwrap_or("the owner of response_cache")
    );
    while BackgroundWorker::wait_latch(Some(interval())) {
        if BackgroundWorker::sighup_received() {
            backend::reload_configuration();
        }
        match expire_once(role.is_none()) {
            Some(deleted) => {
                debug1!("llm_council: deleted {deleted} expired cache entries in \"{database}\"")
            }
            None => debug1!("llm_council: no llm_council extension in \"{database}\" yet"),
        }
    }
}
