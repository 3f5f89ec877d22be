// SPDX-License-Identifier: GPL-2.0
//! The `assemble` and `stop` subcommands: command-line options and the runs over
//! [`amfctl::assemble`] and [`amfctl::config`].

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{ArgGroup, Args};

use amfctl::assemble::{self, Active};
use amfctl::config::{self, GroupConfig};
use amfctl::{device, dmsetup, keyring, table};

/// `println!` that returns the error (a closed pipe) instead of panicking.
macro_rules! say {
    ($($t:tt)*) => {
        writeln!(io::stdout().lock(), $($t)*)?
    };
}

/// `amfctl assemble`.
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("what").required(true).args(["volumes", "scan", "incremental", "probe"])))]
pub struct AssembleArgs {
    /// Volumes to assemble: names (or group UUIDs) of groups in the configuration file.
    #[arg(value_name = "VOLUME", conflicts_with_all = ["scan", "incremental", "probe"])]
    volumes: Vec<String>,
    /// Assemble every group of the configuration file (skipping the active ones).
    #[arg(long, conflicts_with_all = ["incremental", "probe"])]
    scan: bool,
    /// Start a group that lacks members the group records in sync (degraded), as long as
    /// the level tolerates it (mdadm's --run). Without it such a group is refused.
    #[arg(long, conflicts_with_all = ["incremental", "probe"])]
    run: bool,
    /// For udev: DEV appeared. If it is a member of a configured group, assemble that
    /// group once it is complete; a group still missing members waits (exit 0), a device
    /// that is not a member of a configured group is ignored (exit 0).
    #[arg(long, value_name = "DEV", conflicts_with = "probe")]
    incremental: Option<String>,
    /// For udev rules: exit status 0 if DEV holds a superblock of a group the configuration
    /// file configures, 1 otherwise; prints nothing, creates nothing.
    #[arg(long, value_name = "DEV")]
    probe: Option<String>,
    /// The configuration file.
    #[arg(long, value_name = "PATH", default_value = config::DEFAULT_PATH)]
    config: PathBuf,
    /// Print what would be done and the tables; create nothing.
    #[arg(long)]
    dry_run: bool,
    /// Pass --noudevsync to dmsetup (no udev cookie wait; for hosts without udev).
    #[arg(long)]
    noudevsync: bool,
}

/// `amfctl stop`.
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("which").required(true).args(["volumes", "scan"])))]
pub struct StopArgs {
    /// The amf volumes to remove (dmsetup remove).
    #[arg(value_name = "VOLUME", conflicts_with = "scan")]
    volumes: Vec<String>,
    /// Remove every amf volume of this server.
    #[arg(long)]
    scan: bool,
}

/// The active amf volumes and every device-mapper name.
fn active() -> Result<(Vec<Active>, Vec<String>)> {
    let t = dmsetup::run(&[
        "table".to_string(),
        "--target".to_string(),
        "amf".to_string(),
    ])
    .context("listing the active amf volumes")?;
    let ls = dmsetup::run(&["ls".to_string()]).context("listing device-mapper devices")?;
    Ok((
        assemble::parse_active(&String::from_utf8_lossy(&t.stdout)),
        assemble::parse_ls(&String::from_utf8_lossy(&ls.stdout)),
    ))
}

/// What happened to one group.
enum Outcome {
    Done,
    Refused,
}

