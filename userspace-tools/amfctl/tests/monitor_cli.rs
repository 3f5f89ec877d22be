// SPDX-License-Identifier: GPL-2.0
//! Runs `amfctl monitor --poll` and `amfctl status` against a stand-in `dmsetup` whose
//! answers change from one call to the next, with a stand-in sysfs for the member names:
//! the events that come out, their JSON lines and the `--program` calls.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use common::{amfctl, stderr, stdout, TempDir};

/// A stand-in dmsetup: `table` prints `t<n>`, `status` prints `s<n>` and moves `n` on
/// (the monitor reads the tables first); past the last files, the last ones.
fn fake_dmsetup(dir: &Path, steps: &[(&str, &str)]) {
    for (i, (status, table)) in steps.iter().enumerate() {
        fs::write(dir.join(format!("s{i}")), status).unwrap();
        fs::write(dir.join(format!("t{i}")), table).unwrap();
    }
    let last = steps.len() - 1;
    let script = format!(
        "#!/bin/sh\n\
         d='{d}'\n\
         n=$(cat \"$d/n\" 2>/dev/null || echo 0)\n\
         [ \"$n\" -le {last} ] || n={last}\n\
         case \"$1\" in\n\
         table) cat \"$d/t$n\" ;;\n\
         status) cat \"$d/s$n\"; echo $((n + 1)) > \"$d/n\" ;;\n\
         *) exit 1 ;;\n\
         esac\n",
        d = dir.display()
    );
    let p = dir.join("dmsetup");
    fs::write(&p, script).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
}

/// A stand-in sysfs: 253:<i> is the device-mapper device m<i>, 252:16 is vdb.
fn fake_sysfs(dir: &Path) {
    for i in 0..4 {
        let d = dir.join(format!("sys/dev/block/253:{i}/dm"));
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("name"), format!("m{i}\n")).unwrap();
    }
    let d = dir.join("sys/dev/block/252:16");
    fs::create_dir_all(&d).unwrap();
    fs::write(d.join("uevent"), "MAJOR=252\nMINOR=16\nDEVNAME=vdb\n").unwrap();
}

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_amfctl"))
        .args(args)
        .env("AMFCTL_DMSETUP", dir.join("dmsetup"))
        .env("AMFCTL_SYSFS", dir.join("sys"))
        .output()
        .unwrap()
}

const T5: &str = "r5: 0 12288 amf raid5 1 128 4 253:0 0 253:1 0 253:2 0 253:3 0\n";
const T1: &str = "r1: 0 16 amf raid1 1 8 2 252:16 0 - 0\n";

fn s5(health: &str, sync: &str) -> String {
    format!("r5: 0 12288 amf raid5 4 {health} {sync}\nm0: 0 100 linear 8:0 0\n")
}

