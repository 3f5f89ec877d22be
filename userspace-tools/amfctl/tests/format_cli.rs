// SPDX-License-Identifier: GPL-2.0
//! Runs `amfctl format` and `amfctl examine` with regular files as member devices.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::process::Output;

mod common;
use common::{amfctl, TempDir};

fn ok(args: &[&str]) -> String {
    let o = amfctl(args);
    assert!(
        o.status.success(),
        "amfctl {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn fails(args: &[&str]) -> String {
    let o = amfctl(args);
    assert!(!o.status.success(), "amfctl {args:?} should fail");
    String::from_utf8(o.stderr).unwrap()
}

fn format(level: &str, extra: &[&str], devs: &[String]) -> Output {
    let mut args = vec!["format", "--level", level, "--chunk", "64K"];
    args.extend_from_slice(extra);
    args.extend(devs.iter().map(String::as_str));
    amfctl(&args)
}

fn examine_json(dev: &str) -> serde_json::Value {
    serde_json::from_str(&ok(&["examine", "--json", dev])).unwrap()
}

const MIB: u64 = 1 << 20;
const UUID: &str = "6a1f0c2e-93b4-4d5e-8f70-1a2b3c4d5e6f";

#[test]
fn format_then_examine_every_member() {
    let d = TempDir::new("raid5");
    let devs = d.files(4, 68 * MIB);
    let o = format("raid5", &["--uuid", UUID], &devs);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(out.contains(UUID), "{out}");
    let mut member_uuids = Vec::new();
    for (role, dev) in devs.iter().enumerate() {
        let j = examine_json(dev);
        assert_eq!(j["group_uuid"], UUID);
        assert_eq!(j["level"], "raid5");
        assert_eq!(j["role"], role);
        assert_eq!(j["members"], 4);
        assert_eq!(j["events"], 1);
        assert_eq!(j["chunk_sectors"], 128);
        assert_eq!(j["data_offset"], 8192);
        // 68 MiB - 4 MiB reserved = 64 MiB of data per member.
        assert_eq!(j["data_sectors"], 131072);
        assert_eq!(j["region_sectors"], 131072);
        assert_eq!(j["slot"], "A");
        assert_eq!(j["other_slot"], "valid");
        let table = j["member_table"].as_array().unwrap();
        assert_eq!(table.len(), 4);
        assert!(table.iter().all(|m| m["state"] == "in_sync"));
        assert_eq!(table[role]["uuid"], j["member_uuid"]);
        member_uuids.push(j["member_uuid"].as_str().unwrap().to_string());
    }
    member_uuids.sort();
    member_uuids.dedup();
    assert_eq!(member_uuids.len(), 4);
    let text = ok(&["examine", &devs[2]]);
    for want in [
        "Format version : 1",
        &format!("Group UUID : {UUID}"),
        "Role : 2",
        "Level : raid5",
        "<- this device",
    ] {
        assert!(text.contains(want), "{want:?} not in\n{text}");
    }
}

#[test]
fn format_refuses_a_formatted_device_without_force() {
    let d = TempDir::new("force");
    let devs = d.files(2, 8 * MIB);
    assert!(format("raid1", &[], &devs).status.success());
    let first = examine_json(&devs[0])["group_uuid"].clone();
    let o = format("raid1", &[], &devs);
    assert!(!o.status.success());
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(err.contains("already holds an amf superblock"), "{err}");
    // Nothing was written.
    assert_eq!(examine_json(&devs[1])["group_uuid"], first);
    // A fresh device next to a formatted one: still refused.
    let fresh = d.file("fresh", 8 * MIB);
    let mixed = vec![fresh.clone(), devs[0].clone()];
    assert!(!format("raid1", &[], &mixed).status.success());
    assert!(fails(&["examine", &fresh]).contains("No amf superblock"));
    let o = format("raid1", &["--force"], &devs);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_ne!(examine_json(&devs[0])["group_uuid"], first);
}

#[test]
fn examine_survives_one_corrupted_slot() {
    let d = TempDir::new("torn");
    let devs = d.files(2, 8 * MIB);
    assert!(format("raid1", &[], &devs).status.success());
    // Corrupt one byte of slot A (4 KiB into the device).
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&devs[0])
        .unwrap();
    let mut b = [0u8; 1];
    f.seek(SeekFrom::Start(4096 + 100)).unwrap();
    f.read_exact(&mut b).unwrap();
    f.seek(SeekFrom::Start(4096 + 100)).unwrap();
    f.write_all(&[b[0] ^ 0x10]).unwrap();
    drop(f);
    let j = examine_json(&devs[0]);
    assert_eq!(j["slot"], "B");
    let other = j["other_slot"].as_str().unwrap();
    assert!(other.contains("checksum"), "{other}");
    // Both slots corrupted: refused, naming both reasons.
    let mut f = OpenOptions::new().write(true).open(&devs[0]).unwrap();
    f.seek(SeekFrom::Start(8192 + 20)).unwrap();
    f.write_all(&[0xff]).unwrap();
    drop(f);
    let err = fails(&["examine", &devs[0]]);
    assert!(err.contains("No valid superblock copy"), "{err}");
    assert!(err.contains("slot A") && err.contains("slot B"), "{err}");
}

#[test]
fn format_refusals() {
    let d = TempDir::new("refuse");
    let devs = d.files(3, 8 * MIB);
    let msg = |level: &str, extra: &[&str], devs: &[String]| {
        let o = format(level, extra, devs);
        assert!(!o.status.success(), "{level} {extra:?} should fail");
        String::from_utf8(o.stderr).unwrap()
    };
    assert!(msg("raid4", &[], &devs).contains("unknown RAID level"));
    assert!(msg("raid6", &[], &devs).contains("geometry"));
    assert!(msg("raid5", &["--uuid", "xyz"], &devs).contains("bad UUID"));
    assert!(msg("raid5", &["--data-offset", "1M"], &devs).contains("data offset"));
    let twice = vec![devs[0].clone(), devs[0].clone()];
    assert!(msg("raid1", &[], &twice).contains("named twice"));
    let small = vec![d.file("small", 3 * MIB), devs[1].clone()];
    assert!(msg("raid1", &[], &small).contains("too small"));
    assert!(msg(
        "raid1",
        &[],
        &[d.0.join("nope").to_str().unwrap().to_string()]
    )
    .contains("nope"));
    // Nothing was written by any refusal.
    for dev in &devs {
        assert!(fails(&["examine", dev]).contains("No amf superblock"));
    }
    let o = amfctl(&[
        "format", "--level", "raid5", "--chunk", "12", &devs[0], &devs[1],
    ]);
    assert!(!o.status.success());
}

#[test]
fn format_raid10_with_explicit_sizes() {
    let d = TempDir::new("raid10");
    let devs = d.files(3, 16 * MIB);
    let o = format(
        "raid10",
        &[
            "--copies",
            "3",
            "--data-offset",
            "3M",
            "--size",
            "8M",
            "--region",
            "1M",
        ],
        &devs,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j = examine_json(&devs[1]);
    assert_eq!(j["level"], "raid10");
    assert_eq!(j["copies"], 3);
    assert_eq!(j["data_offset"], 6144);
    assert_eq!(j["data_sectors"], 16384);
    assert_eq!(j["region_sectors"], 2048);
}
