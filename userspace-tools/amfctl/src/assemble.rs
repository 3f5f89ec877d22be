// SPDX-License-Identifier: GPL-2.0
//! `amfctl assemble` and `amfctl stop`: the volumes of the configuration file
//! ([`crate::config`]) found by their members' superblocks and created, or removed.
//!
//! The decision is a pure function ([`plan`]: the superblocks found and the group's
//! configuration in, the members to use or a precise refusal out), then the table is built by
//! [`crate::table::build_with`], which checks it as the kernel's constructor will. The rest
//! reads devices, `/proc`, `/sys` and runs `dmsetup`.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

use amf_core::geometry::Level;
use amf_core::superblock::{
    choose, validate_member_set, ChooseError, MemberState, Superblock, SuperblockError, UuidText,
    MAGIC,
};
use amf_core::table::{level_name, MISSING_DEVICE};

use crate::config::GroupConfig;
use crate::device::{DevArg, DevInfo};
use crate::superblock::Crc;
use crate::table::{self, BuildError, DeviceCheck, TableLine, TableRequest};

/// A device that holds a valid superblock (of any group).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Its path (`/dev/vdb`, `/dev/mapper/slice0`).
    pub path: String,
    /// Its chosen superblock.
    pub sb: Superblock,
}

/// What [`plan`] decided for one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// One entry per role: the device to use, or `None` (`-` in the table).
    pub members: Vec<Option<String>>,
    /// The newest superblock (the group's state).
    pub authority: Superblock,
    /// The device it was read from.
    pub authority_path: String,
    /// Devices left out, and why (stale, replaced, recorded failed, an older copy).
    pub left_out: Vec<String>,
    /// Roles the newest superblock records in sync that have no device now: the group
    /// starts degraded (only with `--run`).
    pub newly_missing: Vec<String>,
    /// Roles without a usable member that the group already records failed or rebuilding.
    pub known_degraded: Vec<String>,
}

impl Plan {
    /// Members in the table (not `-`).
    pub fn present(&self) -> usize {
        self.members.iter().flatten().count()
    }

    /// The table's member list: each device with its data offset (the group's for `-`).
    pub fn devs(&self, found: &[Found]) -> Vec<DevArg> {
        self.members
            .iter()
            .map(|m| match m {
                Some(p) => {
                    let off = found
                        .iter()
                        .find(|f| &f.path == p)
                        .map_or(self.authority.data_offset, |f| f.sb.data_offset);
                    DevArg::new(p, off)
                }
                None => DevArg::new(MISSING_DEVICE, self.authority.data_offset),
            })
            .collect()
    }
}

/// Why a group is not assembled. The messages name the devices and roles.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No device of the group was found.
    #[error("no member device found (no scanned device holds a superblock of group {0})")]
    NoMembers(String),
    /// Two devices of one role at the same event count: which one is right is unknown.
    #[error(
        "{first} and {second} both hold role {role} at event {events}: remove the one that \
         is not the member (a clone or a second path to the same disk)"
    )]
    DuplicateRole {
        /// The role.
        role: usize,
        /// One device.
        first: String,
        /// The other.
        second: String,
        /// Their event counter.
        events: u64,
    },
    /// A member's creation time or geometry differs from the newest superblock's.
    #[error(
        "{path} disagrees with the newest superblock ({authority}): {what}; the group was \
         formatted again, or {path} belongs to an earlier incarnation (amfctl examine both)"
    )]
    Disagree {
        /// The device.
        path: String,
        /// The newest superblock's device.
        authority: String,
        /// What differs.
        what: String,
    },
    /// Same event counter as the newest superblock, different member states: split brain.
    #[error(
        "{path} and {authority} are both at event {events} but record different member \
         states: the members diverged; amfctl examine both and decide which to keep"
    )]
    Diverged {
        /// The device.
        path: String,
        /// The newest superblock's device.
        authority: String,
        /// The event counter.
        events: u64,
    },
    /// More members unusable than the level tolerates.
    #[error(
        "incomplete: {usable} of {members} members usable, {level} needs at least {needed} \
         ({detail})"
    )]
    Incomplete {
        /// Members usable.
        usable: usize,
        /// Members of the group.
        members: usize,
        /// The level.
        level: &'static str,
        /// Members the level needs.
        needed: usize,
        /// Each missing role and why.
        detail: String,
        /// Devices left out (stale, replaced, recorded failed), as [`Plan::left_out`].
        left_out: Vec<String>,
    },
    /// Degraded and `--run` not given.
    #[error(
        "degraded: {detail}; {present} of {members} members present; not started without \
         --run (amfctl assemble --run starts it degraded)"
    )]
    Degraded {
        /// The missing roles.
        detail: String,
        /// Members present.
        present: usize,
        /// Members of the group.
        members: usize,
        /// Devices left out (stale, replaced, recorded failed), as [`Plan::left_out`].
        left_out: Vec<String>,
    },
    /// A level amfctl cannot write a table for.
    #[error("{0}")]
    Unsupported(String),
    /// The kernel's own check refuses the member set (should not happen after the above).
    #[error("{message} ({detail})")]
    Kernel {
        /// The kernel's message.
        message: String,
        /// Details.
        detail: String,
    },
}

