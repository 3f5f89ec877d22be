// SPDX-License-Identifier: GPL-2.0
//! The `amf` table line: syntax and every check that needs no kernel.
//!
//! The kernel target parses its constructor arguments here (so the same code is fuzzed and
//! unit-tested in userspace) and then does what only the kernel can: open the devices,
//! compare them and check their sizes. `Documentation/table-syntax.rst` is the user contract
//! this module implements; every [`TableError`] message appears there verbatim.
//!
//! ```text
//! <level> <#params> <chunk_sectors> [<param>...] <#devs> <dev> <offset> [<dev> <offset>]...
//! ```

use core::ffi::CStr;

use super::geometry::{nonzero, Geometry, GeometryError, Level, MAX_MEMBERS};

/// Smallest chunk: one 4 KiB page.
pub const MIN_CHUNK_SECTORS: u32 = 8;
/// Largest chunk: 1 GiB.
pub const MAX_CHUNK_SECTORS: u32 = 1 << 21;

/// Copies of each chunk in raid10 when `raid10_copies` is not given (md's `n2`).
pub const DEFAULT_RAID10_COPIES: u8 = 2;

/// Why a table line was refused. Each maps to one documented message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableError {
    /// Fewer words than the syntax needs.
    NotEnoughArgs,
    /// `<level>` is not a level name.
    UnknownLevel,
    /// `<#params>` not a number, zero, or more than the words that follow.
    BadParamCount,
    /// `<chunk_sectors>` not a decimal number.
    BadChunk,
    /// `<chunk_sectors>` not a power of two.
    ChunkNotPowerOfTwo,
    /// `<chunk_sectors>` outside [`MIN_CHUNK_SECTORS`]..=[`MAX_CHUNK_SECTORS`].
    ChunkOutOfRange,
    /// An optional parameter this version does not know.
    UnknownParam,
    /// The same optional parameter given twice.
    DuplicateParam,
    /// `raid10_copies` with a level other than raid10.
    CopiesNotRaid10,
    /// `raid10_copies` missing its value, not a number, below 2 or above the member count.
    BadCopies,
    /// Fewer members than the level needs (raid1 and raid5: 2, raid6: 4, raid10: its copies).
    TooFewDevices,
    /// `<#devs>` not a number, zero, or above [`MAX_MEMBERS`].
    BadDeviceCount,
    /// Fewer `<dev> <offset>` words than `<#devs>` says.
    WrongDeviceArgs,
    /// Words left over after the last device pair.
    TooManyArgs,
    /// `<offset>` not a decimal sector number.
    BadOffset,
    /// The same device named twice.
    DuplicateDevice,
    /// The target length is not a whole number of full stripes.
    LengthNotStripeMultiple,
    /// A member's data area would end beyond the largest sector number.
    DeviceTooSmall,
}

impl TableError {
    /// The message for `ti->error`, as documented.
    pub fn message(self) -> &'static CStr {
        match self {
            Self::NotEnoughArgs => c"Not enough arguments",
            Self::UnknownLevel => c"Unknown RAID level",
            Self::BadParamCount => c"Invalid number of parameters",
            Self::BadChunk => c"Invalid chunk size",
            Self::ChunkNotPowerOfTwo => c"Chunk size must be a power of two",
            Self::ChunkOutOfRange => c"Chunk size out of range",
            Self::UnknownParam => c"Unknown optional parameter",
            Self::DuplicateParam => c"Duplicate optional parameter",
            Self::CopiesNotRaid10 => c"raid10_copies is only valid for raid10",
            Self::BadCopies => c"Invalid raid10_copies",
            Self::TooFewDevices => c"Too few devices for the RAID level",
            Self::BadDeviceCount => c"Invalid number of devices",
            Self::WrongDeviceArgs => c"Wrong number of device arguments",
            Self::TooManyArgs => c"Too many arguments",
            Self::BadOffset => c"Invalid device offset",
            Self::DuplicateDevice => c"Duplicate device",
            Self::LengthNotStripeMultiple => c"Target length is not a multiple of the full stripe",
            Self::DeviceTooSmall => c"Device too small",
        }
    }
}

