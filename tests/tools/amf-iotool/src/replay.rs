// SPDX-License-Identifier: GPL-2.0
//! Replaying a dm-log-writes log (the xfstests generic/455 and generic/482 method) and the
//! phased workload of the `logreplay` suite.
//!
//! The log (drivers/md/dm-log-writes.c, version 1) is input: every field is checked before
//! it is used (entry count, positions and sizes against the log's and the target's size,
//! with checked arithmetic), and a bad entry stops the replay with exit 2.
//!
//!   replay --log L --points
//!           the replay points: one line `<index> <flags> [<mark>|<plain>]` for every entry
//!           that carries a flush (F, with the number of plain writes logged since the
//!           previous flush), FUA (U) or mark (M, with its text), then `entries <n>`.
//!   replay --log L --dev D --to N [--from A] [--drop-seed S --drop-from E]
//!           writes the data of entries A..N (index A included, N not; default A = 0) onto D
//!           at their sectors (a discard as zeroes). With --drop-seed, every plain write
//!           (neither flush nor FUA) from index E on is dropped when the seeded coin says so:
//!           the writes a volatile cache may lose before the next flush.
//!   phase-write --dev D --seed S --phase P --writes N [--maxspan B] [--dsync-every K]
//!           [--fsync 1]
//!           phase P (>= 2) of the workload: N writes of 1..=B blocks (4 KiB) at seeded
//!           positions, every sector the pattern (S, its lba, generation P), plain O_DIRECT;
//!           with --dsync-every K a seeded one in K O_DSYNC. --fsync 1: fdatasync at the
//!           end (a flush). Phase 1 is the whole volume written with `write --gen 1`.
//!           O_DSYNC writes and a dm-log-writes replay do not mix on a parity RAID: the
//!           target writes a FUA bio's data and parity with FUA, which dm-log-writes logs at
//!           once, while an earlier plain write of the same parity block waits for the next
//!           flush and is logged after it, so the replay puts the older parity last (a disk
//!           keeps the newer). The suite uses none.
//!   phase-check --dev D --seed S --phases K --acked A --writes N [--maxspan B]
//!           [--dsync-every K]
//!           after a replay: phases 1..=A were acknowledged (their end mark is in the
//!           replayed log), A+1..=K may have reached the disk in part. Every sector must hold
//!           the generation of the last acknowledged phase that wrote its block, or that of
//!           a later phase that wrote it. Prints `phase-check: <blocks> blocks, <bad> bad`;
//!           exit 1 when a block is bad.

use super::*;
use std::io::Read;

const LW_MAGIC: u64 = 0x006A_7366_7773_6872;
pub(crate) const FLUSH: u64 = 1;
pub(crate) const FUA: u64 = 2;
pub(crate) const DISCARD: u64 = 4;
pub(crate) const MARK: u64 = 8;
/// REQ_META (LOG_METADATA_FLAG): informational.
pub(crate) const META: u64 = 16;
/// Bytes of an entry header before a mark's text.
const HDR: usize = 32;
/// Sectors of a 4 KiB block.
const BLK: u64 = 8;

/// One entry of the log: where its data sits in the log (`data_at`, sectors).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub index: u64,
    pub sector: u64,
    pub sectors: u64,
    pub flags: u64,
    pub data_at: u64,
    pub mark: String,
}

impl Entry {
    /// Sectors of data that follow the header in the log.
    fn data(&self) -> u64 {
        if self.flags & (DISCARD | MARK) != 0 {
            0
        } else {
            self.sectors
        }
    }
    /// A write that neither a flush nor FUA made durable by itself.
    pub(crate) fn plain_write(&self) -> bool {
        self.flags & (FLUSH | FUA | MARK | DISCARD) == 0 && self.sectors > 0
    }
}

/// The superblock: the entry count (checked against the log's size: every entry takes at
/// least one sector after the superblock).
pub(crate) fn parse_super(sec: &[u8], log_sectors: u64) -> Result<u64, String> {
    if sec.len() < 32 {
        return Err("short superblock".into());
    }
    if u64_at(sec, 0) != LW_MAGIC || u64_at(sec, 8) != 1 {
        return Err("not a dm-log-writes log (version 1)".into());
    }
    let entries = u64_at(sec, 16);
    let ss = u32::from_le_bytes([sec[24], sec[25], sec[26], sec[27]]);
    if ss != 512 {
        return Err(format!("sector size {ss}, want 512"));
    }
    if entries >= log_sectors {
        return Err(format!(
            "{entries} entries do not fit a log of {log_sectors} sectors"
        ));
    }
    Ok(entries)
}

