// SPDX-License-Identifier: GPL-2.0

//! The stripe worker of a RAID5/6 group: `map` queues every write here (a write needs reads
//! and parity before it may touch the members, which `map` must not wait for), and so do
//! `map` and `end_io` for reads that must be rebuilt from the other members (a failed
//! member). One work item on the group's reclaim-safe workqueue runs them one after another,
//! and between them rebuilds members a few stripes at a time. For a mirror it resubmits
//! reads that `end_io` pointed at another copy, and writes the mirror writes that `map`
//! and `end_io` hand it (cluster mode, write-intent bits not set yet, member failures the
//! superblocks do not record yet).
//!
//! Running one stripe operation at a time is this version's per-stripe serialization: two
//! writes to one stripe never interleave their read, compute and write steps, so parity is
//! never torn. Its buffers are preallocated; its only allocations are bios from its own
//! bio_set (GFP_NOIO, inside a NOIO scope), so it makes progress under memory pressure.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use kernel::{
    new_condvar, new_mutex,
    prelude::*,
    sync::{Arc, CondVar, Mutex},
    workqueue::{impl_has_work, new_work, Work, WorkItem},
};

use crate::cluster::GroupSpace;
use crate::core_proto::bitmap::{self, MAX_SLOT_NODE};
use crate::core_proto::geometry::MemberSet;
use crate::core_proto::superblock::Uuid;
use crate::group::Group;
#[cfg(CONFIG_DLM)]
use crate::kernel_ext::dlm::Wake;
use crate::kernel_ext::{
    bio::{BioOp, BioSet, BlkStatus, DeferredBio, DeferredList},
    block_io::NoIoScope,
    parity,
    workqueue::{OwnedQueue, QueueHandle},
};
use crate::lock_stats::LockStats;
use crate::repl::Replication;
use crate::stripe_lock::StripeLocks;
use crate::stripe_write::{Scratch, StripeEngine, WriteError};
use crate::sync_action::Action;

/// How often the sweeper looks at background work that waits for its speed limit.
const PACE_MS: u32 = 20;

/// Stripes rebuilt per run of the worker before it lets queued host I/O go first.
const REBUILD_BATCH: usize = 8;

/// Stripes between two rebuild checkpoints of a group of `stripes` stripes: a sixteenth of
/// it, at least 64 stripes (a checkpoint is a superblock round on every member).
fn checkpoint_every(stripes: u64) -> u64 {
    (stripes / 16).max(64)
}

/// Logical sectors of one stripe of `group` (a mirror's: one chunk), for the speed.
fn stripe_sectors(group: &Group) -> u64 {
    group.geometry.stripe_sectors().unwrap_or(0)
}

/// Queue and state of the stripe worker.
#[pin_data]
pub(crate) struct StripeWorker {
    group: Arc<Group>,
    /// Bios for member I/O: a step submits at most one per member.
    pool: BioSet,
    raid6_rmw: bool,
    /// The queue it runs on, to queue itself again while a rebuild goes on.
    wq: QueueHandle,
    /// Set while the device is suspended or going away: no rebuild steps.
    paused: AtomicBool,
    /// Cluster deaths already looked at for their write-intent bitmaps.
    seen_deaths: AtomicU64,
    /// The last run resynced: its end is a device-mapper event.
    resyncing: AtomicBool,
    pending: DeferredList,
    #[pin]
    /// Boxed: moved into the worker, a scratch space by value took the constructor's frame
    /// over 1 KiB.
    scratch: Mutex<KBox<Scratch>>,
    #[pin]
    work: Work<StripeWorker>,
}

impl_has_work! {
    impl HasWork<Self> for StripeWorker { self.work }
}

/// Wakes the stripe worker once a sweep period while write-intent bits are set, so that an
/// idle group's bits clear without waiting for its next I/O (md's bitmap daemon), and a
/// few milliseconds after background work stopped at its speed limit.
#[pin_data]
struct Sweeper {
    worker: Arc<StripeWorker>,
    /// The worker's queue (alive while the sweeper runs: see `StripeService::drop`).
    wq: QueueHandle,
    #[pin]
    stop: Mutex<bool>,
    #[pin]
    wake: CondVar,
    #[pin]
    work: Work<Sweeper>,
}

impl_has_work! {
    impl HasWork<Self> for Sweeper { self.work }
}

impl WorkItem for Sweeper {
    type Pointer = Arc<Sweeper>;

