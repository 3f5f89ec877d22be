// SPDX-License-Identifier: GPL-2.0

//! Device-mapper events (`dm_table_event`) raised from any context: `dmsetup wait`,
//! dmeventd and the event number of `dmsetup info` see them, as dm-raid raises them when a
//! member fails or a sync ends.
//!
//! `dm_table_event` takes a mutex, and what calls for an event (a member failing in a bio's
//! completion) may run in interrupt context, so the event goes out from a work item on the
//! system queue. The table outlives its targets but not the target that asked for the
//! events: [`TableEvents`], owned by that target, closes them when it is dropped, and a
//! work item that runs later does nothing.
//!
//! C header: [`include/linux/device-mapper.h`](srctree/include/linux/device-mapper.h)

use super::bindings as b;
use core::sync::atomic::{AtomicBool, Ordering};
use kernel::{
    impl_has_work, new_work,
    prelude::*,
    sync::Arc,
    workqueue::{self, Work, WorkItem},
};

/// What the owner and every [`EventSender`] share.
#[pin_data]
struct Shared {
    table: *mut b::dm_table,
    /// Set once the owning target goes: no event reaches the table after that.
    closed: AtomicBool,
    #[pin]
    work: Work<Shared>,
}

// SAFETY: the table pointer is only passed to `dm_table_event` while the table is alive
// (see `closed`); the rest is atomics and the work item's own synchronisation.
unsafe impl Send for Shared {}
// SAFETY: see `Send`.
unsafe impl Sync for Shared {}

impl_has_work! {
    impl HasWork<Self> for Shared { self.work }
}

impl WorkItem for Shared {
    type Pointer = Arc<Shared>;

    fn run(this: Arc<Shared>) {
        if this.closed.load(Ordering::SeqCst) {
            return;
        }
        // SAFETY: not closed yet, so the target that owns the events and therefore its
        // table are alive; a close waits for this run to end (`cancel_work_sync`).
        unsafe { b::dm_table_event(this.table) };
    }
}

/// The events of one target's table, owned by that target: dropping it closes them.
pub(crate) struct TableEvents {
    shared: Arc<Shared>,
}

/// Raises events on a target's table from any context, for as long as the target lives
/// (later ones are dropped).
#[derive(Clone)]
pub(crate) struct EventSender {
    shared: Arc<Shared>,
}

impl TableEvents {
    /// The events of `table`, whose target will own the result.
    pub(super) fn new(table: *mut b::dm_table) -> Result<Self> {
        let shared = Arc::pin_init(
            pin_init!(Shared {
                table,
                closed: AtomicBool::new(false),
                work <- new_work!("amf:dm_event"),
            }),
            GFP_KERNEL,
        )?;
        Ok(Self { shared })
    }

    /// A sender for the parts of the target that notice what an event reports.
    pub(crate) fn sender(&self) -> EventSender {
        EventSender {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for TableEvents {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        // SAFETY: the work item is initialised and lives as long as `shared`; after this
        // it is neither queued from before the close nor running, and a later run sees
        // `closed`.
        unsafe { b::cancel_work_sync(Work::raw_get(&self.shared.work)) };
    }
}

impl EventSender {
    /// Whether both raise the events of the same target.
    pub(crate) fn same(&self, other: &EventSender) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// Raises one event (several raised before it goes out make one). Any context.
    pub(crate) fn raise(&self) {
        if !self.shared.closed.load(Ordering::SeqCst) {
            // Already queued: that event will report this change too.
            let _ = workqueue::system().enqueue(self.shared.clone());
        }
    }
}
