// SPDX-License-Identifier: GPL-2.0
//! Member superblocks: `amfctl format` writes them, `amfctl examine` prints one. The format is
//! `amf_core::superblock` (`Documentation/on-disk-format.rst`), the same code the kernel
//! target reads them with.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};

use amf_core::geometry::Level;
use amf_core::superblock::{
    self, choose, default_region_sectors, ChooseError, FormatParams, MemberState, Superblock,
    SuperblockError, Uuid, UuidText, Which, DATA_OFFSET_DEFAULT, MAGIC, SLOT_A_SECTOR,
    SLOT_B_SECTOR, SLOT_SIZE,
};
use amf_core::table::level_name;
use amf_core::wire::Crc32c;
use serde::Serialize;

use crate::device::{self, DevId};
use crate::size::{human, SECTOR_SIZE};

/// CRC-32C for the core's codecs.
pub struct Crc;

impl Crc32c for Crc {
    fn append(crc: u32, data: &[u8]) -> u32 {
        crc32c::crc32c_append(crc, data)
    }
}

/// Why formatting or examining failed.
#[derive(Debug, thiserror::Error)]
pub enum SbError {
    /// Reading, writing or probing a device failed.
    #[error("{path}: {err}")]
    Io {
        /// The device.
        path: String,
        /// What failed.
        err: io::Error,
    },
    /// `--level` is not a level name.
    #[error("unknown RAID level '{0}': valid levels are {list}", list = crate::level::valid_list())]
    Level(String),
    /// `--uuid` is not a UUID.
    #[error("bad UUID '{0}': expected 32 hex digits, in 8-4-4-4-12 groups or without dashes")]
    Uuid(String),
    /// The same device named twice.
    #[error("{0} is named twice")]
    Duplicate(String),
    /// A device already holds an amf superblock and `--force` was not given.
    #[error("{0} already holds an amf superblock (use --force to overwrite it)")]
    InUse(String),
    /// A device carries a file system, partition table or another RAID's label, and
    /// `--force` was not given.
    #[error("{path} holds {}: not formatted (use --force to overwrite it)", crate::signature::describe(.found))]
    Foreign {
        /// The device.
        path: String,
        /// What was found.
        found: Vec<crate::signature::Found>,
    },
    /// A device is too small for the reserved area and one chunk.
    #[error("{path} is too small: {sectors} sectors, the data area needs {needed}")]
    TooSmall {
        /// The device.
        path: String,
        /// Its size.
        sectors: u64,
        /// Data offset plus data size.
        needed: u64,
    },
    /// The parameters do not make a valid superblock.
    #[error("invalid group: {}", .0.message().to_string_lossy())]
    Invalid(SuperblockError),
    /// No usable superblock on the device.
    #[error("{path}: {}{detail}", .err.message().to_string_lossy())]
    Unreadable {
        /// The device.
        path: String,
        /// Why.
        err: ChooseError,
        /// Why each slot was refused.
        detail: String,
    },
}

fn io_err(path: &str) -> impl FnOnce(io::Error) -> SbError + '_ {
    move |err| SbError::Io {
        path: path.to_string(),
        err,
    }
}

/// A level name, or mdadm's spelling of it (`5`, `raid5`; [`crate::level::canonical`]);
/// `raid10` takes `copies`.
pub fn parse_level(name: &str, copies: u8) -> Result<Level, SbError> {
    Ok(match crate::level::canonical(name).unwrap_or("") {
        "raid0" => Level::Raid0,
        "raid1" => Level::Raid1,
        "raid5" => Level::Raid5,
        "raid6" => Level::Raid6,
        "raid10" => Level::Raid10 { copies },
        _ => return Err(SbError::Level(name.to_string())),
    })
}

