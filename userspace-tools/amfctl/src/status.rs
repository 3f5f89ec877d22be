// SPDX-License-Identifier: GPL-2.0
//! `dmsetup status` of `amf` targets: the documented INFO format
//!
//! ```text
//! <level> <#devs> <health_chars> <sync_done>/<sync_total> <sync_action> <mismatch_cnt> [...]
//! ```
//!
//! after dmsetup's `<start> <length> amf`, optionally preceded by `<name>: ` (dmsetup adds
//! it when listing every device). A clustered target goes on with
//!
//! ```text
//! ... <mismatch_cnt> cluster <state> <members> <requests> <cached> <blocking> <waits> <deaths>
//! ```
//!
//! and, with replication peers, after the cluster part with
//!
//! ```text
//! ... <deaths> replication <up> <peers> <records_sent> <records_held> <bad_frames>
//!     <auth_failures> <replayed> <last_takeover_ms> <reconnects>
//! ```
//!
//! A group with a write-intent bitmap (`group <uuid>` on raid1, raid5 or raid6) ends with
//! the bitmap part, after the cluster and replication parts when there are any:
//!
//! ```text
//! ... bitmap <regions> <dirty> <resync_pending> <resynced>
//! ```
//!
//! Later versions may append fields; they are kept, not refused. Anything else that does not
//! match is an error that says what is wrong.

use std::fmt::Write as _;
use std::time::Duration;

use amf_core::geometry::{Geometry, Level, MAX_MEMBERS};
use amf_core::table::{level_name, parse_decimal};
use serde::Serialize;

use crate::devnames::MemberDevice;
use crate::size::human;

/// State of one member, one character of `<health_chars>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberHealth {
    /// `A`: alive and in sync.
    InSync,
    /// `a`: alive but being rebuilt (`rebuild <idx>`), not in sync yet.
    OutOfSync,
    /// `D`: failed (an I/O error) or missing (`-` in the table).
    Failed,
}

impl MemberHealth {
    fn from_char(c: char) -> Option<Self> {
        match c {
            'A' => Some(Self::InSync),
            'a' => Some(Self::OutOfSync),
            'D' => Some(Self::Failed),
            _ => None,
        }
    }
}

/// What the members' health means for the volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VolumeState {
    /// Every member alive and in sync, no sync running.
    Optimal,
    /// Members alive, some not in sync yet (or sync not complete, or write-intent bitmap
    /// regions waiting for their resync).
    Resyncing,
    /// Some members failed, but no more than the level tolerates.
    Degraded,
    /// More members failed or still being rebuilt than the level tolerates: data is lost or
    /// unreachable (a member being rebuilt does not hold all its data yet).
    Failed,
    /// A level this version of amfctl does not know.
    Unknown,
}

impl VolumeState {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Optimal => "optimal",
            Self::Resyncing => "resyncing",
            Self::Degraded => "degraded",
            Self::Failed => "failed",
            Self::Unknown => "unknown",
        }
    }
}

/// `<state>` of a clustered target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClusterState {
    /// Operations run.
    Ready,
    /// The DLM recovers from a membership change: no operation starts.
    Recovering,
    /// The membership did not recover in time: writes fail until the table is reloaded.
    Lost,
}

impl ClusterState {
    fn from_word(w: &str) -> Option<Self> {
        match w {
            "ready" => Some(Self::Ready),
            "recovering" => Some(Self::Recovering),
            "lost" => Some(Self::Lost),
            _ => None,
        }
    }

    /// The word in the status line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::Recovering => "recovering",
            Self::Lost => "lost",
        }
    }
}

/// The cluster part of a clustered target's status (`cluster <state> ...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ClusterStatus {
    /// `<state>`.
    pub state: ClusterState,
    /// `<members>`: servers in the group's lockspace after the last recovery.
    pub members: u64,
    /// `<requests>`: lock requests and up-conversions sent to the DLM.
    pub requests: u64,
    /// `<cached>`: operations whose lock was already held (no DLM round trip).
    pub cached: u64,
    /// `<blocking>`: blocking callbacks answered by giving a lock up.
    pub blocking: u64,
    /// `<waits>`: operations that waited for a grant, a conversion or a cache slot.
    pub waits: u64,
    /// `<deaths>`: servers the DLM reported dead since the lockspace was joined.
    pub deaths: u64,
}

/// The words of the cluster part, `cluster` included.
const CLUSTER_WORDS: usize = 8;

/// The cluster part's syntax, for messages.
const CLUSTER_SYNTAX: &str =
    "cluster <state> <members> <requests> <cached> <blocking> <waits> <deaths>";

/// Parses the cluster part: `words` starts with `cluster`.
fn parse_cluster(words: &[&str]) -> Result<ClusterStatus, StatusErrorKind> {
    if words.len() < CLUSTER_WORDS {
        return Err(StatusErrorKind::ClusterFields {
            found: words.len().saturating_sub(1),
        });
    }
    let state = ClusterState::from_word(words[1])
        .ok_or_else(|| StatusErrorKind::ClusterState(words[1].to_string()))?;
    Ok(ClusterStatus {
        state,
        members: number("cluster members", words[2])?,
        requests: number("cluster requests", words[3])?,
        cached: number("cluster cached", words[4])?,
        blocking: number("cluster blocking", words[5])?,
        waits: number("cluster waits", words[6])?,
        deaths: number("cluster deaths", words[7])?,
    })
}

/// The replication part of a target with `peers` (`replication <up> ...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ReplicationStatus {
    /// `<up>`: peers with an authenticated connection now.
    pub up: u64,
    /// `<peers>`: the other AMFs in the table's `peers`.
    pub peers: u64,
    /// `<records_sent>`: replication records this AMF sent.
    pub records_sent: u64,
    /// `<records_held>`: records of peers' unfinished operations held now.
    pub records_held: u64,
    /// `<bad_frames>`: malformed frames dropped.
    pub bad_frames: u64,
    /// `<auth_failures>`: frames and handshakes that failed authentication, dropped.
    pub auth_failures: u64,
    /// `<replayed>`: peers' operations this AMF completed after their death.
    pub replayed: u64,
    /// `<last_takeover_ms>`: from the DLM reporting a death to the end of the takeover, for
    /// the last one; 0 if none.
    pub last_takeover_ms: u64,
    /// `<reconnects>`: connections to a peer (either direction) that replaced an earlier one
    /// to the same peer and direction since the table was loaded.
    pub reconnects: u64,
}

/// The words of the replication part, `replication` included.
const REPLICATION_WORDS: usize = 10;

/// The replication part's syntax, for messages.
const REPLICATION_SYNTAX: &str = "replication <up> <peers> <records_sent> <records_held> \
     <bad_frames> <auth_failures> <replayed> <last_takeover_ms> <reconnects>";

/// Parses the replication part: `words` starts with `replication`.
fn parse_replication(words: &[&str]) -> Result<ReplicationStatus, StatusErrorKind> {
    if words.len() < REPLICATION_WORDS {
        return Err(StatusErrorKind::ReplicationFields {
            found: words.len().saturating_sub(1),
        });
    }
    Ok(ReplicationStatus {
        up: number("replication up", words[1])?,
        peers: number("replication peers", words[2])?,
        records_sent: number("replication records_sent", words[3])?,
        records_held: number("replication records_held", words[4])?,
        bad_frames: number("replication bad_frames", words[5])?,
        auth_failures: number("replication auth_failures", words[6])?,
        replayed: number("replication replayed", words[7])?,
        last_takeover_ms: number("replication last_takeover_ms", words[8])?,
        reconnects: number("replication reconnects", words[9])?,
    })
}

