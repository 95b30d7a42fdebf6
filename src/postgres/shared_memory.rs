//! Counters in shared memory that every backend of the server adds to:
//! only to be had when the postmaster preloads the library.

use std::ffi::CStr;
use std::sync::atomic::{AtomicU64, Ordering};

use pgrx::atomics::PgAtomic;
use pgrx::shmem::PGRXSharedMemory;

/// `N` counters, each added to and read on its own.
pub struct Counters<const N: usize>([AtomicU64; N]);

impl<const N: usize> Default for Counters<N> {
    fn default() -> Self {
        Counters([const { AtomicU64::new(0) }; N])
    }
}

impl<const N: usize> Counters<N> {
    /// Adds `n` to counter `which` (`which < N`; others are ignored).
    pub fn add(&self, which: usize, n: u64) {
        if let Some(counter) = self.0.get(which) {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Counter `which`, 0 for one past the end.
    pub fn get(&self, which: usize) -> u64 {
        self.0
            .get(which)
            .map_or(0, |counter| counter.load(Ordering::Relaxed))
    }
}

// SAFETY: only atomics, valid in any process that maps the segment.
unsafe impl<const N: usize> PGRXSharedMemory for Counters<N> {}

/// The segment named `name`, to be requested with `pgrx::pg_shmem_init!`
/// while the postmaster preloads the library.
///
/// The name must be unique to this extension: the caller names it after
/// the extension (`llm_council.…`).
pub const fn counters<const N: usize>(name: &'static CStr) -> PgAtomic<Counters<N>> {
    // SAFETY: the caller's unique name (see above); the segment is only
    // attached through pgrx's shared-memory hooks.
    unsafe { PgAtomic::new(name) }
}
