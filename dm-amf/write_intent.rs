// SPDX-License-Identifier: GPL-2.0

//! This AMF's write-intent bitmap (Documentation/on-disk-format.rst, "Write-intent
//! bitmaps"): a region's bit is made durable on every live member before the first write
//! into the region is issued, and cleared once the region stayed idle for a whole sweep
//! period. At the next start after a crash of every AMF, the regions whose bit is set are
//! the only ones whose stripes may be torn: they are resynced, nothing else.
//!
//! Each region has an atomic state word (`core::bitmap::state`): the map path of a mirror
//! starts a write without sleeping when the region's bit is already durable, and otherwise
//! hands the write to the stripe worker, which marks the bit first. Only the stripe worker
//! writes bitmap blocks (marking, sweeping and the end of a resync), so a block image built
//! from the state words is never overtaken by an older one.

use core::num::NonZeroU64;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use kernel::{alloc::KVVec, new_mutex, prelude::*, sync::Mutex};

use crate::core_proto::{
    bitmap::{self, state, Header, HeaderError, BLOCK_BYTES},
    superblock::Superblock,
};
use crate::group::{devices_in, Member};
use crate::kernel_ext::{
    bio::BioSet,
    block_io::{self, MemberIo},
    device_mapper::CtrError,
};
use crate::metadata::KernelCrc;

/// Milliseconds between sweeps; a bit is cleared after one to two periods without writes
/// (md's bitmap daemon wakes every 5 s too).
pub(crate) const SWEEP_MS: u32 = 5000;
const SWEEP_NS: i64 = SWEEP_MS as i64 * 1_000_000;

/// What only the stripe worker (and the constructor) touch: the block buffer and its bios.
struct BlockIo {
    pool: BioSet,
    buf: KVec<u8>,
    /// `ktime_get` of the last sweep.
    last_sweep: i64,
    /// Resync: the next region to look at, and the next row of it.
    cursor: u64,
    row: u64,
}

/// The bitmap of this AMF's node slot.
#[pin_data]
pub(crate) struct WriteIntent {
    header: Header,
    /// `header.region_sectors`, never zero.
    region: NonZeroU64,
    /// One state word per region.
    words: KVVec<AtomicU32>,
    /// Regions whose bit is set on disk.
    dirty: AtomicU64,
    /// Regions still to resync.
    pending: AtomicU64,
    /// Regions resynced since the table was loaded.
    resynced: AtomicU64,
    #[pin]
    io: Mutex<BlockIo>,
}

/// The sector range of region `region` on every member, as rows: `[first, end)`.
pub(crate) struct RegionRows {
    pub(crate) first: u64,
    pub(crate) end: u64,
}

fn nomem() -> CtrError {
    CtrError::new(ENOMEM, c"Cannot allocate the write-intent bitmap")
}

fn now() -> i64 {
    // SAFETY: `ktime_get` only reads the monotonic clock.
    unsafe { kernel::bindings::ktime_get() }
}

impl WriteIntent {
    /// Loads node slot `slot`'s bitmap of the group `sb` describes from the members not in
    /// `failed` (the union of their copies: a bit set on any member counts), marks its set
    /// regions for resync, and writes the slot's header where it is missing. A corrupted
    /// header or one of another incarnation makes every region dirty: nothing can tell
    /// which were. Sleeps (constructor only).
    #[inline(never)]
    pub(crate) fn load(
        sb: &Superblock,
        slot: u8,
        members: &[Member],
        failed: u64,
    ) -> Result<Pin<KBox<Self>>, CtrError> {
        let region = NonZeroU64::new(sb.region_sectors).unwrap_or(NonZeroU64::MIN);
        let regions = sb.data_sectors.div_ceil(region.get());
        let header = Header {
            group: sb.group_uuid,
            ctime: sb.ctime,
            slot,
            region_sectors: region.get(),
            regions,
        };
        let n = usize::try_from(regions).map_err(|_| nomem())?;
        let mut words = KVVec::with_capacity(n, GFP_KERNEL).map_err(|_| nomem())?;
        for _ in 0..n {
            words
                .push(AtomicU32::new(0), GFP_KERNEL)
                .map_err(|_| nomem())?;
        }
        let pool = BioSet::with_bvecs(2).map_err(|_| nomem())?;
        let buf = KVec::from_elem(0u8, BLOCK_BYTES, GFP_KERNEL).map_err(|_| nomem())?;
        let this = KBox::pin_init(
            pin_init!(Self {
                header,
                region,
                words,
                dirty: AtomicU64::new(0),
                pending: AtomicU64::new(0),
                resynced: AtomicU64::new(0),
                io <- new_mutex!(BlockIo { pool, buf, last_sweep: now(), cursor: 0, row: 0 }, "amf:bitmap_io"),
            }),
            GFP_KERNEL,
        )
        .map_err(|_| nomem())?;
        this.read_slot(members, failed)?;
        Ok(this)
    }

