// SPDX-License-Identifier: GPL-2.0

//! The `amf` target: table handling, status and the bio routing of a redundancy group.
//!
//! This version implements RAID0, RAID1, RAID10 (near), RAID5 and RAID6. dm core splits every
//! bio at chunk boundaries (at stripe boundaries for RAID5/6, whose reads are then trimmed to
//! their chunk), so mapping a read is arithmetic on the group geometry of the core crate.
//! Reads go to one copy; a write to a mirrored level goes to every copy: the bio itself to
//! the first, chained copies to the others, so it completes when all have. A copy that
//! fails takes its member out of service; the write fails only if no copy got it (md's
//! raid1/raid10). A RAID5/6 write goes to the stripe worker, which computes parity.
//! Flushes, and for raid0/raid1 discards, are duplicated by dm core, one per member (as
//! dm-stripe does).

use core::{
    ffi::CStr,
    fmt::Write,
    sync::atomic::{AtomicU64, Ordering},
};

use kernel::{fmt, new_mutex, prelude::*, str::CString, sync::Arc};

use crate::cluster::{GroupMembership, UnitLock};
use crate::core_proto::{
    bitmap,
    geometry::{nonzero, Geometry, Level, MemberSet},
    handshake,
    superblock::{self, Uuid, UuidText},
    table::{self, ClusterSpec, TableError, TableSpec, TransportKind},
};
use crate::group::{Group, Member, OnDisk};
use crate::kernel_ext::{
    bio::{Bio, BioOp, BlkStatus, CopyPool, SavedIter},
    device_mapper::{
        CtrError, DeviceVisitor, DmDev, MapAction, QueueLimits, StatusKind, StatusWriter, Target,
        TargetCtr, TargetOperations,
    },
};
use crate::kernel_ext::{
    dm_event::{EventSender, TableEvents},
    keyring,
};
use crate::lock_stats::LockStats;
use crate::metadata;
use crate::parity_log::ParityLog;
use crate::repl::{FaultPoint, ReplConfig, ReplService};
use crate::stripe_worker::{ClusterLocks, StripeService};
use crate::sync_action::Action;
use crate::transport::Transport;
use crate::write_intent::WriteIntent;

/// Target version reported by `dmsetup targets`.
pub(crate) const VERSION: [u32; 3] = [0, 5, 0];

/// What `map` notes about a bio for `end_io`.
#[derive(Clone, Copy, Default)]
pub(crate) struct BioNote {
    /// A RAID5/6 read sent straight to this member: on error, rebuild it from the others.
    direct_read_from: Option<usize>,
    /// Target-relative first sector.
    logical: u64,
    /// The bio's range before it was remapped.
    iter: SavedIter,
    /// A mirror write started in this write-intent region from `map`.
    intent_region: Option<u64>,
    /// A mirror write sent by `map` to these members, the bio itself to the first.
    mirror_write: Option<(usize, MemberSet)>,
    /// A mirror write `map` counted as sent to the members directly (see
    /// [`Group::begin_direct_write`]).
    direct_write: bool,
}

/// A constructed `amf` target.
pub(crate) struct AmfTarget {
    /// The worker: RAID5/6 writes, rebuilt reads and rebuilds; mirror read retries.
    /// Declared first so that it is torn down (waiting for a running worker) before the
    /// group it writes to. None for raid0.
    stripes: Option<StripeService>,
    /// Cluster mode with `peers`: the replication channel, stopped after the worker that
    /// uses it.
    repl: Option<ReplService>,
    /// RAID5/6: writes and degraded reads go through the stripe worker.
    parity: bool,
    /// The group named by the table (`group <uuid>`), whose superblocks the members hold.
    uuid: Option<Uuid>,
    /// The table's `start_dirty_degraded` (printed back by `dmsetup table`).
    start_dirty_degraded: bool,
    group: Arc<Group>,
    /// Bios for the extra copies of mirrored writes (raid1/raid10 only).
    copies: Option<CopyPool>,
    /// Cluster mode: the table's cluster parameters, the group's lockspace (after
    /// `stripes`, whose locks live in it) and the lock counters.
    cluster: Option<ClusterState>,
    /// Device-mapper events of this target's table; dropped last, which closes them.
    _events: TableEvents,
}

/// A clustered target's view of the cluster.
struct ClusterState {
    /// Dropped before `membership`: it holds a lock in the group's lockspace.
    _unit: UnitLock,
    name: CString,
    node: u32,
    lock_stripes: u32,
    membership: GroupMembership,
    stats: Arc<LockStats>,
    /// ` peers <n> ... auth_key <desc>` as `dmsetup table` echoes it (empty without), and
    /// the words it counts in `<#params>`.
    repl_words: (CString, usize),
}

/// Joins the group's lockspace for a table with `cluster`.
#[inline(never)]
fn join_cluster(
    c: &ClusterSpec<'_>,
    uuid: &Uuid,
    events: EventSender,
) -> Result<ClusterState, CtrError> {
    let nomem = || CtrError::new(ENOMEM, c"Cannot allocate target context");
    let name = CString::try_from_fmt(fmt!("{}", c.name)).map_err(|_| nomem())?;
    let stats = Arc::new(LockStats::default(), GFP_KERNEL).map_err(|_| nomem())?;
    let membership = GroupMembership::join(uuid, c.name, c.node, events)
        .map_err(|e| CtrError::inval(e.message()))?;
    let unit = membership
        .agree_unit(uuid, c.lock_stripes)
        .map_err(|e| CtrError::inval(e.message()))?;
    let mut words = KVec::new();
    let mut count = 0;
    if let Some(r) = c.replication.as_ref() {
        let mut w = VecWriter(&mut words);
        table::write_replication(r, &mut w).map_err(|_| nomem())?;
        count = r.param_words();
    }
    let words = CString::try_from_fmt(fmt!("{}", core::str::from_utf8(&words).unwrap_or("")))
        .map_err(|_| nomem())?;
    Ok(ClusterState {
        _unit: unit,
        name,
        node: c.node,
        lock_stripes: c.lock_stripes,
        membership,
        stats,
        repl_words: (words, count),
    })
}

