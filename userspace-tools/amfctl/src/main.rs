// SPDX-License-Identifier: GPL-2.0
//! `amfctl`: build, create and inspect dm-amf volumes, format and examine their members. See
//! `Documentation/amfctl.rst` and `Documentation/on-disk-format.rst`.
#![forbid(unsafe_code)]

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use amf_core::geometry::{Geometry, Level};
use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

use amfctl::cluster::{self, ClusterSpec, Node};
use amfctl::device::{self, DevArg};
use amfctl::dmsetup;
use amfctl::keyring;
use amfctl::scrub;
use amfctl::size::{parse_chunk, parse_sectors};
use amfctl::status::{self, AmfStatus};
use amfctl::superblock::{self as sb, FormatRequest};
use amfctl::table::{self, ClusterRequest, DeviceCheck, TableLine, TableRequest};

mod cmd_assemble;

/// `println!` that returns the error (a closed pipe: `amfctl status | head -1`) instead of
/// panicking; `main` takes a closed pipe for success.
macro_rules! outln {
    ($($t:tt)*) => {
        writeln!(io::stdout().lock(), $($t)*)?
    };
}

/// Configure dm-amf volumes (device-mapper target `amf`).
#[derive(Parser, Debug)]
#[command(name = "amfctl", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Print the dmsetup table line of an amf volume, checked as the kernel checks it.
    Table {
        #[command(flatten)]
        opts: TableOpts,
        #[command(flatten)]
        group: GroupOpt,
        #[command(flatten)]
        cluster: ClusterOpt,
        /// Do not open the devices (the line is for another host); needs --size.
        #[arg(long, requires = "size")]
        offline: bool,
    },
    /// Create an amf volume: dmsetup create <NAME> --table <line>.
    Create {
        /// Name of the new mapped device (/dev/mapper/<NAME>).
        name: String,
        #[command(flatten)]
        opts: TableOpts,
        #[command(flatten)]
        group: GroupOpt,
        #[command(flatten)]
        cluster: ClusterOpt,
        /// Pass --noudevsync to dmsetup (no udev cookie wait; for hosts without udev).
        #[arg(long)]
        noudevsync: bool,
    },
    /// Show the status of amf volumes (dmsetup status --target amf [NAME]).
    Status {
        /// Only this mapped device.
        name: Option<String>,
        /// Read dmsetup status output from this file ('-': standard input) instead of
        /// running dmsetup.
        #[arg(long, value_name = "PATH")]
        from_file: Option<PathBuf>,
        /// Print JSON (an array with one object per amf target).
        #[arg(long)]
        json: bool,
        /// While a rebuild, resync, check or repair runs on a kernel whose status has no
        /// sync_speed part, read the status again after this many seconds and show the
        /// speed between the two readings and the time left; 0: do not wait. Not with
        /// --from-file.
        #[arg(long, value_name = "SECS", default_value_t = 1.0, value_parser = sample_arg)]
        sample: f64,
    },
    /// Wait for device-mapper events of amf volumes and report what changed (member
    /// failures, rebuilds, resyncs, checks, mismatches, cluster and replication changes),
    /// as mdadm --monitor does. One line per event, or JSON lines; --program runs a command
    /// per event. See Documentation/admin-guide.rst, "Monitoring".
    Monitor {
        #[command(flatten)]
        opts: MonitorOpts,
    },
    /// Write amf superblocks to the member devices of a new group.
    ///
    /// Zeroes each member's reserved area and writes its superblock to both slots (see
    /// Documentation/on-disk-format.rst). Refuses devices that already hold an amf
    /// superblock, a file system, a partition table, another RAID's or a volume manager's
    /// label, swap or a LUKS header, and names what it found, unless --force is given.
    Format {
        #[command(flatten)]
        opts: FormatOpts,
    },
    /// Check a group offline: recompute every stripe's parity (raid5/6) or compare its
    /// copies (raid1/10) from the members, read-only. Prints one line per chunk that does
    /// not match, then a summary. Exit status: 0 consistent, 1 mismatches, 2 error.
    Scrub {
        #[command(flatten)]
        opts: TableOpts,
    },
    /// Print the superblock of one member device.
    Examine {
        /// The member device (block device or regular file).
        dev: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add the shared secret of a replicated group (table `auth_key <description>`) as a
    /// `logon` key to the user keyring (keyctl's @u), or update the key of that description
    /// there. Reads the secret from standard input, or --secret-file; trailing newlines are
    /// dropped. Prints the key's serial number.
    KeyAdd {
        /// The key's description, as --auth-key and auth_key give it: <prefix>:<name>
        /// (dm-amf:grp1), 1 to 255 printable characters without spaces.
        description: String,
        /// Read the secret from this file instead of standard input.
        #[arg(long, value_name = "PATH")]
        secret_file: Option<PathBuf>,
    },
    /// Print the corosync.conf (corosync 3, knet) of a cluster of storage servers. Every
    /// node runs with the same file. Exit status 2 when the description is refused.
    ClusterConf {
        #[command(flatten)]
        opts: ClusterOpts,
    },
    /// Assemble the volumes of the configuration file (/etc/amf/amf.conf) from the member
    /// devices found by their superblocks, and create them.
    ///
    /// Reads every block device of /proc/partitions (device-mapper devices under their
    /// /dev/mapper name) that no other device holds, builds each group's table from its
    /// newest superblock and the configuration, and creates the volume (as amfctl create).
    /// Stale members (more than one event behind), replaced ones and those the group
    /// records failed are left out and named. Refused: a group missing more members than its
    /// level tolerates, members that disagree, a clustered group while the cluster stack is
    /// not up, and without --run a group lacking members it records in sync. Active
    /// volumes are skipped. Exit status 1 when any group was refused.
    Assemble(cmd_assemble::AssembleArgs),
    /// Remove amf volumes (dmsetup remove): the named ones, or with --scan all of them.
    Stop(cmd_assemble::StopArgs),
    /// Write the manual pages (amfctl.8 and amfctl-<command>.8) into DIR (make install).
    #[command(hide = true)]
    GenMan {
        /// The directory (created if needed).
        dir: PathBuf,
    },
    /// Write the shell completions (amfctl.bash, _amfctl for zsh, amfctl.fish) into DIR
    /// (make install).
    #[command(hide = true)]
    GenCompletions {
        /// The directory (created if needed).
        dir: PathBuf,
    },
}

