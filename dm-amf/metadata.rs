// SPDX-License-Identifier: GPL-2.0

//! The group's superblocks (Documentation/on-disk-format.rst) when the table names the group
//! (`group <uuid>`): the constructor reads both slots of every member, lets the core pick
//! each member's newest valid copy and judge the set (foreign, duplicate, misplaced, stale
//! members...), and takes the member states from the newest superblock. Member states that
//! change are recorded in the next round of superblocks before anything relies on them:
//! failures found by the constructor and rebuilds named by the table at resume, failures
//! found later before the write that relies on them completes, a rebuild's start and end.
//!
//! A superblock is over 2 KiB, so they live on the heap and are decoded and updated in
//! place: the constructor and the stripe worker run on a kernel stack of a few pages.

use kernel::prelude::*;

use crate::core_proto::{
    geometry::{MemberSet, MAX_MEMBERS},
    superblock::{
        self, validate_member_set, ChooseError, MemberEntry, MemberState, Superblock, Uuid,
        Verdict, Which, SLOT_A_SECTOR, SLOT_B_SECTOR, SLOT_SIZE,
    },
    table::TableSpec,
    wire::Crc32c,
};
use crate::group::{devices_in, Member};
use crate::kernel_ext::{
    bio::BioSet,
    block_io::{self, MemberIo},
    checksum,
    device_mapper::CtrError,
};

/// The core's CRC-32C, computed by the kernel's library.
pub(crate) struct KernelCrc;

impl Crc32c for KernelCrc {
    fn append(crc: u32, data: &[u8]) -> u32 {
        checksum::crc32c_append(crc, data)
    }
}

/// The superblock state of an assembled group.
pub(crate) struct GroupMeta {
    /// Each member's newest valid superblock (`None`: no device, or none valid).
    sbs: KVec<Option<Superblock>>,
    /// Position of the newest: the group state to build on.
    authority: usize,
    /// Slot holding each member's current superblock (the next update goes to the other).
    which: [Option<Which>; MAX_MEMBERS],
    /// The round being written.
    next: KBox<Superblock>,
    pool: BioSet,
    /// Two slots' worth of kmalloc memory for reading and writing superblocks.
    buf: KVec<u8>,
}

/// What the constructor takes from the superblocks.
pub(crate) struct Assembly {
    /// Members not to be read: failed, stale, or without a valid superblock.
    pub(crate) failed: MemberSet,
    /// Members the superblocks record as being rebuilt.
    pub(crate) rebuilding: MemberSet,
    /// Member sectors those rebuilds already covered (the lowest checkpoint recorded).
    pub(crate) checkpoint: u64,
    /// Members the newest superblock records in sync (whether or not they are present).
    pub(crate) in_sync: MemberSet,
    pub(crate) meta: GroupMeta,
}

const NO_MEMORY: CtrError = CtrError::new(ENOMEM, c"Cannot allocate superblock buffers");

/// Wall-clock seconds, the superblocks' update time.
fn now() -> u64 {
    // SAFETY: `ktime_get_real_seconds` only reads the clock.
    u64::try_from(unsafe { kernel::bindings::ktime_get_real_seconds() }).unwrap_or(0)
}