/// Entry `index` from its header sector, which sits at log sector `at`; returns it and the
/// log sector of the next header.
pub(crate) fn parse_entry(
    sec: &[u8],
    index: u64,
    at: u64,
    log_sectors: u64,
) -> Result<(Entry, u64), String> {
    if sec.len() < SECTOR {
        return Err("short entry header".into());
    }
    let (sector, sectors, flags, data_len) = (
        u64_at(sec, 0),
        u64_at(sec, 8),
        u64_at(sec, 16),
        u64_at(sec, 24),
    );
    let bad = |what: &str| format!("entry {index} at log sector {at}: {what}");
    if flags & !(FLUSH | FUA | DISCARD | MARK | META) != 0 {
        return Err(bad(&format!("unknown flags {flags:#x}")));
    }
    if sector.checked_add(sectors).is_none() {
        return Err(bad("sector + count overflows"));
    }
    let mut mark = String::new();
    if flags & MARK != 0 {
        let n = usize::try_from(data_len)
            .ok()
            .filter(|n| *n <= SECTOR - HDR)
            .ok_or_else(|| bad(&format!("mark of {data_len} bytes")))?;
        mark = String::from_utf8_lossy(&sec[HDR..HDR + n]).into_owned();
    }
    let data_at = at.checked_add(1).ok_or_else(|| bad("position overflows"))?;
    let e = Entry {
        index,
        sector,
        sectors,
        flags,
        data_at,
        mark,
    };
    let next = data_at
        .checked_add(e.data())
        .ok_or_else(|| bad("size overflows"))?;
    if next > log_sectors {
        return Err(bad(&format!(
            "{} sectors of data beyond the log's end ({log_sectors} sectors)",
            e.data()
        )));
    }
    Ok((e, next))
}

/// Every entry of the log at `path` (headers only).
fn entries(path: &str) -> Res<(File, Vec<Entry>)> {
    let mut f = File::open(path).map_err(|e| Fail(format!("{path}: {e}")))?;
    let size = f
        .seek(SeekFrom::End(0))
        .map_err(|e| Fail(format!("size of {path}: {e}")))?;
    let log_sectors = size / SECTOR_U64;
    let mut sec = [0u8; SECTOR];
    f.seek(SeekFrom::Start(0))
        .and_then(|_| f.read_exact(&mut sec))
        .map_err(|e| Fail(format!("{path}: superblock: {e}")))?;
    let n = parse_super(&sec, log_sectors).map_err(|e| Fail(format!("{path}: {e}")))?;
    let mut out = Vec::new();
    let mut at = 1u64;
    for i in 0..n {
        let off = at
            .checked_mul(SECTOR_U64)
            .ok_or_else(|| Fail(format!("{path}: entry {i}: position overflows")))?;
        f.read_exact_at(&mut sec, off)
            .map_err(|e| Fail(format!("{path}: entry {i} at sector {at}: {e}")))?;
        let (e, next) =
            parse_entry(&sec, i, at, log_sectors).map_err(|e| Fail(format!("{path}: {e}")))?;
        out.push(e);
        at = next;
    }
    Ok((f, out))
}

fn flag_text(flags: u64) -> String {
    let mut s = String::new();
    for (bit, c) in [(FLUSH, 'F'), (FUA, 'U'), (DISCARD, 'D'), (MARK, 'M')] {
        if flags & bit != 0 {
            s.push(c);
        }
    }
    if s.is_empty() {
        s.push('-');
    }
    s
}

/// The seeded coin of the sub-points: drop entry `index`?
pub(crate) fn dropped(seed: u64, index: u64) -> bool {
    let mut s = seed ^ index.wrapping_mul(0xD6E8_FEB8_6659_FD93);
    splitmix(&mut s) & 1 == 1
}

