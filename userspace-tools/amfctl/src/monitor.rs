// SPDX-License-Identifier: GPL-2.0
//! `amfctl monitor`: waits for device-mapper events of `amf` volumes and reports what
//! changed, as `mdadm --monitor` does for md arrays.
//!
//! Each volume gets a thread that waits in `DM_DEV_WAIT` (as `dmsetup wait` does) for its
//! event number to move; the main thread then reads the volume's status and table again and
//! compares them with the last ones it read ([`diff`]): every change it finds is one
//! [`Event`], printed as a line (or a JSON object) and handed to `--program`. Every
//! `--interval` the main thread also lists the devices (new volumes get a thread, gone ones
//! are reported) and reads every volume's status, which catches what raises no event
//! (replication peers connecting and disconnecting). Without the ioctls (no
//! `/dev/mapper/control`), or with `--poll`, `dmsetup status` and `dmsetup table` are read
//! every `--interval` instead.
//!
//! The event names are `Documentation/admin-guide.rst`'s ("Monitoring").

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::devnames::{self, MemberDevice};
use crate::dm_ioctl::{Control, DevStatus};
use crate::dmsetup;
use crate::status::{self, AmfStatus, ClusterState, MemberHealth};

/// What happened to a volume. The names are those `--program` receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum EventKind {
    /// An `amf` volume appeared after the monitor started.
    NewArray,
    /// A monitored volume is gone (removed, renamed, or no `amf` target any more).
    DeviceDisappeared,
    /// The volume's table was reloaded with other members (other devices or another count).
    TableChanged,
    /// A member failed (`D`).
    Fail,
    /// A member went back into service without a rebuild (`D` to `A`: a table reload).
    MemberActive,
    /// A member's rebuild started (`a`).
    RebuildStarted,
    /// A member's rebuild ended: the member is in sync (`a` to `A`).
    RebuildFinished,
    /// A member's rebuild was given up: the member failed (`a` to `D`), or others did and
    /// the group cannot serve its data any more.
    RebuildAbandoned,
    /// A resync of write-intent bitmap regions started (`resync`), or more regions were
    /// added to it (a dead node's, taken over).
    ResyncStarted,
    /// The resync ended (`<sync_action>` left `resync`).
    ResyncFinished,
    /// A `check` or `repair` started.
    CheckStarted,
    /// A `check` or `repair` ended (done, stopped by `idle`, or by a member failure).
    CheckFinished,
    /// `<mismatch_cnt>` went up (or, at start and with `--oneshot`, is not 0).
    MismatchesFound,
    /// Cluster mode: this AMF lost the cluster (`lost`).
    ClusterLost,
    /// Cluster mode: the cluster state left `lost` (after a table reload).
    ClusterRegained,
    /// Cluster mode: fewer servers in the group's lockspace, or more deaths.
    NodeLost,
    /// Cluster mode: more servers in the group's lockspace.
    NodeJoined,
    /// Replication: fewer peers connected (or, at start and with `--oneshot`, not all).
    PeerDown,
    /// Replication: more peers connected.
    PeerUp,
    /// Replication: this AMF completed operations of a dead peer (`<replayed>` went up).
    Takeover,
    /// At start and with `--oneshot`: the volume has failed members.
    DegradedArray,
    /// At start and with `--oneshot`: a rebuild, resync, check or repair runs.
    SyncRunning,
    /// At start, with `--test`: one per volume, to try `--program`.
    TestMessage,
}

impl EventKind {
    /// The name printed and passed to `--program`.
    pub fn name(self) -> &'static str {
        match self {
            Self::NewArray => "NewArray",
            Self::DeviceDisappeared => "DeviceDisappeared",
            Self::TableChanged => "TableChanged",
            Self::Fail => "Fail",
            Self::MemberActive => "MemberActive",
            Self::RebuildStarted => "RebuildStarted",
            Self::RebuildFinished => "RebuildFinished",
            Self::RebuildAbandoned => "RebuildAbandoned",
            Self::ResyncStarted => "ResyncStarted",
            Self::ResyncFinished => "ResyncFinished",
            Self::CheckStarted => "CheckStarted",
            Self::CheckFinished => "CheckFinished",
            Self::MismatchesFound => "MismatchesFound",
            Self::ClusterLost => "ClusterLost",
            Self::ClusterRegained => "ClusterRegained",
            Self::NodeLost => "NodeLost",
            Self::NodeJoined => "NodeJoined",
            Self::PeerDown => "PeerDown",
            Self::PeerUp => "PeerUp",
            Self::Takeover => "Takeover",
            Self::DegradedArray => "DegradedArray",
            Self::SyncRunning => "SyncRunning",
            Self::TestMessage => "TestMessage",
        }
    }
}

/// One change of one target, before it is given a volume and a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// What.
    pub kind: EventKind,
    /// The member it is about, if any.
    pub member: Option<usize>,
    /// One line for people.
    pub detail: String,
}

fn change(kind: EventKind, member: Option<usize>, detail: String) -> Change {
    Change {
        kind,
        member,
        detail,
    }
}

/// `member 1 /dev/mapper/m1 (253:1)`, or `member 1` when the table was not read.
fn member_words(st: &AmfStatus, i: usize) -> String {
    match st.member_devices.get(i) {
        Some(d) => format!("member {i} {}", d.label()),
        None => format!("member {i}"),
    }
}

fn health_words(st: &AmfStatus) -> String {
    format!("health {}, {}", st.health, st.state.as_str())
}

fn progress(st: &AmfStatus) -> String {
    let pct = if st.sync_total == 0 {
        100.0
    } else {
        st.sync_done as f64 * 100.0 / st.sync_total as f64
    };
    let speed = match &st.sync_speed {
        Some(v) => match v.eta_seconds {
            Some(e) => format!(
                ", {}/s, about {} left",
                crate::size::human(v.sectors_per_second),
                status::clock(e)
            ),
            None => format!(", {}/s", crate::size::human(v.sectors_per_second)),
        },
        None => String::new(),
    };
    format!(
        "{} {}/{} sectors ({pct:.1}%){speed}",
        st.sync_action, st.sync_done, st.sync_total
    )
}

fn is_check(action: &str) -> bool {
    action == "check" || action == "repair"
}

