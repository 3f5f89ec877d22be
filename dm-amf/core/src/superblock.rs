// SPDX-License-Identifier: GPL-2.0
//! On-disk format of a member device: the reserved area, the superblock and its A/B slots.
//!
//! Every member starts with a reserved area (`Documentation/on-disk-format.rst` is the
//! contract this module implements):
//!
//! ```text
//! sector    size      what
//! 0         4 KiB     not used by amf (zeroed at format: room for a label / partition table)
//! 8         4 KiB     superblock slot A
//! 16        4 KiB     superblock slot B
//! 24        52 KiB    reserved (zero)
//! 128       8 x 4 KiB write-intent bitmap headers, one per node slot
//! 192       928 KiB   reserved (zero; partial parity log / journal)
//! 2048      8 x 256 KiB write-intent bitmaps, one per node slot (2^21 bits each)
//! 6144      ...       reserved up to the data offset (default 8192 = 4 MiB)
//! ```
//!
//! A superblock is the *group state* at one event counter value plus this member's role.
//! Updates go to the slot that does not hold the current winner ([`Which::other`]), so a
//! torn write destroys at most the slot being written and the previous state survives in
//! the other one. [`choose`] picks the newer valid slot; [`validate_member_set`] checks the
//! superblocks of all members as the constructor must before it trusts any of them.
//!
//! Checksums are computed by the caller ([`Crc32c`]); nothing here allocates or panics.

use core::ffi::CStr;

use super::geometry::{nonzero, Geometry, GeometryError, Level, MemberSet, MAX_MEMBERS};
use super::table::{MAX_CHUNK_SECTORS, MIN_CHUNK_SECTORS};
use super::wire::Crc32c;

/// Superblock magic, the bytes `AMFSUPER`.
pub const MAGIC: [u8; 8] = *b"AMFSUPER";
/// Format version this code reads and writes.
pub const VERSION: u32 = 1;
/// Size of one superblock slot (and of an encoded superblock).
pub const SLOT_SIZE: usize = 4096;
/// First sector (512 bytes) of slot A.
pub const SLOT_A_SECTOR: u64 = 8;
/// First sector of slot B.
pub const SLOT_B_SECTOR: u64 = 16;
/// Number of node slots: write-intent bitmaps (and their headers) in the reserved area.
pub const BITMAP_SLOTS: usize = 8;
/// First sector of the bitmap headers (node slot `i` at `+ 8 * i`, 4 KiB each).
pub const BITMAP_HEADER_SECTOR: u64 = 128;
/// Sectors of one bitmap header.
pub const BITMAP_HEADER_SECTORS: u64 = 8;
/// First sector of the bitmaps (node slot `i` at `+ BITMAP_SLOT_SECTORS * i`).
pub const BITMAP_SECTOR: u64 = 2048;
/// Sectors of one node's bitmap (256 KiB).
pub const BITMAP_SLOT_SECTORS: u64 = 512;
/// Bits in one node's bitmap: at most this many regions per member.
pub const BITMAP_BITS: u64 = BITMAP_SLOT_SECTORS * 512 * 8;
/// Lowest data offset: the end of the bitmaps (3 MiB).
pub const DATA_OFFSET_MIN: u64 = BITMAP_SECTOR + BITMAP_SLOTS as u64 * BITMAP_SLOT_SECTORS;
/// Data offset `amfctl format` uses unless told otherwise (4 MiB).
pub const DATA_OFFSET_DEFAULT: u64 = 8192;
/// The data offset and the data size are multiples of this many sectors (4 KiB).
pub const DATA_ALIGN_SECTORS: u64 = 8;
/// Smallest bitmap region `amfctl format` picks by default (64 MiB, as mdadm).
pub const DEFAULT_REGION_SECTORS: u64 = 1 << 17;

// Field offsets in a slot (see the documentation for the full table).
const OFF_MAGIC: usize = 0;
const OFF_VERSION: usize = 8;
const OFF_GROUP_UUID: usize = 16;
const OFF_EVENTS: usize = 32;
const OFF_CTIME: usize = 40;
const OFF_UTIME: usize = 48;
const OFF_LEVEL: usize = 56;
const OFF_COPIES: usize = 57;
const OFF_LAYOUT: usize = 58;
const OFF_CHUNK: usize = 60;
const OFF_MEMBERS: usize = 64;
const OFF_ROLE: usize = 66;
const OFF_DATA_OFFSET: usize = 72;
const OFF_DATA_SECTORS: usize = 80;
const OFF_REGION: usize = 88;
/// Offset of the member table in a slot.
pub const MEMBER_TABLE_OFFSET: usize = 128;
/// Size of one member table entry.
pub const MEMBER_ENTRY_SIZE: usize = 32;
const ENTRY_STATE: usize = 0;
const ENTRY_CHECKPOINT: usize = 8;
const ENTRY_UUID: usize = 16;
/// Offset of the CRC-32C, which covers bytes `0..CRC_OFFSET`.
pub const CRC_OFFSET: usize = SLOT_SIZE - 4;

// The areas do not overlap (checked at compile time).
const _: () = assert!(SLOT_B_SECTOR * 512 + SLOT_SIZE as u64 <= BITMAP_HEADER_SECTOR * 512);
const _: () =
    assert!(BITMAP_HEADER_SECTOR + BITMAP_SLOTS as u64 * BITMAP_HEADER_SECTORS <= BITMAP_SECTOR);
const _: () = assert!(MEMBER_TABLE_OFFSET + MAX_MEMBERS * MEMBER_ENTRY_SIZE <= CRC_OFFSET);
const _: () = assert!(DATA_OFFSET_MIN <= DATA_OFFSET_DEFAULT);

const STATE_UNUSED: u8 = 0;
const STATE_IN_SYNC: u8 = 1;
const STATE_FAILED: u8 = 2;
const STATE_REBUILDING: u8 = 3;

/// The only layout of version 1: the level's default (dm-stripe, md left-symmetric, md near).
pub const LAYOUT_DEFAULT: u8 = 0;

/// A 128-bit identifier (group or member).
pub type Uuid = [u8; 16];

/// Parses a UUID as `amfctl format --uuid` and the table's `group <uuid>` take it: 32 hex
/// digits (either case), either in the canonical 8-4-4-4-12 groups
/// (`01234567-89ab-cdef-0123-456789abcdef`) or without any dash. Nothing else: no braces, no
/// spaces, no other dash positions. Only the syntax is checked: the all-zero UUID parses,
/// and the callers refuse it where a UUID must not be zero.
pub fn parse_uuid(s: &str) -> Option<Uuid> {
    let text = s.as_bytes();
    let dashed = match text.len() {
        36 => true,
        32 => false,
        _ => return None,
    };
    let mut out = [0u8; 16];
    let mut digits = 0usize;
    for (i, &c) in text.iter().enumerate() {
        if dashed && matches!(i, 8 | 13 | 18 | 23) {
            if c != b'-' {
                return None;
            }
            continue;
        }
        let v = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => return None,
        };
        let byte = out.get_mut(digits / 2)?;
        *byte = (*byte << 4) | v;
        digits += 1;
    }
    (digits == 32).then_some(out)
}

/// A UUID in the canonical form, lower case (`01234567-89ab-cdef-0123-456789abcdef`):
/// `format!("{}", UuidText(&uuid))`. What [`parse_uuid`] reads back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UuidText<'a>(pub &'a Uuid);

impl core::fmt::Display for UuidText<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// State of one member as the group records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberState {
    /// Holds current data for its whole data area.
    InSync,
    /// Not read nor written; must be rebuilt (or replaced) to come back.
    Failed,
    /// Being rebuilt: the first `checkpoint` sectors of its data area are current.
    Rebuilding {
        /// Data-area sectors (from the data offset) already rebuilt, at most the data size.
        checkpoint: u64,
    },
}

/// One entry of the member table: which device holds a role, and its state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberEntry {
    /// State of the role.
    pub state: MemberState,
    /// Member UUID of the device that holds the role (non-zero, distinct per role).
    pub uuid: Uuid,
}

impl MemberEntry {
    /// Placeholder for table entries beyond the member count (never encoded).
    const UNUSED: MemberEntry = MemberEntry {
        state: MemberState::Failed,
        uuid: [0; 16],
    };
}

/// Which of the two superblock slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    /// Slot A, at [`SLOT_A_SECTOR`].
    A,
    /// Slot B, at [`SLOT_B_SECTOR`].
    B,
}

impl Which {
    /// The other slot: where the next update goes.
    pub fn other(self) -> Which {
        match self {
            Which::A => Which::B,
            Which::B => Which::A,
        }
    }

    /// First sector of the slot on the member.
    pub fn sector(self) -> u64 {
        match self {
            Which::A => SLOT_A_SECTOR,
            Which::B => SLOT_B_SECTOR,
        }
    }

    /// Byte offset of the slot on the member.
    pub fn byte_offset(self) -> u64 {
        self.sector() * 512
    }
}