/// `replay`.
pub(crate) fn cmd_replay(a: &Args) -> Res<u64> {
    let path = a.str("log")?;
    let (f, es) = entries(path)?;
    if a.opt("points").is_some() {
        // Plain writes logged since the previous flush: a flush entry shows how many it
        // carries (dm-log-writes logs them just before it).
        let mut plain = 0u64;
        for e in &es {
            if e.plain_write() {
                plain += 1;
            }
            if e.flags & MARK != 0 {
                println!("{} {} {}", e.index, flag_text(e.flags), e.mark);
            } else if e.flags & FLUSH != 0 {
                println!("{} {} {plain}", e.index, flag_text(e.flags));
                plain = 0;
            } else if e.flags & FUA != 0 {
                println!("{} {}", e.index, flag_text(e.flags));
            }
        }
        println!("entries {}", es.len());
        return Ok(0);
    }
    let dev = Dev::open(a.str("dev")?)?;
    let from = a.num_or("from", 0)?;
    let to = a.num("to")?;
    if from > to || to > es.len() as u64 {
        fail!("--from {from} --to {to}: want from <= to <= {}", es.len());
    }
    let drop_seed = a.opt("drop-seed").map(|_| a.num("drop-seed")).transpose()?;
    let drop_from = a.num_or("drop-from", 0)?;
    let mut buf = ABuf::new(MAX_IO as usize * SECTOR);
    let (mut applied, mut dropped_n, mut sectors) = (0u64, 0u64, 0u64);
    for e in &es[from as usize..to as usize] {
        if e.flags & MARK != 0 || e.sectors == 0 {
            continue;
        }
        let end = e.sector.saturating_add(e.sectors);
        if end > dev.sectors {
            fail!(
                "entry {}: sectors {}+{} beyond {} ({} sectors)",
                e.index,
                e.sector,
                e.sectors,
                dev.path,
                dev.sectors
            );
        }
        if e.plain_write() && e.index >= drop_from && drop_seed.is_some_and(|s| dropped(s, e.index))
        {
            dropped_n += 1;
            continue;
        }
        let mut done = 0u64;
        while done < e.sectors {
            let n = (e.sectors - done).min(MAX_IO);
            let b = buf.get(n as usize * SECTOR);
            if e.flags & DISCARD != 0 {
                b.fill(0);
            } else {
                // Bounds: parse_entry checked data_at + sectors <= the log's size.
                f.read_exact_at(b, (e.data_at + done) * SECTOR_U64)
                    .map_err(|x| Fail(format!("{path}: data of entry {}: {x}", e.index)))?;
            }
            dev.write(e.sector + done, b)?;
            done += n;
        }
        applied += 1;
        sectors += e.sectors;
    }
    dev.sync()?;
    println!(
        "replay: entries {from}..{to}: {applied} writes applied ({sectors} sectors), {dropped_n} dropped"
    );
    Ok(0)
}

// ---------------------------------------------------------------- the phased workload

/// The writes of phase `phase` (>= 2): (first block, blocks, O_DSYNC).
pub(crate) fn phase_writes(
    seed: u64,
    phase: u64,
    writes: u64,
    blocks: u64,
    maxspan: u64,
    dsync_every: u64,
) -> Vec<(u64, u64, bool)> {
    let mut s = seed ^ phase.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x4C06_5EA1;
    let maxspan = maxspan.clamp(1, blocks.max(1));
    (0..writes)
        .map(|_| {
            let nb = 1 + splitmix(&mut s) % maxspan;
            let b0 = splitmix(&mut s) % (blocks - nb + 1);
            let dsync = dsync_every > 0 && splitmix(&mut s) % dsync_every == 0;
            (b0, nb, dsync)
        })
        .collect()
}

struct PhaseArgs {
    seed: u64,
    writes: u64,
    maxspan: u64,
    dsync_every: u64,
}

fn phase_args(a: &Args) -> Res<PhaseArgs> {
    let maxspan = a.num_or("maxspan", 32)?;
    if maxspan == 0 || maxspan > MAX_IO / BLK {
        fail!("--maxspan {maxspan}: want 1..={}", MAX_IO / BLK);
    }
    Ok(PhaseArgs {
        seed: a.num("seed")?,
        writes: a.num("writes")?,
        maxspan,
        dsync_every: a.num_or("dsync-every", 0)?,
    })
}