/// Formats into a byte vector (constructor only: allocates).
struct VecWriter<'a>(&'a mut KVec<u8>);

impl Write for VecWriter<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.0
            .extend_from_slice(s.as_bytes(), GFP_KERNEL)
            .map_err(|_| core::fmt::Error)
    }
}

/// Starts the replication channel of a table with `peers`.
#[inline(never)]
fn start_replication(
    c: &ClusterSpec<'_>,
    state: &ClusterState,
    uuid: &Uuid,
    geometry: Geometry,
) -> Result<Option<ReplService>, CtrError> {
    let Some(r) = c.replication.as_ref() else {
        return Ok(None);
    };
    if geometry.members() > 16 {
        return Err(CtrError::inval(
            c"peers: replication takes groups of at most 16 members",
        ));
    }
    let transport = match r.transport {
        TransportKind::Tcp => Transport::Tcp,
        TransportKind::Rdma => Transport::Rdma,
    };
    if !transport.available() {
        return Err(CtrError::inval(
            c"transport rdma: this kernel has no RDMA connection manager",
        ));
    }
    let secret = keyring::logon_key(r.auth_key)
        .map_err(|_| CtrError::inval(c"auth_key: no readable logon key of that description"))?;
    if secret.bytes().len() < handshake::MIN_SECRET_LEN {
        // One recorded handshake lets anyone test guesses of a short secret offline.
        return Err(CtrError::inval(
            c"auth_key: the logon key holds fewer than 16 bytes",
        ));
    }
    let mut name = KVec::new();
    let mut w = VecWriter(&mut name);
    let _ = write!(w, "group {}", UuidText(uuid));
    let cfg = ReplConfig {
        node: c.node,
        group: *uuid,
        geometry,
        peers: r.peers(),
        secret: &secret,
        membership: state.membership.space().handler().clone(),
        name: core::str::from_utf8(&name).unwrap_or("?"),
        transport,
    };
    ReplService::start(&cfg).map(Some).map_err(|e| {
        let cannot_listen = [
            kernel::bindings::EADDRINUSE,
            kernel::bindings::EADDRNOTAVAIL,
            // RDMA: the address is not on an RDMA device's netdev.
            kernel::bindings::ENODEV,
        ];
        if cannot_listen.iter().any(|&n| e.to_errno() == -(n as i32)) {
            CtrError::inval(c"peers: cannot listen on this node's address")
        } else {
            CtrError::new(ENOMEM, c"Cannot start the replication channel")
        }
    })
}

impl From<TableError> for CtrError {
    fn from(e: TableError) -> Self {
        CtrError::inval(e.message())
    }
}

/// The constructor's second half, once the group is built: joins the cluster, starts the
/// replication channel and the stripe worker, and sets the limits dm core splits bios at.
/// Apart from `ctr` so that neither frame holds both halves' values.
#[inline(never)]
fn start(
    ti: &mut TargetCtr<'_>,
    spec: &TableSpec<'_>,
    group: Arc<Group>,
    (parity, mirrored, ranged_per_member): (bool, bool, bool),
    copies: Option<CopyPool>,
    has_meta: bool,
    events: TableEvents,
) -> Result<KBox<AmfTarget>, CtrError> {
    let geometry = group.geometry;
    let nr = geometry.members();
    let cluster = match (spec.cluster.as_ref(), spec.group.as_ref()) {
        (Some(c), Some(uuid)) => Some(join_cluster(c, uuid, events.sender())?),
        _ => None,
    };
    let repl = match (spec.cluster.as_ref(), cluster.as_ref(), spec.group.as_ref()) {
        (Some(c), Some(st), Some(uuid)) => start_replication(c, st, uuid, geometry)?,
        _ => None,
    };
    let locks = match (cluster.as_ref(), spec.group) {
        (Some(c), Some(uuid)) => Some(ClusterLocks {
            space: c.membership.space().clone(),
            group: uuid,
            lock_stripes: c.lock_stripes,
            stats: c.stats.clone(),
            repl: repl.as_ref().map(|r| r.repl().clone()),
            members: has_meta,
        }),
        _ => None,
    };
    let stripes = if parity || mirrored {
        Some(
            StripeService::new(group.clone(), spec.level == Level::Raid6, locks)
                .map_err(|_| CtrError::new(ENOMEM, c"Cannot allocate stripe buffers"))?,
        )
    } else {
        None
    };

    // dm core splits every bio at this boundary: a chunk, or for RAID5/6 a stripe, so
    // that one bio can be a full-stripe write.
    let max_io = match geometry.stripe_sectors() {
        Some(stripe) if parity => stripe,
        _ => u64::from(spec.chunk_sectors),
    };
    ti.set_max_io_len(max_io)?;
    ti.set_num_flush_bios(nr as u32);
    let range_bios = if ranged_per_member { nr as u32 } else { 0 };
    ti.set_num_discard_bios(range_bios);
    ti.set_num_write_zeroes_bios(range_bios);
    ti.set_num_secure_erase_bios(range_bios);

    KBox::new(
        AmfTarget {
            stripes,
            repl,
            parity,
            uuid: spec.group,
            start_dirty_degraded: spec.start_dirty_degraded,
            group,
            copies,
            cluster,
            _events: events,
        },
        GFP_KERNEL,
    )
    .map_err(|_| CtrError::new(ENOMEM, c"Cannot allocate target context"))
}

