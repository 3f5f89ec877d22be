// SPDX-License-Identifier: GPL-2.0
//! Safety and mdadm's habits (issue 21, item 5), with regular files as devices: `format`
//! refuses foreign signatures without `--force`; `--chunk` is KiB as in mdadm; `--level`
//! takes mdadm's spellings; `table` refuses, from the superblocks, what the kernel's
//! constructor would refuse; a `-` member is missing; a closed pipe is not an error.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::process::{Command, Stdio};

mod common;
use common::{amfctl, stderr, stdout, TempDir};

const MIB: u64 = 1 << 20;
const UUID: &str = "6a1f0c2e-93b4-4d5e-8f70-1a2b3c4d5e6f";
const OTHER: &str = "0badc0de-0000-4000-8000-00000000f5f5";

fn poke(path: &str, at: u64, bytes: &[u8]) {
    let mut f = OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(bytes).unwrap();
}

/// Bytes to write at byte offsets.
type Writes<'a> = &'a [(u64, &'a [u8])];

/// `amfctl table --offline --size SIZE --level raid0 --chunk CHUNK --dev DEV`.
fn offline_raid0(size: &str, chunk: &str, dev: &str) -> std::process::Output {
    amfctl(&[
        "table",
        "--offline",
        "--size",
        size,
        "--level",
        "raid0",
        "--chunk",
        chunk,
        "--dev",
        dev,
    ])
}

#[test]
fn format_refuses_foreign_signatures_without_force() {
    let d = TempDir::new("sig");
    let md12 = [0xa92b_4efcu32.to_le_bytes(), 1u32.to_le_bytes()].concat();
    let cases: &[(&str, Writes)] = &[
        ("ext2", &[(1080, &[0x53, 0xef])]),
        ("xfs", &[(0, b"XFSB")]),
        ("btrfs", &[(0x10040, b"_BHRfS_M")]),
        ("swap", &[(4086, b"SWAPSPACE2")]),
        ("LVM2_member", &[(512, b"LABELONE"), (536, b"LVM2 001")]),
        ("linux_raid_member", &[(4096, &md12)]),
        ("crypto_LUKS", &[(0, b"LUKS\xba\xbe")]),
        ("gpt", &[(512, b"EFI PART")]),
        ("dos", &[(510, &[0x55, 0xaa]), (446, &[0x80])]),
    ];
    for (kind, writes) in cases {
        let devs = vec![
            d.file(&format!("{kind}-0"), 8 * MIB),
            d.file(&format!("{kind}-1"), 8 * MIB),
        ];
        for (at, b) in *writes {
            poke(&devs[1], *at, b);
        }
        let args = [
            "format", "--level", "raid1", "--chunk", "64", &devs[0], &devs[1],
        ];
        let o = amfctl(&args);
        assert_eq!(o.status.code(), Some(1), "{kind}: {}", stdout(&o));
        let e = stderr(&o);
        assert!(
            e.starts_with(&format!("amfctl: {} holds {kind} (magic at byte ", devs[1])),
            "{kind}: {e}"
        );
        assert!(e.contains("(use --force to overwrite it)"), "{e}");
        // Nothing written, on either device.
        for dev in &devs {
            let o = amfctl(&["examine", dev]);
            assert!(
                stderr(&o).contains("No amf superblock"),
                "{kind}: {}",
                stderr(&o)
            );
        }
        let mut forced = args.to_vec();
        forced.insert(1, "--force");
        let o = amfctl(&forced);
        assert!(o.status.success(), "{kind} --force: {}", stderr(&o));
    }
}

#[test]
fn chunk_is_kib_as_in_mdadm() {
    let d = TempDir::new("chunk");
    let devs = d.files(2, 8 * MIB);
    let o = amfctl(&[
        "format", "--level", "raid1", "--chunk", "64", &devs[0], &devs[1],
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j: serde_json::Value =
        serde_json::from_slice(&amfctl(&["examine", "--json", &devs[0]]).stdout).unwrap();
    assert_eq!(j["chunk_sectors"], 128);
    // table/scrub/create: the same; sectors only with an `s`.
    for (chunk, sectors) in [
        ("64", 128),
        ("64K", 128),
        ("1M", 2048),
        ("128s", 128),
        ("4", 8),
    ] {
        let o = offline_raid0("8M", chunk, "/dev/vdb");
        assert!(o.status.success(), "{chunk}: {}", stderr(&o));
        assert_eq!(
            stdout(&o),
            format!("0 16384 amf raid0 1 {sectors} 1 /dev/vdb 0\n"),
            "{chunk}"
        );
    }
    let o = offline_raid0("8M", "64x", "a");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("invalid chunk size '64x': expected KiB (e.g. 64, as mdadm)"));
    // 24 KiB: not a power of two, said in sectors and KiB.
    let o = offline_raid0("48", "24", "a");
    assert_eq!(
        stderr(&o),
        "amfctl: Chunk size must be a power of two (--chunk is 48 sectors (24.00 KiB); it must \
         be a power of two from 8 to 2097152 sectors (4K to 1G))\n"
    );
}

#[test]
fn level_takes_mdadms_spellings() {
    let line = |level: &str| {
        amfctl(&[
            "table",
            "--offline",
            "--size",
            "12M",
            "--level",
            level,
            "--chunk",
            "64K",
            "--dev",
            "/dev/vdb",
            "--dev",
            "/dev/vdc",
            "--dev",
            "/dev/vdd",
            "--dev",
            "/dev/vde",
        ])
    };
    for (given, name, len) in [
        ("5", "raid5", 24576),
        ("raid5", "raid5", 24576),
        ("RAID6", "raid6", 24576),
        ("0", "raid0", 24576),
        ("stripe", "raid0", 24576),
        ("1", "raid1", 24576),
        ("mirror", "raid1", 24576),
        ("10", "raid10", 24576),
    ] {
        let o = line(given);
        assert!(o.status.success(), "{given}: {}", stderr(&o));
        assert!(
            stdout(&o).starts_with(&format!("0 {len} amf {name} 1 128 4 ")),
            "{given}: {}",
            stdout(&o)
        );
    }
    let o = line("4");
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "amfctl: Unknown RAID level (--level 4: valid levels are raid0 (0, stripe), raid1 (1, \
         mirror), raid5 (5), raid6 (6), raid10 (10))\n"
    );
    let d = TempDir::new("level");
    let devs = d.files(4, 8 * MIB);
    let mut args = vec!["format", "--level", "6", "--chunk", "64"];
    args.extend(devs.iter().map(String::as_str));
    let o = amfctl(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("formatted 4 raid6 members"),
        "{}",
        stdout(&o)
    );
    args[2] = "raid4";
    let o = amfctl(&args);
    assert_eq!(
        stderr(&o),
        "amfctl: unknown RAID level 'raid4': valid levels are raid0 (0, stripe), raid1 (1, \
         mirror), raid5 (5), raid6 (6), raid10 (10)\n"
    );
}

/// A raid5 group of four 16 MiB files formatted with 64 KiB chunks and 4 MiB of data each.
fn raid5_group(d: &TempDir) -> Vec<String> {
    let devs = d.files(4, 16 * MIB);
    let mut args = vec![
        "format", "--level", "raid5", "--chunk", "64K", "--size", "4M", "--uuid", UUID,
    ];
    args.extend(devs.iter().map(String::as_str));
    let o = amfctl(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    devs
}

/// `amfctl table --group UUID --level <level> --chunk <chunk> --dev <dev>...`.
fn group_table(level: &str, chunk: &str, devs: &[String], extra: &[&str]) -> std::process::Output {
    let mut args = vec!["table", "--group", UUID, "--level", level, "--chunk", chunk];
    for dev in devs {
        args.extend(["--dev", dev.as_str()]);
    }
    args.extend_from_slice(extra);
    amfctl(&args)
}

fn at(devs: &[String], offset: &str) -> Vec<String> {
    devs.iter().map(|d| format!("{d}:{offset}")).collect()
}

#[test]
fn table_refuses_what_the_superblocks_refuse() {
    let d = TempDir::new("sbcheck");
    let devs = raid5_group(&d);
    let m = at(&devs, "4M");
    // The right table: without --size, the group's data area (4 MiB of the 16 each).
    let o = group_table("raid5", "64K", &m, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        format!(
            "0 24576 amf raid5 3 128 group {UUID} 4 {} 8192 {} 8192 {} 8192 {} 8192\n",
            devs[0], devs[1], devs[2], devs[3]
        )
    );
    let refused = |o: std::process::Output, want: &str| {
        assert_eq!(o.status.code(), Some(1), "{want}: {}", stdout(&o));
        let e = stderr(&o);
        assert!(
            e.starts_with(&format!("amfctl: {want}")),
            "want {want:?}, got {e}"
        );
        assert!(stdout(&o).is_empty());
    };
    // Another chunk size, another level.
    refused(
        group_table("raid5", "32K", &m, &[]),
        &format!(
            "Table does not match the group's superblock (the group ({}) is raid5 with \
             128-sector chunks, 4 members, 8192 data sectors each; the table: raid5 with \
             64-sector chunks, 4 members, 8192 sectors each)",
            devs[0]
        ),
    );
    refused(
        group_table("raid6", "64K", &m, &["--size", "16384"]),
        "Table does not match the group's superblock (the group",
    );
    // More than the data area.
    refused(
        group_table("raid5", "64K", &m, &["--size", "24M"]),
        "Table does not match the group's superblock (",
    );
    // Members swapped.
    let swapped = vec![m[1].clone(), m[0].clone(), m[2].clone(), m[3].clone()];
    refused(
        group_table("raid5", "64K", &swapped, &[]),
        &format!(
            "Member given in the wrong position ({} is --dev number 1 but holds role 1: give the \
             members in role order",
            devs[1]
        ),
    );
    // An offset that is not the data offset.
    let mut off = m.clone();
    off[2] = format!("{}:8200", devs[2]);
    refused(
        group_table("raid5", "64K", &off, &[]),
        &format!(
            "Member offset is not its superblock's data offset (--dev {d}:8200: the data area \
             of {d} starts at sector 8192 (--dev {d}:8192))",
            d = devs[2]
        ),
    );
    // Three of four members.
    refused(
        group_table("raid5", "64K", &m[..3], &[]),
        "Wrong number of members for the group (3 --dev given, the group has 4 members)",
    );
    // A member of another group.
    let foreign = d.file("foreign", 16 * MIB);
    let o = amfctl(&[
        "format", "--level", "raid1", "--chunk", "64K", "--uuid", OTHER, &foreign,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut other = m.clone();
    other[3] = format!("{foreign}:4M");
    refused(
        group_table("raid5", "64K", &other, &[]),
        &format!(
            "Member belongs to another group ({foreign} belongs to group {OTHER}, not {UUID})"
        ),
    );
    // A device that is no member at all counts as missing: one is tolerated, two are not.
    let blank = d.file("blank", 16 * MIB);
    let mut one = m.clone();
    one[1] = format!("{blank}:4M");
    assert!(group_table("raid5", "64K", &one, &[]).status.success());
    one[2] = format!("{blank}:4M");
    refused(group_table("raid5", "64K", &one, &[]), "Duplicate device (");
    let blank2 = d.file("blank2", 16 * MIB);
    one[2] = format!("{blank2}:4M");
    refused(
        group_table("raid5", "64K", &one, &[]),
        "Too many failed members for the RAID level (2 members missing, failed or stale; raid5 \
         tolerates 1)",
    );
    // --offline opens nothing, so it checks nothing of the superblocks (the table is for
    // another host).
    assert!(
        group_table("raid5", "32K", &m, &["--offline", "--size", "24576"])
            .status
            .success()
    );
}

#[test]
fn a_missing_member_is_a_dash() {
    let d = TempDir::new("dash");
    let devs = raid5_group(&d);
    let mut m = at(&devs, "4M");
    m[2] = "-:4M".to_string();
    let o = group_table("raid5", "64K", &m, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        format!(
            "0 24576 amf raid5 3 128 group {UUID} 4 {} 8192 {} 8192 - 8192 {} 8192\n",
            devs[0], devs[1], devs[3]
        )
    );
    // Without a group: the size from the other members; `-` alone at offset 0.
    let o = amfctl(&[
        "table", "--level", "raid1", "--chunk", "64K", "--dev", &devs[0], "--dev", "-",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        format!("0 32768 amf raid1 1 128 2 {} 0 - 0\n", devs[0])
    );
    // More missing than the level tolerates: the kernel parser's refusal.
    m[1] = "-:4M".to_string();
    let o = group_table("raid5", "64K", &m, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("amfctl: Too many failed members for the RAID level"),
        "{}",
        stderr(&o)
    );
    // Only missing members: no size to find.
    let o = amfctl(&[
        "table", "--level", "raid1", "--chunk", "64K", "--dev", "-", "--dev", "-:0",
    ]);
    assert_eq!(o.status.code(), Some(1));
    // scrub needs every member.
    let o = amfctl(&[
        "scrub", "--level", "raid1", "--chunk", "64K", "--size", "128", "--dev", &devs[0], "--dev",
        "-",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("a '-' (missing) member cannot be checked"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_closed_pipe_is_not_an_error() {
    let d = TempDir::new("pipe");
    // Enough status text to fill any pipe buffer many times over.
    let mut text = String::new();
    for i in 0..20000 {
        text.push_str(&format!(
            "vol{i}: 0 2097152 amf raid0 4 AAAA 2097152/2097152 idle 0\n"
        ));
    }
    let f = d.0.join("status.txt");
    std::fs::write(&f, text).unwrap();
    for json in [false, true] {
        let mut args = vec!["status", "--from-file", f.to_str().unwrap()];
        if json {
            args.push("--json");
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_amfctl"))
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Read one line's worth, then close the pipe (what `head -1` does).
        let mut out = child.stdout.take().unwrap();
        let mut buf = [0u8; 64];
        out.read_exact(&mut buf).unwrap();
        drop(out);
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0), "json {json}: {}", stderr(&o));
        assert_eq!(stderr(&o), "", "json {json}");
    }
}