/// Why a superblock slot was refused (by decode) or could not be written (by encode).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SuperblockError {
    /// Fewer than [`SLOT_SIZE`] bytes.
    TooShort {
        /// Bytes given.
        len: usize,
    },
    /// Not an amf superblock (or a destroyed one).
    BadMagic,
    /// A format version this code does not know.
    UnknownVersion(u32),
    /// The CRC-32C does not match (torn or corrupted slot).
    BadChecksum {
        /// CRC stored in the slot.
        stored: u32,
        /// CRC computed over the slot.
        computed: u32,
    },
    /// The group UUID is all zero.
    ZeroGroupUuid,
    /// Level code not 0, 1, 5, 6 or 10.
    UnknownLevel(u8),
    /// RAID10 copies given for another level.
    BadCopies(u8),
    /// Layout code other than [`LAYOUT_DEFAULT`].
    UnknownLayout(u8),
    /// Chunk size not a power of two in the table's range.
    BadChunk(u32),
    /// Member count zero or above [`MAX_MEMBERS`].
    BadMemberCount(u16),
    /// This member's role is not below the member count.
    BadRole {
        /// Role stored.
        role: u16,
        /// Member count stored.
        members: u16,
    },
    /// Level, member count and chunk size do not make a group (too few members, copies).
    Geometry(GeometryError),
    /// Data offset below [`DATA_OFFSET_MIN`], unaligned, or the data area overflows.
    BadDataOffset(u64),
    /// Data size zero or not a multiple of the chunk size.
    BadDataSectors(u64),
    /// Bitmap region not a power of two at least the chunk size, or too small for the bitmap.
    BadRegion(u64),
    /// A member table entry has an unknown state code (or `unused` below the member count).
    BadMemberState {
        /// Role of the entry.
        role: u8,
        /// State code stored.
        state: u8,
    },
    /// An entry beyond the member count is not empty.
    UnusedEntryInUse {
        /// Role of the entry.
        role: u8,
    },
    /// A checkpoint beyond the data size, or non-zero for a member not rebuilding.
    BadCheckpoint {
        /// Role of the entry.
        role: u8,
    },
    /// A member UUID is all zero.
    ZeroMemberUuid {
        /// Role of the entry.
        role: u8,
    },
    /// Two roles name the same member UUID.
    DuplicateMemberUuid {
        /// Lower role.
        first: u8,
        /// Higher role.
        second: u8,
    },
}

impl SuperblockError {
    /// A one-line message (for `ti->error` and the tools).
    pub fn message(self) -> &'static CStr {
        match self {
            Self::TooShort { .. } => c"Superblock truncated",
            Self::BadMagic => c"No amf superblock",
            Self::UnknownVersion(_) => c"Unknown superblock format version",
            Self::BadChecksum { .. } => c"Superblock checksum mismatch",
            Self::ZeroGroupUuid => c"Superblock has no group UUID",
            Self::UnknownLevel(_) => c"Superblock has an unknown RAID level",
            Self::BadCopies(_) => c"Superblock has invalid RAID10 copies",
            Self::UnknownLayout(_) => c"Superblock has an unknown layout",
            Self::BadChunk(_) => c"Superblock has an invalid chunk size",
            Self::BadMemberCount(_) => c"Superblock has an invalid member count",
            Self::BadRole { .. } => c"Superblock role beyond the member count",
            Self::Geometry(_) => c"Superblock geometry is invalid",
            Self::BadDataOffset(_) => c"Superblock has an invalid data offset",
            Self::BadDataSectors(_) => c"Superblock has an invalid data size",
            Self::BadRegion(_) => c"Superblock has an invalid bitmap region size",
            Self::BadMemberState { .. } => c"Superblock has an invalid member state",
            Self::UnusedEntryInUse { .. } => c"Superblock member table beyond the member count",
            Self::BadCheckpoint { .. } => c"Superblock has an invalid rebuild checkpoint",
            Self::ZeroMemberUuid { .. } => c"Superblock has a member without UUID",
            Self::DuplicateMemberUuid { .. } => c"Superblock names a member UUID twice",
        }
    }
}

/// A decoded (or to-be-written) superblock: group state at one event count, plus this
/// member's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Superblock {
    /// Identifies the group; every member carries the same.
    pub group_uuid: Uuid,
    /// Event counter: bumped by every update of the group state.
    pub events: u64,
    /// Creation time (seconds since the epoch, from the formatting tool).
    pub ctime: u64,
    /// Time of the last update (seconds since the epoch, informational).
    pub utime: u64,
    /// RAID level (with RAID10's copies).
    pub level: Level,
    /// Layout code (only [`LAYOUT_DEFAULT`] in version 1).
    pub layout: u8,
    /// Chunk size in sectors.
    pub chunk_sectors: u32,
    /// This member's role (index in member order).
    pub role: u16,
    /// First sector of this member's data area.
    pub data_offset: u64,
    /// Sectors of the data area of every member.
    pub data_sectors: u64,
    /// Member-data sectors covered by one write-intent bitmap bit.
    pub region_sectors: u64,
    members: u16,
    table: [MemberEntry; MAX_MEMBERS],
}

/// What [`Superblock::new`] needs to describe a fresh group.
#[derive(Clone, Copy, Debug)]
pub struct FormatParams<'a> {
    /// Group UUID (non-zero).
    pub group_uuid: Uuid,
    /// RAID level.
    pub level: Level,
    /// Chunk size in sectors.
    pub chunk_sectors: u32,
    /// One UUID per member, in member order.
    pub member_uuids: &'a [Uuid],
    /// Data offset of every member.
    pub data_offset: u64,
    /// Data sectors of every member (a multiple of the chunk size).
    pub data_sectors: u64,
    /// Bitmap region in sectors; see [`default_region_sectors`].
    pub region_sectors: u64,
    /// Creation time (seconds since the epoch).
    pub ctime: u64,
}

impl Superblock {
    /// An all-zero placeholder (not a valid superblock), to decode into.
    pub const BLANK: Superblock = Superblock {
        group_uuid: [0; 16],
        events: 0,
        ctime: 0,
        utime: 0,
        level: Level::Raid0,
        layout: 0,
        chunk_sectors: 0,
        role: 0,
        data_offset: 0,
        data_sectors: 0,
        region_sectors: 0,
        members: 0,
        table: [MemberEntry::UNUSED; MAX_MEMBERS],
    };

    /// Equal in everything but the informational update time.
    /// Field by field: a copy of a superblock would be 2 KiB of a kernel stack frame.
    fn eq_except_utime(&self, other: &Superblock) -> bool {
        // Destructured, so that a new field cannot be forgotten here.
        let Superblock {
            group_uuid,
            events,
            ctime,
            utime: _,
            level,
            layout,
            chunk_sectors,
            role,
            data_offset,
            data_sectors,
            region_sectors,
            members,
            table,
        } = self;
        *group_uuid == other.group_uuid
            && *events == other.events
            && *ctime == other.ctime
            && *level == other.level
            && *layout == other.layout
            && *chunk_sectors == other.chunk_sectors
            && *role == other.role
            && *data_offset == other.data_offset
            && *data_sectors == other.data_sectors
            && *region_sectors == other.region_sectors
            && *members == other.members
            && *table == other.table
    }

    /// A fresh group: every member in sync, event counter 1, role 0 (use
    /// [`Superblock::for_role`] per member). Refused exactly as decode would refuse it.
    pub fn new(p: &FormatParams<'_>) -> Result<Superblock, SuperblockError> {
        let count = p.member_uuids.len();
        if count == 0 || count > MAX_MEMBERS {
            return Err(SuperblockError::BadMemberCount(
                u16::try_from(count).unwrap_or(u16::MAX),
            ));
        }
        let mut table = [MemberEntry::UNUSED; MAX_MEMBERS];
        for (slot, uuid) in table.iter_mut().zip(p.member_uuids) {
            *slot = MemberEntry {
                state: MemberState::InSync,
                uuid: *uuid,
            };
        }
        let sb = Superblock {
            group_uuid: p.group_uuid,
            events: 1,
            ctime: p.ctime,
            utime: p.ctime,
            level: p.level,
            layout: LAYOUT_DEFAULT,
            chunk_sectors: p.chunk_sectors,
            role: 0,
            data_offset: p.data_offset,
            data_sectors: p.data_sectors,
            region_sectors: p.region_sectors,
            members: count as u16,
            table,
        };
        sb.check()?;
        Ok(sb)
    }

    /// Number of members.
    pub fn member_count(&self) -> usize {
        self.members as usize
    }

    /// The member table, one entry per role.
    pub fn members(&self) -> &[MemberEntry] {
        self.table.get(..self.member_count()).unwrap_or(&[])
    }

    /// The entry of `role`, if the role exists.
    pub fn member(&self, role: usize) -> Option<MemberEntry> {
        self.members().get(role).copied()
    }

    /// Replace the entry of `role`; false (and nothing changed) if the role does not exist.
    pub fn set_member(&mut self, role: usize, entry: MemberEntry) -> bool {
        if role >= self.member_count() {
            return false;
        }
        match self.table.get_mut(role) {
            Some(e) => {
                *e = entry;
                true
            }
            None => false,
        }
    }