#[derive(Args, Debug)]
struct MonitorOpts {
    /// Only these volumes (default: every amf volume, including those created later).
    #[arg(value_name = "VOLUME")]
    volumes: Vec<String>,
    /// Report what is notable now (failed members, a running sync, mismatches, a lost
    /// cluster, peers down) and exit.
    #[arg(long)]
    oneshot: bool,
    /// One JSON object per line instead of text lines.
    #[arg(long)]
    json: bool,
    /// Run this program for each event, with the arguments <event> <volume> [<member
    /// device>] and AMF_* environment variables; the monitor waits for it.
    #[arg(long, value_name = "PATH")]
    program: Option<PathBuf>,
    /// Seconds between scans for new and removed volumes and status reads of every volume
    /// (what raises no event: replication peers); the polling period without the
    /// device-mapper ioctls. 0.1 to 3600.
    #[arg(long, value_name = "SECS", default_value_t = 10.0, value_parser = interval_arg)]
    interval: f64,
    /// Exit after this many events.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,
    /// Read dmsetup status every --interval instead of waiting for events (DM_DEV_WAIT).
    #[arg(long)]
    poll: bool,
    /// Report a TestMessage event for each volume at start (to try --program).
    #[arg(long)]
    test: bool,
}

#[derive(Args, Debug)]
struct ClusterOpts {
    /// The cluster name (corosync totem.cluster_name, which the kernel DLM checks): 1 to 63
    /// letters, digits, '-', '_' or '.'.
    #[arg(long, value_name = "NAME")]
    name: String,
    /// A node: its corosync node id (1 to 65535; the DLM's node id too) and its ring0
    /// address (IP address or host name). Repeat for each node, at least 2.
    #[arg(long = "node", value_name = "ID=ADDR", value_parser = node_arg)]
    nodes: Vec<Node>,
    /// Token timeout in milliseconds: how long a silent node has before it is declared dead.
    #[arg(long, value_name = "MS", default_value_t = cluster::DEFAULT_TOKEN_MS)]
    token: u32,
    /// Let corosync log to this file (default: no logging at all).
    #[arg(long, value_name = "PATH")]
    logfile: Option<String>,
    /// votequorum last_man_standing with this window in ms: once nodes died and the
    /// membership stayed stable that long, quorum is recalculated from the nodes left
    /// (3 nodes or more).
    #[arg(long, value_name = "MS")]
    last_man_standing: Option<u32>,
    /// votequorum auto_tie_breaker: of two equal halves, the one with the lowest node id
    /// keeps quorum (3 nodes or more; with --last-man-standing down to a single node).
    #[arg(long)]
    auto_tie_breaker: bool,
}

