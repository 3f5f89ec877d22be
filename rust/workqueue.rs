// SPDX-License-Identifier: GPL-2.0

//! A workqueue a driver owns (`alloc_workqueue`/`destroy_workqueue`), for work that storage
//! I/O depends on: `WQ_MEM_RECLAIM` gives it a rescuer thread, so it makes progress when
//! memory is short and reclaim itself waits for our writes. The kernel crate only offers
//! the shared system queues.
//!
//! C header: [`include/linux/workqueue.h`](srctree/include/linux/workqueue.h)

use core::{ops::Deref, ptr::NonNull};
use kernel::{bindings, prelude::*, workqueue::Queue};

/// An owned workqueue; dropping it waits for every queued and running item
/// (`destroy_workqueue` drains it first).
pub(crate) struct OwnedQueue {
    raw: NonNull<bindings::workqueue_struct>,
}

// SAFETY: a workqueue is used from any CPU through its own locking.
unsafe impl Send for OwnedQueue {}
// SAFETY: see `Send`; `&OwnedQueue` only enqueues.
unsafe impl Sync for OwnedQueue {}

impl OwnedQueue {
    /// A reclaim-safe queue named `name` running at most `max_active` items at once.
    pub(crate) fn new_reclaim(name: &core::ffi::CStr, max_active: i32) -> Result<Self> {
        // SAFETY: the format is the constant "%s" and its one argument a NUL-terminated
        // string that `alloc_workqueue` copies.
        let raw = unsafe {
            bindings::alloc_workqueue(
                c"%s".as_ptr().cast(),
                bindings::wq_flags_WQ_MEM_RECLAIM,
                max_active,
                name.as_ptr(),
            )
        };
        Ok(Self {
            raw: NonNull::new(raw).ok_or(ENOMEM)?,
        })
    }
}

impl OwnedQueue {
    /// A reclaim-safe queue not bound to a CPU, for items that loop for a long time
    /// (connection loops that sleep in socket calls), at most `max_active` at once.
    pub(crate) fn new_unbound(name: &core::ffi::CStr, max_active: i32) -> Result<Self> {
        // SAFETY: as in `new_reclaim`.
        let raw = unsafe {
            bindings::alloc_workqueue(
                c"%s".as_ptr().cast(),
                bindings::wq_flags_WQ_MEM_RECLAIM | bindings::wq_flags_WQ_UNBOUND,
                max_active,
                name.as_ptr(),
            )
        };
        Ok(Self {
            raw: NonNull::new(raw).ok_or(ENOMEM)?,
        })
    }

    /// Waits until every item queued so far has run.
    pub(crate) fn flush(&self) {
        // SAFETY: the queue is alive while `self` is.
        unsafe { bindings::__flush_workqueue(self.raw.as_ptr()) };
    }

    /// A handle for work items that queue themselves again (see [`QueueHandle`]).
    pub(crate) fn handle(&self) -> QueueHandle {
        QueueHandle { raw: self.raw }
    }
}

/// The address of an [`OwnedQueue`], for a work item that queues itself again from its own
/// `run`: the queue cannot be destroyed while one of its items runs (`destroy_workqueue`
/// drains it first, and allows an item to requeue itself while draining), so using the
/// handle from inside `run` of an item of that queue is sound.
#[derive(Clone, Copy)]
pub(crate) struct QueueHandle {
    raw: NonNull<bindings::workqueue_struct>,
}

// SAFETY: only an address; see the type's rule for when it may be used.
unsafe impl Send for QueueHandle {}
// SAFETY: see `Send`.
unsafe impl Sync for QueueHandle {}

impl QueueHandle {
    /// The queue.
    ///
    /// # Safety
    ///
    /// Call only from the `run` of a work item running on this queue.
    pub(crate) unsafe fn get(&self) -> &Queue {
        // SAFETY: per the contract the queue is alive for the duration of that `run`.
        unsafe { Queue::from_raw(self.raw.as_ptr()) }
    }
}

impl Deref for OwnedQueue {
    type Target = Queue;

    fn deref(&self) -> &Queue {
        // SAFETY: the queue lives until `self` is dropped, which outlives the borrow.
        unsafe { Queue::from_raw(self.raw.as_ptr()) }
    }
}

impl Drop for OwnedQueue {
    fn drop(&mut self) {
        // SAFETY: allocated in `new_reclaim` and destroyed once; it drains pending work.
        unsafe { bindings::destroy_workqueue(self.raw.as_ptr()) };
    }
}