impl Refusal {
    /// True when more members may still appear (`--incremental` waits instead of failing):
    /// the group is degraded or incomplete.
    pub fn may_complete(&self) -> bool {
        matches!(self, Refusal::Degraded { .. } | Refusal::Incomplete { .. })
    }

    /// The devices left out before the group was found degraded or incomplete (why a role
    /// is missing although a device of it is there).
    pub fn left_out(&self) -> &[String] {
        match self {
            Refusal::Degraded { left_out, .. } | Refusal::Incomplete { left_out, .. } => left_out,
            _ => &[],
        }
    }
}

fn level_text(level: Level) -> String {
    match level {
        Level::Raid10 { copies } => format!("raid10 ({copies} copies)"),
        l => level_name(l).to_string(),
    }
}

/// What differs between two superblocks of one group UUID (`same_identity` failed).
fn identity_difference(a: &Superblock, b: &Superblock) -> String {
    let mut d = Vec::new();
    if a.ctime != b.ctime {
        d.push(format!("created {} vs {}", a.ctime, b.ctime));
    }
    if a.level != b.level {
        d.push(format!(
            "{} vs {}",
            level_text(a.level),
            level_text(b.level)
        ));
    }
    if a.chunk_sectors != b.chunk_sectors {
        d.push(format!(
            "chunk {} vs {} sectors",
            a.chunk_sectors, b.chunk_sectors
        ));
    }
    if a.member_count() != b.member_count() {
        d.push(format!(
            "{} vs {} members",
            a.member_count(),
            b.member_count()
        ));
    }
    if a.data_sectors != b.data_sectors {
        d.push(format!(
            "data area {} vs {} sectors",
            a.data_sectors, b.data_sectors
        ));
    }
    if a.region_sectors != b.region_sectors {
        d.push(format!(
            "bitmap region {} vs {} sectors",
            a.region_sectors, b.region_sectors
        ));
    }
    if a.layout != b.layout {
        d.push(format!("layout {} vs {}", a.layout, b.layout));
    }
    if d.is_empty() {
        "group identity differs".to_string()
    } else {
        d.join(", ")
    }
}

/// Decides how to assemble `group` from the devices found (any group's; others are
/// ignored). The newest superblock (highest event counter; the lowest role, then the first
/// found, on a tie) is the group's state, as the kernel takes it:
///
/// - a device more than one event behind it is stale (it missed a completed update of the
///   member states): left out, and so is a device whose member UUID the group no longer
///   records for its role (replaced), a device the group records failed, and an older copy
///   of a role another device holds at a newer event;
/// - refused: two devices of one role at one event count, a device whose creation time or
///   geometry differs from the newest superblock, a device at its event count with other
///   member states, more roles without a usable member than the level tolerates, and, without
///   `run`, a role the group records in sync that has no device now (degraded).
pub fn plan(group: &GroupConfig, found: &[Found], run: bool) -> Result<Plan, Refusal> {
    let mine: Vec<&Found> = found
        .iter()
        .filter(|f| f.sb.group_uuid == group.uuid)
        .collect();
    let authority = mine
        .iter()
        .copied()
        .fold(None::<&Found>, |best, f| match best {
            Some(b)
                if b.sb.events > f.sb.events
                    || (b.sb.events == f.sb.events && b.sb.role <= f.sb.role) =>
            {
                Some(b)
            }
            _ => Some(f),
        })
        .ok_or_else(|| Refusal::NoMembers(group.uuid_text()))?;
    let a = &authority.sb;
    let n = a.member_count();
    if let Level::Raid10 { copies } = a.level {
        if copies != 2 {
            return Err(Refusal::Unsupported(format!(
                "raid10 with {copies} copies: amfctl writes raid10 tables with 2 copies only"
            )));
        }
    }
    let mut left_out = Vec::new();
    let mut by_role: Vec<Option<&Found>> = vec![None; n];
    for f in &mine {
        let sb = &f.sb;
        if !sb.same_identity(a) {
            return Err(Refusal::Disagree {
                path: f.path.clone(),
                authority: authority.path.clone(),
                what: identity_difference(sb, a),
            });
        }
        let role = sb.role as usize;
        let Some(recorded) = a.member(role) else {
            return Err(Refusal::Disagree {
                path: f.path.clone(),
                authority: authority.path.clone(),
                what: format!("role {role} of a group of {n}"),
            });
        };
        if sb.member_uuid() != recorded.uuid {
            left_out.push(format!(
                "{} (role {role}): replaced, the group records member {} there since",
                f.path,
                UuidText(&recorded.uuid)
            ));
            continue;
        }
        if sb.events.saturating_add(1) < a.events {
            left_out.push(format!(
                "{} (role {role}): stale, event {} while {} is at {}",
                f.path, sb.events, authority.path, a.events
            ));
            continue;
        }
        if sb.events == a.events && !sb.same_group_state(a) {
            return Err(Refusal::Diverged {
                path: f.path.clone(),
                authority: authority.path.clone(),
                events: a.events,
            });
        }
        if recorded.state == MemberState::Failed {
            left_out.push(format!(
                "{} (role {role}): the group records it failed (to be replaced or rebuilt)",
                f.path
            ));
            continue;
        }
        match by_role[role] {
            Some(other) if other.sb.events == sb.events => {
                return Err(Refusal::DuplicateRole {
                    role,
                    first: other.path.clone(),
                    second: f.path.clone(),
                    events: sb.events,
                })
            }
            Some(other) => {
                let (keep, drop) = if other.sb.events > sb.events {
                    (other, *f)
                } else {
                    (*f, other)
                };
                left_out.push(format!(
                    "{} (role {role}): an older copy (event {}) of {} (event {})",
                    drop.path, drop.sb.events, keep.path, keep.sb.events
                ));
                by_role[role] = Some(keep);
            }
            None => by_role[role] = Some(f),
        }
    }
    let mut newly_missing = Vec::new();
    let mut known_degraded = Vec::new();
    let mut unusable = Vec::new();
    for (role, dev) in by_role.iter().enumerate() {
        let state = a.member(role).map(|e| e.state);
        match (dev, state) {
            (Some(_), Some(MemberState::InSync)) => {}
            (Some(d), Some(MemberState::Rebuilding { checkpoint })) => {
                let what = format!(
                    "role {role} rebuilding ({}, from sector {checkpoint})",
                    d.path
                );
                known_degraded.push(what.clone());
                unusable.push(what);
            }
            (None, Some(MemberState::InSync)) => {
                let what = format!("role {role} missing");
                newly_missing.push(what.clone());
                unusable.push(what);
            }
            (None, Some(MemberState::Rebuilding { .. })) => {
                let what = format!("role {role} missing (was rebuilding)");
                known_degraded.push(what.clone());
                unusable.push(what);
            }
            (_, _) => {
                let what = format!("role {role} failed");
                known_degraded.push(what.clone());
                unusable.push(what);
            }
        }
    }
    let tolerated = a.geometry().map_or(0, |g| g.tolerated_failures());
    if unusable.len() > tolerated {
        return Err(Refusal::Incomplete {
            usable: n - unusable.len(),
            members: n,
            level: level_name(a.level),
            needed: n - tolerated,
            detail: unusable.join(", "),
            left_out,
        });
    }
    let members: Vec<Option<String>> = by_role.iter().map(|d| d.map(|d| d.path.clone())).collect();
    if !newly_missing.is_empty() && !run {
        return Err(Refusal::Degraded {
            detail: newly_missing.join(", "),
            present: members.iter().flatten().count(),
            members: n,
            left_out,
        });
    }
    // The kernel's own check of the member set, on what the table will hold.
    let sbs: Vec<Option<Superblock>> = by_role.iter().map(|d| d.map(|d| d.sb)).collect();
    validate_member_set(Some(&group.uuid), &sbs).map_err(|e| Refusal::Kernel {
        message: e.message().to_string_lossy().into_owned(),
        detail: format!("{e:?}"),
    })?;
    Ok(Plan {
        members,
        authority: *a,
        authority_path: authority.path.clone(),
        left_out,
        newly_missing,
        known_degraded,
    })
}