    /// Reads the slot from every usable member and writes its header where it is not
    /// valid yet.
    fn read_slot(&self, members: &[Member], failed: u64) -> Result<(), CtrError> {
        let mut io = self.io.lock();
        let BlockIo { pool, buf, .. } = &mut *io;
        let hsector = bitmap::header_sector(self.header.slot).ok_or(nomem())?;
        let (_, need_header) = self
            .read_bits(pool, buf, members, failed, self.header.slot)
            .map_err(|_| CtrError::new(EIO, c"Cannot read the write-intent bitmap"))?;
        // The dirty bits first (to every member, so a member whose copy was lost has them
        // again), then the header that makes them count.
        if self.dirty.load(Ordering::Relaxed) != 0 {
            for block in 0..bitmap::blocks(self.header.regions) {
                self.write_block(pool, buf, members, failed, block, Mark::Dirty)
                    .map_err(|_| CtrError::new(EIO, c"Cannot write the write-intent bitmap"))?;
            }
        }
        if need_header != 0 {
            let out: &mut [u8; BLOCK_BYTES] = buf.as_mut_slice().try_into().map_err(|_| nomem())?;
            bitmap::encode_header::<KernelCrc>(&self.header, out);
            let targets = !failed & need_header;
            if write_all(
                pool,
                buf,
                members,
                targets,
                hsector,
                "write-intent bitmap",
                Mark::Dirty,
            )
            .is_err()
            {
                return Err(CtrError::new(
                    EIO,
                    c"Cannot write the write-intent bitmap header",
                ));
            }
        }
        let n = self.pending.load(Ordering::Relaxed);
        if n != 0 {
            pr_info!(
                "resync: {n} dirty regions of {} (node slot {})\n",
                self.header.regions,
                self.header.slot
            );
        }
        Ok(())
    }

    /// Reads node slot `slot`'s bitmap from every member not in `failed` and marks every
    /// region set in any copy for resync (its bit set in this AMF's memory). Returns whether
    /// a copy could not be used (every region was marked then) and the members whose
    /// header is not valid. Sleeps.
    fn read_bits(
        &self,
        pool: &BioSet,
        buf: &mut KVec<u8>,
        members: &[Member],
        failed: u64,
        slot: u8,
    ) -> Result<(bool, u64)> {
        let hsector = bitmap::header_sector(slot).ok_or(EINVAL)?;
        let want = Header {
            slot,
            ..self.header
        };
        let (mut all_dirty, mut need_header) = (false, 0u64);
        for (i, m) in members.iter().enumerate() {
            let Some(dev) = m.dev.as_ref().filter(|_| failed & (1 << i) == 0) else {
                continue;
            };
            let mut ios = [MemberIo::read(dev, hsector, buf)];
            if !block_io::submit_all(pool, &mut ios) {
                pr_warn!("member {i}: cannot read the write-intent bitmap header of slot {slot}\n");
                continue;
            }
            match bitmap::check_header::<KernelCrc>(buf, &want) {
                Ok(()) => {}
                Err(HeaderError::Unused) => {
                    // Never used since `amfctl format` zeroed it: no bit set.
                    need_header |= 1 << i;
                    continue;
                }
                Err(e) => {
                    pr_warn!(
                        "member {i}: write-intent bitmap of slot {slot} unusable ({e:?}): every region is resynced\n"
                    );
                    all_dirty = true;
                    need_header |= 1 << i;
                    continue;
                }
            }
            for block in 0..bitmap::blocks(self.header.regions) {
                let sector = bitmap::block_sector(slot, block).ok_or(EINVAL)?;
                let mut ios = [MemberIo::read(dev, sector, buf)];
                if !block_io::submit_all(pool, &mut ios) {
                    pr_warn!("member {i}: cannot read the write-intent bitmap of slot {slot}: every region is resynced\n");
                    all_dirty = true;
                    break;
                }
                for r in bitmap::set_regions(block, buf, self.header.regions) {
                    self.set_resync(r);
                }
            }
        }
        if all_dirty {
            for r in 0..self.header.regions {
                self.set_resync(r);
            }
        }
        Ok((all_dirty, need_header))
    }