    fn run(this: Arc<Sweeper>) {
        let mut stop = this.stop.lock();
        let sweep_ms = crate::write_intent::SWEEP_MS;
        // Milliseconds waited since the last sweep (at least: a notify ends a wait early).
        let mut waited = 0;
        while !*stop {
            let group = &this.worker.group;
            // While background work waits, often enough to pace it (see `SyncPace`).
            let ms = if group.syncing() { PACE_MS } else { sweep_ms };
            let period = kernel::time::msecs_to_jiffies(ms);
            // A signal cannot reach a kworker; the stop flag is checked either way.
            let _ = this.wake.wait_interruptible_timeout(&mut stop, period);
            waited += ms;
            let sweep = waited >= sweep_ms;
            if sweep {
                waited = 0;
            }
            let dirty = sweep && group.intent().is_some_and(|wi| wi.counters().1 != 0);
            let throttled = group.pace().take_throttled();
            if !*stop && (dirty || throttled) {
                // SAFETY: `StripeService::drop` stops this loop before the queue goes.
                let _ = unsafe { this.wq.get() }.enqueue(this.worker.clone());
            }
        }
    }
}

/// The worker and the workqueue it runs on. Dropping it waits for the worker to finish.
pub(crate) struct StripeService {
    /// Declared before `queue`: destroyed (waiting for the sweeper to return) first.
    sweeper: Option<(OwnedQueue, Arc<Sweeper>)>,
    // Declared first so that it drops first: `destroy_workqueue` waits for a running worker
    // before the worker's state (and the group's members) go away.
    queue: OwnedQueue,
    worker: Arc<StripeWorker>,
    /// The replication channel, to halt a worker that a fault stopped dead before waiting
    /// for it.
    repl: Option<Arc<Replication>>,
}

/// The work item that wakes `worker` every sweep period while bits of its write-intent
/// bitmap are set, and paces its background work. Apart from [`StripeService::new`] to keep
/// its frame small.
#[inline(never)]
fn start_sweeper(
    worker: &Arc<StripeWorker>,
    wq: QueueHandle,
) -> Result<Option<(OwnedQueue, Arc<Sweeper>)>> {
    let sq = OwnedQueue::new_unbound(c"amf_sweep", 1)?;
    let sw = Arc::pin_init(
        pin_init!(Sweeper {
            worker: worker.clone(),
            wq,
            stop <- new_mutex!(false, "amf:sweep_stop"),
            wake <- new_condvar!("amf:sweep_wake"),
            work <- new_work!("amf:sweeper"),
        }),
        GFP_KERNEL,
    )?;
    sq.enqueue(sw.clone()).map_err(|_| EINVAL)?;
    Ok(Some((sq, sw)))
}

impl StripeService {
    /// Allocates the worker for `group`, with buffers for one stripe (`raid6`: with Q). It
    /// starts paused: `resume` lets a rebuild run.
    ///
    /// With `cluster` every stripe operation holds the stripe's DLM lock.
    #[inline(never)]
    pub(crate) fn new(
        group: Arc<Group>,
        raid6: bool,
        cluster: Option<ClusterLocks>,
    ) -> Result<Self> {
        let g = group.geometry;
        let chunk_bytes = usize::try_from(g.chunk_sectors() * 512).map_err(|_| EINVAL)?;
        // A clustered mirror writes through the worker too (under the stripe lock, with
        // replication), and so does a mirror's write into a region whose write-intent bit
        // is not set yet, and its resync, and with superblocks a write that waits for a
        // failure to be recorded; and every worker checks and repairs its group online
        // (`check`, `repair`: a mirror compares a copy beside the first): buffers for a
        // stripe, a chunk for a mirror.
        let scratch = Scratch::boxed(g.data_chunks(), chunk_bytes, raid6)?;
        let pool = BioSet::with_bvecs(g.members() as u32)?;
        let queue = OwnedQueue::new_reclaim(c"amf_stripe", 1)?;
        let wq = queue.handle();
        let worker = Arc::pin_init(
            pin_init!(StripeWorker {
                group,
                pool,
                raid6_rmw: parity::has_xor_syndrome(),
                wq,
                paused: AtomicBool::new(true),
                seen_deaths: AtomicU64::new(0),
                resyncing: AtomicBool::new(false),
                pending: DeferredList::new(),
                scratch <- new_mutex!(scratch, "amf:stripe_scratch"),
                work <- new_work!("amf:stripe_worker"),
            }),
            GFP_KERNEL,
        )?;
        let repl = cluster.as_ref().and_then(|c| c.repl.clone());
        if let Some(c) = cluster {
            let locks = StripeLocks::new(
                c.space,
                (c.group, c.members),
                c.lock_stripes,
                worker.clone(),
                c.stats,
            )?;
            if let Some(r) = c.repl.as_ref() {
                r.set_worker(Some(worker.clone()));
            }
            let mut scratch = worker.scratch.lock();
            scratch.locks = Some(locks);
            scratch.repl = c.repl;
        }
        // Last: nothing may fail after it starts (dropping it unstarted would wait forever).
        let sweeper = start_sweeper(&worker, wq)?;
        Ok(Self {
            sweeper,
            queue,
            worker,
            repl,
        })
    }