/// Runs `amfctl assemble`.
pub fn assemble(args: &AssembleArgs) -> Result<ExitCode> {
    if let Some(dev) = &args.probe {
        let configured = config::load(&args.config).is_ok_and(|cfg| {
            matches!(assemble::read_device(dev), Ok(Some(sb)) if cfg.group(&sb.group_uuid).is_some())
        });
        return Ok(if configured {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let cfg = config::load(&args.config)?;
    let groups: Vec<&GroupConfig> = if let Some(dev) = &args.incremental {
        let sb = match assemble::read_device(dev) {
            Ok(Some(sb)) => sb,
            Ok(None) => return Ok(ExitCode::SUCCESS),
            Err(e) => bail!("{dev}: {e}"),
        };
        match cfg.group(&sb.group_uuid) {
            Some(g) => vec![g],
            None => {
                say!(
                    "{dev}: member of group {}, which {} does not configure: ignored",
                    amfctl::superblock::format_uuid(&sb.group_uuid),
                    cfg.path
                );
                return Ok(ExitCode::SUCCESS);
            }
        }
    } else if args.scan {
        if cfg.groups.is_empty() {
            say!("{}: no groups configured", cfg.path);
            return Ok(ExitCode::SUCCESS);
        }
        cfg.groups.iter().collect()
    } else {
        let mut v = Vec::new();
        for name in &args.volumes {
            match cfg.find(name) {
                Some(g) => v.push(g),
                None => bail!("{name}: no such group in {} (name or group UUID)", cfg.path),
            }
        }
        v
    };
    let _lock = assemble::lock();
    let (act, names) = active()?;
    let mut refused = 0;
    // Active groups and taken names first: no device is read for them.
    let mut todo = Vec::new();
    for g in groups {
        if let Some(a) = act.iter().find(|a| a.group == Some(g.uuid)) {
            say!("{}: already active as /dev/mapper/{}", g.name, a.name);
        } else if names.contains(&g.name) {
            eprintln!(
                "amfctl: {n}: refused: the name {n} is taken by another device-mapper device \
                 (dmsetup table {n})",
                n = g.name
            );
            refused += 1;
        } else {
            todo.push(g);
        }
    }
    if !todo.is_empty() {
        let skip: Vec<String> = act.iter().map(|a| a.name.clone()).collect();
        let cands =
            assemble::candidates(Path::new("/"), &skip).context("scanning /proc/partitions")?;
        let scan = assemble::scan(&cands);
        for u in &scan.unusable {
            eprintln!("amfctl: ignoring {u}");
        }
        for g in todo {
            match assemble_one(args, g, &scan.found) {
                Ok(Outcome::Done) => {}
                Ok(Outcome::Refused) => refused += 1,
                Err(e) => {
                    let mut msg = format!("amfctl: {}: {e}", g.name);
                    for cause in e.chain().skip(1) {
                        msg.push_str(&format!("\n  caused by: {cause}"));
                    }
                    eprintln!("{msg}");
                    refused += 1;
                }
            }
        }
    }
    Ok(if refused == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn assemble_one(
    args: &AssembleArgs,
    g: &GroupConfig,
    found: &[assemble::Found],
) -> Result<Outcome> {
    let name = &g.name;
    let mut out = io::stdout().lock();
    let plan = assemble::plan(g, found, args.run);
    let left_out = match &plan {
        Ok(p) => &p.left_out[..],
        Err(e) => e.left_out(),
    };
    for l in left_out {
        writeln!(out, "{name}: leaving out {l}")?;
    }
    let plan = match plan {
        Ok(p) => p,
        Err(e) if e.may_complete() && args.incremental.is_some() => {
            writeln!(out, "{name}: waiting for more members ({e})")?;
            return Ok(Outcome::Done);
        }
        Err(e) => {
            eprintln!("amfctl: {name} (group {}): refused: {e}", g.uuid_text());
            return Ok(Outcome::Refused);
        }
    };
    if let Some((cluster, node)) = &g.cluster {
        if let Some(why) = assemble::cluster_problem(Path::new("/"), cluster, *node) {
            eprintln!("amfctl: {name} (group {}): refused: {why}", g.uuid_text());
            return Ok(Outcome::Refused);
        }
    }
    let line = assemble::build_table(
        g,
        &plan,
        found,
        &device::probe,
        &table::read_member_superblock,
    )
    .map_err(anyhow::Error::new)
    .context("the table is refused")?
    .to_string();
    if args.dry_run {
        writeln!(out, "{name}: would create: {}", assemble::describe(&plan))?;
        writeln!(out, "{name}: table: {line}")?;
        return Ok(Outcome::Done);
    }
    if let (Some(file), Some(desc)) = (&g.secret_file, &g.auth_key) {
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        let secret = keyring::secret_from(bytes)
            .with_context(|| format!("the secret in {}", file.display()))?;
        keyring::add_logon_key(desc, &secret, keyring::KEY_SPEC_USER_KEYRING)
            .with_context(|| format!("adding the logon key {desc}"))?;
    }
    match dmsetup::run(&dmsetup::create_args(name, &line, args.noudevsync)) {
        Ok(_) => {}
        Err(e @ dmsetup::DmsetupError::Failed { .. }) => bail!(
            "creating {name} failed: {e}\n  table: {line}\n  \
             if the kernel refused the table, its log names the cause: dmesg | grep amf"
        ),
        Err(e) => bail!("creating {name} failed: {e}"),
    }
    writeln!(
        out,
        "{name}: created /dev/mapper/{name}: {}",
        assemble::describe(&plan)
    )?;
    writeln!(out, "{name}: table: {line}")?;
    Ok(Outcome::Done)
}

/// Runs `amfctl stop`.
pub fn stop(args: &StopArgs) -> Result<ExitCode> {
    let (act, names) = active()?;
    let targets: Vec<String> = if args.scan {
        if act.is_empty() {
            say!("No amf volumes.");
            return Ok(ExitCode::SUCCESS);
        }
        act.iter().map(|a| a.name.clone()).collect()
    } else {
        args.volumes.clone()
    };
    let mut failed = 0;
    for name in &targets {
        if !act.iter().any(|a| &a.name == name) {
            if names.contains(name) {
                eprintln!("amfctl: {name}: not an amf volume (dmsetup table {name}): left alone");
            } else {
                eprintln!("amfctl: {name}: no such device-mapper device");
            }
            failed += 1;
            continue;
        }
        match dmsetup::run(&["remove".to_string(), name.clone()]) {
            Ok(_) => say!("stopped {name}"),
            Err(e) => {
                eprintln!("amfctl: stopping {name} failed: {e}");
                failed += 1;
            }
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