/// One member as the table names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct MemberArg<'a> {
    /// Path or `major:minor`.
    pub path: &'a str,
    /// First sector of the member's data area.
    pub offset: u64,
    /// Sectors of the member the target uses from `offset` on.
    pub len: u64,
}

/// A parsed, self-consistent table line.
#[derive(Clone, Copy, Debug)]
pub struct TableSpec<'a> {
    /// RAID level.
    pub level: Level,
    /// Chunk size in sectors (a power of two).
    pub chunk_sectors: u32,
    members: [MemberArg<'a>; MAX_MEMBERS],
    nr_members: usize,
}

impl<'a> TableSpec<'a> {
    /// The members, in member order.
    pub fn members(&self) -> &[MemberArg<'a>] {
        self.members.get(..self.nr_members).unwrap_or(&[])
    }

    /// Level name as written in tables.
    pub fn level_name(&self) -> &'static str {
        level_name(self.level)
    }
}

/// Level name as written in tables.
pub fn level_name(level: Level) -> &'static str {
    match level {
        Level::Raid0 => "raid0",
        Level::Raid1 => "raid1",
        Level::Raid5 => "raid5",
        Level::Raid6 => "raid6",
        Level::Raid10 { .. } => "raid10",
    }
}

/// Parses a strictly decimal unsigned number: digits only, no sign, no overflow.
pub fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.bytes().try_fold(0u64, |acc, c| {
        if !c.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(c - b'0'))
    })
}

fn parse_level(word: &str) -> Result<Level, TableError> {
    match word {
        "raid0" => Ok(Level::Raid0),
        "raid1" => Ok(Level::Raid1),
        "raid10" => Ok(Level::Raid10 {
            copies: DEFAULT_RAID10_COPIES,
        }),
        "raid5" => Ok(Level::Raid5),
        "raid6" => Ok(Level::Raid6),
        _ => Err(TableError::UnknownLevel),
    }
}

fn parse_chunk(word: &str) -> Result<u32, TableError> {
    let v = parse_decimal(word).ok_or(TableError::BadChunk)?;
    if !v.is_power_of_two() {
        return Err(TableError::ChunkNotPowerOfTwo);
    }
    if v < u64::from(MIN_CHUNK_SECTORS) || v > u64::from(MAX_CHUNK_SECTORS) {
        return Err(TableError::ChunkOutOfRange);
    }
    u32::try_from(v).map_err(|_| TableError::ChunkOutOfRange)
}

/// Applies the optional parameters (the words after `<chunk_sectors>`) to `level`.
fn parse_optional(words: &[&str], level: &mut Level) -> Result<(), TableError> {
    let mut copies_seen = false;
    let mut it = words.iter();
    while let Some(&word) = it.next() {
        match word {
            "raid10_copies" => {
                if copies_seen {
                    return Err(TableError::DuplicateParam);
                }
                copies_seen = true;
                let value = it.next().ok_or(TableError::BadCopies)?;
                let Level::Raid10 { copies } = level else {
                    return Err(TableError::CopiesNotRaid10);
                };
                *copies = parse_decimal(value)
                    .filter(|c| (2..=MAX_MEMBERS as u64).contains(c))
                    .ok_or(TableError::BadCopies)? as u8;
            }
            _ => return Err(TableError::UnknownParam),
        }
    }
    Ok(())
}

