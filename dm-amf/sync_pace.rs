// SPDX-License-Identifier: GPL-2.0

//! Speed limits of the background work of a group (resync, rebuild, check, repair), md's
//! `sync_speed_min` and `sync_speed_max` in KiB/s of the volume per second, set by messages,
//! and the speed measured, which the status shows so that a tool can compute an ETA.
//!
//! The stripe worker runs that work a batch at a time between host I/O. Before a batch it
//! asks [`SyncPace::may_run`]: with host I/O in the same run the limit is `min` (when set),
//! otherwise `max` (when set). Over the limit it runs no batch and marks itself throttled;
//! the sweeper kicks it again a few milliseconds later. 0 means no limit for either.

use core::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use kernel::time::Ktime;

/// The speed is measured over windows of this length.
const WINDOW_NS: i64 = 500_000_000;

/// Limits and measurement of a group's background work.
pub(crate) struct SyncPace {
    min_kib: AtomicU64,
    max_kib: AtomicU64,
    /// Sectors done beyond what the limit allowed so far (a token bucket's debt), paid back
    /// at the limit's rate; a batch runs only without debt.
    debt: AtomicU64,
    /// When the debt was last paid back (ktime ns; 0: never).
    paid_at: AtomicI64,
    /// Start of the current measurement window (ktime ns; 0: none yet).
    window_start: AtomicI64,
    /// Logical sectors synced in the current window.
    window_sectors: AtomicU64,
    /// KiB/s over the last whole window, 0 when idle.
    speed_kib: AtomicU64,
    /// The worker skipped a batch for the limit: the sweeper kicks it soon.
    throttled: AtomicBool,
}

impl SyncPace {
    pub(crate) const fn new() -> Self {
        Self {
            min_kib: AtomicU64::new(0),
            max_kib: AtomicU64::new(0),
            debt: AtomicU64::new(0),
            paid_at: AtomicI64::new(0),
            window_start: AtomicI64::new(0),
            window_sectors: AtomicU64::new(0),
            speed_kib: AtomicU64::new(0),
            throttled: AtomicBool::new(false),
        }
    }

    /// Sets `sync_speed_min` (`max` false) or `sync_speed_max`, KiB/s, 0 for none.
    pub(crate) fn set(&self, max: bool, kib: u64) {
        let limit = if max { &self.max_kib } else { &self.min_kib };
        limit.store(kib, Ordering::Relaxed);
    }

    /// `(min, max)` in KiB/s, 0 for none.
    pub(crate) fn limits(&self) -> (u64, u64) {
        (
            self.min_kib.load(Ordering::Relaxed),
            self.max_kib.load(Ordering::Relaxed),
        )
    }

    /// KiB/s measured over the last half second of background work (0 when none ran).
    pub(crate) fn speed(&self) -> u64 {
        self.speed_kib.load(Ordering::Relaxed)
    }

    /// Worker only: whether a batch may run now, `host_busy` if host I/O ran in this run.
    pub(crate) fn may_run(&self, host_busy: bool) -> bool {
        let now = Ktime::ktime_get().to_ns();
        self.measure(now);
        let (min, max) = self.limits();
        let limit = if host_busy && min != 0 { min } else { max };
        let paid_at = self.paid_at.swap(now, Ordering::Relaxed);
        if limit == 0 {
            self.debt.store(0, Ordering::Relaxed);
            self.throttled.store(false, Ordering::Release);
            return true;
        }
        // Milliseconds since the last payment, at most a second's worth (no u128: the
        // kernel has no 128-bit division).
        let ms = if paid_at == 0 {
            0
        } else {
            u64::try_from(now.saturating_sub(paid_at) / 1_000_000).unwrap_or(0)
        };
        // `limit` KiB/s is 2 * `limit` sectors a second.
        let paid = limit.saturating_mul(2).saturating_mul(ms.min(1000)) / 1000;
        let debt = self.debt.load(Ordering::Relaxed).saturating_sub(paid);
        self.debt.store(debt, Ordering::Relaxed);
        let over = debt != 0;
        self.throttled.store(over, Ordering::Release);
        !over
    }

    /// Rolls the measurement window over at `now`.
    fn measure(&self, now: i64) {
        let start = self.window_start.load(Ordering::Relaxed);
        let elapsed = now.saturating_sub(start);
        if start != 0 && elapsed < WINDOW_NS {
            return;
        }
        let sectors = self.window_sectors.swap(0, Ordering::Relaxed);
        let speed = if start == 0 || elapsed >= 2 * WINDOW_NS {
            // Idle for a while: no speed to show.
            0
        } else {
            kib_per_s(sectors, elapsed)
        };
        self.speed_kib.store(speed, Ordering::Relaxed);
        self.window_start.store(now, Ordering::Relaxed);
    }

    /// Worker only: `sectors` logical sectors were synced.
    pub(crate) fn done(&self, sectors: u64) {
        self.window_sectors.fetch_add(sectors, Ordering::Relaxed);
        self.debt.fetch_add(sectors, Ordering::Relaxed);
    }

    /// The sweeper: whether the worker waits to be kicked for the limit (and clears it).
    pub(crate) fn take_throttled(&self) -> bool {
        self.throttled.swap(false, Ordering::AcqRel)
    }
}

/// `sectors` in `ns` nanoseconds as KiB/s.
fn kib_per_s(sectors: u64, ns: i64) -> u64 {
    let ms = u64::try_from(ns / 1_000_000).unwrap_or(0).max(1);
    (sectors / 2).saturating_mul(1000) / ms
}