#[test]
fn events_program_and_json_lines() {
    let d = TempDir::new("monitor");
    fake_sysfs(&d.0);
    let r1 = "r1: 0 16 amf raid1 2 AD 16/16 idle 0\n";
    let steps = [
        (s5("AAAA", "12288/12288 idle 0"), T5.to_string()),
        (s5("ADAA", "12288/12288 idle 0"), T5.to_string()),
        (s5("AaAA", "384/12288 recover 0") + r1, format!("{T5}{T1}")),
        (s5("AAAA", "12288/12288 idle 0") + r1, format!("{T5}{T1}")),
        (s5("AAAA", "12288/12288 idle 0"), T5.to_string()),
    ];
    let steps: Vec<(&str, &str)> = steps
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    fake_dmsetup(&d.0, &steps);
    let log = d.0.join("calls");
    let prog = d.0.join("prog.sh");
    fs::write(
        &prog,
        format!(
            "#!/bin/sh\necho \"$# $* member=${{AMF_MEMBER-}} $AMF_HEALTH\" >> '{}'\n\
             echo program-noise\n",
            log.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&prog, fs::Permissions::from_mode(0o755)).unwrap();

    let o = run(
        &d.0,
        &[
            "monitor",
            "--poll",
            "--interval",
            "0.1",
            "--json",
            "--count",
            "6",
            "--program",
            prog.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // The program's output goes to standard error, not among the JSON lines.
    assert_eq!(stderr(&o), "program-noise\n".repeat(6));
    let lines: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let got: Vec<(String, String, Option<String>)> = lines
        .iter()
        .map(|j| {
            (
                j["event"].as_str().unwrap().to_string(),
                j["volume"].as_str().unwrap().to_string(),
                j["device"].as_str().map(str::to_string),
            )
        })
        .collect();
    let ev =
        |e: &str, v: &str, d: Option<&str>| (e.to_string(), v.to_string(), d.map(str::to_string));
    assert_eq!(
        got,
        [
            ev("Fail", "r5", Some("/dev/mapper/m1")),
            ev("NewArray", "r1", None),
            ev("DegradedArray", "r1", None),
            ev("RebuildStarted", "r5", Some("/dev/mapper/m1")),
            ev("RebuildFinished", "r5", Some("/dev/mapper/m1")),
            ev("DeviceDisappeared", "r1", None),
        ]
    );
    assert_eq!(lines[0]["member"], 1);
    assert_eq!(lines[0]["devno"], "253:1");
    assert_eq!(lines[0]["status"]["health"], "ADAA");
    assert_eq!(lines[0]["event_nr"], serde_json::Value::Null);
    assert!(lines[5].get("status").is_none(), "{}", lines[5]);
    assert_eq!(
        lines[2]["detail"],
        "health AD, degraded: failed member 1 missing"
    );
    assert_eq!(
        fs::read_to_string(&log).unwrap(),
        "3 Fail r5 /dev/mapper/m1 member=1 ADAA\n\
         2 NewArray r1 member= AD\n\
         2 DegradedArray r1 member= AD\n\
         3 RebuildStarted r5 /dev/mapper/m1 member=1 AaAA\n\
         3 RebuildFinished r5 /dev/mapper/m1 member=1 AAAA\n\
         2 DeviceDisappeared r1 member= \n"
    );
}

#[test]
fn oneshot_reports_what_is_notable() {
    let d = TempDir::new("oneshot");
    fake_sysfs(&d.0);
    let st = s5("ADAa", "384/12288 recover 8") + "r1: 0 16 amf raid1 2 AA 16/16 idle 0\n";
    let tb = format!("{T5}{T1}");
    fake_dmsetup(&d.0, &[(&st, &tb)]);
    let o = run(&d.0, &["monitor", "--poll", "--oneshot", "r5", "gone"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stderr(&o), "amfctl monitor: gone: no amf volume\n");
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    // `<time> <Event> <volume>[ <member device>]: <detail>`
    let rest = |l: &str| l.split_once(' ').unwrap().1.to_string();
    assert_eq!(
        rest(lines[0]),
        "DegradedArray r5: health ADAa, failed: failed member 1 /dev/mapper/m1 (253:1)"
    );
    assert!(
        rest(lines[1]).starts_with(
            "SyncRunning r5 /dev/mapper/m3: recover 384/12288 sectors (3.1%), rebuilding \
             member 3 /dev/mapper/m3 (253:3)"
        ),
        "{out}"
    );
    assert!(
        rest(lines[2]).starts_with("MismatchesFound r5: mismatch_cnt 8"),
        "{out}"
    );
    // --test: one TestMessage per volume first; r1 (all in sync) has nothing else.
    fs::remove_file(d.0.join("n")).ok();
    let o = run(&d.0, &["monitor", "--poll", "--oneshot", "--test", "r1"]);
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains(" TestMessage r1: test message: amf raid1, 2 members, health AA, optimal"));
}

#[test]
fn status_names_members() {
    let d = TempDir::new("status-names");
    fake_sysfs(&d.0);
    let st = s5("ADAA", "12288/12288 idle 0");
    fake_dmsetup(&d.0, &[(&st, T5)]);
    let o = run(&d.0, &["status"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains(
            "  members:    ADAA (3 in sync, failed: member 1 /dev/mapper/m1)\n\
             \x20 member 0:   /dev/mapper/m0 (253:0), in sync\n\
             \x20 member 1:   /dev/mapper/m1 (253:1), failed\n"
        ),
        "{out}"
    );
    // A rebuild running: sampled twice, the speed from the difference.
    let d = TempDir::new("status-speed");
    fake_sysfs(&d.0);
    let a = s5("AAAa", "1024/12288 recover 0");
    let b = s5("AAAa", "2048/12288 recover 0");
    fake_dmsetup(&d.0, &[(&a, T5), (&b, T5)]);
    let o = run(&d.0, &["status", "--json", "--sample", "0.2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j[0]["sync_done"], 2048);
    assert_eq!(j[0]["sync_speed"]["source"], "sampled");
    let per_s = j[0]["sync_speed"]["sectors_per_second"].as_u64().unwrap();
    // 1024 sectors in a bit more than 0.2 s.
    assert!((2000..=5120).contains(&per_s), "{j}");
    assert!(
        j[0]["sync_speed"]["eta_seconds"].as_u64().unwrap() >= 2,
        "{j}"
    );
    assert_eq!(j[0]["member_devices"][3]["path"], "/dev/mapper/m3");
    // --sample 0: one read, no speed.
    fs::remove_file(d.0.join("n")).ok();
    let o = run(&d.0, &["status", "--json", "--sample", "0"]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j[0]["sync_done"], 1024);
    assert!(j[0].get("sync_speed").is_none(), "{j}");
    // A kernel that reports its speed (the sync_speed part): that one, no second reading.
    let d = TempDir::new("status-kernel-speed");
    fake_sysfs(&d.0);
    let a = s5("AAAa", "1024/12288 recover 0 sync_speed 512 0 0");
    let b = s5("AAAa", "2048/12288 recover 0 sync_speed 512 0 0");
    fake_dmsetup(&d.0, &[(&a, T5), (&b, T5)]);
    let o = run(&d.0, &["status", "--json", "--sample", "0.2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j[0]["sync_done"], 1024);
    assert_eq!(
        j[0]["sync_speed"],
        serde_json::json!({"sectors_per_second": 1024, "eta_seconds": 11, "source": "kernel"})
    );
    assert_eq!(fs::read_to_string(d.0.join("n")).unwrap().trim(), "1");
}

#[test]
fn usage_errors() {
    for args in [
        &["monitor", "--interval", "0"][..],
        &["monitor", "--interval", "3601"],
        &["monitor", "--interval", "nan"],
        &["monitor", "--count", "0"],
        &["status", "--sample", "-1"],
        &["status", "--sample", "61"],
    ] {
        let o = amfctl(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    }
}