/// Sectors each member must provide for a target of `target_len` sectors; checks the
/// member count against the level and the length against the level's stripe.
fn member_len(
    level: Level,
    nr_devs: usize,
    chunk: u32,
    target_len: u64,
) -> Result<u64, TableError> {
    let chunk = u64::from(chunk);
    let n = nonzero(nr_devs as u64);
    let (stripe, member_len) = match level {
        Level::Raid0 => (chunk * n.get(), target_len / n),
        Level::Raid1 => (chunk, target_len),
        Level::Raid10 { copies } => {
            // Device chunks needed, spread over the members row by row (md's near layout).
            let rows = (target_len / nonzero(chunk))
                .checked_mul(u64::from(copies))
                .map(|c| c.div_ceil(n.get()))
                .ok_or(TableError::DeviceTooSmall)?;
            (
                chunk,
                rows.checked_mul(chunk).ok_or(TableError::DeviceTooSmall)?,
            )
        }
        Level::Raid5 | Level::Raid6 => {
            // Data chunks per stripe (too few members is caught below): the full stripe is
            // that many chunks, and each member holds one chunk of every stripe.
            let parity = if level == Level::Raid6 { 2 } else { 1 };
            let data = nonzero(n.get().saturating_sub(parity));
            (chunk * data.get(), target_len / data)
        }
    };
    let min = match level {
        Level::Raid1 | Level::Raid5 => 2,
        Level::Raid6 => 4,
        Level::Raid10 { copies } => usize::from(copies),
        _ => 1,
    };
    if nr_devs < min {
        return Err(if matches!(level, Level::Raid10 { .. }) && nr_devs >= 2 {
            TableError::BadCopies
        } else {
            TableError::TooFewDevices
        });
    }
    if target_len == 0 || target_len % nonzero(stripe) != 0 {
        return Err(TableError::LengthNotStripeMultiple);
    }
    // The layout must really hold the target: the core's geometry is the judge.
    match Geometry::new(level, nr_devs, chunk, member_len) {
        Ok(g) if g.logical_sectors() >= target_len => Ok(member_len),
        Ok(_) | Err(GeometryError::Overflow) => Err(TableError::DeviceTooSmall),
        Err(GeometryError::BadCopies) => Err(TableError::BadCopies),
        Err(_) => Err(TableError::TooFewDevices),
    }
}