/// What changed from `old` to `new`, two statuses of the same target, in a fixed order:
/// table, members, sync actions, mismatches, cluster, replication.
pub fn diff(old: &AmfStatus, new: &AmfStatus) -> Vec<Change> {
    use EventKind::*;
    let mut out = Vec::new();
    let devs = |s: &AmfStatus| {
        s.member_devices
            .iter()
            .map(|d| d.dev.clone())
            .collect::<Vec<_>>()
    };
    let (od, nd) = (devs(old), devs(new));
    let same_count = old.devices == new.devices && old.members.len() == new.members.len();
    if !same_count || (!od.is_empty() && !nd.is_empty() && od != nd) {
        let show = |d: &[String], n: usize| {
            if d.is_empty() {
                format!("{n} members")
            } else {
                d.join(" ")
            }
        };
        out.push(change(
            TableChanged,
            None,
            format!(
                "table reloaded: {} {} -> {} {}; {}",
                old.level,
                show(&od, old.devices),
                new.level,
                show(&nd, new.devices),
                health_words(new)
            ),
        ));
    }
    if same_count {
        let newly_failed = |i: usize| {
            new.members[i] == MemberHealth::Failed && old.members[i] != MemberHealth::Failed
        };
        // The kernel gives a rebuild up when the group cannot serve its data any more: the
        // members it rebuilt then show `A` too (not in sync, but no longer rebuilt).
        let back = (0..new.members.len())
            .filter(|&i| {
                old.members[i] == MemberHealth::OutOfSync && new.members[i] == MemberHealth::InSync
            })
            .count();
        let dead = new
            .members
            .iter()
            .filter(|&&m| m == MemberHealth::Failed)
            .count();
        let others_failed = (0..new.members.len()).any(newly_failed)
            && status::tolerated(&new.level, new.devices).is_some_and(|t| dead + back > t);
        for i in 0..new.members.len() {
            use MemberHealth::*;
            let m = member_words(new, i);
            let h = health_words(new);
            match (old.members[i], new.members[i]) {
                (OutOfSync, Failed) => {
                    out.push(change(Fail, Some(i), format!("{m} failed; {h}")));
                    out.push(change(
                        RebuildAbandoned,
                        Some(i),
                        format!("rebuild of {m} abandoned: the member failed; {h}"),
                    ));
                }
                (InSync, Failed) => out.push(change(Fail, Some(i), format!("{m} failed; {h}"))),
                (InSync | Failed, OutOfSync) => out.push(change(
                    RebuildStarted,
                    Some(i),
                    format!("rebuild of {m} started; {h}"),
                )),
                (OutOfSync, InSync) if others_failed => out.push(change(
                    RebuildAbandoned,
                    Some(i),
                    format!("rebuild of {m} abandoned: too many members failed; {h}"),
                )),
                (OutOfSync, InSync) => out.push(change(
                    RebuildFinished,
                    Some(i),
                    format!("rebuild of {m} finished; {h}"),
                )),
                (Failed, InSync) => out.push(change(
                    MemberActive,
                    Some(i),
                    format!("{m} back in service without a rebuild; {h}"),
                )),
                _ => {}
            }
        }
    }
    let (oa, na) = (old.sync_action.as_str(), new.sync_action.as_str());
    if oa != na {
        if oa == "resync" {
            out.push(change(
                ResyncFinished,
                None,
                format!("resync finished; {}", health_words(new)),
            ));
        }
        if is_check(oa) {
            out.push(change(
                CheckFinished,
                None,
                format!(
                    "{oa} ended, {} mismatched sectors; {}",
                    new.mismatch_cnt,
                    health_words(new)
                ),
            ));
        }
        if na == "resync" {
            let regions = new.bitmap.map_or(String::new(), |b| {
                format!(" of {} regions", b.resync_pending)
            });
            out.push(change(
                ResyncStarted,
                None,
                format!("resync{regions} started; {}", health_words(new)),
            ));
        }
        if is_check(na) {
            out.push(change(
                CheckStarted,
                None,
                format!("{na} started; {}", health_words(new)),
            ));
        }
    } else if na == "resync" {
        if let (Some(ob), Some(nb)) = (old.bitmap, new.bitmap) {
            if nb.resync_pending > ob.resync_pending {
                out.push(change(
                    ResyncStarted,
                    None,
                    format!(
                        "{} more regions to resync ({} -> {}: a dead node's, taken over)",
                        nb.resync_pending - ob.resync_pending,
                        ob.resync_pending,
                        nb.resync_pending
                    ),
                ));
            }
        }
    }
    if new.mismatch_cnt > old.mismatch_cnt {
        out.push(change(
            MismatchesFound,
            None,
            format!(
                "mismatch_cnt {} -> {} ({} running or last)",
                old.mismatch_cnt,
                new.mismatch_cnt,
                if is_check(na) { na } else { "check or repair" }
            ),
        ));
    }
    if let (Some(oc), Some(nc)) = (old.cluster, new.cluster) {
        let words = format!(
            "cluster {}, members {} -> {}, deaths {} -> {}",
            nc.state.as_str(),
            oc.members,
            nc.members,
            oc.deaths,
            nc.deaths
        );
        if nc.state == ClusterState::Lost && oc.state != ClusterState::Lost {
            out.push(change(
                ClusterLost,
                None,
                format!("lost the cluster: {words}"),
            ));
        }
        if oc.state == ClusterState::Lost && nc.state != ClusterState::Lost {
            out.push(change(
                ClusterRegained,
                None,
                format!("cluster regained: {words}"),
            ));
        }
        if nc.members < oc.members || nc.deaths > oc.deaths {
            out.push(change(NodeLost, None, words.clone()));
        }
        if nc.members > oc.members {
            out.push(change(NodeJoined, None, words));
        }
    }
    if let (Some(or), Some(nr)) = (old.replication, new.replication) {
        let words = format!("peers up {} -> {} of {}", or.up, nr.up, nr.peers);
        if nr.up < or.up {
            out.push(change(PeerDown, None, words));
        } else if nr.up > or.up {
            out.push(change(PeerUp, None, words));
        }
        if nr.replayed > or.replayed
            || (nr.last_takeover_ms != or.last_takeover_ms && nr.last_takeover_ms != 0)
        {
            out.push(change(
                Takeover,
                None,
                format!(
                    "completed a dead peer's operations: replayed {} -> {}, last takeover {} ms",
                    or.replayed, nr.replayed, nr.last_takeover_ms
                ),
            ));
        }
    }
    out
}

