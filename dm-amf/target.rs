// SPDX-License-Identifier: GPL-2.0

//! The `amf` target: table handling, status and the bio routing of a redundancy group.
//!
//! This version implements RAID0: each bio is split by dm core at chunk boundaries, so
//! mapping one is pure arithmetic on the group geometry. Flushes and discards are
//! duplicated by dm core, one copy per member (as dm-stripe does).

use core::{ffi::CStr, fmt::Write};

use kernel::prelude::*;

use crate::core_proto::{
    geometry::Geometry,
    table::{self, TableError},
};
use crate::kernel_ext::{
    bio::{Bio, BioOp, BlkStatus},
    device_mapper::{
        CtrError, DeviceVisitor, DmDev, MapAction, QueueLimits, StatusKind, StatusWriter, Target,
        TargetCtr, TargetOperations,
    },
};

/// Target version reported by `dmsetup targets`.
pub(crate) const VERSION: [u32; 3] = [0, 1, 0];

/// One member device and where its data area starts.
struct Member {
    dev: DmDev,
    offset: u64,
}

/// A constructed `amf` target.
pub(crate) struct AmfTarget {
    geometry: Geometry,
    chunk_sectors: u32,
    /// Sectors each member contributes (from `offset`).
    member_len: u64,
    members: KVec<Member>,
}

impl From<TableError> for CtrError {
    fn from(e: TableError) -> Self {
        CtrError::inval(e.message())
    }
}

impl AmfTarget {
    fn member(&self, i: usize) -> Option<&Member> {
        self.members.get(i)
    }

    /// Sends a flush/discard copy `nr` to member `nr`, trimming a range bio to the part of
    /// it that lives on that member (dm-stripe's `stripe_map_range`).
    fn map_per_member(&self, ti: &Target, bio: &mut Bio<'_>, ranged: bool) -> MapAction {
        let nr = bio.target_bio_nr() as usize;
        let Some(m) = self.member(nr) else {
            return MapAction::Kill;
        };
        if !ranged {
            bio.set_dev(&m.dev);
            return MapAction::Remap;
        }
        let Some(start) = bio.sector().checked_sub(ti.begin()) else {
            return MapAction::Kill;
        };
        let end = start.saturating_add(bio.sectors());
        let (begin, end) = (
            self.member_range_bound(start, nr),
            self.member_range_bound(end, nr),
        );
        if begin >= end {
            // Nothing of this range is on member `nr`.
            return MapAction::Complete(BlkStatus::OK);
        }
        bio.set_dev(&m.dev);
        bio.set_sector(m.offset + begin);
        // The range is at most the original bio's, whose byte size fit in u32.
        bio.set_sectors((end - begin) as u32);
        MapAction::Remap
    }

    /// The first sector on member `nr` at or after logical `sector` (RAID0 only).
    fn member_range_bound(&self, sector: u64, nr: usize) -> u64 {
        let cs = u64::from(self.chunk_sectors);
        let n = self.members.len() as u64;
        let chunk = sector / cs;
        let on_member = (chunk / n) * cs + sector % cs;
        let member = (chunk % n) as usize;
        if member == nr {
            on_member
        } else if nr < member {
            // Member `nr`'s chunk of this row is already behind us: its next chunk.
            (chunk / n + 1) * cs
        } else {
            (chunk / n) * cs
        }
    }
}

impl TargetOperations for AmfTarget {
    const NAME: &'static CStr = c"amf";
    const VERSION: [u32; 3] = VERSION;

    fn ctr(ti: &mut TargetCtr<'_>, args: &[&str]) -> Result<KBox<Self>, CtrError> {
        let spec = table::parse(args, ti.len())?;
        let nr = spec.members().len();
        let member_len = spec.members().first().map_or(0, |m| m.len);

        let mut members = KVec::with_capacity(nr, GFP_KERNEL)
            .map_err(|_| CtrError::new(ENOMEM, c"Cannot allocate member table"))?;
        for m in spec.members() {
            let dev = ti.get_device(m.path)?;
            if members.iter().any(|o: &Member| o.dev.name() == dev.name()) {
                return Err(TableError::DuplicateDevice.into());
            }
            // `parse` checked that offset + len does not overflow.
            if dev.sectors() < m.offset + m.len {
                return Err(TableError::DeviceTooSmall.into());
            }
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

        let geometry = Geometry::new(spec.level, nr, u64::from(spec.chunk_sectors), member_len)
            .map_err(|_| CtrError::inval(c"Invalid geometry"))?;

        ti.set_max_io_len(u64::from(spec.chunk_sectors))?;
        ti.set_num_flush_bios(nr as u32);
        ti.set_num_discard_bios(nr as u32);
        ti.set_num_write_zeroes_bios(nr as u32);
        ti.set_num_secure_erase_bios(nr as u32);

        KBox::new(
            Self {
                geometry,
                chunk_sectors: spec.chunk_sectors,
                member_len,
                members,
            },
            GFP_KERNEL,
        )
        .map_err(|_| CtrError::new(ENOMEM, c"Cannot allocate target context"))
    }

    fn map(&self, ti: &Target, bio: &mut Bio<'_>) -> MapAction {
        if bio.is_preflush() && bio.sectors() == 0 {
            return self.map_per_member(ti, bio, false);
        }
        match bio.op() {
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
        let Ok(loc) = self.geometry.map(logical) else {
            return MapAction::Kill;
        };
        let Some(m) = self.member(loc.member) else {
            return MapAction::Kill;
        };
        bio.set_dev(&m.dev);
        bio.set_sector(m.offset + loc.member_sector);
        MapAction::Remap
    }

    fn status(&self, ti: &Target, kind: StatusKind, out: &mut StatusWriter<'_>) {
        let level = table::level_name(self.geometry.level());
        let n = self.members.len();
        match kind {
            StatusKind::Info => {
                let _ = write!(out, "{level} {n} ");
                for _ in 0..n {
                    let _ = out.write_char('A');
                }
                let _ = write!(out, " {0}/{0} idle 0", ti.len());
            }
            StatusKind::Table => {
                let _ = write!(out, "{level} 1 {} {n}", self.chunk_sectors);
                for m in self.members.iter() {
                    let _ = write!(out, " {} {}", m.dev.name(), m.offset);
                }
            }
            StatusKind::Ima => {
                let _ = write!(
                    out,
                    "level={level},chunk_sectors={},members={n};",
                    self.chunk_sectors
                );
            }
        }
    }

    fn iterate_devices(&self, _ti: &Target, visit: &mut DeviceVisitor<'_>) -> i32 {
        for m in self.members.iter() {
            let r = visit.visit(&m.dev, m.offset, self.member_len);
            if r != 0 {
                return r;
            }
        }
        0
    }

    fn io_hints(&self, _ti: &Target, limits: &mut QueueLimits<'_>) {
        let chunk_bytes = self.chunk_sectors.checked_mul(512);
        let stripe_bytes =
            chunk_bytes.and_then(|c| c.checked_mul(self.geometry.data_chunks() as u32));
        limits.set_chunk_sectors(self.chunk_sectors);
        if let (Some(c), Some(s)) = (chunk_bytes, stripe_bytes) {
            limits.set_io_min(c);
            limits.set_io_opt(s);
        }
    }
}
