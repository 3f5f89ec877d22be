// SPDX-License-Identifier: GPL-2.0

//! The redundancy group a target serves: its geometry, member devices and which members
//! have failed, shared by `map`, `end_io` and the stripe worker.

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};

use kernel::{
    prelude::*,
    sync::{Arc, Mutex},
};

use crate::core_proto::geometry::{Geometry, MemberSet};
use crate::kernel_ext::{device_mapper::DmDev, dm_event::EventSender};
use crate::metadata::GroupMeta;
use crate::parity_log::ParityLog;
use crate::stripe_lock::StripeLocks;
use crate::sync_action::SyncAction;
use crate::sync_pace::SyncPace;
use crate::write_intent::WriteIntent;

/// One member device (none if the table names it missing: `-`) and where its data area
/// starts.
pub(crate) struct Member {
    pub(crate) dev: Option<DmDev>,
    pub(crate) offset: u64,
}

impl Member {
    /// Its name for logs and `dmsetup table`: `major:minor`, or `-` when missing.
    pub(crate) fn name(&self) -> &str {
        self.dev.as_ref().map_or("-", |d| d.name())
    }
}

/// The members in `set` (bit i = member i) that have a device, with their indexes: the
/// targets of a write or flush to every member of a set.
pub(crate) fn devices_in(members: &[Member], set: u64) -> impl Iterator<Item = (usize, &DmDev)> {
    members
        .iter()
        .enumerate()
        .filter(move |(i, _)| MemberSet(set).contains(*i))
        .filter_map(|(i, m)| Some((i, m.dev.as_ref()?)))
}

/// What a new grant of the group's member-state lock says about the member states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Round {
    /// The event counter of the last round written under the lock.
    Events(u64),
    /// Unknown (no round written since every holder left, or a writer died holding EX):
    /// read the superblocks.
    Unknown,
}

/// The superblocks, the write-intent bitmap and the partial parity log of a group named by
/// the table.
pub(crate) type OnDisk = (
    Option<Pin<KBox<Mutex<GroupMeta>>>>,
    Option<Pin<KBox<WriteIntent>>>,
    Option<Pin<KBox<ParityLog>>>,
);

/// Geometry and members of the group.
pub(crate) struct Group {
    pub(crate) geometry: Geometry,
    pub(crate) chunk_sectors: u32,
    /// Sectors each member contributes (from `offset`).
    pub(crate) member_len: u64,
    pub(crate) members: KVec<Member>,
    /// Members that returned an I/O error (bit i = member i). Never cleared while the table
    /// lives: a failed member is out until the administrator replaces it.
    failed: AtomicU64,
    /// Failed members already named in the kernel log (a mirror copy's completion sets its
    /// bit in `failed` directly, see [`Self::copy_failures`]).
    logged: AtomicU64,
    /// Members being rebuilt (bit i = member i): in sync below stripe `cursor` only.
    rebuilding: AtomicU64,
    /// First stripe not rebuilt yet; only the stripe worker advances it.
    cursor: AtomicU64,
    /// The superblocks, when the table names the group (`group <uuid>`).
    meta: Option<Pin<KBox<Mutex<GroupMeta>>>>,
    /// Failed and rebuilding members as last recorded in the superblocks (all ones: not
    /// recorded yet, so the first check writes what the constructor found if it differs).
    recorded: AtomicU64,
    recorded_rebuilding: AtomicU64,
    /// The rebuild's progress is to be recorded (a checkpoint).
    checkpoint_due: AtomicBool,
    /// This AMF's write-intent bitmap (raid1/5/6 with `group <uuid>`).
    intent: Option<Pin<KBox<WriteIntent>>>,
    /// This AMF's partial parity log (raid5/6 with `group <uuid>`).
    log: Option<Pin<KBox<ParityLog>>>,
    /// Test hook without peers (`fail_after data`): 0 off, [`HALT_ARMED`], [`HALT_FIRED`].
    halt: AtomicU8,
    /// Device-mapper events: a member failed, a rebuild started, ended or was abandoned.
    dm_events: EventSender,
    /// The online check or repair (`check`, `repair` messages).
    sync: SyncAction,
    /// Speed limits and speed of the background work (`sync_speed_min`/`_max` messages).
    pace: SyncPace,
    /// Mirror writes `map` sent to the members itself that have not ended: a check of the
    /// copies waits until none is left (while it runs, `map` hands writes to the worker).
    direct_writes: AtomicU64,
}

