// SPDX-License-Identifier: GPL-2.0
//! Runs `amfctl scrub` on member images in regular files: zeroed groups corrupted at places
//! computed by hand from the layout in Documentation/table-syntax.rst, and groups of random
//! data whose parity the core's reference maths wrote.

use std::fs;
use std::os::unix::fs::FileExt;
use std::process::Output;

use amf_core::geometry::{Geometry, Level};
use amf_core::parity;

mod common;
use common::{amfctl, stderr, stdout, TempDir};

const SECTOR: u64 = 512;
/// Chunk size of every group here: 8 sectors (4K).
const CS: u64 = 8;
/// Data area offset on every member, in sectors.
const OFF: u64 = 16;
/// Stripes (rows) on every member.
const ROWS: u64 = 12;

/// `n` zeroed member files of `OFF + ROWS * CS` sectors: their paths, and the same as
/// `--dev <path>:<OFF>` arguments.
fn members(d: &TempDir, n: usize) -> (Vec<String>, Vec<String>) {
    let paths = d.files(n, (OFF + ROWS * CS) * SECTOR);
    let devs = paths.iter().map(|p| format!("{p}:{OFF}")).collect();
    (paths, devs)
}

fn scrub(level: &str, devs: &[String], extra: &[&str]) -> Output {
    let mut args = vec!["scrub", "--level", level, "--chunk", "4K"];
    args.extend_from_slice(extra);
    for d in devs {
        args.extend_from_slice(&["--dev", d]);
    }
    amfctl(&args)
}

/// Flips the bits of `mask` in byte `byte` of sector `sector` of a member file.
fn flip(path: &str, sector: u64, byte: u64, mask: u8) {
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let pos = sector * SECTOR + byte;
    let mut b = [0u8];
    f.read_exact_at(&mut b, pos).unwrap();
    b[0] ^= mask;
    f.write_all_at(&b, pos).unwrap();
}

fn assert_run(o: &Output, code: i32, out: &str) {
    assert_eq!(o.status.code(), Some(code), "{}{}", stdout(o), stderr(o));
    assert_eq!(stdout(o), out);
    assert_eq!(stderr(o), "");
}

/// A line of `amfctl scrub`: stripe `stripe` mismatched in `what` (P, Q, copy) on `member`.
fn mismatch(stripe: u64, what: &str, member: usize, sector: u64) -> String {
    format!("mismatch: stripe {stripe} {what} member {member} sector {sector}\n")
}

/// `amfctl scrub` of `devs` (no more options) prints `mismatches` (whole lines), then that
/// `stripes` were checked and `bad` mismatched; exits 1 if any did, else 0.
fn assert_scrub(level: &str, devs: &[String], mismatches: &str, stripes: u64, bad: u64) {
    assert_run(
        &scrub(level, devs, &[]),
        if bad == 0 { 0 } else { 1 },
        &format!("{mismatches}scrub: {stripes} stripes checked, {bad} mismatched\n"),
    );
}

#[test]
fn zeroed_raid5_is_clean_and_a_flip_is_found_where_the_layout_says() {
    let d = TempDir::new("scrub-r5");
    let (paths, devs) = members(&d, 4);
    assert_scrub("raid5", &devs, "", 12, 0);
    // Stripe 5 of 4 members: P on member 4 - 1 - 5 % 4 = 2, data chunk k on (2 + 1 + k) % 4:
    // chunk 1 on member 0. Corrupt its sector 3: P of stripe 5 differs from sector 3 on.
    let stripe = 5;
    flip(&paths[0], OFF + stripe * CS + 3, 100, 0x01);
    let bad = OFF + stripe * CS + 3;
    assert_scrub("raid5", &devs, &mismatch(5, "P", 2, bad), 12, 1);
    // Only the first two stripes: the damage is beyond them.
    assert_run(
        &scrub("raid5", &devs, &["--size", "48"]),
        0,
        "scrub: 2 stripes checked, 0 mismatched\n",
    );
    // A flip in the P chunk of stripe 0 (member 3) as well.
    flip(&paths[3], OFF, 0, 0x80);
    assert_scrub(
        "raid5",
        &devs,
        &(mismatch(0, "P", 3, OFF) + &mismatch(5, "P", 2, bad)),
        12,
        2,
    );
}

#[test]
fn zeroed_raid6_q_and_data_flips() {
    let d = TempDir::new("scrub-r6");
    let (paths, devs) = members(&d, 5);
    assert_scrub("raid6", &devs, "", 12, 0);
    // Stripe 2 of 5 members: P on 5 - 1 - 2 = 2, Q on 3. A flip in Q: only Q differs.
    flip(&paths[3], OFF + 2 * CS + 7, 511, 0x10);
    assert_scrub(
        "raid6",
        &devs,
        &mismatch(2, "Q", 3, OFF + 2 * CS + 7),
        12,
        1,
    );
    flip(&paths[3], OFF + 2 * CS + 7, 511, 0x10);
    // Stripe 6: P on 5 - 1 - 1 = 3, Q on 4, data chunk k on (3 + 2 + k) % 5: chunk 1 on
    // member 1. A flip in data: both P and Q differ, one stripe mismatched.
    flip(&paths[1], OFF + 6 * CS, 0, 0xff);
    let s = OFF + 6 * CS;
    assert_scrub(
        "raid6",
        &devs,
        &(mismatch(6, "P", 3, s) + &mismatch(6, "Q", 4, s)),
        12,
        1,
    );
}