/// Opens the table's member devices (`None` for a missing one), checking that none is
/// named twice and each is large enough.
#[inline(never)]
fn open_members(ti: &mut TargetCtr<'_>, spec: &TableSpec<'_>) -> Result<KVec<Member>, CtrError> {
    let mut members = KVec::with_capacity(spec.nr_members(), GFP_KERNEL)
        .map_err(|_| CtrError::new(ENOMEM, c"Cannot allocate member table"))?;
    for m in spec.members() {
        let dev = if m.missing {
            None
        } else {
            let dev = ti.get_device(m.path)?;
            if members.iter().any(|o: &Member| o.name() == dev.name()) {
                return Err(TableError::DuplicateDevice.into());
            }
            // `parse` checked that offset + len does not overflow.
            if dev.sectors() < m.offset + m.len {
                return Err(TableError::DeviceTooSmall.into());
            }
            Some(dev)
        };
        members
            .push(
                Member {
                    dev,
                    offset: m.offset,
                },
                GFP_KERNEL,
            )
            .map_err(|_| CtrError::new(ENOMEM, c"Cannot allocate member table"))?;
    }
    Ok(members)
}

/// With `group <uuid>`: the superblocks, the write-intent bitmap and the partial parity log
/// of this node's slot. Returns the failed and rebuilding members, the stripe a recorded
/// rebuild resumes from, and the on-disk state.
#[inline(never)]
fn load_on_disk(
    spec: &TableSpec<'_>,
    members: &[Member],
    geometry: &Geometry,
) -> Result<(MemberSet, MemberSet, u64, OnDisk), CtrError> {
    let parity = geometry.parity_chunks() > 0;
    let mut failed = spec.missing();
    let mut rebuild = MemberSet(spec.rebuild.0 & !failed.0);
    let mut meta = None;
    let mut intent = None;
    let mut log = None;
    let mut from_stripe = 0;
    if let Some(uuid) = spec.group.as_ref() {
        let found = metadata::assemble(uuid, spec, members)?;
        // The table's `rebuild` wins over a recorded failure (a replaced member).
        failed = MemberSet(failed.0 | (found.failed.0 & !spec.rebuild.0));
        rebuild = MemberSet((rebuild.0 | found.rebuilding.0) & !failed.0);
        // A recorded rebuild resumes from its checkpoint, unless the table names a
        // member to rebuild (a new device starts from the beginning).
        if spec.rebuild.is_empty() && !found.rebuilding.is_empty() {
            from_stripe = superblock::resume_stripe(found.checkpoint, geometry);
            if from_stripe >= geometry.stripes() {
                // The checkpoint covers every stripe this table uses: nothing is left to
                // rebuild (the next round records the members in sync).
                pr_info!("rebuild: the recorded checkpoint covers the whole table\n");
                rebuild = MemberSet(rebuild.0 & !found.rebuilding.0);
                from_stripe = 0;
            }
        }
        let slot = bitmap_slot(spec.level, spec.cluster.as_ref().map(|c| c.node));
        if let (Some(slot), Some(sb)) = (slot, found.meta.authority()) {
            let unusable = failed.0 | rebuild.0;
            let wi = WriteIntent::load(sb, slot, members, unusable)?;
            // md's "cannot start dirty degraded array": a member lost since the last clean
            // stop (recorded in sync) whose chunks of the dirty rows only the torn parity
            // defines. `ppl` logged the one row that can be torn.
            let lost_since = MemberSet(unusable & found.in_sync.0);
            let dirty = wi.counters().2 != 0;
            if parity && dirty && !lost_since.is_empty() && !spec.ppl && !spec.start_dirty_degraded
            {
                pr_err!(
                    "dirty degraded group: write-intent regions to resync and member(s) {:#x} lost since; start it whole, or with start_dirty_degraded\n",
                    lost_since.0
                );
                return Err(CtrError::inval(
                    c"Dirty degraded group: start it whole to resync",
                ));
            }
            intent = Some(wi);
            if parity {
                let how = (geometry, spec.ppl);
                log = Some(ParityLog::load(sb, slot, how, members, unusable)?);
            }
        }
        meta = Some(
            KBox::pin_init(new_mutex!(found.meta, "amf:group_meta"), GFP_KERNEL)
                .map_err(|_| CtrError::new(ENOMEM, c"Cannot allocate target context"))?,
        );
    }
    Ok((failed, rebuild, from_stripe, (meta, intent, log)))
}

/// The write-intent bitmap slot of this AMF: slot 0 without a cluster, `node - 1` in one;
/// none for levels without redundancy to resync (raid0) or not covered yet (raid10), and
/// for node ids beyond the format's eight slots.
fn bitmap_slot(level: Level, node: Option<u32>) -> Option<u8> {
    if !matches!(level, Level::Raid1 | Level::Raid5 | Level::Raid6) {
        return None;
    }
    let Some(n) = node else {
        return Some(0);
    };
    let slot = bitmap::node_slot(n);
    if slot.is_none() {
        pr_warn!("node {n}: no write-intent bitmap slot (node ids 1 to 8 have one)\n");
    }
    slot
}

impl AmfTarget {
    fn mirrored(&self) -> bool {
        self.copies.is_some()
    }

    /// Copies of each sector: 1, all members (raid1), or `copies` (raid10).
    fn copy_count(&self) -> u64 {
        match self.group.geometry.level() {
            Level::Raid1 => self.group.members.len() as u64,
            Level::Raid10 { copies } => u64::from(copies),
            _ => 1,
        }
    }