#[derive(Args, Debug)]
struct FormatOpts {
    /// RAID level: raid0, raid1, raid5, raid6 or raid10; mdadm's spellings too (0, 1, 5,
    /// 6, 10, stripe, mirror).
    #[arg(long, value_name = "LEVEL")]
    level: String,
    /// Copies of each chunk, for raid10.
    #[arg(long, value_name = "N", default_value_t = 2)]
    copies: u8,
    /// Chunk size, as mdadm's --chunk: a plain number is KiB (64 = 64K = 128 sectors);
    /// K/M/G suffixes; sectors only with an s suffix (128s).
    #[arg(long, value_name = "SIZE", value_parser = chunk_arg)]
    chunk: u64,
    /// Group UUID (default: a random one).
    #[arg(long, value_name = "UUID")]
    uuid: Option<String>,
    /// Where the data area starts on every member (default 4M; at least 3M).
    #[arg(long, value_name = "SIZE", value_parser = size_arg)]
    data_offset: Option<u64>,
    /// Data area size per member (default: the most whole chunks that fit every member).
    #[arg(long, value_name = "SIZE", value_parser = size_arg)]
    size: Option<u64>,
    /// Member sectors per write-intent bitmap bit (default: 64M, or more for large members).
    #[arg(long, value_name = "SIZE", value_parser = size_arg)]
    region: Option<u64>,
    /// Overwrite devices that already hold an amf superblock, a file system, a partition
    /// table or another RAID's or volume manager's label (without it, format refuses them
    /// and names what it found).
    #[arg(long)]
    force: bool,
    /// Member devices (block devices or regular files), in member order.
    #[arg(value_name = "DEV", required = true)]
    devs: Vec<String>,
}

#[derive(Args, Debug)]
struct TableOpts {
    /// RAID level: raid0, raid1, raid5, raid6 or raid10 (2 copies); mdadm's spellings too
    /// (0, 1, 5, 6, 10, stripe, mirror).
    #[arg(long, value_name = "LEVEL")]
    level: String,
    /// Chunk size, as mdadm's --chunk: a plain number is KiB (64 = 64K = 128 sectors);
    /// K/M/G suffixes; sectors only with an s suffix (128s).
    #[arg(long, value_name = "SIZE", value_parser = chunk_arg)]
    chunk: u64,
    /// Volume size (sectors or K/M/G/T). Default: the largest that fits every device, in
    /// whole stripes.
    #[arg(long, value_name = "SIZE", value_parser = size_arg)]
    size: Option<u64>,
    /// A member device, in member order, with the sector where its data area starts
    /// (default 0; also takes K/M/G). Repeat for each member. '-' (or '-:OFFSET') is a
    /// missing member (table and create; the level must tolerate it).
    #[arg(
        long = "dev",
        value_name = "PATH[:OFFSET]",
        required = true,
        allow_hyphen_values = true,
        value_parser = dev_arg
    )]
    devs: Vec<DevArg>,
}

#[derive(Args, Debug, Default)]
struct GroupOpt {
    /// The group's UUID (amfctl format printed it; amfctl examine shows it): adds
    /// `group <uuid>` to the table, so that the kernel assembles the group from the members'
    /// superblocks. Each --dev offset must then be the member's data offset (default 8192).
    #[arg(long, value_name = "UUID")]
    group: Option<String>,
    /// raid5 and raid6 with --group: every write goes through the partial parity log (as
    /// md's consistency_policy=ppl), not only those to rows that lack a data member. Adds
    /// `ppl` to the table, right after `group <uuid>`.
    #[arg(long)]
    ppl: bool,
}

#[derive(Args, Debug, Default)]
struct ClusterOpt {
    /// Cluster mode (raid1, raid5 and raid6; needs --group and --node): corosync's cluster name
    /// (totem.cluster_name, as given to amfctl cluster-conf --name). Adds
    /// `cluster <name> node <id>` to the table, after `group <uuid>`.
    #[arg(long, value_name = "NAME")]
    cluster: Option<String>,
    /// Cluster mode: this server's corosync node id (its nodeid in corosync.conf), 1 to
    /// 2147483647. Each server of the cluster gets its own table with its own id.
    #[arg(long, value_name = "ID")]
    node: Option<String>,
    /// Cluster mode: stripes per lock, 1 (the default, left out of the table) to 1048576.
    #[arg(long, value_name = "N")]
    lock_stripes: Option<String>,
    /// Cluster mode, replication: one AMF of the group, its corosync node id (1 to 63), the
    /// IPv4 address and the TCP port of its replication channel. Repeat for every AMF of
    /// the group, this one included (2 to 16; the one with --node is where this one
    /// listens). Adds `peers <n> <peer>...`, sorted by node id. Needs --auth-key.
    #[arg(long = "peer", value_name = "NODE@A.B.C.D:PORT")]
    peers: Vec<String>,
    /// Cluster mode, replication: the description of the logon key that holds the group's
    /// shared secret (amfctl key-add), <prefix>:<name>. Adds `auth_key <description>`.
    #[arg(long, value_name = "DESCRIPTION")]
    auth_key: Option<String>,
    /// Cluster mode, replication: what the replication channel runs on, tcp (the default,
    /// left out of the table) or rdma (RDMA reliable connections: RoCE, InfiniBand or
    /// soft-RoCE; each server's --peer address must be on an RDMA device). Adds
    /// `transport rdma` after the auth_key. Needs --peer.
    #[arg(long, value_name = "tcp|rdma")]
    transport: Option<String>,
}