    /// A cluster node that died alone (no replication records cover its operation in
    /// flight): its slot's dirty regions become this AMF's to resync. They are set in this
    /// AMF's own bitmap on disk first, so that its own crash cannot lose them; the dead
    /// node's slot is left alone (the node resyncs it again when it comes back, which does
    /// no harm). Returns the regions taken over. Stripe worker only; sleeps.
    pub(crate) fn adopt_slot(&self, members: &[Member], failed: u64, slot: u8) -> Result<u64> {
        if slot == self.header.slot {
            return Ok(0);
        }
        let before = self.pending.load(Ordering::Acquire);
        let mut io = self.io.lock();
        let BlockIo { pool, buf, .. } = &mut *io;
        self.read_bits(pool, buf, members, failed, slot)?;
        let taken = self.pending.load(Ordering::Acquire).saturating_sub(before);
        if taken != 0 {
            for block in 0..bitmap::blocks(self.header.regions) {
                self.write_block(pool, buf, members, failed, block, Mark::Dirty)?;
            }
        }
        Ok(taken)
    }

    /// Marks region `r` dirty and waiting for its resync (it is set on disk).
    fn set_resync(&self, r: u64) {
        let Some(w) = self.word(r) else {
            return;
        };
        let old = w.fetch_or(state::DURABLE | state::RESYNC, Ordering::AcqRel);
        if old & state::DURABLE == 0 {
            self.dirty.fetch_add(1, Ordering::Relaxed);
        }
        if old & state::RESYNC == 0 {
            self.pending.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn word(&self, region: u64) -> Option<&AtomicU32> {
        self.words.get(usize::try_from(region).ok()?)
    }

    /// The region of member sector `sector`.
    pub(crate) fn region_of(&self, sector: u64) -> u64 {
        sector / self.region
    }

    /// Starts a write into the region of member sector `sector` from the map path, if its
    /// bit is durable: the caller must then call [`Self::end`] with the region returned.
    /// `None`: the worker must mark it first. Never sleeps.
    pub(crate) fn start(&self, sector: u64) -> Option<u64> {
        let region = self.region_of(sector);
        let w = self.word(region)?;
        w.fetch_update(Ordering::AcqRel, Ordering::Acquire, state::start)
            .ok()
            .map(|_| region)
    }

    /// A map-path write into `region` completed. Never sleeps.
    pub(crate) fn end(&self, region: u64) {
        if let Some(w) = self.word(region) {
            let _ = w.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| Some(state::end(v)));
        }
    }

    /// Whether the region of member sector `sector` waits for its resync (a mirror then
    /// reads only its first copy).
    pub(crate) fn resync_pending(&self, sector: u64) -> bool {
        self.word(self.region_of(sector))
            .is_some_and(|w| w.load(Ordering::Acquire) & state::RESYNC != 0)
    }

    /// Makes the bit of the region of member sector `sector` durable before a write into
    /// it is issued. Returns the members whose bitmap write failed (to be failed by the
    /// caller); an error if it landed nowhere. Stripe worker only; sleeps.
    pub(crate) fn mark(&self, members: &[Member], failed: u64, sector: u64) -> Result<u64> {
        let region = self.region_of(sector);
        let w = self.word(region).ok_or(EINVAL)?;
        let old = w.fetch_or(state::TOUCHED, Ordering::AcqRel);
        if old & state::DURABLE != 0 {
            return Ok(0);
        }
        // Into the block image, but no map-path write may start before the block landed.
        w.fetch_or(state::MARKING, Ordering::AcqRel);
        let mut io = self.io.lock();
        let BlockIo { pool, buf, .. } = &mut *io;
        let block = bitmap::bit_of(region).0;
        let written = self.write_block(pool, buf, members, failed, block, Mark::Dirty);
        let set = if written.is_ok() { state::DURABLE } else { 0 };
        let _ = w.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
            Some((v & !state::MARKING) | set)
        });
        if written.is_ok() {
            self.dirty.fetch_add(1, Ordering::Relaxed);
        }
        written
    }

    /// Clears the bits of regions idle for a whole period, if a period has passed since
    /// the last sweep (or always with `all`, from a quiesced device). Stripe worker only;
    /// sleeps.
    pub(crate) fn sweep(&self, members: &[Member], failed: u64, all: bool) {
        if self.dirty.load(Ordering::Relaxed) == 0 && !all {
            return;
        }
        let mut io = self.io.lock();
        let t = now();
        if !all && t.wrapping_sub(io.last_sweep) < SWEEP_NS {
            return;
        }
        io.last_sweep = t;
        let BlockIo { pool, buf, .. } = &mut *io;
        let per_block = bitmap::BITS_PER_BLOCK;
        for block in 0..bitmap::blocks(self.header.regions) {
            let first = block * per_block;
            let end = (first + per_block).min(self.header.regions);
            let mut cleared = 0u64;
            for r in first..end {
                let Some(w) = self.word(r) else {
                    break;
                };
                let v = w.load(Ordering::Acquire);
                let decision =
                    if all && v & state::DURABLE != 0 && v & (state::COUNT | state::RESYNC) == 0 {
                        state::Sweep::Clear
                    } else {
                        state::sweep(v)
                    };
                match decision {
                    state::Sweep::Keep => {}
                    state::Sweep::Untouch => {
                        w.fetch_and(!state::TOUCHED, Ordering::AcqRel);
                    }
                    state::Sweep::Clear => {
                        // Only if nothing started in between: from now on new writes go
                        // through `mark`, which waits for this sweep (the block lock).
                        if w.compare_exchange(v, 0, Ordering::AcqRel, Ordering::Acquire)
                            .is_ok()
                        {
                            cleared += 1;
                        }
                    }
                }
            }
            // A quiesced device rewrites every block: a member that missed earlier bitmap
            // writes (failed then, rebuilt since) must not keep a stale bit.
            if cleared == 0 && !all {
                continue;
            }
            // Clearing bits says the rows are consistent: their data and parity go to stable
            // media first (one flush round per bitmap block written, every 5 s at most).
            if self
                .write_block(pool, buf, members, failed, block, Mark::Clean)
                .is_err()
            {
                // The bits stay set on disk: a later resync does more than needed, never
                // less. Keep counting them as dirty.
                pr_warn!("write-intent bitmap: cannot clear bits of block {block}\n");
                for r in first..end {
                    if let Some(w) = self.word(r) {
                        // Mark durable again only what was cleared (still 0 or started
                        // through `mark` since, which set it anyway).
                        let _ = w.compare_exchange(
                            0,
                            state::DURABLE,
                            Ordering::AcqRel,
                            Ordering::Acquire,
                        );
                    }
                }
                continue;
            }
            self.dirty.fetch_sub(cleared, Ordering::Relaxed);
        }
    }

    /// Writes bitmap block `block` from the state words to every usable member, with FUA,
    /// ordered as `mark` says. Returns the members whose write failed; an error if it landed
    /// on none.
    fn write_block(
        &self,
        pool: &BioSet,
        buf: &mut KVec<u8>,
        members: &[Member],
        failed: u64,
        block: u64,
        mark: Mark,
    ) -> Result<u64> {
        buf.fill(0);
        let first = block * bitmap::BITS_PER_BLOCK;
        let end = (first + bitmap::BITS_PER_BLOCK).min(self.header.regions);
        for r in first..end {
            let set = self
                .word(r)
                .is_some_and(|w| state::in_image(w.load(Ordering::Acquire)));
            if set {
                let (_, byte, mask) = bitmap::bit_of(r);
                if let Some(b) = buf.get_mut(byte) {
                    *b |= mask;
                }
            }
        }
        let sector = bitmap::block_sector(self.header.slot, block).ok_or(EINVAL)?;
        write_all(
            pool,
            buf,
            members,
            !failed,
            sector,
            "write-intent bitmap",
            mark,
        )
    }

    /// The next region waiting for its resync, from the resync cursor on, and its rows
    /// (`rows_per_region` rows each, the last one cut at `rows`). Stripe worker only.
    pub(crate) fn next_resync(&self, rows_per_region: u64, rows: u64) -> Option<(u64, RegionRows)> {
        if self.pending.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut io = self.io.lock();
        let start = io.cursor;
        for r in Iterator::chain(start..self.header.regions, 0..start) {
            let pending = self
                .word(r)
                .is_some_and(|w| w.load(Ordering::Acquire) & state::RESYNC != 0);
            if pending {
                if io.cursor != r {
                    io.cursor = r;
                    io.row = 0;
                }
                let first = r.saturating_mul(rows_per_region);
                return Some((
                    r,
                    RegionRows {
                        first,
                        end: first.saturating_add(rows_per_region).min(rows),
                    },
                ));
            }
        }
        None
    }

    /// The first row of region `r` not resynced yet (`first` if none was).
    pub(crate) fn resync_row(&self, r: u64, first: u64) -> u64 {
        let io = self.io.lock();
        if io.cursor == r {
            io.row.max(first)
        } else {
            first
        }
    }

    /// Region `r` is resynced below row `row`.
    pub(crate) fn set_resync_row(&self, r: u64, row: u64) {
        let mut io = self.io.lock();
        io.cursor = r;
        io.row = row;
    }

    /// Region `r` is resynced: its bit goes at a later sweep like any other.
    pub(crate) fn resync_done(&self, r: u64) {
        let Some(w) = self.word(r) else {
            return;
        };
        let old = w.fetch_and(!state::RESYNC, Ordering::AcqRel);
        if old & state::RESYNC != 0 {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            self.resynced.fetch_add(1, Ordering::Relaxed);
            let mut io = self.io.lock();
            io.cursor = r + 1;
            io.row = 0;
        }
    }

    /// Gives up the resync of every region (the group cannot be resynced any more, e.g.
    /// too many members failed): their bits stay set.
    pub(crate) fn abandon_resync(&self) {
        for r in 0..self.header.regions {
            if let Some(w) = self.word(r) {
                w.fetch_and(!state::RESYNC, Ordering::AcqRel);
            }
        }
        self.pending.store(0, Ordering::Release);
    }

    /// `dmsetup status`: regions, bits set, regions waiting for resync, regions resynced.
    pub(crate) fn counters(&self) -> (u64, u64, u64, u64) {
        (
            self.header.regions,
            self.dirty.load(Ordering::Relaxed),
            self.pending.load(Ordering::Relaxed),
            self.resynced.load(Ordering::Relaxed),
        )
    }

    /// Sectors per region.
    pub(crate) fn region_sectors(&self) -> u64 {
        self.header.region_sectors
    }
}