/// The table request for a plan.
pub fn request(group: &GroupConfig, plan: &Plan, found: &[Found]) -> TableRequest {
    TableRequest {
        level: level_name(plan.authority.level).to_string(),
        chunk_sectors: u64::from(plan.authority.chunk_sectors),
        size: group.size,
        devs: plan.devs(found),
        group: Some(group.uuid_text()),
        ppl: group.ppl,
        cluster: group.cluster_request(),
    }
}

/// Builds the group's table line with the same checks as `amfctl create` (members opened
/// through `probe`, superblocks read through `read`), so that a table the kernel would
/// refuse is refused here with its message.
pub fn build_table(
    group: &GroupConfig,
    plan: &Plan,
    found: &[Found],
    probe: &dyn Fn(&str) -> io::Result<DevInfo>,
    read: table::SuperblockReader<'_>,
) -> Result<TableLine, BuildError> {
    table::build_with(
        &request(group, plan, found),
        DeviceCheck::BlockOnly,
        probe,
        Some(read),
    )
}

/// Why a clustered group cannot be loaded now: the cluster stack (corosync, dlm_controld)
/// is not up for this node. `root` is `/` (tests give a scratch tree with `proc/` and
/// `sys/kernel/config/dlm/`).
pub fn cluster_problem(root: &Path, cluster: &str, node: u32) -> Option<String> {
    let running = std::fs::read_dir(root.join("proc"))
        .map(|dir| {
            dir.flatten().any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .bytes()
                    .all(|b| b.is_ascii_digit())
                    && std::fs::read_to_string(e.path().join("comm"))
                        .is_ok_and(|c| c.trim_end() == "dlm_controld")
            })
        })
        .unwrap_or(false);
    if !running {
        return Some(
            "the cluster stack is not up: dlm_controld is not running (start corosync and \
             dlm_controld first: systemctl start corosync dlm)"
                .to_string(),
        );
    }
    let base = root.join("sys/kernel/config/dlm/cluster");
    if !base.is_dir() {
        return Some(format!(
            "the cluster stack is not up: {} does not exist (configfs not mounted, or \
             dlm_controld has not configured the DLM yet)",
            Path::new("/")
                .join(base.strip_prefix(root).unwrap_or(&base))
                .display()
        ));
    }
    if let Ok(name) = std::fs::read_to_string(base.join("cluster_name")) {
        let name = name.trim_end();
        if !name.is_empty() && name != cluster {
            return Some(format!(
                "the DLM runs cluster '{name}', the configuration says cluster = \"{cluster}\""
            ));
        }
    }
    let local = base.join(format!("comms/{node}/local"));
    let shown = Path::new("/sys/kernel/config/dlm/cluster").join(format!("comms/{node}/local"));
    match std::fs::read_to_string(&local) {
        Err(_) => Some(format!(
            "the cluster stack is not up for node {node}: no {} (is corosync quorate, and is \
             {node} this server's nodeid in corosync.conf?)",
            shown.display()
        )),
        Ok(v) if v.trim() != "1" => Some(format!(
            "node = {node} is not this server: {} is {} (another server's node id)",
            shown.display(),
            v.trim()
        )),
        Ok(_) => None,
    }
}

