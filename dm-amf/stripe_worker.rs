// SPDX-License-Identifier: GPL-2.0

//! The stripe worker of a RAID5/6 group: `map` queues every write here (a write needs reads
//! and parity before it may touch the members, which `map` must not wait for), and so do
//! `map` and `end_io` for reads that must be rebuilt from the other members (a failed
//! member). One work item on the group's reclaim-safe workqueue runs them one after another.
//!
//! Running one stripe operation at a time is this version's per-stripe serialization: two
//! writes to one stripe never interleave their read, compute and write steps, so parity is
//! never torn. Its buffers are preallocated; its only allocations are bios from its own
//! bio_set (GFP_NOIO, inside a NOIO scope), so it makes progress under memory pressure.

use kernel::{
    new_mutex,
    prelude::*,
    sync::{Arc, Mutex},
    workqueue::{impl_has_work, new_work, Work, WorkItem},
};

use crate::group::Group;
use crate::kernel_ext::{
    bio::{BioOp, BioSet, BlkStatus, DeferredBio, DeferredList},
    block_io::NoIoScope,
    parity,
    workqueue::OwnedQueue,
};
use crate::stripe_write::{Scratch, StripeEngine};

/// Queue and state of the stripe worker.
#[pin_data]
pub(crate) struct StripeWorker {
    group: Arc<Group>,
    /// Bios for member I/O: a step submits at most one per member.
    pool: BioSet,
    raid6_rmw: bool,
    pending: DeferredList,
    #[pin]
    scratch: Mutex<Scratch>,
    #[pin]
    work: Work<StripeWorker>,
}

impl_has_work! {
    impl HasWork<Self> for StripeWorker { self.work }
}

/// The worker and the workqueue it runs on. Dropping it waits for the worker to finish.
pub(crate) struct StripeService {
    // Declared first so that it drops first: `destroy_workqueue` waits for a running worker
    // before the worker's state (and the group's members) go away.
    queue: OwnedQueue,
    worker: Arc<StripeWorker>,
}

impl StripeService {
    /// Allocates the worker for `group` with buffers for one stripe.
    pub(crate) fn new(group: Arc<Group>, raid6: bool) -> Result<Self> {
        let g = group.geometry;
        let chunk_bytes = usize::try_from(g.chunk_sectors() * 512).map_err(|_| EINVAL)?;
        let scratch = Scratch::new(g.data_chunks(), chunk_bytes, raid6)?;
        let pool = BioSet::with_bvecs(g.members() as u32)?;
        let worker = Arc::pin_init(
            pin_init!(StripeWorker {
                group,
                pool,
                raid6_rmw: parity::has_xor_syndrome(),
                pending: DeferredList::new(),
                scratch <- new_mutex!(scratch, "amf:stripe_scratch"),
                work <- new_work!("amf:stripe_worker"),
            }),
            GFP_KERNEL,
        )?;
        Ok(Self {
            queue: OwnedQueue::new_reclaim(c"amf_stripe", 1)?,
            worker,
        })
    }

    /// Queues a bio whose sector was set to the target-relative sector; never sleeps, safe
    /// in interrupt context.
    pub(crate) fn submit(&self, bio: DeferredBio) {
        self.worker.pending.push(bio);
        // Already queued (and not yet running) is fine: that run will see this bio.
        let _ = self.queue.enqueue(self.worker.clone());
    }
}

impl WorkItem for StripeWorker {
    type Pointer = Arc<StripeWorker>;

    fn run(this: Arc<StripeWorker>) {
        let _noio = NoIoScope::enter();
        let mut scratch = this.scratch.lock();
        let writer = StripeEngine {
            group: &this.group,
            pool: &this.pool,
            raid6_rmw: this.raid6_rmw,
        };
        loop {
            let mut batch = this.pending.take_all().peekable();
            if batch.peek().is_none() {
                break;
            }
            for mut bio in batch {
                let logical = bio.sector();
                let done = if bio.op() == BioOp::Read {
                    writer.read_bio(&mut scratch, &mut bio, logical)
                } else {
                    writer.write_bio(&mut scratch, &bio, logical)
                };
                bio.end(if done.is_ok() {
                    BlkStatus::OK
                } else {
                    BlkStatus::IOERR
                });
            }
        }
    }
}