impl ClusterOpt {
    fn request(&self) -> ClusterRequest {
        ClusterRequest {
            name: self.cluster.clone(),
            node: self.node.clone(),
            lock_stripes: self.lock_stripes.clone(),
            peers: self.peers.clone(),
            auth_key: self.auth_key.clone(),
            transport: self.transport.clone(),
        }
    }
}

fn key_add(description: &str, secret_file: Option<&PathBuf>) -> Result<()> {
    // The description first: before the secret is typed in.
    table::auth_key_problem(description).map_err(anyhow::Error::msg)?;
    let bytes = match secret_file {
        Some(p) => std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
        None => {
            let mut b = Vec::new();
            io::stdin()
                .read_to_end(&mut b)
                .context("reading the secret from standard input")?;
            b
        }
    };
    let secret = keyring::secret_from(bytes)?;
    let serial = keyring::add_logon_key(description, &secret, keyring::KEY_SPEC_USER_KEYRING)?;
    outln!("{serial}");
    Ok(())
}

fn seconds(s: &str, min: f64, max: f64) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= min && v <= max => Ok(v),
        _ => Err(format!("expected seconds from {min} to {max}")),
    }
}

fn interval_arg(s: &str) -> Result<f64, String> {
    seconds(s, 0.1, 3600.0)
}

fn sample_arg(s: &str) -> Result<f64, String> {
    seconds(s, 0.0, 60.0)
}

fn size_arg(s: &str) -> Result<u64, String> {
    parse_sectors(s).map_err(|e| e.to_string())
}

fn chunk_arg(s: &str) -> Result<u64, String> {
    parse_chunk(s).map_err(|e| e.to_string())
}

fn dev_arg(s: &str) -> Result<DevArg, String> {
    device::parse_dev_arg(s).map_err(|e| e.to_string())
}

fn node_arg(s: &str) -> Result<Node, String> {
    cluster::parse_node(s).map_err(|e| e.to_string())
}

impl TableOpts {
    fn build(
        &self,
        check: DeviceCheck,
        group: &GroupOpt,
        cluster: ClusterRequest,
    ) -> Result<TableLine> {
        let req = TableRequest {
            // mdadm's spellings as the table's; anything else as given, for the kernel's
            // parser to refuse (with the list of valid levels).
            level: amfctl::level::canonical(&self.level)
                .map_or_else(|| self.level.clone(), str::to_string),
            chunk_sectors: self.chunk,
            size: self.size,
            devs: self.devs.clone(),
            group: group.group.clone(),
            ppl: group.ppl,
            cluster,
        };
        Ok(table::build_with(
            &req,
            check,
            &device::probe,
            Some(&table::read_member_superblock),
        )?)
    }
}

fn read_status_text(from_file: Option<&PathBuf>, name: Option<&str>) -> Result<String> {
    match from_file {
        Some(p) if p.as_os_str() == "-" => {
            let mut s = String::new();
            io::stdin()
                .read_to_string(&mut s)
                .context("reading status from standard input")?;
            Ok(s)
        }
        Some(p) => std::fs::read_to_string(p)
            .with_context(|| format!("reading status from {}", p.display())),
        None => {
            let out = dmsetup::run(&dmsetup::status_args(name))?;
            String::from_utf8(out.stdout).context("dmsetup status printed non-UTF-8 text")
        }
    }
}

/// The statuses of `name` (or all amf targets), named.
fn read_statuses(name: Option<&str>, from_file: Option<&PathBuf>) -> Result<Vec<AmfStatus>> {
    let text = read_status_text(from_file, name)?;
    let mut all: Vec<AmfStatus> = status::parse_status(&text)?;
    if let Some(n) = name {
        // dmsetup prints no name when asked about one device; a file may name several.
        all.retain(|s| s.name.as_deref().map_or(true, |x| x == n));
        for s in &mut all {
            s.name = Some(n.to_string());
        }
        if all.is_empty() {
            bail!("{n}: no amf target");
        }
    }
    Ok(all)
}

fn status(name: Option<&str>, from_file: Option<&PathBuf>, json: bool, sample: f64) -> Result<()> {
    if from_file.is_some() {
        return print_statuses(&read_statuses(name, from_file)?, json);
    }
    // The table first: the last dmsetup call is the status one.
    let tables = amfctl::devnames::read_tables(name);
    let mut all = read_statuses(name, None)?;
    if sample > 0.0 && all.iter().any(status::wants_sample) {
        let t0 = std::time::Instant::now();
        std::thread::sleep(std::time::Duration::from_secs_f64(sample));
        let later = read_statuses(name, None)?;
        status::merge_sample(&mut all, later, t0.elapsed());
    }
    amfctl::devnames::add_member_devices(name.is_some(), &tables, &mut all);
    print_statuses(&all, json)
}