/// A small deterministic generator (xorshift64*), so that the images need no crate.
struct Rng(u64);

impl Rng {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            *b = (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8;
        }
    }
}

/// Writes random data and its correct parity (the core's geometry and reference maths)
/// onto the member files.
fn write_group(level: Level, paths: &[String], seed: u64) -> Geometry {
    let g = Geometry::new(level, paths.len(), CS, ROWS * CS).unwrap();
    let files: Vec<fs::File> = paths
        .iter()
        .map(|p| fs::OpenOptions::new().write(true).open(p).unwrap())
        .collect();
    let mut rng = Rng(seed);
    let bytes = (CS * SECTOR) as usize;
    for s in 0..g.stripes() {
        let l = g.layout(s).unwrap();
        let mut data = vec![vec![0u8; bytes]; l.data_members().len()];
        for d in &mut data {
            rng.fill(d);
        }
        let refs: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
        let (mut p, mut q) = (vec![0u8; bytes], vec![0u8; bytes]);
        parity::gen_pq(&refs, &mut p, &mut q).unwrap();
        let at = (OFF + l.member_sector) * SECTOR;
        for (m, d) in l.data_members().iter().zip(&data) {
            files[*m as usize].write_all_at(d, at).unwrap();
        }
        files[l.p.unwrap()].write_all_at(&p, at).unwrap();
        if let Some(qm) = l.q {
            files[qm].write_all_at(&q, at).unwrap();
        }
    }
    g
}

#[test]
fn random_groups_with_correct_parity_are_clean() {
    for (level, name, n) in [
        (Level::Raid5, "raid5", 3),
        (Level::Raid5, "raid5", 4),
        (Level::Raid6, "raid6", 4),
        (Level::Raid6, "raid6", 6),
    ] {
        let d = TempDir::new(&format!("scrub-rand-{name}-{n}"));
        let (paths, devs) = members(&d, n);
        let g = write_group(level, &paths, 0x5eed + n as u64);
        assert_scrub(name, &devs, "", 12, 0);
        // One byte of data chunk 0 of stripe 9.
        let l = g.layout(9).unwrap();
        let m = l.data_member(0).unwrap();
        let sector = OFF + l.member_sector + 5;
        flip(&paths[m], sector, 3, 0x04);
        let mut expect = mismatch(9, "P", l.p.unwrap(), sector);
        if let Some(q) = l.q {
            expect.push_str(&mismatch(9, "Q", q, sector));
        }
        assert_scrub(name, &devs, &expect, 12, 1);
        flip(&paths[m], sector, 3, 0x04);
        // One byte of the Q chunk of stripe 4 (raid6).
        if let Some(q) = g.layout(4).unwrap().q {
            flip(&paths[q], OFF + 4 * CS, 0, 0x01);
            assert_scrub(name, &devs, &mismatch(4, "Q", q, OFF + 4 * CS), 12, 1);
        }
    }
}

#[test]
fn mirrors_and_raid0() {
    let d = TempDir::new("scrub-mirror");
    let (paths, devs) = members(&d, 3);
    // raid1: 12 chunks per member, member 2 differs in chunk 7.
    assert_scrub("raid1", &devs, "", 12, 0);
    flip(&paths[2], OFF + 7 * CS + 1, 9, 0x02);
    assert_scrub(
        "raid1",
        &devs,
        &mismatch(7, "copy", 2, OFF + 7 * CS + 1),
        12,
        1,
    );
    // raid10, 2 copies over 3 members: 36 device chunks, 18 logical chunks. Row 2 of
    // member 1 is device chunk 2 * 3 + 1 = 7: copy 1 of chunk 3 (copy 0 is on member 0).
    flip(&paths[2], OFF + 7 * CS + 1, 9, 0x02);
    assert_scrub("raid10", &devs, "", 18, 0);
    flip(&paths[1], OFF + 2 * CS, 0, 0x02);
    assert_scrub(
        "raid10",
        &devs,
        &mismatch(3, "copy", 1, OFF + 2 * CS),
        18,
        1,
    );
    assert_run(
        &scrub("raid0", &devs, &[]),
        0,
        "scrub: raid0 has no redundancy, nothing to check\n",
    );
}

#[test]
fn errors_exit_2() {
    let d = TempDir::new("scrub-err");
    let (_, devs) = members(&d, 4);
    // Too few members, a length that is not whole stripes, members too small for --size.
    for (level, n, extra, message) in [
        ("raid6", 3, &[][..], "Too few devices for the RAID level"),
        (
            "raid5",
            4,
            &["--size", "40"][..],
            "Target length is not a multiple of the full stripe",
        ),
        ("raid5", 4, &["--size", "2400"][..], "Device too small ("),
        ("raid7", 4, &[][..], "Unknown RAID level"),
    ] {
        let o = scrub(level, &devs[..n], extra);
        assert_eq!(
            o.status.code(),
            Some(2),
            "{level} {extra:?}: {}",
            stderr(&o)
        );
        assert!(
            stderr(&o).starts_with(&format!("amfctl: {message}")),
            "{}",
            stderr(&o)
        );
        assert_eq!(stdout(&o), "");
    }
    // A missing member and a malformed option.
    let missing = format!("{}/missing", d.0.display());
    let o = scrub("raid5", &[devs[0].clone(), missing.clone()], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).starts_with(&format!("amfctl: Device lookup failed: {missing}: ")),
        "{}",
        stderr(&o)
    );
    let o = scrub("raid5", &devs, &["--size", "12X"]);
    assert_eq!(o.status.code(), Some(2));
}