/// Parses the constructor arguments of a target `target_len` sectors long.
pub fn parse<'a>(args: &[&'a str], target_len: u64) -> Result<TableSpec<'a>, TableError> {
    let word = |i: usize| args.get(i).copied().ok_or(TableError::NotEnoughArgs);

    let level = parse_level(word(0)?)?;

    let nr_params = parse_decimal(word(1)?).ok_or(TableError::BadParamCount)?;
    let after_count = args.len() - 2;
    if nr_params == 0 || nr_params > after_count as u64 {
        return Err(TableError::BadParamCount);
    }
    let nr_params = nr_params as usize;

    let chunk_sectors = parse_chunk(word(2)?)?;
    let mut level = level;
    parse_optional(args.get(3..2 + nr_params).unwrap_or(&[]), &mut level)?;

    let devs_at = 2 + nr_params;
    let nr_devs = parse_decimal(word(devs_at)?).ok_or(TableError::BadDeviceCount)?;
    if nr_devs == 0 || nr_devs > MAX_MEMBERS as u64 {
        return Err(TableError::BadDeviceCount);
    }
    let nr_devs = nr_devs as usize;
    let dev_words = &args[devs_at + 1..];
    if dev_words.len() < 2 * nr_devs {
        return Err(TableError::WrongDeviceArgs);
    }
    if dev_words.len() > 2 * nr_devs {
        return Err(TableError::TooManyArgs);
    }

    let member_len = member_len(level, nr_devs, chunk_sectors, target_len)?;
    let mut members = [MemberArg::default(); MAX_MEMBERS];
    for (i, pair) in dev_words.chunks_exact(2).enumerate() {
        let (path, offset) = (pair[0], pair[1]);
        let offset = parse_decimal(offset).ok_or(TableError::BadOffset)?;
        if offset.checked_add(member_len).is_none() {
            return Err(TableError::DeviceTooSmall);
        }
        if members[..i].iter().any(|m| m.path == path) {
            return Err(TableError::DuplicateDevice);
        }
        if let Some(slot) = members.get_mut(i) {
            *slot = MemberArg {
                path,
                offset,
                len: member_len,
            };
        }
    }

    Ok(TableSpec {
        level,
        chunk_sectors,
        members,
        nr_members: nr_devs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> std::vec::Vec<&str> {
        s.split_whitespace().collect()
    }

    fn err(s: &str, len: u64) -> TableError {
        parse(&words(s), len).expect_err("table should be refused")
    }

    #[test]
    fn good_table_parses() {
        let w = words("raid0 1 128 3 /dev/a 0 /dev/b 2048 8:16 7");
        let t = parse(&w, 3 * 128 * 10).unwrap();
        assert_eq!(t.level, Level::Raid0);
        assert_eq!(t.chunk_sectors, 128);
        assert_eq!(t.members().len(), 3);
        assert_eq!(
            t.members()[1],
            MemberArg {
                path: "/dev/b",
                offset: 2048,
                len: 1280
            }
        );
        assert_eq!(t.members()[2].path, "8:16");
    }

    #[test]
    fn every_documented_error() {
        use TableError::*;
        let len = 4 * 128;
        assert_eq!(err("", len), NotEnoughArgs);
        assert_eq!(err("raid0", len), NotEnoughArgs);
        assert_eq!(err("raid9 1 128 1 /dev/a 0", len), UnknownLevel);
        assert_eq!(err("raid0 x 128 1 /dev/a 0", len), BadParamCount);
        assert_eq!(err("raid0 0 128 1 /dev/a 0", len), BadParamCount);
        assert_eq!(err("raid0 9 128 1 /dev/a 0", len), BadParamCount);
        assert_eq!(err("raid0 1 12k 1 /dev/a 0", len), BadChunk);
        assert_eq!(err("raid0 1 -8 1 /dev/a 0", len), BadChunk);
        assert_eq!(err("raid0 1 24 1 /dev/a 0", len), ChunkNotPowerOfTwo);
        assert_eq!(err("raid0 1 0 1 /dev/a 0", len), ChunkNotPowerOfTwo);
        assert_eq!(err("raid0 1 4 1 /dev/a 0", len), ChunkOutOfRange);
        assert_eq!(err("raid0 1 4194304 1 /dev/a 0", len), ChunkOutOfRange);
        assert_eq!(err("raid0 2 128 sync 1 /dev/a 0", len), UnknownParam);
        assert_eq!(err("raid0 1 128", len), NotEnoughArgs);
        assert_eq!(err("raid0 1 128 0", len), BadDeviceCount);
        assert_eq!(err("raid0 1 128 65 /dev/a 0", len), BadDeviceCount);
        assert_eq!(err("raid0 1 128 two /dev/a 0", len), BadDeviceCount);
        assert_eq!(err("raid0 1 128 2 /dev/a 0 /dev/b", len), WrongDeviceArgs);
        assert_eq!(err("raid0 1 128 1 /dev/a 0 junk", len), TooManyArgs);
        assert_eq!(err("raid0 1 128 1 /dev/a 0x10", len), BadOffset);
        assert_eq!(err("raid0 1 128 2 /dev/a 0 /dev/a 8", len), DuplicateDevice);
        assert_eq!(
            err("raid0 1 128 3 /dev/a 0 /dev/b 0 /dev/c 0", len),
            LengthNotStripeMultiple
        );
        assert_eq!(err("raid0 1 128 1 /dev/a 0", 0), LengthNotStripeMultiple);
        assert_eq!(
            err("raid0 1 128 1 /dev/a 18446744073709551615", len),
            DeviceTooSmall
        );
    }

    #[test]
    fn mirrored_levels() {
        use TableError::*;
        let w = words("raid1 1 128 3 /dev/a 0 /dev/b 0 /dev/c 8");
        let t = parse(&w, 128 * 10).unwrap();
        assert_eq!(t.level, Level::Raid1);
        assert!(t.members().iter().all(|m| m.len == 1280));

        let w = words("raid10 1 128 4 /dev/a 0 /dev/b 0 /dev/c 0 /dev/d 0");
        let t = parse(&w, 128 * 10).unwrap();
        assert_eq!(t.level, Level::Raid10 { copies: 2 });
        // 10 chunks x 2 copies over 4 members: 5 rows.
        assert_eq!(t.members()[0].len, 5 * 128);

        let w = words("raid10 3 128 raid10_copies 3 3 /dev/a 0 /dev/b 0 /dev/c 0");
        let t = parse(&w, 128 * 7).unwrap();
        assert_eq!(t.level, Level::Raid10 { copies: 3 });
        assert_eq!(t.members()[0].len, 7 * 128);

        // 3 members, 2 copies, 3 chunks: 6 device chunks in 2 rows.
        let w = words("raid10 1 8 3 /dev/a 0 /dev/b 0 /dev/c 0");
        assert_eq!(parse(&w, 24).unwrap().members()[0].len, 16);

        let len = 128 * 4;
        assert_eq!(err("raid1 1 128 1 /dev/a 0", len), TooFewDevices);
        assert_eq!(
            err("raid1 1 128 2 /dev/a 0 /dev/b 0", 100),
            LengthNotStripeMultiple
        );
        assert_eq!(err("raid10 1 128 1 /dev/a 0", len), TooFewDevices);
        assert_eq!(
            err("raid10 3 128 raid10_copies 3 2 /dev/a 0 /dev/b 0", len),
            BadCopies
        );
        assert_eq!(
            err("raid10 3 128 raid10_copies 1 2 /dev/a 0 /dev/b 0", len),
            BadCopies
        );
        assert_eq!(
            err("raid10 3 128 raid10_copies x 2 /dev/a 0 /dev/b 0", len),
            BadCopies
        );
        assert_eq!(
            err("raid10 2 128 raid10_copies 2 /dev/a 0 /dev/b 0", len),
            BadCopies
        );
        assert_eq!(
            err(
                "raid10 5 128 raid10_copies 2 raid10_copies 2 2 /dev/a 0 /dev/b 0",
                len
            ),
            DuplicateParam
        );
        assert_eq!(
            err("raid1 3 128 raid10_copies 2 2 /dev/a 0 /dev/b 0", len),
            CopiesNotRaid10
        );
    }

    #[test]
    fn parity_levels() {
        use TableError::*;
        // raid5 over 4 members: 3 data chunks per stripe.
        let w = words("raid5 1 128 4 /dev/a 0 /dev/b 0 /dev/c 0 /dev/d 2048");
        let t = parse(&w, 3 * 128 * 10).unwrap();
        assert_eq!(t.level, Level::Raid5);
        assert_eq!(t.level_name(), "raid5");
        assert_eq!(t.members().len(), 4);
        assert!(t.members().iter().all(|m| m.len == 128 * 10));
        assert_eq!(t.members()[3].offset, 2048);

        // raid6 over 5 members: 3 data chunks per stripe.
        let w = words("raid6 1 64 5 /dev/a 0 /dev/b 0 /dev/c 0 /dev/d 0 /dev/e 0");
        let t = parse(&w, 3 * 64 * 7).unwrap();
        assert_eq!(t.level, Level::Raid6);
        assert_eq!(t.level_name(), "raid6");
        assert!(t.members().iter().all(|m| m.len == 64 * 7));

        // The examples of table-syntax.rst: 256 MiB per member.
        let w = words("raid5 1 128 4 /dev/vdb 0 /dev/vdc 0 /dev/vdd 0 /dev/vde 0");
        assert_eq!(parse(&w, 1_572_864).unwrap().members()[0].len, 524_288);
        let w = words("raid6 1 128 5 /dev/vdb 0 /dev/vdc 0 /dev/vdd 0 /dev/vde 0 /dev/vdf 0");
        assert_eq!(parse(&w, 1_572_864).unwrap().members()[0].len, 524_288);

        // The smallest groups: raid5 over 2 members (1 data chunk), raid6 over 4 (2).
        let w = words("raid5 1 8 2 /dev/a 0 /dev/b 0");
        assert_eq!(parse(&w, 80).unwrap().members()[0].len, 80);
        let w = words("raid6 1 8 4 /dev/a 0 /dev/b 0 /dev/c 0 /dev/d 0");
        assert_eq!(parse(&w, 80).unwrap().members()[0].len, 40);

        let len = 128 * 6;
        assert_eq!(err("raid5 1 128 1 /dev/a 0", len), TooFewDevices);
        assert_eq!(
            err("raid6 1 128 3 /dev/a 0 /dev/b 0 /dev/c 0", len),
            TooFewDevices
        );
        assert_eq!(err("raid6 1 128 1 /dev/a 0", len), TooFewDevices);
        // The full stripe of raid5 over 3 members is 2 chunks: 3 chunks do not fit.
        assert_eq!(
            err("raid5 1 128 3 /dev/a 0 /dev/b 0 /dev/c 0", 3 * 128),
            LengthNotStripeMultiple
        );
        // A multiple of chunk * #devs is not enough either (4 chunks over 3 data chunks).
        assert_eq!(
            err("raid5 1 128 4 /dev/a 0 /dev/b 0 /dev/c 0 /dev/d 0", 4 * 128),
            LengthNotStripeMultiple
        );
        assert_eq!(
            err(
                "raid6 1 128 5 /dev/a 0 /dev/b 0 /dev/c 0 /dev/d 0 /dev/e 0",
                1024
            ),
            LengthNotStripeMultiple
        );
        assert_eq!(
            err(
                "raid5 3 128 raid10_copies 2 3 /dev/a 0 /dev/b 0 /dev/c 0",
                len
            ),
            CopiesNotRaid10
        );
        assert_eq!(
            err(
                "raid6 1 128 4 /dev/a 0 /dev/b 0 /dev/c 0 /dev/d 18446744073709551615",
                256
            ),
            DeviceTooSmall
        );
    }

    #[test]
    fn parity_member_len_matches_geometry() {
        // Whatever the member count, the geometry built from the member length holds exactly
        // the target, and too few members map to TooFewDevices, never to another error.
        for n in 1..=8usize {
            for (level, parity, min) in [(Level::Raid5, 1, 2), (Level::Raid6, 2, 4)] {
                let data = n.saturating_sub(parity).max(1) as u64;
                let len = 8 * data * 5;
                match member_len(level, n, 8, len) {
                    Ok(m) => {
                        assert!(n >= min);
                        assert_eq!(m, 8 * 5);
                        let g = Geometry::new(level, n, 8, m).unwrap();
                        assert_eq!(g.logical_sectors(), len);
                        assert_eq!(g.data_chunks() as u64, data);
                    }
                    Err(e) => {
                        assert!(n < min, "{level:?} {n}: {e:?}");
                        assert_eq!(e, TableError::TooFewDevices);
                    }
                }
            }
        }
    }

    #[test]
    fn messages_are_distinct_and_documented() {
        let doc = include_str!("../../../Documentation/table-syntax.rst");
        let all = [
            TableError::NotEnoughArgs,
            TableError::UnknownLevel,
            TableError::BadParamCount,
            TableError::BadChunk,
            TableError::ChunkNotPowerOfTwo,
            TableError::ChunkOutOfRange,
            TableError::UnknownParam,
            TableError::DuplicateParam,
            TableError::CopiesNotRaid10,
            TableError::BadCopies,
            TableError::TooFewDevices,
            TableError::BadDeviceCount,
            TableError::WrongDeviceArgs,
            TableError::TooManyArgs,
            TableError::BadOffset,
            TableError::DuplicateDevice,
            TableError::LengthNotStripeMultiple,
            TableError::DeviceTooSmall,
        ];
        for (i, a) in all.iter().enumerate() {
            let m = a.message().to_str().unwrap();
            assert!(doc.contains(&std::format!("``{m}``")), "undocumented: {m}");
            for b in &all[i + 1..] {
                assert_ne!(a.message(), b.message());
            }
        }
    }

    #[test]
    fn decimal_parsing_is_strict() {
        assert_eq!(parse_decimal("0"), Some(0));
        assert_eq!(parse_decimal("18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_decimal("18446744073709551616"), None);
        for bad in ["", "+1", "-1", "1 ", "0x1", "1e3", "١"] {
            assert_eq!(parse_decimal(bad), None, "{bad:?}");
        }
    }
}