fn print_statuses(all: &[AmfStatus], json: bool) -> Result<()> {
    let mut out = io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &all)?;
        writeln!(out)?;
    } else if all.is_empty() {
        writeln!(out, "No amf devices.")?;
    } else {
        for (i, s) in all.iter().enumerate() {
            if i > 0 {
                writeln!(out)?;
            }
            write!(out, "{}", status::summary(s))?;
        }
    }
    Ok(())
}

fn format(opts: FormatOpts) -> Result<()> {
    let level = sb::parse_level(&opts.level, opts.copies)?;
    let uuid = opts.uuid.as_deref().map(sb::parse_uuid).transpose()?;
    let ctime = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let req = FormatRequest {
        level,
        chunk_sectors: opts.chunk,
        uuid,
        data_offset: opts.data_offset,
        data_sectors: opts.size,
        region_sectors: opts.region,
        force: opts.force,
        ctime,
    };
    let done = sb::format(&req, &opts.devs)?;
    let s = &done.superblock;
    outln!(
        "formatted {} {} members, group {}",
        s.member_count(),
        amf_core::table::level_name(s.level),
        sb::format_uuid(&s.group_uuid)
    );
    outln!(
        "data area: sector {} on every member, {} sectors ({}) each",
        s.data_offset,
        s.data_sectors,
        amfctl::size::human(s.data_sectors)
    );
    for (role, (dev, m)) in done.devs.iter().zip(s.members()).enumerate() {
        outln!("  role {role}: {dev} (member {})", sb::format_uuid(&m.uuid));
    }
    Ok(())
}

fn examine(dev: &str, json: bool) -> Result<()> {
    let e = sb::examine(dev)?;
    let mut out = io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &e)?;
        writeln!(out)?;
    } else {
        write!(out, "{}", sb::examine_text(&e))?;
    }
    Ok(())
}

/// Opens a member read-only: a path, or `major:minor` through `/dev/block`.
fn open_member(path: &str) -> Result<std::fs::File> {
    let p = std::path::Path::new(path);
    let real = if !p.exists() && device::is_major_minor(path) {
        PathBuf::from(format!("/dev/block/{path}"))
    } else {
        p.to_path_buf()
    };
    std::fs::File::open(&real).with_context(|| format!("opening {path}"))
}

