//! Keeps the server's resident memory close to its live data under glibc's allocator.
//!
//! glibc gives each thread that allocates an arena of its own (up to 8 per core) and keeps the
//! memory freed in an arena for later reuse. After an ingest burst (request bodies, decoded
//! batches, records) that memory stays resident: measured with 103 200 active series, the
//! server held 2 851 bytes per series with glibc's defaults and 1 760 with two arenas. So the
//! server (1) limits the arenas to one per core before its threads start ([`limit_arenas`]),
//! and (2) hands freed pages back to the kernel as soon as a consumer has caught up after a
//! burst ([`request_trim`]; at most once per [`TRIM_GAP`]) and at least every
//! [`TRIM_INTERVAL`] ([`spawn_trim`]).
//! Another global allocator would do both by itself, but the binary is shared with the agent,
//! whose footprint goal (15 MiB) the system allocator meets and the others tried do not.
//!
//! Why `unsafe`: `mallopt` and `malloc_trim` are C functions of glibc with no safe wrapper in
//! the standard library. Both take plain integers, touch no memory of ours and have no
//! caller-side safety condition; off glibc this module does nothing.
#![allow(unsafe_code)]

use std::time::Duration;

use tokio::sync::Notify;

/// How often freed pages are handed back at the latest.
pub const TRIM_INTERVAL: Duration = Duration::from_secs(10);

/// Least time between two trims: consumers that catch up one after the other (one per
/// partition) are served by two trims at most this far apart, and one that keeps catching
/// up does not trim after every record.
pub const TRIM_GAP: Duration = Duration::from_millis(250);

static TRIM_REQUESTED: Notify = Notify::const_new();

/// A hook run before each trim; it returns `false` when it is no longer needed.
type BeforeTrim = Box<dyn Fn() -> bool + Send + Sync>;

static BEFORE_TRIM: std::sync::Mutex<Vec<BeforeTrim>> = std::sync::Mutex::new(Vec::new());

/// Runs `hook` before every trim of [`spawn_trim`]'s task (on the blocking pool), until it
/// returns `false`: a cache of buffers kept for reuse (see `ingest.rs`'s `BufferPool`)
/// empties itself there, so what it held goes back with the rest.
pub(crate) fn before_trim(hook: BeforeTrim) {
    BEFORE_TRIM
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(hook);
}

/// Runs the [`before_trim`] hooks, dropping those that are done; then trims.
fn release_and_trim() -> bool {
    BEFORE_TRIM
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .retain(|hook| hook());
    trim()
}

/// Asks for a trim now (or [`TRIM_GAP`] after the previous one): a burst just ended (a
/// consumer caught up), so what it freed can go back.
pub(crate) fn request_trim() {
    TRIM_REQUESTED.notify_one();
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod glibc {
    use std::os::raw::c_int;

    /// `M_ARENA_MAX` of glibc's `malloc.h`.
    const M_ARENA_MAX: c_int = -8;

    extern "C" {
        fn mallopt(param: c_int, value: c_int) -> c_int;
        fn malloc_trim(pad: usize) -> c_int;
    }

    pub(super) fn limit_arenas(n: c_int) -> bool {
        // SAFETY: mallopt takes two integers and changes a setting of the allocator; any
        // value is accepted or refused (returns 0), nothing of the caller's is touched.
        unsafe { mallopt(M_ARENA_MAX, n) == 1 }
    }

    pub(super) fn trim() -> bool {
        // SAFETY: malloc_trim(0) releases free pages of every arena; it takes the arenas'
        // own locks and has no caller-side precondition.
        unsafe { malloc_trim(0) == 1 }
    }
}

/// Limits glibc to one arena per core (at least two). Call before the runtime starts its
/// threads: arenas already made stay. Returns whether the allocator took the setting.
pub fn limit_arenas() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        glibc::limit_arenas(cores.clamp(2, 64) as i32)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Hands the pages freed in every arena back to the kernel; whether any were.
pub fn trim() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        glibc::trim()
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Trims on the blocking pool (a trim walks every arena, a few ms on a large heap) at once
/// on a [`request_trim`] (but not within [`TRIM_GAP`] of the previous trim) and at least
/// every [`TRIM_INTERVAL`], until the runtime stops.
pub(crate) fn spawn_trim() {
    tokio::spawn(async {
        let mut last = tokio::time::Instant::now();
        loop {
            let requested =
                tokio::time::timeout_at(last + TRIM_INTERVAL, TRIM_REQUESTED.notified())
                    .await
                    .is_ok();
            if requested {
                tokio::time::sleep_until(last + TRIM_GAP).await;
            }
            if tokio::task::spawn_blocking(release_and_trim).await.is_err() {
                return;
            }
            last = tokio::time::Instant::now();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rss_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// A hook runs before each trim until it says it is done.
    #[test]
    fn before_trim_hooks_run_until_they_are_done() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        before_trim(Box::new(move || c.fetch_add(1, Ordering::SeqCst) < 1));
        release_and_trim();
        release_and_trim();
        release_and_trim();
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "run twice: true, then false and dropped"
        );
    }

    /// Memory freed in a thread's arena stays resident until trimmed; the trim gives it back.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn trim_hands_freed_memory_back() {
        // Many small blocks (below the mmap threshold, so they live in the arena), every other
        // one kept so the arena cannot shrink from its top alone.
        let (kept, before_free) = std::thread::spawn(|| {
            let mut blocks: Vec<Vec<u8>> = (0..200_000).map(|i| vec![i as u8; 1000]).collect();
            let before_free = rss_kib();
            let kept: Vec<Vec<u8>> = blocks
                .drain(..)
                .enumerate()
                .filter(|(i, _)| i % 64 == 0)
                .map(|(_, b)| b)
                .collect();
            (kept, before_free)
        })
        .join()
        .unwrap();
        let freed = rss_kib();
        assert!(trim());
        let trimmed = rss_kib();
        assert_eq!(kept.len(), 200_000 / 64);
        // About 190 MB were freed; glibc kept most of it resident, the trim returned it.
        assert!(before_free > 150_000, "{before_free} KiB before freeing");
        assert!(
            trimmed + 100_000 < freed,
            "resident after free {freed} KiB, after trim {trimmed} KiB"
        );
    }
}
