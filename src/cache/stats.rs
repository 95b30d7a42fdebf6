//! Counters of cache hits, misses, evictions and expirations since the
//! server started, in shared memory. Shared memory is only to be had when
//! the library is in shared_preload_libraries; otherwise the counters read
//! as NULL (the table-derived figures of council_cache_stats still work).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use pgrx::atomics::PgAtomic;
use pgrx::prelude::*;
use pgrx::shmem::PGRXSharedMemory;

#[derive(Default)]
pub struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
    expirations: AtomicU64,
}

// SAFETY: only atomics, valid in any process that maps the segment.
unsafe impl PGRXSharedMemory for Counters {}

pub static COUNTERS: PgAtomic<Counters> = unsafe { PgAtomic::new(c"llm_council.cache_counters") };

/// Set in the postmaster when it preloads the library; backends inherit it.
static IN_SHARED_MEMORY: AtomicBool = AtomicBool::new(false);

/// Asks for the counters' shared memory; only while preloading.
pub fn request_shared_memory() {
    pgrx::pg_shmem_init!(COUNTERS);
    IN_SHARED_MEMORY.store(true, Ordering::Relaxed);
}

fn counters() -> Option<&'static Counters> {
    IN_SHARED_MEMORY
        .load(Ordering::Relaxed)
        .then(|| COUNTERS.get())
}

/// Adds `n` to one counter: 'hit', 'miss', 'eviction' or 'expiration'.
/// Called by the cache functions; a no-op without shared memory.
#[pg_extern(volatile, parallel_safe)]
fn council_cache_count_event(event: &str, n: i64) {
    let Some(counters) = counters() else { return };
    let counter = match event {
        "hit" => &counters.hits,
        "miss" => &counters.misses,
        "eviction" => &counters.evictions,
        "expiration" => &counters.expirations,
        _ => return,
    };
    counter.fetch_add(u64::try_from(n).unwrap_or(0), Ordering::Relaxed);
}

/// The counters since the server started; NULLs when the library is not
/// preloaded.
#[pg_extern(volatile, parallel_safe)]
fn council_cache_counters() -> TableIterator<
    'static,
    (
        name!(hits, Option<i64>),
        name!(misses, Option<i64>),
        name!(evictions, Option<i64>),
        name!(expirations, Option<i64>),
    ),
> {
    let read = |c: &AtomicU64| Some(i64::try_from(c.load(Ordering::Relaxed)).unwrap_or(i64::MAX));
    let row = match counters() {
        Some(c) => (
            read(&c.hits),
            read(&c.misses),
            read(&c.evictions),
            read(&c.expirations),
        ),
        None => (None, None, None, None),
    };
    TableIterator::once(row)
}