    /// This member's UUID (its entry in the member table).
    pub fn member_uuid(&self) -> Uuid {
        self.member(self.role as usize).map_or([0; 16], |e| e.uuid)
    }

    /// The same group state as seen by the member holding `role`.
    pub fn for_role(&self, role: usize) -> Option<Superblock> {
        if role >= self.member_count() {
            return None;
        }
        let mut sb = *self;
        sb.role = role as u16;
        Some(sb)
    }

    /// The state of the next update round: the event counter plus one and the update time
    /// set; `None` once the counter is exhausted.
    pub fn next_round(&self, utime: u64) -> Option<Superblock> {
        let mut sb = *self;
        sb.events = self.events.checked_add(1)?;
        sb.utime = utime;
        Some(sb)
    }

    /// The group's geometry.
    pub fn geometry(&self) -> Result<Geometry, GeometryError> {
        Geometry::new(
            self.level,
            self.member_count(),
            self.chunk_sectors as u64,
            self.data_sectors,
        )
    }

    /// True if `other` describes the same group state (everything but the role and the
    /// informational update time).
    pub fn same_group_state(&self, other: &Superblock) -> bool {
        self.same_identity(other)
            && self.events == other.events
            && self.data_offset == other.data_offset
            && self.members() == other.members()
    }

    /// True if `other` belongs to the same group incarnation with the same geometry:
    /// UUID, creation time, level, layout, chunk, member count, data size, bitmap region.
    pub fn same_identity(&self, other: &Superblock) -> bool {
        self.group_uuid == other.group_uuid
            && self.ctime == other.ctime
            && self.level == other.level
            && self.layout == other.layout
            && self.chunk_sectors == other.chunk_sectors
            && self.members == other.members
            && self.data_sectors == other.data_sectors
            && self.region_sectors == other.region_sectors
    }

    /// Every semantic check decode applies after the checksum.
    fn check(&self) -> Result<(), SuperblockError> {
        if self.group_uuid == [0; 16] {
            return Err(SuperblockError::ZeroGroupUuid);
        }
        if self.layout != LAYOUT_DEFAULT {
            return Err(SuperblockError::UnknownLayout(self.layout));
        }
        let chunk = self.chunk_sectors;
        if !chunk.is_power_of_two() || !(MIN_CHUNK_SECTORS..=MAX_CHUNK_SECTORS).contains(&chunk) {
            return Err(SuperblockError::BadChunk(chunk));
        }
        if self.members == 0 || self.members as usize > MAX_MEMBERS {
            return Err(SuperblockError::BadMemberCount(self.members));
        }
        if self.role >= self.members {
            return Err(SuperblockError::BadRole {
                role: self.role,
                members: self.members,
            });
        }
        self.geometry().map_err(SuperblockError::Geometry)?;
        let off = self.data_offset;
        if off < DATA_OFFSET_MIN
            || off % DATA_ALIGN_SECTORS != 0
            || off.checked_add(self.data_sectors).is_none()
        {
            return Err(SuperblockError::BadDataOffset(off));
        }
        if self.data_sectors == 0 || self.data_sectors % chunk as u64 != 0 {
            return Err(SuperblockError::BadDataSectors(self.data_sectors));
        }
        let region = self.region_sectors;
        if !region.is_power_of_two()
            || region < chunk as u64
            || self.data_sectors.div_ceil(region) > BITMAP_BITS
        {
            return Err(SuperblockError::BadRegion(region));
        }
        for (role, e) in self.members().iter().enumerate() {
            let role = role as u8;
            if let MemberState::Rebuilding { checkpoint } = e.state {
                if checkpoint > self.data_sectors {
                    return Err(SuperblockError::BadCheckpoint { role });
                }
            }
            if e.uuid == [0; 16] {
                return Err(SuperblockError::ZeroMemberUuid { role });
            }
            for (other, o) in self.members().iter().enumerate().skip(role as usize + 1) {
                if o.uuid == e.uuid {
                    return Err(SuperblockError::DuplicateMemberUuid {
                        first: role,
                        second: other as u8,
                    });
                }
            }
        }
        Ok(())
    }
}

/// The default bitmap region for a member of `data_sectors`: the smallest power of two that
/// is at least [`DEFAULT_REGION_SECTORS`] and the chunk size and keeps the bitmap within
/// [`BITMAP_BITS`]. `None` if no such size fits a `u64`.
pub fn default_region_sectors(data_sectors: u64, chunk_sectors: u32) -> Option<u64> {
    let need = data_sectors.div_ceil(BITMAP_BITS);
    let floor = DEFAULT_REGION_SECTORS.max(chunk_sectors as u64).max(need);
    floor.checked_next_power_of_two()
}

/// The first stripe of `g` a rebuild whose checkpoint (member sectors rebuilt, as the
/// member table records it) is `checkpoint` still has to do; `g.stripes()` when it is done.
/// The checkpoint is only bounded by the data area, which a table may use less of.
pub fn resume_stripe(checkpoint: u64, g: &Geometry) -> u64 {
    (checkpoint / nonzero(g.chunk_sectors())).min(g.stripes())
}

fn level_code(level: Level) -> (u8, u8) {
    match level {
        Level::Raid0 => (0, 0),
        Level::Raid1 => (1, 0),
        Level::Raid5 => (5, 0),
        Level::Raid6 => (6, 0),
        Level::Raid10 { copies } => (10, copies),
    }
}

fn level_from(code: u8, copies: u8) -> Result<Level, SuperblockError> {
    let level = match code {
        0 => Level::Raid0,
        1 => Level::Raid1,
        5 => Level::Raid5,
        6 => Level::Raid6,
        10 => return Ok(Level::Raid10 { copies }),
        other => return Err(SuperblockError::UnknownLevel(other)),
    };
    if copies != 0 {
        return Err(SuperblockError::BadCopies(copies));
    }
    Ok(level)
}

fn put(out: &mut [u8; SLOT_SIZE], at: usize, bytes: &[u8]) {
    if let Some(dst) = at
        .checked_add(bytes.len())
        .and_then(|end| out.get_mut(at..end))
    {
        dst.copy_from_slice(bytes);
    }
}

fn get<const N: usize>(b: &[u8; SLOT_SIZE], at: usize) -> [u8; N] {
    let mut a = [0u8; N];
    if let Some(src) = at.checked_add(N).and_then(|end| b.get(at..end)) {
        a.copy_from_slice(src);
    }
    a
}

fn get_u8(b: &[u8; SLOT_SIZE], at: usize) -> u8 {
    b.get(at).copied().unwrap_or(0)
}

fn get_u16(b: &[u8; SLOT_SIZE], at: usize) -> u16 {
    u16::from_le_bytes(get(b, at))
}

fn get_u32(b: &[u8; SLOT_SIZE], at: usize) -> u32 {
    u32::from_le_bytes(get(b, at))
}

fn get_u64(b: &[u8; SLOT_SIZE], at: usize) -> u64 {
    u64::from_le_bytes(get(b, at))
}

/// Encode `sb` into a whole slot: every byte of `out` is written (reserved bytes as zero),
/// the CRC last. Refuses (leaving `out` untouched) a superblock decode would refuse.
pub fn encode<C: Crc32c>(
    sb: &Superblock,
    out: &mut [u8; SLOT_SIZE],
) -> Result<(), SuperblockError> {
    sb.check()?;
    out.fill(0);
    let (level, copies) = level_code(sb.level);
    put(out, OFF_MAGIC, &MAGIC);
    put(out, OFF_VERSION, &VERSION.to_le_bytes());
    put(out, OFF_GROUP_UUID, &sb.group_uuid);
    put(out, OFF_EVENTS, &sb.events.to_le_bytes());
    put(out, OFF_CTIME, &sb.ctime.to_le_bytes());
    put(out, OFF_UTIME, &sb.utime.to_le_bytes());
    put(out, OFF_LEVEL, &[level, copies, sb.layout]);
    put(out, OFF_CHUNK, &sb.chunk_sectors.to_le_bytes());
    put(out, OFF_MEMBERS, &sb.members.to_le_bytes());
    put(out, OFF_ROLE, &sb.role.to_le_bytes());
    put(out, OFF_DATA_OFFSET, &sb.data_offset.to_le_bytes());
    put(out, OFF_DATA_SECTORS, &sb.data_sectors.to_le_bytes());
    put(out, OFF_REGION, &sb.region_sectors.to_le_bytes());
    for (role, e) in sb.members().iter().enumerate() {
        let at = MEMBER_TABLE_OFFSET + role * MEMBER_ENTRY_SIZE;
        let (state, checkpoint) = match e.state {
            MemberState::InSync => (STATE_IN_SYNC, 0),
            MemberState::Failed => (STATE_FAILED, 0),
            MemberState::Rebuilding { checkpoint } => (STATE_REBUILDING, checkpoint),
        };
        put(out, at + ENTRY_STATE, &[state]);
        put(out, at + ENTRY_CHECKPOINT, &checkpoint.to_le_bytes());
        put(out, at + ENTRY_UUID, &e.uuid);
    }
    let crc = C::crc32c(out.get(..CRC_OFFSET).unwrap_or(&[]));
    put(out, CRC_OFFSET, &crc.to_le_bytes());
    Ok(())
}