    /// A RAID5/6 read: trimmed to its chunk (dm core resubmits the rest), then sent to the
    /// member holding that chunk, or to the stripe worker to be rebuilt if that member
    /// failed. `note` keeps what a retry after a read error needs.
    fn map_parity_read(&self, bio: &mut Bio<'_>, logical: u64, note: &mut BioNote) -> MapAction {
        let (Ok(loc), Some(stripes)) = (self.group.geometry.map(logical), self.stripes.as_ref())
        else {
            return MapAction::Kill;
        };
        let left_in_chunk = u64::from(self.group.chunk_sectors) - loc.offset;
        bio.accept_partial(left_in_chunk.min(u64::from(u32::MAX)) as u32);
        let in_service = !self.group.unavailable(loc.stripe).contains(loc.member);
        let Some((dev, offset)) = self.group.live(loc.member).filter(|_| in_service) else {
            bio.set_sector(logical);
            stripes.submit(bio.defer());
            return MapAction::Deferred;
        };
        *note = BioNote {
            direct_read_from: Some(loc.member),
            logical,
            iter: bio.save_iter(),
            ..BioNote::default()
        };
        bio.set_dev(dev);
        bio.set_sector(offset + loc.member_sector);
        MapAction::Remap
    }

    /// `rebuild <idx>`: member `idx` (back in service, or its device replaced underneath)
    /// is rewritten from the others, stripe by stripe.
    fn start_rebuild(&self, idx: &str) -> Result {
        let Some(stripes) = self.stripes.as_ref().filter(|_| self.parity) else {
            pr_warn!("rebuild: only raid5 and raid6 rebuild members in this version\n");
            return Err(EINVAL);
        };
        let m = match idx.parse::<usize>() {
            Ok(m) if m < self.group.members.len() => m,
            _ => {
                pr_warn!("rebuild: invalid member index '{idx}'\n");
                return Err(EINVAL);
            }
        };
        if let Some(c) = self.cluster.as_ref() {
            // Other AMFs would write the stripes behind the cursor without the member.
            let n = c.membership.membership().members();
            if n > 1 {
                pr_warn!(
                    "rebuild: {n} AMFs serve the group: stop the others first (cluster mode)\n"
                );
                return Err(EBUSY);
            }
        }
        let set = MemberSet::single(m);
        let others_failed = MemberSet(self.group.failed().0 & !set.0);
        if others_failed.len() + 1 > self.group.geometry.tolerated_failures() {
            pr_warn!("rebuild: member {m}: too many other members failed\n");
            return Err(EINVAL);
        }
        self.group.start_rebuild(set).inspect_err(|_| {
            pr_warn!("rebuild: a rebuild is already running\n");
        })?;
        pr_info!("member {m}: rebuild started\n");
        if let Err(e) = self.record_state() {
            pr_err!("member {m}: cannot record the rebuild in the superblocks: {e:?}\n");
        }
        stripes.kick_sync();
        Ok(())
    }

    /// Starts an online check or repair (dm-raid's sync actions) of the whole group, run by
    /// the stripe worker between host I/O.
    fn start_sync(&self, action: Action) -> Result {
        let name = action.name();
        let g = &*self.group;
        let Some(stripes) = self.stripes.as_ref() else {
            pr_warn!("{name}: raid0 has no redundancy to check\n");
            return Err(EINVAL);
        };
        if !g.failed().is_empty() {
            pr_warn!("{name}: members failed: a degraded group has nothing to compare with\n");
            return Err(EINVAL);
        }
        if !g.rebuilding().is_empty() {
            pr_warn!("{name}: a rebuild runs; check once it ended\n");
            return Err(EBUSY);
        }
        if g.intent().is_some_and(|wi| wi.counters().2 != 0) {
            pr_warn!("{name}: a resync runs; check once it ended\n");
            return Err(EBUSY);
        }
        if g.sync_action().start(action).is_err() {
            pr_warn!("{name}: a check or repair runs already (`idle` stops it)\n");
            return Err(EBUSY);
        }
        pr_info!("{name}: started\n");
        g.raise_event();
        stripes.kick_sync();
        Ok(())
    }

    /// Records changed member states in the superblocks (through the worker's locks in
    /// cluster mode: under the member-state lock). Sleeps.
    fn record_state(&self) -> Result {
        match self.stripes.as_ref() {
            Some(s) => s.record_state(),
            None => self.group.record_state(),
        }
    }

    /// A mirror write that `map` started in a write-intent region ended.
    fn end_intent(&self, note: &mut BioNote) {
        if let (Some(r), Some(wi)) = (note.intent_region.take(), self.group.intent()) {
            wi.end(r);
        }
    }

    /// A mirror write that `map` sent to the members itself ended.
    fn end_direct(&self, note: &mut BioNote) {
        if core::mem::take(&mut note.direct_write) {
            self.group.end_direct_write();
        }
    }

    /// A RAID5/6 write: handed to the stripe worker with its target-relative sector.
    fn map_parity_write(&self, bio: &mut Bio<'_>, logical: u64) -> MapAction {
        let Some(stripes) = self.stripes.as_ref() else {
            return MapAction::Kill;
        };
        bio.set_sector(logical);
        stripes.submit(bio.defer());
        MapAction::Deferred
    }

