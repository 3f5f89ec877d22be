// SPDX-License-Identifier: GPL-2.0
//! Redundancy-group geometry: where a logical sector lives on the member devices.
//!
//! The layouts follow the kernel's own targets so that an array can be inspected (and, for
//! RAID5/6, checked) with the kernel's tools: RAID0 like dm-stripe, RAID5 and RAID6 like md's
//! default left-symmetric layouts (`raid5_compute_sector`), RAID10 like md's "near" layout
//! (`raid10_find_phys` with `far_copies == 1`).
//!
//! A *stripe* is the unit the cluster locks and the unit parity covers:
//! RAID0/5/6: one row of chunks across all members; RAID1: one chunk-sized range of the
//! mirror; RAID10: one logical chunk (all its near copies).

use core::num::{NonZeroU64, NonZeroUsize};

/// Largest number of member devices in one group (a [`MemberSet`] is one `u64`).
pub const MAX_MEMBERS: usize = 64;

/// `x` as a divisor: non-zero by the geometry's own checks, typed `NonZero` so that dividing
/// by it compiles to no panic branch (the kernel module runs this code in its I/O path).
/// A zero, which the checks rule out, would read as 1.
pub fn nonzero(x: u64) -> NonZeroU64 {
    NonZeroU64::new(x).unwrap_or(NonZeroU64::MIN)
}

fn nonzero_usize(x: usize) -> NonZeroUsize {
    NonZeroUsize::new(x).unwrap_or(NonZeroUsize::MIN)
}

/// RAID level of a redundancy group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Striping without redundancy (dm-stripe layout).
    Raid0,
    /// n-way mirror: every member holds every sector at the same offset.
    Raid1,
    /// Single parity, md left-symmetric.
    Raid5,
    /// P+Q parity, md left-symmetric (P then Q).
    Raid6,
    /// md "near" layout with `copies` adjacent copies of each chunk.
    Raid10 {
        /// Number of near copies (md's `n2` is 2).
        copies: u8,
    },
}

/// Why a geometry or a mapping request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GeometryError {
    /// Fewer members than the level needs.
    TooFewMembers,
    /// More than [`MAX_MEMBERS`] members.
    TooManyMembers,
    /// Chunk size of zero sectors.
    ZeroChunk,
    /// RAID10 with fewer than two copies or more copies than members.
    BadCopies,
    /// The capacity does not fit in a `u64` of sectors.
    Overflow,
    /// Logical sector beyond the end of the group.
    SectorOutOfRange,
    /// Stripe beyond the end of the group.
    StripeOutOfRange,
    /// Member index not in the group.
    MemberOutOfRange,
    /// More failed members than the level tolerates for this read.
    TooManyFailures,
}

/// A set of member indexes (bit `i` = member `i`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemberSet(pub u64);

impl MemberSet {
    /// The empty set.
    pub const EMPTY: MemberSet = MemberSet(0);

    /// Set with only `member` (empty if out of range).
    pub fn single(member: usize) -> MemberSet {
        MemberSet::EMPTY.with(member)
    }

    /// Members `0 .. n` (all of them for `n` at or beyond [`MAX_MEMBERS`]).
    pub fn first(n: usize) -> MemberSet {
        let n = u32::try_from(n.min(MAX_MEMBERS)).unwrap_or(64);
        MemberSet(u64::MAX.checked_shr(64 - n).unwrap_or(0))
    }

    /// This set plus `member` (unchanged if out of range).
    pub fn with(self, member: usize) -> MemberSet {
        match 1u64.checked_shl(member as u32) {
            Some(bit) if member < MAX_MEMBERS => MemberSet(self.0 | bit),
            _ => self,
        }
    }

    /// This set minus `member`.
    pub fn without(self, member: usize) -> MemberSet {
        match 1u64.checked_shl(member as u32) {
            Some(bit) if member < MAX_MEMBERS => MemberSet(self.0 & !bit),
            _ => self,
        }
    }

    /// Whether `member` is in the set.
    pub fn contains(self, member: usize) -> bool {
        member < MAX_MEMBERS && (self.0 >> member) & 1 == 1
    }

    /// Number of members in the set.
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Members in increasing order.
    pub fn iter(self) -> impl Iterator<Item = usize> + Clone {
        (0..MAX_MEMBERS).filter(move |m| self.contains(*m))
    }
}

