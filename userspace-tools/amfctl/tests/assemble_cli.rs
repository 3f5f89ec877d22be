// SPDX-License-Identifier: GPL-2.0
//! `amfctl assemble` and `amfctl stop` through a stand-in `dmsetup`: the configuration file's
//! refusals, volumes named that the file does not configure, an active group skipped, and
//! `stop` removing amf volumes only. (The assembly decision itself is unit-tested in
//! `src/assemble.rs`; the guest suite `assemble` runs it on real devices.)

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::{amfctl, stderr, stdout, TempDir};

const UUID: &str = "6a1f0c2e-93b4-4d5e-8f70-1a2b3c4d5e6f";

/// A `dmsetup` that knows one amf volume `r5` (group UUID) and one linear device `lin`,
/// and logs `remove` calls.
fn fake_dmsetup(dir: &Path) -> PathBuf {
    let p = dir.join("dmsetup");
    let script = format!(
        "#!/bin/sh\n\
         case \"$1\" in\n\
         table) printf 'r5: 0 32768 amf raid5 3 128 group {UUID} 3 253:1 8192 253:2 8192 253:3 8192\\n' ;;\n\
         ls) printf 'r5\\t(251:3)\\nlin\\t(251:4)\\n' ;;\n\
         remove) echo \"$2\" >> '{log}' ;;\n\
         *) echo \"unexpected: $*\" >&2; exit 1 ;;\n\
         esac\n",
        log = dir.join("removed").display()
    );
    fs::write(&p, script).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn run(dm: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_amfctl"))
        .args(args)
        .env("AMFCTL_DMSETUP", dm)
        .output()
        .unwrap()
}

#[test]
fn configuration_refusals() {
    let d = TempDir::new("asm-conf");
    let dm = fake_dmsetup(&d.0);
    let conf = d.0.join("amf.conf");
    let c = conf.to_str().unwrap();
    // A missing file: refused before dmsetup runs.
    let o = amfctl(&["assemble", "--scan", "--config", c]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with(&format!("amfctl: {c}: ")),
        "{}",
        stderr(&o)
    );
    fs::write(&conf, "[group.xyz]\nname = \"v\"\n").unwrap();
    let o = run(&dm, &["assemble", "--scan", "--config", c]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("[group.xyz]: the key must be the group UUID"),
        "{}",
        stderr(&o)
    );
    fs::write(&conf, format!("[group.{UUID}]\nname = \"r5\"\n")).unwrap();
    let o = run(&dm, &["assemble", "nosuch", "--config", c]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("nosuch: no such group in"),
        "{}",
        stderr(&o)
    );
    // Nothing to do: neither --scan nor a volume.
    let o = run(&dm, &["assemble", "--config", c]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // --run is not for udev's incremental runs.
    let o = run(
        &dm,
        &[
            "assemble",
            "--incremental",
            "/dev/null",
            "--run",
            "--config",
            c,
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn active_group_is_skipped() {
    let d = TempDir::new("asm-active");
    let dm = fake_dmsetup(&d.0);
    let conf = d.0.join("amf.conf");
    let c = conf.to_str().unwrap();
    // Configured under another name: still recognised by its group UUID.
    fs::write(&conf, format!("[group.{UUID}]\nname = \"data\"\n")).unwrap();
    for args in [&["assemble", "--scan"][..], &["assemble", "data"]] {
        let mut a = args.to_vec();
        a.extend(["--config", c]);
        let o = run(&dm, &a);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(stdout(&o), "data: already active as /dev/mapper/r5\n");
    }
    // A name taken by a device of another kind.
    fs::write(
        &conf,
        "[group.0123456789abcdef0123456789abcdef]\nname = \"lin\"\n",
    )
    .unwrap();
    let o = run(&dm, &["assemble", "lin", "--config", c]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("lin: refused: the name lin is taken by another device-mapper device"),
        "{}",
        stderr(&o)
    );
    // A device that is not a member: incremental ignores it.
    let f = d.file("blank", 1 << 20);
    let o = run(&dm, &["assemble", "--incremental", &f, "--config", c]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
    // --probe: 0 for a member of a configured group, 1 otherwise, silent.
    let m: Vec<String> = (0..2).map(|i| d.file(&format!("m{i}"), 8 << 20)).collect();
    let o = run(
        &dm,
        &[
            "format", "--level", "raid1", "--chunk", "64", "--uuid", UUID, &m[0], &m[1],
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    for (dev, conf_text, want) in [
        (&f, format!("[group.{UUID}]\nname = \"r\"\n"), 1),
        (&m[1], format!("[group.{UUID}]\nname = \"r\"\n"), 0),
        (
            &m[1],
            "[group.0123456789abcdef0123456789abcdef]\nname = \"r\"\n".to_string(),
            1,
        ),
        (&m[1], "not toml".to_string(), 1),
    ] {
        fs::write(&conf, &conf_text).unwrap();
        let o = run(&dm, &["assemble", "--probe", dev, "--config", c]);
        assert_eq!(o.status.code(), Some(want), "{dev} {conf_text}");
        assert_eq!((stdout(&o), stderr(&o)), (String::new(), String::new()));
    }
}

#[test]
fn stop_removes_amf_volumes_only() {
    let d = TempDir::new("asm-stop");
    let dm = fake_dmsetup(&d.0);
    let removed = d.0.join("removed");
    let o = run(&dm, &["stop", "lin"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "amfctl: lin: not an amf volume (dmsetup table lin): left alone\n"
    );
    let o = run(&dm, &["stop", "ghost"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o), "amfctl: ghost: no such device-mapper device\n");
    assert!(!removed.exists());
    let o = run(&dm, &["stop", "--scan"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "stopped r5\n");
    assert_eq!(fs::read_to_string(&removed).unwrap(), "r5\n");
    let o = run(&dm, &["stop"]);
    assert_eq!(o.status.code(), Some(2));
}
