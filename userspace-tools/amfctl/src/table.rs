// SPDX-License-Identifier: GPL-2.0
//! Building an `amf` table line from the administrator's options, checked with the very
//! parser the kernel target runs (`amf_core::table::parse`), so that a line `amfctl`
//! accepts is one the kernel accepts, and a refusal carries the kernel's message.

use std::fmt;
use std::io;

use amf_core::geometry::Geometry;
use amf_core::superblock::{
    choose, parse_uuid, validate_member_set, ChooseError, SetError, Superblock, UuidText,
};
use amf_core::table::{
    self, parse_decimal, parse_peer, PeerSpec, TableError, TableSpec, MISSING_DEVICE,
};

use crate::cluster::check_name;
use crate::device::{DevArg, DevId, DevInfo, DevKind};

/// What the administrator asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRequest {
    /// Level name as written in tables (`raid0`).
    pub level: String,
    /// Chunk size in sectors.
    pub chunk_sectors: u64,
    /// Target length in sectors; `None`: the largest that fits every member.
    pub size: Option<u64>,
    /// Members in member order.
    pub devs: Vec<DevArg>,
    /// `group <uuid>`: the group UUID as the administrator wrote it (`None`: no metadata).
    pub group: Option<String>,
    /// `ppl` (`--ppl`): every raid5/6 write goes through the partial parity log.
    pub ppl: bool,
    /// Cluster mode: `cluster <name> node <id> [lock_stripes <n>]`, as given.
    pub cluster: ClusterRequest,
}

/// The cluster options as the administrator wrote them. Each is passed on to the kernel's
/// parser, which decides (a `node` without `cluster` is its refusal, not amfctl's).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterRequest {
    /// `--cluster <name>`: corosync's `totem.cluster_name`.
    pub name: Option<String>,
    /// `--node <id>`: this server's corosync node id.
    pub node: Option<String>,
    /// `--lock-stripes <n>`: stripes per lock (the kernel's default is 1).
    pub lock_stripes: Option<String>,
    /// `--peer <node>@<a.b.c.d>:<port>`, repeated: every AMF of the group, this one
    /// included (`peers <n> ...`).
    pub peers: Vec<String>,
    /// `--auth-key <description>`: the logon key holding the group's shared secret.
    pub auth_key: Option<String>,
    /// `--transport <tcp|rdma>`: what the replication channel runs on (the kernel's default
    /// is tcp).
    pub transport: Option<String>,
}

/// A table line: `<start> <len> amf <args...>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableLine {
    /// First sector of the target in the mapped device (always 0 here).
    pub start: u64,
    /// Target length in sectors.
    pub len: u64,
    /// The constructor arguments, after the target type.
    pub args: Vec<String>,
}

impl fmt::Display for TableLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} amf", self.start, self.len)?;
        for a in &self.args {
            write!(f, " {a}")?;
        }
        Ok(())
    }
}

/// Why no table line was produced.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The kernel would refuse the line with this documented message.
    #[error("{}{}", kernel_message(*.err), detail_suffix(.detail))]
    Table {
        /// The refusal, as the kernel target reports it.
        err: TableError,
        /// What exactly, for the administrator (may be empty).
        detail: String,
    },
    /// A member could not be opened (the kernel says `Device lookup failed`).
    #[error("Device lookup failed: {path}: {source}")]
    Lookup {
        /// The member as given.
        path: String,
        /// Why.
        source: io::Error,
    },
    /// Options that cannot work together.
    #[error("{0}")]
    Usage(String),
    /// With `--group`: the members' superblocks refuse the table, as the kernel's
    /// constructor would (`validate_member_set`, a superblock that cannot be chosen).
    #[error("{message} ({detail})")]
    Group {
        /// The kernel's message (`ti->error`).
        message: &'static str,
        /// What exactly, in terms of the devices.
        detail: String,
    },
    /// A member is a regular file where the kernel needs a block device.
    #[error("Device lookup failed: {0}: a regular file, not a block device (attach it with losetup first)")]
    NotBlockDevice(String),
}

/// The documented message of a table error, as a Rust string.
pub fn kernel_message(err: TableError) -> &'static str {
    err.message().to_str().unwrap_or("Invalid table")
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(" ({detail})")
    }
}

fn table_err(err: TableError, detail: impl Into<String>) -> BuildError {
    BuildError::Table {
        err,
        detail: detail.into(),
    }
}

/// How to check the members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceCheck {
    /// Do not open the members (needs an explicit size).
    None,
    /// Open them; regular files are accepted (`amfctl table`).
    AllowFiles,
    /// Open them; only block devices, as the kernel needs (`amfctl create`).
    BlockOnly,
}

fn args_for(req: &TableRequest) -> Vec<String> {
    let mut params = vec![req.chunk_sectors.to_string()];
    if let Some(g) = &req.group {
        // The canonical spelling when it is a UUID (as the kernel prints it back); anything
        // else as given, for the parser to refuse.
        let text = parse_uuid(g).map_or_else(|| g.clone(), |u| UuidText(&u).to_string());
        params.extend(["group".to_string(), text]);
    }
    // `ppl` right after `group <uuid>`, where the kernel prints it back; without `group`
    // it stays, so that the parser refuses it.
    if req.ppl {
        params.push("ppl".to_string());
    }
    // In the kernel's order (`dmsetup table` prints `cluster <name> node <id>` after
    // `group`, then `lock_stripes <n>` when it is not 1). Numbers in their canonical
    // decimal form when they are numbers; anything else as given, for the parser to refuse.
    let c = &req.cluster;
    let canonical = |v: &String| parse_decimal(v).map_or_else(|| v.clone(), |n| n.to_string());
    if let Some(name) = &c.name {
        params.extend(["cluster".to_string(), name.clone()]);
    }
    if let Some(node) = &c.node {
        params.extend(["node".to_string(), canonical(node)]);
    }
    if let Some(n) = &c.lock_stripes {
        // The default is left out, as the kernel prints it; without `cluster` it stays, so
        // that the parser refuses it.
        if parse_decimal(n) != Some(1) || c.name.is_none() {
            params.extend(["lock_stripes".to_string(), canonical(n)]);
        }
    }
    // Then `peers <n> <peer>...`, sorted by node id and canonical when every entry parses
    // (as the kernel prints them), and `auth_key <description>`.
    if !c.peers.is_empty() {
        params.extend(["peers".to_string(), c.peers.len().to_string()]);
        match c
            .peers
            .iter()
            .map(|p| parse_peer(p))
            .collect::<Option<Vec<PeerSpec>>>()
        {
            Some(mut peers) => {
                peers.sort_by_key(|p| p.node);
                params.extend(peers.iter().map(PeerSpec::to_string));
            }
            None => params.extend(c.peers.iter().cloned()),
        }
    }
    if let Some(key) = &c.auth_key {
        params.extend(["auth_key".to_string(), key.clone()]);
    }
    // Then `transport <t>`. The default, tcp, is left out, as the kernel prints it; without
    // `peers` it stays, so that the parser refuses it. Anything else as given.
    if let Some(t) = &c.transport {
        if t != "tcp" || c.peers.is_empty() {
            params.extend(["transport".to_string(), t.clone()]);
        }
    }
    let mut args = vec![req.level.clone(), params.len().to_string()];
    args.extend(params);
    args.push(req.devs.len().to_string());
    for d in &req.devs {
        args.push(d.path.clone());
        args.push(d.offset.to_string());
    }
    args
}

