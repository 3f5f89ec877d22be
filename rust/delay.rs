// SPDX-License-Identifier: GPL-2.0

//! Sleeping for a while: `msleep`, which the `kernel` crate of 6.12 does not wrap.

use kernel::bindings;

/// Sleeps for at least `ms` milliseconds (uninterruptibly). Process context only: the
/// callers are work items, the constructor and message handlers, never `map` or `end_io`.
pub(crate) fn msleep(ms: u32) {
    // SAFETY: `msleep` takes any value; the callers run in process context (above), where
    // sleeping is allowed.
    unsafe { bindings::msleep(ms) };
}