/// Where one logical sector lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    /// Stripe (lock and parity unit) holding the sector.
    pub stripe: u64,
    /// Index of the data chunk within its stripe (0 for RAID1/RAID10).
    pub chunk: usize,
    /// Member holding the (first) copy.
    pub member: usize,
    /// Sector on that member.
    pub member_sector: u64,
    /// Offset of the sector within its chunk.
    pub offset: u64,
}

/// One physical place: member and sector on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Place {
    /// Member index.
    pub member: usize,
    /// Sector on the member.
    pub sector: u64,
}

/// Up to `N` items in a fixed array: what the planners return without allocating. Only the
/// planners fill one; a push beyond `N` is dropped.
#[derive(Clone, Copy, Debug)]
pub struct BoundedList<T, const N: usize> {
    items: [T; N],
    len: usize,
}

impl<T: Copy + Default, const N: usize> BoundedList<T, N> {
    pub(super) fn new() -> Self {
        BoundedList {
            items: [T::default(); N],
            len: 0,
        }
    }

    pub(super) fn clear(&mut self) {
        self.len = 0;
    }

    pub(super) fn push(&mut self, item: T) {
        if let Some(slot) = self.items.get_mut(self.len) {
            *slot = item;
            self.len += 1;
        }
    }

    /// The items, in the order they were pushed.
    pub fn as_slice(&self) -> &[T] {
        self.items.get(..self.len).unwrap_or(&[])
    }
}

/// All physical copies of one logical sector (1 for RAID0/5/6, n for RAID1, copies for RAID10),
/// first copy first.
pub type Copies = BoundedList<Place, MAX_MEMBERS>;

/// Iterator over the physical copies of one logical sector (see [`Geometry::copy_iter`]).
#[derive(Clone, Copy, Debug)]
pub enum CopyIter {
    /// RAID1: the same sector on every member.
    Mirror {
        /// Next member.
        member: usize,
        /// Number of members.
        members: usize,
        /// The sector (the same on every member).
        sector: u64,
    },
    /// RAID10 near: `copies` consecutive device chunks.
    Near {
        /// Next device-chunk position (member = pos % members, row = pos / members).
        pos: u64,
        /// One past the last position.
        end: u64,
        /// Number of members.
        members: NonZeroU64,
        /// Chunk size in sectors.
        chunk_sectors: u64,
        /// Offset of the sector within its chunk.
        offset: u64,
    },
    /// Levels with a single copy: the one place, until taken.
    Single(Option<Place>),
}

impl Iterator for CopyIter {
    type Item = Place;

    fn next(&mut self) -> Option<Place> {
        match self {
            CopyIter::Mirror {
                member,
                members,
                sector,
            } => {
                if *member >= *members {
                    return None;
                }
                let place = Place {
                    member: *member,
                    sector: *sector,
                };
                *member += 1;
                Some(place)
            }
            CopyIter::Near {
                pos,
                end,
                members,
                chunk_sectors,
                offset,
            } => {
                if *pos >= *end {
                    return None;
                }
                let place = Place {
                    member: (*pos % *members) as usize,
                    sector: (*pos / *members) * *chunk_sectors + *offset,
                };
                *pos += 1;
                Some(place)
            }
            CopyIter::Single(place) => place.take(),
        }
    }
}

/// What a physical sector holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Content {
    /// A copy of this logical sector.
    Data(u64),
    /// The P parity of this stripe.
    P(u64),
    /// The Q syndrome of this stripe.
    Q(u64),
    /// Past the end of the used area.
    Unused,
}

/// The members of one stripe: data members in chunk order, then parity.
#[derive(Clone, Copy, Debug)]
pub struct StripeLayout {
    data: [u8; MAX_MEMBERS],
    data_count: usize,
    /// Member holding P (RAID5/6).
    pub p: Option<usize>,
    /// Member holding Q (RAID6).
    pub q: Option<usize>,
    /// First sector of the stripe's chunks on every member it uses.
    pub member_sector: u64,
}

impl StripeLayout {
    /// Data members, data chunk 0 first (md's RAID6 syndrome order).
    pub fn data_members(&self) -> &[u8] {
        self.data.get(..self.data_count).unwrap_or(&[])
    }

    /// Member holding data chunk `chunk` of this stripe.
    pub fn data_member(&self, chunk: usize) -> Option<usize> {
        self.data_members().get(chunk).map(|m| *m as usize)
    }

    /// Data chunk index held by `member`, if it holds data in this stripe.
    pub fn chunk_of(&self, member: usize) -> Option<usize> {
        self.data_members()
            .iter()
            .position(|m| *m as usize == member)
    }
}