/// What is notable about a target now (the monitor's start, `--oneshot`).
pub fn notable(st: &AmfStatus) -> Vec<Change> {
    use EventKind::*;
    let mut out = Vec::new();
    let failed: Vec<usize> = (0..st.members.len())
        .filter(|&i| st.members[i] == MemberHealth::Failed)
        .collect();
    if !failed.is_empty() {
        let names: Vec<String> = failed.iter().map(|&i| member_words(st, i)).collect();
        out.push(change(
            DegradedArray,
            None,
            format!("{}: failed {}", health_words(st), names.join(", ")),
        ));
    }
    if st.sync_action != "idle" {
        let rebuilt: Vec<usize> = (0..st.members.len())
            .filter(|&i| st.members[i] == MemberHealth::OutOfSync)
            .collect();
        let member = match rebuilt.as_slice() {
            [one] => Some(*one),
            _ => None,
        };
        let who: Vec<String> = rebuilt.iter().map(|&i| member_words(st, i)).collect();
        let who = if who.is_empty() {
            String::new()
        } else {
            format!(", rebuilding {}", who.join(", "))
        };
        out.push(change(
            SyncRunning,
            member,
            format!("{}{who}; {}", progress(st), health_words(st)),
        ));
    }
    if st.mismatch_cnt > 0 {
        out.push(change(
            MismatchesFound,
            None,
            format!(
                "mismatch_cnt {} (running or last check or repair)",
                st.mismatch_cnt
            ),
        ));
    }
    if let Some(c) = st.cluster {
        if c.state == ClusterState::Lost {
            out.push(change(
                ClusterLost,
                None,
                format!("cluster lost, {} members, {} deaths", c.members, c.deaths),
            ));
        }
    }
    if let Some(r) = st.replication {
        if r.up < r.peers {
            out.push(change(
                PeerDown,
                None,
                format!("peers up {} of {}", r.up, r.peers),
            ));
        }
    }
    out
}

/// A volume as read at one moment: its event number (when read through the ioctls) and
/// its `amf` targets, with their member devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolSnap {
    /// The mapped device's name.
    pub name: String,
    /// Its device-mapper event number; `None` when read through `dmsetup`.
    pub event_nr: Option<u32>,
    /// Its `amf` targets, in table order.
    pub targets: Vec<AmfStatus>,
}

/// One report: a change of one volume.
#[derive(Debug, Clone)]
pub struct Event {
    /// When it was seen.
    pub time: SystemTime,
    /// What.
    pub kind: EventKind,
    /// The volume's name.
    pub volume: String,
    /// The member it is about, if any.
    pub member: Option<usize>,
    /// That member's device, if the table was read.
    pub device: Option<MemberDevice>,
    /// One line for people.
    pub detail: String,
    /// The volume's event number after the change, when known.
    pub event_nr: Option<u32>,
    /// The target's status after the change (`None`: the volume is gone).
    pub status: Option<AmfStatus>,
}

impl Event {
    fn of(snap: &VolSnap, st: Option<&AmfStatus>, c: Change, time: SystemTime) -> Self {
        let device = c
            .member
            .and_then(|i| st.and_then(|s| s.member_devices.get(i)).cloned());
        Event {
            time,
            kind: c.kind,
            volume: snap.name.clone(),
            member: c.member,
            device,
            detail: c.detail,
            event_nr: snap.event_nr,
            status: st.cloned(),
        }
    }

    /// The member's device as `--program` gets it: its `/dev` path, else `major:minor`
    /// (`-` for a missing member), else `member<i>` when the table was not read.
    pub fn member_arg(&self) -> Option<String> {
        let i = self.member?;
        Some(match &self.device {
            Some(d) => d.short().to_string(),
            None => format!("member{i}"),
        })
    }

    /// The human line: `<time> <Event> <volume>[ <member device>]: <detail>`.
    pub fn line(&self) -> String {
        let dev = self.member_arg().map_or(String::new(), |d| format!(" {d}"));
        format!(
            "{} {} {}{dev}: {}",
            rfc3339(self.time),
            self.kind.name(),
            self.volume,
            self.detail
        )
    }

    /// The JSON object of `--json` (one line).
    pub fn json(&self) -> serde_json::Value {
        let mut j = serde_json::json!({
            "time": rfc3339(self.time),
            "event": self.kind.name(),
            "volume": self.volume,
            "detail": self.detail,
            "event_nr": self.event_nr,
        });
        if let Some(i) = self.member {
            j["member"] = i.into();
            if let Some(d) = &self.device {
                j["device"] = d.short().into();
                j["devno"] = d.dev.clone().into();
            }
        }
        if let Some(s) = &self.status {
            j["status"] = serde_json::to_value(s).unwrap_or(serde_json::Value::Null);
        }
        j
    }

    /// The `--program` call: `<program> <event> <volume> [<member device>]`, with the
    /// details in `AMF_*` environment variables, no standard input, its standard output to
    /// the monitor's standard error.
    pub fn program_command(&self, program: &Path) -> Command {
        let mut c = Command::new(program);
        c.arg(self.kind.name()).arg(&self.volume);
        if let Some(d) = self.member_arg() {
            c.arg(d);
        }
        for (k, v) in self.env() {
            c.env(k, v);
        }
        // Its output must not mix with the events (JSON lines on standard output).
        c.stdin(Stdio::null()).stdout(io::stderr());
        c
    }

    /// The `AMF_*` variables of the `--program` call.
    pub fn env(&self) -> Vec<(&'static str, OsString)> {
        let mut e: Vec<(&'static str, OsString)> = vec![
            ("AMF_EVENT", self.kind.name().into()),
            ("AMF_VOLUME", self.volume.clone().into()),
            ("AMF_DETAIL", self.detail.clone().into()),
            ("AMF_TIME", rfc3339(self.time).into()),
            ("AMF_JSON", self.json().to_string().into()),
        ];
        if let Some(n) = self.event_nr {
            e.push(("AMF_EVENT_NR", n.to_string().into()));
        }
        if let Some(i) = self.member {
            e.push(("AMF_MEMBER", i.to_string().into()));
        }
        if let Some(d) = &self.device {
            e.push(("AMF_MEMBER_DEVNO", d.dev.clone().into()));
            if let Some(p) = &d.path {
                e.push(("AMF_MEMBER_DEVICE", p.clone().into()));
            }
        }
        if let Some(s) = &self.status {
            e.push(("AMF_LEVEL", s.level.clone().into()));
            e.push(("AMF_HEALTH", s.health.clone().into()));
            e.push(("AMF_STATE", s.state.as_str().into()));
            e.push(("AMF_SYNC_ACTION", s.sync_action.clone().into()));
            e.push(("AMF_SYNC_DONE", s.sync_done.to_string().into()));
            e.push(("AMF_SYNC_TOTAL", s.sync_total.to_string().into()));
            e.push(("AMF_MISMATCH_CNT", s.mismatch_cnt.to_string().into()));
        }
        e
    }
}

/// `2026-12-07T17:30:05Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86400, secs % 86400);
    // Howard Hinnant's days-to-civil.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Every change between two snapshots of one volume.