    /// Sends a flush/discard copy `nr` to member `nr`, trimming a range bio to the part of
    /// it that lives on that member.
    fn map_per_member(&self, ti: &Target, bio: &mut Bio<'_>, ranged: bool) -> MapAction {
        let nr = bio.target_bio_nr() as usize;
        let Some((dev, offset)) = self.group.live(nr) else {
            // Nothing to flush or discard on a member out of service.
            return MapAction::Complete(BlkStatus::OK);
        };
        if !ranged {
            bio.set_dev(dev);
            return MapAction::Remap;
        }
        let Some(start) = bio.sector().checked_sub(ti.begin()) else {
            return MapAction::Kill;
        };
        let end = start.saturating_add(bio.sectors());
        let (begin, end) = match self.group.geometry.level() {
            Level::Raid1 => (start, end),
            // Only raid0 and raid1 ask dm core for per-member range bios.
            _ => (
                self.member_range_bound(start, nr),
                self.member_range_bound(end, nr),
            ),
        };
        if begin >= end {
            // Nothing of this range is on member `nr`.
            return MapAction::Complete(BlkStatus::OK);
        }
        bio.set_dev(dev);
        bio.set_sector(offset + begin);
        // The range is at most the original bio's, whose byte size fit in u32.
        bio.set_sectors((end - begin) as u32);
        MapAction::Remap
    }

    /// The first sector on member `nr` at or after logical `sector` (RAID0, dm-stripe's
    /// `stripe_map_range_sector`).
    fn member_range_bound(&self, sector: u64, nr: usize) -> u64 {
        let cs = nonzero(u64::from(self.group.chunk_sectors));
        let n = nonzero(self.group.members.len() as u64);
        let chunk = sector / cs;
        let row_start = (chunk / n) * cs.get();
        let member = (chunk % n) as usize;
        if member == nr {
            row_start + sector % cs
        } else if nr < member {
            // Member `nr`'s chunk of this row is already behind us: its next chunk.
            row_start + cs.get()
        } else {
            row_start
        }
    }

    /// Points a read at one copy: copy `chunk % copies`, which spreads sequential reads over
    /// the members, or the next live one after it if that member is out of service.
    fn map_read(&self, bio: &mut Bio<'_>, logical: u64, note: &mut BioNote) -> MapAction {
        let copies = self.copy_count();
        let pick = (logical / nonzero(u64::from(self.group.chunk_sectors))) % nonzero(copies);
        // Copies of a region waiting for its resync may differ: read the one it copies.
        let resyncing = self
            .group
            .intent()
            .is_some_and(|wi| wi.resync_pending(logical));
        let pick = if resyncing { 0 } else { pick };
        let (Ok(later), Ok(earlier)) = (
            self.group.geometry.copy_iter(logical),
            self.group.geometry.copy_iter(logical),
        ) else {
            return MapAction::Kill;
        };
        let mut order = Iterator::chain(later.skip(pick as usize), earlier.take(pick as usize));
        let Some((place, dev, offset)) = order.find_map(|p| {
            let (dev, offset) = self.group.live(p.member)?;
            Some((p, dev, offset))
        }) else {
            return MapAction::Complete(BlkStatus::IOERR);
        };
        *note = BioNote {
            direct_read_from: Some(place.member),
            logical,
            iter: bio.save_iter(),
            ..BioNote::default()
        };
        bio.set_dev(dev);
        bio.set_sector(offset + place.sector);
        MapAction::Remap
    }

    /// The live copies of `logical`: member, device and sector on it.
    fn live_copies(&self, logical: u64) -> impl Iterator<Item = (usize, &DmDev, u64)> {
        let places = self
            .group
            .geometry
            .copy_iter(logical)
            .ok()
            .into_iter()
            .flatten();
        places.filter_map(|p| {
            let (dev, offset) = self.group.live(p.member)?;
            Some((p.member, dev, offset + p.sector))
        })
    }

    /// Sends a write to every live copy: chained copies first, then the bio itself to the
    /// first. `note` keeps where it went, for `end_io`.
    fn map_write(&self, bio: &mut Bio<'_>, logical: u64, note: &mut BioNote) -> MapAction {
        let mut live = self.live_copies(logical);
        let Some((first, first_dev, first_sector)) = live.next() else {
            return MapAction::Complete(BlkStatus::IOERR);
        };
        let iter = bio.save_iter();
        let mut members = MemberSet::single(first);
        for (m, dev, sector) in live {
            let sent = match self.copies.as_ref() {
                Some(pool) => {
                    let failures = self.group.copy_failures();
                    bio.submit_copy((dev, sector), pool, failures, m)
                }
                None => Err(EINVAL),
            };
            if sent.is_err() {
                // Copies already chained hold a reference on the bio: it must be completed
                // (it ends once they have), never killed and freed by dm core.
                return MapAction::Complete(BlkStatus::IOERR);
            }
            members = members.with(m);
        }
        note.logical = logical;
        note.iter = iter;
        note.mirror_write = Some((first, members));
        bio.set_dev(first_dev);
        bio.set_sector(first_sector);
        MapAction::Remap
    }

    /// A mirror write of `map_write` completed with `status` (that of the first copy; the
    /// others' failures are in the group's failed set already). Any context: the failures
    /// are logged; the write fails only if none of its members is still in service; if the
    /// superblocks must record a failure first, the write goes to the worker, which records
    /// it and writes the live copies again before completing it (md holds such writes
    /// until its superblocks say so).
    fn end_mirror_write(
        &self,
        bio: &mut Bio<'_>,
        note: &mut BioNote,
        (first, members): (usize, MemberSet),
        status: BlkStatus,
    ) -> BlkStatus {
        let first_failed = if status == BlkStatus::OK {
            MemberSet::EMPTY
        } else {
            MemberSet::single(first)
        };
        self.group.mark_failed(first_failed);
        let kept = MemberSet(members.0 & !self.group.failed().0);
        if kept == members {
            return status;
        }
        if kept.is_empty() {
            return BlkStatus::IOERR;
        }
        let Some(stripes) = self.stripes.as_ref().filter(|_| self.group.needs_record()) else {
            return BlkStatus::OK;
        };
        bio.restore_iter(note.iter);
        bio.set_sector(note.logical);
        stripes.submit(bio.defer());
        BlkStatus::OK
    }
}