/// Decode and check the slot at the start of `buf` (bytes after [`SLOT_SIZE`] are ignored).
///
/// Checks, in order: length, magic, version, CRC, then every field. Reserved bytes are
/// ignored (they are covered by the CRC; see the format document for why they are not
/// refused).
pub fn decode<C: Crc32c>(buf: &[u8]) -> Result<Superblock, SuperblockError> {
    let mut sb = Superblock::BLANK;
    decode_into::<C>(buf, &mut sb)?;
    Ok(sb)
}

/// [`decode`] into `out`, which the caller owns (a superblock is over 2 KiB: the kernel
/// keeps them on the heap, not on its small stack). On error `out` holds no valid
/// superblock.
#[inline(never)]
pub fn decode_into<C: Crc32c>(buf: &[u8], out: &mut Superblock) -> Result<(), SuperblockError> {
    let b: &[u8; SLOT_SIZE] = buf
        .get(..SLOT_SIZE)
        .and_then(|s| s.try_into().ok())
        .ok_or(SuperblockError::TooShort { len: buf.len() })?;
    if get::<8>(b, OFF_MAGIC) != MAGIC {
        return Err(SuperblockError::BadMagic);
    }
    let version = get_u32(b, OFF_VERSION);
    if version != VERSION {
        return Err(SuperblockError::UnknownVersion(version));
    }
    let stored = get_u32(b, CRC_OFFSET);
    let computed = C::crc32c(b.get(..CRC_OFFSET).unwrap_or(&[]));
    if stored != computed {
        return Err(SuperblockError::BadChecksum { stored, computed });
    }
    let level = level_from(get_u8(b, OFF_LEVEL), get_u8(b, OFF_COPIES))?;
    let members = get_u16(b, OFF_MEMBERS);
    if members == 0 || members as usize > MAX_MEMBERS {
        return Err(SuperblockError::BadMemberCount(members));
    }
    out.table.fill(MemberEntry::UNUSED);
    out.members = members;
    for (role, slot) in out.table.iter_mut().enumerate() {
        let at = MEMBER_TABLE_OFFSET + role * MEMBER_ENTRY_SIZE;
        let state = get_u8(b, at + ENTRY_STATE);
        let checkpoint = get_u64(b, at + ENTRY_CHECKPOINT);
        let uuid = get::<16>(b, at + ENTRY_UUID);
        let role8 = role as u8;
        if role >= members as usize {
            if state != STATE_UNUSED || checkpoint != 0 || uuid != [0; 16] {
                return Err(SuperblockError::UnusedEntryInUse { role: role8 });
            }
            continue;
        }
        let state = match state {
            STATE_IN_SYNC => MemberState::InSync,
            STATE_FAILED => MemberState::Failed,
            STATE_REBUILDING => MemberState::Rebuilding { checkpoint },
            other => {
                return Err(SuperblockError::BadMemberState {
                    role: role8,
                    state: other,
                })
            }
        };
        if checkpoint != 0 && !matches!(state, MemberState::Rebuilding { .. }) {
            return Err(SuperblockError::BadCheckpoint { role: role8 });
        }
        *slot = MemberEntry { state, uuid };
    }
    out.group_uuid = get(b, OFF_GROUP_UUID);
    out.events = get_u64(b, OFF_EVENTS);
    out.ctime = get_u64(b, OFF_CTIME);
    out.utime = get_u64(b, OFF_UTIME);
    out.level = level;
    out.layout = get_u8(b, OFF_LAYOUT);
    out.chunk_sectors = get_u32(b, OFF_CHUNK);
    out.role = get_u16(b, OFF_ROLE);
    out.data_offset = get_u64(b, OFF_DATA_OFFSET);
    out.data_sectors = get_u64(b, OFF_DATA_SECTORS);
    out.region_sectors = get_u64(b, OFF_REGION);
    out.check()
}

/// The winning slot of a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chosen {
    /// Slot holding the newest valid superblock; the next update goes to `which.other()`.
    pub which: Which,
    /// Its contents.
    pub superblock: Superblock,
    /// Why the other slot lost if it is invalid; `None` if it is valid (older or equal).
    pub other: Option<SuperblockError>,
}

/// Why neither slot of a member can be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChooseError {
    /// Neither slot holds a valid superblock (both [`SuperblockError::BadMagic`]: the device
    /// was never formatted, or was wiped).
    NoValidSlot {
        /// Why slot A was refused.
        a: SuperblockError,
        /// Why slot B was refused.
        b: SuperblockError,
    },
    /// Both slots are valid but describe different groups (group UUID or creation time
    /// differ: an interrupted re-format), or differ at the same event count.
    Conflict,
    /// A slot carries a format version this code does not know: newer software wrote the
    /// member, and the other slot, if valid, is older than what that software relies on.
    UnknownVersion(u32),
}

impl ChooseError {
    /// A one-line message (for `ti->error` and the tools).
    pub fn message(self) -> &'static CStr {
        match self {
            Self::NoValidSlot {
                a: SuperblockError::BadMagic,
                b: SuperblockError::BadMagic,
            } => c"No amf superblock",
            Self::NoValidSlot { .. } => c"No valid superblock copy",
            Self::Conflict => c"Superblock copies conflict",
            Self::UnknownVersion(_) => c"Unknown superblock format version",
        }
    }
}

/// Pick the newer valid superblock of a member from its two slots (each at least
/// [`SLOT_SIZE`] bytes): see [`choose_decoded`].
pub fn choose<C: Crc32c>(a: &[u8], b: &[u8]) -> Result<Chosen, ChooseError> {
    choose_decoded(decode::<C>(a), decode::<C>(b))
}

/// [`choose`] without moving superblocks around: decodes slot `a` into `sa` and slot `b`
/// into `sb` (the caller's, e.g. on the heap) and says which holds the winner, and why the
/// other lost if it is invalid.
#[inline(never)]
pub fn choose_into<C: Crc32c>(
    a: &[u8],
    b: &[u8],
    sa: &mut Superblock,
    sb: &mut Superblock,
) -> Result<(Which, Option<SuperblockError>), ChooseError> {
    let ra = decode_into::<C>(a, sa);
    let rb = decode_into::<C>(b, sb);
    for r in [&ra, &rb] {
        if let Err(SuperblockError::UnknownVersion(v)) = r {
            return Err(ChooseError::UnknownVersion(*v));
        }
    }
    match (ra, rb) {
        (Err(a), Err(b)) => Err(ChooseError::NoValidSlot { a, b }),
        (Ok(()), Err(e)) => Ok((Which::A, Some(e))),
        (Err(e), Ok(())) => Ok((Which::B, Some(e))),
        (Ok(()), Ok(())) => {
            if sa.group_uuid != sb.group_uuid || sa.ctime != sb.ctime {
                return Err(ChooseError::Conflict);
            }
            if sa.events == sb.events && !sa.eq_except_utime(sb) {
                return Err(ChooseError::Conflict);
            }
            Ok((
                if sb.events > sa.events {
                    Which::B
                } else {
                    Which::A
                },
                None,
            ))
        }
    }
}

/// Pick the winner of two decoded slots: the valid one if only one is; if both are, the
/// higher event counter (A on a tie, when both must be identical but for the update time).
/// Both valid with a different group UUID or creation time, or different contents at the
/// same event count, is a [`ChooseError::Conflict`]: no rule can tell which is right. A slot
/// of an unknown format version refuses the member even if the other slot is valid.
pub fn choose_decoded(
    a: Result<Superblock, SuperblockError>,
    b: Result<Superblock, SuperblockError>,
) -> Result<Chosen, ChooseError> {
    for r in [&a, &b] {
        if let Err(SuperblockError::UnknownVersion(v)) = r {
            return Err(ChooseError::UnknownVersion(*v));
        }
    }
    match (a, b) {
        (Err(a), Err(b)) => Err(ChooseError::NoValidSlot { a, b }),
        (Ok(sa), Err(e)) => Ok(Chosen {
            which: Which::A,
            superblock: sa,
            other: Some(e),
        }),
        (Err(e), Ok(sb)) => Ok(Chosen {
            which: Which::B,
            superblock: sb,
            other: Some(e),
        }),
        (Ok(sa), Ok(sb)) => {
            if sa.group_uuid != sb.group_uuid || sa.ctime != sb.ctime {
                return Err(ChooseError::Conflict);
            }
            if sa.events == sb.events {
                let mut b_as_a = sb;
                b_as_a.utime = sa.utime;
                if b_as_a != sa {
                    return Err(ChooseError::Conflict);
                }
            }
            let (which, superblock) = if sb.events > sa.events {
                (Which::B, sb)
            } else {
                (Which::A, sa)
            };
            Ok(Chosen {
                which,
                superblock,
                other: None,
            })
        }
    }
}