/// How to read one logical sector given a set of failed members.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadPlan {
    /// Read it directly from this place.
    Direct(Place),
    /// Read `sources` at `member_sector` and rebuild data chunk `chunk` of `stripe` from them
    /// (`sources` may include P and/or Q as the level needs).
    Reconstruct {
        /// Stripe to rebuild from.
        stripe: u64,
        /// Data chunk index to rebuild.
        chunk: usize,
        /// Members to read.
        sources: MemberSet,
        /// Sector to read on each source member.
        member_sector: u64,
    },
}

/// A redundancy group: level, number of members, chunk size and usable size per member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    level: Level,
    members: usize,
    chunk_sectors: u64,
    rows: u64,
    logical_sectors: u64,
}

impl Geometry {
    /// Check and build a geometry. `member_sectors` is rounded down to whole chunks.
    pub fn new(
        level: Level,
        members: usize,
        chunk_sectors: u64,
        member_sectors: u64,
    ) -> Result<Geometry, GeometryError> {
        if members > MAX_MEMBERS {
            return Err(GeometryError::TooManyMembers);
        }
        if chunk_sectors == 0 {
            return Err(GeometryError::ZeroChunk);
        }
        let min = match level {
            Level::Raid0 | Level::Raid1 => 1,
            Level::Raid5 => 2,
            Level::Raid6 => 4,
            Level::Raid10 { copies } => {
                if copies < 2 || copies as usize > members {
                    return Err(GeometryError::BadCopies);
                }
                2
            }
        };
        if members < min {
            return Err(GeometryError::TooFewMembers);
        }
        let rows = member_sectors / nonzero(chunk_sectors);
        let mut g = Geometry {
            level,
            members,
            chunk_sectors,
            rows,
            logical_sectors: 0,
        };
        g.logical_sectors = g
            .stripes_checked()
            .and_then(|s| s.checked_mul(g.stripe_sectors()?))
            .ok_or(GeometryError::Overflow)?;
        Ok(g)
    }

    fn stripes_checked(&self) -> Option<u64> {
        match self.level {
            Level::Raid10 { copies } => self
                .rows
                .checked_mul(self.members as u64)
                .map(|p| p / nonzero(copies as u64)),
            _ => Some(self.rows),
        }
    }

    /// RAID level.
    pub fn level(&self) -> Level {
        self.level
    }

    /// Number of member devices.
    pub fn members(&self) -> usize {
        self.members
    }

    /// Chunk size in sectors.
    pub fn chunk_sectors(&self) -> u64 {
        self.chunk_sectors
    }

    /// Usable sectors of the group.
    pub fn logical_sectors(&self) -> u64 {
        self.logical_sectors
    }

    /// Number of data chunks in one stripe.
    pub fn data_chunks(&self) -> usize {
        match self.level {
            Level::Raid0 => self.members,
            Level::Raid1 | Level::Raid10 { .. } => 1,
            Level::Raid5 => self.members - 1,
            Level::Raid6 => self.members - 2,
        }
    }

    /// Number of parity chunks in one stripe (0, 1 or 2).
    pub fn parity_chunks(&self) -> usize {
        match self.level {
            Level::Raid5 => 1,
            Level::Raid6 => 2,
            _ => 0,
        }
    }

    /// Logical sectors per stripe.
    pub fn stripe_sectors(&self) -> Option<u64> {
        self.chunk_sectors.checked_mul(self.data_chunks() as u64)
    }

    /// Number of stripes.
    pub fn stripes(&self) -> u64 {
        self.stripes_checked().unwrap_or(0)
    }

    /// How many members may fail without losing data.
    pub fn tolerated_failures(&self) -> usize {
        match self.level {
            Level::Raid0 => 0,
            Level::Raid1 => self.members - 1,
            Level::Raid5 => 1,
            Level::Raid6 => 2,
            // Worst case: `copies` adjacent members hold all copies of some chunk.
            Level::Raid10 { copies } => copies as usize - 1,
        }
    }