/// Members written at once (the pools reserve that many bios).
pub(crate) const BATCH: usize = block_io::EACH_BATCH;

/// How a reserved-area write is ordered against the member writes before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mark {
    /// A mark that makes a restart do more (a bit set, a new log entry over a retired one,
    /// a header): FUA, durable before the writes it protects are issued.
    Dirty,
    /// A mark that lets a restart do less (bits cleared, a log entry retired or
    /// overwritten): every target's cache is flushed first, all of them before any mark is
    /// written, so that the data and parity it calls clean are on stable media before it
    /// is. Copies are merged across members at load (the union of bits, the newest entry),
    /// so one member's mark must not overtake another member's data.
    Clean,
}

/// Writes `buf` at `sector` (absolute, in the reserved area) of every member in `targets`
/// with FUA, [`BATCH`] at a time (`pool` reserves that many bios), after a flush of every
/// target when `mark` is [`Mark::Clean`]. Returns the members whose flush or write failed
/// (logged as writes of `what`); an error if it landed on none. Sleeps.
pub(crate) fn write_all(
    pool: &BioSet,
    buf: &[u8],
    members: &[Member],
    targets: u64,
    sector: u64,
    what: &str,
    mark: Mark,
) -> Result<u64> {
    // A member whose cache could not be flushed gets no clean mark: its copy keeps saying
    // dirty, which a restart reads as more work, never less.
    let unflushed = match mark {
        Mark::Dirty => 0,
        Mark::Clean => block_io::flush_each(pool, devices_in(members, targets)),
    };
    let chosen = devices_in(members, targets & !unflushed)
        .map(|(i, dev)| (i, MemberIo::write(dev, sector, buf, true)));
    let (bad, landed) = block_io::submit_each(pool, chosen);
    if bad != 0 {
        pr_err!("{what} write failed on members {bad:#x}\n");
    }
    if landed {
        Ok(bad | unflushed)
    } else {
        Err(EIO)
    }
}