/// The slot the next update of a member goes to: never the one holding its current winner,
/// so that a torn write leaves the current state intact. `None` (no valid slot) means a
/// fresh format, which writes both slots.
pub fn next_slot(current: Option<Which>) -> Which {
    match current {
        Some(w) => w.other(),
        None => Which::A,
    }
}

/// What the constructor makes of one member device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Current; read and written.
    InSync,
    /// Current below the checkpoint of the authority's member table; to be rebuilt above.
    Rebuilding,
    /// The group records it as failed.
    Failed,
    /// Its superblock is older than the group's by more than one event: it missed a completed
    /// update, so its data cannot be trusted; treated as failed, to be rebuilt.
    Stale,
    /// No valid superblock was read from it; treated as failed.
    Missing,
}

/// The outcome of [`validate_member_set`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetReport {
    /// Position (= role) of the newest superblock: the group state to use.
    pub authority: usize,
    /// Its event counter.
    pub events: u64,
    /// Members not [`Verdict::InSync`]: neither read as current nor counted as redundancy.
    pub unusable: MemberSet,
    /// Members in sync whose superblock is one event behind (an interrupted update): the
    /// constructor rewrites theirs before relying on them.
    pub behind: MemberSet,
    verdicts: [Verdict; MAX_MEMBERS],
    count: usize,
}

impl SetReport {
    /// One verdict per position.
    pub fn verdicts(&self) -> &[Verdict] {
        self.verdicts.get(..self.count).unwrap_or(&[])
    }

    /// Verdict of the member at `position`.
    pub fn verdict(&self, position: usize) -> Option<Verdict> {
        self.verdicts().get(position).copied()
    }

    /// The round the constructor writes before its first write when some member is stale or
    /// missing but not yet recorded as failed: `authority` (the superblock at
    /// [`SetReport::authority`]) with those members failed, as [`Superblock::next_round`].
    /// `None` if there is nothing to record (or the event counter is exhausted).
    pub fn record_failures(&self, authority: &Superblock, utime: u64) -> Option<Superblock> {
        let mut next = authority.next_round(utime)?;
        let mut changed = false;
        for (role, verdict) in self.verdicts().iter().enumerate() {
            if !matches!(verdict, Verdict::Stale | Verdict::Missing) {
                continue;
            }
            let Some(entry) = next.member(role) else {
                continue;
            };
            if entry.state != MemberState::Failed {
                next.set_member(
                    role,
                    MemberEntry {
                        state: MemberState::Failed,
                        uuid: entry.uuid,
                    },
                );
                changed = true;
            }
        }
        changed.then_some(next)
    }
}

/// Why a set of member devices cannot be assembled into the group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetError {
    /// No devices.
    NoDevices,
    /// More than [`MAX_MEMBERS`] devices.
    TooManyDevices,
    /// No device holds a valid superblock.
    NoSuperblock,
    /// A device belongs to another group (group UUID).
    ForeignMember {
        /// Position of the device.
        position: usize,
    },
    /// The group has a different number of members than devices were given.
    WrongMemberCount {
        /// Devices given.
        devices: usize,
        /// Members of the group (newest superblock).
        members: usize,
    },
    /// Two devices carry the same role.
    DuplicateRole {
        /// The role.
        role: usize,
        /// First position.
        first: usize,
        /// Second position.
        second: usize,
    },
    /// A device is given at a position other than its role.
    WrongRole {
        /// Position of the device.
        position: usize,
        /// Its role.
        role: usize,
    },
    /// Same group UUID, but creation time or geometry differ from the newest superblock.
    Inconsistent {
        /// Position of the device.
        position: usize,
    },
    /// The device once held this role but the group has since put another device there.
    ReplacedMember {
        /// Position of the device.
        position: usize,
    },
    /// Same event counter as the newest superblock but a different group state.
    Diverged {
        /// Position of the device.
        position: usize,
    },
    /// More unusable members than the level tolerates.
    TooManyFailed {
        /// Unusable members.
        failed: usize,
        /// Failures the level tolerates.
        tolerated: usize,
    },
}

impl SetError {
    /// The message for `ti->error`.
    pub fn message(self) -> &'static CStr {
        match self {
            Self::NoDevices => c"No member devices",
            Self::TooManyDevices => c"Too many member devices",
            Self::NoSuperblock => c"No member holds a valid superblock",
            Self::ForeignMember { .. } => c"Member belongs to another group",
            Self::WrongMemberCount { .. } => c"Wrong number of members for the group",
            Self::DuplicateRole { .. } => c"Two members with the same role",
            Self::WrongRole { .. } => c"Member given in the wrong position",
            Self::Inconsistent { .. } => c"Member superblock disagrees with the group",
            Self::ReplacedMember { .. } => c"Member was replaced in the group",
            Self::Diverged { .. } => c"Member superblocks diverged at the same event",
            Self::TooManyFailed { .. } => c"Too many failed members for the RAID level",
        }
    }
}

/// Check the superblocks read from the devices of a table, in table order (position `i` must
/// hold role `i`; `None` for a device without a valid superblock), against each other and
/// against the expected group UUID (the table's; `None`: the first present superblock's).
///
/// The newest superblock (highest event counter, lowest position on a tie) is the
/// *authority*. Refused: a device of another group, a member count that is not the number of
/// devices, two devices with one role, a device at the wrong position, a device whose
/// creation time or geometry differs from the authority's, a device whose member UUID is not
/// the one the authority records for its role (it was replaced), a device at the
/// authority's event count with a different group state, and more unusable members than
/// [`Geometry::tolerated_failures`]. A member more than one event behind is
/// [`Verdict::Stale`]; exactly one behind, it missed only the last update, which a writer
/// completes on every live member before relying on it, so the authority's state for it
/// stands (see the format document).
pub fn validate_member_set(
    group: Option<&Uuid>,
    sbs: &[Option<Superblock>],
) -> Result<SetReport, SetError> {
    let n = sbs.len();
    if n == 0 {
        return Err(SetError::NoDevices);
    }
    if n > MAX_MEMBERS {
        return Err(SetError::TooManyDevices);
    }
    let first = sbs.iter().flatten().next().ok_or(SetError::NoSuperblock)?;
    let uuid = group.copied().unwrap_or(first.group_uuid);
    let mut auth: Option<(usize, &Superblock)> = None;
    for (position, sb) in sbs.iter().enumerate() {
        let Some(sb) = sb else { continue };
        if sb.group_uuid != uuid {
            return Err(SetError::ForeignMember { position });
        }
        if auth.map_or(true, |(_, a)| sb.events > a.events) {
            auth = Some((position, sb));
        }
    }
    let (authority, a) = auth.ok_or(SetError::NoSuperblock)?;
    if a.member_count() != n {
        return Err(SetError::WrongMemberCount {
            devices: n,
            members: a.member_count(),
        });
    }
    for (first, sb) in sbs.iter().enumerate() {
        let Some(sb) = sb else { continue };
        for (second, other) in sbs.iter().enumerate().skip(first + 1) {
            if other.as_ref().is_some_and(|o| o.role == sb.role) {
                return Err(SetError::DuplicateRole {
                    role: sb.role as usize,
                    first,
                    second,
                });
            }
        }
    }
    let mut verdicts = [Verdict::Missing; MAX_MEMBERS];
    let mut unusable = MemberSet::EMPTY;
    let mut behind = MemberSet::EMPTY;
    for (position, (sb, verdict)) in sbs.iter().zip(verdicts.iter_mut()).enumerate() {
        let Some(sb) = sb else {
            unusable = unusable.with(position);
            continue;
        };
        if sb.role as usize != position {
            return Err(SetError::WrongRole {
                position,
                role: sb.role as usize,
            });
        }
        if !sb.same_identity(a) {
            return Err(SetError::Inconsistent { position });
        }
        let recorded = a
            .member(position)
            .ok_or(SetError::Inconsistent { position })?;
        if sb.member_uuid() != recorded.uuid {
            return Err(SetError::ReplacedMember { position });
        }
        if sb.events == a.events && !sb.same_group_state(a) {
            return Err(SetError::Diverged { position });
        }
        *verdict = if sb.events.saturating_add(1) < a.events {
            Verdict::Stale
        } else {
            match recorded.state {
                MemberState::InSync => Verdict::InSync,
                MemberState::Failed => Verdict::Failed,
                MemberState::Rebuilding { .. } => Verdict::Rebuilding,
            }
        };
        if *verdict == Verdict::InSync {
            if sb.events != a.events {
                behind = behind.with(position);
            }
        } else {
            unusable = unusable.with(position);
        }
    }
    let tolerated = a.geometry().map_or(0, |g| g.tolerated_failures());
    if unusable.len() > tolerated {
        return Err(SetError::TooManyFailed {
            failed: unusable.len(),
            tolerated,
        });
    }
    Ok(SetReport {
        authority,
        events: a.events,
        unusable,
        behind,
        verdicts,
        count: n,
    })
}

#[cfg(test)]
mod tests {
    use super::super::wire::TestCrc as Crc;
    use super::*;

    const GROUP: Uuid = [0x42; 16];