    /// Queues a bio whose sector was set to the target-relative sector; never sleeps, safe
    /// in interrupt context.
    pub(crate) fn submit(&self, bio: DeferredBio) {
        self.worker.pending.push(bio);
        self.kick();
    }

    /// Makes the worker run (host I/O or rebuild steps waiting).
    pub(crate) fn kick(&self) {
        // Already queued (and not yet running) is fine: that run will see the work.
        let _ = self.queue.enqueue(self.worker.clone());
    }

    /// Background work starts (a rebuild, a check): the worker runs, and the sweeper paces
    /// it from now on rather than at the end of its sweep period.
    pub(crate) fn kick_sync(&self) {
        if let Some((_, sw)) = self.sweeper.as_ref() {
            sw.wake.notify_all();
        }
        self.kick();
    }

    /// Stops rebuild steps and waits for the worker's current run (device suspend).
    pub(crate) fn pause(&self) {
        self.worker.paused.store(true, Ordering::Release);
        self.queue.flush();
    }

    /// Records the member states in the superblocks if they changed (under the group's
    /// member-state lock in cluster mode). Sleeps.
    pub(crate) fn record_state(&self) -> Result {
        let mut scratch = self.worker.scratch.lock();
        self.worker
            .group
            .record_state_locked(scratch.locks.as_mut())
    }

    /// Lets rebuild steps run again (device resume).
    pub(crate) fn unpause(&self) {
        self.worker.paused.store(false, Ordering::Release);
        self.kick_sync();
    }
}

impl Drop for StripeService {
    fn drop(&mut self) {
        if let Some((_, sw)) = self.sweeper.as_ref() {
            // Its queue (dropped first) then waits for the loop to return.
            *sw.stop.lock() = true;
            sw.wake.notify_all();
        }
        // No more self-requeueing: lets `destroy_workqueue` finish its drain.
        self.worker.paused.store(true, Ordering::Release);
        if let Some(r) = self.repl.as_ref() {
            // A worker parked by `fail_after` holds the scratch space until halted.
            r.halt();
        }
        // Unlock the cluster locks while the queue still runs the worker that answers
        // callbacks; this also drops the lock table's reference to the worker.
        let (locks, repl) = {
            let mut s = self.worker.scratch.lock();
            (s.locks.take(), s.repl.take())
        };
        drop(locks);
        if let Some(r) = repl {
            // Breaks the replication's reference to the worker.
            r.set_worker(None);
        }
    }
}

/// What a clustered group's worker needs to take stripe locks.
pub(crate) struct ClusterLocks {
    /// The group's lockspace.
    pub(crate) space: Arc<GroupSpace>,
    /// The group UUID (lock names carry it).
    pub(crate) group: Uuid,
    /// Stripes per lock.
    pub(crate) lock_stripes: u32,
    /// Counters shown by `dmsetup status`.
    pub(crate) stats: Arc<LockStats>,
    /// The replication channel (`peers`).
    pub(crate) repl: Option<Arc<Replication>>,
    /// The group has superblocks: member states are agreed under the member-state lock.
    pub(crate) members: bool,
}

#[cfg(CONFIG_DLM)]
impl Wake for StripeWorker {
    fn wake(this: &Arc<Self>) {
        // SAFETY: the lock table that calls this lives in the worker's scratch space, which
        // `StripeService::drop` empties before the queue is destroyed: the queue is alive.
        let _ = unsafe { this.wq.get() }.enqueue(this.clone());
    }
}

impl StripeWorker {
    /// Runs every queued bio, oldest first, until none is left; returns whether there was
    /// any.
    fn drain(&self, engine: &StripeEngine<'_>, scratch: &mut Scratch) -> bool {
        let mut any = false;
        loop {
            let mut batch = self.pending.take_all().peekable();
            if batch.peek().is_none() {
                return any;
            }
            any = true;
            for mut bio in batch {
                if self.group.geometry.parity_chunks() == 0 && bio.op() == BioOp::Read {
                    // A mirror read retry, already pointed at the next copy.
                    bio.resubmit();
                    continue;
                }
                let logical = bio.sector();
                let done = if bio.op() == BioOp::Read {
                    engine.read_bio(scratch, &mut bio, logical)
                } else {
                    engine.write_bio(scratch, &bio, logical)
                };
                bio.end(if done.is_ok() {
                    BlkStatus::OK
                } else {
                    BlkStatus::IOERR
                });
            }
        }
    }

