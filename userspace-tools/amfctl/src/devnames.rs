// SPDX-License-Identifier: GPL-2.0
//! Member devices of a live `amf` table by name: the kernel prints members as
//! `major:minor` (`dmsetup table`); sysfs says which device that is: a device-mapper
//! device's `/sys/dev/block/M:m/dm/name` (`/dev/mapper/<name>`), any other block device's
//! `DEVNAME=` in `/sys/dev/block/M:m/uevent` (`/dev/<DEVNAME>`).

use std::path::Path;

use serde::Serialize;

use crate::status::{split_name, AmfStatus};

/// The default sysfs mount point.
pub const SYSFS: &str = "/sys";

/// Environment variable naming another sysfs root (tests use a stand-in tree).
pub const SYSFS_ENV: &str = "AMFCTL_SYSFS";

/// The sysfs root: `$AMFCTL_SYSFS`, else `/sys`.
pub fn sysfs_root() -> std::path::PathBuf {
    std::env::var_os(SYSFS_ENV)
        .filter(|p| !p.is_empty())
        .map_or_else(|| std::path::PathBuf::from(SYSFS), std::path::PathBuf::from)
}

/// One member of a live table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberDevice {
    /// Member index (role) in the table.
    pub index: usize,
    /// As the table names it: `major:minor`, or `-` for a missing member.
    pub dev: String,
    /// Its `/dev` path, when sysfs knows the device.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

impl MemberDevice {
    /// `/dev/mapper/m1 (253:1)`, `253:1` without a path, `missing` for `-`.
    pub fn label(&self) -> String {
        match (&self.path, self.dev.as_str()) {
            (_, "-") => "missing".to_string(),
            (Some(p), d) => format!("{p} ({d})"),
            (None, d) => d.to_string(),
        }
    }

    /// The shortest name: the path, else `major:minor` (or `-`).
    pub fn short(&self) -> &str {
        self.path.as_deref().unwrap_or(&self.dev)
    }
}

/// `major:minor` split, if that is what `dev` is.
fn major_minor(dev: &str) -> Option<(u32, u32)> {
    let (a, b) = dev.split_once(':')?;
    let ok = |s: &str| !s.is_empty() && s.len() <= 10 && s.bytes().all(|c| c.is_ascii_digit());
    if !ok(a) || !ok(b) {
        return None;
    }
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// The `/dev` path of block device `major:minor`, from sysfs under `sysfs`.
pub fn dev_path(sysfs: &Path, dev: &str) -> Option<String> {
    let (ma, mi) = major_minor(dev)?;
    let dir = sysfs.join(format!("dev/block/{ma}:{mi}"));
    let clean = |s: &str| {
        let s = s.trim();
        (!s.is_empty() && !s.contains('/') && !s.contains("..")).then(|| s.to_string())
    };
    if let Some(n) = std::fs::read_to_string(dir.join("dm/name"))
        .ok()
        .and_then(|s| clean(&s))
    {
        return Some(format!("/dev/mapper/{n}"));
    }
    let uevent = std::fs::read_to_string(dir.join("uevent")).ok()?;
    uevent.lines().find_map(|l| {
        // DEVNAME may name a subdirectory (DEVNAME=nvme/...): keep slashes there, not `..`.
        let n = l.strip_prefix("DEVNAME=")?.trim();
        (!n.is_empty() && !n.contains("..") && !n.starts_with('/')).then(|| format!("/dev/{n}"))
    })
}

/// The member devices of an `amf` table's parameters (`dmsetup table` after
/// `<start> <length> amf`): `<level> <#params> <params...> <#devs> <dev> <offset>...`.
/// `None` when the words do not have that shape.
pub fn table_members(params: &str) -> Option<Vec<String>> {
    let w: Vec<&str> = params.split_whitespace().collect();
    let nparams: usize = w.get(1)?.parse().ok()?;
    let at = 2usize.checked_add(nparams)?;
    let ndevs: usize = w.get(at)?.parse().ok()?;
    let devs = w.get(at + 1..)?;
    if ndevs == 0 || devs.len() < ndevs.checked_mul(2)? {
        return None;
    }
    Some(
        devs.chunks(2)
            .take(ndevs)
            .map(|p| p[0].to_string())
            .collect(),
    )
}

/// The members named: each with its `/dev` path looked up under `sysfs`.
pub fn resolve(sysfs: &Path, devs: &[String]) -> Vec<MemberDevice> {
    devs.iter()
        .enumerate()
        .map(|(index, d)| MemberDevice {
            index,
            dev: d.clone(),
            path: dev_path(sysfs, d),
        })
        .collect()
}

/// One `amf` line of `dmsetup table [--target amf]` output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableEntry {
    /// The device name, when dmsetup printed it.
    pub name: Option<String>,
    /// First sector of the target.
    pub start: u64,
    /// The member devices as the table names them.
    pub members: Vec<String>,
}

/// The `amf` lines of `dmsetup table` output (others and malformed lines are skipped: this
/// only adds names to a status).
pub fn parse_tables(text: &str) -> Vec<TableEntry> {
    text.lines()
        .filter_map(|raw| {
            let (name, rest) = split_name(raw.trim());
            let mut w = rest.splitn(4, char::is_whitespace);
            let start = w.next()?.parse().ok()?;
            let _len = w.next()?;
            if w.next()? != "amf" {
                return None;
            }
            Some(TableEntry {
                name: name.map(str::to_string),
                start,
                members: table_members(w.next()?)?,
            })
        })
        .collect()
}