    fn uuids(n: usize) -> [Uuid; MAX_MEMBERS] {
        let mut u = [[0u8; 16]; MAX_MEMBERS];
        for (i, x) in u.iter_mut().enumerate().take(n) {
            *x = [i as u8 + 1; 16];
        }
        u
    }

    fn group(level: Level, n: usize) -> Superblock {
        let u = uuids(n);
        Superblock::new(&FormatParams {
            group_uuid: GROUP,
            level,
            chunk_sectors: 128,
            member_uuids: &u[..n],
            data_offset: DATA_OFFSET_DEFAULT,
            data_sectors: 1 << 20,
            region_sectors: default_region_sectors(1 << 20, 128).unwrap(),
            ctime: 1_700_000_000,
        })
        .unwrap()
    }

    fn enc(sb: &Superblock) -> [u8; SLOT_SIZE] {
        let mut out = [0xa5u8; SLOT_SIZE];
        encode::<Crc>(sb, &mut out).unwrap();
        out
    }

    /// Patch bytes of an encoded slot and fix its CRC, so the field check is what fails.
    fn patched(sb: &Superblock, at: usize, bytes: &[u8]) -> Result<Superblock, SuperblockError> {
        let mut b = enc(sb);
        b[at..at + bytes.len()].copy_from_slice(bytes);
        let crc = crc32c::crc32c(&b[..CRC_OFFSET]);
        b[CRC_OFFSET..].copy_from_slice(&crc.to_le_bytes());
        decode::<Crc>(&b)
    }

    #[test]
    fn layout_constants() {
        assert_eq!(DATA_OFFSET_MIN, 6144);
        assert_eq!(BITMAP_BITS, 1 << 21);
        assert_eq!(Which::A.byte_offset(), 4096);
        assert_eq!(Which::B.byte_offset(), 8192);
    }

    #[test]
    fn roundtrip_every_level() {
        for (level, n) in [
            (Level::Raid0, 1),
            (Level::Raid1, 3),
            (Level::Raid5, 4),
            (Level::Raid6, 6),
            (Level::Raid10 { copies: 2 }, 4),
            (Level::Raid10 { copies: 3 }, 64),
        ] {
            let mut sb = group(level, n).for_role(n - 1).unwrap();
            sb.events = 77;
            sb.utime = 5;
            sb.set_member(
                0,
                MemberEntry {
                    state: MemberState::Rebuilding { checkpoint: 4096 },
                    uuid: [0xee; 16],
                },
            );
            let b = enc(&sb);
            assert_eq!(&b[..8], b"AMFSUPER");
            assert_eq!(decode::<Crc>(&b), Ok(sb));
            let own = if n == 1 { [0xee; 16] } else { [n as u8; 16] };
            assert_eq!(decode::<Crc>(&b).unwrap().member_uuid(), own);
        }
    }