fn run_scrub(opts: &TableOpts) -> Result<ExitCode> {
    // The group as the kernel would see it: the same checks and sizes as `amfctl table`.
    let line = opts.build(
        DeviceCheck::AllowFiles,
        &GroupOpt::default(),
        ClusterRequest::default(),
    )?;
    let words: Vec<&str> = line.args.iter().map(String::as_str).collect();
    let spec = amf_core::table::parse(&words, line.len)
        .map_err(|e| anyhow::anyhow!(table::kernel_message(e)))?;
    let members: Vec<_> = spec.members().collect();
    let member_len = members.first().map_or(0, |m| m.len);
    let chunk = u64::from(spec.chunk_sectors);
    let g = Geometry::new(spec.level, members.len(), chunk, member_len)
        .map_err(|e| anyhow::anyhow!("geometry: {e:?}"))?;
    if spec.level == Level::Raid0 {
        outln!("scrub: raid0 has no redundancy, nothing to check");
        return Ok(ExitCode::SUCCESS);
    }
    if members.iter().any(|m| m.missing) {
        bail!("scrub reads every member: a '-' (missing) member cannot be checked");
    }
    let files = members
        .iter()
        .map(|m| open_member(m.path))
        .collect::<Result<Vec<_>>>()?;
    let members: Vec<scrub::Member> = members
        .iter()
        .zip(&files)
        .map(|(m, f)| scrub::Member {
            path: m.path.to_string(),
            offset: m.offset,
            data: f,
        })
        .collect();
    let stripes = line.len / g.stripe_sectors().unwrap_or(1).max(1);
    let mut out = io::stdout().lock();
    let summary = scrub::scrub(&g, stripes, &members, &mut |m| writeln!(out, "{m}"))?;
    writeln!(out, "{summary}")?;
    Ok(if summary.mismatched == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.cmd {
        Cmd::Table {
            opts,
            group,
            cluster,
            offline,
        } => {
            let check = if offline {
                DeviceCheck::None
            } else {
                DeviceCheck::AllowFiles
            };
            let line = opts.build(check, &group, cluster.request())?;
            outln!("{line}");
        }
        Cmd::Create {
            name,
            opts,
            group,
            cluster,
            noudevsync,
        } => {
            let line = opts
                .build(DeviceCheck::BlockOnly, &group, cluster.request())?
                .to_string();
            let out = match dmsetup::run(&dmsetup::create_args(&name, &line, noudevsync)) {
                Ok(out) => out,
                Err(e @ dmsetup::DmsetupError::Failed { .. }) => bail!(
                    "creating {name} failed: {e}\n  table: {line}\n  \
                     if the kernel refused the table, its log names the cause: dmesg | grep amf"
                ),
                Err(e) => bail!("creating {name} failed: {e}"),
            };
            io::stdout().write_all(&out.stdout)?;
            io::stderr().write_all(&out.stderr)?;
            outln!("created /dev/mapper/{name}: {line}");
        }
        Cmd::Status {
            name,
            from_file,
            json,
            sample,
        } => status(name.as_deref(), from_file.as_ref(), json, sample)?,
        Cmd::Monitor { opts } => {
            let o = amfctl::monitor::Options {
                volumes: opts.volumes,
                oneshot: opts.oneshot,
                json: opts.json,
                program: opts.program,
                interval: std::time::Duration::from_secs_f64(opts.interval),
                count: opts.count,
                poll: opts.poll,
                test: opts.test,
                sysfs: amfctl::devnames::sysfs_root(),
            };
            amfctl::monitor::run(&o, &mut io::stdout().lock(), &mut io::stderr())?;
        }
        Cmd::Format { opts } => format(opts)?,
        Cmd::Scrub { opts } => return run_scrub(&opts),
        Cmd::Examine { dev, json } => examine(&dev, json)?,
        Cmd::KeyAdd {
            description,
            secret_file,
        } => key_add(&description, secret_file.as_ref())?,
        Cmd::ClusterConf { opts } => {
            let spec = ClusterSpec {
                name: opts.name,
                nodes: opts.nodes,
                token_ms: opts.token,
                logfile: opts.logfile,
                last_man_standing_ms: opts.last_man_standing,
                auto_tie_breaker: opts.auto_tie_breaker,
            };
            write!(io::stdout().lock(), "{}", cluster::corosync_conf(&spec)?)?;
        }
        Cmd::Assemble(args) => return cmd_assemble::assemble(&args),
        Cmd::Stop(args) => return cmd_assemble::stop(&args),
        Cmd::GenMan { dir } => gen_man(&dir)?,
        Cmd::GenCompletions { dir } => gen_completions(&dir)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The manual pages: amfctl.8 and one amfctl-<command>.8 per visible subcommand.
fn gen_man(dir: &std::path::Path) -> Result<()> {
    use clap::CommandFactory;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut cmd = Cli::command();
    cmd.build();
    let version = env!("CARGO_PKG_VERSION");
    let render = |cmd: clap::Command, file: String| -> Result<()> {
        let man = clap_mangen::Man::new(cmd)
            .section("8")
            .manual("System Administration")
            .source(format!("dm-amf {version}"));
        let mut buf = Vec::new();
        man.render(&mut buf)?;
        let path = dir.join(file);
        std::fs::write(&path, buf).with_context(|| format!("writing {}", path.display()))
    };
    // Every page amfctl.8 names under SUBCOMMANDS, `amfctl help` included.
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("amfctl-{}", sub.get_name());
        let sub = sub
            .clone()
            .name(name.clone())
            .bin_name(format!("amfctl {}", sub.get_name()));
        render(sub, format!("{name}.8"))?;
    }
    render(cmd, "amfctl.8".to_string())
}

/// Completions for bash, zsh and fish.
fn gen_completions(dir: &std::path::Path) -> Result<()> {
    use clap::CommandFactory;
    use clap_complete::Shell;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut cmd = Cli::command();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut cmd, "amfctl", dir)
            .with_context(|| format!("writing the {shell} completion"))?;
    }
    Ok(())
}

