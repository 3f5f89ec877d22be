// SPDX-License-Identifier: GPL-2.0

//! Rate limiting of log messages, as `pr_warn_ratelimited` does in C (the `kernel` crate of
//! 6.12 has no such macro): a peer that keeps failing authentication must not flood the
//! log, but the first failures of each interval must be seen.

use core::sync::atomic::{AtomicI64, AtomicU32, Ordering};

use kernel::time::Ktime;

/// Messages per interval, as `DEFAULT_RATELIMIT_BURST`.
const BURST: u32 = 10;
/// Interval, as `DEFAULT_RATELIMIT_INTERVAL` (5 s).
const INTERVAL_NS: i64 = 5_000_000_000;

/// One rate-limited message source. Lock-free: concurrent callers may let one message more
/// or less through at an interval's edge, which is all a log limit needs.
pub(crate) struct RateLimit {
    /// Start of the current interval (ktime ns); 0 before the first message.
    start: AtomicI64,
    /// Messages allowed in the current interval.
    printed: AtomicU32,
    /// Messages suppressed since the last one allowed.
    missed: AtomicU32,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self::new()
    }
}

impl RateLimit {
    /// A limiter that has allowed nothing yet.
    pub(crate) const fn new() -> Self {
        Self {
            start: AtomicI64::new(0),
            printed: AtomicU32::new(0),
            missed: AtomicU32::new(0),
        }
    }

    /// Whether a message may be printed now: `Some(n)` with the number of messages
    /// suppressed since the last one printed, `None` to suppress this one.
    pub(crate) fn allow(&self) -> Option<u32> {
        let now = Ktime::ktime_get().to_ns();
        let start = self.start.load(Ordering::Acquire);
        if (start == 0 || now.saturating_sub(start) >= INTERVAL_NS)
            && self
                .start
                .compare_exchange(start, now.max(1), Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.printed.store(0, Ordering::Release);
        }
        if self.printed.fetch_add(1, Ordering::AcqRel) < BURST {
            Some(self.missed.swap(0, Ordering::AcqRel))
        } else {
            self.printed.store(BURST, Ordering::Release);
            self.missed.fetch_add(1, Ordering::AcqRel);
            None
        }
    }
}
