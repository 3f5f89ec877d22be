// SPDX-License-Identifier: GPL-2.0

//! The lock counters of a clustered target, shown by `dmsetup status`.

use core::sync::atomic::{AtomicBool, AtomicU64};

/// Lock counters for `dmsetup status`.
#[derive(Default)]
pub(crate) struct LockStats {
    /// Lock requests and up-conversions sent to the DLM.
    pub(crate) requests: AtomicU64,
    /// Operations that found their lock cached (no DLM round trip).
    pub(crate) cached: AtomicU64,
    /// Blocking callbacks answered (a down-conversion after the operations in flight).
    pub(crate) blocking: AtomicU64,
    /// Operations that had to wait (for a grant, a conversion or a free cache slot).
    pub(crate) waits: AtomicU64,
    /// This server lost the cluster: writes fail until the table is reloaded.
    pub(crate) lost: AtomicBool,
}
