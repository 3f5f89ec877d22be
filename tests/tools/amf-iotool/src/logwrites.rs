// SPDX-License-Identifier: GPL-2.0
//! The log of the kernel's dm-log-writes target (drivers/md/dm-log-writes.c), read back:
//! what a member device was asked to make durable, in the order that the target saw it.
//! dm-log-writes logs a write only once a flush or FUA covers it (writes that a flush has
//! not covered yet are what a volatile cache may lose), so the log says in which order
//! data and the marks that call it clean reached stable media.
//!
//! Format (version 1): a superblock at sector 0 (magic, version, entry count, sector size),
//! then entries from sector 1 on: one sector of header (sector, sector count, flags, data
//! length), followed by the written data for a write that carries data.
//!
//!   logwrites --log L [--from SECTOR --to SECTOR]
//!           prints one line per entry: `<index> <sector> <sectors> <flags>` (flags: F
//!           flush, U FUA, D discard, M mark, - none), only writes that touch
//!           [FROM, TO) if given (flush and mark entries always).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use crate::{Args, Fail, Res};

const MAGIC: u64 = 0x006A_7366_7773_6872;
const FLUSH: u64 = 1;
const FUA: u64 = 2;
const DISCARD: u64 = 4;
const MARK: u64 = 8;

fn le64(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(v)
}

/// `logwrites --log L [--from S --to S]`.
pub fn cmd_logwrites(a: &Args) -> Res<u64> {
    let path = a.str("log")?;
    let from = a.num_or("from", 0)?;
    let to = a.num_or("to", u64::MAX)?;
    let mut f = File::open(path).map_err(|e| Fail(format!("{path}: {e}")))?;
    let mut sec = [0u8; 512];
    f.read_exact(&mut sec)
        .map_err(|e| Fail(format!("{path}: superblock: {e}")))?;
    if le64(&sec, 0) != MAGIC || le64(&sec, 8) != 1 {
        return Err(Fail(format!("{path}: not a dm-log-writes log (version 1)")));
    }
    let entries = le64(&sec, 16);
    let sectorsize = u32::from_le_bytes([sec[24], sec[25], sec[26], sec[27]]);
    if sectorsize != 512 {
        return Err(Fail(format!("{path}: sector size {sectorsize}, want 512")));
    }
    let mut at = 1u64;
    for i in 0..entries {
        f.seek(SeekFrom::Start(at * 512))
            .and_then(|_| f.read_exact(&mut sec))
            .map_err(|e| Fail(format!("{path}: entry {i} at sector {at}: {e}")))?;
        let (sector, sectors, flags) = (le64(&sec, 0), le64(&sec, 8), le64(&sec, 16));
        // Data follows the header of a write that carries data (not of a discard, whose
        // count is the discarded range, nor of a mark, whose text is in the header).
        let data = if flags & (DISCARD | MARK) != 0 {
            0
        } else {
            sectors
        };
        at = at
            .checked_add(1 + data)
            .ok_or_else(|| Fail(format!("{path}: entry {i}: bad size")))?;
        let always = flags & (FLUSH | MARK) != 0;
        let touches = sectors > 0 && sector < to && sector.saturating_add(sectors) > from;
        if !always && !touches {
            continue;
        }
        let mut fl = String::new();
        for (bit, c) in [(FLUSH, 'F'), (FUA, 'U'), (DISCARD, 'D'), (MARK, 'M')] {
            if flags & bit != 0 {
                fl.push(c);
            }
        }
        if fl.is_empty() {
            fl.push('-');
        }
        println!("{i} {sector} {sectors} {fl}");
    }
    Ok(0)
}
