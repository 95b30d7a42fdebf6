//! The background worker that expires cache entries without cron: with the
//! library in shared_preload_libraries, one worker per database named in
//! llm_council.expire_databases runs council_cache_expire() every
//! llm_council.expire_interval.

use std::time::Duration;

use pgrx::bgworkers::{
    BackgroundWorker, BackgroundWorkerBuilder, BgWorkerStartTime, SignalWakeFlags,
};
use pgrx::prelude::*;

use crate::gucs;

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

/// One expiry run in its own transaction: how many entries went, or None
/// when the extension is not installed in this database.
fn expire_once() -> Option<i64> {
    BackgroundWorker::transaction(|| {
        let schema = Spi::get_one::<String>(
            "SELECT n.nspname::text FROM pg_catalog.pg_extension e
             JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
             WHERE e.extname = 'llm_council'",
        )
        .ok()
        .flatten()?;
        let query = format!(
            "SELECT {}.council_cache_expire()",
            crate::import::quote_identifier(&schema)
        );
        Spi::get_one::<i64>(&query).ok().flatten()
    })
}

#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn llm_council_expire_worker_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    let database = BackgroundWorker::get_extra().to_owned();
    BackgroundWorker::connect_worker_to_spi(Some(&database), None);
    log!(
        "llm_council: expiring cache entries in database \"{database}\" every {} s",
        interval().as_secs()
    );
    while BackgroundWorker::wait_latch(Some(interval())) {
        if BackgroundWorker::sighup_received() {
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
        match expire_once() {
            Some(deleted) => {
                debug1!("llm_council: deleted {deleted} expired cache entries in \"{database}\"")
            }
            None => debug1!("llm_council: no llm_council extension in \"{database}\" yet"),
        }
    }
}