impl TargetOperations for AmfTarget {
    const NAME: &'static CStr = c"amf";
    const VERSION: [u32; 3] = VERSION;
    const HAS_END_IO: bool = true;
    type PerBio = BioNote;

    fn ctr(ti: &mut TargetCtr<'_>, args: &[&str]) -> Result<KBox<Self>, CtrError> {
        let spec = table::parse(args, ti.len())?;
        let nr = spec.members().len();
        let member_len = spec.members().next().map_or(0, |m| m.len);

        let members = open_members(ti, &spec)?;

        let geometry = Geometry::new(spec.level, nr, u64::from(spec.chunk_sectors), member_len)
            .map_err(|_| CtrError::inval(c"Invalid geometry"))?;
        let (mirrored, ranged_per_member, parity) = match spec.level {
            Level::Raid0 => (false, true, false),
            Level::Raid1 => (true, true, false),
            Level::Raid5 | Level::Raid6 => (false, false, true),
            // A raid10 range interleaves its copies over the members; range operations are
            // not passed down until they are split per member.
            Level::Raid10 { .. } => (true, false, false),
        };
        let copies = if mirrored {
            // One write needs at most `nr - 1` extra bios at once.
            Some(
                CopyPool::new(nr as u32)
                    .map_err(|_| CtrError::new(ENOMEM, c"Cannot allocate bio pool"))?,
            )
        } else {
            None
        };
        let (failed, rebuild, from_stripe, on_disk) = load_on_disk(&spec, &members, &geometry)?;
        let (meta, intent, log) = on_disk;
        if MemberSet(failed.0 | rebuild.0).len() > geometry.tolerated_failures() {
            return Err(TableError::TooManyFailed.into());
        }
        if !rebuild.is_empty() && !parity {
            return Err(CtrError::inval(
                c"rebuild is only implemented for raid5 and raid6",
            ));
        }
        let has_meta = meta.is_some();
        let events = ti.events()?;
        let group = Group::new(
            geometry,
            spec.chunk_sectors,
            member_len,
            members,
            (failed, rebuild, from_stripe),
            (meta, intent, log),
            events.sender(),
        )
        .map_err(|_| CtrError::new(ENOMEM, c"Cannot allocate target context"))?;
        start(
            ti,
            &spec,
            group,
            (parity, mirrored, ranged_per_member),
            copies,
            has_meta,
            events,
        )
    }

    fn map(&self, ti: &Target, bio: &mut Bio<'_>, note: &mut BioNote) -> MapAction {
        if bio.is_preflush() && bio.sectors() == 0 {
            return self.map_per_member(ti, bio, false);
        }
        let op = bio.op();
        match op {
            BioOp::Read | BioOp::Write => {}
            BioOp::Discard | BioOp::WriteZeroes | BioOp::SecureErase => {
                return self.map_per_member(ti, bio, true)
            }
            BioOp::Flush => return self.map_per_member(ti, bio, false),
            BioOp::Other => return MapAction::Complete(BlkStatus::NOTSUPP),
        }
        let Some(logical) = bio.sector().checked_sub(ti.begin()) else {
            return MapAction::Kill;
        };
        if self.parity {
            return if op == BioOp::Write {
                self.map_parity_write(bio, logical)
            } else {
                self.map_parity_read(bio, logical, note)
            };
        }
        if self.mirrored() {
            return if op == BioOp::Write && self.cluster.is_some() {
                // Cluster mode: under the stripe lock, replicated, by the worker.
                self.map_parity_write(bio, logical)
            } else if op == BioOp::Write && self.group.needs_record() {
                // A failure the superblocks do not record yet: the worker records it before
                // this write goes on without the member.
                self.map_parity_write(bio, logical)
            } else if op == BioOp::Write && !self.group.begin_direct_write() {
                // A check or repair compares the copies: the worker writes between its steps.
                self.map_parity_write(bio, logical)
            } else if op == BioOp::Write {
                match self.group.intent().map(|wi| wi.start(logical)) {
                    // The region's bit is not durable yet: the worker sets it first.
                    Some(None) => {
                        self.group.end_direct_write();
                        self.map_parity_write(bio, logical)
                    }
                    started => {
                        note.intent_region = started.flatten();
                        note.direct_write = true;
                        let action = self.map_write(bio, logical, note);
                        if matches!(action, MapAction::Kill) {
                            // Remapped and completed bios come back through `end_io`.
                            self.end_intent(note);
                            self.end_direct(note);
                        }
                        action
                    }
                }
            } else {
                self.map_read(bio, logical, note)
            };
        }
        let Ok(loc) = self.group.geometry.map(logical) else {
            return MapAction::Kill;
        };
        let Some((dev, offset)) = self.group.live(loc.member) else {
            return MapAction::Complete(BlkStatus::IOERR);
        };
        bio.set_dev(dev);
        bio.set_sector(offset + loc.member_sector);
        MapAction::Remap
    }

    fn end_io(
        &self,
        _ti: &Target,
        bio: &mut Bio<'_>,
        note: &mut BioNote,
        status: BlkStatus,
    ) -> BlkStatus {
        self.end_intent(note);
        self.end_direct(note);
        if let Some(write) = note.mirror_write.take() {
            return self.end_mirror_write(bio, note, write, status);
        }
        let Some(member) = note.direct_read_from.filter(|_| status != BlkStatus::OK) else {
            return status;
        };
        let Some(stripes) = self.stripes.as_ref() else {
            return status;
        };
        self.group.mark_failed(MemberSet::single(member));
        bio.restore_iter(note.iter);
        if !self.parity {
            // A mirror copy failed this read: send it to the next live copy (from the
            // worker, since this may be interrupt context); that completion comes back here.
            let Some((next, dev, sector)) = self.live_copies(note.logical).next() else {
                return status;
            };
            note.direct_read_from = Some(next);
            bio.set_dev(dev);
            bio.set_sector(sector);
            stripes.submit(bio.defer());
            return BlkStatus::OK;
        }
        // The member failed this read: rebuild the data from the others. The retry's
        // completion comes back here with no member noted.
        if !self.group.can_serve() {
            return status;
        }
        note.direct_read_from = None;
        bio.set_sector(note.logical);
        stripes.submit(bio.defer());
        BlkStatus::OK
    }

