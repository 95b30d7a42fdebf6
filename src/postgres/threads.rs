//! Threads of the extension's own inside a backend. PostgreSQL is
//! single-threaded: such a thread never calls into the server (no palloc,
//! no ereport, nothing of `pg_sys`), and it blocks every signal, so that
//! the backend's handlers (cancel, termination, latches) always run on the
//! backend's own thread, where the flags they set are read.

use std::io;
use std::thread::{JoinHandle, Scope, ScopedJoinHandle};

/// Runs `work` on a new thread that no signal is delivered to.
pub fn spawn<F, T>(name: &str, work: F) -> io::Result<JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    without_signals(|| {
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(work)
    })
}

/// Runs `work` on a new thread of `scope` that no signal is delivered to.
pub fn spawn_scoped<'scope, 'env, F, T>(
    scope: &'scope Scope<'scope, 'env>,
    name: &str,
    work: F,
) -> io::Result<ScopedJoinHandle<'scope, T>>
where
    F: FnOnce() -> T + Send + 'scope,
    T: Send + 'scope,
{
    without_signals(|| {
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn_scoped(scope, work)
    })
}

/// Calls `spawn` with every signal blocked: a new thread inherits the mask
/// of the thread that creates it. The backend gets its own mask back.
fn without_signals<T>(spawn: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    let mut all = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    let mut before = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigfillset initialises `all`; pthread_sigmask reads it and
    // writes the previous mask into `before`, which it initialises.
    let blocked = unsafe {
        libc::sigfillset(all.as_mut_ptr()) == 0
            && libc::pthread_sigmask(libc::SIG_SETMASK, all.as_ptr(), before.as_mut_ptr()) == 0
    };
    if !blocked {
        return Err(io::Error::other("could not block signals for a new thread"));
    }
    let spawned = spawn();
    // SAFETY: `before` was written by the successful call above.
    unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, before.as_ptr(), std::ptr::null_mut());
    }
    spawned
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thread_blocks_every_signal_and_the_caller_keeps_its_mask() {
        fn mask() -> libc::sigset_t {
            let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
            // SAFETY: a null new mask only reads the current one into `set`.
            unsafe {
                assert_eq!(
                    libc::pthread_sigmask(libc::SIG_SETMASK, std::ptr::null(), set.as_mut_ptr()),
                    0
                );
                set.assume_init()
            }
        }
        // SAFETY: sigismember reads a mask pthread_sigmask wrote.
        let blocks = |set: &libc::sigset_t, signal| unsafe { libc::sigismember(set, signal) == 1 };
        let before = mask();
        let inside = spawn("test", mask)
            .expect("spawning")
            .join()
            .expect("joining");
        let scoped = std::thread::scope(|scope| {
            spawn_scoped(scope, "test", mask)
                .expect("spawning")
                .join()
                .expect("joining")
        });
        for (thread, set) in [("thread", &inside), ("scoped thread", &scoped)] {
            for signal in [
                libc::SIGINT,
                libc::SIGTERM,
                libc::SIGUSR1,
                libc::SIGURG,
                libc::SIGALRM,
            ] {
                assert!(blocks(set, signal), "signal {signal} reaches the {thread}");
            }
        }
        let after = mask();
        for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGUSR1] {
            assert_eq!(blocks(&before, signal), blocks(&after, signal));
        }
    }
}