/// The write-intent bitmap part of a group with a bitmap (`bitmap <regions> ...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BitmapStatus {
    /// `<regions>`: regions of the member data area the bitmap covers (one bit each).
    pub regions: u64,
    /// `<dirty>`: regions whose bit is set now (writes in them since the last clear).
    pub dirty: u64,
    /// `<resync_pending>`: regions still to resync (dirty when the table was loaded).
    pub resync_pending: u64,
    /// `<resynced>`: regions resynced since the table was loaded.
    pub resynced: u64,
}

/// The words of the bitmap part, `bitmap` included.
const BITMAP_WORDS: usize = 5;

/// The bitmap part's syntax, for messages.
const BITMAP_SYNTAX: &str = "bitmap <regions> <dirty> <resync_pending> <resynced>";

/// Parses the bitmap part: `words` starts with `bitmap`.
fn parse_bitmap(words: &[&str]) -> Result<BitmapStatus, StatusErrorKind> {
    if words.len() < BITMAP_WORDS {
        return Err(StatusErrorKind::BitmapFields {
            found: words.len().saturating_sub(1),
        });
    }
    let b = BitmapStatus {
        regions: number("bitmap regions", words[1])?,
        dirty: number("bitmap dirty", words[2])?,
        resync_pending: number("bitmap resync_pending", words[3])?,
        resynced: number("bitmap resynced", words[4])?,
    };
    for (field, n) in [("dirty", b.dirty), ("resync_pending", b.resync_pending)] {
        if n > b.regions {
            return Err(StatusErrorKind::BitmapOverflow {
                field,
                value: n,
                regions: b.regions,
            });
        }
    }
    Ok(b)
}

/// One `amf` target's status line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AmfStatus {
    /// Mapped device name, when the input names it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// First sector of the target in the mapped device.
    pub start: u64,
    /// Target length in sectors.
    pub length: u64,
    /// RAID level name (`raid0`).
    pub level: String,
    /// Number of members.
    pub devices: usize,
    /// `<health_chars>` as reported.
    pub health: String,
    /// `<health_chars>` decoded, one per member.
    pub members: Vec<MemberHealth>,
    /// Sectors in sync.
    pub sync_done: u64,
    /// Sectors to sync.
    pub sync_total: u64,
    /// `idle`, `resync`, `recover`, `check`, ...
    pub sync_action: String,
    /// Mismatches found by the last check.
    pub mismatch_cnt: u64,
    /// What the members' health means.
    pub state: VolumeState,
    /// Cluster mode: the `cluster ...` part after `<mismatch_cnt>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterStatus>,
    /// Replication peers: the `replication ...` part after the cluster part.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication: Option<ReplicationStatus>,
    /// A group with a write-intent bitmap: the `bitmap ...` part, after the cluster and
    /// replication parts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bitmap: Option<BitmapStatus>,
    /// The kernel's `sync_speed` part, at the end of the line while background work runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_speed: Option<KernelSpeed>,
    /// Fields after `<mismatch_cnt>` (and the cluster, replication, bitmap and sync_speed
    /// parts) that this version does not know.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra: Vec<String>,
    /// The member devices of the live table, when it was read (not from the status line).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub member_devices: Vec<MemberDevice>,
    /// The speed of the running rebuild, resync, check or repair and the time left: from
    /// the kernel's `sync_speed` part, or measured by amfctl from two readings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_speed: Option<SyncSpeed>,
}

/// The status part `sync_speed <kib_per_s> <sync_speed_min> <sync_speed_max>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct KernelSpeed {
    /// The background work's speed over the kernel's last half second, KiB of the volume
    /// a second (0 just after it started or resumed).
    pub kib_per_s: u64,
    /// The `sync_speed_min` limit, KiB/s; 0 for none.
    pub sync_speed_min: u64,
    /// The `sync_speed_max` limit, KiB/s; 0 for none.
    pub sync_speed_max: u64,
}

/// The words of the sync_speed part, `sync_speed` included.
const SPEED_WORDS: usize = 4;

/// How fast `<sync_done>` moves, and the time left at that speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SyncSpeed {
    /// Logical sectors a second.
    pub sectors_per_second: u64,
    /// Seconds until `<sync_done>` reaches `<sync_total>` at that speed; absent when nothing
    /// moves.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eta_seconds: Option<u64>,
    /// Where the speed comes from: `kernel` (the status's `sync_speed` part, over the
    /// kernel's last half second) or `sampled` (two readings of the status by amfctl, from
    /// a kernel without that part).
    pub source: &'static str,
    /// `sampled`: milliseconds between the two readings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_ms: Option<u64>,
}

/// The speed the kernel reports, with the time left at it, while background work runs
/// (`<sync_done>` short of `<sync_total>`).
fn kernel_sync_speed(k: &KernelSpeed, done: u64, total: u64) -> Option<SyncSpeed> {
    if done >= total {
        return None;
    }
    let per_s = k.kib_per_s.saturating_mul(2);
    Some(SyncSpeed {
        sectors_per_second: per_s,
        eta_seconds: (per_s > 0).then(|| (total - done).div_ceil(per_s)),
        source: "kernel",
        sample_ms: None,
    })
}

/// The speed between two samples of the same target `elapsed` apart, when a sync action
/// (not `idle`) runs in both and `<sync_done>` did not go back (a restarted action).
pub fn sync_speed(before: &AmfStatus, after: &AmfStatus, elapsed: Duration) -> Option<SyncSpeed> {
    let ms = u64::try_from(elapsed.as_millis()).ok()?;
    if ms == 0
        || before.sync_action == "idle"
        || after.sync_action != before.sync_action
        || after.sync_total != before.sync_total
        || after.sync_done < before.sync_done
        || after.sync_done >= after.sync_total
    {
        return None;
    }
    let moved = u128::from(after.sync_done - before.sync_done);
    let per_s = u64::try_from(moved * 1000 / u128::from(ms)).unwrap_or(u64::MAX);
    let left = u128::from(after.sync_total - after.sync_done);
    let eta = (moved > 0)
        .then(|| u64::try_from((left * u128::from(ms)).div_ceil(moved * 1000)).unwrap_or(u64::MAX));
    Some(SyncSpeed {
        sectors_per_second: per_s,
        eta_seconds: eta,
        source: "sampled",
        sample_ms: Some(ms),
    })
}

/// Whether `amfctl status` reads this target a second time for its speed: background
/// work runs and the status has no `sync_speed` part (a module from before it).
pub fn wants_sample(st: &AmfStatus) -> bool {
    st.sync_action != "idle" && st.sync_done < st.sync_total && st.sync_speed.is_none()
}

/// Replaces each target of `all` by its second reading in `later` (the same name and
/// start), with the speed between the two readings `elapsed` apart, or the kernel's.
pub fn merge_sample(all: &mut [AmfStatus], later: Vec<AmfStatus>, elapsed: Duration) {
    for s in later {
        if let Some(before) = all
            .iter_mut()
            .find(|b| b.name == s.name && b.start == s.start)
        {
            let speed = s.sync_speed.or_else(|| sync_speed(before, &s, elapsed));
            *before = s;
            before.sync_speed = speed;
        }
    }
}