/// `fail_after data` was given: the next RAID5/6 write stops after its data.
const HALT_ARMED: u8 = 1;
/// A write stopped after its data and waits for `fail_after off`.
const HALT_FIRED: u8 = 2;

impl Group {
    /// A group whose members `failed` are out of service from the start (missing, or
    /// failed according to its superblocks `meta`) and whose members `rebuilding` are
    /// rewritten from the others from stripe 0 once the worker runs.
    /// Built in place on the heap, apart from the constructor's frame.
    #[inline(never)]
    pub(crate) fn new(
        geometry: Geometry,
        chunk_sectors: u32,
        member_len: u64,
        members: KVec<Member>,
        (failed, rebuilding, from_stripe): (MemberSet, MemberSet, u64),
        (meta, intent, log): OnDisk,
        dm_events: EventSender,
    ) -> Result<Arc<Self>> {
        let group = Self {
            geometry,
            chunk_sectors,
            member_len,
            members,
            failed: AtomicU64::new(failed.0),
            logged: AtomicU64::new(failed.0),
            rebuilding: AtomicU64::new(rebuilding.0),
            cursor: AtomicU64::new(from_stripe),
            meta,
            recorded: AtomicU64::new(u64::MAX),
            recorded_rebuilding: AtomicU64::new(u64::MAX),
            checkpoint_due: AtomicBool::new(false),
            intent,
            log,
            halt: AtomicU8::new(0),
            dm_events,
            sync: SyncAction::new(),
            pace: SyncPace::new(),
            direct_writes: AtomicU64::new(0),
        };
        Ok(Arc::new(group, GFP_KERNEL)?)
    }

    /// Arms (`true`) or cancels and releases (`false`) the test hook that stops the next
    /// RAID5/6 write after its data, before its parity (`fail_after data` without peers).
    pub(crate) fn arm_halt(&self, on: bool) {
        self.halt
            .store(if on { HALT_ARMED } else { 0 }, Ordering::Release);
    }

    /// Whether the next write is to stop after its data.
    pub(crate) fn halt_armed(&self) -> bool {
        self.halt.load(Ordering::Acquire) == HALT_ARMED
    }