/// `phase-write`.
pub(crate) fn cmd_phase_write(a: &Args) -> Res<u64> {
    let path = a.str("dev")?;
    let dev = Dev::open(path)?;
    let dsync = Dev::open_with(path, crate::crash::O_DSYNC)?;
    let p = phase_args(a)?;
    let phase = a.num("phase")?;
    if phase < 2 {
        fail!("--phase {phase}: phase 1 is the whole volume (write --gen 1)");
    }
    let blocks = dev.sectors / BLK;
    if blocks == 0 {
        fail!("{path}: smaller than a block");
    }
    let mut buf = ABuf::new((p.maxspan * BLK) as usize * SECTOR);
    let (mut nd, mut sectors) = (0u64, 0u64);
    for (b0, nb, ds) in phase_writes(p.seed, phase, p.writes, blocks, p.maxspan, p.dsync_every) {
        let lba = b0 * BLK;
        let descs: Vec<Desc> = (lba..lba + nb * BLK)
            .map(|l| Desc::logical(l, phase))
            .collect();
        write_descs(
            if ds { &dsync } else { &dev },
            lba,
            &descs,
            p.seed,
            &mut buf,
        )?;
        nd += u64::from(ds);
        sectors += nb * BLK;
    }
    if a.num_or("fsync", 0)? == 1 {
        dev.sync()?;
    }
    println!(
        "# phase {phase}: {} writes ({nd} O_DSYNC), {sectors} sectors on {path}",
        p.writes
    );
    Ok(0)
}

/// The generations block `b` may hold after a replay: the last acknowledged phase's that
/// wrote it (phase 1 wrote every block), then the later phases' that wrote it.
pub(crate) fn allowed_gens(plans: &[Vec<(u64, u64, bool)>], acked: u64, b: u64) -> (u64, Vec<u64>) {
    let mut last = 1u64;
    let mut later = Vec::new();
    for (i, ws) in plans.iter().enumerate() {
        let phase = i as u64 + 2;
        if ws.iter().any(|&(b0, nb, _)| b >= b0 && b < b0 + nb) {
            if phase <= acked {
                last = phase;
            } else {
                later.push(phase);
            }
        }
    }
    (last, later)
}

