// SPDX-License-Identifier: GPL-2.0
//! amf-iotool: the guest-side I/O checker of the dm-amf test suites.
//!
//! Every sector it writes carries a self-describing, seeded pattern (magic, seed, tag,
//! generation, then 480 pseudo-random bytes derived from them), so a sector found in the
//! wrong place says where it came from. All I/O uses O_DIRECT: no page cache between the
//! dm device and its members.
//! Every check compares a sector's whole 512 bytes with the pattern it should hold, so a torn
//! or partly overwritten sector fails.
//!
//! The RAID0 mapping model here is written from the table-syntax document alone and shares
//! no code with the module:
//!   chunk = sector / chunk_sectors; member = chunk % ndevs;
//!   member sector = offset[member] + (chunk / ndevs) * chunk_sectors + sector % chunk_sectors
//!
//! Subcommands (sizes and positions in 512-byte sectors; exit 0 ok, 1 mismatch, 2 error):
//!   write   --dev D --seed S --gen G [--start N] [--count N] [--bs N] [--every N --phase P]
//!   verify  --dev D --seed S --gen G [--start N] [--count N] [--bs N] [--every N --phase P]
//!           every sector gets / must hold the pattern of (seed, its own lba, gen). --bs is
//!           the I/O size (default 2048). Strided, for concurrent writers that share stripes
//!           but own disjoint blocks: with --every N only blocks b with b % N == P are written
//!           or checked, a block being --bs sectors (default 8 then) counted from sector 0,
//!           each block one write; --start and --count must be whole blocks. Three nodes
//!           writing --every 3 --phase <i> --seed <node id> interleave their 4 KiB blocks in
//!           the same stripes, and each verifies exactly its own last generation.
//!   verify-any --dev D --seeds S1,S2,... --max-gen G [--start N] [--count N] [--bs N]
//!           for ranges several writers wrote (contended blocks): every block (--bs sectors,
//!           default 8, counted from sector 0) must be one whole write of one writer: each
//!           sector the pattern of one of the seeds with its own lba as tag and a generation
//!           from 1 to G, the same seed and generation throughout the block. Prints how many
//!           blocks each seed holds (and their generations).
//!   zero    --dev D --start N --count N            the range reads as zeroes
//!   mapping --target D --chunk C --len L --member PATH:OFFSET... --seed S
//!           [--ops N] [--margin N] [--quiet-mismatch]
//!           fill the members' areas with a background pattern, write a seeded mix of
//!           sequential, boundary and random I/O through D, read D back, then check every
//!           sector of every member area against the model, byte for byte.
//!   members --chunk C --len L --member PATH:OFFSET... --seed S --gen G [--start N] [--count N]
//!           the logical range written by `write` sits at the modelled member sectors.
//!   layout  --chunk C --ndevs N --sector X         print member and member sector
//!   copies  --target D --chunk C --copies K --chunks N --member PATH:OFFSET...
//!           mirrored levels (table-syntax.rst): copy k of chunk c is device chunk
//!           p = c * K + k, on member p % n at OFFSET + (p / n) * C; every copy of the first
//!           N chunks must equal what D returns (raid1 is K = n)
//!   barrier --dev D --sector S --node I --nodes N --gen G [--timeout SEC]
//!           multi-guest barrier on a shared disk: writes node I's marker (generation G) to
//!           sector S+I, then polls sectors S..S+N until every node's marker shows a
//!           generation >= G. Markers are seeded patterns (seed BARRIER_SEED, tag = the
//!           sector); a sector of zeroes is generation 0, anything else an error (exit 2:
//!           not the barrier disk). Exit 0 all arrived; 1 timeout (default 300 s), after
//!           printing the missing nodes and the generation each shows. Both ways O_DIRECT.
//!   crash-write --dev D --seed S --boot K --wstart N --wcount N --log L --log-start N
//!           --log-size N [--jobs J] [--bs N] [--stop FILE] [--progress FILE]
//!   crash-check --dev D --seed S --boot K --jobs J --wstart N --wcount N --log L
//!           --log-start N --log-size N --map-start N [--bs N] [--update 1]
//!           writers that log every acknowledged write durably (O_DSYNC) and their checker
//!           after a power cut: see crash.rs.
//!   logwrites --log L [--from SECTOR --to SECTOR]
//!           the entries of a dm-log-writes log, in order: see logwrites.rs.
//!   add-logon-key --desc D --secret S
//!           adds the logon key D holding S, whatever its length: see addkey.rs.
//!   replay --log L (--points | --dev D --to N [--from A] [--drop-seed S --drop-from E])
//!   phase-write --dev D --seed S --phase P --writes N [--maxspan B] [--fsync 1]
//!   phase-check --dev D --seed S --phases K --acked A --writes N [--maxspan B]
//!           a dm-log-writes log replayed onto a device up to an entry, dropping a seeded
//!           subset of the unflushed writes, and the phased workload of the logreplay
//!           suite: see replay.rs.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::process::ExitCode;

const SECTOR: usize = 512;
const SECTOR_U64: u64 = SECTOR as u64;
/// O_DIRECT on x86_64 and aarch64 Linux.
const O_DIRECT: i32 = 0o40000;
const MAGIC: &[u8; 8] = b"AMFIOT01";
/// Tag bit of background sectors (the rest: member << 48 | member sector).
const TAG_BG: u64 = 1 << 63;
/// Largest single I/O the tool issues (sectors): 8 MiB.
const MAX_IO: u64 = 16384;
/// How many mismatches are printed per device before only counting.
const SHOW_MAX: u64 = 8;
/// Seed of the barrier markers.
const BARRIER_SEED: u64 = 0xBA44_1E40_0000_0001;

#[derive(Debug)]
struct Fail(String);
type Res<T> = Result<T, Fail>;
macro_rules! fail { ($($t:tt)*) => { return Err(Fail(format!($($t)*))) } }

mod addkey;
mod crash;
mod logwrites;
mod replay;

// ---------------------------------------------------------------- patterns

/// What a sector should hold: a logical sector (tag = lba) of a generation, or the
/// background of a member sector (tag has TAG_BG set, gen 0).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Desc {
    tag: u64,
    gen: u64,
}