/// Reads and judges the superblocks of `members` for the group `uuid` that `spec`
/// describes. Sleeps (constructor only).
#[inline(never)]
pub(crate) fn assemble(
    uuid: &Uuid,
    spec: &TableSpec<'_>,
    members: &[Member],
) -> Result<Assembly, CtrError> {
    let pool = BioSet::with_bvecs(block_io::EACH_BATCH as u32).map_err(|_| NO_MEMORY)?;
    let mut buf = KVec::from_elem(0u8, 2 * SLOT_SIZE, GFP_KERNEL).map_err(|_| NO_MEMORY)?;
    let mut next = KBox::new(Superblock::BLANK, GFP_KERNEL).map_err(|_| NO_MEMORY)?;
    let mut sbs = KVec::with_capacity(members.len(), GFP_KERNEL).map_err(|_| NO_MEMORY)?;
    let mut which = [None; MAX_MEMBERS];
    for (position, (m, w)) in members.iter().zip(which.iter_mut()).enumerate() {
        sbs.push(Some(Superblock::BLANK), GFP_KERNEL)
            .map_err(|_| NO_MEMORY)?;
        let slot = sbs.get_mut(position).ok_or(NO_MEMORY)?;
        *w = read_member(m, &pool, &mut buf, slot, &mut next)?;
        if w.is_none() {
            *slot = None;
        } else if let Some(sb) = slot.as_ref() {
            spec.check_data_offset(position, sb)?;
        }
    }
    let report = validate_member_set(Some(uuid), &sbs).map_err(|e| CtrError::inval(e.message()))?;
    let authority = sbs
        .get(report.authority)
        .and_then(Option::as_ref)
        .ok_or(CtrError::inval(c"No member holds a valid superblock"))?;
    spec.check_group(authority)?;
    let (mut failed, mut rebuilding) = (MemberSet::EMPTY, MemberSet::EMPTY);
    for (i, v) in report.verdicts().iter().enumerate() {
        match v {
            Verdict::InSync => {}
            Verdict::Rebuilding => rebuilding = rebuilding.with(i),
            Verdict::Failed | Verdict::Stale | Verdict::Missing => failed = failed.with(i),
        }
    }
    let checkpoint = rebuilding
        .iter()
        .filter_map(|r| match authority.member(r)?.state {
            MemberState::Rebuilding { checkpoint } => Some(checkpoint),
            _ => None,
        })
        .min()
        .unwrap_or(0);
    let in_sync = (0..members.len())
        .filter(|i| {
            authority
                .member(*i)
                .is_some_and(|e| e.state == MemberState::InSync)
        })
        .fold(MemberSet::EMPTY, MemberSet::with);
    Ok(Assembly {
        failed,
        rebuilding,
        checkpoint,
        in_sync,
        meta: GroupMeta {
            sbs,
            authority: report.authority,
            which,
            next,
            pool,
            buf,
        },
    })
}

/// Reads both slots of member `m` and leaves its newest valid superblock in `slot` (using
/// `spare` for the other slot); returns the winning slot, `None` if it has no device, the
/// read failed, or neither slot is valid (the member then counts as missing).
#[inline(never)]
fn read_member(
    m: &Member,
    pool: &BioSet,
    buf: &mut KVec<u8>,
    slot: &mut Option<Superblock>,
    spare: &mut Superblock,
) -> Result<Option<Which>, CtrError> {
    let (Some(dev), Some(sb)) = (m.dev.as_ref(), slot.as_mut()) else {
        return Ok(None);
    };
    let (a, b) = buf.split_at_mut(SLOT_SIZE);
    let mut ios = [
        MemberIo::read(dev, SLOT_A_SECTOR, a),
        MemberIo::read(dev, SLOT_B_SECTOR, b),
    ];
    if !block_io::submit_all(pool, &mut ios) {
        pr_warn!("member {}: cannot read its superblock\n", m.name());
        return Ok(None);
    }
    let (a, b) = buf.split_at(SLOT_SIZE);
    match superblock::choose_into::<KernelCrc>(a, b, sb, spare) {
        Ok((Which::A, _)) => Ok(Some(Which::A)),
        Ok((Which::B, _)) => {
            core::mem::swap(sb, spare);
            Ok(Some(Which::B))
        }
        Err(ChooseError::NoValidSlot { .. }) => Ok(None),
        Err(e) => Err(CtrError::inval(e.message())),
    }
}

impl GroupMeta {
    /// The newest superblock: the group state.
    pub(crate) fn authority(&self) -> Option<&Superblock> {
        self.sbs.get(self.authority).and_then(Option::as_ref)
    }

    /// The event counter of the group state.
    pub(crate) fn events(&self) -> u64 {
        self.authority().map_or(0, |a| a.events)
    }

    /// Members the group state records failed.
    pub(crate) fn failed_members(&self) -> MemberSet {
        let Some(a) = self.authority() else {
            return MemberSet::EMPTY;
        };
        (0..a.member_count())
            .filter(|r| {
                a.member(*r)
                    .is_some_and(|e| matches!(e.state, MemberState::Failed))
            })
            .fold(MemberSet::EMPTY, MemberSet::with)
    }