/// One block device to look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The path to open.
    pub path: String,
    /// Its kernel name (`vdb`, `dm-3`).
    pub kname: String,
}

/// The block devices of `/proc/partitions` (under `root`) worth reading: not held by
/// another device (a disk carved into dm-linear slices, a member of an active volume),
/// at least 12 KiB (the superblock slots), device-mapper devices under their
/// `/dev/mapper` name, none of the names in `skip` (active amf volumes).
pub fn candidates(root: &Path, skip: &[String]) -> io::Result<Vec<Candidate>> {
    let text = std::fs::read_to_string(root.join("proc/partitions"))?;
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let w: Vec<&str> = line.split_whitespace().collect();
        let [_, _, blocks, kname] = w[..] else {
            continue;
        };
        // 1 KiB blocks: the slots end at 12 KiB.
        if blocks.parse::<u64>().map_or(true, |b| b < 12) {
            continue;
        }
        let sys = root.join("sys/class/block").join(kname);
        let held = std::fs::read_dir(sys.join("holders"))
            .map(|mut d| d.next().is_some())
            .unwrap_or(false);
        if held {
            continue;
        }
        let dm_name = std::fs::read_to_string(sys.join("dm/name"))
            .ok()
            .map(|s| s.trim_end().to_string());
        if dm_name.as_ref().is_some_and(|n| skip.contains(n)) {
            continue;
        }
        let path = match &dm_name {
            Some(n) if root.join("dev/mapper").join(n).exists() => format!("/dev/mapper/{n}"),
            _ => format!("/dev/{kname}"),
        };
        out.push(Candidate {
            path,
            kname: kname.to_string(),
        });
    }
    Ok(out)
}

/// What reading the candidates found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Devices with a valid superblock.
    pub found: Vec<Found>,
    /// Devices with the amf magic whose superblock cannot be used, and why.
    pub unusable: Vec<String>,
}

/// Reads the superblock of one device as `amfctl examine` does (past the page cache).
/// `Ok(None)`: not an amf member (no magic), or unreadable.
pub fn read_device(path: &str) -> Result<Option<Superblock>, String> {
    let Ok((a, b)) = crate::superblock::read_slots_direct(path) else {
        return Ok(None);
    };
    if !a.starts_with(&MAGIC) && !b.starts_with(&MAGIC) {
        return Ok(None);
    }
    match choose::<Crc>(&a, &b) {
        Ok(c) => Ok(Some(c.superblock)),
        Err(e @ ChooseError::NoValidSlot { a, b }) => {
            let why = |s: SuperblockError| s.message().to_string_lossy().into_owned();
            Err(format!(
                "{} (slot A: {}; slot B: {})",
                e.message().to_string_lossy(),
                why(a),
                why(b)
            ))
        }
        Err(e) => Err(e.message().to_string_lossy().into_owned()),
    }
}

/// Reads every candidate.
pub fn scan(cands: &[Candidate]) -> Scan {
    let mut s = Scan::default();
    for c in cands {
        match read_device(&c.path) {
            Ok(Some(sb)) => s.found.push(Found {
                path: c.path.clone(),
                sb,
            }),
            Ok(None) => {}
            Err(e) => s.unusable.push(format!("{}: {e}", c.path)),
        }
    }
    s
}

/// An active device-mapper device with `amf` targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Active {
    /// Its name.
    pub name: String,
    /// The `group <uuid>` of its table, if any.
    pub group: Option<amf_core::superblock::Uuid>,
}

/// Parses `dmsetup table --target amf` (`<name>: <start> <len> amf <args>`, one line per
/// target; `No devices found` when there are none).
pub fn parse_active(text: &str) -> Vec<Active> {
    let mut out: Vec<Active> = Vec::new();
    for line in text.lines() {
        let Some((name, rest)) = line.split_once(": ") else {
            continue;
        };
        let w: Vec<&str> = rest.split_whitespace().collect();
        if w.get(2) != Some(&"amf") {
            continue;
        }
        let group = w
            .windows(2)
            .find(|p| p[0] == "group")
            .and_then(|p| amf_core::superblock::parse_uuid(p[1]));
        match out.iter_mut().find(|a| a.name == name) {
            Some(a) => a.group = a.group.or(group),
            None => out.push(Active {
                name: name.to_string(),
                group,
            }),
        }
    }
    out
}