/// Parses `--uuid` with the core's parser ([`superblock::parse_uuid`]: 32 hex digits, in
/// the 8-4-4-4-12 groups or without dashes), which is also the syntax of the table's
/// `group <uuid>`.
pub fn parse_uuid(s: &str) -> Result<Uuid, SbError> {
    superblock::parse_uuid(s).ok_or_else(|| SbError::Uuid(s.to_string()))
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` ([`UuidText`]).
pub fn format_uuid(u: &Uuid) -> String {
    UuidText(u).to_string()
}

/// A random (version 4) UUID from the kernel's random source.
pub fn random_uuid() -> io::Result<Uuid> {
    let mut u = [0u8; 16];
    File::open("/dev/urandom")?.read_exact(&mut u)?;
    u[6] = (u[6] & 0x0f) | 0x40;
    u[8] = (u[8] & 0x3f) | 0x80;
    Ok(u)
}

/// Both superblock slots of a device (zeros where the device is too short).
pub fn read_slots(path: &str) -> Result<([u8; SLOT_SIZE], [u8; SLOT_SIZE]), SbError> {
    let mut f = File::open(path).map_err(io_err(path))?;
    let mut read = |sector: u64| -> io::Result<[u8; SLOT_SIZE]> {
        let mut buf = [0u8; SLOT_SIZE];
        f.seek(SeekFrom::Start(sector * SECTOR_SIZE))?;
        let mut got = 0;
        while got < SLOT_SIZE {
            match f.read(&mut buf[got..])? {
                0 => break,
                n => got += n,
            }
        }
        Ok(buf)
    };
    let a = read(SLOT_A_SECTOR).map_err(io_err(path))?;
    let b = read(SLOT_B_SECTOR).map_err(io_err(path))?;
    Ok((a, b))
}

/// Both superblock slots, read past the page cache (`O_DIRECT`) where the device allows it:
/// another server of a cluster, or the kernel target on this one (which writes with bios),
/// may have written rounds since this host last read the device through its cache. Falls
/// back to [`read_slots`] where `O_DIRECT` is refused (tmpfs files).
pub fn read_slots_direct(path: &str) -> Result<([u8; SLOT_SIZE], [u8; SLOT_SIZE]), SbError> {
    use std::os::unix::fs::OpenOptionsExt;
    const ALIGN: usize = 4096;
    let Ok(mut f) = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
    else {
        return read_slots(path);
    };
    // Slots A and B are adjacent (sectors 8..16 and 16..24): one aligned read of both, into
    // an aligned part of a larger buffer.
    let len = 2 * SLOT_SIZE;
    let mut raw = vec![0u8; len + ALIGN];
    let start = raw.as_ptr().align_offset(ALIGN);
    if start > ALIGN || SLOT_B_SECTOR != SLOT_A_SECTOR + (SLOT_SIZE as u64) / SECTOR_SIZE {
        return read_slots(path);
    }
    let buf = &mut raw[start..start + len];
    let read = f
        .seek(SeekFrom::Start(SLOT_A_SECTOR * SECTOR_SIZE))
        .and_then(|_| {
            let mut got = 0;
            while got < len {
                match f.read(&mut buf[got..])? {
                    0 => break,
                    n => got += n,
                }
            }
            Ok(got)
        });
    match read {
        Ok(_) => {
            let mut a = [0u8; SLOT_SIZE];
            let mut b = [0u8; SLOT_SIZE];
            a.copy_from_slice(&buf[..SLOT_SIZE]);
            b.copy_from_slice(&buf[SLOT_SIZE..]);
            Ok((a, b))
        }
        // EINVAL: the file system takes O_DIRECT opens but not the I/O.
        Err(_) => read_slots(path),
    }
}

/// True if either slot starts with the amf magic, valid or not.
pub fn holds_superblock(path: &str) -> Result<bool, SbError> {
    let (a, b) = read_slots(path)?;
    Ok(a.starts_with(&MAGIC) || b.starts_with(&MAGIC))
}

/// What `amfctl format` is asked to do.
#[derive(Debug, Clone)]
pub struct FormatRequest {
    /// RAID level.
    pub level: Level,
    /// Chunk size in sectors.
    pub chunk_sectors: u64,
    /// Group UUID; random if `None`.
    pub uuid: Option<Uuid>,
    /// Data offset in sectors (default [`DATA_OFFSET_DEFAULT`]).
    pub data_offset: Option<u64>,
    /// Data sectors per member (default: the largest whole number of chunks that fits every
    /// device).
    pub data_sectors: Option<u64>,
    /// Bitmap region in sectors (default [`default_region_sectors`]).
    pub region_sectors: Option<u64>,
    /// Overwrite devices that already hold an amf superblock.
    pub force: bool,
    /// Creation time (seconds since the epoch).
    pub ctime: u64,
}

/// A formatted group: its superblock as written to member 0.
#[derive(Debug, Clone)]
pub struct Formatted {
    /// The superblock of member 0 (the others differ only in the role).
    pub superblock: Superblock,
    /// The devices, in member order.
    pub devs: Vec<String>,
}

/// Writes a fresh group onto `devs` (member order): checks everything first, then zeroes each
/// member's reserved area and writes the superblock to both slots, with an fsync per device.
pub fn format(req: &FormatRequest, devs: &[String]) -> Result<Formatted, SbError> {
    let chunk = u32::try_from(req.chunk_sectors)
        .map_err(|_| SbError::Invalid(SuperblockError::BadChunk(u32::MAX)))?;
    let data_offset = req.data_offset.unwrap_or(DATA_OFFSET_DEFAULT);
    let mut ids: Vec<DevId> = Vec::new();
    let mut min = u64::MAX;
    for path in devs {
        let info = device::probe(path).map_err(io_err(path))?;
        if ids.contains(&info.id) {
            return Err(SbError::Duplicate(path.clone()));
        }
        ids.push(info.id);
        min = min.min(info.sectors);
    }
    let data_sectors = match req.data_sectors {
        Some(s) => s,
        None => min.saturating_sub(data_offset) / req.chunk_sectors.max(1) * req.chunk_sectors,
    };
    let needed = data_offset.saturating_add(data_sectors);
    for path in devs {
        let sectors = device::probe(path).map_err(io_err(path))?.sectors;
        if sectors < needed || data_sectors == 0 {
            return Err(SbError::TooSmall {
                path: path.clone(),
                sectors,
                needed: needed.max(data_offset.saturating_add(req.chunk_sectors)),
            });
        }
        if !req.force && holds_superblock(path)? {
            return Err(SbError::InUse(path.clone()));
        }
        if !req.force {
            let found = crate::signature::probe(path).map_err(io_err(path))?;
            if !found.is_empty() {
                return Err(SbError::Foreign {
                    path: path.clone(),
                    found,
                });
            }
        }
    }
    let group_uuid = match req.uuid {
        Some(u) => u,
        None => random_uuid().map_err(io_err("/dev/urandom"))?,
    };
    let mut member_uuids = Vec::with_capacity(devs.len());
    for _ in devs {
        member_uuids.push(random_uuid().map_err(io_err("/dev/urandom"))?);
    }
    let region_sectors = match req.region_sectors {
        Some(r) => r,
        None => default_region_sectors(data_sectors, chunk).unwrap_or(0),
    };
    let sb = Superblock::new(&FormatParams {
        group_uuid,
        level: req.level,
        chunk_sectors: chunk,
        member_uuids: &member_uuids,
        data_offset,
        data_sectors,
        region_sectors,
        ctime: req.ctime,
    })
    .map_err(SbError::Invalid)?;
    for (role, path) in devs.iter().enumerate() {
        let mine = sb
            .for_role(role)
            .ok_or(SbError::Invalid(SuperblockError::BadMemberCount(0)))?;
        let mut slot = [0u8; SLOT_SIZE];
        superblock::encode::<Crc>(&mine, &mut slot).map_err(SbError::Invalid)?;
        write_member(path, data_offset, &slot).map_err(io_err(path))?;
    }
    Ok(Formatted {
        superblock: sb,
        devs: devs.to_vec(),
    })
}

fn write_member(path: &str, data_offset: u64, slot: &[u8; SLOT_SIZE]) -> io::Result<()> {
    let mut f = OpenOptions::new().write(true).open(path)?;
    let zero = vec![0u8; 1 << 20];
    let mut left = data_offset * SECTOR_SIZE;
    f.seek(SeekFrom::Start(0))?;
    while left > 0 {
        let n = left.min(zero.len() as u64);
        f.write_all(&zero[..n as usize])?;
        left -= n;
    }
    for which in [Which::B, Which::A] {
        f.seek(SeekFrom::Start(which.byte_offset()))?;
        f.write_all(slot)?;
    }
    f.sync_all()
}

/// One member's superblock as `amfctl examine` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Examined {
    /// The device.
    pub device: String,
    /// Slot the superblock came from (`A` or `B`).
    pub slot: &'static str,
    /// Why the other slot lost: `valid` if it holds an older (or the same) superblock.
    pub other_slot: String,
    /// Format version.
    pub version: u32,
    /// Group UUID.
    pub group_uuid: String,
    /// This member's UUID.
    pub member_uuid: String,
    /// Event counter.
    pub events: u64,
    /// Creation time (seconds since the epoch).
    pub ctime: u64,
    /// Last update (seconds since the epoch).
    pub utime: u64,
    /// Level name.
    pub level: &'static str,
    /// RAID10 copies (0 otherwise).
    pub copies: u8,
    /// Layout code.
    pub layout: u8,
    /// Chunk size in sectors.
    pub chunk_sectors: u32,
    /// Number of members.
    pub members: usize,
    /// This member's role.
    pub role: u16,
    /// First sector of the data area.
    pub data_offset: u64,
    /// Sectors of the data area.
    pub data_sectors: u64,
    /// Bitmap region in sectors.
    pub region_sectors: u64,
    /// The member table.
    pub member_table: Vec<ExaminedMember>,
}

/// One entry of the member table.
#[derive(Debug, Clone, Serialize)]
pub struct ExaminedMember {
    /// Role.
    pub role: usize,
    /// `in_sync`, `failed` or `rebuilding`.
    pub state: &'static str,
    /// Rebuild checkpoint (sectors), for `rebuilding`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<u64>,
    /// Member UUID.
    pub uuid: String,
}

fn slot_reason(e: SuperblockError) -> String {
    match e {
        SuperblockError::BadChecksum { stored, computed } => format!(
            "{} (stored {stored:#010x}, computed {computed:#010x})",
            e.message().to_string_lossy()
        ),
        SuperblockError::UnknownVersion(v) => {
            format!("{} ({v})", e.message().to_string_lossy())
        }
        _ => e.message().to_string_lossy().into_owned(),
    }
}

/// Reads and chooses the superblock of one member.
pub fn examine(path: &str) -> Result<Examined, SbError> {
    let (a, b) = read_slots(path)?;
    let chosen = choose::<Crc>(&a, &b).map_err(|err| {
        let detail = match err {
            ChooseError::NoValidSlot { a, b } if !(a == b && a == SuperblockError::BadMagic) => {
                format!(" (slot A: {}; slot B: {})", slot_reason(a), slot_reason(b))
            }
            _ => String::new(),
        };
        SbError::Unreadable {
            path: path.to_string(),
            err,
            detail,
        }
    })?;
    let sb = chosen.superblock;
    let copies = match sb.level {
        Level::Raid10 { copies } => copies,
        _ => 0,
    };
    Ok(Examined {
        device: path.to_string(),
        slot: match chosen.which {
            Which::A => "A",
            Which::B => "B",
        },
        other_slot: chosen
            .other
            .map_or_else(|| "valid".to_string(), slot_reason),
        version: superblock::VERSION,
        group_uuid: format_uuid(&sb.group_uuid),
        member_uuid: format_uuid(&sb.member_uuid()),
        events: sb.events,
        ctime: sb.ctime,
        utime: sb.utime,
        level: level_name(sb.level),
        copies,
        layout: sb.layout,
        chunk_sectors: sb.chunk_sectors,
        members: sb.member_count(),
        role: sb.role,
        data_offset: sb.data_offset,
        data_sectors: sb.data_sectors,
        region_sectors: sb.region_sectors,
        member_table: sb
            .members()
            .iter()
            .enumerate()
            .map(|(role, e)| {
                let (state, checkpoint) = match e.state {
                    MemberState::InSync => ("in_sync", None),
                    MemberState::Failed => ("failed", None),
                    MemberState::Rebuilding { checkpoint } => ("rebuilding", Some(checkpoint)),
                };
                ExaminedMember {
                    role,
                    state,
                    checkpoint,
                    uuid: format_uuid(&e.uuid),
                }
            })
            .collect(),
    })
}

/// `amfctl examine` as text, one `field : value` per line like `mdadm --examine`.
pub fn examine_text(e: &Examined) -> String {
    let mut s = String::new();
    let level = if e.copies != 0 {
        format!("{} ({} copies)", e.level, e.copies)
    } else {
        e.level.to_string()
    };
    let mut line = |k: &str, v: String| {
        let _ = writeln!(s, "{k:>16} : {v}");
    };
    line("Device", e.device.clone());
    line("Format version", e.version.to_string());
    line("Group UUID", e.group_uuid.clone());
    line("Member UUID", e.member_uuid.clone());
    line("Events", e.events.to_string());
    line("Created", e.ctime.to_string());
    line("Updated", e.utime.to_string());
    line("Level", level);
    line("Layout", e.layout.to_string());
    line(
        "Chunk",
        format!(
            "{} sectors ({})",
            e.chunk_sectors,
            human(e.chunk_sectors as u64)
        ),
    );
    line("Members", e.members.to_string());
    line("Role", e.role.to_string());
    line("Data offset", format!("{} sectors", e.data_offset));
    line(
        "Data size",
        format!("{} sectors ({})", e.data_sectors, human(e.data_sectors)),
    );
    line(
        "Bitmap region",
        format!("{} sectors ({})", e.region_sectors, human(e.region_sectors)),
    );
    line("Slot", format!("{} (other slot: {})", e.slot, e.other_slot));
    let _ = writeln!(s, "    Member table :");
    for m in &e.member_table {
        let state = match m.checkpoint {
            Some(c) => format!("{} at {c}", m.state),
            None => m.state.to_string(),
        };
        let me = if m.role == e.role as usize {
            "  <- this device"
        } else {
            ""
        };
        let _ = writeln!(s, "{:>16}   {:<20} {}{me}", m.role, state, m.uuid);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids() {
        let u = parse_uuid("0123456789abcdef0123456789ABCDEF").unwrap();
        assert_eq!(format_uuid(&u), "01234567-89ab-cdef-0123-456789abcdef");
        assert_eq!(parse_uuid(&format_uuid(&u)).unwrap(), u);
        for bad in [
            "",
            "0123",
            "0123456789abcdef0123456789abcdeg",
            "0123-456789abcdef0123456789abcdef",
            "+123456789abcdef0123456789abcdef",
        ] {
            assert!(parse_uuid(bad).is_err(), "{bad}");
        }
        let r = random_uuid().unwrap();
        assert_eq!(r[6] >> 4, 4);
        assert_ne!(r, random_uuid().unwrap());
    }

    #[test]
    fn examine_shows_states_and_the_newer_slot() {
        let dir = std::env::temp_dir().join(format!("amfctl-sb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m1");
        let path = path.to_str().unwrap();
        std::fs::File::create(path)
            .unwrap()
            .set_len(16 << 20)
            .unwrap();
        let uuids = [[1u8; 16], [2; 16], [3; 16]];
        let sb = Superblock::new(&FormatParams {
            group_uuid: [9; 16],
            level: Level::Raid10 { copies: 2 },
            chunk_sectors: 128,
            member_uuids: &uuids,
            data_offset: DATA_OFFSET_DEFAULT,
            data_sectors: 8192,
            region_sectors: 131072,
            ctime: 5,
        })
        .unwrap()
        .for_role(1)
        .unwrap();
        let mut newer = sb.next_round(6).unwrap();
        newer.set_member(
            0,
            amf_core::superblock::MemberEntry {
                state: MemberState::Rebuilding { checkpoint: 512 },
                uuid: [1; 16],
            },
        );
        newer.set_member(
            2,
            amf_core::superblock::MemberEntry {
                state: MemberState::Failed,
                uuid: [3; 16],
            },
        );
        let mut f = OpenOptions::new().write(true).open(path).unwrap();
        for (which, s) in [(Which::A, &sb), (Which::B, &newer)] {
            let mut slot = [0u8; SLOT_SIZE];
            superblock::encode::<Crc>(s, &mut slot).unwrap();
            f.seek(SeekFrom::Start(which.byte_offset())).unwrap();
            f.write_all(&slot).unwrap();
        }
        drop(f);
        let e = examine(path).unwrap();
        assert_eq!((e.slot, e.events, e.role, e.copies), ("B", 2, 1, 2));
        assert_eq!(e.other_slot, "valid");
        let states: Vec<_> = e
            .member_table
            .iter()
            .map(|m| (m.state, m.checkpoint))
            .collect();
        assert_eq!(
            states,
            [
                ("rebuilding", Some(512)),
                ("in_sync", None),
                ("failed", None)
            ]
        );
        let text = examine_text(&e);
        assert!(text.contains("rebuilding at 512"), "{text}");
        assert!(text.contains("raid10 (2 copies)"), "{text}");
        assert!(text.contains("Slot : B (other slot: valid)"), "{text}");
        assert!(holds_superblock(path).unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn levels() {
        assert_eq!(parse_level("raid5", 2).unwrap(), Level::Raid5);
        assert_eq!(
            parse_level("raid10", 3).unwrap(),
            Level::Raid10 { copies: 3 }
        );
        assert_eq!(parse_level("6", 2).unwrap(), Level::Raid6);
        assert_eq!(parse_level("10", 4).unwrap(), Level::Raid10 { copies: 4 });
        let e = parse_level("raid4", 2).unwrap_err().to_string();
        assert_eq!(
            e,
            "unknown RAID level 'raid4': valid levels are raid0 (0, stripe), raid1 (1, mirror), \
             raid5 (5), raid6 (6), raid10 (10)"
        );
    }
}