    fn status(&self, ti: &Target, kind: StatusKind, out: &mut StatusWriter<'_>) {
        let g = &*self.group;
        let level = table::level_name(g.geometry.level());
        let n = g.members.len();
        match kind {
            StatusKind::Info => {
                let _ = write!(out, "{level} {n} ");
                let (failed, rebuilding) = (g.failed(), g.rebuilding());
                for m in 0..n {
                    let c = if failed.contains(m) {
                        'D'
                    } else if rebuilding.contains(m) {
                        'a'
                    } else {
                        'A'
                    };
                    let _ = out.write_char(c);
                }
                let total = ti.len();
                let bitmap = g.intent().map(|wi| wi.counters());
                let sync = g.sync_action();
                let mismatches = sync.mismatches();
                let per_stripe = g.geometry.stripe_sectors().unwrap_or(0);
                let upto = |stripe: u64| stripe.saturating_mul(per_stripe).min(total);
                if let Some((regions, _, pending, _)) = bitmap.filter(|b| b.2 != 0) {
                    let done = total - total / regions.max(1) * pending.min(regions);
                    let _ = write!(out, " {done}/{total} resync {mismatches}");
                } else if !rebuilding.is_empty() {
                    let done = upto(g.rebuild_cursor());
                    let _ = write!(out, " {done}/{total} recover {mismatches}");
                } else if let Some(action) = sync.running() {
                    let done = upto(sync.cursor());
                    let _ = write!(out, " {done}/{total} {} {mismatches}", action.name());
                } else {
                    let _ = write!(out, " {total}/{total} idle {mismatches}");
                }
                if let Some(c) = self.cluster.as_ref() {
                    let m = c.membership.membership();
                    let state = if c.stats.lost.load(Ordering::Relaxed) {
                        "lost"
                    } else if m.recovering() {
                        "recovering"
                    } else {
                        "ready"
                    };
                    let n = |v: &AtomicU64| v.load(Ordering::Relaxed);
                    let s = &*c.stats;
                    let _ = write!(
                        out,
                        " cluster {state} {} {} {} {} {} {}",
                        m.members(),
                        n(&s.requests),
                        n(&s.cached),
                        n(&s.blocking),
                        n(&s.waits),
                        m.deaths()
                    );
                }
                if let Some(r) = self.repl.as_ref().map(|r| r.repl()) {
                    let (up, peers) = r.peers_up();
                    let s = &r.stats;
                    let n = |v: &AtomicU64| v.load(Ordering::Relaxed);
                    let _ = write!(
                        out,
                        " replication {up} {peers} {} {} {} {} {} {} {}",
                        n(&s.records_sent),
                        r.records_held(),
                        n(&s.bad_frames),
                        n(&s.auth_failures),
                        n(&s.replayed),
                        n(&s.last_takeover_ms),
                        n(&s.reconnects)
                    );
                }
                if let Some((regions, dirty, pending, resynced)) = bitmap {
                    let _ = write!(out, " bitmap {regions} {dirty} {pending} {resynced}");
                }
                if let Some(r) = self.repl.as_ref().map(|r| r.repl()) {
                    // After everything else: parsers of the fields before it see no change.
                    let s = &r.stats;
                    let n = |v: &AtomicU64| v.load(Ordering::Relaxed);
                    let _ = write!(
                        out,
                        " handshakes {} {} {} {}",
                        n(&s.hs_accepted),
                        n(&s.hs_refused),
                        n(&s.hs_stalled),
                        n(&s.hs_failed)
                    );
                }
                if g.syncing() {
                    // While background work runs, last of all (the parts before it keep
                    // their places): its speed and limits, KiB/s (0: no limit).
                    let (min, max) = g.pace().limits();
                    let _ = write!(out, " sync_speed {} {min} {max}", g.pace().speed());
                }
            }
            StatusKind::Table => {
                let copies = match g.geometry.level() {
                    Level::Raid10 { copies } => Some(copies),
                    _ => None,
                };
                let cluster_words = self.cluster.as_ref().map_or(0, |c| {
                    4 + 2 * usize::from(c.lock_stripes != 1) + c.repl_words.1
                });
                let ppl = g.parity_log().is_some_and(|l| l.always());
                let params = 1
                    + 2 * (usize::from(copies.is_some()) + usize::from(self.uuid.is_some()))
                    + usize::from(ppl)
                    + usize::from(self.start_dirty_degraded)
                    + cluster_words;
                let _ = write!(out, "{level} {params} {}", g.chunk_sectors);
                if let Some(copies) = copies {
                    let _ = write!(out, " raid10_copies {copies}");
                }
                if let Some(uuid) = self.uuid.as_ref() {
                    let _ = write!(out, " group {}", UuidText(uuid));
                }
                if ppl {
                    let _ = out.write_str(" ppl");
                }
                if self.start_dirty_degraded {
                    let _ = out.write_str(" start_dirty_degraded");
                }
                if let Some(c) = self.cluster.as_ref() {
                    let _ = write!(
                        out,
                        " cluster {} node {}",
                        c.name.to_str().unwrap_or("?"),
                        c.node
                    );
                    if c.lock_stripes != 1 {
                        let _ = write!(out, " lock_stripes {}", c.lock_stripes);
                    }
                    let _ = out.write_str(c.repl_words.0.to_str().unwrap_or(""));
                }
                let _ = write!(out, " {n}");
                for m in g.members.iter() {
                    let _ = write!(out, " {} {}", m.name(), m.offset);
                }
            }
            StatusKind::Ima => {
                let _ = write!(
                    out,
                    "level={level},chunk_sectors={},members={n};",
                    g.chunk_sectors
                );
            }
        }
    }