/// Every device-mapper device name (`dmsetup ls`: `<name>\t(<maj>:<min>)` or `<name>
/// (<maj>, <min>)`; `No devices found`).
pub fn parse_ls(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.contains('('))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// A short report of a plan, for the administrator.
pub fn describe(plan: &Plan) -> String {
    let mut s = format!(
        "{}, {} of {} members, event {} (newest: {})",
        level_text(plan.authority.level),
        plan.present(),
        plan.authority.member_count(),
        plan.authority.events,
        plan.authority_path
    );
    if !plan.newly_missing.is_empty() || !plan.known_degraded.is_empty() {
        let all: Vec<&str> = plan
            .newly_missing
            .iter()
            .chain(&plan.known_degraded)
            .map(String::as_str)
            .collect();
        let _ = write!(s, ", degraded: {}", all.join(", "));
    }
    s
}

/// Holds `/run/amf/assemble.lock` (flock) while assemble runs, so that concurrent runs
/// (udev events of several members at once) do not race to create one volume.
pub struct RunLock {
    _file: Option<std::fs::File>,
}

/// Takes the lock, waiting for another `amfctl assemble`; without `/run` (or its rights),
/// runs unlocked.
pub fn lock() -> RunLock {
    let dir = PathBuf::from("/run/amf");
    let _ = std::fs::create_dir_all(&dir);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("assemble.lock"))
        .ok();
    if let Some(f) = &file {
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a descriptor this function owns; no memory is involved.
        #[allow(unsafe_code)]
        unsafe {
            libc::flock(f.as_raw_fd(), libc::LOCK_EX);
        }
    }
    RunLock { _file: file }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use crate::device::{DevId, DevKind};
    use amf_core::superblock::{FormatParams, MemberEntry, DATA_OFFSET_DEFAULT};

    const G: &str = "6a1f0c2e-93b4-4d5e-8f70-1a2b3c4d5e6f";

    fn group_cfg(extra: &str) -> GroupConfig {
        let c = config::parse(
            &format!("node = 1\ncluster = \"c\"\n[group.{G}]\nname = \"vol\"\n{extra}"),
            "t",
        )
        .unwrap();
        c.groups[0].clone()
    }

    /// A group of `n` members at event 1; member `i`'s superblock.
    fn fresh(level: Level, n: usize) -> Superblock {
        let uuids: Vec<[u8; 16]> = (0..n).map(|i| [i as u8 + 1; 16]).collect();
        Superblock::new(&FormatParams {
            group_uuid: amf_core::superblock::parse_uuid(G).unwrap(),
            level,
            chunk_sectors: 128,
            member_uuids: &uuids,
            data_offset: DATA_OFFSET_DEFAULT,
            data_sectors: 1 << 14,
            region_sectors: 1 << 14,
            ctime: 1000,
        })
        .unwrap()
    }

    fn dev(i: usize, sb: &Superblock) -> Found {
        Found {
            path: format!("/dev/m{i}"),
            sb: sb.for_role(i).unwrap(),
        }
    }

    fn all(sb: &Superblock) -> Vec<Found> {
        (0..sb.member_count()).map(|i| dev(i, sb)).collect()
    }

    /// `sb` with the next event and role `role` failed.
    fn fail(sb: &Superblock, role: usize) -> Superblock {
        let mut n = sb.next_round(5).unwrap();
        let uuid = n.member(role).unwrap().uuid;
        n.set_member(
            role,
            MemberEntry {
                state: MemberState::Failed,
                uuid,
            },
        );
        n
    }

    fn probe(_: &str) -> io::Result<DevInfo> {
        Ok(DevInfo {
            sectors: DATA_OFFSET_DEFAULT + (1 << 14),
            kind: DevKind::Block,
            id: DevId::Block { major: 8, minor: 0 },
        })
    }

    fn table(g: &GroupConfig, p: &Plan, found: &[Found]) -> String {
        // Distinct device ids per path, superblocks from `found`.
        let probe = |path: &str| -> io::Result<DevInfo> {
            let mut i = probe(path)?;
            i.id = DevId::Block {
                major: 8,
                minor: path.bytes().last().unwrap_or(0) as u64,
            };
            Ok(i)
        };
        let read = |path: &str| -> Result<Option<Superblock>, BuildError> {
            Ok(found.iter().find(|f| f.path == path).map(|f| f.sb))
        };
        build_table(g, p, found, &probe, &read)
            .map(|l| l.to_string())
            .unwrap_or_else(|e| format!("refused: {e}"))
    }

    #[test]
    fn whole_group() {
        let g = group_cfg("");
        let sb = fresh(Level::Raid5, 3);
        let mut found = all(&sb);
        // Another group's member is ignored.
        let mut foreign = sb.for_role(0).unwrap();
        foreign.group_uuid = [7; 16];
        found.push(Found {
            path: "/dev/other".into(),
            sb: foreign,
        });
        let p = plan(&g, &found, false).unwrap();
        assert_eq!(p.present(), 3);
        assert!(p.left_out.is_empty() && p.newly_missing.is_empty());
        assert_eq!(
            table(&g, &p, &found),
            format!("0 32768 amf raid5 3 128 group {G} 3 /dev/m0 8192 /dev/m1 8192 /dev/m2 8192")
        );
        assert_eq!(
            describe(&p),
            "raid5, 3 of 3 members, event 1 (newest: /dev/m0)"
        );
        // In any order of discovery.
        found.reverse();
        assert_eq!(plan(&g, &found, false).unwrap().members, p.members);
    }

    #[test]
    fn options_reach_the_table() {
        let g = group_cfg(
            "clustered = true\nlock_stripes = 4\nppl = true\nsize = 16384\n\
             peers = [\"2@10.0.0.2:7789\", \"1@10.0.0.1:7789\"]\nauth_key = \"dm-amf:g\"\n\
             transport = \"rdma\"\n",
        );
        let sb = fresh(Level::Raid5, 3);
        let found = all(&sb);
        let p = plan(&g, &found, false).unwrap();
        assert_eq!(
            table(&g, &p, &found),
            format!(
                "0 16384 amf raid5 18 128 group {G} ppl cluster c node 1 lock_stripes 4 \
                 peers 2 1@10.0.0.1:7789 2@10.0.0.2:7789 auth_key dm-amf:g transport rdma \
                 3 /dev/m0 8192 /dev/m1 8192 /dev/m2 8192"
            )
        );
        // A size beyond the data area is the kernel's refusal.
        let g = group_cfg("size = \"1G\"\n");
        let t = table(&g, &p, &found);
        assert!(t.starts_with("refused: "), "{t}");
    }

    #[test]
    fn degraded_needs_run() {
        let g = group_cfg("");
        let sb = fresh(Level::Raid5, 3);
        let found: Vec<Found> = vec![dev(0, &sb), dev(2, &sb)];
        let e = plan(&g, &found, false).unwrap_err();
        assert!(e.may_complete());
        assert_eq!(
            e.to_string(),
            "degraded: role 1 missing; 2 of 3 members present; not started without --run \
             (amfctl assemble --run starts it degraded)"
        );
        let p = plan(&g, &found, true).unwrap();
        assert_eq!(
            p.members,
            [Some("/dev/m0".into()), None, Some("/dev/m2".into())]
        );
        assert_eq!(
            table(&g, &p, &found),
            format!("0 32768 amf raid5 3 128 group {G} 3 /dev/m0 8192 - 8192 /dev/m2 8192")
        );
        assert!(
            describe(&p).ends_with("degraded: role 1 missing"),
            "{}",
            describe(&p)
        );
    }

    #[test]
    fn incomplete_beyond_the_level() {
        let g = group_cfg("");
        let sb = fresh(Level::Raid5, 4);
        let e = plan(&g, &[dev(0, &sb), dev(3, &sb)], true).unwrap_err();
        assert_eq!(
            e.to_string(),
            "incomplete: 2 of 4 members usable, raid5 needs at least 3 (role 1 missing, role 2 \
             missing)"
        );
        assert!(e.may_complete());
        let sb = fresh(Level::Raid0, 2);
        let e = plan(&g, &[dev(1, &sb)], true).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("incomplete: 1 of 2 members usable, raid0 needs at least 2"),
            "{e}"
        );
        let sb = fresh(Level::Raid6, 5);
        assert!(plan(&g, &[dev(0, &sb), dev(1, &sb), dev(4, &sb)], true).is_ok());
        let sb = fresh(Level::Raid1, 3);
        assert!(plan(&g, &[dev(2, &sb)], true).is_ok());
        assert_eq!(
            plan(&g, &[], true).unwrap_err().to_string(),
            format!("no member device found (no scanned device holds a superblock of group {G})")
        );
    }

    #[test]
    fn stale_member_left_out() {
        // raid1 x3: m2 missed a round that failed it (event 2), then two more (event 3).
        let g = group_cfg("");
        let sb = fresh(Level::Raid1, 3);
        let newer = fail(&sb, 2).next_round(6).unwrap();
        let found = vec![dev(0, &newer), dev(1, &newer), dev(2, &sb)];
        // The group records m2 failed: an expected degradation, no --run needed.
        let p = plan(&g, &found, false).unwrap();
        assert_eq!(
            p.members,
            [Some("/dev/m0".into()), Some("/dev/m1".into()), None]
        );
        assert_eq!(
            p.left_out,
            ["/dev/m2 (role 2): stale, event 1 while /dev/m0 is at 3"]
        );
        assert_eq!(p.known_degraded, ["role 2 failed"]);
        assert!(p.newly_missing.is_empty());
        assert_eq!(
            table(&g, &p, &found),
            format!("0 16384 amf raid1 3 128 group {G} 3 /dev/m0 8192 /dev/m1 8192 - 8192")
        );
        // A stale member whose role the group still records in sync (it crashed before the
        // round that failed it): degraded, needs --run.
        let ahead = sb.next_round(6).unwrap().next_round(7).unwrap();
        let found = vec![dev(0, &ahead), dev(1, &ahead), dev(2, &sb)];
        let e = plan(&g, &found, false).unwrap_err();
        assert!(e.to_string().starts_with("degraded: role 2 missing"), "{e}");
        assert_eq!(
            e.left_out(),
            ["/dev/m2 (role 2): stale, event 1 while /dev/m0 is at 3"]
        );
        let p = plan(&g, &found, true).unwrap();
        assert_eq!(
            p.left_out,
            ["/dev/m2 (role 2): stale, event 1 while /dev/m0 is at 3"]
        );
        // One event behind is in sync (an interrupted update): used.
        let one = sb.next_round(6).unwrap();
        let found = vec![dev(0, &one), dev(1, &sb), dev(2, &one)];
        let p = plan(&g, &found, false).unwrap();
        assert_eq!(p.present(), 3);
        assert!(p.left_out.is_empty());
        // A member recorded failed but one behind (not stale): left out too.
        let f = fail(&sb, 1);
        let found = vec![dev(0, &f), dev(1, &sb), dev(2, &f)];
        let p = plan(&g, &found, false).unwrap();
        assert_eq!(
            p.left_out,
            ["/dev/m1 (role 1): the group records it failed (to be replaced or rebuilt)"]
        );
        // Stale members count against the level.
        let sb5 = fresh(Level::Raid5, 3);
        let newer = sb5.next_round(6).unwrap().next_round(7).unwrap();
        let e = plan(&g, &[dev(0, &newer), dev(1, &sb5), dev(2, &sb5)], true).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("incomplete: 1 of 3 members usable"),
            "{e}"
        );
        assert_eq!(e.left_out().len(), 2);
    }

    #[test]
    fn disagreeing_members_refused() {
        let g = group_cfg("");
        let sb = fresh(Level::Raid5, 3);
        // Formatted again with the same UUID: another creation time and chunk.
        let mut other = sb.for_role(2).unwrap();
        other.ctime = 2000;
        other.chunk_sectors = 256;
        let found = vec![
            dev(0, &sb),
            dev(1, &sb),
            Found {
                path: "/dev/m2".into(),
                sb: other,
            },
        ];
        let e = plan(&g, &found, true).unwrap_err().to_string();
        assert!(
            e.contains("disagrees with the newest superblock (/dev/m0): created 2000 vs 1000, chunk 256 vs 128 sectors"),
            "{e}"
        );
        // Same event, different states.
        let mut div = fail(&sb, 0).for_role(2).unwrap();
        let div2 = fail(&sb, 1);
        div.events = div2.events;
        let found = vec![
            dev(0, &div2),
            dev(1, &div2),
            Found {
                path: "/dev/m2".into(),
                sb: div,
            },
        ];
        let e = plan(&g, &found, true).unwrap_err().to_string();
        assert_eq!(
            e,
            "/dev/m2 and /dev/m0 are both at event 2 but record different member states: the \
             members diverged; amfctl examine both and decide which to keep"
        );
        // Two devices of one role at one event: refused; at different events: the newer.
        let mut found = all(&sb);
        found.push(Found {
            path: "/dev/clone1".into(),
            sb: sb.for_role(1).unwrap(),
        });
        let e = plan(&g, &found, true).unwrap_err().to_string();
        assert!(
            e.starts_with("/dev/m1 and /dev/clone1 both hold role 1 at event 1"),
            "{e}"
        );
        let one = sb.next_round(6).unwrap();
        let found = vec![
            dev(0, &one),
            dev(1, &sb),
            dev(2, &one),
            Found {
                path: "/dev/new1".into(),
                sb: one.for_role(1).unwrap(),
            },
        ];
        let p = plan(&g, &found, false).unwrap();
        assert_eq!(p.members[1].as_deref(), Some("/dev/new1"));
        assert_eq!(
            p.left_out,
            ["/dev/m1 (role 1): an older copy (event 1) of /dev/new1 (event 2)"]
        );
    }

    #[test]
    fn replaced_member_left_out() {
        let g = group_cfg("");
        let sb = fresh(Level::Raid1, 2);
        let mut next = sb.next_round(6).unwrap();
        next.set_member(
            1,
            MemberEntry {
                state: MemberState::Rebuilding { checkpoint: 64 },
                uuid: [0x55; 16],
            },
        );
        let found = vec![dev(0, &next), dev(1, &sb)];
        let p = plan(&g, &found, false).unwrap();
        assert_eq!(p.members, [Some("/dev/m0".into()), None]);
        assert!(
            p.left_out[0]
                .starts_with("/dev/m1 (role 1): replaced, the group records member 55555555-"),
            "{:?}",
            p.left_out
        );
        assert_eq!(p.known_degraded, ["role 1 missing (was rebuilding)"]);
        // The new device, rebuilding, is used (the kernel resumes its rebuild).
        let found = vec![
            dev(0, &next),
            Found {
                path: "/dev/new".into(),
                sb: {
                    let mut s = next.for_role(1).unwrap();
                    s.role = 1;
                    s
                },
            },
        ];
        let p = plan(&g, &found, false).unwrap();
        assert_eq!(p.members[1].as_deref(), Some("/dev/new"));
        assert_eq!(
            p.known_degraded,
            ["role 1 rebuilding (/dev/new, from sector 64)"]
        );
    }

    #[test]
    fn raid10_copies() {
        let g = group_cfg("");
        let sb = fresh(Level::Raid10 { copies: 2 }, 4);
        let found = all(&sb);
        let p = plan(&g, &found, false).unwrap();
        assert!(
            table(&g, &p, &found).contains(" raid10 "),
            "{}",
            table(&g, &p, &found)
        );
        let sb = fresh(Level::Raid10 { copies: 3 }, 4);
        let e = plan(&g, &all(&sb), false).unwrap_err().to_string();
        assert_eq!(
            e,
            "raid10 with 3 copies: amfctl writes raid10 tables with 2 copies only"
        );
    }

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("amfctl-asm-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn cluster_stack_checks() {
        let root = scratch("dlm");
        let e = cluster_problem(&root, "c", 2).unwrap();
        assert!(e.contains("dlm_controld is not running"), "{e}");
        std::fs::create_dir_all(root.join("proc/417")).unwrap();
        std::fs::write(root.join("proc/417/comm"), "dlm_controld\n").unwrap();
        let e = cluster_problem(&root, "c", 2).unwrap();
        assert!(
            e.contains("/sys/kernel/config/dlm/cluster does not exist"),
            "{e}"
        );
        let base = root.join("sys/kernel/config/dlm/cluster");
        std::fs::create_dir_all(base.join("comms/1")).unwrap();
        std::fs::write(base.join("cluster_name"), "other\n").unwrap();
        let e = cluster_problem(&root, "c", 2).unwrap();
        assert_eq!(
            e,
            "the DLM runs cluster 'other', the configuration says cluster = \"c\""
        );
        std::fs::write(base.join("cluster_name"), "c\n").unwrap();
        let e = cluster_problem(&root, "c", 2).unwrap();
        assert!(
            e.contains("no /sys/kernel/config/dlm/cluster/comms/2/local"),
            "{e}"
        );
        std::fs::write(base.join("comms/1/local"), "0\n").unwrap();
        let e = cluster_problem(&root, "c", 1).unwrap();
        assert!(e.starts_with("node = 1 is not this server"), "{e}");
        std::fs::write(base.join("comms/1/local"), "1\n").unwrap();
        assert_eq!(cluster_problem(&root, "c", 1), None);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn candidates_from_proc_and_sys() {
        let root = scratch("cand");
        std::fs::create_dir_all(root.join("proc")).unwrap();
        std::fs::write(
            root.join("proc/partitions"),
            "major minor  #blocks  name\n\n 253 0 32768 vda\n 253 16 32768 vdb\n \
             251 0 8192 dm-0\n 251 1 8192 dm-1\n 251 2 16384 dm-2\n 7 0 0 loop0\n 1 0 4 ram0\n",
        )
        .unwrap();
        let sys = root.join("sys/class/block");
        for k in ["vda", "vdb", "dm-0", "dm-1", "dm-2", "loop0", "ram0"] {
            std::fs::create_dir_all(sys.join(k).join("holders")).unwrap();
        }
        // vda carries two slices.
        std::fs::create_dir_all(sys.join("vda/holders/dm-0")).unwrap();
        for (k, n) in [("dm-0", "s0"), ("dm-1", "s1"), ("dm-2", "vol")] {
            std::fs::create_dir_all(sys.join(k).join("dm")).unwrap();
            std::fs::write(sys.join(k).join("dm/name"), format!("{n}\n")).unwrap();
        }
        std::fs::create_dir_all(root.join("dev/mapper")).unwrap();
        std::fs::write(root.join("dev/mapper/s0"), "").unwrap();
        let c = candidates(&root, &["vol".to_string()]).unwrap();
        let paths: Vec<&str> = c.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, ["/dev/vdb", "/dev/mapper/s0", "/dev/dm-1"]);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn read_devices() {
        let root = scratch("read");
        let sb = fresh(Level::Raid1, 2);
        let path = root.join("m0");
        std::fs::File::create(&path)
            .unwrap()
            .set_len(64 << 10)
            .unwrap();
        let p = path.to_str().unwrap().to_string();
        assert_eq!(read_device(&p), Ok(None));
        let mut slot = [0u8; amf_core::superblock::SLOT_SIZE];
        amf_core::superblock::encode::<Crc>(&sb.for_role(1).unwrap(), &mut slot).unwrap();
        {
            use std::io::{Seek, SeekFrom, Write};
            let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            f.seek(SeekFrom::Start(
                amf_core::superblock::Which::A.byte_offset(),
            ))
            .unwrap();
            f.write_all(&slot).unwrap();
        }
        assert_eq!(read_device(&p).unwrap().map(|s| s.role), Some(1));
        // Magic with a torn copy in the only slot: reported, not ignored.
        {
            use std::io::{Seek, SeekFrom, Write};
            let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            f.seek(SeekFrom::Start(
                amf_core::superblock::Which::A.byte_offset() + 100,
            ))
            .unwrap();
            f.write_all(&[0xff; 4]).unwrap();
        }
        let e = read_device(&p).unwrap_err();
        assert!(e.contains("slot A: "), "{e}");
        let s = scan(&[Candidate {
            path: p.clone(),
            kname: "x".into(),
        }]);
        assert!(s.found.is_empty());
        assert_eq!(s.unusable.len(), 1);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn dmsetup_outputs() {
        let t = format!(
            "r5: 0 32768 amf raid5 3 128 group {G} 3 253:1 8192 253:2 8192 253:3 8192\n\
             plain: 0 100 amf raid0 1 8 2 8:0 0 8:16 0\n"
        );
        let a = parse_active(&t);
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].name, "r5");
        assert_eq!(a[0].group, amf_core::superblock::parse_uuid(G));
        assert_eq!(a[1].group, None);
        assert!(parse_active("No devices found\n").is_empty());
        assert_eq!(parse_ls("s0\t(251:0)\nr5\t(251:3)\n"), ["s0", "r5"]);
        assert!(parse_ls("No devices found\n").is_empty());
    }
}