    /// Rebuilds up to [`REBUILD_BATCH`] stripes; returns whether a rebuild goes on.
    fn rebuild_some(&self, engine: &StripeEngine<'_>, scratch: &mut Scratch) -> bool {
        let group = &*self.group;
        for _ in 0..REBUILD_BATCH {
            let targets = group.rebuilding();
            if targets.is_empty() || self.paused.load(Ordering::Acquire) {
                break;
            }
            let stripe = group.rebuild_cursor();
            match scratch.with_stripe_lock(engine, stripe, |s| {
                engine.rebuild_stripe(s, stripe, targets)
            }) {
                Ok(()) => {
                    group.pace().done(stripe_sectors(group));
                    group.rebuild_advanced(stripe);
                    if (stripe + 1) % checkpoint_every(group.geometry.stripes()) == 0 {
                        group.checkpoint_rebuild();
                    }
                    if group.rebuilding().is_empty() || group.checkpoint_pending() {
                        // A checkpoint, or the end of the rebuild: the superblocks say how
                        // far it got, or in sync again.
                        if let Err(e) = group.record_state_locked(scratch.locks.as_mut()) {
                            pr_err!("cannot record the rebuild's progress: {e:?}\n");
                        }
                    }
                }
                // A member failed: the next round re-evaluates what is left.
                Err(WriteError::Io) if group.can_serve() => break,
                Err(e) => {
                    pr_err!("rebuild stopped at stripe {stripe}: {e:?}\n");
                    group.abandon_rebuild(MemberSet(u64::MAX));
                    break;
                }
            }
        }
        !group.rebuilding().is_empty()
    }

    /// Checks (or repairs) up to [`REBUILD_BATCH`] stripes of the running sync action;
    /// returns whether it goes on.
    fn check_some(&self, engine: &StripeEngine<'_>, scratch: &mut Scratch) -> bool {
        let group = &*self.group;
        let sync = group.sync_action();
        for _ in 0..REBUILD_BATCH {
            let Some(action) = sync.running() else {
                return false;
            };
            if group.direct_writes_in_flight() {
                // Mirror writes `map` sent before the action started: compared copies
                // must not race them. Later ones come to this worker.
                crate::kernel_ext::delay::msleep(1);
                return true;
            }
            let stripe = sync.cursor();
            if stripe >= group.geometry.stripes() {
                if sync.stop() {
                    pr_info!(
                        "{}: done, {} mismatched sectors\n",
                        action.name(),
                        sync.mismatches()
                    );
                    group.raise_event();
                }
                return false;
            }
            let repair = action == Action::Repair;
            match scratch
                .with_stripe_lock(engine, stripe, |s| engine.check_stripe(s, stripe, repair))
            {
                Ok(n) => {
                    group.pace().done(stripe_sectors(group));
                    sync.advanced(stripe, n);
                }
                Err(e) => {
                    pr_err!("{}: stopped at stripe {stripe}: {e:?}\n", action.name());
                    if sync.stop() {
                        group.raise_event();
                    }
                    return false;
                }
            }
        }
        sync.running().is_some()
    }

    /// Cluster mode without replication: when a node died, the recoverer (lowest live
    /// node) takes its write-intent bitmap's dirty regions over, to resync them (its
    /// operation in flight may have torn a row that no record covers).
    fn adopt_dead(&self, scratch: &Scratch) {
        let (Some(wi), Some(locks)) = (self.group.intent(), scratch.locks.as_ref()) else {
            return;
        };
        let m = locks.membership();
        let deaths = m.deaths();
        if m.recovering() || deaths == self.seen_deaths.load(Ordering::Acquire) {
            return;
        }
        self.seen_deaths.store(deaths, Ordering::Release);
        let live = m.live_nodes();
        let dead = m.pending_deaths() & !live;
        if crate::core_proto::recovery::recoverer(live) != Some(m.our_node()) {
            return;
        }
        let dead_slots = (1..=MAX_SLOT_NODE).filter(|n| dead & (1u64 << n) != 0);
        for (node, slot) in dead_slots.filter_map(|n| Some((n, bitmap::node_slot(n)?))) {
            match wi.adopt_slot(&self.group.members, self.group.failed().0, slot) {
                Ok(n) => {
                    pr_info!("resync: {n} dirty regions of dead node {node} taken over\n");
                    self.group.raise_event();
                }
                Err(e) => pr_err!("resync: cannot take over dead node {node}'s bitmap: {e:?}\n"),
            }
            if let Some(log) = self.group.parity_log() {
                // Its write in flight, if it logged one, is replayed by this AMF.
                if let Err(e) = log.adopt(&self.group.members, self.group.failed().0, slot, true) {
                    pr_err!("ppl: cannot take over dead node {node}'s log: {e:?}\n");
                }
            }
        }
    }