    /// Where logical `sector` lives (its first copy for mirrored levels).
    pub fn map(&self, sector: u64) -> Result<Location, GeometryError> {
        if sector >= self.logical_sectors {
            return Err(GeometryError::SectorOutOfRange);
        }
        let cs = nonzero(self.chunk_sectors);
        let n = nonzero(self.members as u64);
        let offset = sector % cs;
        let chunk_number = sector / cs;
        let loc = match self.level {
            Level::Raid0 => Location {
                stripe: chunk_number / n,
                chunk: (chunk_number % n) as usize,
                member: (chunk_number % n) as usize,
                member_sector: (chunk_number / n) * cs.get() + offset,
                offset,
            },
            Level::Raid1 => Location {
                stripe: chunk_number,
                chunk: 0,
                member: 0,
                member_sector: sector,
                offset,
            },
            Level::Raid5 | Level::Raid6 => {
                let dd = nonzero(self.data_chunks() as u64);
                let stripe = chunk_number / dd;
                let k = (chunk_number % dd) as usize;
                let layout = self.layout(stripe)?;
                Location {
                    stripe,
                    chunk: k,
                    member: layout
                        .data_member(k)
                        .ok_or(GeometryError::StripeOutOfRange)?,
                    member_sector: stripe * cs.get() + offset,
                    offset,
                }
            }
            Level::Raid10 { copies } => {
                let pos = chunk_number * copies as u64;
                Location {
                    stripe: chunk_number,
                    chunk: 0,
                    member: (pos % n) as usize,
                    member_sector: (pos / n) * cs.get() + offset,
                    offset,
                }
            }
        };
        Ok(loc)
    }

    /// Every physical copy of logical `sector`.
    pub fn copies(&self, sector: u64) -> Result<Copies, GeometryError> {
        let mut out = Copies::new();
        for place in self.copy_iter(sector)? {
            out.push(place);
        }
        Ok(out)
    }

    /// The same places as [`Geometry::copies`], produced one at a time: what a data path
    /// uses, where a 1 KiB list on the stack would be too much.
    pub fn copy_iter(&self, sector: u64) -> Result<CopyIter, GeometryError> {
        let loc = self.map(sector)?;
        Ok(match self.level {
            Level::Raid1 => CopyIter::Mirror {
                member: 0,
                members: self.members,
                sector,
            },
            Level::Raid10 { copies } => {
                let first = (sector / nonzero(self.chunk_sectors)) * copies as u64;
                CopyIter::Near {
                    pos: first,
                    end: first + copies as u64,
                    members: nonzero(self.members as u64),
                    chunk_sectors: self.chunk_sectors,
                    offset: loc.offset,
                }
            }
            _ => CopyIter::Single(Some(Place {
                member: loc.member,
                sector: loc.member_sector,
            })),
        })
    }

    /// What physical sector `sector` of `member` holds (inverse of [`Geometry::copies`]).
    pub fn unmap(&self, member: usize, sector: u64) -> Result<Content, GeometryError> {
        if member >= self.members {
            return Err(GeometryError::MemberOutOfRange);
        }
        let cs = self.chunk_sectors;
        let n = self.members as u64;
        let row = sector / nonzero(cs);
        let offset = sector % nonzero(cs);
        if row >= self.rows {
            return Ok(Content::Unused);
        }
        let content = match self.level {
            Level::Raid0 => Content::Data((row * n + member as u64) * cs + offset),
            Level::Raid1 => Content::Data(sector),
            Level::Raid5 | Level::Raid6 => {
                let layout = self.layout(row)?;
                if layout.p == Some(member) {
                    Content::P(row)
                } else if layout.q == Some(member) {
                    Content::Q(row)
                } else {
                    let k = layout
                        .chunk_of(member)
                        .ok_or(GeometryError::MemberOutOfRange)? as u64;
                    let dd = self.data_chunks() as u64;
                    Content::Data((row * dd + k) * cs + offset)
                }
            }
            Level::Raid10 { copies } => {
                let chunk = (row * n + member as u64) / nonzero(copies as u64);
                if chunk >= self.stripes() {
                    Content::Unused
                } else {
                    Content::Data(chunk * cs + offset)
                }
            }
        };
        Ok(content)
    }