/// The live tables' `amf` lines (`dmsetup table --target amf [<name>]`). Best effort: a
/// status without member devices is still a status.
pub fn read_tables(name: Option<&str>) -> Vec<TableEntry> {
    let mut args = vec![
        "table".to_string(),
        "--target".to_string(),
        "amf".to_string(),
    ];
    args.extend(name.map(str::to_string));
    match crate::dmsetup::run(&args) {
        Ok(out) => parse_tables(&String::from_utf8_lossy(&out.stdout)),
        Err(_) => Vec::new(),
    }
}

/// Fills each status's `member_devices` from its table (the same name, or one device
/// asked for by name: dmsetup prints no names then, and the same start), by name from
/// sysfs.
pub fn add_member_devices(one_device: bool, tables: &[TableEntry], all: &mut [AmfStatus]) {
    let sysfs = sysfs_root();
    for st in all.iter_mut() {
        let t = tables.iter().find(|t| {
            t.start == st.start && (one_device || t.name.as_deref() == st.name.as_deref())
        });
        if let Some(t) = t.filter(|t| t.members.len() == st.devices) {
            st.member_devices = resolve(&sysfs, &t.members);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    struct Tmp(std::path::PathBuf);
    impl Drop for Tmp {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn sysfs() -> Tmp {
        let d = std::env::temp_dir().join(format!("amfctl-devnames-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        let blk = d.join("dev/block");
        fs::create_dir_all(blk.join("253:1/dm")).unwrap();
        fs::write(blk.join("253:1/dm/name"), "m1\n").unwrap();
        fs::write(
            blk.join("253:1/uevent"),
            "MAJOR=253\nMINOR=1\nDEVNAME=dm-1\n",
        )
        .unwrap();
        fs::create_dir_all(blk.join("252:16")).unwrap();
        fs::write(
            blk.join("252:16/uevent"),
            "MAJOR=252\nMINOR=16\nDEVNAME=vdb\nDEVTYPE=disk\n",
        )
        .unwrap();
        fs::create_dir_all(blk.join("8:0")).unwrap();
        fs::write(blk.join("8:0/uevent"), "MAJOR=8\nDEVNAME=../etc\n").unwrap();
        Tmp(d)
    }

    #[test]
    fn paths_from_sysfs() {
        let t = sysfs();
        assert_eq!(dev_path(&t.0, "253:1").as_deref(), Some("/dev/mapper/m1"));
        assert_eq!(dev_path(&t.0, "252:16").as_deref(), Some("/dev/vdb"));
        // Unknown devices, odd names and things that are not major:minor: no path.
        for d in [
            "9:9",
            "8:0",
            "-",
            "/dev/vdb",
            "253:",
            ":1",
            "1:2:3",
            "99999999999:1",
        ] {
            assert_eq!(dev_path(&t.0, d), None, "{d}");
        }
        let m = resolve(
            &t.0,
            &["252:16".into(), "-".into(), "9:9".into(), "253:1".into()],
        );
        let labels: Vec<String> = m.iter().map(MemberDevice::label).collect();
        assert_eq!(
            labels,
            [
                "/dev/vdb (252:16)",
                "missing",
                "9:9",
                "/dev/mapper/m1 (253:1)"
            ]
        );
        assert_eq!(m[2].short(), "9:9");
        assert_eq!(m[3].short(), "/dev/mapper/m1");
        let j = serde_json::to_value(&m[0]).unwrap();
        assert_eq!(
            j,
            serde_json::json!({"index": 0, "dev": "252:16", "path": "/dev/vdb"})
        );
        assert!(serde_json::to_value(&m[2]).unwrap().get("path").is_none());
    }

    #[test]
    fn members_of_a_table() {
        assert_eq!(
            table_members("raid5 1 128 4 253:0 0 253:1 2048 - 0 253:3 8").unwrap(),
            ["253:0", "253:1", "-", "253:3"]
        );
        let uuid = "6a1f0c2e-93b4-4d5e-8f70-1a2b3c4d5e6f";
        assert_eq!(
            table_members(&format!(
                "raid5 7 128 group {uuid} cluster c node 2 3 8:16 8192 8:32 8192 8:48 8192"
            ))
            .unwrap(),
            ["8:16", "8:32", "8:48"]
        );
        for bad in [
            "",
            "raid5",
            "raid5 x 128",
            "raid5 1 128 3 8:16 0",
            "raid5 1 128 0",
            "raid5 99 1",
        ] {
            assert_eq!(table_members(bad), None, "{bad}");
        }
    }

    #[test]
    fn table_lines() {
        let text = "r5: 0 1536 amf raid5 1 128 4 253:0 0 253:1 0 253:2 0 253:3 0\n\
                    m0: 0 65536 linear 252:0 0\n\
                    garbage\n";
        assert_eq!(
            parse_tables(text),
            vec![TableEntry {
                name: Some("r5".into()),
                start: 0,
                members: vec![
                    "253:0".into(),
                    "253:1".into(),
                    "253:2".into(),
                    "253:3".into()
                ],
            }]
        );
        assert_eq!(
            parse_tables("0 16 amf raid1 1 8 2 8:16 0 8:32 0")[0].name,
            None
        );
    }
}