    /// Reads every member's superblocks again (another AMF of the cluster may have written
    /// rounds) and takes the newest as the group state. Sleeps.
    #[inline(never)]
    pub(crate) fn reload(&mut self, members: &[Member]) -> Result {
        let Some(uuid) = self.authority().map(|a| a.group_uuid) else {
            return Err(EINVAL);
        };
        for (position, m) in members.iter().enumerate() {
            let (Some(slot), Some(w)) = (self.sbs.get_mut(position), self.which.get_mut(position))
            else {
                return Err(EINVAL);
            };
            if slot.is_none() {
                // Kept as found at assembly: no valid superblock then.
                continue;
            }
            match read_member(m, &self.pool, &mut self.buf, slot, &mut self.next) {
                Ok(Some(found)) => *w = Some(found),
                // Unreadable now (a failed member): it takes no part in the vote.
                Ok(None) | Err(_) => *slot = None,
            }
        }
        let report = validate_member_set(Some(&uuid), &self.sbs).map_err(|e| {
            pr_err!("superblocks: {}\n", e.message().to_str().unwrap_or("?"));
            EIO
        })?;
        self.authority = report.authority;
        Ok(())
    }

    /// Writes a new round if the member states the superblocks record differ from
    /// `failed` (recorded failed) and `rebuilding` (recorded rebuilding from the start;
    /// everything else in sync): to every member not failed, before anything relies on the
    /// new states. Returns the members whose superblock write failed (the round is the
    /// group state on the others). Sleeps.
    #[inline(never)]
    pub(crate) fn record(
        &mut self,
        members: &[Member],
        failed: MemberSet,
        (rebuilding, checkpoint): (MemberSet, u64),
    ) -> Result<MemberSet> {
        let authority = self.sbs.get(self.authority).and_then(Option::as_ref);
        let authority = authority.ok_or(EINVAL)?;
        *self.next = *authority;
        let mut changed = false;
        for role in 0..members.len() {
            let Some(entry) = self.next.member(role) else {
                continue;
            };
            let state = if failed.contains(role) {
                MemberState::Failed
            } else if rebuilding.contains(role) {
                MemberState::Rebuilding { checkpoint }
            } else {
                MemberState::InSync
            };
            if state != entry.state {
                self.next.set_member(
                    role,
                    MemberEntry {
                        state,
                        uuid: entry.uuid,
                    },
                );
                changed = true;
            }
        }
        if !changed {
            return Ok(MemberSet::EMPTY);
        }
        self.next.events = authority.events.checked_add(1).ok_or(ERANGE)?;
        self.next.utime = now();
        let all = MemberSet::first(members.len());
        self.write_next(members, MemberSet(all.0 & !failed.0))
    }

    /// Writes `next`, each member's copy with its own role, to the slot not holding its
    /// current superblock, with FUA; it then is the group state. Returns the members whose
    /// flush or write failed.
    fn write_next(&mut self, members: &[Member], usable: MemberSet) -> Result<MemberSet> {
        // What the round describes (rebuilt stripes below a new checkpoint) is on stable
        // media on every member before any member's copy claims it: the newest copy anywhere
        // is the group state at the next start. A member whose cache cannot be flushed gets
        // no copy of the round and counts as failed.
        let mut bad = MemberSet(block_io::flush_each(
            &self.pool,
            devices_in(members, usable.0),
        ));
        let usable = MemberSet(usable.0 & !bad.0);
        for (role, m) in members.iter().enumerate() {
            let (Some(dev), true) = (m.dev.as_ref(), usable.contains(role)) else {
                continue;
            };
            self.next.role = u16::try_from(role).map_err(|_| EINVAL)?;
            let out: &mut [u8; SLOT_SIZE] = self
                .buf
                .get_mut(..SLOT_SIZE)
                .and_then(|s| s.try_into().ok())
                .ok_or(EINVAL)?;
            superblock::encode::<KernelCrc>(&self.next, out).map_err(|_| EINVAL)?;
            let slot = self
                .which
                .get(role)
                .copied()
                .flatten()
                .map_or(Which::A, Which::other);
            let data = self.buf.get(..SLOT_SIZE).ok_or(EINVAL)?;
            // FUA: the flush round above already ordered it after what it describes.
            let mut io = [MemberIo::write(dev, slot.sector(), data, true)];
            if !block_io::submit_all(&self.pool, &mut io) {
                pr_err!("member {role}: superblock update failed\n");
                bad = bad.with(role);
                continue;
            }
            if let Some(w) = self.which.get_mut(role) {
                *w = Some(slot);
            }
        }
        // The round is the group state now; keep it where the authority was.
        let role = self.authority;
        if let Some(Some(a)) = self.sbs.get_mut(role) {
            *a = *self.next;
            a.role = u16::try_from(role).map_err(|_| EINVAL)?;
        }
        Ok(bad)
    }
}