    /// Data and parity members of `stripe`.
    ///
    /// RAID5/6 follow md's left-symmetric layout: P sits on member `n - 1 - stripe % n`, Q on
    /// the next member, and data chunk `k` on member `(P + 1 + k) % n` (RAID5) or
    /// `(P + 2 + k) % n` (RAID6).
    pub fn layout(&self, stripe: u64) -> Result<StripeLayout, GeometryError> {
        if stripe >= self.stripes() {
            return Err(GeometryError::StripeOutOfRange);
        }
        let n = self.members;
        let cs = self.chunk_sectors;
        let mut out = StripeLayout {
            data: [0; MAX_MEMBERS],
            data_count: 0,
            p: None,
            q: None,
            member_sector: stripe * cs,
        };
        match self.level {
            Level::Raid0 => {
                for (k, slot) in out.data.iter_mut().take(n).enumerate() {
                    *slot = k as u8;
                }
                out.data_count = n;
            }
            Level::Raid1 => {
                // Every member mirrors the single data chunk; the first is listed.
                out.data_count = 1;
            }
            Level::Raid5 | Level::Raid6 => {
                let pd = n - 1 - (stripe % nonzero(n as u64)) as usize;
                let skip = if self.level == Level::Raid6 { 2 } else { 1 };
                out.p = Some(pd);
                if skip == 2 {
                    out.q = Some((pd + 1) % nonzero_usize(n));
                }
                let dd = self.data_chunks();
                for (k, slot) in out.data.iter_mut().take(dd).enumerate() {
                    *slot = ((pd + skip + k) % nonzero_usize(n)) as u8;
                }
                out.data_count = dd;
                out.member_sector = stripe * cs;
            }
            Level::Raid10 { copies } => {
                let pos = stripe * copies as u64;
                out.data[0] = (pos % nonzero(n as u64)) as u8;
                out.data_count = 1;
                out.member_sector = (pos / nonzero(n as u64)) * cs;
            }
        }
        Ok(out)
    }