pub fn diff_volume(old: &VolSnap, new: &VolSnap, time: SystemTime) -> Vec<Event> {
    let starts = |s: &VolSnap| s.targets.iter().map(|t| t.start).collect::<Vec<_>>();
    if starts(old) != starts(new) {
        let st = new.targets.first();
        return vec![Event::of(
            new,
            st,
            change(
                EventKind::TableChanged,
                None,
                format!(
                    "table reloaded: {} amf targets -> {}",
                    old.targets.len(),
                    new.targets.len()
                ),
            ),
            time,
        )];
    }
    old.targets
        .iter()
        .zip(&new.targets)
        .flat_map(|(o, n)| {
            diff(o, n)
                .into_iter()
                .map(|c| Event::of(new, Some(n), c, time))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// What is notable about a volume now.
pub fn notable_volume(snap: &VolSnap, time: SystemTime) -> Vec<Event> {
    snap.targets
        .iter()
        .flat_map(|t| {
            notable(t)
                .into_iter()
                .map(|c| Event::of(snap, Some(t), c, time))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// One event about the whole volume (`NewArray`, `TestMessage`, `DeviceDisappeared`).
fn volume_event(snap: &VolSnap, kind: EventKind, detail: String, time: SystemTime) -> Event {
    let st = snap.targets.first();
    Event::of(snap, st, change(kind, None, detail), time)
}

fn describe(snap: &VolSnap) -> String {
    match snap.targets.first() {
        Some(s) => format!(
            "amf {}, {} members, {}",
            s.level,
            s.devices,
            health_words(s)
        ),
        None => "no amf target".to_string(),
    }
}

/// Reads volumes: through the device-mapper ioctls, or by running `dmsetup`.
pub trait Source {
    /// Every volume with an `amf` target now.
    fn scan(&mut self) -> anyhow::Result<Vec<VolSnap>>;
    /// One volume now; `None` when it is gone or has no `amf` target.
    fn read(&mut self, name: &str) -> anyhow::Result<Option<VolSnap>>;
}

/// The `amf` targets of a device's INFO status and table lines.
fn targets_of(status: &DevStatus, table: &DevStatus, sysfs: &Path) -> Vec<AmfStatus> {
    status
        .targets
        .iter()
        .filter(|t| t.target_type == "amf")
        .filter_map(|t| {
            let words: Vec<&str> = t.params.split_whitespace().collect();
            let mut st = status::parse_info(t.start, t.length, &words).ok()?;
            if let Some(devs) = table
                .targets
                .iter()
                .find(|x| x.start == t.start && x.target_type == "amf")
                .and_then(|x| devnames::table_members(&x.params))
            {
                st.member_devices = devnames::resolve(sysfs, &devs);
            }
            Some(st)
        })
        .collect()
}

/// Volumes read with `DM_LIST_DEVICES` and `DM_TABLE_STATUS`.
pub struct IoctlSource {
    /// The control node, shared with the waiting threads.
    pub control: Arc<Control>,
    /// Where sysfs is.
    pub sysfs: PathBuf,
}

impl Source for IoctlSource {
    fn scan(&mut self) -> anyhow::Result<Vec<VolSnap>> {
        let mut out = Vec::new();
        for (name, _) in self.control.list_devices()? {
            if let Some(s) = self.read(&name)? {
                out.push(s);
            }
        }
        Ok(out)
    }

    fn read(&mut self, name: &str) -> anyhow::Result<Option<VolSnap>> {
        let gone = |e: &io::Error| e.raw_os_error() == Some(libc::ENXIO);
        // The table first: only an `amf` device's status is read (the status of some other
        // targets does work: a thin pool's commits its metadata).
        let table = match self.control.table_status(name, true) {
            Ok(s) => s,
            Err(e) if gone(&e) => return Ok(None),
            Err(e) => return Err(anyhow::anyhow!("{name}: table: {e}")),
        };
        if !table.targets.iter().any(|t| t.target_type == "amf") {
            return Ok(None);
        }
        // The event number comes with the status, read before it: a change after it is
        // seen by the next wait.
        let status = match self.control.table_status(name, false) {
            Ok(s) => s,
            Err(e) if gone(&e) => return Ok(None),
            Err(e) => return Err(anyhow::anyhow!("{name}: status: {e}")),
        };
        let mut targets = targets_of(&status, &table, &self.sysfs);
        for t in &mut targets {
            t.name = Some(name.to_string());
        }
        Ok((!targets.is_empty()).then(|| VolSnap {
            name: name.to_string(),
            event_nr: Some(status.event_nr),
            targets,
        }))
    }
}

/// Volumes read by running `dmsetup status --target amf` and `dmsetup table --target amf`.
pub struct PollSource {
    /// Where sysfs is.
    pub sysfs: PathBuf,
}

impl Source for PollSource {
    fn scan(&mut self) -> anyhow::Result<Vec<VolSnap>> {
        let text = |args: Vec<String>| -> anyhow::Result<String> {
            Ok(String::from_utf8_lossy(&dmsetup::run(&args)?.stdout).into_owned())
        };
        let tables = text(vec![
            "table".to_string(),
            "--target".to_string(),
            "amf".to_string(),
        ])?;
        let statuses = text(dmsetup::status_args(None))?;
        let tables = devnames::parse_tables(&tables);
        let mut vols: BTreeMap<String, VolSnap> = BTreeMap::new();
        for mut st in status::parse_status(&statuses)? {
            let Some(name) = st.name.clone() else {
                continue;
            };
            if let Some(t) = tables
                .iter()
                .find(|t| t.name.as_deref() == Some(name.as_str()) && t.start == st.start)
            {
                st.member_devices = devnames::resolve(&self.sysfs, &t.members);
            }
            vols.entry(name.clone())
                .or_insert_with(|| VolSnap {
                    name,
                    event_nr: None,
                    targets: Vec::new(),
                })
                .targets
                .push(st);
        }
        Ok(vols.into_values().collect())
    }

    fn read(&mut self, name: &str) -> anyhow::Result<Option<VolSnap>> {
        Ok(self.scan()?.into_iter().find(|v| v.name == name))
    }
}

/// How `amfctl monitor` runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Only these volumes (all `amf` volumes when empty).
    pub volumes: Vec<String>,
    /// Report what is notable now and exit.
    pub oneshot: bool,
    /// JSON lines instead of text lines.
    pub json: bool,
    /// Run this for each event.
    pub program: Option<PathBuf>,
    /// How often to list the devices and read every status.
    pub interval: Duration,
    /// Exit after this many events.
    pub count: Option<u64>,
    /// Read `dmsetup` every interval instead of waiting for events.
    pub poll: bool,
    /// A `TestMessage` for each volume at start.
    pub test: bool,
    /// Where sysfs is mounted.
    pub sysfs: PathBuf,
}

/// Prints events and runs the program.
struct Reporter<'a> {
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
    json: bool,
    program: Option<PathBuf>,
    left: Option<u64>,
}

impl Reporter<'_> {
    /// Reports `e`; `Ok(true)` once `--count` events were reported.
    fn report(&mut self, e: &Event) -> io::Result<bool> {
        if self.left == Some(0) {
            return Ok(true);
        }
        if self.json {
            writeln!(self.out, "{}", e.json())?;
        } else {
            writeln!(self.out, "{}", e.line())?;
        }
        self.out.flush()?;
        if let Some(p) = &self.program {
            match e.program_command(p).status() {
                Ok(s) if s.success() => {}
                Ok(s) => {
                    let _ = writeln!(
                        self.err,
                        "amfctl monitor: {} {} {}: {s}",
                        p.display(),
                        e.kind.name(),
                        e.volume
                    );
                }
                Err(err) => {
                    let _ = writeln!(
                        self.err,
                        "amfctl monitor: cannot run {}: {err}",
                        p.display()
                    );
                }
            }
        }
        if let Some(n) = self.left.as_mut() {
            *n -= 1;
            return Ok(*n == 0);
        }
        Ok(false)
    }

    fn report_all(&mut self, events: &[Event]) -> io::Result<bool> {
        for e in events {
            if self.report(e)? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// What a waiting thread tells the main thread.
enum Msg {
    /// The volume's event number moved.
    Event(String),
    /// The wait failed (the volume is gone, or renamed): the thread ended.
    Ended(String),
}

fn spawn_waiter(control: Arc<Control>, name: String, mut event_nr: u32, tx: mpsc::Sender<Msg>) {
    let spawned = std::thread::Builder::new()
        .name(format!("wait-{name}"))
        .spawn(move || loop {
            match control.wait(&name, event_nr) {
                Ok(n) => {
                    event_nr = n;
                    if tx.send(Msg::Event(name.clone())).is_err() {
                        return;
                    }
                }
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(_) => {
                    let _ = tx.send(Msg::Ended(name));
                    return;
                }
            }
        });
    // No thread (out of resources): the periodic scan still reads the volume.
    drop(spawned);
}

/// Runs the monitor until `--count` events were reported or, with `--oneshot`, once.
pub fn run(opts: &Options, out: &mut dyn Write, err: &mut dyn Write) -> anyhow::Result<()> {
    let control = if opts.poll {
        None
    } else {
        match Control::open() {
            Ok(c) => Some(Arc::new(c)),
            Err(e) => {
                writeln!(
                    err,
                    "amfctl monitor: no device-mapper ioctls ({e}); reading dmsetup status every {:.1} s",
                    opts.interval.as_secs_f64()
                )?;
                None
            }
        }
    };
    let mut source: Box<dyn Source> = match &control {
        Some(c) => Box::new(IoctlSource {
            control: c.clone(),
            sysfs: opts.sysfs.clone(),
        }),
        None => Box::new(PollSource {
            sysfs: opts.sysfs.clone(),
        }),
    };
    let wanted = |name: &str| opts.volumes.is_empty() || opts.volumes.iter().any(|v| v == name);
    let mut rep = Reporter {
        out,
        err,
        json: opts.json,
        program: opts.program.clone(),
        left: opts.count,
    };
    let mut vols: BTreeMap<String, (VolSnap, bool)> = BTreeMap::new();
    let now = SystemTime::now();
    let first: Vec<VolSnap> = source
        .scan()?
        .into_iter()
        .filter(|v| wanted(&v.name))
        .collect();
    for v in &opts.volumes {
        if !first.iter().any(|s| &s.name == v) {
            let what = if opts.oneshot {
                "no amf volume"
            } else {
                "no amf volume yet; watching for it"
            };
            writeln!(rep.err, "amfctl monitor: {v}: {what}")?;
        }
    }
    for snap in first {
        let mut events = Vec::new();
        if opts.test {
            events.push(volume_event(
                &snap,
                EventKind::TestMessage,
                format!("test message: {}", describe(&snap)),
                now,
            ));
        }
        events.extend(notable_volume(&snap, now));
        if rep.report_all(&events)? {
            return Ok(());
        }
        vols.insert(snap.name.clone(), (snap, false));
    }
    if opts.oneshot {
        return Ok(());
    }
    let (tx, rx) = mpsc::channel::<Msg>();
    let mut next_scan = Instant::now() + opts.interval;
    // Waiting threads for the volumes without one: at the start and after each scan (a
    // wait that keeps failing is tried again once an interval, not in a loop).
    let spawn_missing = |vols: &mut BTreeMap<String, (VolSnap, bool)>| {
        if let Some(c) = &control {
            for (name, (snap, waiting)) in vols.iter_mut() {
                if let (false, Some(n)) = (*waiting, snap.event_nr) {
                    spawn_waiter(c.clone(), name.clone(), n, tx.clone());
                    *waiting = true;
                }
            }
        }
    };
    spawn_missing(&mut vols);
    loop {
        let timeout = next_scan.saturating_duration_since(Instant::now());
        let msg = if control.is_some() {
            match rx.recv_timeout(timeout) {
                Ok(m) => Some(m),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => None,
            }
        } else {
            std::thread::sleep(timeout);
            None
        };
        let now = SystemTime::now();
        let mut events = Vec::new();
        let woke = match msg {
            Some(Msg::Event(n)) => Some((n, false)),
            Some(Msg::Ended(n)) => Some((n, true)),
            None => None,
        };
        match woke {
            Some((name, ended)) if vols.contains_key(&name) => {
                if ended {
                    // Its thread is gone: the next scan starts another.
                    if let Some((_, waiting)) = vols.get_mut(&name) {
                        *waiting = false;
                    }
                }
                let new = match source.read(&name) {
                    Ok(n) => n,
                    Err(e) => {
                        // Read again at the next event or scan.
                        writeln!(rep.err, "amfctl monitor: {e:#}")?;
                        continue;
                    }
                };
                let Some((old, _)) = vols.get_mut(&name) else {
                    continue;
                };
                match new {
                    Some(new) => {
                        events.extend(diff_volume(old, &new, now));
                        *old = new;
                    }
                    None => {
                        events.push(Event {
                            status: None,
                            ..volume_event(
                                old,
                                EventKind::DeviceDisappeared,
                                "the volume is gone".into(),
                                now,
                            )
                        });
                        vols.remove(&name);
                    }
                }
            }
            Some(_) => {}
            None => {
                next_scan = Instant::now() + opts.interval;
                let scanned: Vec<VolSnap> = match source.scan() {
                    Ok(v) => v.into_iter().filter(|v| wanted(&v.name)).collect(),
                    Err(e) => {
                        // A passing failure (dmsetup): the next scan tries again.
                        writeln!(rep.err, "amfctl monitor: {e:#}")?;
                        continue;
                    }
                };
                let gone: Vec<String> = vols
                    .keys()
                    .filter(|k| !scanned.iter().any(|s| &s.name == *k))
                    .cloned()
                    .collect();
                for name in gone {
                    if let Some((old, _)) = vols.remove(&name) {
                        events.push(Event {
                            status: None,
                            ..volume_event(
                                &old,
                                EventKind::DeviceDisappeared,
                                "the volume is gone".into(),
                                now,
                            )
                        });
                    }
                }
                for new in scanned {
                    match vols.get_mut(&new.name) {
                        Some((old, _)) => {
                            events.extend(diff_volume(old, &new, now));
                            *old = new;
                        }
                        None => {
                            events.push(volume_event(
                                &new,
                                EventKind::NewArray,
                                format!("new volume: {}", describe(&new)),
                                now,
                            ));
                            events.extend(notable_volume(&new, now));
                            vols.insert(new.name.clone(), (new, false));
                        }
                    }
                }
                spawn_missing(&mut vols);
            }
        }
        if rep.report_all(&events)? {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::parse_status;

    fn st(line: &str) -> AmfStatus {
        parse_status(line).unwrap().remove(0)
    }

    /// `line` with members m0.. as /dev/mapper/m<i> (253:<i>).
    fn named(line: &str) -> AmfStatus {
        let mut s = st(line);
        s.member_devices = (0..s.devices)
            .map(|i| MemberDevice {
                index: i,
                dev: format!("253:{i}"),
                path: Some(format!("/dev/mapper/m{i}")),
            })
            .collect();
        s
    }

    fn kinds(c: &[Change]) -> Vec<(&'static str, Option<usize>)> {
        c.iter().map(|c| (c.kind.name(), c.member)).collect()
    }

    const R5: &str = "0 12288 amf raid5 4 AAAA 12288/12288 idle 0";

    #[test]
    fn no_change_no_event() {
        assert_eq!(diff(&named(R5), &named(R5)), vec![]);
        let c = "0 16 amf raid5 2 AA 16/16 idle 0 cluster ready 3 1 2 3 4 0 \
                 replication 2 2 5 0 0 0 0 0 0 bitmap 8 1 0 0";
        // Counters that move on every write raise nothing.
        let c2 = c
            .replace("ready 3 1 2 3 4 0", "ready 3 9 9 9 9 0")
            .replace("2 2 5", "2 2 50");
        assert_eq!(diff(&st(c), &st(&c2)), vec![]);
    }

    #[test]
    fn member_failure_names_the_device() {
        let c = diff(&named(R5), &named(&R5.replace("AAAA", "ADAA")));
        assert_eq!(kinds(&c), [("Fail", Some(1))]);
        assert_eq!(
            c[0].detail,
            "member 1 /dev/mapper/m1 (253:1) failed; health ADAA, degraded"
        );
        // Two at once, in member order; without the table only the index.
        let c = diff(&st(R5), &st(&R5.replace("AAAA", "DADA")));
        assert_eq!(kinds(&c), [("Fail", Some(0)), ("Fail", Some(2))]);
        assert_eq!(c[1].detail, "member 2 failed; health DADA, failed");
    }

    #[test]
    fn rebuild_start_end_abandon() {
        let failed = named(&R5.replace("AAAA", "AAAD"));
        let running = named("0 12288 amf raid5 4 AAAa 384/12288 recover 0");
        let c = diff(&failed, &running);
        assert_eq!(kinds(&c), [("RebuildStarted", Some(3))]);
        assert!(c[0]
            .detail
            .starts_with("rebuild of member 3 /dev/mapper/m3 (253:3) started"));
        let c = diff(&running, &named(R5));
        assert_eq!(kinds(&c), [("RebuildFinished", Some(3))]);
        assert_eq!(
            c[0].detail,
            "rebuild of member 3 /dev/mapper/m3 (253:3) finished; health AAAA, optimal"
        );
        // The member being rebuilt fails.
        let c = diff(&running, &named(&R5.replace("AAAA", "AAAD")));
        assert_eq!(
            kinds(&c),
            [("Fail", Some(3)), ("RebuildAbandoned", Some(3))]
        );
        // Another member fails and the group cannot go on: abandoned, not finished.
        let c = diff(&running, &named(&R5.replace("AAAA", "DAAA")));
        assert_eq!(
            kinds(&c),
            [("Fail", Some(0)), ("RebuildAbandoned", Some(3))]
        );
        // raid6 goes on without a second member: the rebuild finished.
        let r6 = |h: &str, tail: &str| named(&format!("0 12288 amf raid6 5 {h} {tail}"));
        let c = diff(
            &r6("AAAAa", "384/12288 recover 0"),
            &r6("DAAAA", "12288/12288 idle 0"),
        );
        assert_eq!(kinds(&c), [("Fail", Some(0)), ("RebuildFinished", Some(4))]);
        // Started and ended between two reads: nothing to see but the member back.
        assert_eq!(
            kinds(&diff(&failed, &named(R5))),
            [("MemberActive", Some(3))]
        );
    }

    #[test]
    fn resync_check_and_mismatches() {
        let bm = |s: &str| st(&format!("{s} bitmap 16 4 4 0"));
        let c = diff(&st(R5), &bm("0 12288 amf raid5 4 AAAA 9216/12288 resync 0"));
        assert_eq!(kinds(&c), [("ResyncStarted", None)]);
        assert!(
            c[0].detail.starts_with("resync of 4 regions started"),
            "{c:?}"
        );
        let c = diff(&bm("0 12288 amf raid5 4 AAAA 9216/12288 resync 0"), &st(R5));
        assert_eq!(kinds(&c), [("ResyncFinished", None)]);
        // A dead node's regions added to a running resync.
        let c = diff(
            &st("0 12288 amf raid5 4 AAAA 9216/12288 resync 0 bitmap 16 4 4 0"),
            &st("0 12288 amf raid5 4 AAAA 6144/12288 resync 0 bitmap 16 8 8 0"),
        );
        assert_eq!(kinds(&c), [("ResyncStarted", None)]);
        assert!(c[0].detail.starts_with("4 more regions"), "{c:?}");

        let checking = st("0 12288 amf raid5 4 AAAA 384/12288 check 0");
        assert_eq!(kinds(&diff(&st(R5), &checking)), [("CheckStarted", None)]);
        let c = diff(
            &checking,
            &st("0 12288 amf raid5 4 AAAA 12288/12288 idle 16"),
        );
        assert_eq!(
            kinds(&c),
            [("CheckFinished", None), ("MismatchesFound", None)]
        );
        assert!(
            c[0].detail
                .starts_with("check ended, 16 mismatched sectors"),
            "{c:?}"
        );
        assert_eq!(
            c[1].detail,
            "mismatch_cnt 0 -> 16 (check or repair running or last)"
        );
        // Counted while it runs; a reload's reset to 0 is no event.
        let c = diff(
            &checking,
            &st("0 12288 amf raid5 4 AAAA 768/12288 repair 8"),
        );
        assert_eq!(
            kinds(&c),
            [
                ("CheckFinished", None),
                ("CheckStarted", None),
                ("MismatchesFound", None)
            ]
        );
        assert_eq!(
            diff(&st("0 12288 amf raid5 4 AAAA 12288/12288 idle 16"), &st(R5)),
            vec![]
        );
    }

    #[test]
    fn cluster_and_replication() {
        let base = "0 16 amf raid5 2 AA 16/16 idle 0 cluster";
        let c = |part: &str| st(&format!("{base} {part}"));
        let k = |a: &str, b: &str| {
            diff(&c(a), &c(b))
                .iter()
                .map(|c| c.kind.name())
                .collect::<Vec<_>>()
        };
        assert_eq!(k("ready 3 0 0 0 0 0", "ready 2 0 0 0 0 1"), ["NodeLost"]);
        // Recovering on the way: the death counts.
        assert_eq!(
            k("ready 3 0 0 0 0 0", "recovering 3 0 0 0 0 1"),
            ["NodeLost"]
        );
        assert_eq!(k("ready 2 0 0 0 0 1", "ready 3 0 0 0 0 1"), ["NodeJoined"]);
        assert_eq!(k("ready 3 0 0 0 0 0", "lost 3 0 0 0 0 0"), ["ClusterLost"]);
        assert_eq!(
            k("lost 2 0 0 0 0 1", "ready 3 0 0 0 0 0"),
            ["ClusterRegained", "NodeJoined"]
        );
        let d = diff(&c("ready 3 0 0 0 0 0"), &c("ready 2 0 0 0 0 1"));
        assert_eq!(d[0].detail, "cluster ready, members 3 -> 2, deaths 0 -> 1");

        let r = |up: u64, replayed: u64, ms: u64| {
            c(&format!(
                "ready 3 0 0 0 0 0 replication {up} 2 10 0 0 0 {replayed} {ms} 0"
            ))
        };
        assert_eq!(kinds(&diff(&r(2, 0, 0), &r(1, 0, 0))), [("PeerDown", None)]);
        assert_eq!(
            diff(&r(2, 0, 0), &r(1, 0, 0))[0].detail,
            "peers up 2 -> 1 of 2"
        );
        assert_eq!(kinds(&diff(&r(1, 0, 0), &r(2, 0, 0))), [("PeerUp", None)]);
        let d = diff(&r(2, 0, 0), &r(1, 17, 812));
        assert_eq!(kinds(&d), [("PeerDown", None), ("Takeover", None)]);
        assert!(
            d[1].detail
                .contains("replayed 0 -> 17, last takeover 812 ms"),
            "{d:?}"
        );
    }

    #[test]
    fn reloaded_tables() {
        let a = named(R5);
        let mut b = named(R5);
        b.member_devices[2].dev = "8:48".into();
        b.member_devices[2].path = Some("/dev/sdd".into());
        let c = diff(&a, &b);
        assert_eq!(kinds(&c), [("TableChanged", None)]);
        assert!(
            c[0].detail.starts_with(
                "table reloaded: raid5 253:0 253:1 253:2 253:3 -> raid5 253:0 253:1 8:48 253:3"
            ),
            "{c:?}"
        );
        // Another member count: no member diffs.
        let c = diff(&a, &named("0 12288 amf raid5 3 ADA 12288/12288 idle 0"));
        assert_eq!(kinds(&c), [("TableChanged", None)]);
    }

    #[test]
    fn notable_now() {
        let s = named("0 12288 amf raid5 4 ADAa 384/12288 recover 8");
        let c = notable(&s);
        assert_eq!(
            kinds(&c),
            [
                ("DegradedArray", None),
                ("SyncRunning", Some(3)),
                ("MismatchesFound", None)
            ]
        );
        assert_eq!(
            c[0].detail,
            "health ADAa, failed: failed member 1 /dev/mapper/m1 (253:1)"
        );
        assert!(c[1]
            .detail
            .starts_with("recover 384/12288 sectors (3.1%), rebuilding member 3"));
        assert_eq!(notable(&named(R5)), vec![]);
        // The kernel's speed, when the status has it.
        let c = notable(&named(
            "0 12288 amf raid5 4 AAAa 3072/12288 recover 0 sync_speed 1024 0 0",
        ));
        assert_eq!(
            c[0].detail,
            "recover 3072/12288 sectors (25.0%), 1.00 MiB/s, about 0:05 left, rebuilding member 3 \
             /dev/mapper/m3 (253:3); health AAAa, resyncing"
        );
        let s = st("0 16 amf raid5 2 AA 16/16 idle 0 cluster lost 1 0 0 0 0 2 \
                    replication 0 2 0 0 0 0 0 0 0");
        assert_eq!(
            kinds(&notable(&s)),
            [("ClusterLost", None), ("PeerDown", None)]
        );
    }

    fn snap(name: &str, line: &str, nr: u32) -> VolSnap {
        VolSnap {
            name: name.into(),
            event_nr: Some(nr),
            targets: vec![named(line)],
        }
    }

    fn at() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_796_667_005) // 2026-12-07T18:10:05Z
    }

    #[test]
    fn time_format() {
        assert_eq!(rfc3339(at()), "2026-12-07T18:10:05Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
    }

    #[test]
    fn lines_and_json() {
        let e = diff_volume(
            &snap("r5", R5, 4),
            &snap("r5", &R5.replace("AAAA", "ADAA"), 5),
            at(),
        );
        assert_eq!(e.len(), 1);
        assert_eq!(
            e[0].line(),
            "2026-12-07T18:10:05Z Fail r5 /dev/mapper/m1: member 1 /dev/mapper/m1 (253:1) \
             failed; health ADAA, degraded"
        );
        let j: serde_json::Value = serde_json::from_str(&e[0].json().to_string()).unwrap();
        assert_eq!(j["time"], "2026-12-07T18:10:05Z");
        assert_eq!(j["event"], "Fail");
        assert_eq!(j["volume"], "r5");
        assert_eq!(j["member"], 1);
        assert_eq!(j["device"], "/dev/mapper/m1");
        assert_eq!(j["devno"], "253:1");
        assert_eq!(j["event_nr"], 5);
        assert_eq!(j["status"]["health"], "ADAA");
        assert_eq!(j["status"]["state"], "degraded");
        assert_eq!(j["status"]["member_devices"][1]["path"], "/dev/mapper/m1");
        // One line, whatever the detail holds.
        assert!(!e[0].json().to_string().contains('\n'));

        // Whole-volume events: no member fields; a gone volume has no status; polled
        // volumes have no event number.
        let mut old = snap("r5", R5, 4);
        old.event_nr = None;
        let gone = Event {
            status: None,
            ..volume_event(
                &old,
                EventKind::DeviceDisappeared,
                "the volume is gone".into(),
                at(),
            )
        };
        let j = gone.json();
        assert_eq!(j["event"], "DeviceDisappeared");
        assert!(
            j.get("member").is_none() && j.get("status").is_none(),
            "{j}"
        );
        assert_eq!(j["event_nr"], serde_json::Value::Null);
        assert_eq!(
            gone.line(),
            "2026-12-07T18:10:05Z DeviceDisappeared r5: the volume is gone"
        );
    }

    #[test]
    fn multi_target_and_reloaded_volumes() {
        let two = |a: &str, b: &str| VolSnap {
            name: "v".into(),
            event_nr: Some(1),
            targets: vec![st(a), st(&b.replacen("0 ", "16 ", 1))],
        };
        let a = "0 16 amf raid1 2 AA 16/16 idle 0";
        let e = diff_volume(&two(a, a), &two(a, &a.replace("AA", "AD")), at());
        assert_eq!(e.len(), 1);
        assert_eq!((e[0].kind, e[0].member), (EventKind::Fail, Some(1)));
        assert_eq!(e[0].status.as_ref().unwrap().start, 16);
        let one = VolSnap {
            targets: vec![st(a)],
            ..two(a, a)
        };
        let e = diff_volume(&two(a, a), &one, at());
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].kind, EventKind::TableChanged);
        assert_eq!(e[0].detail, "table reloaded: 2 amf targets -> 1");
    }

    fn args(c: &Command) -> Vec<String> {
        c.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    fn env(c: &Command) -> BTreeMap<String, String> {
        c.get_envs()
            .filter_map(|(k, v)| {
                Some((
                    k.to_string_lossy().into_owned(),
                    v?.to_string_lossy().into_owned(),
                ))
            })
            .collect()
    }

    #[test]
    fn program_arguments_and_environment() {
        let e = diff_volume(
            &snap("r5", "0 12288 amf raid5 4 AAAa 384/12288 recover 0", 7),
            &snap("r5", R5, 8),
            at(),
        );
        let c = e[0].program_command(Path::new("/tmp/x.sh"));
        assert_eq!(c.get_program(), "/tmp/x.sh");
        assert_eq!(args(&c), ["RebuildFinished", "r5", "/dev/mapper/m3"]);
        let vars = env(&c);
        assert_eq!(vars["AMF_EVENT"], "RebuildFinished");
        assert_eq!(vars["AMF_VOLUME"], "r5");
        assert_eq!(vars["AMF_MEMBER"], "3");
        assert_eq!(vars["AMF_MEMBER_DEVICE"], "/dev/mapper/m3");
        assert_eq!(vars["AMF_MEMBER_DEVNO"], "253:3");
        assert_eq!(vars["AMF_EVENT_NR"], "8");
        assert_eq!(vars["AMF_HEALTH"], "AAAA");
        assert_eq!(vars["AMF_STATE"], "optimal");
        assert_eq!(vars["AMF_LEVEL"], "raid5");
        assert_eq!(vars["AMF_SYNC_ACTION"], "idle");
        assert_eq!(vars["AMF_SYNC_DONE"], "12288");
        assert_eq!(vars["AMF_SYNC_TOTAL"], "12288");
        assert_eq!(vars["AMF_MISMATCH_CNT"], "0");
        assert_eq!(vars["AMF_TIME"], "2026-12-07T18:10:05Z");
        assert_eq!(vars["AMF_DETAIL"], e[0].detail);
        let j: serde_json::Value = serde_json::from_str(&vars["AMF_JSON"]).unwrap();
        assert_eq!(j["event"], "RebuildFinished");

        // A whole-volume event: two arguments, no member variables.
        let e = volume_event(&snap("r5", R5, 8), EventKind::TestMessage, "t".into(), at());
        let c = e.program_command(Path::new("prog"));
        assert_eq!(args(&c), ["TestMessage", "r5"]);
        assert!(!env(&c).contains_key("AMF_MEMBER"));
        // A member whose device sysfs does not know: its major:minor; no table: member<i>.
        let mut s = snap("r5", R5, 8);
        s.targets[0].member_devices[2].path = None;
        let e = diff_volume(
            &snap("r5", R5, 7),
            &{
                let mut n = s.clone();
                n.targets[0] = AmfStatus {
                    member_devices: s.targets[0].member_devices.clone(),
                    ..st(&R5.replace("AAAA", "AADA"))
                };
                n
            },
            at(),
        );
        assert_eq!(
            args(&e[0].program_command(Path::new("p"))),
            ["Fail", "r5", "253:2"]
        );
        assert!(!env(&e[0].program_command(Path::new("p"))).contains_key("AMF_MEMBER_DEVICE"));
        let plain = |line: &str| VolSnap {
            name: "v".into(),
            event_nr: None,
            targets: vec![st(line)],
        };
        let e = diff_volume(&plain(R5), &plain(&R5.replace("AAAA", "AAAD")), at());
        assert_eq!(
            args(&e[0].program_command(Path::new("p"))),
            ["Fail", "v", "member3"]
        );
    }

    #[test]
    fn program_runs_per_event() {
        let dir = std::env::temp_dir().join(format!("amfctl-monitor-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("log");
        let prog = dir.join("prog.sh");
        std::fs::write(
            &prog,
            format!(
                "#!/bin/sh\necho \"$# $* $AMF_HEALTH\" >> '{}'\n[ \"$1\" != Fail ]\n",
                log.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
        let events = diff_volume(
            &snap("r5", R5, 1),
            &snap("r5", "0 12288 amf raid5 4 DAAa 0/12288 recover 0", 2),
            at(),
        );
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut rep = Reporter {
            out: &mut out,
            err: &mut err,
            json: true,
            program: Some(prog.clone()),
            left: Some(5),
        };
        assert!(!rep.report_all(&events).unwrap());
        assert_eq!(rep.left, Some(3));
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "3 Fail r5 /dev/mapper/m0 DAAa\n3 RebuildStarted r5 /dev/mapper/m3 DAAa\n"
        );
        let out = String::from_utf8(out).unwrap();
        let lines: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["event"], "RebuildStarted");
        // A failing program is reported, and monitoring goes on.
        let err = String::from_utf8(err).unwrap();
        assert!(err.contains("prog.sh Fail r5: exit status: 1"), "{err}");
        // --count: stops after the last one.
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut rep = Reporter {
            out: &mut out,
            err: &mut err,
            json: false,
            program: Some(dir.join("missing")),
            left: Some(1),
        };
        assert!(rep.report_all(&events).unwrap());
        assert_eq!(String::from_utf8(out).unwrap().lines().count(), 1);
        assert!(String::from_utf8(err).unwrap().contains("cannot run"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