    fn message(&self, _ti: &Target, args: &[&str], _out: &mut StatusWriter<'_>) -> Result {
        match args {
            ["rebuild", idx] => self.start_rebuild(idx),
            ["check"] => self.start_sync(Action::Check),
            ["repair"] => self.start_sync(Action::Repair),
            [which @ ("sync_speed_min" | "sync_speed_max"), kib] => {
                let Some(stripes) = self.stripes.as_ref() else {
                    pr_warn!("{which}: raid0 has no background work\n");
                    return Err(EINVAL);
                };
                let Some(kib) = kib
                    .parse::<u32>()
                    .ok()
                    .filter(|_| kib.bytes().all(|b| b.is_ascii_digit()))
                else {
                    pr_warn!(
                        "{which}: '{kib}' is not a speed in KiB/s (0 to 4294967295, 0: none)\n"
                    );
                    return Err(EINVAL);
                };
                self.group
                    .pace()
                    .set(*which == "sync_speed_max", u64::from(kib));
                // A lower limit takes effect at the next batch; a higher one at once.
                stripes.kick_sync();
                Ok(())
            }
            ["idle"] => {
                let sync = self.group.sync_action();
                let running = sync.running();
                if let Some(action) = running.filter(|_| sync.stop()) {
                    pr_info!(
                        "{}: stopped at stripe {} (idle), {} mismatched sectors so far\n",
                        action.name(),
                        sync.cursor(),
                        sync.mismatches()
                    );
                    self.group.raise_event();
                }
                Ok(())
            }
            ["reconnect"] => {
                // Closes every replication connection; both sides dial again at once.
                let Some(r) = self.repl.as_ref().map(|r| r.repl()) else {
                    pr_warn!("reconnect: the target has no replication peers\n");
                    return Err(EINVAL);
                };
                r.reconnect();
                Ok(())
            }
            ["fail_after", step] => {
                let Some(r) = self.repl.as_ref().map(|r| r.repl()) else {
                    // Without peers: only the torn stripe, for the crash tests.
                    let parity = self.group.geometry.parity_chunks() > 0;
                    return match *step {
                        "data" if parity => {
                            self.group.arm_halt(true);
                            Ok(())
                        }
                        "off" => {
                            self.group.arm_halt(false);
                            Ok(())
                        }
                        _ => {
                            pr_warn!("fail_after without peers: raid5/raid6 only, data or off\n");
                            Err(EINVAL)
                        }
                    };
                };
                match (*step, FaultPoint::parse(step)) {
                    ("off", _) => r.arm_fault(None),
                    (_, Some(f)) => r.arm_fault(Some(f)),
                    _ => {
                        pr_warn!("fail_after wants intent, prepared, data, parity, done or off\n");
                        return Err(EINVAL);
                    }
                }
                Ok(())
            }
            _ => {
                pr_warn!(
                    "unknown message; expected: rebuild <idx>, check, repair, idle, sync_speed_min <KiB/s>, sync_speed_max <KiB/s>, fail_after <step> or reconnect\n"
                );
                Err(EINVAL)
            }
        }
    }

    fn postsuspend(&self, _ti: &Target) {
        if let Some(stripes) = self.stripes.as_ref() {
            stripes.pause();
        }
        if let Some(wi) = self.group.intent() {
            // Quiesced: no write in flight, every bit can go (but those still to resync).
            wi.sweep(&self.group.members, self.group.failed().0, true);
        }
        // Quiesced: no write is torn, nothing to replay at the next load.
        let _ = self.group.retire_log();
        // Quiesced: leave the superblocks saying what happened (a reload reads them next).
        if let Err(e) = self.record_state() {
            pr_err!("cannot record the member states in the superblocks: {e:?}\n");
        }
    }

    fn preresume(&self, _ti: &Target) -> Result {
        // Before the first write: the superblocks record what the constructor found and the
        // rebuilds the table names.
        self.record_state()
    }

    fn resume(&self, _ti: &Target) {
        if let Some(stripes) = self.stripes.as_ref() {
            stripes.unpause();
        }
    }

    fn iterate_devices(&self, _ti: &Target, visit: &mut DeviceVisitor<'_>) -> i32 {
        for m in self.group.members.iter() {
            let Some(dev) = m.dev.as_ref() else {
                continue;
            };
            let r = visit.visit(dev, m.offset, self.group.member_len);
            if r != 0 {
                return r;
            }
        }
        0
    }

    fn io_hints(&self, _ti: &Target, limits: &mut QueueLimits<'_>) {
        let g = &*self.group;
        let chunk_bytes = g.chunk_sectors.checked_mul(512);
        let stripe_bytes = chunk_bytes.and_then(|c| c.checked_mul(g.geometry.data_chunks() as u32));
        if !self.parity {
            // RAID5/6 want whole stripes in one bio: no boundary at chunks.
            limits.set_chunk_sectors(g.chunk_sectors);
        }
        if let (Some(c), Some(s)) = (chunk_bytes, stripe_bytes) {
            limits.set_io_min(c);
            limits.set_io_opt(s);
        }
    }
}