    /// Resyncs up to [`REBUILD_BATCH`] rows of the regions the write-intent bitmap found
    /// dirty at start; returns whether a resync goes on.
    fn resync_some(&self, engine: &StripeEngine<'_>, scratch: &mut Scratch) -> bool {
        let group = &*self.group;
        let Some(wi) = group.intent() else {
            return false;
        };
        let g = &group.geometry;
        let rows_per_region = (wi.region_sectors() / g.chunk_sectors().max(1)).max(1);
        let mut budget = REBUILD_BATCH as u64;
        while budget > 0 && !self.paused.load(Ordering::Acquire) {
            let Some((region, rows)) = wi.next_resync(rows_per_region, g.stripes()) else {
                return false;
            };
            let mut row = rows.first.max(wi.resync_row(region, rows.first));
            while row < rows.end && budget > 0 {
                let done = scratch.with_stripe_lock(engine, row, |s| engine.resync_stripe(s, row));
                match done {
                    Ok(()) => group.pace().done(stripe_sectors(group)),
                    // A member failed: the next run re-evaluates the row without it.
                    Err(WriteError::Io) if group.can_serve() => return true,
                    Err(e) => {
                        pr_err!("resync stopped at row {row}: {e:?}; the bits stay set\n");
                        wi.abandon_resync();
                        return false;
                    }
                }
                row += 1;
                budget -= 1;
            }
            if row >= rows.end {
                wi.resync_done(region);
            } else {
                wi.set_resync_row(region, row);
            }
        }
        true
    }
}

impl WorkItem for StripeWorker {
    type Pointer = Arc<StripeWorker>;

    fn run(this: Arc<StripeWorker>) {
        let _noio = NoIoScope::enter();
        let more = {
            let mut scratch = this.scratch.lock();
            let engine = StripeEngine {
                group: &this.group,
                pool: &this.pool,
                raid6_rmw: this.raid6_rmw,
            };
            if scratch.repl.is_none() {
                // Dead AMFs' bitmaps and log entries, before any host write of this run.
                this.adopt_dead(&scratch);
            }
            // This AMF's entry from its last start, or a dead AMF's just adopted.
            if let Err(e) = engine.replay_log(&mut scratch) {
                pr_err!("ppl: replay failed ({e:?}); tried again on the next run\n");
            }
            let host_busy = this.drain(&engine, &mut scratch);
            if scratch.repl.is_some() {
                // Dead AMFs' operations are taken over even when no host I/O comes.
                let _ = crate::failover::settle(&engine, &mut scratch);
            }
            if let Some(locks) = scratch.locks.as_mut() {
                // Blocking callbacks that arrived while idle: let the locks go.
                locks.idle();
            }
            let paused = this.paused.load(Ordering::Acquire);
            // Over its speed limit the background work waits for the sweeper's kick.
            let may_sync = !paused && this.group.pace().may_run(host_busy);
            let resyncing = may_sync && this.resync_some(&engine, &mut scratch);
            if may_sync && !resyncing && this.resyncing.swap(false, Ordering::AcqRel) {
                pr_info!("resync: done\n");
                this.group.raise_event();
            }
            if resyncing {
                this.resyncing.store(true, Ordering::Release);
            }
            let rebuilding = may_sync && this.rebuild_some(&engine, &mut scratch);
            let checking =
                may_sync && !resyncing && !rebuilding && this.check_some(&engine, &mut scratch);
            if let Some(wi) = this.group.intent().filter(|_| !paused) {
                // Lazily: bits of regions idle for a whole period.
                wi.sweep(&this.group.members, this.group.failed().0, false);
            }
            resyncing || rebuilding || checking
        };
        if more {
            let wq = this.wq;
            // SAFETY: we are in `run` of an item of that queue.
            let _ = unsafe { wq.get() }.enqueue(this);
        }
    }
}