/// `phase-check`.
pub(crate) fn cmd_phase_check(a: &Args) -> Res<u64> {
    let path = a.str("dev")?;
    let dev = Dev::open(path)?;
    let p = phase_args(a)?;
    let (phases, acked) = (a.num("phases")?, a.num("acked")?);
    if acked > phases || phases > 1 << 20 {
        fail!("--acked {acked} --phases {phases}: want acked <= phases <= 2^20");
    }
    let blocks = dev.sectors / BLK;
    let plans: Vec<_> = (2..=phases)
        .map(|ph| phase_writes(p.seed, ph, p.writes, blocks, p.maxspan, p.dsync_every))
        .collect();
    let mut buf = ABuf::new(BLK as usize * SECTOR);
    let (mut bad, mut shown) = (0u64, 0u64);
    for b in 0..blocks {
        let (last, later) = allowed_gens(&plans, acked, b);
        let blk = buf.get(BLK as usize * SECTOR);
        dev.read(b * BLK, blk)?;
        let mut why = None;
        for (i, s) in blk.chunks_exact(SECTOR).enumerate() {
            let lba = b * BLK + i as u64;
            match any_sector(s, lba, &[p.seed], phases.max(1)) {
                Ok((_, g)) if g == last || later.contains(&g) => {}
                Ok((_, g)) => {
                    why = Some(format!("sector {lba}: generation {g}"));
                    break;
                }
                Err(e) => {
                    why = Some(format!("sector {lba}: {e}"));
                    break;
                }
            }
        }
        if let Some(w) = why {
            bad += 1;
            if shown < SHOW_MAX {
                shown += 1;
                println!(
                    "LOST block {b}: {w}; want generation {last} (acked){}",
                    if later.is_empty() {
                        String::new()
                    } else {
                        format!(" or one of {later:?}")
                    }
                );
            }
        }
    }
    println!(
        "phase-check: {blocks} blocks, {bad} bad (phases 1..={acked} of {phases} acknowledged)"
    );
    Ok(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sb(entries: u64, ss: u32) -> [u8; SECTOR] {
        let mut s = [0u8; SECTOR];
        s[0..8].copy_from_slice(&LW_MAGIC.to_le_bytes());
        s[8..16].copy_from_slice(&1u64.to_le_bytes());
        s[16..24].copy_from_slice(&entries.to_le_bytes());
        s[24..28].copy_from_slice(&ss.to_le_bytes());
        s
    }

    fn hdr(sector: u64, n: u64, flags: u64, len: u64, text: &[u8]) -> [u8; SECTOR] {
        let mut s = [0u8; SECTOR];
        for (i, v) in [sector, n, flags, len].into_iter().enumerate() {
            s[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        s[HDR..HDR + text.len()].copy_from_slice(text);
        s
    }

    #[test]
    fn superblock_checks() {
        assert_eq!(parse_super(&sb(3, 512), 100), Ok(3));
        assert!(parse_super(&sb(3, 4096), 100).is_err());
        assert!(parse_super(&sb(100, 512), 100).is_err());
        assert!(parse_super(&sb(u64::MAX, 512), 100).is_err());
        let mut s = sb(1, 512);
        s[0] ^= 1;
        assert!(parse_super(&s, 100).is_err());
        assert!(parse_super(&s[..16], 100).is_err());
    }

    #[test]
    fn entries_parse_and_bound() {
        // A write of 8 sectors at 100: data follows the header.
        let (e, next) = parse_entry(&hdr(100, 8, 0, 4096, b""), 0, 1, 100).unwrap();
        assert_eq!((e.data_at, next), (2, 10));
        assert!(e.plain_write());
        // FUA and flush writes are not plain; a flush without data takes one sector.
        let (e, next) = parse_entry(&hdr(100, 8, FUA, 4096, b""), 1, 10, 100).unwrap();
        assert!(!e.plain_write());
        assert_eq!(next, 19);
        let (e, next) = parse_entry(&hdr(0, 0, FLUSH, 0, b""), 2, 19, 100).unwrap();
        assert_eq!((e.flags, next), (FLUSH, 20));
        // A mark: text in the header, no data.
        let (e, next) = parse_entry(&hdr(0, 0, MARK, 4, b"ack2"), 3, 20, 100).unwrap();
        assert_eq!((e.mark.as_str(), next), ("ack2", 21));
        // A discard's count is its range, not data in the log.
        let (_, next) = parse_entry(&hdr(0, 1 << 40, DISCARD, 0, b""), 4, 21, 100).unwrap();
        assert_eq!(next, 22);
        // Data beyond the log, overflowing positions and sizes, unknown flags, long marks.
        assert!(parse_entry(&hdr(0, 8, 0, 0, b""), 0, 95, 100).is_err());
        assert!(parse_entry(&hdr(0, u64::MAX, 0, 0, b""), 0, 1, u64::MAX).is_err());
        assert!(parse_entry(&hdr(u64::MAX, 2, 0, 0, b""), 0, 1, 100).is_err());
        assert!(parse_entry(&hdr(0, 0, 0, 0, b""), 0, u64::MAX, u64::MAX).is_err());
        assert!(parse_entry(&hdr(0, 0, 32, 0, b""), 0, 1, 100).is_err());
        // REQ_META writes (ext4's) carry LOG_METADATA_FLAG.
        let (e, _) = parse_entry(&hdr(8, 8, META | FUA | FLUSH, 4096, b""), 0, 1, 100).unwrap();
        assert!(!e.plain_write());
        assert!(parse_entry(&hdr(8, 8, META, 4096, b""), 0, 1, 100)
            .unwrap()
            .0
            .plain_write());
        assert!(parse_entry(&hdr(0, 0, MARK, 481, b""), 0, 1, 100).is_err());
        assert!(parse_entry(&hdr(0, 0, MARK, u64::MAX, b""), 0, 1, 100).is_err());
        assert!(parse_entry(&[0u8; 100], 0, 1, 100).is_err());
    }

    #[test]
    fn drop_coin_is_seeded() {
        let a: Vec<bool> = (0..64).map(|i| dropped(7, i)).collect();
        let b: Vec<bool> = (0..64).map(|i| dropped(7, i)).collect();
        let c: Vec<bool> = (0..64).map(|i| dropped(8, i)).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let n = a.iter().filter(|x| **x).count();
        assert!(n > 16 && n < 48, "{n} of 64 dropped");
    }

    #[test]
    fn phases_in_bounds_and_allowed_gens() {
        for blocks in [1u64, 5, 256] {
            let ws = phase_writes(3, 2, 100, blocks, 32, 4);
            assert_eq!(ws, phase_writes(3, 2, 100, blocks, 32, 4));
            assert!(phase_writes(3, 2, 100, blocks, 32, 0).iter().all(|w| !w.2));
            for (b0, nb, _) in ws {
                assert!(nb >= 1 && b0 + nb <= blocks);
            }
        }
        let plans = vec![vec![(0, 2, false)], vec![(1, 2, true)]];
        assert_eq!(allowed_gens(&plans, 1, 0), (1, vec![2]));
        assert_eq!(allowed_gens(&plans, 2, 0), (2, vec![]));
        assert_eq!(allowed_gens(&plans, 2, 1), (2, vec![3]));
        assert_eq!(allowed_gens(&plans, 3, 1), (3, vec![]));
        assert_eq!(allowed_gens(&plans, 3, 5), (1, vec![]));
    }
}