/// `1:05`, `2:03:04`: a duration in seconds for people.
pub fn clock(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// What was wrong with a status line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatusErrorKind {
    /// Fewer words than `<start> <length> <type>` plus the six INFO fields.
    #[error("expected at least {expected} fields, found {found}")]
    TooFewFields {
        /// How many are needed.
        expected: usize,
        /// How many there are.
        found: usize,
    },
    /// A field that must be decimal is not.
    #[error("{field} '{value}' is not a decimal number")]
    NotANumber {
        /// Field name.
        field: &'static str,
        /// What it was.
        value: String,
    },
    /// `<#devs>` zero or above the maximum.
    #[error("#devs {0} is out of range (1 to 64)")]
    DeviceCount(u64),
    /// `<health_chars>` of the wrong length.
    #[error("health '{health}' has {found} characters for {expected} devices")]
    HealthLength {
        /// The field.
        health: String,
        /// `<#devs>`.
        expected: usize,
        /// Its length.
        found: usize,
    },
    /// A character other than `A`, `a`, `D`.
    #[error(
        "health '{health}': unexpected character '{ch}' for member {member} (expected A, a or D)"
    )]
    HealthChar {
        /// The field.
        health: String,
        /// The character.
        ch: char,
        /// Member index.
        member: usize,
    },
    /// `<sync_done>/<sync_total>` without the slash.
    #[error("sync ratio '{0}' is not <done>/<total>")]
    SyncRatio(String),
    /// More done than there is.
    #[error("sync ratio '{0}': done exceeds total")]
    SyncOverflow(String),
    /// `<sync_action>` is not a lower-case word.
    #[error("sync action '{0}' is not a word")]
    SyncAction(String),
    /// `cluster` followed by fewer than its seven fields.
    #[error("cluster part has {found} of its 7 fields, expected '{CLUSTER_SYNTAX}'")]
    ClusterFields {
        /// How many words follow `cluster`.
        found: usize,
    },
    /// A cluster `<state>` other than `ready`, `recovering`, `lost`.
    #[error("cluster state '{0}' is not ready, recovering or lost")]
    ClusterState(String),
    /// `replication` followed by fewer than its nine fields.
    #[error("replication part has {found} of its 9 fields, expected '{REPLICATION_SYNTAX}'")]
    ReplicationFields {
        /// How many words follow `replication`.
        found: usize,
    },
    /// `bitmap` followed by fewer than its four fields.
    #[error("bitmap part has {found} of its 4 fields, expected '{BITMAP_SYNTAX}'")]
    BitmapFields {
        /// How many words follow `bitmap`.
        found: usize,
    },
    /// `<dirty>` or `<resync_pending>` above `<regions>`.
    #[error("bitmap {field} {value} exceeds its {regions} regions")]
    BitmapOverflow {
        /// Field name.
        field: &'static str,
        /// Its value.
        value: u64,
        /// `<regions>`.
        regions: u64,
    },
    /// A line that is not `[<name>: ]<start> <length> <type> ...`.
    #[error("not a dmsetup status line")]
    NotStatus,
}

/// A malformed status line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("status line {line}: {kind}: '{text}'")]
pub struct StatusError {
    /// 1-based line number in the input.
    pub line: usize,
    /// The line.
    pub text: String,
    /// What was wrong.
    pub kind: StatusErrorKind,
}

/// The level a status names, when this version knows it.
pub fn known_level(name: &str) -> Option<Level> {
    // RAID10's number of copies is not in the status; md's default is 2.
    [
        Level::Raid0,
        Level::Raid1,
        Level::Raid5,
        Level::Raid6,
        Level::Raid10 { copies: 2 },
    ]
    .into_iter()
    .find(|&l| level_name(l) == name)
}

fn number(field: &'static str, value: &str) -> Result<u64, StatusErrorKind> {
    parse_decimal(value).ok_or_else(|| StatusErrorKind::NotANumber {
        field,
        value: value.to_string(),
    })
}

/// How many members a group of `level` with `devices` members can lose and still serve its
/// data; `None` for a level this version does not know.
pub fn tolerated(level: &str, devices: usize) -> Option<usize> {
    known_level(level)
        .and_then(|l| Geometry::new(l, devices, 1, 0).ok())
        .map(|g| g.tolerated_failures())
}

fn state_of(
    level: &str,
    members: &[MemberHealth],
    done: u64,
    total: u64,
    resync_pending: u64,
) -> VolumeState {
    let failed = members
        .iter()
        .filter(|&&m| m == MemberHealth::Failed)
        .count();
    let rebuilding = members
        .iter()
        .filter(|&&m| m == MemberHealth::OutOfSync)
        .count();
    let behind = rebuilding > 0 || done < total || resync_pending > 0;
    let tolerated = tolerated(level, members.len());
    match tolerated {
        None => VolumeState::Unknown,
        Some(t) if failed + rebuilding > t => VolumeState::Failed,
        Some(_) if failed > 0 => VolumeState::Degraded,
        Some(_) if behind => VolumeState::Resyncing,
        Some(_) => VolumeState::Optimal,
    }
}