    /// How to read logical `sector` when the members in `failed` are unavailable.
    pub fn read_plan(&self, sector: u64, failed: MemberSet) -> Result<ReadPlan, GeometryError> {
        let loc = self.map(sector)?;
        if let Level::Raid1 | Level::Raid10 { .. } = self.level {
            return self
                .copy_iter(sector)?
                .find(|p| !failed.contains(p.member))
                .map(ReadPlan::Direct)
                .ok_or(GeometryError::TooManyFailures);
        }
        if !failed.contains(loc.member) {
            return Ok(ReadPlan::Direct(Place {
                member: loc.member,
                sector: loc.member_sector,
            }));
        }
        let layout = self.layout(loc.stripe)?;
        let mut sources = MemberSet::EMPTY;
        for m in layout.data_members() {
            sources = sources.with(*m as usize);
        }
        sources = sources.without(loc.member);
        let lost_in_stripe = (0..self.members)
            .filter(|m| failed.contains(*m))
            .filter(|m| {
                layout.chunk_of(*m).is_some() || layout.p == Some(*m) || layout.q == Some(*m)
            })
            .count();
        if lost_in_stripe > self.parity_chunks() {
            return Err(GeometryError::TooManyFailures);
        }
        // Prefer P (plain XOR, like md); fall back to Q when P is gone too.
        let p = layout.p.ok_or(GeometryError::TooManyFailures)?;
        if !failed.contains(p) {
            sources = sources.with(p);
        } else {
            sources = sources.with(layout.q.ok_or(GeometryError::TooManyFailures)?);
        }
        // With two data chunks gone both P and Q are needed.
        let other_data_lost = layout
            .data_members()
            .iter()
            .any(|m| *m as usize != loc.member && failed.contains(*m as usize));
        if other_data_lost {
            sources = sources.with(layout.q.ok_or(GeometryError::TooManyFailures)?);
        }
        let sources = MemberSet(sources.0 & !failed.0);
        Ok(ReadPlan::Reconstruct {
            stripe: loc.stripe,
            chunk: loc.chunk,
            sources,
            member_sector: loc.member_sector,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_members() {
        assert_eq!(MemberSet::first(0), MemberSet::EMPTY);
        assert_eq!(MemberSet::first(3), MemberSet(0b111));
        assert_eq!(MemberSet::first(63), MemberSet(u64::MAX >> 1));
        assert_eq!(
            MemberSet::first(64),
            MemberSet(u64::MAX),
            "member 63 included"
        );
        assert_eq!(MemberSet::first(usize::MAX), MemberSet(u64::MAX));
    }

    #[test]
    fn raid5_left_symmetric_matches_md_table() {
        // md's left-symmetric, 4 disks: row0 D0 D1 D2 P, row1 D4 D5 P D3, row2 D8 P D6 D7,
        // row3 P D9 D10 D11. Listed: data members in chunk order, then P.
        let g = Geometry::new(Level::Raid5, 4, 8, 8 * 4).unwrap();
        let expect = [[0, 1, 2, 3], [3, 0, 1, 2], [2, 3, 0, 1], [1, 2, 3, 0]];
        for (row, members) in expect.iter().enumerate() {
            let l = g.layout(row as u64).unwrap();
            let data: std::vec::Vec<usize> = l.data_members().iter().map(|m| *m as usize).collect();
            assert_eq!(&data[..], &members[..3], "row {row}");
            assert_eq!(l.p, Some(members[3]));
        }
        let loc = g.map(3 * 8 + 5).unwrap();
        assert_eq!(
            (loc.stripe, loc.chunk, loc.member, loc.member_sector),
            (1, 0, 3, 13)
        );
    }

    #[test]
    fn raid6_left_symmetric_matches_md_table() {
        // md raid6 left-symmetric, 5 disks: row0 Q D0 D1 D2 P, row1 D3 D4 D5 P Q,
        // row4 P Q D12 D13 D14.
        let g = Geometry::new(Level::Raid6, 5, 1, 5).unwrap();
        let l = g.layout(0).unwrap();
        assert_eq!((l.p, l.q), (Some(4), Some(0)));
        assert_eq!(l.data_members(), &[1, 2, 3]);
        let l = g.layout(1).unwrap();
        assert_eq!((l.p, l.q), (Some(3), Some(4)));
        assert_eq!(l.data_members(), &[0, 1, 2]);
        let l = g.layout(4).unwrap();
        assert_eq!((l.p, l.q), (Some(0), Some(1)));
        assert_eq!(l.data_members(), &[2, 3, 4]);
    }

    #[test]
    fn raid0_matches_dm_stripe() {
        let g = Geometry::new(Level::Raid0, 3, 4, 40).unwrap();
        let loc = g.map(4 * 7 + 2).unwrap();
        assert_eq!((loc.member, loc.member_sector), (1, 2 * 4 + 2));
    }

    #[test]
    fn raid10_near_matches_md() {
        // 3 disks, 2 copies: row0 C0 C0 C1, row1 C1 C2 C2.
        let g = Geometry::new(Level::Raid10 { copies: 2 }, 3, 2, 4).unwrap();
        assert_eq!(g.stripes(), 3);
        let c = g.copies(2).unwrap();
        assert_eq!(
            c.as_slice(),
            &[
                Place {
                    member: 2,
                    sector: 0
                },
                Place {
                    member: 0,
                    sector: 2
                }
            ]
        );
    }

    #[test]
    fn rejects_bad_geometry_and_out_of_range() {
        assert_eq!(
            Geometry::new(Level::Raid6, 3, 8, 80),
            Err(GeometryError::TooFewMembers)
        );
        assert_eq!(
            Geometry::new(Level::Raid0, 65, 8, 80),
            Err(GeometryError::TooManyMembers)
        );
        assert_eq!(
            Geometry::new(Level::Raid5, 3, 0, 80),
            Err(GeometryError::ZeroChunk)
        );
        assert_eq!(
            Geometry::new(Level::Raid10 { copies: 4 }, 3, 8, 80),
            Err(GeometryError::BadCopies)
        );
        assert_eq!(
            Geometry::new(Level::Raid0, 64, 1 << 40, u64::MAX),
            Err(GeometryError::Overflow)
        );
        let g = Geometry::new(Level::Raid5, 3, 8, 80).unwrap();
        assert_eq!(g.map(u64::MAX), Err(GeometryError::SectorOutOfRange));
        assert_eq!(g.unmap(3, 0).unwrap_err(), GeometryError::MemberOutOfRange);
        assert!(g.layout(u64::MAX).is_err());
    }

    #[test]
    fn raid6_read_plan_two_failures() {
        let g = Geometry::new(Level::Raid6, 5, 1, 5).unwrap();
        // Row 0: Q 0, data 1,2,3, P 4. Lose data 1 and 2: read 3, P, Q.
        let plan = g.read_plan(0, MemberSet(0b00110)).unwrap();
        match plan {
            ReadPlan::Reconstruct { sources, .. } => assert_eq!(sources, MemberSet(0b11001)),
            _ => panic!("expected reconstruct"),
        }
        // Lose data 1 and P: read 2, 3, Q.
        let plan = g.read_plan(0, MemberSet(0b10010)).unwrap();
        match plan {
            ReadPlan::Reconstruct { sources, .. } => assert_eq!(sources, MemberSet(0b01101)),
            _ => panic!("expected reconstruct"),
        }
        // A failed parity member does not stop a direct read.
        assert_eq!(
            g.read_plan(0, MemberSet(0b10001)),
            Ok(ReadPlan::Direct(Place {
                member: 1,
                sector: 0
            }))
        );
        assert_eq!(
            g.read_plan(0, MemberSet(0b01110)),
            Err(GeometryError::TooManyFailures)
        );
    }
}
