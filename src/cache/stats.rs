//! Counters of cache hits, misses, evictions and expirations since the
//! server started, in shared memory. Shared memory is only to be had when
//! the library is in shared_preload_libraries; otherwise the counters read
//! as NULL (the table-derived figures of council_cache_stats still work).

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use pgrx::atomics::PgAtomic;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;

use crate::error::Error;
use crate::postgres::shared_memory::{self, Counters};
use crate::postgres::{backend, extension, spi};

/// The counters' places in shared memory.
const HITS: usize = 0;
const MISSES: usize = 1;
const EVICTIONS: usize = 2;
const EXPIRATIONS: usize = 3;

pub static COUNTERS: PgAtomic<Counters<4>> = shared_memory::counters(c"llm_council.cache_counters");

/// Set in the postmaster when it preloads the library; backends inherit it.
static IN_SHARED_MEMORY: AtomicBool = AtomicBool::new(false);

/// Asks for the counters' shared memory; only while preloading.
pub fn request_shared_memory() {
    pgrx::pg_shmem_init!(COUNTERS);
    IN_SHARED_MEMORY.store(true, Ordering::Relaxed);
}

/// Whether the postmaster preloaded the library (shared_preload_libraries):
/// what the cache's counters and the expiry worker need.
pub fn preloaded() -> bool {
    IN_SHARED_MEMORY.load(Ordering::Relaxed)
}

fn counters() -> Option<&'static Counters<4>> {
    IN_SHARED_MEMORY
        .load(Ordering::Relaxed)
        .then(|| COUNTERS.get())
}

type Counts = (Option<i64>, Option<i64>, Option<i64>, Option<i64>);

/// Hits, misses, evictions and expirations; NULLs without shared memory.
fn counts() -> Counts {
    match counters() {
        Some(c) => {
            let read = |which| Some(i64::try_from(c.get(which)).unwrap_or(i64::MAX));
            (read(HITS), read(MISSES), read(EVICTIONS), read(EXPIRATIONS))
        }
        None => (None, None, None, None),
    }
}

/// The response_cache table this backend counts for, found once; found
/// again if it was dropped (the extension re-created) since.
static CACHE_TABLE: AtomicU32 = AtomicU32::new(0);

fn find_cache_table() -> Result<pg_sys::Oid, ErrorReport> {
    let relid = extension::table(&extension::schema()?, "response_cache")?
        .ok_or(Error::CacheTableMissing)?;
    CACHE_TABLE.store(relid.to_u32(), Ordering::Relaxed);
    Ok(relid)
}

/// Whether the current user holds `privilege` on response_cache.
fn may(privilege: u32) -> Result<bool, ErrorReport> {
    let check = |relid: pg_sys::Oid| backend::table_privilege(relid, privilege);
    let cached = pg_sys::Oid::from(CACHE_TABLE.load(Ordering::Relaxed));
    match (cached != pg_sys::InvalidOid)
        .then(|| check(cached))
        .flatten()
    {
        Some(granted) => Ok(granted),
        None => Ok(check(find_cache_table()?).unwrap_or(false)),
    }
}

/// Adds `n` to one counter: 'hit', 'miss', 'eviction' or 'expiration'.
/// Called by the cache functions; a no-op without shared memory. Only a
/// role that could cause the event through them may count it: UPDATE on
/// response_cache for hits and misses (a get), DELETE for evictions and
/// expirations; so no role can forge the statistics it could not make.
#[pg_extern(volatile, parallel_safe)]
fn council_cache_count_event(event: &str, n: i64) -> Result<(), ErrorReport> {
    let (privilege, privilege_name) = match event {
        "hit" | "miss" => (pg_sys::ACL_UPDATE, "UPDATE"),
        "eviction" | "expiration" => (pg_sys::ACL_DELETE, "DELETE"),
        other => return Err(Error::UnknownCacheEvent(crate::mapping::text::cut(other, 40)).into()),
    };
    if !may(privilege)? {
        return Err(Error::CacheEventDenied {
            event: event.to_owned(),
            privilege: privilege_name,
        }
        .into());
    }
    let Some(counters) = counters() else {
        return Ok(());
    };
    let which = match event {
        "hit" => HITS,
        "miss" => MISSES,
        "eviction" => EVICTIONS,
        _ => EXPIRATIONS,
    };
    counters.add(which, u64::try_from(n).unwrap_or(0));
    Ok(())
}

/// What the cache holds and how it has done: hits, misses, evictions and
/// expirations since the server started (NULL unless llm_council is in
/// shared_preload_libraries).
#[pg_extern(stable, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn council_cache_stats() -> Result<
    TableIterator<
        'static,
        (
            name!(entries, i64),
            name!(expired_entries, i64),
            name!(total_hit_count, i64),
            name!(hits, Option<i64>),
            name!(misses, Option<i64>),
            name!(evictions, Option<i64>),
            name!(expirations, Option<i64>),
            name!(hit_rate, Option<f64>),
        ),
    >,
    ErrorReport,
> {
    let schema = extension::schema()?;
    let query = format!(
        "SELECT pg_catalog.count(*),
                pg_catalog.count(*) FILTER (WHERE c.expires_at OPERATOR(pg_catalog.<=) pg_catalog.now()),
                coalesce(pg_catalog.sum(c.hit_count), 0)::pg_catalog.int8
         FROM {schema}.response_cache c"
    );
    let (entries, expired, total_hits) = Spi::connect(|client| {
        let row = client.select(&query, Some(1), &[])?.first();
        Ok::<_, pgrx::spi::Error>((
            row.get::<i64>(1)?.unwrap_or(0),
            row.get::<i64>(2)?.unwrap_or(0),
            row.get::<i64>(3)?.unwrap_or(0),
        ))
    })
    .map_err(spi::internal_query_failed)?;
    let (hits, misses, evictions, expirations) = counts();
    let hit_rate = match (hits, misses) {
        (Some(h), Some(m)) if h + m > 0 => Some(h as f64 / (h + m) as f64),
        _ => None,
    };
    Ok(TableIterator::once((
        entries,
        expired,
        total_hits,
        hits,
        misses,
        evictions,
        expirations,
        hit_rate,
    )))
}

/// The counters as 0.1.0 exposed them. 0.2.0 drops the SQL function (the
/// statistics are `council_cache_stats`); the library keeps the symbol so
/// that a database still on 0.1.0 works until `ALTER EXTENSION … UPDATE`.
#[pg_extern(sql = false)]
fn council_cache_counters() -> TableIterator<
    'static,
    (
        name!(hits, Option<i64>),
        name!(misses, Option<i64>),
        name!(evictions, Option<i64>),
        name!(expirations, Option<i64>),
    ),
> {
    TableIterator::once(counts())
}