/// True when the error is a write to a closed pipe (`amfctl status | head -1`): the reader
/// has all it wanted, which is not a failure. Not for scrub, whose exit status is its
/// verdict: a scrub cut short by its reader has none (exit 2, "writing the report").
fn closed_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<serde_json::Error>()
                .is_some_and(|j| j.io_error_kind() == Some(io::ErrorKind::BrokenPipe))
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // scrub keeps exit status 1 for "mismatches found"; its errors are 2. cluster-conf only
    // refuses its arguments, which is a command-line error (2) like clap's.
    let failure = match cli.cmd {
        Cmd::Scrub { .. } | Cmd::ClusterConf { .. } => ExitCode::from(2),
        _ => ExitCode::FAILURE,
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) if closed_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let mut msg = format!("amfctl: {e}");
            for cause in e.chain().skip(1) {
                msg.push_str(&format!("\n  caused by: {cause}"));
            }
            eprintln!("{msg}");
            failure
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    /// `amfctl table --level raid0 --chunk 64K` followed by `rest`, parsed.
    fn parse_table(rest: &[&str]) -> Result<Cli, clap::Error> {
        let mut args = vec!["amfctl", "table", "--level", "raid0", "--chunk", "64K"];
        args.extend_from_slice(rest);
        Cli::try_parse_from(args)
    }

    #[test]
    fn offline_needs_size() {
        assert!(parse_table(&["--dev", "8:16", "--offline"]).is_err());
        let r = parse_table(&["--size", "1G", "--dev", "8:16:2048", "--offline"]).unwrap();
        let Cmd::Table {
            opts,
            group,
            cluster,
            offline,
        } = r.cmd
        else {
            panic!("not table")
        };
        assert!(offline);
        assert_eq!(group.group, None);
        assert!(!group.ppl);
        assert_eq!(cluster.request(), ClusterRequest::default());
        assert_eq!(
            opts.build(DeviceCheck::None, &group, cluster.request())
                .unwrap()
                .to_string(),
            "0 2097152 amf raid0 1 128 1 8:16 2048"
        );
    }

    #[test]
    fn group_option() {
        let r = parse_table(&[
            "--size",
            "1G",
            "--dev",
            "8:16:4M",
            "--offline",
            "--group",
            "0123456789ABCDEF0123456789abcdef",
        ])
        .unwrap();
        let Cmd::Table { opts, group, .. } = r.cmd else {
            panic!("not table")
        };
        assert_eq!(
            opts.build(DeviceCheck::None, &group, ClusterRequest::default())
                .unwrap()
                .to_string(),
            "0 2097152 amf raid0 3 128 group 01234567-89ab-cdef-0123-456789abcdef 1 8:16 8192"
        );
        let r = Cli::try_parse_from([
            "amfctl", "create", "v", "--level", "raid1", "--chunk", "8", "--dev", "8:16",
            "--group", "x",
        ])
        .unwrap();
        let Cmd::Create { group, .. } = r.cmd else {
            panic!("not create")
        };
        assert_eq!(group.group.as_deref(), Some("x"));
        // Not an option of scrub.
        assert!(Cli::try_parse_from([
            "amfctl", "scrub", "--level", "raid1", "--chunk", "8", "--dev", "a", "--group", "x",
        ])
        .is_err());
    }

    #[test]
    fn cluster_options() {
        let uuid = "6a1f0c2e-93b4-4d5e-8f70-1a2b3c4d5e6f";
        let r = Cli::try_parse_from([
            "amfctl",
            "table",
            "--level",
            "raid5",
            "--chunk",
            "64K",
            "--size",
            "512",
            "--offline",
            "--dev",
            "8:16:4M",
            "--dev",
            "8:32:4M",
            "--dev",
            "8:48:4M",
            "--group",
            uuid,
            "--cluster",
            "amftest",
            "--node",
            "3",
            "--lock-stripes",
            "8",
        ])
        .unwrap();
        let Cmd::Table {
            opts,
            group,
            cluster,
            ..
        } = r.cmd
        else {
            panic!("not table")
        };
        assert_eq!(
            opts.build(DeviceCheck::None, &group, cluster.request())
                .unwrap()
                .to_string(),
            format!(
                "0 512 amf raid5 9 128 group {uuid} cluster amftest node 3 lock_stripes 8 \
                 3 8:16 8192 8:32 8192 8:48 8192"
            )
        );
        // The refusals are the kernel parser's (exit status 1), not clap's.
        let r = Cli::try_parse_from([
            "amfctl",
            "create",
            "v",
            "--level",
            "raid5",
            "--chunk",
            "8",
            "--dev",
            "8:16",
            "--dev",
            "8:32",
            "--cluster",
            "amftest",
        ])
        .unwrap();
        let Cmd::Create {
            opts,
            group,
            cluster,
            ..
        } = r.cmd
        else {
            panic!("not create")
        };
        assert_eq!(
            cluster.request(),
            ClusterRequest {
                name: Some("amftest".to_string()),
                ..ClusterRequest::default()
            }
        );
        let e = opts
            .build(DeviceCheck::None, &group, cluster.request())
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cluster and node must be given together (--cluster needs --node"),
            "{e}"
        );
        // Not options of scrub.
        for opt in ["--cluster", "--node", "--lock-stripes", "--transport"] {
            assert!(Cli::try_parse_from([
                "amfctl", "scrub", "--level", "raid5", "--chunk", "8", "--dev", "a", "--dev", "b",
                opt, "1",
            ])
            .is_err());
        }
    }

    #[test]
    fn ppl_option() {
        let uuid = "6a1f0c2e-93b4-4d5e-8f70-1a2b3c4d5e6f";
        // `amfctl <cmd> [name] --level <level> --chunk 64K --size 256 --dev ... <rest>`, built.
        let line = |cmd: &[&str], level: &str, rest: &[&str]| {
            let mut args = vec!["amfctl"];
            args.extend_from_slice(cmd);
            args.extend(["--level", level, "--chunk", "64K", "--size", "256"]);
            args.extend(["--dev", "8:16:4M", "--dev", "8:32:4M", "--dev", "8:48:4M"]);
            args.extend_from_slice(rest);
            let (opts, group, cluster) = match Cli::try_parse_from(args).unwrap().cmd {
                Cmd::Table {
                    opts,
                    group,
                    cluster,
                    ..
                }
                | Cmd::Create {
                    opts,
                    group,
                    cluster,
                    ..
                } => (opts, group, cluster),
                other => panic!("not table or create: {other:?}"),
            };
            opts.build(DeviceCheck::None, &group, cluster.request())
                .map(|l| l.to_string())
                .map_err(|e| e.to_string())
        };
        let devs = "3 8:16 8192 8:32 8192 8:48 8192";
        for cmd in [&["table", "--offline"][..], &["create", "v"]] {
            // Right after `group <uuid>`, wherever --ppl is given.
            assert_eq!(
                line(cmd, "raid5", &["--ppl", "--group", uuid]),
                Ok(format!("0 256 amf raid5 4 128 group {uuid} ppl {devs}"))
            );
            assert_eq!(
                line(
                    cmd,
                    "raid5",
                    &["--group", uuid, "--cluster", "c", "--node", "1", "--ppl"]
                ),
                Ok(format!(
                    "0 256 amf raid5 8 128 group {uuid} ppl cluster c node 1 {devs}"
                ))
            );
            assert_eq!(
                line(cmd, "raid5", &["--group", uuid]),
                Ok(format!("0 256 amf raid5 3 128 group {uuid} {devs}"))
            );
            // The refusals are the kernel parser's (exit status 1), not clap's.
            assert_eq!(
                line(cmd, "raid1", &["--group", uuid, "--ppl"]),
                Err("ppl is only valid for raid5 and raid6 (--level raid1 with --ppl)".into())
            );
            assert_eq!(
                line(cmd, "raid5", &["--ppl"]),
                Err(
                    "ppl needs group <uuid> (--ppl needs --group <uuid>: the log lives in the \
                     reserved area of members formatted with amfctl format)"
                        .into()
                )
            );
        }
        // Not an option of scrub.
        assert!(Cli::try_parse_from([
            "amfctl", "scrub", "--level", "raid5", "--chunk", "8", "--dev", "a", "--dev", "b",
            "--ppl",
        ])
        .is_err());
    }

    #[test]
    fn transport_option() {
        let uuid = "6a1f0c2e-93b4-4d5e-8f70-1a2b3c4d5e6f";
        let table = |transport: &[&str]| {
            let mut args = vec![
                "amfctl",
                "create",
                "r5",
                "--level",
                "raid5",
                "--chunk",
                "64K",
                "--size",
                "256",
                "--dev",
                "8:16:4M",
                "--dev",
                "8:32:4M",
                "--dev",
                "8:48:4M",
                "--group",
                uuid,
                "--cluster",
                "amftest",
                "--node",
                "1",
                "--peer",
                "2@10.0.0.2:7789",
                "--peer",
                "1@10.0.0.1:7789",
                "--auth-key",
                "dm-amf:grp1",
            ];
            args.extend_from_slice(transport);
            let Cmd::Create {
                opts,
                group,
                cluster,
                ..
            } = Cli::try_parse_from(args).unwrap().cmd
            else {
                panic!("not create")
            };
            opts.build(DeviceCheck::None, &group, cluster.request())
                .map(|l| l.to_string())
                .map_err(|e| e.to_string())
        };
        let base = format!(
            "0 256 amf raid5 13 128 group {uuid} cluster amftest node 1 peers 2 \
             1@10.0.0.1:7789 2@10.0.0.2:7789 auth_key dm-amf:grp1"
        );
        let devs = "3 8:16 8192 8:32 8192 8:48 8192";
        assert_eq!(table(&[]), Ok(format!("{base} {devs}")));
        assert_eq!(table(&["--transport", "tcp"]), Ok(format!("{base} {devs}")));
        assert_eq!(
            table(&["--transport", "rdma"]),
            Ok(format!("{base} transport rdma {devs}").replace(" 13 128 ", " 15 128 "))
        );
        // The refusal is the kernel parser's (exit status 1), not clap's.
        assert_eq!(
            table(&["--transport", "roce"]),
            Err("transport must be tcp or rdma (--transport roce: expected tcp or rdma)".into())
        );
        // Once only.
        assert!(Cli::try_parse_from([
            "amfctl",
            "table",
            "--level",
            "raid5",
            "--chunk",
            "8",
            "--dev",
            "a",
            "--transport",
            "rdma",
            "--transport",
            "tcp",
        ])
        .is_err());
    }
}