/// Parses the INFO words after `<start> <length> amf`.
pub fn parse_info(start: u64, length: u64, words: &[&str]) -> Result<AmfStatus, StatusErrorKind> {
    const FIELDS: usize = 6;
    if words.len() < FIELDS {
        return Err(StatusErrorKind::TooFewFields {
            expected: FIELDS + 3,
            found: words.len() + 3,
        });
    }
    let level = words[0];
    let devices = number("#devs", words[1])?;
    if devices == 0 || devices > MAX_MEMBERS as u64 {
        return Err(StatusErrorKind::DeviceCount(devices));
    }
    let devices = devices as usize;
    let health = words[2];
    let found = health.chars().count();
    if found != devices {
        return Err(StatusErrorKind::HealthLength {
            health: health.to_string(),
            expected: devices,
            found,
        });
    }
    let members = health
        .chars()
        .enumerate()
        .map(|(member, ch)| {
            MemberHealth::from_char(ch).ok_or_else(|| StatusErrorKind::HealthChar {
                health: health.to_string(),
                ch,
                member,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let ratio = words[3];
    let (done, total) = ratio
        .split_once('/')
        .ok_or_else(|| StatusErrorKind::SyncRatio(ratio.to_string()))?;
    let sync_done = number("sync_done", done)?;
    let sync_total = number("sync_total", total)?;
    if sync_done > sync_total {
        return Err(StatusErrorKind::SyncOverflow(ratio.to_string()));
    }
    let sync_action = words[4];
    if !sync_action
        .chars()
        .all(|c| c.is_ascii_lowercase() || c == '_' || c == '-')
    {
        return Err(StatusErrorKind::SyncAction(sync_action.to_string()));
    }
    let mismatch_cnt = number("mismatch_cnt", words[5])?;
    let mut rest = &words[FIELDS..];
    let cluster = match rest.first() {
        Some(&"cluster") => {
            let c = parse_cluster(rest)?;
            rest = &rest[CLUSTER_WORDS..];
            Some(c)
        }
        _ => None,
    };
    // Only right after the cluster part.
    let replication = match (cluster, rest.first()) {
        (Some(_), Some(&"replication")) => {
            let r = parse_replication(rest)?;
            rest = &rest[REPLICATION_WORDS..];
            Some(r)
        }
        _ => None,
    };
    // Last: after <mismatch_cnt>, the cluster part or the replication part.
    let bitmap = match rest.first() {
        Some(&"bitmap") => {
            let b = parse_bitmap(rest)?;
            rest = &rest[BITMAP_WORDS..];
            Some(b)
        }
        _ => None,
    };
    // After every other part (and after parts this version does not know, such as
    // `handshakes`): the last `sync_speed` followed by three numbers.
    let mut extra: Vec<String> = rest.iter().map(|w| w.to_string()).collect();
    let mut kernel_speed = None;
    if let Some(i) = rest.iter().rposition(|&w| w == "sync_speed") {
        let n = |k: usize| rest.get(i + k).and_then(|w| parse_decimal(w));
        if let (Some(kib_per_s), Some(sync_speed_min), Some(sync_speed_max)) = (n(1), n(2), n(3)) {
            kernel_speed = Some(KernelSpeed {
                kib_per_s,
                sync_speed_min,
                sync_speed_max,
            });
            extra.drain(i..i + SPEED_WORDS);
        }
    }
    Ok(AmfStatus {
        name: None,
        start,
        length,
        level: level.to_string(),
        devices,
        health: health.to_string(),
        state: state_of(
            level,
            &members,
            sync_done,
            sync_total,
            bitmap.map_or(0, |b| b.resync_pending),
        ),
        members,
        sync_done,
        sync_total,
        sync_action: sync_action.to_string(),
        mismatch_cnt,
        cluster,
        replication,
        bitmap,
        kernel_speed,
        extra,
        member_devices: Vec::new(),
        sync_speed: kernel_speed.and_then(|k| kernel_sync_speed(&k, sync_done, sync_total)),
    })
}

/// Splits `<name>: <start> <length> <type> ...` into the name and the rest.
pub fn split_name(line: &str) -> (Option<&str>, &str) {
    let starts_as_table = |rest: &str| {
        let mut w = rest.split_whitespace();
        matches!(
            (
                w.next().and_then(parse_decimal),
                w.next().and_then(parse_decimal),
                w.next()
            ),
            (Some(_), Some(_), Some(_))
        )
    };
    if starts_as_table(line) {
        return (None, line);
    }
    // Device names may contain ': ' themselves; take the first split that leaves a table.
    for (i, _) in line.match_indices(": ") {
        let rest = &line[i + 2..];
        if starts_as_table(rest) {
            return (Some(&line[..i]), rest);
        }
    }
    // `name:` alone would be a device without any table; not a status line.
    (None, line)
}

/// Parses `dmsetup status` output. Lines of other target types are skipped (a device may
/// stack several targets); `No devices found` and blank lines yield nothing.
pub fn parse_status(text: &str) -> Result<Vec<AmfStatus>, StatusError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line == "No devices found" {
            continue;
        }
        let err = |kind| StatusError {
            line: i + 1,
            text: line.to_string(),
            kind,
        };
        let (name, rest) = split_name(line);
        let words: Vec<&str> = rest.split_whitespace().collect();
        if words.len() < 3 {
            return Err(err(StatusErrorKind::NotStatus));
        }
        let (Some(start), Some(length)) = (parse_decimal(words[0]), parse_decimal(words[1])) else {
            return Err(err(StatusErrorKind::NotStatus));
        };
        if words[2] != "amf" {
            continue;
        }
        let mut st = parse_info(start, length, &words[3..]).map_err(err)?;
        st.name = name.map(str::to_string);
        out.push(st);
    }
    Ok(out)
}

/// A few lines for people.
pub fn summary(st: &AmfStatus) -> String {
    let mut s = String::new();
    let count = |h: MemberHealth| st.members.iter().filter(|&&m| m == h).count();
    let _ = writeln!(
        s,
        "{}: amf {}, {} members, {} ({} sectors from {}), {}",
        st.name.as_deref().unwrap_or("(unnamed)"),
        st.level,
        st.devices,
        human(st.length),
        st.length,
        st.start,
        st.state.as_str()
    );
    let mut members = format!("{} in sync", count(MemberHealth::InSync));
    let behind = count(MemberHealth::OutOfSync);
    if behind > 0 {
        let _ = write!(members, ", {behind} out of sync");
    }
    let failed: Vec<String> = st
        .members
        .iter()
        .enumerate()
        .filter(|(_, &m)| m == MemberHealth::Failed)
        .map(|(i, _)| match st.member_devices.get(i) {
            Some(d) if d.dev != "-" => format!("{i} {}", d.short()),
            _ => i.to_string(),
        })
        .collect();
    if !failed.is_empty() {
        let _ = write!(members, ", failed: member {}", failed.join(", "));
    }
    let _ = writeln!(s, "  members:    {} ({members})", st.health);
    for d in &st.member_devices {
        let h = match st.members.get(d.index) {
            Some(MemberHealth::InSync) => "in sync",
            Some(MemberHealth::OutOfSync) => "being rebuilt",
            Some(MemberHealth::Failed) => "failed",
            None => "not in the status",
        };
        let _ = writeln!(
            s,
            "  {:<12}{}, {h}",
            format!("member {}:", d.index),
            d.label()
        );
    }
    let pct = if st.sync_total == 0 {
        100.0
    } else {
        st.sync_done as f64 * 100.0 / st.sync_total as f64
    };
    let _ = writeln!(
        s,
        "  sync:       {}, {}/{} sectors ({pct:.1}%)",
        st.sync_action, st.sync_done, st.sync_total
    );
    if let Some(v) = &st.sync_speed {
        let eta = match v.eta_seconds {
            Some(e) => format!("about {} left", clock(e)),
            None => "no progress, no estimate".to_string(),
        };
        let from = match v.sample_ms {
            Some(ms) => format!(
                "sampled over {}.{} s: this kernel reports no speed",
                ms / 1000,
                ms % 1000 / 100
            ),
            None => "the kernel's, over its last half second".to_string(),
        };
        let _ = writeln!(
            s,
            "  speed:      {}/s, {eta} ({from})",
            human(v.sectors_per_second)
        );
    }
    if let Some(k) = st
        .kernel_speed
        .filter(|k| k.sync_speed_min != 0 || k.sync_speed_max != 0)
    {
        let limit = |v: u64| match v {
            0 => "none".to_string(),
            v => format!("{v} KiB/s"),
        };
        let _ = writeln!(
            s,
            "  limits:     sync_speed_min {}, sync_speed_max {}",
            limit(k.sync_speed_min),
            limit(k.sync_speed_max)
        );
    }
    let _ = writeln!(s, "  mismatches: {}", st.mismatch_cnt);
    if let Some(c) = &st.cluster {
        let _ = writeln!(
            s,
            "  cluster:    {}, {} members, {} lock requests, {} cached, {} blocking callbacks \
             answered, {} waits, {} node deaths",
            c.state.as_str(),
            c.members,
            c.requests,
            c.cached,
            c.blocking,
            c.waits,
            c.deaths
        );
    }
    if let Some(r) = &st.replication {
        let takeover = match r.last_takeover_ms {
            0 => "no takeover".to_string(),
            ms => format!("last takeover {ms} ms"),
        };
        let _ = writeln!(
            s,
            "  peers:      {} of {} up, {} records sent, {} held, {} bad frames, {} \
             authentication failures, {} operations replayed, {takeover}, {} reconnects",
            r.up,
            r.peers,
            r.records_sent,
            r.records_held,
            r.bad_frames,
            r.auth_failures,
            r.replayed,
            r.reconnects
        );
    }
    if let Some(b) = &st.bitmap {
        let _ = writeln!(
            s,
            "  bitmap:     {} regions, {} dirty, {} to resync, {} resynced since the table was \
             loaded",
            b.regions, b.dirty, b.resync_pending, b.resynced
        );
    }
    if !st.extra.is_empty() {
        let _ = writeln!(s, "  more:       {}", st.extra.join(" "));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> AmfStatus {
        let mut v = parse_status(text).unwrap();
        assert_eq!(v.len(), 1, "{v:?}");
        v.remove(0)
    }

    fn bad(text: &str) -> StatusErrorKind {
        parse_status(text).unwrap_err().kind
    }

    #[test]
    fn readme_status() {
        let st = one("0 2097152 amf raid0 4 AAAA 2097152/2097152 idle 0\n");
        assert_eq!(
            st,
            AmfStatus {
                name: None,
                start: 0,
                length: 2_097_152,
                level: "raid0".to_string(),
                devices: 4,
                health: "AAAA".to_string(),
                members: vec![MemberHealth::InSync; 4],
                sync_done: 2_097_152,
                sync_total: 2_097_152,
                sync_action: "idle".to_string(),
                mismatch_cnt: 0,
                state: VolumeState::Optimal,
                cluster: None,
                replication: None,
                bitmap: None,
                kernel_speed: None,
                extra: vec![],
                member_devices: vec![],
                sync_speed: None,
            }
        );
    }

    #[test]
    fn named_lines_other_targets_and_extras() {
        let text = "vol0: 0 2097152 amf raid0 4 AAAA 2097152/2097152 idle 0\n\
                    root: 0 409600 linear \n\
                    odd: name: 0 1024 amf raid0 1 A 1024/1024 idle 0 7 new-counter\n\
                    \n";
        let v = parse_status(text).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].name.as_deref(), Some("vol0"));
        assert_eq!(v[1].name.as_deref(), Some("odd: name"));
        assert_eq!(v[1].extra, vec!["7", "new-counter"]);
        assert!(parse_status("No devices found\n").unwrap().is_empty());
        assert!(parse_status("").unwrap().is_empty());
    }

    #[test]
    fn states() {
        assert_eq!(
            one("0 16 amf raid0 2 AD 16/16 idle 0").state,
            VolumeState::Failed
        );
        assert_eq!(
            one("0 16 amf raid1 2 AD 16/16 idle 0").state,
            VolumeState::Degraded
        );
        assert_eq!(
            one("0 16 amf raid1 3 DDA 16/16 idle 0").state,
            VolumeState::Degraded
        );
        assert_eq!(
            one("0 16 amf raid5 3 DDA 16/16 idle 0").state,
            VolumeState::Failed
        );
        assert_eq!(
            one("0 16 amf raid5 3 AaA 8/16 recover 0").state,
            VolumeState::Resyncing
        );
        // A member being rebuilt has no redundancy to give yet.
        assert_eq!(
            one("0 16 amf raid5 3 aDA 8/16 recover 0").state,
            VolumeState::Failed
        );
        assert_eq!(
            one("0 16 amf raid1 3 AaD 8/16 recover 0").state,
            VolumeState::Degraded
        );
        assert_eq!(
            one("0 16 amf raid6 4 AaDA 8/16 recover 0").state,
            VolumeState::Degraded
        );
        assert_eq!(
            one("0 16 amf raid0 2 Aa 8/16 recover 0").state,
            VolumeState::Failed
        );
        assert_eq!(
            one("0 16 amf raid6 4 AADD 16/16 idle 0").state,
            VolumeState::Degraded
        );
        assert_eq!(
            one("0 16 amf raid10 4 ADAA 16/16 idle 0").state,
            VolumeState::Degraded
        );
        assert_eq!(
            one("0 16 amf raid9 1 A 16/16 idle 0").state,
            VolumeState::Unknown
        );
    }

    #[test]
    fn malformed_lines_say_what_is_wrong() {
        use StatusErrorKind::*;
        assert_eq!(
            bad("0 16 amf raid0 2 AA 16/16 idle"),
            TooFewFields {
                expected: 9,
                found: 8
            }
        );
        assert_eq!(
            bad("0 16 amf"),
            TooFewFields {
                expected: 9,
                found: 3
            }
        );
        assert!(matches!(
            bad("0 16 amf raid0 x AA 16/16 idle 0"),
            NotANumber { field: "#devs", .. }
        ));
        assert_eq!(bad("0 16 amf raid0 0  16/16 idle 0 0"), DeviceCount(0));
        assert_eq!(bad("0 16 amf raid0 65 A 16/16 idle 0"), DeviceCount(65));
        assert!(matches!(
            bad("0 16 amf raid0 3 AA 16/16 idle 0"),
            HealthLength {
                expected: 3,
                found: 2,
                ..
            }
        ));
        assert!(matches!(
            bad("0 16 amf raid0 3 AxA 16/16 idle 0"),
            HealthChar {
                ch: 'x',
                member: 1,
                ..
            }
        ));
        assert_eq!(
            bad("0 16 amf raid0 1 A 16 idle 0"),
            SyncRatio("16".to_string())
        );
        assert!(matches!(
            bad("0 16 amf raid0 1 A 1a/16 idle 0"),
            NotANumber {
                field: "sync_done",
                ..
            }
        ));
        assert!(matches!(
            bad("0 16 amf raid0 1 A 16/ idle 0"),
            NotANumber {
                field: "sync_total",
                ..
            }
        ));
        assert_eq!(
            bad("0 16 amf raid0 1 A 17/16 idle 0"),
            SyncOverflow("17/16".to_string())
        );
        assert_eq!(
            bad("0 16 amf raid0 1 A 16/16 IDLE! 0"),
            SyncAction("IDLE!".to_string())
        );
        assert!(matches!(
            bad("0 16 amf raid0 1 A 16/16 idle -1"),
            NotANumber {
                field: "mismatch_cnt",
                ..
            }
        ));
        assert_eq!(bad("garbage"), NotStatus);
        assert_eq!(bad("vol0: 0"), NotStatus);
        assert_eq!(bad("vol0: x y amf"), NotStatus);
    }

    #[test]
    fn error_names_line_and_problem() {
        let e = parse_status("0 16 amf raid0 1 A 16/16 idle 0\n0 16 amf raid0 2 AZ 16/16 idle 0\n")
            .unwrap_err();
        assert_eq!(e.line, 2);
        assert_eq!(
            e.to_string(),
            "status line 2: health 'AZ': unexpected character 'Z' for member 1 (expected A, a or D): '0 16 amf raid0 2 AZ 16/16 idle 0'"
        );
    }

    #[test]
    fn never_panics_on_junk() {
        for junk in [
            "\u{0}",
            "0 0 amf ä ä ä ä ä ä",
            "::::",
            ": 0 0 amf",
            "0 0 amf raid0 1 \u{e9} 0/0 idle 0",
        ] {
            let _ = parse_status(junk);
        }
    }

    #[test]
    fn json_shape() {
        let mut st = one("vol0: 0 1024 amf raid0 2 AD 1024/1024 idle 0 5");
        st.name = Some("vol0".to_string());
        let j: serde_json::Value = serde_json::to_value(&st).unwrap();
        assert_eq!(j["name"], "vol0");
        assert_eq!(j["health"], "AD");
        assert_eq!(j["members"], serde_json::json!(["in_sync", "failed"]));
        assert_eq!(j["state"], "failed");
        assert_eq!(j["sync_done"], 1024);
        assert_eq!(j["extra"], serde_json::json!(["5"]));
    }

    const CLUSTERED: &str = "r5: 0 1572864 amf raid5 4 AAAA 1572864/1572864 idle 0 \
                             cluster ready 3 120 4051 7 12 0";

    #[test]
    fn cluster_part() {
        let st = one(CLUSTERED);
        assert_eq!(
            st.cluster,
            Some(ClusterStatus {
                state: ClusterState::Ready,
                members: 3,
                requests: 120,
                cached: 4051,
                blocking: 7,
                waits: 12,
                deaths: 0,
            })
        );
        assert!(st.extra.is_empty());
        assert_eq!(st.state, VolumeState::Optimal);
        for (word, state) in [
            ("recovering", ClusterState::Recovering),
            ("lost", ClusterState::Lost),
        ] {
            let st = one(&CLUSTERED.replace("ready", word));
            assert_eq!(st.cluster.unwrap().state, state);
        }
        // Fields after the cluster part are kept, as after <mismatch_cnt>.
        let st = one(&format!("{CLUSTERED} 5 new"));
        assert_eq!(st.cluster.unwrap().deaths, 0);
        assert_eq!(st.extra, vec!["5", "new"]);
        // Only right after <mismatch_cnt>: elsewhere `cluster` is an unknown extra field.
        let st = one("0 16 amf raid5 2 AA 16/16 idle 0 x cluster");
        assert_eq!(st.cluster, None);
        assert_eq!(st.extra, vec!["x", "cluster"]);
        // Without it, nothing changes.
        assert_eq!(one("0 16 amf raid5 2 AA 16/16 idle 0").cluster, None);
    }

    #[test]
    fn malformed_cluster_part_says_what_is_wrong() {
        use StatusErrorKind::*;
        let base = "0 16 amf raid5 2 AA 16/16 idle 0";
        assert_eq!(bad(&format!("{base} cluster")), ClusterFields { found: 0 });
        assert_eq!(
            bad(&format!("{base} cluster ready 3 1 2 3 4")),
            ClusterFields { found: 6 }
        );
        assert_eq!(
            bad(&format!("{base} cluster up 3 1 2 3 4 5")),
            ClusterState("up".to_string())
        );
        assert_eq!(
            bad(&format!("{base} cluster READY 3 1 2 3 4 5")),
            ClusterState("READY".to_string())
        );
        let fields = [
            "cluster members",
            "cluster requests",
            "cluster cached",
            "cluster blocking",
            "cluster waits",
            "cluster deaths",
        ];
        for (i, field) in fields.into_iter().enumerate() {
            let mut n = ["1"; 6];
            n[i] = "-1";
            assert_eq!(
                bad(&format!("{base} cluster ready {}", n.join(" "))),
                NotANumber {
                    field,
                    value: "-1".to_string()
                }
            );
        }
        let e = parse_status(&format!("{base} cluster ready 3 1 2")).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "status line 1: cluster part has 4 of its 7 fields, expected 'cluster <state> \
                 <members> <requests> <cached> <blocking> <waits> <deaths>': \
                 '{base} cluster ready 3 1 2'"
            )
        );
        let e = parse_status(&format!("{base} cluster ready 3 1 2 x 4 5")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("status line 1: cluster blocking 'x' is not a decimal number"),
            "{e}"
        );
    }

    #[test]
    fn cluster_json_and_text() {
        let st = one(CLUSTERED);
        let j: serde_json::Value = serde_json::to_value(&st).unwrap();
        assert_eq!(
            j["cluster"],
            serde_json::json!({
                "state": "ready",
                "members": 3,
                "requests": 120,
                "cached": 4051,
                "blocking": 7,
                "waits": 12,
                "deaths": 0
            })
        );
        assert!(j.get("extra").is_none());
        // Absent without the cluster part.
        let j = serde_json::to_value(one("0 16 amf raid5 2 AA 16/16 idle 0")).unwrap();
        assert!(j.get("cluster").is_none(), "{j}");

        assert_eq!(
            summary(&st),
            "r5: amf raid5, 4 members, 768.00 MiB (1572864 sectors from 0), optimal\n\
             \x20 members:    AAAA (4 in sync)\n\
             \x20 sync:       idle, 1572864/1572864 sectors (100.0%)\n\
             \x20 mismatches: 0\n\
             \x20 cluster:    ready, 3 members, 120 lock requests, 4051 cached, \
             7 blocking callbacks answered, 12 waits, 0 node deaths\n"
        );
        let s = summary(&one(&format!(
            "{} 9",
            CLUSTERED.replace("ready 3", "lost 2")
        )));
        assert!(s.contains("  cluster:    lost, 2 members, "), "{s}");
        assert!(s.ends_with("  more:       9\n"), "{s}");
    }

    const REPLICATED: &str = "r5: 0 1572864 amf raid5 4 AAAA 1572864/1572864 idle 0 \
                              cluster ready 3 120 4051 7 12 1 \
                              replication 2 2 98765 3 1 4 17 812 5";

    #[test]
    fn replication_part() {
        let st = one(REPLICATED);
        assert_eq!(st.cluster.unwrap().deaths, 1);
        assert_eq!(
            st.replication,
            Some(ReplicationStatus {
                up: 2,
                peers: 2,
                records_sent: 98765,
                records_held: 3,
                bad_frames: 1,
                auth_failures: 4,
                replayed: 17,
                last_takeover_ms: 812,
                reconnects: 5,
            })
        );
        assert!(st.extra.is_empty());
        // Fields after it are kept.
        let st = one(&format!("{REPLICATED} 5 new"));
        assert_eq!(st.replication.unwrap().last_takeover_ms, 812);
        assert_eq!(st.extra, vec!["5", "new"]);
        // Absent without peers; only right after the cluster part.
        assert_eq!(one(CLUSTERED).replication, None);
        let st = one("0 16 amf raid5 2 AA 16/16 idle 0 replication 1 1 0 0 0 0 0 0 0");
        assert_eq!((st.cluster, st.replication), (None, None));
        assert_eq!(st.extra.len(), 10);
        let st = one(&format!("{CLUSTERED} x replication"));
        assert_eq!(st.replication, None);
        assert_eq!(st.extra, vec!["x", "replication"]);
    }

    #[test]
    fn malformed_replication_part_says_what_is_wrong() {
        use StatusErrorKind::*;
        let base = "0 16 amf raid5 2 AA 16/16 idle 0 cluster ready 2 0 0 0 0 0";
        assert_eq!(
            bad(&format!("{base} replication")),
            ReplicationFields { found: 0 }
        );
        assert_eq!(
            bad(&format!("{base} replication 1 1 0 0 0 0 0")),
            ReplicationFields { found: 7 }
        );
        // The 8 fields of a module without <reconnects>.
        assert_eq!(
            bad(&format!("{base} replication 1 1 0 0 0 0 0 0")),
            ReplicationFields { found: 8 }
        );
        let fields = [
            "replication up",
            "replication peers",
            "replication records_sent",
            "replication records_held",
            "replication bad_frames",
            "replication auth_failures",
            "replication replayed",
            "replication last_takeover_ms",
            "replication reconnects",
        ];
        for (i, field) in fields.into_iter().enumerate() {
            let mut n = ["1"; 9];
            n[i] = "-1";
            assert_eq!(
                bad(&format!("{base} replication {}", n.join(" "))),
                NotANumber {
                    field,
                    value: "-1".to_string()
                }
            );
        }
        let e = parse_status(&format!("{base} replication 1 1")).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "status line 1: replication part has 2 of its 9 fields, expected 'replication \
                 <up> <peers> <records_sent> <records_held> <bad_frames> <auth_failures> \
                 <replayed> <last_takeover_ms> <reconnects>': '{base} replication 1 1'"
            )
        );
    }

    #[test]
    fn replication_json_and_text() {
        let st = one(REPLICATED);
        let j: serde_json::Value = serde_json::to_value(&st).unwrap();
        assert_eq!(
            j["replication"],
            serde_json::json!({
                "up": 2,
                "peers": 2,
                "records_sent": 98765,
                "records_held": 3,
                "bad_frames": 1,
                "auth_failures": 4,
                "replayed": 17,
                "last_takeover_ms": 812,
                "reconnects": 5
            })
        );
        let j = serde_json::to_value(one(CLUSTERED)).unwrap();
        assert!(j.get("replication").is_none(), "{j}");
        let s = summary(&st);
        assert!(
            s.ends_with(
                " 1 node deaths\n\
                 \x20 peers:      2 of 2 up, 98765 records sent, 3 held, 1 bad frames, \
                 4 authentication failures, 17 operations replayed, last takeover 812 ms, \
                 5 reconnects\n"
            ),
            "{s}"
        );
        let s = summary(&one(&REPLICATED
            .replace("replication 2 2", "replication 1 2")
            .replace(" 812", " 0")));
        assert!(
            s.ends_with(
                "  peers:      1 of 2 up, 98765 records sent, 3 held, 1 bad frames, \
                         4 authentication failures, 17 operations replayed, no takeover, \
                         5 reconnects\n"
            ),
            "{s}"
        );
    }

    #[test]
    fn replication_reconnects() {
        // The 9th field, after <last_takeover_ms>: a flapping link or a restarted peer.
        let base = "vol: 0 16 amf raid1 2 AA 16/16 idle 0 cluster ready 2 0 0 0 0 0 \
                    replication 1 1 40 0 0 0 0 0";
        let r = one(&format!("{base} 3")).replication.unwrap();
        assert_eq!((r.last_takeover_ms, r.reconnects), (0, 3));
        let r = one(&format!("{base} 18446744073709551615 7"));
        assert_eq!(r.replication.unwrap().reconnects, u64::MAX);
        assert_eq!(r.extra, vec!["7"]);
        assert!(matches!(
            bad(&format!("{base} 18446744073709551616")),
            StatusErrorKind::NotANumber {
                field: "replication reconnects",
                ..
            }
        ));
        let st = one(&format!("{base} 0"));
        let j = serde_json::to_value(&st).unwrap();
        assert_eq!(j["replication"]["reconnects"], 0);
        assert!(summary(&st).contains(", no takeover, 0 reconnects\n"));
        // A module without the field: refused, not read as 0.
        let e = parse_status(base).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "status line 1: replication part has 8 of its 9 fields, expected 'replication \
                 <up> <peers> <records_sent> <records_held> <bad_frames> <auth_failures> \
                 <replayed> <last_takeover_ms> <reconnects>': '{base}'"
            )
        );
    }

    #[test]
    fn summary_text() {
        let st = one("vol0: 0 2097152 amf raid0 4 AAAA 2097152/2097152 idle 0");
        assert_eq!(
            summary(&st),
            "vol0: amf raid0, 4 members, 1.00 GiB (2097152 sectors from 0), optimal\n\
             \x20 members:    AAAA (4 in sync)\n\
             \x20 sync:       idle, 2097152/2097152 sectors (100.0%)\n\
             \x20 mismatches: 0\n"
        );
        let st = one("0 16 amf raid1 3 AaD 8/16 recover 2 x");
        let s = summary(&st);
        assert!(
            s.contains("AaD (1 in sync, 1 out of sync, failed: member 2)"),
            "{s}"
        );
        assert!(s.contains("recover, 8/16 sectors (50.0%)"), "{s}");
        assert!(s.lines().next().unwrap().ends_with(", degraded"), "{s}");
        assert!(s.contains("more:       x"), "{s}");
    }

    #[test]
    fn speed_from_two_samples() {
        let a = one("r5: 0 12288 amf raid5 4 AAAa 1024/12288 recover 0");
        let b = one("r5: 0 12288 amf raid5 4 AAAa 3072/12288 recover 0");
        let v = sync_speed(&a, &b, Duration::from_millis(500)).unwrap();
        assert_eq!(
            v,
            SyncSpeed {
                sectors_per_second: 4096,
                eta_seconds: Some(3),
                source: "sampled",
                sample_ms: Some(500)
            }
        );
        // Rounded up: 9216 sectors left at 4096/s.
        assert_eq!(clock(v.eta_seconds.unwrap()), "0:03");
        assert_eq!(clock(3723), "1:02:03");
        // Nothing moved: a speed of 0 and no estimate.
        let v = sync_speed(&b, &b, Duration::from_secs(1)).unwrap();
        assert_eq!((v.sectors_per_second, v.eta_seconds), (0, None));
        // Idle, another action, a restart, the end, no time: no speed.
        let idle = one("r5: 0 12288 amf raid5 4 AAAA 12288/12288 idle 0");
        let check = one("r5: 0 12288 amf raid5 4 AAAA 4096/12288 check 0");
        for (x, y) in [(&idle, &idle), (&a, &check), (&b, &a), (&a, &idle)] {
            assert_eq!(sync_speed(x, y, Duration::from_secs(1)), None, "{y:?}");
        }
        assert_eq!(sync_speed(&a, &b, Duration::ZERO), None);

        let mut st = b.clone();
        st.sync_speed = sync_speed(&a, &b, Duration::from_millis(1000));
        st.member_devices = vec![
            MemberDevice {
                index: 0,
                dev: "253:0".into(),
                path: Some("/dev/mapper/m0".into()),
            },
            MemberDevice {
                index: 1,
                dev: "-".into(),
                path: None,
            },
            MemberDevice {
                index: 2,
                dev: "8:32".into(),
                path: None,
            },
            MemberDevice {
                index: 3,
                dev: "252:48".into(),
                path: Some("/dev/vdd".into()),
            },
        ];
        st.members[1] = MemberHealth::Failed;
        st.health = "ADAa".into();
        let s = summary(&st);
        assert!(
            s.contains(
                "  members:    ADAa (2 in sync, 1 out of sync, failed: member 1)\n\
                 \x20 member 0:   /dev/mapper/m0 (253:0), in sync\n\
                 \x20 member 1:   missing, failed\n\
                 \x20 member 2:   8:32, in sync\n\
                 \x20 member 3:   /dev/vdd (252:48), being rebuilt\n\
                 \x20 sync:       recover, 3072/12288 sectors (25.0%)\n\
                 \x20 speed:      1.00 MiB/s, about 0:05 left (sampled over 1.0 s: this kernel \
                 reports no speed)\n"
            ),
            "{s}"
        );
        st.members[3] = MemberHealth::Failed;
        assert!(
            summary(&st).contains("failed: member 1, 3 /dev/vdd)"),
            "{}",
            summary(&st)
        );
        let j = serde_json::to_value(&st).unwrap();
        assert_eq!(
            j["sync_speed"],
            serde_json::json!({
                "sectors_per_second": 2048,
                "eta_seconds": 5,
                "source": "sampled",
                "sample_ms": 1000
            })
        );
        assert_eq!(j["member_devices"][3]["path"], "/dev/vdd");
        assert_eq!(
            j["member_devices"][1],
            serde_json::json!({"index": 1, "dev": "-"})
        );
        // Neither without them.
        let j = serde_json::to_value(&a).unwrap();
        assert!(j.get("sync_speed").is_none() && j.get("member_devices").is_none());
    }

    #[test]
    fn kernel_speed_part() {
        // Last, after the bitmap part and the handshakes part this version keeps as extra.
        let line = "r5: 0 12288 amf raid5 4 AAAa 3072/12288 recover 0 cluster ready 2 0 0 0 0 0 \
                    replication 1 1 0 0 0 0 0 0 0 bitmap 16 2 0 0 handshakes 1 0 0 0 \
                    sync_speed 1024 0 50000";
        let st = one(line);
        assert_eq!(
            st.kernel_speed,
            Some(KernelSpeed {
                kib_per_s: 1024,
                sync_speed_min: 0,
                sync_speed_max: 50000
            })
        );
        assert_eq!(st.bitmap.unwrap().regions, 16);
        assert_eq!(st.extra, ["handshakes", "1", "0", "0", "0"]);
        assert_eq!(
            st.sync_speed,
            Some(SyncSpeed {
                sectors_per_second: 2048,
                eta_seconds: Some(5),
                source: "kernel",
                sample_ms: None
            })
        );
        let s = summary(&st);
        assert!(
            s.contains(
                "  sync:       recover, 3072/12288 sectors (25.0%)\n\
                 \x20 speed:      1.00 MiB/s, about 0:05 left (the kernel's, over its last half \
                 second)\n\
                 \x20 limits:     sync_speed_min none, sync_speed_max 50000 KiB/s\n\
                 \x20 mismatches: 0\n"
            ),
            "{s}"
        );
        let j = serde_json::to_value(&st).unwrap();
        assert_eq!(
            j["kernel_speed"],
            serde_json::json!({"kib_per_s": 1024, "sync_speed_min": 0, "sync_speed_max": 50000})
        );
        assert_eq!(
            j["sync_speed"],
            serde_json::json!({"sectors_per_second": 2048, "eta_seconds": 5, "source": "kernel"})
        );
        // Just started: speed 0, no estimate; no limits, no limits line.
        let st = one("0 12288 amf raid5 4 AAAa 0/12288 recover 0 sync_speed 0 0 0");
        assert_eq!(st.sync_speed.unwrap().eta_seconds, None);
        let s = summary(&st);
        assert!(
            s.contains("  speed:      0 B/s, no progress, no estimate (the kernel's, over its"),
            "{s}"
        );
        assert!(!s.contains("limits:"), "{s}");
        // Not three numbers: an extra field like any other; no speed.
        let st = one("0 16 amf raid5 2 AA 8/16 check 0 sync_speed 1 x 0");
        assert_eq!((st.kernel_speed, st.sync_speed), (None, None));
        assert_eq!(st.extra.len(), 4);
        let st = one("0 16 amf raid5 2 AA 8/16 check 0 sync_speed 1 2");
        assert_eq!(st.kernel_speed, None);
    }

    const BITMAPPED: &str = "r5: 0 24576 amf raid5 4 AAAA 24576/24576 resync 0 bitmap 16 9 7 1";

    #[test]
    fn bitmap_part() {
        let st = one(BITMAPPED);
        assert_eq!(
            st.bitmap,
            Some(BitmapStatus {
                regions: 16,
                dirty: 9,
                resync_pending: 7,
                resynced: 1,
            })
        );
        assert_eq!(st.sync_action, "resync");
        assert_eq!((st.cluster, st.replication), (None, None));
        assert!(st.extra.is_empty());
        // Regions waiting for their resync: not optimal yet.
        assert_eq!(st.state, VolumeState::Resyncing);
        let st = one(&BITMAPPED.replace("resync 0 bitmap 16 9 7 1", "idle 0 bitmap 16 0 0 8"));
        assert_eq!(st.state, VolumeState::Optimal);
        assert_eq!(st.bitmap.unwrap().resynced, 8);
        // A failed member still makes it degraded.
        let st = one(&BITMAPPED.replace("AAAA", "AADA"));
        assert_eq!(st.state, VolumeState::Degraded);
        // Fields after it are kept.
        let st = one(&format!("{BITMAPPED} 5 new"));
        assert_eq!(st.bitmap.unwrap().regions, 16);
        assert_eq!(st.extra, vec!["5", "new"]);
        // Without it, nothing changes.
        assert_eq!(one("0 16 amf raid5 2 AA 16/16 idle 0").bitmap, None);
        // Only as the last part: after an unknown field it is an extra field itself.
        let st = one("0 16 amf raid5 2 AA 16/16 idle 0 x bitmap 1 0 0 0");
        assert_eq!(st.bitmap, None);
        assert_eq!(st.extra, vec!["x", "bitmap", "1", "0", "0", "0"]);
    }

    #[test]
    fn bitmap_after_the_cluster_and_replication_parts() {
        let st = one(&format!("{CLUSTERED} bitmap 64 2 0 3"));
        assert_eq!(st.cluster.unwrap().cached, 4051);
        assert_eq!(st.replication, None);
        assert_eq!(
            st.bitmap,
            Some(BitmapStatus {
                regions: 64,
                dirty: 2,
                resync_pending: 0,
                resynced: 3,
            })
        );
        let st = one(&format!("{REPLICATED} bitmap 64 2 1 3 9"));
        assert_eq!(st.replication.unwrap().reconnects, 5);
        assert_eq!(st.bitmap.unwrap().resync_pending, 1);
        assert_eq!(st.state, VolumeState::Resyncing);
        assert_eq!(st.extra, vec!["9"]);
        // Before the cluster part it is not the bitmap part (the parts keep their order).
        let st = one("0 16 amf raid5 2 AA 16/16 idle 0 bitmap 1 0 0 0 cluster ready 3 1 2 3 4 5");
        assert_eq!(st.bitmap.unwrap().regions, 1);
        assert_eq!(st.cluster, None);
        assert_eq!(st.extra.len(), 8);
    }

    #[test]
    fn malformed_bitmap_part_says_what_is_wrong() {
        use StatusErrorKind::*;
        let base = "0 16 amf raid1 2 AA 16/16 resync 0";
        assert_eq!(bad(&format!("{base} bitmap")), BitmapFields { found: 0 });
        assert_eq!(
            bad(&format!("{base} bitmap 16 1 1")),
            BitmapFields { found: 3 }
        );
        let fields = [
            "bitmap regions",
            "bitmap dirty",
            "bitmap resync_pending",
            "bitmap resynced",
        ];
        for (i, field) in fields.into_iter().enumerate() {
            let mut n = ["1"; 4];
            n[i] = "-1";
            assert_eq!(
                bad(&format!("{base} bitmap {}", n.join(" "))),
                NotANumber {
                    field,
                    value: "-1".to_string()
                }
            );
        }
        assert_eq!(
            bad(&format!("{base} bitmap 16 17 0 0")),
            BitmapOverflow {
                field: "dirty",
                value: 17,
                regions: 16
            }
        );
        assert_eq!(
            bad(&format!("{base} bitmap 16 0 17 0")),
            BitmapOverflow {
                field: "resync_pending",
                value: 17,
                regions: 16
            }
        );
        // More resynced than regions is possible (a region dirty again, resynced again).
        assert_eq!(
            one(&format!("{base} bitmap 16 0 0 40"))
                .bitmap
                .unwrap()
                .resynced,
            40
        );
        let e = parse_status(&format!("{base} bitmap 16")).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "status line 1: bitmap part has 1 of its 4 fields, expected 'bitmap <regions> \
                 <dirty> <resync_pending> <resynced>': '{base} bitmap 16'"
            )
        );
        let e = parse_status(&format!("{base} bitmap 16 0 20 0")).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "status line 1: bitmap resync_pending 20 exceeds its 16 regions: \
                 '{base} bitmap 16 0 20 0'"
            )
        );
    }

    #[test]
    fn bitmap_json_and_text() {
        let st = one(BITMAPPED);
        let j: serde_json::Value = serde_json::to_value(&st).unwrap();
        assert_eq!(
            j["bitmap"],
            serde_json::json!({
                "regions": 16,
                "dirty": 9,
                "resync_pending": 7,
                "resynced": 1
            })
        );
        assert_eq!(j["sync_action"], "resync");
        assert_eq!(j["state"], "resyncing");
        let j = serde_json::to_value(one(CLUSTERED)).unwrap();
        assert!(j.get("bitmap").is_none(), "{j}");
        assert_eq!(
            summary(&st),
            "r5: amf raid5, 4 members, 12.00 MiB (24576 sectors from 0), resyncing\n\
             \x20 members:    AAAA (4 in sync)\n\
             \x20 sync:       resync, 24576/24576 sectors (100.0%)\n\
             \x20 mismatches: 0\n\
             \x20 bitmap:     16 regions, 9 dirty, 7 to resync, 1 resynced since the table \
             was loaded\n"
        );
        let s = summary(&one(&format!("{REPLICATED} bitmap 64 2 0 3 7")));
        assert!(
            s.ends_with(
                " 5 reconnects\n\
                 \x20 bitmap:     64 regions, 2 dirty, 0 to resync, 3 resynced since the \
                 table was loaded\n\
                 \x20 more:       7\n"
            ),
            "{s}"
        );
    }
}