/// The words of a table line, as [`table::parse`] takes them (the spec borrows them).
fn words(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// Reads a member's superblock as the kernel's constructor does: `None` when the device
/// cannot be read or neither slot is valid (the member counts as missing); an error when
/// its two copies conflict or one has a format version this code does not know (the
/// constructor fails the table then).
pub type SuperblockReader<'a> = &'a dyn Fn(&str) -> Result<Option<Superblock>, BuildError>;

/// [`SuperblockReader`] on real devices and files.
pub fn read_member_superblock(path: &str) -> Result<Option<Superblock>, BuildError> {
    // `major:minor`, as the kernel takes it, through /dev/block.
    let real = if !std::path::Path::new(path).exists() && crate::device::is_major_minor(path) {
        format!("/dev/block/{path}")
    } else {
        path.to_string()
    };
    let Ok((a, b)) = crate::superblock::read_slots_direct(&real) else {
        return Ok(None);
    };
    match choose::<crate::superblock::Crc>(&a, &b) {
        Ok(c) => Ok(Some(c.superblock)),
        Err(ChooseError::NoValidSlot { .. }) => Ok(None),
        Err(e) => Err(BuildError::Group {
            message: e.message().to_str().unwrap_or("Invalid superblock"),
            detail: format!("{path}: amfctl examine {path}"),
        }),
    }
}

/// Builds and checks the table line, without reading superblocks ([`build_with`]).
pub fn build(
    req: &TableRequest,
    check: DeviceCheck,
    probe: &dyn Fn(&str) -> io::Result<DevInfo>,
) -> Result<TableLine, BuildError> {
    build_with(req, check, probe, None)
}

/// Builds and checks the table line.
///
/// Checks run in the kernel's order: first the syntax (the whole line through the kernel's
/// parser, with a placeholder length when the size is still to be computed), then the
/// members (lookup, duplicates, sizes), then, with `group <uuid>` and a `superblocks`
/// reader, the members' superblocks as the constructor checks them (each member's offset
/// against its own superblock's data offset, the set with `validate_member_set`, the table
/// against the newest superblock: level, chunk, member count, member length). Without
/// `--size`, a group's volume fills the data area the superblocks record. A `-` member is
/// missing: not opened, not read. `probe` looks a member up (see
/// [`crate::device::probe`]); it is a parameter so that tests need no devices.
pub fn build_with(
    req: &TableRequest,
    check: DeviceCheck,
    probe: &dyn Fn(&str) -> io::Result<DevInfo>,
    superblocks: Option<SuperblockReader<'_>>,
) -> Result<TableLine, BuildError> {
    let args = args_for(req);
    let n = req.devs.len() as u64;

    // 1. Syntax. One full stripe of the level is a valid length whatever else is wrong, so
    //    the parser reports the first real problem of the line.
    //    With a size given, this is the kernel's own check, in its order.
    let placeholder = req.size.unwrap_or_else(|| {
        req.chunk_sectors
            .max(1)
            .saturating_mul(stripe_chunks(&req.level, n))
    });
    let w = words(&args);
    let spec =
        table::parse(&w, placeholder).map_err(|e| table_err(e, detail(e, req, placeholder)))?;

    // 2. Members.
    let infos = match check {
        DeviceCheck::None => None,
        DeviceCheck::AllowFiles | DeviceCheck::BlockOnly => {
            let mut infos: Vec<Option<DevInfo>> = Vec::with_capacity(req.devs.len());
            for d in &req.devs {
                if d.path == MISSING_DEVICE {
                    infos.push(None);
                    continue;
                }
                let info = probe(&d.path).map_err(|source| BuildError::Lookup {
                    path: d.path.clone(),
                    source,
                })?;
                if check == DeviceCheck::BlockOnly && info.kind == DevKind::File {
                    return Err(BuildError::NotBlockDevice(d.path.clone()));
                }
                if let Some(j) = infos
                    .iter()
                    .position(|o| o.is_some_and(|o| o.id == info.id))
                {
                    return Err(table_err(
                        TableError::DuplicateDevice,
                        format!(
                            "{} and {} are the same {}",
                            req.devs[j].path,
                            d.path,
                            match info.id {
                                DevId::Block { .. } => "device",
                                DevId::File { .. } => "file",
                            }
                        ),
                    ));
                }
                infos.push(Some(info));
            }
            Some(infos)
        }
    };

    // 2b. With `group <uuid>`: the members' superblocks, as the constructor reads them.
    let group = match (spec.group, &infos, superblocks) {
        (Some(uuid), Some(_), Some(read)) => {
            let mut sbs = Vec::with_capacity(req.devs.len());
            for d in &req.devs {
                sbs.push(if d.path == MISSING_DEVICE {
                    None
                } else {
                    read(&d.path)?
                });
            }
            Some((uuid, sbs))
        }
        _ => None,
    };
    let data_area = group.as_ref().and_then(|(_, sbs)| {
        // The newest superblock's data area (validate_member_set's authority).
        sbs.iter()
            .flatten()
            .fold(None::<&Superblock>, |a, s| match a {
                Some(a) if a.events >= s.events => Some(a),
                _ => Some(s),
            })
            .map(|a| a.data_sectors)
    });

    // 3. Length.
    let len = match (req.size, &infos) {
        (Some(len), _) => len,
        (None, Some(infos)) => largest_fit(req, &spec, infos, data_area)?,
        (None, None) => {
            return Err(BuildError::Usage(
                "without --size the devices must be opened to find their size".to_string(),
            ))
        }
    };
    let w = words(&args);
    let spec = table::parse(&w, len).map_err(|e| table_err(e, detail(e, req, len)))?;

    // 4. Member sizes, as the kernel checks them.
    if let Some(infos) = &infos {
        for (m, info) in spec.members().zip(infos) {
            let Some(info) = info else { continue };
            let need = m.offset.saturating_add(m.len);
            if info.sectors < need {
                return Err(table_err(
                    TableError::DeviceTooSmall,
                    format!(
                        "{} has {} sectors, needs {} (offset {} + {} per member)",
                        m.path, info.sectors, need, m.offset, m.len
                    ),
                ));
            }
        }
    }

    // 5. The superblocks, as the constructor checks them.
    if let Some((uuid, sbs)) = &group {
        check_superblocks(req, &spec, uuid, sbs)?;
    }

    Ok(TableLine {
        start: 0,
        len,
        args,
    })
}

fn group_err(message: &'static core::ffi::CStr, detail: String) -> BuildError {
    BuildError::Group {
        message: message.to_str().unwrap_or("Invalid table"),
        detail,
    }
}

/// The constructor's checks of the members' superblocks (`dm-amf/metadata.rs` `assemble`),
/// with the same core functions, in its order, and messages that name the devices.
fn check_superblocks(
    req: &TableRequest,
    spec: &TableSpec<'_>,
    uuid: &amf_core::superblock::Uuid,
    sbs: &[Option<Superblock>],
) -> Result<(), BuildError> {
    let path = |i: usize| req.devs.get(i).map_or("?", |d| d.path.as_str());
    for (position, sb) in sbs.iter().enumerate() {
        let Some(sb) = sb else { continue };
        if let Err(e) = spec.check_data_offset(position, sb) {
            let given = spec.member(position).map_or(0, |m| m.offset);
            return Err(table_err(
                e,
                format!(
                    "--dev {p}:{given}: the data area of {p} starts at sector {o} (--dev {p}:{o})",
                    p = path(position),
                    o = sb.data_offset
                ),
            ));
        }
    }
    let group_text = UuidText(uuid).to_string();
    let report = validate_member_set(Some(uuid), sbs).map_err(|e| {
        let detail = match e {
            SetError::NoDevices | SetError::TooManyDevices => String::new(),
            SetError::NoSuperblock => format!(
                "no --dev holds a valid amf superblock of group {group_text} (amfctl examine)"
            ),
            SetError::ForeignMember { position } => format!(
                "{} belongs to group {}, not {group_text}",
                path(position),
                sbs[position]
                    .as_ref()
                    .map_or(String::new(), |s| UuidText(&s.group_uuid).to_string())
            ),
            SetError::WrongMemberCount { devices, members } => {
                format!("{devices} --dev given, the group has {members} members")
            }
            SetError::DuplicateRole {
                role,
                first,
                second,
            } => format!("{} and {} both hold role {role}", path(first), path(second)),
            SetError::WrongRole { position, role } => format!(
                "{} is --dev number {} but holds role {role}: give the members in role order \
                 (amfctl examine shows each one's role)",
                path(position),
                position + 1
            ),
            SetError::Inconsistent { position } => format!(
                "{}: creation time or geometry differs from the group's newest superblock",
                path(position)
            ),
            SetError::ReplacedMember { position } => format!(
                "{} once held role {position}, but the group has put another device there",
                path(position)
            ),
            SetError::Diverged { position } => format!(
                "{}: same event counter as the newest superblock, different group state",
                path(position)
            ),
            SetError::TooManyFailed { failed, tolerated } => format!(
                "{failed} members missing, failed or stale; {} tolerates {tolerated}",
                req.level
            ),
        };
        group_err(e.message(), detail)
    })?;
    let Some(authority) = sbs.get(report.authority).and_then(Option::as_ref) else {
        return Err(group_err(SetError::NoSuperblock.message(), String::new()));
    };
    spec.check_group(authority).map_err(|e| {
        let m = spec.members().next().map_or(0, |m| m.len);
        table_err(
            e,
            format!(
                "the group ({}) is {} with {}-sector chunks, {} members, {} data sectors each; \
                 the table: {} with {}-sector chunks, {} members, {m} sectors each",
                path(report.authority),
                level_text(authority.level),
                authority.chunk_sectors,
                authority.member_count(),
                authority.data_sectors,
                level_text(spec.level),
                spec.chunk_sectors,
                spec.members().len(),
            ),
        )
    })
}

/// `raid5`, `raid10 (2 copies)`.
fn level_text(level: amf_core::geometry::Level) -> String {
    match level {
        amf_core::geometry::Level::Raid10 { copies } => format!("raid10 ({copies} copies)"),
        l => table::level_name(l).to_string(),
    }
}

/// The largest target length that fits every member (a `-` member: the others), in whole
/// stripes; within `data_area` sectors per member when the group's superblocks record one.
fn largest_fit(
    req: &TableRequest,
    spec: &TableSpec<'_>,
    infos: &[Option<DevInfo>],
    data_area: Option<u64>,
) -> Result<u64, BuildError> {
    let mut smallest: Option<(usize, u64)> = None;
    for (i, (d, info)) in req.devs.iter().zip(infos).enumerate() {
        let Some(info) = info else { continue };
        let mut avail = info.sectors.saturating_sub(d.offset);
        if let Some(area) = data_area {
            avail = avail.min(area);
        }
        match smallest {
            Some((_, s)) if s <= avail => {}
            _ => smallest = Some((i, avail)),
        }
    }
    let Some((i, avail)) = smallest else {
        return Err(BuildError::Usage(
            "every --dev is '-' (missing): give --size".to_string(),
        ));
    };
    let too_small = || {
        let d = &req.devs[i];
        table_err(
            TableError::DeviceTooSmall,
            format!(
                "{} has {} sectors from offset {}: less than one chunk of {} sectors",
                d.path,
                infos[i].map_or(0, |x| x.sectors).saturating_sub(d.offset),
                d.offset,
                spec.chunk_sectors
            ),
        )
    };
    let geometry = Geometry::new(
        spec.level,
        spec.members().len(),
        u64::from(spec.chunk_sectors),
        avail,
    )
    .map_err(|e| table_err(TableError::LengthNotStripeMultiple, format!("{e:?}")))?;
    match geometry.logical_sectors() {
        0 => Err(too_small()),
        len => Ok(len),
    }
}

/// Data chunks in one full stripe of `level` over `n` members (at least 1): `n` for raid0,
/// `n - 1` for raid5, `n - 2` for raid6, one chunk for the mirrored levels.
fn stripe_chunks(level: &str, n: u64) -> u64 {
    match level {
        "raid0" => n,
        "raid5" => n.saturating_sub(1),
        "raid6" => n.saturating_sub(2),
        _ => 1,
    }
    .max(1)
}

/// What exactly was wrong, in terms of the options.
fn detail(err: TableError, req: &TableRequest, len: u64) -> String {
    match err {
        TableError::UnknownLevel => format!(
            "--level {}: valid levels are {}",
            req.level,
            crate::level::valid_list()
        ),
        TableError::BadChunk | TableError::ChunkNotPowerOfTwo | TableError::ChunkOutOfRange => {
            format!(
                "--chunk is {} sectors ({}); it must be a power of two from {} to {} sectors \
                 (4K to 1G)",
                req.chunk_sectors,
                crate::size::human(req.chunk_sectors),
                table::MIN_CHUNK_SECTORS,
                table::MAX_CHUNK_SECTORS
            )
        }
        TableError::BadDeviceCount => format!(
            "{} devices given; 1 to {} are allowed",
            req.devs.len(),
            amf_core::geometry::MAX_MEMBERS
        ),
        TableError::DuplicateDevice => "the same --dev path given twice".to_string(),
        TableError::LengthNotStripeMultiple => {
            let chunks = stripe_chunks(&req.level, req.devs.len() as u64);
            let stripe = req.chunk_sectors.saturating_mul(chunks);
            let how = match req.level.as_str() {
                "raid0" => format!("{} x {}", req.chunk_sectors, req.devs.len()),
                "raid5" | "raid6" => format!("{} x {chunks} data chunks", req.chunk_sectors),
                _ => "one chunk".to_string(),
            };
            let mut d =
                format!("--size is {len} sectors, the full stripe {stripe} sectors ({how})");
            if stripe > 0 && len >= stripe {
                d.push_str(&format!("; {} would fit", len - len % stripe));
            }
            d
        }
        TableError::DeviceTooSmall => {
            format!("--size {len} plus a device offset exceeds the largest sector number")
        }
        TableError::BadGroup => format!(
            "--group {}: expected 32 hex digits, in 8-4-4-4-12 groups or without dashes, \
             not all zero",
            req.group.as_deref().unwrap_or("")
        ),
        TableError::BadCluster => {
            let name = req.cluster.name.as_deref().unwrap_or("");
            match check_name(name) {
                Err(e) => format!("--cluster: {e}"),
                Ok(()) => format!(
                    "--cluster {name}: expected 1 to {} letters, digits, '-', '_' or '.'",
                    table::MAX_CLUSTER_NAME
                ),
            }
        }
        TableError::BadNode => format!(
            "--node {}: expected this server's corosync node id, a decimal number from 1 to {}",
            req.cluster.node.as_deref().unwrap_or(""),
            table::MAX_NODE_ID
        ),
        TableError::ClusterIncomplete => if req.cluster.name.is_some() {
            "--cluster needs --node <id>, this server's corosync node id"
        } else {
            "--node needs --cluster <name>, corosync's cluster name"
        }
        .to_string(),
        TableError::ClusterNeedsGroup => "--cluster needs --group <uuid>: cluster mode serves a \
             group formatted with amfctl format, and its DLM lockspace is named after the group"
            .to_string(),
        TableError::ClusterLevel => format!("--level {} with --cluster", req.level),
        TableError::BadLockStripes => format!(
            "--lock-stripes {}: expected a number of stripes from 1 to {}",
            req.cluster.lock_stripes.as_deref().unwrap_or(""),
            table::MAX_LOCK_STRIPES
        ),
        TableError::LockStripesNotCluster => "--lock-stripes needs --cluster <name>".to_string(),
        TableError::PeersNotCluster => "--peer needs --cluster <name> and --node <id>".to_string(),
        TableError::BadPeerCount => format!(
            "{} --peer given; {} to {} are needed, one for every server of the group, this one \
             included",
            req.cluster.peers.len(),
            table::MIN_PEERS,
            table::MAX_PEERS
        ),
        TableError::BadPeer => req
            .cluster
            .peers
            .iter()
            .find_map(|p| {
                peer_problem(p)
                    .err()
                    .map(|why| format!("--peer {p}: {why}"))
            })
            .unwrap_or_default(),
        TableError::DuplicatePeer => duplicate_peers(&req.cluster.peers).unwrap_or_default(),
        TableError::PeersMissSelf => {
            let mut ids: Vec<u32> = req
                .cluster
                .peers
                .iter()
                .filter_map(|p| parse_peer(p))
                .map(|p| p.node)
                .collect();
            ids.sort_unstable();
            let ids: Vec<String> = ids.iter().map(u32::to_string).collect();
            format!(
                "--node {} is not among the --peer node ids ({}): list this server too, with \
                 the address it listens on",
                req.cluster.node.as_deref().unwrap_or(""),
                ids.join(", ")
            )
        }
        TableError::PeersNeedAuthKey => "--peer needs --auth-key <description>, the logon key \
             holding the group's shared secret (amfctl key-add)"
            .to_string(),
        TableError::AuthKeyNeedsPeers => "--auth-key needs --peer".to_string(),
        TableError::BadAuthKey => {
            let key = req.cluster.auth_key.as_deref().unwrap_or("");
            match auth_key_problem(key) {
                Err(why) => format!("--auth-key: {why}"),
                Ok(()) => format!("--auth-key {key}"),
            }
        }
        TableError::BadTransport => format!(
            "--transport {}: expected tcp or rdma",
            req.cluster.transport.as_deref().unwrap_or("")
        ),
        TableError::TransportNeedsPeers => "--transport needs --peer".to_string(),
        TableError::PplLevel => format!("--level {} with --ppl", req.level),
        TableError::PplNeedsGroup => "--ppl needs --group <uuid>: the log lives in the reserved \
             area of members formatted with amfctl format"
            .to_string(),
        _ => String::new(),
    }
}

/// Why `word` is not a `peers` entry (`amf_core::table::parse_peer` refuses it), for people.
pub fn peer_problem(word: &str) -> Result<PeerSpec, String> {
    if let Some(p) = parse_peer(word) {
        return Ok(p);
    }
    let shape = "expected <node>@<a.b.c.d>:<port>";
    let Some((node, addr)) = word.split_once('@') else {
        return Err(format!("{shape}: no '@'"));
    };
    if !parse_decimal(node).is_some_and(|n| (1..=u64::from(table::MAX_PEER_NODE_ID)).contains(&n)) {
        return Err(format!(
            "node id '{node}' is not a decimal number from 1 to {}",
            table::MAX_PEER_NODE_ID
        ));
    }
    let Some((ip, port)) = addr.rsplit_once(':') else {
        return Err(format!("{shape}: no ':<port>'"));
    };
    if !parse_decimal(port).is_some_and(|p| (1..=65535).contains(&p)) {
        return Err(format!(
            "port '{port}' is not a decimal number from 1 to 65535"
        ));
    }
    Err(format!(
        "'{ip}' is not an IPv4 address: four decimal numbers from 0 to 255 without leading \
         zeros, separated by dots"
    ))
}

/// The first two `--peer` entries with the same node id or the same address and port.
fn duplicate_peers(peers: &[String]) -> Option<String> {
    let parsed: Vec<(&String, PeerSpec)> = peers
        .iter()
        .filter_map(|w| parse_peer(w).map(|p| (w, p)))
        .collect();
    parsed.iter().enumerate().find_map(|(i, (w, p))| {
        parsed[..i].iter().find_map(|(v, q)| {
            let what = if q.node == p.node {
                "node id"
            } else if q.same_address(p) {
                "address and port"
            } else {
                return None;
            };
            Some(format!("--peer {v} and --peer {w} have the same {what}"))
        })
    })
}

/// Why `desc` cannot be the description of an `auth_key` logon key
/// (`amf_core::table::valid_auth_key` refuses it), for people.
pub fn auth_key_problem(desc: &str) -> Result<(), String> {
    if table::valid_auth_key(desc) {
        return Ok(());
    }
    let max = table::MAX_AUTH_KEY_LEN;
    Err(if desc.is_empty() {
        "the key description is empty".to_string()
    } else if desc.len() > max {
        format!(
            "the key description is {} bytes long, more than {max}",
            desc.len()
        )
    } else if let Some(ch) = desc.chars().find(|c| !c.is_ascii_graphic()) {
        format!(
            "key description '{desc}' contains {ch:?}: use printable ASCII characters without \
             spaces"
        )
    } else {
        format!(
            "key description '{desc}' has no '<prefix>:' (the kernel's logon keys need one, \
             e.g. dm-amf:grp1)"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(chunk: u64, size: Option<u64>, devs: &[(&str, u64)]) -> TableRequest {
        TableRequest {
            level: "raid0".to_string(),
            chunk_sectors: chunk,
            size,
            devs: devs.iter().map(|&(p, o)| DevArg::new(p, o)).collect(),
            group: None,
            ppl: false,
            cluster: ClusterRequest::default(),
        }
    }

    /// Fake members: `/dev/vdX` is a block device of `sizes[X - 'a']` sectors with minor X.
    fn fake(sizes: &'static [u64]) -> impl Fn(&str) -> io::Result<DevInfo> {
        move |path: &str| {
            let c = path
                .strip_prefix("/dev/vd")
                .and_then(|s| s.bytes().next())
                .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
            let i = usize::from(c - b'a');
            let sectors = *sizes
                .get(i)
                .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
            Ok(DevInfo {
                sectors,
                kind: if path.ends_with(".img") {
                    DevKind::File
                } else {
                    DevKind::Block
                },
                id: DevId::Block {
                    major: 254,
                    minor: i as u64,
                },
            })
        }
    }

    fn kernel_err(r: Result<TableLine, BuildError>) -> TableError {
        match r {
            Err(BuildError::Table { err, .. }) => err,
            other => panic!("expected a table error, got {other:?}"),
        }
    }

    const FOUR: &[(&str, u64)] = &[
        ("/dev/vda", 2048),
        ("/dev/vdb", 2048),
        ("/dev/vdc", 2048),
        ("/dev/vdd", 2048),
    ];

    #[test]
    fn readme_example_line() {
        let r = req(128, Some(2_097_152), FOUR);
        let sizes: &[u64] = &[1 << 20; 4];
        let line = build(&r, DeviceCheck::BlockOnly, &fake(sizes)).unwrap();
        assert_eq!(
            line.to_string(),
            "0 2097152 amf raid0 1 128 4 /dev/vda 2048 /dev/vdb 2048 /dev/vdc 2048 /dev/vdd 2048"
        );
        // Without opening the devices, the same line.
        let offline = build(&r, DeviceCheck::None, &fake(&[])).unwrap();
        assert_eq!(offline, line);
    }

    #[test]
    fn size_defaults_to_largest_fit_in_full_stripes() {
        // Smallest member: 100000 - 2048 = 97952 sectors -> 765 chunks of 128 -> 97920.
        let r = req(128, None, FOUR);
        let line = build(
            &r,
            DeviceCheck::AllowFiles,
            &fake(&[200_000, 100_000, 150_000, 100_001]),
        )
        .unwrap();
        assert_eq!(line.len, 4 * 97_920);
        assert_eq!(line.len % (128 * 4), 0);
        // The kernel's parser agrees.
        let w = words(&line.args);
        let spec = table::parse(&w, line.len).unwrap();
        assert_eq!(spec.member(1).unwrap().len, 97_920);
    }

    #[test]
    fn kernel_messages_for_syntax() {
        let none = fake(&[]);
        let mut r = req(24, Some(1024), &[("/dev/vda", 0)]);
        assert_eq!(
            kernel_err(build(&r, DeviceCheck::None, &none)),
            TableError::ChunkNotPowerOfTwo
        );
        r.chunk_sectors = 4;
        assert_eq!(
            kernel_err(build(&r, DeviceCheck::None, &none)),
            TableError::ChunkOutOfRange
        );
        r.chunk_sectors = 0;
        assert_eq!(
            kernel_err(build(&r, DeviceCheck::None, &none)),
            TableError::ChunkNotPowerOfTwo
        );
        r.chunk_sectors = 8;
        r.level = "raid5".to_string();
        assert_eq!(
            kernel_err(build(&r, DeviceCheck::None, &none)),
            TableError::TooFewDevices
        );
        r.level = "raid7".to_string();
        assert_eq!(
            kernel_err(build(&r, DeviceCheck::None, &none)),
            TableError::UnknownLevel
        );
        r.level = "raid0".to_string();
        r.size = Some(1001);
        assert_eq!(
            kernel_err(build(&r, DeviceCheck::None, &none)),
            TableError::LengthNotStripeMultiple
        );
        r.size = Some(0);
        assert_eq!(
            kernel_err(build(&r, DeviceCheck::None, &none)),
            TableError::LengthNotStripeMultiple
        );
        let r = req(8, Some(16), &[("/dev/vda", 0), ("/dev/vda", 8)]);
        assert_eq!(
            kernel_err(build(&r, DeviceCheck::None, &none)),
            TableError::DuplicateDevice
        );
        let many: Vec<(&str, u64)> = (0..65).map(|_| ("/dev/x", 0)).collect();
        let r = req(8, Some(8 * 65), &many);
        assert_eq!(
            kernel_err(build(&r, DeviceCheck::None, &none)),
            TableError::BadDeviceCount
        );
        let r = req(8, Some(8 * 2), &[("/dev/vda", u64::MAX), ("/dev/vdb", 0)]);
        assert_eq!(
            kernel_err(build(&r, DeviceCheck::None, &none)),
            TableError::DeviceTooSmall
        );
    }

    #[test]
    fn member_checks() {
        let sizes: &[u64] = &[4096, 4096, 1024];
        let probe = fake(sizes);
        // Too small for the requested size.
        let r = req(
            8,
            Some(3 * 2048),
            &[("/dev/vda", 0), ("/dev/vdb", 0), ("/dev/vdc", 0)],
        );
        let e = build(&r, DeviceCheck::AllowFiles, &probe).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("Device too small (/dev/vdc has 1024 sectors"),
            "{e}"
        );
        // Too small for even one chunk.
        let r = req(2048, None, &[("/dev/vda", 0), ("/dev/vdc", 0)]);
        assert_eq!(
            kernel_err(build(&r, DeviceCheck::AllowFiles, &probe)),
            TableError::DeviceTooSmall
        );
        // Offset beyond the end.
        let r = req(8, None, &[("/dev/vda", 5000)]);
        assert_eq!(
            kernel_err(build(&r, DeviceCheck::AllowFiles, &probe)),
            TableError::DeviceTooSmall
        );
        // Missing member.
        let r = req(8, None, &[("/dev/vdz", 0)]);
        let e = build(&r, DeviceCheck::AllowFiles, &probe).unwrap_err();
        assert!(matches!(e, BuildError::Lookup { .. }));
        assert!(
            e.to_string()
                .starts_with("Device lookup failed: /dev/vdz: "),
            "{e}"
        );
        // Same device under two names (same major:minor).
        let r = req(8, None, &[("/dev/vda", 0), ("/dev/vda1", 0)]);
        let e = build(&r, DeviceCheck::AllowFiles, &probe).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Duplicate device (/dev/vda and /dev/vda1 are the same device)"
        );
        // Regular files only where allowed.
        let r = req(8, None, &[("/dev/vda.img", 0)]);
        assert!(build(&r, DeviceCheck::AllowFiles, &probe).is_ok());
        assert!(matches!(
            build(&r, DeviceCheck::BlockOnly, &probe),
            Err(BuildError::NotBlockDevice(_))
        ));
        // No size and no devices opened.
        let r = req(8, None, &[("/dev/vda", 0)]);
        assert!(build(&r, DeviceCheck::None, &probe).is_err());
    }

    #[test]
    fn parity_levels() {
        let none = fake(&[]);
        // raid5 over four members: 3 data chunks per stripe, a third of the size per member.
        let mut r = req(128, Some(1_572_864), FOUR);
        r.level = "raid5".to_string();
        let line = build(&r, DeviceCheck::None, &none).unwrap();
        assert_eq!(
            line.to_string(),
            "0 1572864 amf raid5 1 128 4 /dev/vda 2048 /dev/vdb 2048 /dev/vdc 2048 /dev/vdd 2048"
        );
        assert_eq!(
            table::parse(&words(&line.args), line.len)
                .unwrap()
                .member(0)
                .unwrap()
                .len,
            524_288
        );
        // Without a size: the largest fit, in whole stripes of 3 data chunks.
        r.size = None;
        let line = build(
            &r,
            DeviceCheck::AllowFiles,
            &fake(&[200_000, 100_000, 150_000, 100_001]),
        )
        .unwrap();
        assert_eq!(line.len, 3 * 97_920);
        // A member one chunk short of the requested size.
        r.size = Some(3 * 97_920 + 3 * 128);
        let e = build(
            &r,
            DeviceCheck::AllowFiles,
            &fake(&[200_000, 100_000, 150_000, 100_001]),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("Device too small (/dev/vdb has 100000 sectors, needs 100096"),
            "{e}"
        );

        // raid6 over five members; over three it is refused.
        let five = &[
            ("/dev/vda", 0),
            ("/dev/vdb", 0),
            ("/dev/vdc", 0),
            ("/dev/vdd", 0),
            ("/dev/vde", 0),
        ];
        let mut r = req(8, None, five);
        r.level = "raid6".to_string();
        let line = build(&r, DeviceCheck::AllowFiles, &fake(&[80; 5])).unwrap();
        assert_eq!(line.len, 3 * 80);
        assert_eq!(
            line.to_string(),
            "0 240 amf raid6 1 8 5 /dev/vda 0 /dev/vdb 0 /dev/vdc 0 /dev/vdd 0 /dev/vde 0"
        );
        let mut r = req(8, None, &five[..3]);
        r.level = "raid6".to_string();
        assert_eq!(
            kernel_err(build(&r, DeviceCheck::AllowFiles, &fake(&[80; 5]))),
            TableError::TooFewDevices
        );
        r.size = Some(24);
        assert_eq!(
            kernel_err(build(&r, DeviceCheck::None, &none)),
            TableError::TooFewDevices
        );
    }

    #[test]
    fn group_parameter() {
        let none = fake(&[]);
        let mut r = req(128, Some(3 * 128), &[("/dev/vda", 8192)]);
        r.level = "raid1".to_string();
        r.devs.push(DevArg::new("/dev/vdb", 8192));
        r.devs.push(DevArg::new("-", 8192));
        r.size = Some(128);
        // Written canonically, whatever the spelling given.
        for given in [
            "6a1f0c2e-93b4-4d5e-8f70-1a2b3c4d5e6f",
            "6A1F0C2E93B44D5E8F701A2B3C4D5E6F",
        ] {
            r.group = Some(given.to_string());
            let line = build(&r, DeviceCheck::None, &none).unwrap();
            assert_eq!(
                line.to_string(),
                "0 128 amf raid1 3 128 group 6a1f0c2e-93b4-4d5e-8f70-1a2b3c4d5e6f \
                 3 /dev/vda 8192 /dev/vdb 8192 - 8192"
            );
            let w = words(&line.args);
            let spec = table::parse(&w, line.len).unwrap();
            assert_eq!(spec.group.map(|u| u[0]), Some(0x6a));
        }
        // The member devices are checked as without it; the `-` member is not looked up.
        let line = build(&r, DeviceCheck::AllowFiles, &fake(&[16384; 2])).unwrap();
        assert!(line.to_string().ends_with(" - 8192"), "{line}");
        r.devs.push(DevArg::new("/dev/vdx", 8192));
        let line = build(&r, DeviceCheck::AllowFiles, &fake(&[16384; 2]));
        assert!(matches!(line, Err(BuildError::Lookup { .. })), "{line:?}");
        r.devs.pop();
        r.devs.pop();
        let line = build(&r, DeviceCheck::AllowFiles, &fake(&[16384; 2])).unwrap();
        assert_eq!(line.args[..4], ["raid1", "3", "128", "group"]);
        // Refused as the kernel refuses it.
        for bad in [
            "x",
            "",
            "00000000-0000-0000-0000-000000000000",
            "6a1f0c2e-93b4",
        ] {
            r.group = Some(bad.to_string());
            let e = build(&r, DeviceCheck::None, &none).unwrap_err();
            assert!(
                matches!(
                    e,
                    BuildError::Table {
                        err: TableError::BadGroup,
                        ..
                    }
                ),
                "{e:?}"
            );
            assert!(
                e.to_string().starts_with(&format!(
                    "Invalid group UUID (--group {bad}: expected 32 hex"
                )),
                "{e}"
            );
        }
    }

    const UUID: &str = "6a1f0c2e-93b4-4d5e-8f70-1a2b3c4d5e6f";

    /// A raid5 over four members of a formatted group, 1536 sectors (4 stripes of 64K x 3).
    fn clustered(name: Option<&str>, node: Option<&str>, stripes: Option<&str>) -> TableRequest {
        let mut r = req(128, Some(1536), FOUR);
        r.level = "raid5".to_string();
        for d in &mut r.devs {
            d.offset = 8192;
        }
        r.group = Some(UUID.to_string());
        r.cluster = ClusterRequest {
            name: name.map(str::to_string),
            node: node.map(str::to_string),
            lock_stripes: stripes.map(str::to_string),
            ..ClusterRequest::default()
        };
        r
    }

    const FOUR_AT_8192: &str = "4 /dev/vda 8192 /dev/vdb 8192 /dev/vdc 8192 /dev/vdd 8192";

    #[test]
    fn cluster_words_in_the_kernel_order() {
        let none = fake(&[]);
        let line = |r: &TableRequest| build(r, DeviceCheck::None, &none).unwrap();
        // After `group <uuid>`: `cluster <name> node <id>`, four more words in <#params>.
        let l = line(&clustered(Some("amftest"), Some("2"), None));
        assert_eq!(
            l.to_string(),
            format!("0 1536 amf raid5 7 128 group {UUID} cluster amftest node 2 {FOUR_AT_8192}")
        );
        let w = words(&l.args);
        let spec = table::parse(&w, l.len).unwrap();
        let c = spec.cluster.unwrap();
        assert_eq!((c.name, c.node, c.lock_stripes), ("amftest", 2, 1));
        // Then `lock_stripes <n>` when it is not 1, two more words.
        let l = line(&clustered(Some("amftest"), Some("3"), Some("16")));
        assert_eq!(
            l.to_string(),
            format!(
                "0 1536 amf raid5 9 128 group {UUID} cluster amftest node 3 lock_stripes 16 \
                 {FOUR_AT_8192}"
            )
        );
        let w = words(&l.args);
        let spec = table::parse(&w, l.len).unwrap();
        assert_eq!(spec.cluster.unwrap().lock_stripes, 16);
        // The default is left out, as the kernel prints it; numbers in canonical form.
        let l = line(&clustered(Some("a.b_c-1"), Some("0042"), Some("01")));
        assert_eq!(
            l.to_string(),
            format!("0 1536 amf raid5 7 128 group {UUID} cluster a.b_c-1 node 42 {FOUR_AT_8192}")
        );
        let l = line(&clustered(Some("x"), Some("2147483647"), Some("1048576")));
        assert_eq!(
            l.args[3..12],
            [
                "group",
                UUID,
                "cluster",
                "x",
                "node",
                "2147483647",
                "lock_stripes",
                "1048576",
                "4"
            ]
        );
        // raid6 too; with the members opened, the line is the same.
        let mut r = clustered(Some("amftest"), Some("1"), None);
        r.level = "raid6".to_string();
        r.size = Some(1024);
        let offline = line(&r);
        let opened = build(&r, DeviceCheck::AllowFiles, &fake(&[16384; 4])).unwrap();
        assert_eq!(offline, opened);
        assert!(opened.to_string().starts_with(&format!(
            "0 1024 amf raid6 7 128 group {UUID} cluster amftest node 1 4 "
        )));
    }

    #[test]
    fn ppl_right_after_group() {
        let none = fake(&[]);
        // raid5 with --group: `ppl` right after `group <uuid>`, one more word in <#params>.
        let mut r = clustered(None, None, None);
        r.ppl = true;
        let l = build(&r, DeviceCheck::None, &none).unwrap();
        assert_eq!(
            l.to_string(),
            format!("0 1536 amf raid5 4 128 group {UUID} ppl {FOUR_AT_8192}")
        );
        assert!(table::parse(&words(&l.args), l.len).unwrap().ppl);
        // Without --ppl, none.
        r.ppl = false;
        let l = build(&r, DeviceCheck::None, &none).unwrap();
        assert!(!l.args.iter().any(|w| w == "ppl"), "{l}");
        assert!(!table::parse(&words(&l.args), l.len).unwrap().ppl);
        // raid6 too; with the members opened, the line is the same.
        let mut r = clustered(None, None, None);
        r.level = "raid6".to_string();
        r.size = Some(1024);
        r.ppl = true;
        let offline = build(&r, DeviceCheck::None, &none).unwrap();
        let opened = build(&r, DeviceCheck::AllowFiles, &fake(&[16384; 4])).unwrap();
        assert_eq!(offline, opened);
        assert_eq!(
            opened.to_string(),
            format!("0 1024 amf raid6 4 128 group {UUID} ppl {FOUR_AT_8192}")
        );
        assert!(table::parse(&words(&opened.args), opened.len).unwrap().ppl);
        // Before the cluster and replication words, as the kernel prints them back.
        let mut r = over("rdma");
        r.cluster.lock_stripes = Some("8".to_string());
        r.ppl = true;
        let l = build(&r, DeviceCheck::None, &none).unwrap();
        assert_eq!(
            l.to_string(),
            format!(
                "0 1536 amf raid5 19 128 group {UUID} ppl cluster amftest node 2 lock_stripes 8 \
                 peers 3 1@10.199.0.1:7789 2@10.199.0.2:7789 3@10.199.0.3:7789 \
                 auth_key dm-amf:grp1 transport rdma {FOUR_AT_8192}"
            )
        );
        let w = words(&l.args);
        let spec = table::parse(&w, l.len).unwrap();
        assert!(spec.ppl);
        assert_eq!(spec.cluster.unwrap().lock_stripes, 8);
    }

    #[test]
    fn ppl_refusals() {
        use TableError::*;
        // Levels other than raid5 and raid6, with --group and without it.
        for level in ["raid0", "raid1", "raid10"] {
            for group in [Some(UUID), None] {
                let mut r = clustered(None, None, None);
                r.level = level.to_string();
                r.group = group.map(str::to_string);
                r.ppl = true;
                let (e, m) = refusal(&r);
                assert_eq!(e, PplLevel, "{level} {group:?}");
                assert_eq!(
                    m,
                    format!("ppl is only valid for raid5 and raid6 (--level {level} with --ppl)")
                );
            }
        }
        // raid5 and raid6 without --group.
        for (level, size) in [("raid5", 1536), ("raid6", 1024)] {
            let mut r = clustered(None, None, None);
            r.level = level.to_string();
            r.size = Some(size);
            r.group = None;
            r.ppl = true;
            let (e, m) = refusal(&r);
            assert_eq!(e, PplNeedsGroup, "{level}");
            assert_eq!(
                m,
                "ppl needs group <uuid> (--ppl needs --group <uuid>: the log lives in the \
                 reserved area of members formatted with amfctl format)"
            );
            // The refusal is the kernel parser's: `ppl` stays in the words amfctl would have
            // printed, and the parser refuses them with the same error.
            let args = args_for(&r);
            assert_eq!(args[1..4], ["2", "128", "ppl"]);
            assert_eq!(
                table::parse(&words(&args), size).unwrap_err(),
                PplNeedsGroup
            );
        }
    }

    /// The refusal of a request: the kernel's error and the whole message.
    fn refusal(r: &TableRequest) -> (TableError, String) {
        match build(r, DeviceCheck::None, &fake(&[])) {
            Err(e @ BuildError::Table { err, .. }) => (err, e.to_string()),
            other => panic!("expected a table error, got {other:?}"),
        }
    }

    #[test]
    fn cluster_refusals() {
        use TableError::*;
        // Without --node, or --node alone.
        let (e, m) = refusal(&clustered(Some("amftest"), None, None));
        assert_eq!(e, ClusterIncomplete);
        assert_eq!(
            m,
            "cluster and node must be given together \
             (--cluster needs --node <id>, this server's corosync node id)"
        );
        let (e, m) = refusal(&clustered(None, Some("1"), None));
        assert_eq!(e, ClusterIncomplete);
        assert!(
            m.ends_with("(--node needs --cluster <name>, corosync's cluster name)"),
            "{m}"
        );
        // Without --group.
        let mut r = clustered(Some("amftest"), Some("1"), None);
        r.group = None;
        let (e, m) = refusal(&r);
        assert_eq!(e, ClusterNeedsGroup);
        assert!(
            m.starts_with("cluster needs group <uuid> (--cluster needs --group <uuid>: "),
            "{m}"
        );
        // Levels other than raid1, raid5 and raid6.
        for (level, size) in [("raid0", 512), ("raid10", 256)] {
            let mut r = clustered(Some("amftest"), Some("1"), None);
            r.level = level.to_string();
            r.size = Some(size);
            let (e, m) = refusal(&r);
            assert_eq!(e, ClusterLevel, "{level}");
            assert_eq!(
                m,
                format!(
                    "cluster is only implemented for raid1, raid5 and raid6 (--level {level} \
                     with --cluster)"
                )
            );
        }
        // Bad names.
        for (name, why) in [
            ("", "the cluster name is empty"),
            ("amf test", "cluster name 'amf test' contains ' '"),
            ("amf/test", "cluster name 'amf/test' contains '/'"),
        ] {
            let (e, m) = refusal(&clustered(Some(name), Some("1"), None));
            assert_eq!(e, BadCluster, "{name:?}");
            assert!(
                m.starts_with(&format!("Invalid cluster name (--cluster: {why}")),
                "{m}"
            );
        }
        let long = "c".repeat(64);
        let (e, m) = refusal(&clustered(Some(&long), Some("1"), None));
        assert_eq!(e, BadCluster);
        assert!(m.contains("is 64 characters long"), "{m}");
        assert!(build(
            &clustered(Some(&long[1..]), Some("1"), None),
            DeviceCheck::None,
            &fake(&[])
        )
        .is_ok());
        // Bad node ids.
        for node in ["0", "2147483648", "-1", "x", "", "1.5"] {
            let (e, m) = refusal(&clustered(Some("amftest"), Some(node), None));
            assert_eq!(e, BadNode, "{node:?}");
            assert_eq!(
                m,
                format!(
                    "Invalid node id (--node {node}: expected this server's corosync node id, \
                     a decimal number from 1 to 2147483647)"
                )
            );
        }
        // Bad lock_stripes, and lock_stripes without cluster (even the default).
        for n in ["0", "1048577", "x", ""] {
            let (e, m) = refusal(&clustered(Some("amftest"), Some("1"), Some(n)));
            assert_eq!(e, BadLockStripes, "{n:?}");
            assert_eq!(
                m,
                format!(
                    "Invalid lock_stripes (--lock-stripes {n}: expected a number of stripes \
                     from 1 to 1048576)"
                )
            );
        }
        for n in ["1", "8"] {
            let (e, m) = refusal(&clustered(None, None, Some(n)));
            assert_eq!(e, LockStripesNotCluster, "{n}");
            assert_eq!(
                m,
                "lock_stripes is only valid with cluster (--lock-stripes needs --cluster <name>)"
            );
        }
        // Every refusal above is the kernel parser's: the words amfctl would have printed
        // fail there with the same error.
        let r = clustered(Some("amftest"), None, Some("4"));
        let args = args_for(&r);
        assert_eq!(
            args[3..9],
            ["group", UUID, "cluster", "amftest", "lock_stripes", "4"]
        );
        assert_eq!(
            table::parse(&words(&args), 1536).unwrap_err(),
            ClusterIncomplete
        );
    }

    /// `clustered(amftest, node)` with `--peer`s and `--auth-key`.
    fn replicated(node: &str, peers: &[&str], key: Option<&str>) -> TableRequest {
        let mut r = clustered(Some("amftest"), Some(node), None);
        r.cluster.peers = peers.iter().map(|p| p.to_string()).collect();
        r.cluster.auth_key = key.map(str::to_string);
        r
    }

    const THREE: &[&str] = &[
        "3@10.199.0.3:7789",
        "1@10.199.0.1:7789",
        "2@10.199.0.2:7789",
    ];

    #[test]
    fn replication_words_in_the_kernel_order() {
        let none = fake(&[]);
        // After `node <id>`: `peers <n>`, the entries sorted by node id, `auth_key <desc>`.
        let l = build(
            &replicated("2", THREE, Some("dm-amf:grp1")),
            DeviceCheck::None,
            &none,
        )
        .unwrap();
        assert_eq!(
            l.to_string(),
            format!(
                "0 1536 amf raid5 14 128 group {UUID} cluster amftest node 2 peers 3 \
                 1@10.199.0.1:7789 2@10.199.0.2:7789 3@10.199.0.3:7789 auth_key dm-amf:grp1 \
                 {FOUR_AT_8192}"
            )
        );
        let w = words(&l.args);
        let spec = table::parse(&w, l.len).unwrap();
        let rep = spec.cluster.unwrap().replication.unwrap();
        assert_eq!(rep.own(2).unwrap().to_string(), "2@10.199.0.2:7789");
        assert_eq!(rep.auth_key, "dm-amf:grp1");
        // What the kernel echoes is what amfctl wrote.
        let mut echo = String::new();
        table::write_replication(&rep, &mut echo).unwrap();
        assert!(l.to_string().contains(&echo), "{echo}");
        // After lock_stripes; numbers canonical.
        let mut r = replicated("01", &["02@10.0.0.2:0080", "1@10.0.0.1:80"], Some("a:b"));
        r.cluster.lock_stripes = Some("4".to_string());
        let l = build(&r, DeviceCheck::None, &none).unwrap();
        assert_eq!(
            l.args[3..18],
            [
                "group",
                UUID,
                "cluster",
                "amftest",
                "node",
                "1",
                "lock_stripes",
                "4",
                "peers",
                "2",
                "1@10.0.0.1:80",
                "2@10.0.0.2:80",
                "auth_key",
                "a:b",
                "4"
            ]
        );
        assert_eq!(l.args[1], "15");
    }

    #[test]
    fn replication_refusals() {
        use TableError::*;
        let key = Some("dm-amf:grp1");
        let check = |r: &TableRequest, err: TableError, msg: &str| {
            let (e, m) = refusal(r);
            assert_eq!(e, err, "{m}");
            assert_eq!(m, msg);
        };
        check(
            &replicated("2", &THREE[..1], key),
            BadPeerCount,
            "peers needs a count of 2 to 16 and that many entries (1 --peer given; 2 to 16 are \
             needed, one for every server of the group, this one included)",
        );
        let many: Vec<String> = (1..=17).map(|i| format!("{i}@10.0.0.{i}:7789")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let (e, m) = refusal(&replicated("2", &many, key));
        assert_eq!(e, BadPeerCount);
        assert!(m.contains("(17 --peer given;"), "{m}");
        assert!(build(
            &replicated("2", &many[..16], key),
            DeviceCheck::None,
            &fake(&[])
        )
        .is_ok());
        for (peer, why) in [
            ("2", "expected <node>@<a.b.c.d>:<port>: no '@'"),
            (
                "0@10.0.0.2:7789",
                "node id '0' is not a decimal number from 1 to 63",
            ),
            (
                "64@10.0.0.2:7789",
                "node id '64' is not a decimal number from 1 to 63",
            ),
            (
                "2@10.0.0.2",
                "expected <node>@<a.b.c.d>:<port>: no ':<port>'",
            ),
            (
                "2@10.0.0.2:0",
                "port '0' is not a decimal number from 1 to 65535",
            ),
            (
                "2@10.0.0.2:70000",
                "port '70000' is not a decimal number from 1 to 65535",
            ),
            (
                "2@10.0.0.256:7789",
                "'10.0.0.256' is not an IPv4 address: four decimal numbers from 0 to 255 \
                 without leading zeros, separated by dots",
            ),
            (
                "2@host:7789",
                "'host' is not an IPv4 address: four decimal numbers from 0 to 255 without \
                 leading zeros, separated by dots",
            ),
        ] {
            check(
                &replicated("1", &["1@10.0.0.1:7789", peer], key),
                BadPeer,
                &format!(
                    "peer must be <node>@<a.b.c.d>:<port> with node 1..63 (--peer {peer}: {why})"
                ),
            );
        }
        check(
            &replicated(
                "1",
                &["1@10.0.0.1:7789", "2@10.0.0.2:1", "1@10.0.0.3:7789"],
                key,
            ),
            DuplicatePeer,
            "peers lists a node id or address twice (--peer 1@10.0.0.1:7789 and --peer \
             1@10.0.0.3:7789 have the same node id)",
        );
        check(
            &replicated("1", &["1@10.0.0.1:7789", "2@10.0.0.1:7789"], key),
            DuplicatePeer,
            "peers lists a node id or address twice (--peer 1@10.0.0.1:7789 and --peer \
             2@10.0.0.1:7789 have the same address and port)",
        );
        check(
            &replicated("4", THREE, key),
            PeersMissSelf,
            "peers must list this table's node id (--node 4 is not among the --peer node ids \
             (1, 2, 3): list this server too, with the address it listens on)",
        );
        check(
            &replicated("2", THREE, None),
            PeersNeedAuthKey,
            "peers needs auth_key (--peer needs --auth-key <description>, the logon key \
             holding the group's shared secret (amfctl key-add))",
        );
        check(
            &replicated("2", &[], key),
            AuthKeyNeedsPeers,
            "auth_key needs peers (--auth-key needs --peer)",
        );
        for (bad, why) in [
            ("", "the key description is empty"),
            (
                "grp1",
                "key description 'grp1' has no '<prefix>:' (the kernel's logon keys need \
              one, e.g. dm-amf:grp1)",
            ),
            (
                "dm-amf:gr p1",
                "key description 'dm-amf:gr p1' contains ' ': use printable ASCII \
              characters without spaces",
            ),
        ] {
            check(
                &replicated("2", THREE, Some(bad)),
                BadAuthKey,
                &format!(
                    "auth_key must be <prefix>:<name>, 1 to 255 characters (--auth-key: {why})"
                ),
            );
        }
        let long = format!("k:{}", "x".repeat(254));
        let (e, m) = refusal(&replicated("2", THREE, Some(&long)));
        assert_eq!(e, BadAuthKey);
        assert!(
            m.ends_with("(--auth-key: the key description is 256 bytes long, more than 255)"),
            "{m}"
        );
        // Without cluster mode.
        let mut r = replicated("2", THREE, key);
        r.cluster.name = None;
        r.cluster.node = None;
        check(
            &r,
            PeersNotCluster,
            "peers needs cluster and node (--peer needs --cluster <name> and --node <id>)",
        );
        r.cluster.peers.clear();
        check(
            &r,
            AuthKeyNeedsPeers,
            "auth_key needs peers (--auth-key needs --peer)",
        );
    }

    /// `replicated(2, THREE, dm-amf:grp1)` with `--transport <t>`.
    fn over(t: &str) -> TableRequest {
        let mut r = replicated("2", THREE, Some("dm-amf:grp1"));
        r.cluster.transport = Some(t.to_string());
        r
    }

    #[test]
    fn transport_words_as_the_kernel_echoes_them() {
        let none = fake(&[]);
        // rdma: after auth_key, two more words in <#params>.
        let l = build(&over("rdma"), DeviceCheck::None, &none).unwrap();
        assert_eq!(
            l.to_string(),
            format!(
                "0 1536 amf raid5 16 128 group {UUID} cluster amftest node 2 peers 3 \
                 1@10.199.0.1:7789 2@10.199.0.2:7789 3@10.199.0.3:7789 auth_key dm-amf:grp1 \
                 transport rdma {FOUR_AT_8192}"
            )
        );
        let w = words(&l.args);
        let spec = table::parse(&w, l.len).unwrap();
        let rep = spec.cluster.unwrap().replication.unwrap();
        assert_eq!(rep.transport, table::TransportKind::Rdma);
        // What the kernel echoes is what amfctl wrote, up to <#devs>.
        let mut echo = String::new();
        table::write_replication(&rep, &mut echo).unwrap();
        assert!(echo.ends_with(" transport rdma"), "{echo}");
        assert!(
            l.to_string().contains(&format!("{echo} {FOUR_AT_8192}")),
            "{echo}"
        );
        // tcp, the default: left out, as the kernel leaves it out; the same line as without
        // --transport.
        let tcp = build(&over("tcp"), DeviceCheck::None, &none).unwrap();
        let default = build(
            &replicated("2", THREE, Some("dm-amf:grp1")),
            DeviceCheck::None,
            &none,
        )
        .unwrap();
        assert_eq!(tcp, default);
        assert!(!tcp.args.iter().any(|w| w == "transport"), "{tcp}");
        let w = words(&tcp.args);
        let spec = table::parse(&w, tcp.len).unwrap();
        assert_eq!(
            spec.cluster.unwrap().replication.unwrap().transport,
            table::TransportKind::Tcp
        );
        // With lock_stripes too: the kernel's order.
        let mut r = over("rdma");
        r.cluster.lock_stripes = Some("8".to_string());
        let l = build(&r, DeviceCheck::None, &none).unwrap();
        assert_eq!(l.args[1], "18");
        assert_eq!(l.args[9..11], ["lock_stripes".to_string(), "8".to_string()]);
        assert_eq!(
            l.args[18..21],
            ["transport".to_string(), "rdma".to_string(), "4".to_string()]
        );
    }

    #[test]
    fn transport_refusals() {
        use TableError::*;
        let check = |r: &TableRequest, err: TableError, msg: &str| {
            let (e, m) = refusal(r);
            assert_eq!(e, err, "{m}");
            assert_eq!(m, msg);
        };
        for bad in ["udp", "RDMA", "Tcp", "", "rdma tcp"] {
            check(
                &over(bad),
                BadTransport,
                &format!("transport must be tcp or rdma (--transport {bad}: expected tcp or rdma)"),
            );
        }
        // Without --peer: in cluster mode, and without it; tcp too (then it stays in the
        // words, for the parser to refuse).
        for t in ["rdma", "tcp"] {
            let mut r = over(t);
            r.cluster.peers.clear();
            r.cluster.auth_key = None;
            check(
                &r,
                TransportNeedsPeers,
                "transport needs peers (--transport needs --peer)",
            );
            assert_eq!(
                args_for(&r)[9..11],
                ["transport".to_string(), t.to_string()]
            );
            r.cluster.name = None;
            r.cluster.node = None;
            check(
                &r,
                TransportNeedsPeers,
                "transport needs peers (--transport needs --peer)",
            );
            r.group = None;
            check(
                &r,
                TransportNeedsPeers,
                "transport needs peers (--transport needs --peer)",
            );
        }
        // The other replication refusals come as before.
        let mut r = over("rdma");
        r.cluster.auth_key = None;
        assert_eq!(refusal(&r).0, PeersNeedAuthKey);
        let mut r = over("rdma");
        r.cluster.node = Some("4".to_string());
        assert_eq!(refusal(&r).0, PeersMissSelf);
    }

    #[test]
    fn error_text_starts_with_the_documented_message() {
        let r = req(24, Some(24), &[("/dev/vda", 0)]);
        let e = build(&r, DeviceCheck::None, &fake(&[])).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("Chunk size must be a power of two ("),
            "{e}"
        );
        let r = req(8, Some(20), &[("/dev/vda", 0), ("/dev/vdb", 0)]);
        let e = build(&r, DeviceCheck::None, &fake(&[])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Target length is not a multiple of the full stripe (--size is 20 sectors, the full stripe 16 sectors (8 x 2); 16 would fit)"
        );
        let mut r = req(
            8,
            Some(40),
            &[("/dev/vda", 0), ("/dev/vdb", 0), ("/dev/vdc", 0)],
        );
        r.level = "raid5".to_string();
        let e = build(&r, DeviceCheck::None, &fake(&[])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Target length is not a multiple of the full stripe (--size is 40 sectors, the full stripe 16 sectors (8 x 2 data chunks); 32 would fit)"
        );
        r.level = "raid1".to_string();
        r.size = Some(12);
        let e = build(&r, DeviceCheck::None, &fake(&[])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Target length is not a multiple of the full stripe (--size is 12 sectors, the full stripe 8 sectors (one chunk); 8 would fit)"
        );
    }
}
