// SPDX-License-Identifier: GPL-2.0
//! Writers whose acknowledgements survive a power cut, and their checker (the `crash` suite).
//!
//! `crash-write` runs `--jobs J` threads against one volume. Job `j` owns the blocks `b`
//! (`--bs` sectors each, 8 = 4 KiB, counted from sector 0) of the writers' range
//! (`--wstart`, `--wcount` in sectors) with `(b - first block) % J == j`, and writes one of
//! them at a time, chosen by its own seeded generator (seed, job, boot), O_DIRECT: write
//! number `i` (1, 2, ...) of boot `K` carries generation `(K + 1) << 32 | i` in every sector
//! (amf-iotool's pattern: seed, the sector's lba, generation). After each completed write the
//! job appends an acknowledgement record to its part of the ack log (`--log` device,
//! `--log-start`, `--log-size` sectors shared by the jobs in equal parts), one sector, O_DIRECT
//! and O_DSYNC: a record on the log is a write the volume acknowledged. A job has at most one
//! write in flight, so after a power cut the only write of job `j` that may have landed
//! without its record is number `last + 1`, which the checker recomputes from the generator.
//!
//! `crash-check` reads the expected generation of every block of the volume from the map
//! (`--map-start` on the log device: one little-endian u64 a block; an all-zero map is
//! generation 0 everywhere, what the suite fills the volume with first), applies the records
//! of boot `--boot` (the writers' boot), then reads the whole volume: every block must hold
//! its expected generation, the in-flight block of each job either its old or its new one,
//! whole. With `--update 1` it writes the map back with what it found (the next boot's
//! expectation). Exit 0 clean, 1 lost or garbage blocks, 2 error.

use super::*;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

const ACK_MAGIC: &[u8; 8] = b"AMFACK01";
/// O_DSYNC on x86_64 and aarch64 Linux.
pub(crate) const O_DSYNC: i32 = 0o10000;

/// The writers of one boot on one volume.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Plan {
    seed: u64,
    boot: u64,
    jobs: u64,
    bs: u64,
    /// First block of the writers' range.
    b0: u64,
    /// Blocks in the writers' range.
    nb: u64,
    /// Log sectors of one job.
    per_job: u64,
    log_start: u64,
}

impl Plan {
    fn from_args(a: &Args, jobs: u64) -> Res<Plan> {
        let bs = a.num_or("bs", 8)?.clamp(1, MAX_IO);
        let (wstart, wcount) = (a.num("wstart")?, a.num("wcount")?);
        if wstart % bs != 0 || wcount % bs != 0 || wcount == 0 {
            fail!("--wstart {wstart} and --wcount {wcount} must be whole blocks of {bs} sectors, the count not 0");
        }
        let log_size = a.num("log-size")?;
        let p = Plan {
            seed: a.num("seed")?,
            boot: a.num("boot")?,
            jobs,
            bs,
            b0: wstart / bs,
            nb: wcount / bs,
            per_job: log_size.checked_div(jobs).unwrap_or(0),
            log_start: a.num("log-start")?,
        };
        if jobs > p.nb {
            fail!("--jobs {jobs} for {} blocks", p.nb);
        }
        if jobs > 0 && p.per_job == 0 {
            fail!("--log-size {log_size} gives the {jobs} jobs no room");
        }
        Ok(p)
    }