    /// Called by the worker once a write's data, and not its parity, is on the members
    /// while the hook is armed: waits, doing nothing more, until `fail_after off` (the test
    /// kills the machine meanwhile: a torn stripe), then fails the write. Sleeps.
    pub(crate) fn halt_after_data(&self) {
        if self
            .halt
            .compare_exchange(HALT_ARMED, HALT_FIRED, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        pr_notice!("dm-amf: stopped dead after data (fault injection)\n");
        while self.halt.load(Ordering::Acquire) == HALT_FIRED {
            // Process context (the stripe worker).
            crate::kernel_ext::delay::msleep(100);
        }
    }

    /// The write-intent bitmap, if the group keeps one.
    pub(crate) fn intent(&self) -> Option<&WriteIntent> {
        self.intent.as_deref()
    }

    /// The partial parity log, if the group keeps one.
    pub(crate) fn parity_log(&self) -> Option<&ParityLog> {
        self.log.as_deref()
    }

    /// Retires this AMF's live log entry, if any (members whose write fails are failed).
    /// Stripe worker or a quiesced device only; sleeps.
    pub(crate) fn retire_log(&self) -> Result {
        let Some(log) = self.parity_log() else {
            return Ok(());
        };
        let bad = log.retire(&mut log.lock(), &self.members, !self.failed().0)?;
        self.mark_failed(MemberSet(bad));
        Ok(())
    }

    /// Makes the write-intent bit of the row at member sector `sector` durable before a
    /// write into it is issued (members whose bitmap write fails are failed). Stripe worker
    /// only; sleeps.
    pub(crate) fn mark_intent(&self, sector: u64) -> Result {
        let Some(wi) = self.intent() else {
            return Ok(());
        };
        let bad = wi.mark(&self.members, self.failed().0, sector)?;
        if bad != 0 {
            self.mark_failed(MemberSet(bad));
        }
        Ok(())
    }

    /// Records in the superblocks (if the table names the group) the member states as they
    /// are now, if they changed since the last record: before a write relies on a failure,
    /// and when a rebuild starts or ends. Sleeps: never from `map` or `end_io`.
    pub(crate) fn record_state(&self) -> Result {
        let Some(meta) = self.meta.as_ref() else {
            return Ok(());
        };
        if !self.state_changed() {
            return Ok(());
        }
        self.write_round(&mut meta.lock())
    }

    /// Writes a round of the member states as they are now on top of `meta`'s group state
    /// (nothing if they are what it records) and notes them as recorded. A member whose
    /// superblock write fails is failed and the next round records that on the others (as
    /// md rewrites its superblocks after `md_error`), while the group can serve: each round
    /// fails one more member or ends.
    fn write_round(&self, meta: &mut GroupMeta) -> Result {
        for _ in 0..=self.members.len() {
            let (failed, rebuilding) = (self.failed(), self.rebuilding());
            let bad = meta.record(&self.members, failed, (rebuilding, self.checkpoint()))?;
            if bad.is_empty() {
                self.checkpoint_due.store(false, Ordering::Release);
                self.recorded.store(failed.0, Ordering::Release);
                self.recorded_rebuilding
                    .store(rebuilding.0, Ordering::Release);
                return Ok(());
            }
            self.mark_failed(bad);
            if !self.can_serve() {
                break;
            }
        }
        Err(EIO)
    }

    /// As [`Self::record_state`]; with `locks` of a group whose member states are agreed
    /// cluster-wide, under the member-state lock in EX: the newest superblocks are read
    /// first (another AMF may have written a round), their failures taken in, and the
    /// round written on top of them; the lock goes back to PR publishing its event counter.
    /// Stripe worker (or with its scratch space locked); sleeps.
    pub(crate) fn record_state_locked(&self, locks: Option<&mut StripeLocks>) -> Result {
        let (Some(locks), Some(meta)) = (locks.filter(|l| l.agrees_members()), self.meta.as_ref())
        else {
            return self.record_state();
        };
        if !self.state_changed() {
            return Ok(());
        }
        locks.members_exclusive().map_err(|_| EIO)?;
        let written = {
            let mut meta = meta.lock();
            meta.reload(&self.members).and_then(|()| {
                self.take_in(&meta);
                self.write_round(&mut meta)?;
                Ok(meta.events())
            })
        };
        // Back to PR even if the round failed: the others must not wait for us.
        let published = match written {
            Ok(events) => locks.publish_members(events),
            Err(_) => locks.members_shared().map(|_| ()),
        };
        written?;
        published.map_err(|_| EIO)
    }

    /// Under a new grant of the member-state lock: if another AMF wrote a round since the
    /// superblocks were last read, reads them again and takes their member states in.
    /// Sleeps.
    pub(crate) fn learn(&self, round: Round) -> Result {
        let Some(meta) = self.meta.as_ref() else {
            return Ok(());
        };
        let mut meta = meta.lock();
        if let Round::Events(e) = round {
            if e <= meta.events() {
                return Ok(());
            }
        }
        meta.reload(&self.members)?;
        self.take_in(&meta);
        Ok(())
    }

    /// Fails the members the newest superblock records failed that this AMF still uses
    /// (a member this AMF rebuilds is its own to judge: a cluster rebuild runs only while
    /// no other AMF serves the group).
    fn take_in(&self, meta: &GroupMeta) {
        let recorded = meta.failed_members();
        let new = MemberSet(recorded.0 & !self.failed().0 & !self.rebuilding().0);
        if new.is_empty() {
            return;
        }
        self.failed.fetch_or(new.0, Ordering::AcqRel);
        self.logged.fetch_or(new.0, Ordering::AcqRel);
        for m in new.iter() {
            let name = self.member(m).map_or("?", Member::name);
            pr_err!(
                "member {m} ({name}) failed on another AMF (superblock event {}); the group runs degraded\n",
                meta.events()
            );
        }
        if self.failed().0 == recorded.0 {
            self.recorded.store(recorded.0, Ordering::Release);
        }
    }

    /// Whether the member states differ from the last ones recorded, or a rebuild
    /// checkpoint is due.
    fn state_changed(&self) -> bool {
        self.recorded.load(Ordering::Acquire) != self.failed().0
            || self.recorded_rebuilding.load(Ordering::Acquire) != self.rebuilding().0
            || self.checkpoint_due.load(Ordering::Acquire)
    }

    /// Member sectors the rebuild covered: what a checkpoint records.
    fn checkpoint(&self) -> u64 {
        if self.rebuilding().is_empty() {
            return 0;
        }
        let rows = self.rebuild_cursor().min(self.geometry.stripes());
        rows.saturating_mul(self.geometry.chunk_sectors())
            .min(self.member_len)
    }

    /// Whether a checkpoint waits to be recorded.
    pub(crate) fn checkpoint_pending(&self) -> bool {
        self.checkpoint_due.load(Ordering::Acquire)
    }

    /// Asks the next record to write the rebuild's progress (the worker, every few
    /// stripes), so that a restart resumes the rebuild from there.
    pub(crate) fn checkpoint_rebuild(&self) {
        if !self.rebuilding().is_empty() {
            self.checkpoint_due.store(true, Ordering::Release);
        }
    }

    /// Member `i`, if the group has it.
    pub(crate) fn member(&self, i: usize) -> Option<&Member> {
        self.members.get(i)
    }

    /// Member `i`'s device and data offset, if it is present and has not failed.
    pub(crate) fn live(&self, i: usize) -> Option<(&DmDev, u64)> {
        if self.failed().contains(i) {
            return None;
        }
        let m = self.members.get(i)?;
        Some((m.dev.as_ref()?, m.offset))
    }

    /// The members out of service.
    pub(crate) fn failed(&self) -> MemberSet {
        MemberSet(self.failed.load(Ordering::Acquire))
    }

    /// Takes members `set` out of service after an I/O error, and names every member failed
    /// so since the last call in the kernel log (also those a copy's completion failed);
    /// safe in any context.
    pub(crate) fn mark_failed(&self, set: MemberSet) {
        let failed = self.failed.fetch_or(set.0, Ordering::AcqRel) | set.0;
        let before = self.logged.fetch_or(failed, Ordering::AcqRel);
        let news = MemberSet(failed & !before);
        for m in news.iter() {
            let name = self.member(m).map_or("?", Member::name);
            pr_err!("member {m} ({name}) failed: I/O error; the group runs degraded\n");
        }
        if !news.is_empty() {
            self.raise_event();
        }
    }

    /// The word in which the completions of mirror write copies take their member out of
    /// service at once ([`crate::kernel_ext::bio::Bio::submit_copy`]), before the write
    /// completes; `end_io` then calls [`Self::mark_failed`], which logs them.
    pub(crate) fn copy_failures(&self) -> &AtomicU64 {
        &self.failed
    }

    /// Whether member states changed that the superblocks must record before a write
    /// relies on them (false without superblocks).
    pub(crate) fn needs_record(&self) -> bool {
        self.meta.is_some() && self.state_changed()
    }

    /// Whether the group still holds all its data.
    pub(crate) fn can_serve(&self) -> bool {
        MemberSet(self.failed().0 | self.rebuilding().0).len() <= self.geometry.tolerated_failures()
    }

    /// Members being rebuilt.
    pub(crate) fn rebuilding(&self) -> MemberSet {
        MemberSet(self.rebuilding.load(Ordering::Acquire))
    }

    /// First stripe that the rebuild has not reached.
    pub(crate) fn rebuild_cursor(&self) -> u64 {
        self.cursor.load(Ordering::Acquire)
    }

    /// Members out of service for `stripe`: failed ones, and ones being rebuilt if the
    /// rebuild has not reached the stripe yet (neither read nor written there: the rebuild
    /// will write their block from the others).
    pub(crate) fn unavailable(&self, stripe: u64) -> MemberSet {
        let behind = if stripe >= self.rebuild_cursor() {
            self.rebuilding().0
        } else {
            0
        };
        MemberSet(self.failed().0 | behind)
    }

    /// Starts rebuilding `set` from stripe 0 (the members get no reads of stripes the
    /// rebuild has not reached; a failed member put back in service is no longer failed).
    /// Refused with `EBUSY` while a rebuild runs.
    pub(crate) fn start_rebuild(&self, set: MemberSet) -> Result {
        if !self.rebuilding().is_empty() {
            return Err(EBUSY);
        }
        self.cursor.store(0, Ordering::Release);
        self.rebuilding.store(set.0, Ordering::Release);
        self.failed.fetch_and(!set.0, Ordering::AcqRel);
        // A later failure of these members is news again.
        self.logged.fetch_and(!set.0, Ordering::AcqRel);
        self.raise_event();
        Ok(())
    }

    /// The stripe worker finished stripe `stripe` of the rebuild.
    pub(crate) fn rebuild_advanced(&self, stripe: u64) {
        self.cursor.store(stripe + 1, Ordering::Release);
        if stripe + 1 >= self.geometry.stripes() {
            let done = MemberSet(self.rebuilding.swap(0, Ordering::AcqRel));
            for m in done.iter() {
                pr_info!("member {m}: rebuild complete\n");
            }
            if !done.is_empty() {
                self.raise_event();
            }
        }
    }

    /// The online check or repair.
    pub(crate) fn sync_action(&self) -> &SyncAction {
        &self.sync
    }

    /// Speed limits and speed of the background work.
    pub(crate) fn pace(&self) -> &SyncPace {
        &self.pace
    }

    /// Whether background work waits: a resync, a rebuild, a check or a repair.
    pub(crate) fn syncing(&self) -> bool {
        !self.rebuilding().is_empty()
            || self.sync.running().is_some()
            || self.intent().is_some_and(|wi| wi.counters().2 != 0)
    }

    /// `map`, before a mirror write it would send to the members itself: counts it and
    /// returns true, or false (and counts nothing) while a check or repair runs, which
    /// reads one copy and compares or writes the others and must not race a write: the
    /// worker then writes it. Counted before the check, and the action is published before
    /// the worker reads the count (both sequentially consistent): either this write sees
    /// it, or the worker sees the write and waits for its
    /// [`Self::end_direct_write`]. Any context.
    pub(crate) fn begin_direct_write(&self) -> bool {
        self.direct_writes.fetch_add(1, Ordering::SeqCst);
        if self.sync.busy() {
            self.end_direct_write();
            return false;
        }
        true
    }

    /// A write counted by [`Self::begin_direct_write`] ended. Any context.
    pub(crate) fn end_direct_write(&self) {
        self.direct_writes.fetch_sub(1, Ordering::SeqCst);
    }

    /// Whether mirror writes sent by `map` itself are in flight.
    pub(crate) fn direct_writes_in_flight(&self) -> bool {
        self.direct_writes.load(Ordering::SeqCst) != 0
    }

    /// Raises a device-mapper event for a change that `dmsetup status` shows (any context).
    pub(crate) fn raise_event(&self) {
        self.dm_events.raise();
    }

    /// Drops members `set` from the rebuild (they failed while being rebuilt).
    pub(crate) fn abandon_rebuild(&self, set: MemberSet) {
        let before = self.rebuilding.fetch_and(!set.0, Ordering::AcqRel);
        if before & set.0 != 0 {
            self.raise_event();
        }
    }
}