    #[test]
    fn fixed_offsets() {
        let mut sb = group(Level::Raid5, 4).for_role(2).unwrap();
        sb.events = 0x0102_0304_0506_0708;
        let b = enc(&sb);
        assert_eq!(&b[8..12], &[1, 0, 0, 0]);
        assert_eq!(&b[16..32], &GROUP);
        assert_eq!(&b[32..40], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(&b[56..59], &[5, 0, 0]);
        assert_eq!(&b[60..64], &128u32.to_le_bytes());
        assert_eq!(&b[64..68], &[4, 0, 2, 0]);
        assert_eq!(&b[72..80], &8192u64.to_le_bytes());
        let e = MEMBER_TABLE_OFFSET + 3 * MEMBER_ENTRY_SIZE;
        assert_eq!(b[e], 1);
        assert_eq!(&b[e + 16..e + 32], &[4u8; 16]);
        assert!(b[e + MEMBER_ENTRY_SIZE..CRC_OFFSET].iter().all(|x| *x == 0));
        assert_eq!(
            u32::from_le_bytes(b[CRC_OFFSET..].try_into().unwrap()),
            crc32c::crc32c(&b[..CRC_OFFSET])
        );
    }

    #[test]
    fn refuses_every_malformed_field() {
        let sb = group(Level::Raid5, 4);
        use SuperblockError as E;
        assert_eq!(decode::<Crc>(&[0u8; 100]), Err(E::TooShort { len: 100 }));
        assert_eq!(decode::<Crc>(&[0u8; SLOT_SIZE]), Err(E::BadMagic));
        // Unknown version: refused even with a correct CRC.
        assert_eq!(patched(&sb, 8, &[2, 0, 0, 0]), Err(E::UnknownVersion(2)));
        assert_eq!(patched(&sb, 8, &[0, 0, 0, 0]), Err(E::UnknownVersion(0)));
        let mut b = enc(&sb);
        b[200] ^= 1;
        assert!(matches!(decode::<Crc>(&b), Err(E::BadChecksum { .. })));
        assert_eq!(patched(&sb, 16, &[0; 16]), Err(E::ZeroGroupUuid));
        assert_eq!(patched(&sb, 56, &[4]), Err(E::UnknownLevel(4)));
        assert_eq!(patched(&sb, 57, &[2]), Err(E::BadCopies(2)));
        assert_eq!(patched(&sb, 58, &[1]), Err(E::UnknownLayout(1)));
        assert_eq!(patched(&sb, 60, &[96, 0, 0, 0]), Err(E::BadChunk(96)));
        assert_eq!(patched(&sb, 60, &[4, 0, 0, 0]), Err(E::BadChunk(4)));
        assert_eq!(patched(&sb, 64, &[0, 0]), Err(E::BadMemberCount(0)));
        assert_eq!(patched(&sb, 64, &[65, 0]), Err(E::BadMemberCount(65)));
        // Count lowered below the table: the last entry is now beyond it.
        assert_eq!(
            patched(&sb, 64, &[3, 0]),
            Err(E::UnusedEntryInUse { role: 3 })
        );
        assert_eq!(
            patched(&sb, 66, &[4, 0]),
            Err(E::BadRole {
                role: 4,
                members: 4
            })
        );
        // RAID6 needs four members.
        let r1 = group(Level::Raid5, 2);
        assert_eq!(
            patched(&r1, 56, &[6]),
            Err(E::Geometry(GeometryError::TooFewMembers))
        );
        assert_eq!(
            patched(&sb, 56, &[10, 5]),
            Err(E::Geometry(GeometryError::BadCopies))
        );
        assert_eq!(
            patched(&sb, 72, &4096u64.to_le_bytes()),
            Err(E::BadDataOffset(4096))
        );
        assert_eq!(
            patched(&sb, 72, &8193u64.to_le_bytes()),
            Err(E::BadDataOffset(8193))
        );
        assert_eq!(
            patched(&sb, 72, &u64::MAX.to_le_bytes()),
            Err(E::BadDataOffset(u64::MAX))
        );
        assert_eq!(patched(&sb, 80, &[0; 8]), Err(E::BadDataSectors(0)));
        assert_eq!(
            patched(&sb, 80, &1000u64.to_le_bytes()),
            Err(E::BadDataSectors(1000))
        );
        assert_eq!(patched(&sb, 88, &[0; 8]), Err(E::BadRegion(0)));
        assert_eq!(
            patched(&sb, 88, &[64, 0, 0, 0, 0, 0, 0, 0]),
            Err(E::BadRegion(64))
        );
        assert_eq!(
            patched(&sb, 88, &[0, 3, 0, 0, 0, 0, 0, 0]),
            Err(E::BadRegion(768))
        );
        let e1 = MEMBER_TABLE_OFFSET + MEMBER_ENTRY_SIZE;
        assert_eq!(
            patched(&sb, e1, &[9]),
            Err(E::BadMemberState { role: 1, state: 9 })
        );
        assert_eq!(
            patched(&sb, e1, &[0]),
            Err(E::BadMemberState { role: 1, state: 0 })
        );
        assert_eq!(
            patched(&sb, e1 + 8, &[1]),
            Err(E::BadCheckpoint { role: 1 })
        );
        let mut over = [0u8; 9];
        over[0] = STATE_REBUILDING;
        over[8..].copy_from_slice(&[0]);
        let too_far = ((1u64 << 20) + 1).to_le_bytes();
        let mut entry = [0u8; 16];
        entry[0] = STATE_REBUILDING;
        entry[8..].copy_from_slice(&too_far);
        assert_eq!(patched(&sb, e1, &entry), Err(E::BadCheckpoint { role: 1 }));
        assert_eq!(
            patched(&sb, e1 + 16, &[0; 16]),
            Err(E::ZeroMemberUuid { role: 1 })
        );
        assert_eq!(
            patched(&sb, e1 + 16, &[1; 16]),
            Err(E::DuplicateMemberUuid {
                first: 0,
                second: 1
            })
        );
        let e9 = MEMBER_TABLE_OFFSET + 9 * MEMBER_ENTRY_SIZE;
        assert_eq!(
            patched(&sb, e9 + 20, &[1]),
            Err(E::UnusedEntryInUse { role: 9 })
        );
        // Reserved bytes are ignored (but covered by the CRC).
        assert_eq!(patched(&sb, 12, &[1]), Ok(sb));
        assert_eq!(patched(&sb, 100, &[1]), Ok(sb));
        assert_eq!(patched(&sb, e1 + 3, &[1]), Ok(sb));
        assert_eq!(patched(&sb, 3000, &[1]), Ok(sb));
        for e in [E::BadMagic, E::UnknownVersion(3), E::ZeroGroupUuid] {
            assert!(!e.message().to_bytes().is_empty());
        }
    }

    #[test]
    fn encode_refuses_what_decode_refuses() {
        let mut sb = group(Level::Raid1, 2);
        sb.chunk_sectors = 12;
        let mut out = [7u8; SLOT_SIZE];
        assert_eq!(
            encode::<Crc>(&sb, &mut out),
            Err(SuperblockError::BadChunk(12))
        );
        assert!(out.iter().all(|x| *x == 7));
        let u = uuids(2);
        let p = FormatParams {
            group_uuid: GROUP,
            level: Level::Raid1,
            chunk_sectors: 128,
            member_uuids: &u[..0],
            data_offset: DATA_OFFSET_DEFAULT,
            data_sectors: 1 << 20,
            region_sectors: 1 << 17,
            ctime: 0,
        };
        assert_eq!(Superblock::new(&p), Err(SuperblockError::BadMemberCount(0)));
        let dup = [[1u8; 16]; 2];
        assert_eq!(
            Superblock::new(&FormatParams {
                member_uuids: &dup,
                ..p
            }),
            Err(SuperblockError::DuplicateMemberUuid {
                first: 0,
                second: 1
            })
        );
    }

    const U: Uuid = [
        0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd,
        0xef,
    ];

    #[test]
    fn uuid_syntax() {
        for good in [
            "01234567-89ab-cdef-0123-456789abcdef",
            "01234567-89AB-CDEF-0123-456789ABCDEF",
            "0123456789abcdef0123456789ABCDEF",
        ] {
            assert_eq!(parse_uuid(good), Some(U), "{good}");
        }
        assert_eq!(
            parse_uuid("00000000-0000-0000-0000-000000000000"),
            Some([0; 16])
        );
        assert_eq!(
            parse_uuid("ffffffffffffffffffffffffffffffff"),
            Some([0xff; 16])
        );
        for bad in [
            "",
            "0123",
            "0123456789abcdef0123456789abcdeg",
            "0123456789abcdef0123456789abcdef0",
            "0123456789abcdef0123456789abcde",
            "0123-456789abcdef0123456789abcdef",
            "+123456789abcdef0123456789abcdef",
            "01234567-89ab-cdef-0123-456789abcdeg",
            "01234567-89ab-cdef-0123-456789abcde",
            "01234567-89ab-cdef-0123-456789abcdef0",
            "0123456789ab-cdef-0123-456789abcdef",
            "01234567-89abc-def-0123-456789abcdef",
            "01234567_89ab_cdef_0123_456789abcdef",
            "{1234567-89ab-cdef-0123-456789abcde}",
            " 1234567-89ab-cdef-0123-456789abcdef",
            "0123456789abcdef0123456789abcd\u{e9}",
            "01234567-89ab-cdef-0123-456789abcd\u{e9}",
        ] {
            assert_eq!(parse_uuid(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn uuid_text_is_canonical() {
        struct Buf([u8; 40], usize);
        impl core::fmt::Write for Buf {
            fn write_str(&mut self, s: &str) -> core::fmt::Result {
                let end = self.1 + s.len();
                self.0
                    .get_mut(self.1..end)
                    .ok_or(core::fmt::Error)?
                    .copy_from_slice(s.as_bytes());
                self.1 = end;
                Ok(())
            }
        }
        let mut b = Buf([0; 40], 0);
        core::fmt::Write::write_fmt(&mut b, format_args!("{}", UuidText(&U))).unwrap();
        let text = core::str::from_utf8(&b.0[..b.1]).unwrap();
        assert_eq!(text, "01234567-89ab-cdef-0123-456789abcdef");
        assert_eq!(parse_uuid(text), Some(U));
    }

    #[test]
    fn resume_stripe_stays_in_the_geometry() {
        // A table may use less than the data area the superblock records: a checkpoint
        // beyond it means every stripe of this geometry was rebuilt.
        let g = Geometry::new(Level::Raid5, 4, 16, 16 * 8).unwrap();
        assert_eq!(resume_stripe(0, &g), 0);
        assert_eq!(resume_stripe(16 * 3 + 5, &g), 3);
        assert_eq!(resume_stripe(16 * 8, &g), 8);
        assert_eq!(resume_stripe(16 * 100, &g), 8);
        assert_eq!(resume_stripe(u64::MAX, &g), 8);
    }

    #[test]
    fn default_region() {
        assert_eq!(default_region_sectors(1 << 20, 128), Some(1 << 17));
        assert_eq!(default_region_sectors(1 << 20, 1 << 21), Some(1 << 21));
        // 1 PiB member: 2^41 sectors / 2^21 bits = 2^20 sectors per bit.
        assert_eq!(default_region_sectors(1 << 41, 128), Some(1 << 20));
        assert_eq!(default_region_sectors((1 << 41) + 1, 128), Some(1 << 21));
        assert_eq!(default_region_sectors(u64::MAX, 128), Some(1 << 43));
    }

    #[test]
    fn choose_into_agrees_with_choose() {
        let s1 = group(Level::Raid6, 5);
        let mut s2 = s1;
        s2.events = 2;
        s2.utime = 9;
        let mut s1b = s1;
        s1b.set_member(
            1,
            MemberEntry {
                state: MemberState::Failed,
                uuid: [2; 16],
            },
        );
        let (a, b, c) = (enc(&s1), enc(&s2), enc(&s1b));
        let mut torn = b;
        torn[1000..].copy_from_slice(&a[1000..]);
        let mut future = a;
        future[8..12].copy_from_slice(&(VERSION + 1).to_le_bytes());
        let zero = [0u8; SLOT_SIZE];
        let slots: [&[u8]; 6] = [&a, &b, &c, &torn, &future, &zero];
        for x in slots {
            for y in slots {
                let (mut sa, mut sb) = (Superblock::BLANK, Superblock::BLANK);
                let got = choose_into::<Crc>(x, y, &mut sa, &mut sb);
                match (choose::<Crc>(x, y), got) {
                    (Ok(want), Ok((which, other))) => {
                        let sb_got = if which == Which::A { sa } else { sb };
                        assert_eq!(
                            (want.which, want.superblock, want.other),
                            (which, sb_got, other)
                        );
                    }
                    (Err(want), Err(e)) => assert_eq!(want, e),
                    (want, got) => panic!("choose {want:?} but choose_into {got:?}"),
                }
            }
        }
    }

    #[test]
    fn choose_newer_valid_slot() {
        let s1 = group(Level::Raid5, 4);
        let mut s2 = s1;
        s2.events = 2;
        s2.utime = 9;
        s2.set_member(
            3,
            MemberEntry {
                state: MemberState::Failed,
                uuid: [4; 16],
            },
        );
        let (a, b) = (enc(&s1), enc(&s2));
        let c = choose::<Crc>(&a, &b).unwrap();
        assert_eq!((c.which, c.superblock, c.other), (Which::B, s2, None));
        assert_eq!(next_slot(Some(c.which)), Which::A);
        let c = choose::<Crc>(&b, &a).unwrap();
        assert_eq!((c.which, c.superblock.events), (Which::A, 2));
        // B torn: A wins and reports why B lost.
        let mut torn = b;
        torn[1000..].copy_from_slice(&a[1000..]);
        let c = choose::<Crc>(&a, &torn).unwrap();
        assert_eq!(c.which, Which::A);
        assert!(matches!(c.other, Some(SuperblockError::BadChecksum { .. })));
        // Identical copies (fresh format): A.
        let c = choose::<Crc>(&a, &a).unwrap();
        assert_eq!((c.which, c.other), (Which::A, None));
        // Same event count, different contents: conflict.
        let mut s1b = s1;
        s1b.set_member(
            1,
            MemberEntry {
                state: MemberState::Failed,
                uuid: [2; 16],
            },
        );
        assert_eq!(choose::<Crc>(&a, &enc(&s1b)), Err(ChooseError::Conflict));
        // Same except the update time: fine.
        let mut s1t = s1;
        s1t.utime += 1;
        assert!(choose::<Crc>(&a, &enc(&s1t)).is_ok());
        // Interrupted re-format: another group in the other slot.
        let mut other = s2;
        other.group_uuid = [9; 16];
        assert_eq!(choose::<Crc>(&a, &enc(&other)), Err(ChooseError::Conflict));
        let zero = [0u8; SLOT_SIZE];
        let e = choose::<Crc>(&zero, &zero).unwrap_err();
        assert_eq!(e.message(), c"No amf superblock");
        let e = choose::<Crc>(&zero, &torn).unwrap_err();
        assert_eq!(e.message(), c"No valid superblock copy");
        assert_eq!(next_slot(None), Which::A);
        // A newer format version in either slot refuses the member.
        let mut v2 = b;
        v2[8] = 2;
        let crc = crc32c::crc32c(&v2[..CRC_OFFSET]);
        v2[CRC_OFFSET..].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(choose::<Crc>(&a, &v2), Err(ChooseError::UnknownVersion(2)));
        assert_eq!(
            choose::<Crc>(&v2, &zero),
            Err(ChooseError::UnknownVersion(2))
        );
        assert_eq!(
            ChooseError::UnknownVersion(2).message(),
            c"Unknown superblock format version"
        );
    }

    fn set(level: Level, n: usize) -> [Option<Superblock>; MAX_MEMBERS] {
        let g = group(level, n);
        let mut s = [None; MAX_MEMBERS];
        for (i, x) in s.iter_mut().enumerate().take(n) {
            *x = g.for_role(i);
        }
        s
    }

    /// Bump the group state on the members in `on`, marking `failed` failed.
    fn fail(s: &mut [Option<Superblock>], failed: usize, on: &[usize]) {
        let mut next = s
            .iter()
            .flatten()
            .copied()
            .max_by_key(|x| x.events)
            .unwrap();
        next.events += 1;
        let mut e = next.member(failed).unwrap();
        e.state = MemberState::Failed;
        next.set_member(failed, e);
        for i in on {
            s[*i] = next.for_role(*i);
        }
    }

    #[test]
    fn member_set_accepts_a_healthy_group() {
        let s = set(Level::Raid5, 4);
        let r = validate_member_set(Some(&GROUP), &s[..4]).unwrap();
        assert_eq!(r.authority, 0);
        assert_eq!(r.events, 1);
        assert!(r.unusable.is_empty() && r.behind.is_empty());
        assert_eq!(r.verdicts(), &[Verdict::InSync; 4]);
        assert_eq!(validate_member_set(None, &s[..4]), Ok(r));
    }

    #[test]
    fn member_set_refusals() {
        let s = set(Level::Raid5, 4);
        let v = |x: &[Option<Superblock>]| validate_member_set(Some(&GROUP), x);
        assert_eq!(v(&[]), Err(SetError::NoDevices));
        assert_eq!(v(&[None; 65]), Err(SetError::TooManyDevices));
        assert_eq!(v(&[None; 4]), Err(SetError::NoSuperblock));
        let mut f = s;
        f[2].as_mut().unwrap().group_uuid = [1; 16];
        assert_eq!(v(&f[..4]), Err(SetError::ForeignMember { position: 2 }));
        // Without an expected UUID the first present member's group is the group.
        assert_eq!(
            validate_member_set(None, &f[..4]),
            Err(SetError::ForeignMember { position: 2 })
        );
        assert_eq!(
            v(&s[..3]),
            Err(SetError::WrongMemberCount {
                devices: 3,
                members: 4
            })
        );
        let mut d = s;
        d[3] = d[1];
        assert_eq!(
            v(&d[..4]),
            Err(SetError::DuplicateRole {
                role: 1,
                first: 1,
                second: 3
            })
        );
        let mut w = s;
        w.swap(1, 2);
        assert_eq!(
            v(&w[..4]),
            Err(SetError::WrongRole {
                position: 1,
                role: 2
            })
        );
        let mut i = s;
        i[3].as_mut().unwrap().chunk_sectors = 256;
        assert_eq!(v(&i[..4]), Err(SetError::Inconsistent { position: 3 }));
        let mut c = s;
        c[3].as_mut().unwrap().ctime = 1;
        assert_eq!(v(&c[..4]), Err(SetError::Inconsistent { position: 3 }));
        // Role 1 replaced by a new device (new member UUID) on every other member.
        let mut r = s;
        let mut next = s[0].unwrap();
        next.events = 3;
        next.set_member(
            1,
            MemberEntry {
                state: MemberState::Rebuilding { checkpoint: 0 },
                uuid: [0x77; 16],
            },
        );
        for k in [0, 2, 3] {
            r[k] = next.for_role(k);
        }
        assert_eq!(v(&r[..4]), Err(SetError::ReplacedMember { position: 1 }));
        // The new device is accepted, as rebuilding.
        r[1] = next.for_role(1);
        let rep = v(&r[..4]).unwrap();
        assert_eq!(rep.verdict(1), Some(Verdict::Rebuilding));
        assert_eq!(rep.unusable, MemberSet::single(1));
        // Same event, different state.
        let mut dv = s;
        let mut x = s[2].unwrap();
        x.set_member(
            0,
            MemberEntry {
                state: MemberState::Failed,
                uuid: [1; 16],
            },
        );
        dv[2] = Some(x);
        assert_eq!(v(&dv[..4]), Err(SetError::Diverged { position: 2 }));
        for e in [SetError::NoDevices, SetError::Diverged { position: 0 }] {
            assert!(!e.message().to_bytes().is_empty());
        }
    }

    #[test]
    fn stale_failed_and_missing_members() {
        let v = |x: &[Option<Superblock>]| validate_member_set(Some(&GROUP), x);
        // Member 3 failed (recorded on 0..2): 3 is failed, degraded but usable.
        let mut s = set(Level::Raid5, 4);
        fail(&mut s, 3, &[0, 1, 2]);
        let r = v(&s[..4]).unwrap();
        assert_eq!(r.events, 2);
        assert_eq!(r.verdict(3), Some(Verdict::Failed));
        assert_eq!(r.unusable, MemberSet::single(3));
        // Two more updates that 3 missed: stale whatever it says about itself.
        let mut s = set(Level::Raid5, 4);
        let mut next = s[0].unwrap();
        next.events = 3;
        for (k, x) in s.iter_mut().enumerate().take(3) {
            *x = next.for_role(k);
        }
        let r = v(&s[..4]).unwrap();
        assert_eq!(r.verdict(3), Some(Verdict::Stale));
        assert_eq!(r.unusable, MemberSet::single(3));
        // One update interrupted after reaching only member 0: the others are behind but
        // in sync (the authority says so), and get their superblocks rewritten.
        let mut s = set(Level::Raid5, 4);
        let mut next = s[0].unwrap();
        next.events = 2;
        next.utime = 50;
        s[0] = next.for_role(0);
        let r = v(&s[..4]).unwrap();
        assert_eq!(r.authority, 0);
        assert!(r.unusable.is_empty());
        assert_eq!(r.behind, MemberSet(0b1110));
        // An interrupted update marking 2 failed, reaching only member 3: 2 is failed.
        let mut s = set(Level::Raid5, 4);
        fail(&mut s, 2, &[3]);
        let r = v(&s[..4]).unwrap();
        assert_eq!(r.authority, 3);
        assert_eq!(r.verdict(2), Some(Verdict::Failed));
        assert_eq!(r.behind, MemberSet(0b0011));
        // A missing member counts as failed; two are too many for RAID5.
        let mut s = set(Level::Raid5, 4);
        s[1] = None;
        assert_eq!(v(&s[..4]).unwrap().verdict(1), Some(Verdict::Missing));
        fail(&mut s, 1, &[0, 2]);
        let mut next = s[0].unwrap();
        next.events = 4;
        s[0] = next.for_role(0);
        s[2] = next.for_role(2);
        assert_eq!(
            v(&s[..4]),
            Err(SetError::TooManyFailed {
                failed: 2,
                tolerated: 1
            })
        );
        // RAID6 survives the same.
        let mut s = set(Level::Raid6, 4);
        s[1] = None;
        fail(&mut s, 3, &[0, 2]);
        let r = v(&s[..4]).unwrap();
        assert_eq!(r.unusable, MemberSet(0b1010));
        // RAID0 tolerates nothing.
        let mut s = set(Level::Raid0, 2);
        s[1] = None;
        assert!(matches!(
            v(&s[..2]),
            Err(SetError::TooManyFailed {
                failed: 1,
                tolerated: 0
            })
        ));
        // RAID1 runs on one member of three.
        let mut s = set(Level::Raid1, 3);
        s[0] = None;
        s[2] = None;
        let r = v(&s[..3]).unwrap();
        assert_eq!(r.unusable, MemberSet(0b101));
        // The constructor records both as failed in a new round, after which they are failed.
        let next = r.record_failures(&s[1].unwrap(), 99).unwrap();
        assert_eq!(next.events, 2);
        assert_eq!(next.utime, 99);
        assert_eq!(next.member(0).unwrap().state, MemberState::Failed);
        assert_eq!(next.member(1).unwrap().state, MemberState::InSync);
        assert_eq!(next.member(2).unwrap().state, MemberState::Failed);
        s[1] = next.for_role(1);
        let r = v(&s[..3]).unwrap();
        assert_eq!(
            r.verdicts(),
            &[Verdict::Missing, Verdict::InSync, Verdict::Missing]
        );
        assert_eq!(r.record_failures(&s[1].unwrap(), 100), None);
        // Nothing to record in a healthy group, nor at the end of the counter.
        let s = set(Level::Raid1, 2);
        let r = v(&s[..2]).unwrap();
        assert_eq!(r.record_failures(&s[0].unwrap(), 1), None);
        let mut last = s[0].unwrap();
        last.events = u64::MAX;
        assert_eq!(last.next_round(0), None);
    }
}