    fn rng(&self, job: u64) -> u64 {
        self.seed
            ^ (job + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ (self.boot + 1).wrapping_mul(0xD1B5_4A32_D192_ED03)
    }

    fn pick(&self, job: u64, state: &mut u64) -> u64 {
        let owned = (self.nb - job).div_ceil(self.jobs);
        self.b0 + job + (splitmix(state) % owned) * self.jobs
    }

    fn gen(&self, seq: u64) -> u64 {
        ((self.boot + 1) << 32) | seq
    }

    /// The blocks of job `job`'s writes 1..=n.
    fn blocks(&self, job: u64, n: u64) -> Vec<u64> {
        let mut s = self.rng(job);
        (0..n).map(|_| self.pick(job, &mut s)).collect()
    }

    /// Log sector of job `job`'s record `seq` (1-based).
    fn log_sector(&self, job: u64, seq: u64) -> u64 {
        self.log_start + job * self.per_job + seq - 1
    }
}

fn ack_check(f: &[u64; 6]) -> u64 {
    let mut s = 0x00AC_4C0F_F5E7_u64;
    for v in f {
        s ^= *v;
        s = splitmix(&mut s);
    }
    s
}

/// One record: seed, job, boot, seq, block, gen, then their check.
pub(crate) fn ack_encode(buf: &mut [u8], f: [u64; 6]) {
    buf[..SECTOR].fill(0);
    buf[0..8].copy_from_slice(ACK_MAGIC);
    for (i, v) in f.iter().enumerate() {
        buf[8 + 8 * i..16 + 8 * i].copy_from_slice(&v.to_le_bytes());
    }
    buf[56..64].copy_from_slice(&ack_check(&f).to_le_bytes());
}

pub(crate) fn ack_decode(buf: &[u8]) -> Option<[u64; 6]> {
    if &buf[0..8] != ACK_MAGIC {
        return None;
    }
    let mut f = [0u64; 6];
    for (i, v) in f.iter_mut().enumerate() {
        *v = u64_at(buf, 8 + 8 * i);
    }
    (u64_at(buf, 56) == ack_check(&f)).then_some(f)
}

fn open_log(path: &str, sync: bool) -> Res<Dev> {
    Dev::open_with(path, if sync { O_DSYNC } else { 0 })
}

fn check_log_room(p: &Plan, log: &Dev) -> Res<()> {
    let end = p.log_start + p.jobs * p.per_job;
    if end > log.sectors {
        fail!(
            "the ack log ends at sector {end}, beyond {} ({} sectors)",
            log.path,
            log.sectors
        );
    }
    Ok(())
}

/// `crash-write`: see the module's header. Runs until every job filled its part of the log
/// or `--stop FILE` exists; `--progress FILE` gets the acknowledged writes of all jobs
/// (rewritten every 200 ms).
pub(crate) fn cmd_crash_write(a: &Args) -> Res<u64> {
    let jobs = a.num_or("jobs", 4)?;
    if jobs == 0 {
        fail!("--jobs 0");
    }
    let p = Plan::from_args(a, jobs)?;
    let dev_path = a.str("dev")?.to_string();
    let log_path = a.str("log")?.to_string();
    let dev = Dev::open(&dev_path)?;
    if (p.b0 + p.nb) * p.bs > dev.sectors {
        fail!(
            "the writers' range ends beyond {} ({} sectors)",
            dev.path,
            dev.sectors
        );
    }
    check_log_room(&p, &open_log(&log_path, false)?)?;
    let stop = a.opt("stop").map(str::to_string);
    let progress = a.opt("progress").map(str::to_string);
    let acked = Arc::new(AtomicU64::new(0));
    let running = Arc::new(AtomicU64::new(jobs));
    let failed = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for job in 0..jobs {
        let (dev_path, log_path, stop) = (dev_path.clone(), log_path.clone(), stop.clone());
        let (acked, running, failed) = (acked.clone(), running.clone(), failed.clone());
        handles.push(std::thread::spawn(move || {
            let r = (|| -> Res<u64> {
                let dev = Dev::open(&dev_path)?;
                let log = open_log(&log_path, true)?;
                let mut buf = ABuf::new(p.bs as usize * SECTOR);
                let mut rec = ABuf::new(SECTOR);
                let mut s = p.rng(job);
                let mut n = 0;
                for seq in 1..=p.per_job {
                    if stop.as_deref().is_some_and(|f| Path::new(f).exists()) {
                        break;
                    }
                    let block = p.pick(job, &mut s);
                    let gen = p.gen(seq);
                    let lba = block * p.bs;
                    let descs: Vec<Desc> =
                        (lba..lba + p.bs).map(|l| Desc::logical(l, gen)).collect();
                    write_descs(&dev, lba, &descs, p.seed, &mut buf)?;
                    let r = rec.get(SECTOR);
                    ack_encode(r, [p.seed, job, p.boot, seq, block, gen]);
                    log.write(p.log_sector(job, seq), r)?;
                    acked.fetch_add(1, Ordering::Relaxed);
                    n = seq;
                }
                Ok(n)
            })();
            running.fetch_sub(1, Ordering::Relaxed);
            match r {
                Ok(n) => println!("# job {job}: {n} writes acknowledged"),
                Err(Fail(m)) => {
                    failed.store(true, Ordering::Relaxed);
                    println!("# job {job}: {m}");
                }
            }
        }));
    }
    loop {
        let left = running.load(Ordering::Relaxed);
        if let Some(f) = &progress {
            let tmp = format!("{f}.new");
            if std::fs::write(&tmp, format!("{}\n", acked.load(Ordering::Relaxed))).is_ok() {
                let _ = std::fs::rename(&tmp, f);
            }
        }
        if left == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    for h in handles {
        let _ = h.join();
    }
    println!(
        "# crash-write {dev_path}: {} writes acknowledged by {jobs} jobs (boot {}, seed {})",
        acked.load(Ordering::Relaxed),
        p.boot,
        p.seed
    );
    if failed.load(Ordering::Relaxed) {
        fail!("a job failed");
    }
    Ok(0)
}

/// What a block holds compared with the two generations it may have.
#[derive(Debug, PartialEq, Eq)]
enum Found {
    Old,
    New,
    Torn,
    Other(String),
}

fn judge(blk: &[u8], lba: u64, seed: u64, old: u64, new: Option<u64>) -> Found {
    let mut want = [0u8; SECTOR];
    let (mut olds, mut news) = (0, 0);
    let n = blk.len() / SECTOR;
    for i in 0..n {
        let got = &blk[i * SECTOR..(i + 1) * SECTOR];
        fill_sector(&mut want, seed, Desc::logical(lba + i as u64, old));
        if got == &want[..] {
            olds += 1;
            continue;
        }
        if let Some(g) = new {
            fill_sector(&mut want, seed, Desc::logical(lba + i as u64, g));
            if got == &want[..] {
                news += 1;
                continue;
            }
        }
        return Found::Other(format!("sector {}: {}", lba + i as u64, describe(got)));
    }
    match (olds, news) {
        (_, 0) => Found::Old,
        (0, _) => Found::New,
        _ => Found::Torn,
    }
}

/// `crash-check`: see the module's header.
pub(crate) fn cmd_crash_check(a: &Args) -> Res<u64> {
    let jobs = a.num("jobs")?;
    let p = Plan::from_args(a, jobs)?;
    let dev = Dev::open(a.str("dev")?)?;
    let log = open_log(a.str("log")?, true)?;
    check_log_room(&p, &log)?;
    let blocks = dev.sectors / p.bs;
    if p.b0 + p.nb > blocks {
        fail!(
            "the writers' range ends beyond {} ({} blocks)",
            dev.path,
            blocks
        );
    }
    let map_start = a.num("map-start")?;
    let map_sectors = (blocks * 8).div_ceil(SECTOR_U64);
    if map_start + map_sectors > p.log_start && map_start < p.log_start + jobs * p.per_job {
        fail!("the map (sectors {map_start}+{map_sectors}) overlaps the ack log");
    }
    let mut mbuf = ABuf::new(map_sectors as usize * SECTOR);
    let m = mbuf.get(map_sectors as usize * SECTOR);
    log.read(map_start, m)?;
    let mut exp: Vec<u64> = (0..blocks as usize).map(|i| u64_at(m, 8 * i)).collect();

    // The records of the writers' boot, job by job, up to the first that is not the next.
    let mut acked = 0u64;
    let mut doubt: Vec<(u64, u64, u64)> = Vec::new(); // (block, old gen, new gen)
    let mut rec = ABuf::new(SECTOR);
    for job in 0..jobs {
        let want = p.blocks(job, p.per_job);
        let mut last = 0;
        for seq in 1..=p.per_job {
            let r = rec.get(SECTOR);
            log.read(p.log_sector(job, seq), r)?;
            let block = want[seq as usize - 1];
            if ack_decode(r) != Some([p.seed, job, p.boot, seq, block, p.gen(seq)]) {
                break;
            }
            exp[block as usize] = p.gen(seq);
            last = seq;
        }
        acked += last;
        if last < p.per_job {
            let block = want[last as usize];
            doubt.push((block, exp[block as usize], p.gen(last + 1)));
        }
        println!(
            "# job {job}: {last} writes acknowledged; in flight: {}",
            match doubt.last() {
                Some(&(b, o, n)) if last < p.per_job => format!("block {b} (gen {o:#x} -> {n:#x})"),
                _ => "none (its log is full)".into(),
            }
        );
    }

    let (mut lost, mut garbage, mut landed, mut kept, mut torn, mut shown) = (0u64, 0, 0, 0, 0, 0);
    let per_read = (MAX_IO / p.bs).max(1);
    let mut buf = ABuf::new((per_read * p.bs) as usize * SECTOR);
    let mut b = 0u64;
    while b < blocks {
        let n = (blocks - b).min(per_read);
        let data = buf.get((n * p.bs) as usize * SECTOR);
        dev.read(b * p.bs, data)?;
        for i in 0..n {
            let block = b + i;
            let blk = &data[(i * p.bs) as usize * SECTOR..((i + 1) * p.bs) as usize * SECTOR];
            let lba = block * p.bs;
            let d = doubt.iter().find(|x| x.0 == block).copied();
            let f = judge(blk, lba, p.seed, exp[block as usize], d.map(|x| x.2));
            let bad = match (&f, d) {
                (Found::Old, None) => None,
                (Found::Old, Some(_)) => {
                    kept += 1;
                    None
                }
                (Found::New, Some((_, _, g))) => {
                    landed += 1;
                    exp[block as usize] = g;
                    None
                }
                (Found::Torn, _) => {
                    torn += 1;
                    garbage += 1;
                    Some("a mix of its old and new generation".to_string())
                }
                (Found::Other(w), Some(_)) => {
                    garbage += 1;
                    Some(format!("neither its old nor its new generation: {w}"))
                }
                (Found::Other(w), None) => {
                    lost += 1;
                    Some(format!("not its last acknowledged generation: {w}"))
                }
                (Found::New, None) => unreachable!("no new generation without a write in flight"),
            };
            if let Some(why) = bad {
                if shown < SHOW_MAX {
                    println!(
                        "# MISMATCH {} block {block} (sector {lba}), want gen {:#x}{}: {why}",
                        dev.path,
                        exp[block as usize],
                        d.map_or(String::new(), |x| format!(" or {:#x} (in flight)", x.2))
                    );
                }
                shown += 1;
            }
        }
        b += n;
    }
    if a.num_or("update", 0)? == 1 {
        for (i, g) in exp.iter().enumerate() {
            m[8 * i..8 * i + 8].copy_from_slice(&g.to_le_bytes());
        }
        log.write(map_start, m)?;
        log.sync()?;
    }
    println!(
        "crash-check {}: boot {} writers: {acked} acked writes by {jobs} jobs, {} in flight ({landed} landed, {kept} not, {torn} torn); {blocks} blocks checked: {lost} lost acked, {garbage} garbage",
        dev.path,
        p.boot,
        doubt.len()
    );
    Ok(lost + garbage)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Args {
        Args::parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn records_roundtrip_and_refuse_damage() {
        let mut b = [0u8; SECTOR];
        ack_encode(&mut b, [7, 1, 2, 3, 4, 5]);
        assert_eq!(ack_decode(&b), Some([7, 1, 2, 3, 4, 5]));
        b[40] ^= 1;
        assert_eq!(ack_decode(&b), None);
        assert_eq!(ack_decode(&[0u8; SECTOR]), None);
    }

    #[test]
    fn jobs_pick_their_own_blocks_deterministically() {
        let a = args(&[
            "--seed",
            "5",
            "--boot",
            "2",
            "--wstart",
            "80",
            "--wcount",
            "800",
            "--log-start",
            "0",
            "--log-size",
            "400",
        ]);
        let p = Plan::from_args(&a, 4).unwrap();
        assert_eq!(p.per_job, 100);
        for job in 0..4 {
            let bl = p.blocks(job, 100);
            assert_eq!(bl, p.blocks(job, 100));
            assert!(bl
                .iter()
                .all(|&b| (10..110).contains(&b) && (b - 10) % 4 == job));
        }
        assert_ne!(p.blocks(0, 20), p.blocks(1, 20));
        assert_eq!(p.gen(9), (3 << 32) | 9);
    }

    /// The generation boot 0's writers left in block `b` (0: never written).
    fn boot0_gen(p: &Plan, b: u64) -> u64 {
        let mut g = 0;
        for job in 0..3 {
            for (i, &x) in p.blocks(job, 40).iter().enumerate() {
                if x == b {
                    g = p.gen(i as u64 + 1);
                }
            }
        }
        g
    }

    /// Writers, a simulated power cut, the checker (skipped without O_DIRECT).
    #[test]
    fn write_then_cut_then_check_on_files() {
        let dir = std::env::temp_dir().join(format!("amf-iotool-crash-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let vol = dir.join("vol");
        let log = dir.join("log");
        std::fs::write(&vol, vec![0u8; 512 * 512]).unwrap();
        std::fs::write(&log, vec![0u8; 256 * 512]).unwrap();
        let (v, l) = (vol.to_str().unwrap(), log.to_str().unwrap());
        // Generation 0 everywhere, as the suite's fill.
        let fill = args(&["--dev", v, "--seed", "9", "--gen", "0"]);
        if cmd_write(&fill).is_err() {
            // No O_DIRECT on this file system (tmpfs): nothing to check here.
            let _ = std::fs::remove_dir_all(&dir);
            return;
        }
        let common = |extra: &[&str]| {
            let mut w = vec![
                "--dev",
                v,
                "--seed",
                "9",
                "--wstart",
                "0",
                "--wcount",
                "256",
                "--log",
                l,
                "--log-start",
                "64",
                "--log-size",
                "120",
                "--map-start",
                "8",
            ];
            w.extend_from_slice(extra);
            args(&w)
        };
        // Boot 0's writers fill their logs (40 writes each), then the check is clean.
        assert_eq!(
            cmd_crash_write(&common(&["--boot", "0", "--jobs", "3"])).unwrap(),
            0
        );
        assert_eq!(
            cmd_crash_check(&common(&["--boot", "0", "--jobs", "3", "--update", "1"])).unwrap(),
            0
        );
        // Boot 1: the cut came after job 0's write 6 landed but before its record: records
        // 6..40 gone, and writes 7..40 never happened (their blocks put back as they were).
        assert_eq!(
            cmd_crash_write(&common(&["--boot", "1", "--jobs", "3"])).unwrap(),
            0
        );
        let p = Plan::from_args(&common(&["--boot", "1"]), 3).unwrap();
        let f = OpenOptions::new().write(true).open(&log).unwrap();
        for seq in 6..=40 {
            f.write_all_at(&[0u8; SECTOR], p.log_sector(0, seq) * SECTOR_U64)
                .unwrap();
        }
        let boot0 = Plan::from_args(&common(&["--boot", "0"]), 3).unwrap();
        let mut before = vec![0u64; 64];
        for job in 0..3 {
            for (i, &b) in boot0.blocks(job, 40).iter().enumerate() {
                before[b as usize] = boot0.gen(i as u64 + 1);
            }
        }
        let bl = p.blocks(0, 40);
        for (i, &b) in bl.iter().enumerate().take(6) {
            before[b as usize] = p.gen(i as u64 + 1);
        }
        let dev = Dev::open(v).unwrap();
        let mut buf = ABuf::new(8 * SECTOR);
        let put = |b: u64, g: u64, buf: &mut ABuf| {
            let descs: Vec<Desc> = (b * 8..b * 8 + 8).map(|l| Desc::logical(l, g)).collect();
            write_descs(&dev, b * 8, &descs, 9, buf).unwrap();
        };
        for &b in &bl[6..] {
            put(b, before[b as usize], &mut buf);
        }
        assert_eq!(
            cmd_crash_check(&common(&["--boot", "1", "--jobs", "3"])).unwrap(),
            0
        );
        // Its old generation is fine too (the write did not land).
        let old = if bl[..5].contains(&bl[5]) {
            p.gen(bl[..5].iter().rposition(|&b| b == bl[5]).unwrap() as u64 + 1)
        } else {
            boot0_gen(&boot0, bl[5])
        };
        put(bl[5], old, &mut buf);
        assert_eq!(
            cmd_crash_check(&common(&["--boot", "1", "--jobs", "3"])).unwrap(),
            0
        );
        // Garbage in the in-flight block, and an acknowledged block of job 1 lost.
        put(bl[5], 77, &mut buf);
        let b1 = p.blocks(1, 40)[39];
        put(b1, 78, &mut buf);
        assert_eq!(
            cmd_crash_check(&common(&["--boot", "1", "--jobs", "3"])).unwrap(),
            2
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