impl Desc {
    fn logical(lba: u64, gen: u64) -> Self {
        Desc { tag: lba, gen }
    }
    fn background(member: u64, sector: u64) -> Self {
        Desc {
            tag: TAG_BG | (member << 48) | sector,
            gen: 0,
        }
    }
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn fill_sector(buf: &mut [u8], seed: u64, d: Desc) {
    buf[0..8].copy_from_slice(MAGIC);
    buf[8..16].copy_from_slice(&seed.to_le_bytes());
    buf[16..24].copy_from_slice(&d.tag.to_le_bytes());
    buf[24..32].copy_from_slice(&d.gen.to_le_bytes());
    let mut s = seed ^ d.tag.wrapping_mul(0xA24B_AED4_963E_E407) ^ d.gen.rotate_left(29);
    for w in buf[32..SECTOR].chunks_exact_mut(8) {
        w.copy_from_slice(&splitmix(&mut s).to_le_bytes());
    }
}

fn u64_at(buf: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    u64::from_le_bytes(b)
}

/// Human description of what a sector holds (for mismatch reports).
fn describe(buf: &[u8]) -> String {
    if buf.iter().all(|&b| b == 0) {
        return "zeroes".into();
    }
    if &buf[0..8] != MAGIC {
        return format!("foreign data {:02x?}", &buf[0..16]);
    }
    let seed = u64_at(buf, 8);
    let d = Desc {
        tag: u64_at(buf, 16),
        gen: u64_at(buf, 24),
    };
    let mut want = [0u8; SECTOR];
    fill_sector(&mut want, seed, d);
    let body = if want[..] == buf[..SECTOR] {
        ""
    } else {
        " (torn/corrupt body)"
    };
    if d.tag & TAG_BG != 0 {
        format!(
            "background of member {} sector {} (seed {}){}",
            (d.tag & !TAG_BG) >> 48,
            d.tag & ((1 << 48) - 1),
            seed,
            body
        )
    } else {
        format!(
            "logical sector {} gen {} (seed {}){}",
            d.tag, d.gen, seed, body
        )
    }
}

fn describe_desc(d: Desc, seed: u64) -> String {
    let mut b = [0u8; SECTOR];
    fill_sector(&mut b, seed, d);
    describe(&b)
}

// ---------------------------------------------------------------- RAID0 model

#[derive(Clone, Debug)]
struct Layout {
    chunk: u64,
    offsets: Vec<u64>,
}

impl Layout {
    fn ndevs(&self) -> u64 {
        self.offsets.len() as u64
    }
    /// Logical sector -> (member index, member sector).
    fn map(&self, lba: u64) -> (usize, u64) {
        let chunk = lba / self.chunk;
        let member = chunk % self.ndevs();
        let msector =
            self.offsets[member as usize] + (chunk / self.ndevs()) * self.chunk + lba % self.chunk;
        (member as usize, msector)
    }
}

// ---------------------------------------------------------------- aligned I/O

struct ABuf {
    v: Vec<u8>,
    off: usize,
    len: usize,
}

impl ABuf {
    fn new(len: usize) -> Self {
        let v = vec![0u8; len + 4096];
        let off = (4096 - (v.as_ptr() as usize % 4096)) % 4096;
        ABuf { v, off, len }
    }
    fn get(&mut self, len: usize) -> &mut [u8] {
        assert!(len <= self.len);
        &mut self.v[self.off..self.off + len]
    }
}

struct Dev {
    path: String,
    f: File,
    sectors: u64,
}

impl Dev {
    fn open(path: &str) -> Res<Dev> {
        Dev::open_with(path, 0)
    }
    /// Opens `path` for O_DIRECT I/O with the extra open flags `flags` (O_DSYNC...).
    fn open_with(path: &str, flags: i32) -> Res<Dev> {
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(O_DIRECT | flags)
            .open(path)
            .map_err(|e| Fail(format!("open {path}: {e}")))?;
        let bytes = f
            .seek(SeekFrom::End(0))
            .map_err(|e| Fail(format!("size of {path}: {e}")))?;
        Ok(Dev {
            path: path.into(),
            f,
            sectors: bytes / SECTOR_U64,
        })
    }
    fn write(&self, sector: u64, buf: &[u8]) -> Res<()> {
        self.f.write_all_at(buf, sector * SECTOR_U64).map_err(|e| {
            Fail(format!(
                "write {} sector {} +{}: {e}",
                self.path,
                sector,
                buf.len() / SECTOR
            ))
        })
    }
    fn read(&self, sector: u64, buf: &mut [u8]) -> Res<()> {
        let n = buf.len() / SECTOR;
        self.f
            .read_exact_at(buf, sector * SECTOR_U64)
            .map_err(|e| Fail(format!("read {} sector {} +{}: {e}", self.path, sector, n)))
    }
    fn sync(&self) -> Res<()> {
        self.f
            .sync_all()
            .map_err(|e| Fail(format!("fsync {}: {e}", self.path)))
    }
}

/// Compare `count` sectors of `dev` from `start` with `expect(i)` for i in 0..count (`None`:
/// not checked). Returns the number of mismatching sectors (the first few are printed).
fn check_range(
    dev: &Dev,
    start: u64,
    count: u64,
    seed: u64,
    what: &str,
    expect: &dyn Fn(u64) -> Option<Desc>,
) -> Res<u64> {
    let mut buf = ABuf::new((MAX_IO as usize) * SECTOR);
    let mut want = [0u8; SECTOR];
    let mut bad = 0u64;
    let mut done = 0u64;
    while done < count {
        let n = (count - done).min(MAX_IO);
        let b = buf.get(n as usize * SECTOR);
        dev.read(start + done, b)?;
        for i in 0..n {
            let got = &b[i as usize * SECTOR..(i as usize + 1) * SECTOR];
            let Some(d) = expect(done + i) else {
                continue;
            };
            fill_sector(&mut want, seed, d);
            if got != &want[..] {
                if bad < SHOW_MAX {
                    println!(
                        "# MISMATCH {what} {} sector {}: expected {}, found {}",
                        dev.path,
                        start + done + i,
                        describe_desc(d, seed),
                        describe(got)
                    );
                }
                bad += 1;
            }
        }
        done += n;
    }
    if bad > SHOW_MAX {
        println!(
            "# ... {} more mismatching sectors on {}",
            bad - SHOW_MAX,
            dev.path
        );
    }
    Ok(bad)
}

fn write_descs(dev: &Dev, start: u64, descs: &[Desc], seed: u64, buf: &mut ABuf) -> Res<()> {
    let b = buf.get(descs.len() * SECTOR);
    for (i, d) in descs.iter().enumerate() {
        fill_sector(&mut b[i * SECTOR..(i + 1) * SECTOR], seed, *d);
    }
    dev.write(start, b)
}

// ---------------------------------------------------------------- arguments

struct Args {
    kv: Vec<(String, String)>,
}

impl Args {
    fn parse(v: &[String]) -> Res<Args> {
        let mut kv = Vec::new();
        let mut i = 0;
        while i < v.len() {
            let k = &v[i];
            if !k.starts_with("--") {
                fail!("unexpected argument '{k}'");
            }
            if k == "--quiet-mismatch" || k == "--points" {
                kv.push((k[2..].to_string(), "1".into()));
                i += 1;
                continue;
            }
            let Some(val) = v.get(i + 1) else {
                fail!("{k} needs a value")
            };
            kv.push((k[2..].to_string(), val.clone()));
            i += 2;
        }
        Ok(Args { kv })
    }
    fn opt(&self, k: &str) -> Option<&str> {
        self.kv
            .iter()
            .rev()
            .find(|(a, _)| a == k)
            .map(|(_, b)| b.as_str())
    }
    fn str(&self, k: &str) -> Res<&str> {
        self.opt(k).ok_or_else(|| Fail(format!("missing --{k}")))
    }
    fn num(&self, k: &str) -> Res<u64> {
        let s = self.str(k)?;
        s.parse()
            .map_err(|_| Fail(format!("--{k}: '{s}' is not a number")))
    }
    fn num_or(&self, k: &str, d: u64) -> Res<u64> {
        if self.opt(k).is_some() {
            self.num(k)
        } else {
            Ok(d)
        }
    }
    fn all(&self, k: &str) -> Vec<&str> {
        self.kv
            .iter()
            .filter(|(a, _)| a == k)
            .map(|(_, b)| b.as_str())
            .collect()
    }
    /// --member PATH:OFFSET (the offset after the last ':', so major:minor paths work too).
    fn members(&self) -> Res<Vec<(String, u64)>> {
        let mut out = Vec::new();
        for m in self.all("member") {
            let Some((p, o)) = m.rsplit_once(':') else {
                fail!("--member {m}: want PATH:OFFSET")
            };
            let o = o
                .parse()
                .map_err(|_| Fail(format!("--member {m}: bad offset")))?;
            out.push((p.to_string(), o));
        }
        if out.is_empty() {
            fail!("at least one --member PATH:OFFSET is needed");
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------- subcommands

fn range(a: &Args, dev: &Dev) -> Res<(u64, u64)> {
    let start = a.num_or("start", 0)?;
    if start > dev.sectors {
        fail!(
            "--start {start} beyond the end of {} ({} sectors)",
            dev.path,
            dev.sectors
        );
    }
    let count = a.num_or("count", dev.sectors - start)?;
    if start + count > dev.sectors {
        fail!(
            "range {start}+{count} beyond the end of {} ({} sectors)",
            dev.path,
            dev.sectors
        );
    }
    Ok((start, count))
}

/// `--every N --phase P` with block size `bs`: the blocks b (sectors b*bs..(b+1)*bs, counted
/// from sector 0) with b % N == P.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stride {
    every: u64,
    phase: u64,
    bs: u64,
}

impl Stride {
    /// Whether sector `lba` lies in one of the stride's blocks.
    fn owns(&self, lba: u64) -> bool {
        (lba / self.bs) % self.every == self.phase
    }
    /// First sector of every block of the stride inside `start..start + count` (whole blocks).
    fn blocks(&self, start: u64, count: u64) -> impl Iterator<Item = u64> {
        let (b0, b1) = (start / self.bs, (start + count) / self.bs);
        let first = b0 + (self.phase + self.every - b0 % self.every) % self.every;
        let (bs, every) = (self.bs, self.every);
        (first..b1).step_by(every as usize).map(move |b| b * bs)
    }
}

/// The stride of `write`/`verify` (`None` without `--every`), checked against the range.
fn stride_of(a: &Args, start: u64, count: u64) -> Res<Option<Stride>> {
    if a.opt("every").is_none() {
        if a.opt("phase").is_some() {
            fail!("--phase needs --every");
        }
        return Ok(None);
    }
    let every = a.num("every")?;
    let phase = a.num_or("phase", 0)?;
    let bs = a.num_or("bs", 8)?;
    if every == 0 || phase >= every {
        fail!("--every {every} --phase {phase}: want --every >= 1 and --phase below it");
    }
    if bs == 0 || bs > MAX_IO {
        fail!("--bs {bs}: a block is 1 to {MAX_IO} sectors");
    }
    if start % bs != 0 || count % bs != 0 {
        fail!("--start {start} --count {count}: with --every, whole blocks of --bs {bs} sectors");
    }
    Ok(Some(Stride { every, phase, bs }))
}

fn stride_text(st: Option<Stride>) -> String {
    st.map_or(String::new(), |s| {
        format!(
            ", blocks of {} sectors {} of every {}",
            s.bs, s.phase, s.every
        )
    })
}

fn cmd_write(a: &Args) -> Res<u64> {
    let dev = Dev::open(a.str("dev")?)?;
    let (seed, gen) = (a.num("seed")?, a.num("gen")?);
    let (start, count) = range(a, &dev)?;
    let stride = stride_of(a, start, count)?;
    let mut written = 0;
    if let Some(st) = stride {
        // One write per block: concurrent writers of neighbouring blocks never share one.
        let mut buf = ABuf::new(st.bs as usize * SECTOR);
        for lba in st.blocks(start, count) {
            let descs: Vec<Desc> = (lba..lba + st.bs).map(|l| Desc::logical(l, gen)).collect();
            write_descs(&dev, lba, &descs, seed, &mut buf)?;
            written += st.bs;
        }
    } else {
        let bs = a.num_or("bs", 2048)?.clamp(1, MAX_IO);
        let mut buf = ABuf::new(bs as usize * SECTOR);
        while written < count {
            let n = (count - written).min(bs);
            let descs: Vec<Desc> = (start + written..start + written + n)
                .map(|l| Desc::logical(l, gen))
                .collect();
            write_descs(&dev, start + written, &descs, seed, &mut buf)?;
            written += n;
        }
    }
    dev.sync()?;
    println!(
        "# wrote {written} sectors in {start}+{count} on {} (seed {seed} gen {gen}{})",
        dev.path,
        stride_text(stride)
    );
    Ok(0)
}

fn cmd_verify(a: &Args) -> Res<u64> {
    let dev = Dev::open(a.str("dev")?)?;
    let (seed, gen) = (a.num("seed")?, a.num("gen")?);
    let (start, count) = range(a, &dev)?;
    let stride = stride_of(a, start, count)?;
    let bad = check_range(&dev, start, count, seed, "logical", &|i| {
        let lba = start + i;
        stride
            .map_or(true, |st| st.owns(lba))
            .then(|| Desc::logical(lba, gen))
    })?;
    let checked = stride.map_or(count, |st| st.blocks(start, count).count() as u64 * st.bs);
    println!(
        "# verified {checked} sectors in {start}+{count} on {} (seed {seed} gen {gen}{}): {bad} bad",
        dev.path,
        stride_text(stride)
    );
    Ok(bad)
}

// ---------------------------------------------------------------- verify-any

/// What a sector of a contended range holds: the seed and generation of a whole, valid
/// pattern of its own lba (one of `seeds`, generation 1..=max_gen), or why not.
fn any_sector(buf: &[u8], lba: u64, seeds: &[u64], max_gen: u64) -> Result<(u64, u64), String> {
    if &buf[0..8] != MAGIC {
        return Err(describe(buf));
    }
    let (seed, tag, gen) = (u64_at(buf, 8), u64_at(buf, 16), u64_at(buf, 24));
    let mut want = [0u8; SECTOR];
    fill_sector(&mut want, seed, Desc { tag, gen });
    if want[..] != buf[..SECTOR] {
        return Err(describe(buf));
    }
    if tag != lba {
        return Err(format!("{} (misplaced)", describe(buf)));
    }
    if !seeds.contains(&seed) {
        return Err(format!("{} (not one of the seeds)", describe(buf)));
    }
    if gen == 0 || gen > max_gen {
        return Err(format!(
            "{} (generation not in 1..={max_gen})",
            describe(buf)
        ));
    }
    Ok((seed, gen))
}

/// A block of a contended range: one whole write of one writer, (seed, gen), or why not.
fn any_block(buf: &[u8], lba: u64, seeds: &[u64], max_gen: u64) -> Result<(u64, u64), String> {
    let mut first = None;
    for (i, s) in buf.chunks_exact(SECTOR).enumerate() {
        let l = lba + i as u64;
        let got = any_sector(s, l, seeds, max_gen).map_err(|e| format!("sector {l}: {e}"))?;
        match first {
            None => first = Some(got),
            Some(f) if f != got => {
                return Err(format!(
                    "torn block: sector {lba} has seed {} gen {}, sector {l} seed {} gen {}",
                    f.0, f.1, got.0, got.1
                ))
            }
            Some(_) => {}
        }
    }
    first.ok_or_else(|| "empty block".to_string())
}

fn cmd_verify_any(a: &Args) -> Res<u64> {
    let dev = Dev::open(a.str("dev")?)?;
    let seeds: Vec<u64> = a
        .str("seeds")?
        .split(',')
        .map(|x| {
            x.trim()
                .parse()
                .map_err(|_| Fail(format!("--seeds: '{x}' is not a number")))
        })
        .collect::<Res<_>>()?;
    let max_gen = a.num("max-gen")?;
    if max_gen == 0 {
        fail!("--max-gen must be at least 1");
    }
    let (start, count) = range(a, &dev)?;
    let bs = a.num_or("bs", 8)?;
    if bs == 0 || bs > MAX_IO {
        fail!("--bs {bs}: a block is 1 to {MAX_IO} sectors");
    }
    if start % bs != 0 || count % bs != 0 {
        fail!("--start {start} --count {count}: whole blocks of --bs {bs} sectors");
    }
    let per_io = (MAX_IO / bs) * bs;
    let mut buf = ABuf::new(per_io as usize * SECTOR);
    // seed -> (blocks, lowest gen, highest gen)
    let mut hist: Vec<(u64, u64, u64, u64)> = seeds.iter().map(|&s| (s, 0, u64::MAX, 0)).collect();
    let mut bad = 0u64;
    let mut done = 0;
    while done < count {
        let n = (count - done).min(per_io);
        let b = buf.get(n as usize * SECTOR);
        dev.read(start + done, b)?;
        for (k, blk) in b.chunks_exact(bs as usize * SECTOR).enumerate() {
            let lba = start + done + k as u64 * bs;
            match any_block(blk, lba, &seeds, max_gen) {
                Ok((seed, gen)) => {
                    let h = hist.iter_mut().find(|h| h.0 == seed).expect("a seed");
                    h.1 += 1;
                    h.2 = h.2.min(gen);
                    h.3 = h.3.max(gen);
                }
                Err(e) => {
                    if bad < SHOW_MAX {
                        println!("# BAD block at {} sector {lba}: {e}", dev.path);
                    }
                    bad += 1;
                }
            }
        }
        done += n;
    }
    if bad > SHOW_MAX {
        println!("# ... {} more bad blocks on {}", bad - SHOW_MAX, dev.path);
    }
    let won: Vec<String> = hist
        .iter()
        .map(|&(s, n, lo, hi)| match n {
            0 => format!("seed {s}: 0"),
            _ if lo == hi => format!("seed {s}: {n} (gen {lo})"),
            _ => format!("seed {s}: {n} (gen {lo}..{hi})"),
        })
        .collect();
    println!(
        "# verify-any {start}+{count} on {} in blocks of {bs}: {}; {bad} bad of {}",
        dev.path,
        won.join(", "),
        count / bs
    );
    Ok(bad)
}

fn cmd_zero(a: &Args) -> Res<u64> {
    let dev = Dev::open(a.str("dev")?)?;
    let (start, count) = range(a, &dev)?;
    let mut buf = ABuf::new(MAX_IO as usize * SECTOR);
    let mut bad = 0;
    let mut done = 0;
    while done < count {
        let n = (count - done).min(MAX_IO);
        let b = buf.get(n as usize * SECTOR);
        dev.read(start + done, b)?;
        for i in 0..n as usize {
            let s = &b[i * SECTOR..(i + 1) * SECTOR];
            if s.iter().any(|&x| x != 0) {
                if bad < SHOW_MAX {
                    println!(
                        "# NOT ZERO {} sector {}: {}",
                        dev.path,
                        start + done + i as u64,
                        describe(s)
                    );
                }
                bad += 1;
            }
        }
        done += n;
    }
    println!(
        "# zero check {} sectors from {} on {}: {} not zero",
        count, start, dev.path, bad
    );
    Ok(bad)
}

fn layout_of(a: &Args) -> Res<(Layout, Vec<String>, u64)> {
    let chunk = a.num("chunk")?;
    let len = a.num("len")?;
    let members = a.members()?;
    if chunk == 0 || len == 0 {
        fail!("--chunk and --len must be positive");
    }
    let stripe = chunk * members.len() as u64;
    if len % stripe != 0 {
        fail!("--len {len} is not a multiple of the full stripe {stripe}");
    }
    let offsets = members.iter().map(|m| m.1).collect();
    let paths = members.into_iter().map(|m| m.0).collect();
    Ok((Layout { chunk, offsets }, paths, len))
}

/// The seeded I/O plan of `mapping`: (start, count) in logical sectors; generation = index + 1.
fn io_plan(l: &Layout, len: u64, seed: u64, nrand: u64) -> Vec<(u64, u64)> {
    let c = l.chunk;
    let stripe = c * l.ndevs();
    let mut plan = Vec::new();
    // 1. the whole device, sequentially, in I/Os that are not a multiple of the chunk
    //    (each spans several chunks and starts at a different chunk offset)
    let bs = (3 * c + 5).min(MAX_IO);
    let mut s = 0;
    while s < len {
        let n = bs.min(len - s);
        plan.push((s, n));
        s += n;
    }
    // 2. boundaries: single sectors at both ends, straddling chunk and stripe boundaries,
    //    exactly one chunk, one full stripe, a stripe plus one sector at an odd offset
    let mut edge = vec![
        (0, 1),
        (len - 1, 1),
        (c - 1, 2),
        (c, c),
        (0, stripe.min(len)),
    ];
    for k in 1..=(2 * l.ndevs()).min(len / c - 1) {
        edge.push((k * c - 1, 2));
        edge.push((k * c, 1));
    }
    if len > stripe + c / 2 + 1 {
        edge.push((c / 2, stripe + 1));
    }
    edge.push((len.saturating_sub(c + 3.min(c - 1)), c.min(len)));
    for (s, n) in edge {
        let n = n.min(len - s).min(MAX_IO);
        plan.push((s, n));
    }
    // 3. random positions and lengths from the seed: single sectors, sub-chunk and
    //    multi-chunk I/O, chunk-aligned or not
    let mut r = seed ^ 0x5EED_0000_A3F1;
    for _ in 0..nrand {
        let start = splitmix(&mut r) % len;
        let n = match splitmix(&mut r) % 4 {
            0 => 1,
            1 => 1 + splitmix(&mut r) % c,
            2 => c,
            _ => 1 + splitmix(&mut r) % (3 * stripe),
        };
        let start = if splitmix(&mut r) % 4 == 0 {
            start - start % c
        } else {
            start
        };
        plan.push((start, n.min(len - start).min(MAX_IO)));
    }
    plan
}

fn cmd_mapping(a: &Args) -> Res<u64> {
    let (l, paths, len) = layout_of(a)?;
    let seed = a.num("seed")?;
    let nrand = a.num_or("ops", 64)?;
    let quiet = a.opt("quiet-mismatch").is_some();
    let target = Dev::open(a.str("target")?)?;
    if target.sectors != len {
        fail!(
            "{} has {} sectors, the layout says {len}",
            target.path,
            target.sectors
        );
    }
    let per = len / l.ndevs();
    let margin = a.num_or("margin", 2 * l.chunk)?;
    let mut members = Vec::new();
    let mut ends = Vec::new();
    for (i, p) in paths.iter().enumerate() {
        let d = Dev::open(p)?;
        let need = l.offsets[i] + per;
        if d.sectors < need {
            fail!("member {p} has {} sectors, needs {need}", d.sectors);
        }
        ends.push((need + margin).min(d.sectors));
        members.push(d);
    }

    // background on every member area, data area and margins around it
    let mut buf = ABuf::new(MAX_IO as usize * SECTOR);
    for (i, d) in members.iter().enumerate() {
        let mut s = 0;
        while s < ends[i] {
            let n = (ends[i] - s).min(MAX_IO);
            let descs: Vec<Desc> = (s..s + n).map(|x| Desc::background(i as u64, x)).collect();
            write_descs(d, s, &descs, seed, &mut buf)?;
            s += n;
        }
        d.sync()?;
    }

    // the I/O through the target, tracked in the model
    let plan = io_plan(&l, len, seed, nrand);
    let mut model = vec![0u64; len as usize];
    let mut written = 0u64;
    for (g, &(s, n)) in plan.iter().enumerate() {
        let gen = g as u64 + 1;
        let descs: Vec<Desc> = (s..s + n).map(|x| Desc::logical(x, gen)).collect();
        write_descs(&target, s, &descs, seed, &mut buf)?;
        for x in s..s + n {
            model[x as usize] = gen;
        }
        written += n;
    }
    target.sync()?;

    let show = |bad: u64| if quiet { 0 } else { bad };
    // read back through the target
    let bad_t = check_range(&target, 0, len, seed, "target", &|x| {
        Some(Desc::logical(x, model[x as usize]))
    })?;

    // the members: background everywhere except where the model maps a logical sector
    let mut expected: Vec<Vec<Desc>> = (0..members.len())
        .map(|i| {
            (0..ends[i])
                .map(|x| Desc::background(i as u64, x))
                .collect()
        })
        .collect();
    for x in 0..len {
        let (m, ms) = l.map(x);
        expected[m][ms as usize] = Desc::logical(x, model[x as usize]);
    }
    let mut bad_m = 0;
    for (i, d) in members.iter().enumerate() {
        let e = &expected[i];
        bad_m += check_range(d, 0, ends[i], seed, "member", &|x| Some(e[x as usize]))?;
    }
    let compared: u64 = ends.iter().sum();
    println!(
        "# mapping chunk {} ndevs {} len {}: {} writes ({} sectors), target {} bad of {}, members {} bad of {}",
        l.chunk,
        l.ndevs(),
        len,
        plan.len(),
        written,
        show(bad_t),
        len,
        show(bad_m),
        compared
    );
    Ok(bad_t + bad_m)
}

fn cmd_members(a: &Args) -> Res<u64> {
    let (l, paths, len) = layout_of(a)?;
    let (seed, gen) = (a.num("seed")?, a.num("gen")?);
    let start = a.num_or("start", 0)?;
    let count = a.num_or("count", len.saturating_sub(start))?;
    if start + count > len {
        fail!("range {start}+{count} beyond --len {len}");
    }
    let members: Vec<Dev> = paths.iter().map(|p| Dev::open(p)).collect::<Res<_>>()?;
    let mut bad = 0;
    let mut one = ABuf::new(SECTOR);
    let mut want = [0u8; SECTOR];
    // Sector by sector via the model: slow but simple; used on small ranges.
    for x in start..start + count {
        let (m, ms) = l.map(x);
        let b = one.get(SECTOR);
        members[m].read(ms, b)?;
        let d = Desc::logical(x, gen);
        fill_sector(&mut want, seed, d);
        if b != &want[..] {
            if bad < SHOW_MAX {
                println!(
                    "# MISMATCH member {} sector {ms} (logical {x}): found {}",
                    members[m].path,
                    describe(b)
                );
            }
            bad += 1;
        }
    }
    println!("# members hold logical {start}+{count} gen {gen}: {bad} bad");
    Ok(bad)
}

fn cmd_layout(a: &Args) -> Res<u64> {
    let chunk = a.num("chunk")?;
    let n = a.num("ndevs")?;
    let x = a.num("sector")?;
    let l = Layout {
        chunk,
        offsets: vec![0; n as usize],
    };
    let (m, ms) = l.map(x);
    println!("{m} {ms}");
    Ok(0)
}

/// `copies`: every copy of every chunk where the mirrored layout puts it.
fn cmd_copies(a: &Args) -> Res<u64> {
    let target = Dev::open(a.str("target")?)?;
    let chunk = a.num("chunk")?;
    let copies = a.num("copies")?;
    let chunks = a.num("chunks")?;
    let members = a.members()?;
    let devs = members
        .iter()
        .map(|(p, _)| Dev::open(p))
        .collect::<Res<Vec<_>>>()?;
    let n = devs.len() as u64;
    if chunk == 0 || copies == 0 || copies > n {
        fail!("--chunk and --copies must be at least 1, --copies at most the members");
    }
    let bytes = (chunk as usize) * SECTOR;
    let (mut want, mut got) = (ABuf::new(bytes), ABuf::new(bytes));
    let mut bad = 0u64;
    for c in 0..chunks {
        target.read(c * chunk, want.get(bytes))?;
        for k in 0..copies {
            let p = c * copies + k;
            let i = (p % n) as usize;
            let at = members[i].1 + (p / n) * chunk;
            devs[i].read(at, got.get(bytes))?;
            if got.get(bytes) != want.get(bytes) {
                if bad < SHOW_MAX {
                    println!(
                        "chunk {c} copy {k}: member {i} ({}) sector {at} differs",
                        devs[i].path
                    );
                }
                bad += 1;
            }
        }
    }
    println!("{chunks} chunks x {copies} copies checked, {bad} differ");
    Ok(bad)
}

// ---------------------------------------------------------------- barrier

/// The generation a barrier marker sector shows: 0 for zeroes, the marker's generation for
/// a whole, valid marker of `lba`, `None` for anything else.
fn barrier_gen(buf: &[u8], lba: u64) -> Option<u64> {
    if buf.iter().all(|&b| b == 0) {
        return Some(0);
    }
    if &buf[0..8] != MAGIC || u64_at(buf, 8) != BARRIER_SEED || u64_at(buf, 16) != lba {
        return None;
    }
    let gen = u64_at(buf, 24);
    let mut want = [0u8; SECTOR];
    fill_sector(&mut want, BARRIER_SEED, Desc::logical(lba, gen));
    (want[..] == buf[..SECTOR] && gen > 0).then_some(gen)
}

/// The nodes whose marker shows a generation below `gen`, with what they show.
fn barrier_missing(gens: &[u64], gen: u64) -> Vec<(usize, u64)> {
    gens.iter()
        .enumerate()
        .filter(|&(_, &g)| g < gen)
        .map(|(i, &g)| (i, g))
        .collect()
}

fn cmd_barrier(a: &Args) -> Res<u64> {
    let dev = Dev::open(a.str("dev")?)?;
    let sector = a.num("sector")?;
    let node = a.num("node")?;
    let nodes = a.num("nodes")?;
    let gen = a.num("gen")?;
    let timeout = a.num_or("timeout", 300)?;
    if nodes == 0 || node >= nodes {
        fail!("--node {node} must be below --nodes {nodes}");
    }
    if gen == 0 {
        fail!("--gen must be at least 1 (0 is a sector never written)");
    }
    if sector + nodes > dev.sectors {
        fail!(
            "sectors {sector}..{} beyond the end of {} ({} sectors)",
            sector + nodes,
            dev.path,
            dev.sectors
        );
    }
    let t0 = std::time::Instant::now();
    let mut one = ABuf::new(SECTOR);
    fill_sector(
        one.get(SECTOR),
        BARRIER_SEED,
        Desc::logical(sector + node, gen),
    );
    dev.write(sector + node, one.get(SECTOR))?;
    dev.sync()?;
    let n = nodes as usize;
    let mut buf = ABuf::new(n * SECTOR);
    loop {
        let b = buf.get(n * SECTOR);
        dev.read(sector, b)?;
        let mut gens = Vec::with_capacity(n);
        for i in 0..n {
            let s = &b[i * SECTOR..(i + 1) * SECTOR];
            let lba = sector + i as u64;
            match barrier_gen(s, lba) {
                Some(g) => gens.push(g),
                None => fail!(
                    "{} sector {lba} (node {i}'s marker) holds {}: not a barrier disk?",
                    dev.path,
                    describe(s)
                ),
            }
        }
        let missing = barrier_missing(&gens, gen);
        let secs = t0.elapsed().as_secs_f64();
        if missing.is_empty() {
            println!("# barrier {gen}: all {nodes} nodes after {secs:.1} s (node {node})");
            return Ok(0);
        }
        if secs >= timeout as f64 {
            let list: Vec<String> = missing
                .iter()
                .map(|(i, g)| format!("{i} (at {g})"))
                .collect();
            println!(
                "# barrier {gen} TIMEOUT after {secs:.0} s (node {node}): missing node(s) {}",
                list.join(", ")
            );
            return Ok(missing.len() as u64);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = argv.first() else {
        eprintln!("usage: amf-iotool write|verify|verify-any|zero|mapping|members|layout|copies|barrier|crash-write|crash-check|logwrites|replay|phase-write|phase-check|add-logon-key ...");
        return ExitCode::from(2);
    };
    let r = Args::parse(&argv[1..]).and_then(|a| match cmd.as_str() {
        "write" => cmd_write(&a),
        "verify" => cmd_verify(&a),
        "zero" => cmd_zero(&a),
        "mapping" => cmd_mapping(&a),
        "members" => cmd_members(&a),
        "layout" => cmd_layout(&a),
        "copies" => cmd_copies(&a),
        "barrier" => cmd_barrier(&a),
        "verify-any" => cmd_verify_any(&a),
        "crash-write" => crash::cmd_crash_write(&a),
        "crash-check" => crash::cmd_crash_check(&a),
        "logwrites" => logwrites::cmd_logwrites(&a),
        "replay" => replay::cmd_replay(&a),
        "phase-write" => replay::cmd_phase_write(&a),
        "phase-check" => replay::cmd_phase_check(&a),
        "add-logon-key" => addkey::cmd_add_logon_key(&a),
        _ => Err(Fail(format!("unknown subcommand '{cmd}'"))),
    });
    match r {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(Fail(m)) => {
            eprintln!("amf-iotool {cmd}: {m}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_matches_worked_example() {
        // 3 members, chunk 8, offsets 100/200/300: logical 0..8 -> m0 100.., 8..16 -> m1 200..,
        // 16..24 -> m2 300.., 24..32 -> m0 108..
        let l = Layout {
            chunk: 8,
            offsets: vec![100, 200, 300],
        };
        assert_eq!(l.map(0), (0, 100));
        assert_eq!(l.map(7), (0, 107));
        assert_eq!(l.map(8), (1, 200));
        assert_eq!(l.map(23), (2, 307));
        assert_eq!(l.map(24), (0, 108));
        assert_eq!(l.map(24 * 10 + 5), (0, 100 + 80 + 5));
    }

    #[test]
    fn map_is_a_bijection_onto_member_areas() {
        for &(chunk, n) in &[(8u64, 1usize), (16, 2), (128, 3), (8, 5)] {
            let offsets: Vec<u64> = (0..n as u64).map(|i| i * 7 + 3).collect();
            let l = Layout {
                chunk,
                offsets: offsets.clone(),
            };
            let len = chunk * n as u64 * 6;
            let per = len / n as u64;
            let mut seen = vec![vec![false; per as usize]; n];
            for x in 0..len {
                let (m, ms) = l.map(x);
                let rel = (ms - offsets[m]) as usize;
                assert!(rel < per as usize);
                assert!(!seen[m][rel]);
                seen[m][rel] = true;
            }
        }
    }

    #[test]
    fn pattern_roundtrip_and_describe() {
        let mut b = [0u8; SECTOR];
        fill_sector(&mut b, 42, Desc::logical(1234, 7));
        assert_eq!(describe(&b), "logical sector 1234 gen 7 (seed 42)");
        fill_sector(&mut b, 42, Desc::background(3, 99));
        assert_eq!(describe(&b), "background of member 3 sector 99 (seed 42)");
        b[100] ^= 1;
        assert!(describe(&b).ends_with("(torn/corrupt body)"));
        let mut c = [0u8; SECTOR];
        fill_sector(&mut c, 42, Desc::logical(1234, 8));
        fill_sector(&mut b, 42, Desc::logical(1234, 7));
        assert_ne!(b, c);
        assert_eq!(describe(&[0u8; SECTOR]), "zeroes");
    }

    #[test]
    fn barrier_markers() {
        let mut b = [0u8; SECTOR];
        assert_eq!(barrier_gen(&b, 5), Some(0));
        fill_sector(&mut b, BARRIER_SEED, Desc::logical(5, 3));
        assert_eq!(barrier_gen(&b, 5), Some(3));
        // Another node's sector, another seed, a torn body: not a marker of this sector.
        assert_eq!(barrier_gen(&b, 6), None);
        let mut c = b;
        c[300] ^= 0x40;
        assert_eq!(barrier_gen(&c, 5), None);
        fill_sector(&mut c, 1, Desc::logical(5, 3));
        assert_eq!(barrier_gen(&c, 5), None);
        assert_eq!(barrier_missing(&[2, 3, 1, 5], 3), vec![(0, 2), (2, 1)]);
        assert!(barrier_missing(&[3, 4], 3).is_empty());
    }

    #[test]
    fn strides() {
        let st = Stride {
            every: 3,
            phase: 1,
            bs: 8,
        };
        // Blocks 1, 4, 7... of 8 sectors.
        assert_eq!(st.blocks(0, 80).collect::<Vec<_>>(), vec![8, 32, 56]);
        assert_eq!(st.blocks(32, 48).collect::<Vec<_>>(), vec![32, 56]);
        assert_eq!(st.blocks(40, 40).collect::<Vec<_>>(), vec![56]);
        assert_eq!(st.blocks(40, 8).count(), 0);
        assert!(st.owns(8) && st.owns(15) && !st.owns(16) && !st.owns(7) && st.owns(39));
        // The phases of one stride partition the range, each block once.
        for every in 1..5u64 {
            let mut seen = vec![0u8; 32];
            for phase in 0..every {
                let st = Stride {
                    every,
                    phase,
                    bs: 2,
                };
                for lba in st.blocks(4, 60) {
                    assert!(st.owns(lba) && st.owns(lba + 1));
                    seen[(lba / 2) as usize] += 1;
                }
            }
            assert!(seen[..2].iter().all(|&n| n == 0));
            assert!(seen[2..].iter().all(|&n| n == 1), "{every}: {seen:?}");
        }
    }

    fn block(seed: u64, lba: u64, gen: u64, n: u64) -> Vec<u8> {
        let mut v = vec![0u8; n as usize * SECTOR];
        for i in 0..n {
            let at = i as usize * SECTOR;
            fill_sector(&mut v[at..at + SECTOR], seed, Desc::logical(lba + i, gen));
        }
        v
    }

    #[test]
    fn verify_any_judges_whole_blocks() {
        let seeds = [1, 2, 3];
        assert_eq!(any_block(&block(2, 16, 5, 8), 16, &seeds, 5), Ok((2, 5)));
        // Generation out of range, unknown seed, misplaced, zeroes.
        assert!(any_block(&block(2, 16, 6, 8), 16, &seeds, 5).is_err());
        assert!(any_block(&block(2, 16, 0, 8), 16, &seeds, 5).is_err());
        assert!(any_block(&block(4, 16, 1, 8), 16, &seeds, 5).is_err());
        let e = any_block(&block(1, 24, 1, 8), 16, &seeds, 5).unwrap_err();
        assert!(e.contains("misplaced"), "{e}");
        assert!(any_block(&[0u8; 8 * SECTOR], 16, &seeds, 5).is_err());
        // Two writers mixed in one block, sector-wise: torn.
        let mut b = block(1, 16, 3, 8);
        b[4 * SECTOR..].copy_from_slice(&block(2, 20, 3, 4));
        let e = any_block(&b, 16, &seeds, 5).unwrap_err();
        assert!(e.starts_with("torn block"), "{e}");
        // One writer, two generations: torn as well.
        let mut b = block(1, 16, 3, 8);
        b[7 * SECTOR..].copy_from_slice(&block(1, 23, 2, 1));
        assert!(any_block(&b, 16, &seeds, 5).is_err());
        // A torn sector: its header says seed 1, its tail is seed 2's.
        let mut b = block(1, 16, 3, 8);
        let other = block(2, 16, 3, 1);
        b[256..SECTOR].copy_from_slice(&other[256..SECTOR]);
        let e = any_block(&b, 16, &seeds, 5).unwrap_err();
        assert!(e.contains("torn/corrupt"), "{e}");
    }

    fn args(v: &[&str]) -> Args {
        Args::parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    /// Three writers interleaved on one file, then one contended range, through the
    /// subcommands (skipped where the temporary directory has no O_DIRECT).
    #[test]
    fn strided_writers_and_verify_any_on_a_file() {
        let path = std::env::temp_dir().join(format!("amf-iotool-test-{}", std::process::id()));
        let p = path.to_str().unwrap().to_string();
        File::create(&path).unwrap().set_len(64 * 1024).unwrap();
        if Dev::open(&p).is_err() {
            eprintln!("skipped: no O_DIRECT in {}", std::env::temp_dir().display());
            let _ = std::fs::remove_file(&path);
            return;
        }
        let run = |v: &[&str]| {
            let mut all = vec!["--dev", p.as_str()];
            all.extend_from_slice(&v[1..]);
            let a = args(&all);
            match v[0] {
                "w" => cmd_write(&a),
                "v" => cmd_verify(&a),
                _ => cmd_verify_any(&a),
            }
        };
        // 64 KiB = 128 sectors = 16 blocks; nodes 1..3 own blocks b % 3 == node - 1.
        for node in 1..=3u64 {
            let (seed, phase) = (node.to_string(), (node - 1).to_string());
            for gen in ["1", "2"] {
                let w = [
                    "w", "--seed", &seed, "--gen", gen, "--every", "3", "--phase", &phase,
                ];
                assert_eq!(run(&w).unwrap(), 0);
            }
        }
        for node in 1..=3u64 {
            let (seed, phase) = (node.to_string(), (node - 1).to_string());
            let v = [
                "v", "--seed", &seed, "--gen", "2", "--every", "3", "--phase", &phase,
            ];
            assert_eq!(run(&v).unwrap(), 0);
            let old = [
                "v", "--seed", &seed, "--gen", "1", "--every", "3", "--phase", &phase,
            ];
            assert!(run(&old).unwrap() > 0);
        }
        // Without a stride, the neighbours' blocks are mismatches.
        assert!(run(&["v", "--seed", "1", "--gen", "2"]).unwrap() > 0);
        assert_eq!(
            run(&["a", "--seeds", "1,2,3", "--max-gen", "2"]).unwrap(),
            0
        );
        assert_eq!(run(&["a", "--seeds", "1,2", "--max-gen", "2"]).unwrap(), 5);
        assert_eq!(
            run(&["a", "--seeds", "1,2,3", "--max-gen", "1"]).unwrap(),
            16
        );
        // Whole blocks only; --phase needs --every.
        assert!(run(&["w", "--seed", "1", "--gen", "1", "--every", "2", "--start", "4"]).is_err());
        assert!(run(&["w", "--seed", "1", "--gen", "1", "--phase", "1"]).is_err());
        assert!(run(&["w", "--seed", "1", "--gen", "1", "--every", "2", "--phase", "2"]).is_err());
        // A torn sector in the middle of a block of node 2.
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(&[0xff; 100], 8 * SECTOR_U64 + 3 * SECTOR_U64 + 400)
            .unwrap();
        drop(f);
        assert_eq!(
            run(&["a", "--seeds", "1,2,3", "--max-gen", "2"]).unwrap(),
            1
        );
        let v = [
            "v", "--seed", "2", "--gen", "2", "--every", "3", "--phase", "1",
        ];
        assert_eq!(run(&v).unwrap(), 1);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn plan_stays_in_bounds_and_is_deterministic() {
        let l = Layout {
            chunk: 16,
            offsets: vec![0, 0, 0],
        };
        let len = 16 * 3 * 10;
        let p = io_plan(&l, len, 1, 200);
        assert_eq!(p, io_plan(&l, len, 1, 200));
        assert_ne!(p, io_plan(&l, len, 2, 200));
        for &(s, n) in &p {
            assert!(n >= 1 && s + n <= len, "{s}+{n}");
        }
    }
}
