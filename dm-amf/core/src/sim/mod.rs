// SPDX-License-Identifier: GPL-2.0
//! Deterministic, seeded cluster simulator (userspace only; the kernel never includes it).
//!
//! N AMFs share in-memory member disks, talk over a network that delays and reorders (with
//! real `wire` frames), take stripe locks from a simulated DLM, and serve overlapping host
//! reads and writes. Any AMF can be crashed before any event. After every event the lock
//! invariant is checked (no two live AMFs rely on conflicting modes, and the DLM never grants
//! conflicting modes); every host read is checked against the acknowledged history; at the
//! end every stripe's parity (or mirror) must be consistent and every acknowledged write
//! readable with its latest value.
//!
//! Besides single AMF crashes (taken over from the survivors' replication records), a crash
//! may hit every AMF at once (`ALL`): memory, messages and DLM state are lost, each member
//! write in flight lands or not, and every AMF restarts by resyncing the regions its own
//! write-intent bitmap (`bitmap.rs`) marks dirty. Member disks can fail during a run
//! (`Fail`). After a whole-group crash only writes whose member writes all completed
//! (durable) must survive: the others were in RAM only, like a volatile write cache.
//!
//! A write to a stripe that already lacks a data member is logged first in the writer's slot
//! of the partial parity log (`crate::ppl`, `world/parity_log.rs`), and every restart replays
//! the live entries before its resync: the write hole of a degraded group (`Config::ppl`
//! turns it off, to show the hole).
//!
//! Run it with `cargo run --release -p amf-core --features sim --bin amf-sim`, or through the
//! tests (`cargo test --release -p amf-core sim::`).

mod arbiter;
mod bitmap;
mod checker;
mod rng;
mod world;

use super::geometry::Level;
use std::format;
use std::string::String;
use std::vec::Vec;

/// A deliberate protocol bug, to prove the simulator catches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The correct protocol.
    None,
    /// Ack the host as soon as the operation starts, before anything is replicated.
    AckBeforeReplication,
    /// Write the disks (and ack) right after computing parity, before Prepared is acked.
    WriteBeforePrepared,
    /// The recoverer drops every record instead of rewriting Prepared ones.
    SkipRecovery,
    /// Operations write the members without setting their write-intent bit.
    SkipBitmap,
    /// Restarting AMFs serve at once without resyncing their dirty regions.
    SkipResync,
}

/// One simulated cluster and workload.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// RAID level.
    pub level: Level,
    /// Member disks.
    pub members: usize,
    /// Sectors per chunk.
    pub chunk_sectors: u64,
    /// Rows (stripes for RAID5/6) per member.
    pub rows: u64,
    /// AMF nodes.
    pub nodes: usize,
    /// Host requests per node.
    pub host_ops: usize,
    /// Host requests in flight per node.
    pub host_depth: usize,
    /// Seed of the schedule.
    pub seed: u64,
    /// Deliberate bug, if any.
    pub fault: Fault,
    /// Failed member disks (bit i = member i) for the whole run: a degraded array.
    pub failed: u64,
    /// Rows per write-intent bitmap region (small, so a group has several regions).
    pub region_rows: u64,
    /// Partial parity log: writes to a stripe that lacks a data member are logged first,
    /// and replayed after a crash (`false`: the write hole of a degraded group stays open).
    pub ppl: bool,
}

/// Crash `node` (or every node: [`ALL`]) just before the `at_event`-th event.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Crash {
    /// Node to crash, or [`ALL`].
    pub node: usize,
    /// Event index.
    pub at_event: u64,
}

impl core::fmt::Debug for Crash {
    /// `ALL` by name, so a reported schedule reads as it is written.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.node == ALL {
            write!(f, "Crash {{ node: ALL, at_event: {} }}", self.at_event)
        } else {
            write!(
                f,
                "Crash {{ node: {}, at_event: {} }}",
                self.node, self.at_event
            )
        }
    }
}

/// `Crash::node` of a whole-group crash: every AMF dies at once, then all restart.
pub const ALL: usize = usize::MAX;

/// Member disk `member` fails just before the `at_event`-th event: from then on nothing is
/// written to it and nothing newly planned reads it (the AMFs treat it as failed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fail {
    /// Member to fail.
    pub member: usize,
    /// Event index.
    pub at_event: u64,
}

/// What a run exercised (to show the checks had something to check).
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    /// Host writes acknowledged.
    pub writes_acked: u64,
    /// Host reads checked against the history.
    pub reads_checked: u64,
    /// Full-stripe writes computed.
    pub full_stripe: u64,
    /// Read-modify-writes computed.
    pub rmw: u64,
    /// Reconstruct-writes computed.
    pub rcw: u64,
    /// Mirror writes.
    pub mirror: u64,
    /// Recoveries run.
    pub recoveries: u64,
    /// Operations rewritten by recovery.
    pub rewrites: u64,
    /// Operations rolled back by recovery.
    pub rollbacks: u64,
    /// Sectors read by reconstruction from parity.
    pub degraded_reads: u64,
    /// Host writes refused (too many failed members for the plan).
    pub refused: u64,
    /// Whole-group crashes (every AMF at once) simulated.
    pub whole_crashes: u64,
    /// Member writes in flight at a whole-group crash that landed / were lost.
    pub torn_landed: u64,
    /// Member writes in flight at a whole-group crash that were lost.
    pub torn_lost: u64,
    /// Bitmap regions resynced by restarting AMFs (bit found dirty, resynced, cleared).
    pub regions_resynced: u64,
    /// Rows resynced by restarting AMFs.
    pub rows_resynced: u64,
    /// Write-intent bits set (durably, before a member write).
    pub bits_set: u64,
    /// Write-intent bits cleared lazily (region idle).
    pub bits_cleared: u64,
    /// Member disk failures injected during a run.
    pub member_failures: u64,
    /// Live partial parity log entries written (before their stripe's write).
    pub log_entries: u64,
    /// Retired log entries written (a live entry's stripe about to change, or replayed).
    pub log_retired: u64,
    /// Log entry copies in flight at a crash that were lost or torn.
    pub log_torn: u64,
    /// Live log entries replayed (parity recomputed, then retired).
    pub replays: u64,
    /// Replays skipped (a written chunk's member had failed; the group stops serving).
    pub replays_skipped: u64,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        self.writes_acked += o.writes_acked;
        self.reads_checked += o.reads_checked;
        self.full_stripe += o.full_stripe;
        self.rmw += o.rmw;
        self.rcw += o.rcw;
        self.mirror += o.mirror;
        self.recoveries += o.recoveries;
        self.rewrites += o.rewrites;
        self.rollbacks += o.rollbacks;
        self.degraded_reads += o.degraded_reads;
        self.refused += o.refused;
        self.whole_crashes += o.whole_crashes;
        self.torn_landed += o.torn_landed;
        self.torn_lost += o.torn_lost;
        self.regions_resynced += o.regions_resynced;
        self.rows_resynced += o.rows_resynced;
        self.bits_set += o.bits_set;
        self.bits_cleared += o.bits_cleared;
        self.member_failures += o.member_failures;
        self.log_entries += o.log_entries;
        self.log_retired += o.log_retired;
        self.log_torn += o.log_torn;
        self.replays += o.replays;
        self.replays_skipped += o.replays_skipped;
    }
}

/// Result of one run.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// What the run exercised.
    pub stats: Stats,
    /// Events processed.
    pub events: u64,
    /// Crashes that really happened (a crash of a dead node, or of the last one, is skipped).
    pub crashes: usize,
    /// Invariant violations.
    pub violations: Vec<String>,
    /// Event index at which the last restart resync finished (after a whole-group crash).
    pub resynced_at: Option<u64>,
    /// Event index at which the first replay of a log entry started.
    pub replayed_at: Option<u64>,
}

/// Run one schedule with the given crashes.
pub fn run(cfg: &Config, crashes: &[Crash]) -> Outcome {
    run_with(cfg, crashes, &[])
}

/// Run one schedule with the given crashes and member failures.
pub fn run_with(cfg: &Config, crashes: &[Crash], fails: &[Fail]) -> Outcome {
    world::World::new(cfg, crashes, fails).run()
}

/// How many members `cfg`'s level loses and still reads everything.
pub fn tolerance(cfg: &Config) -> usize {
    match cfg.level {
        Level::Raid1 => cfg.members - 1,
        Level::Raid5 => 1,
        Level::Raid6 => 2,
        Level::Raid10 { copies } => copies as usize - 1,
        Level::Raid0 => 0,
    }
}

/// A random member that may still fail within the level's tolerance, if any.
fn failable(cfg: &Config, r: &mut rng::Rng) -> Option<usize> {
    if (cfg.failed.count_ones() as usize) >= tolerance(cfg) {
        return None;
    }
    let live: Vec<usize> = (0..cfg.members)
        .filter(|m| cfg.failed & (1 << m) == 0)
        .collect();
    live.get(r.range(0, live.len() as u64 - 1) as usize)
        .copied()
}

/// Totals over many runs.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Distinct seeded schedules (workload and timing).
    pub schedules: u64,
    /// Runs with at least one crash injected.
    pub crash_points: u64,
    /// Runs that violated an invariant.
    pub violations: u64,
    /// The first violation seen, with the run that produced it.
    pub first: Option<String>,
    /// What all runs exercised together.
    pub stats: Stats,
}

impl Summary {
    /// The one-line report.
    pub fn line(&self) -> String {
        format!(
            "simulator: {} schedules, {} crash points, {} violations",
            self.schedules, self.crash_points, self.violations
        )
    }

    /// What the whole-group crash and member-failure scenarios exercised.
    pub fn exercised(&self) -> String {
        let s = &self.stats;
        format!(
            "simulator exercised: {} whole-group crashes ({} torn member writes landed, {} lost), \
             {} regions ({} rows) resynced, {} bits set, {} cleared, {} member failures",
            s.whole_crashes,
            s.torn_landed,
            s.torn_lost,
            s.regions_resynced,
            s.rows_resynced,
            s.bits_set,
            s.bits_cleared,
            s.member_failures
        )
    }

    fn record(&mut self, cfg: &Config, crashes: &[Crash], out: &Outcome) {
        self.record_with(cfg, crashes, &[], out)
    }

    fn record_with(&mut self, cfg: &Config, crashes: &[Crash], fails: &[Fail], out: &Outcome) {
        self.stats.add(&out.stats);
        if out.crashes > 0 {
            self.crash_points += 1;
        }
        if !out.violations.is_empty() {
            self.violations += 1;
            if self.first.is_none() {
                self.first = Some(format!(
                    "{:?} nodes={} failed={:#b} seed={} crashes={crashes:?} fails={fails:?}: {}",
                    cfg.level, cfg.nodes, cfg.failed, cfg.seed, out.violations[0]
                ));
            }
        }
    }
}

/// Exhaustive crash injection: for each seed, a crash-free run, then one run per (event,
/// node) crashing that node just before that event.
pub fn exhaustive(cfg: &Config, seeds: core::ops::Range<u64>, sum: &mut Summary) {
    for seed in seeds {
        let cfg = Config { seed, ..*cfg };
        sum.schedules += 1;
        let base = run(&cfg, &[]);
        sum.record(&cfg, &[], &base);
        for at_event in 0..base.events {
            for node in 0..cfg.nodes {
                let crashes = [Crash { node, at_event }];
                let out = run(&cfg, &crashes);
                sum.record(&cfg, &crashes, &out);
            }
        }
    }
}

/// Randomized crash injection for larger configurations: per seed, `runs` runs, each with
/// up to `crashes` crashes of random nodes at random events (later crashes often hit a
/// recovery in progress).
pub fn randomized(
    cfg: &Config,
    seeds: core::ops::Range<u64>,
    runs: u64,
    crashes: usize,
    sum: &mut Summary,
) {
    for seed in seeds {
        let cfg = Config { seed, ..*cfg };
        sum.schedules += 1;
        let base = run(&cfg, &[]);
        sum.record(&cfg, &[], &base);
        let mut r = rng::Rng::new(seed ^ 0xc4a5);
        for _ in 0..runs {
            let mut list = Vec::new();
            let mut at = r.range(0, base.events);
            for _ in 0..crashes.min(cfg.nodes - 1) {
                list.push(Crash {
                    node: r.range(0, cfg.nodes as u64 - 1) as usize,
                    at_event: at,
                });
                at += r.range(1, base.events / 2 + 1);
            }
            let out = run(&cfg, &list);
            sum.record(&cfg, &list, &out);
        }
    }
}

/// Whole-group crashes: per seed, one run per event crashing every AMF just before it (each
/// AMF restarts and resyncs its dirty regions); on every `fail_every`-th event (0: never) a
/// second run in which a member also fails once the restart resyncs are over, and on the
/// event after it a second run in which one AMF died alone shortly before (its takeover
/// may be under way when the whole group dies; it restarts with its own bitmap). (A failure
/// before then can meet a torn row that is not resynced yet: the write hole, which the
/// partial parity log closes only for writes to stripes that already lacked a data member;
/// see the `degraded_whole_group_crash_*` tests.)
pub fn whole_group(cfg: &Config, seeds: core::ops::Range<u64>, fail_every: u64, sum: &mut Summary) {
    for seed in seeds {
        let cfg = Config { seed, ..*cfg };
        sum.schedules += 1;
        let base = run(&cfg, &[]);
        sum.record(&cfg, &[], &base);
        let mut r = rng::Rng::new(seed ^ 0x3b17);
        for at_event in 0..base.events {
            let crashes = [Crash {
                node: ALL,
                at_event,
            }];
            let out = run(&cfg, &crashes);
            sum.record(&cfg, &crashes, &out);
            if fail_every == 0 {
                continue;
            }
            if at_event % fail_every == 1 % fail_every && at_event > 0 {
                let crashes = [
                    Crash {
                        node: r.range(0, cfg.nodes as u64 - 1) as usize,
                        at_event: at_event.saturating_sub(r.range(1, 30)),
                    },
                    crashes[0],
                ];
                let out = run(&cfg, &crashes);
                sum.record(&cfg, &crashes, &out);
                continue;
            }
            if at_event % fail_every != 0 {
                continue;
            }
            let (Some(done), Some(member)) = (out.resynced_at, failable(&cfg, &mut r)) else {
                continue;
            };
            let fails = [Fail {
                member,
                at_event: done + r.range(0, 20),
            }];
            let out = run_with(&cfg, &crashes, &fails);
            sum.record_with(&cfg, &crashes, &fails, &out);
        }
    }
}

/// Whole-group crashes of a degraded RAID5/6 array, the write hole's ground: per seed, one
/// run per event crashing every AMF just before it (each restart replays the live entries of
/// the partial parity log, then resyncs); on every other event a run in which one AMF died
/// alone shortly before (its takeover replays its entry and logs the rewrites); and on the
/// others, when the restart replayed an entry, a run in which a random present member fails
/// during the replay (beyond the level's tolerance the group stops serving; within it the
/// replay writes the parity members still there, or skips if a written chunk is gone).
pub fn degraded_whole_group(cfg: &Config, seeds: core::ops::Range<u64>, sum: &mut Summary) {
    for seed in seeds {
        let cfg = Config { seed, ..*cfg };
        sum.schedules += 1;
        let base = run(&cfg, &[]);
        sum.record(&cfg, &[], &base);
        let mut r = rng::Rng::new(seed ^ 0x9911);
        for at_event in 0..base.events {
            let whole = Crash {
                node: ALL,
                at_event,
            };
            let out = run(&cfg, &[whole]);
            sum.record(&cfg, &[whole], &out);
            if at_event % 2 == 1 {
                let crashes = [
                    Crash {
                        node: r.range(0, cfg.nodes as u64 - 1) as usize,
                        at_event: at_event.saturating_sub(r.range(1, 30)),
                    },
                    whole,
                ];
                let out = run(&cfg, &crashes);
                sum.record(&cfg, &crashes, &out);
                continue;
            }
            let Some(replayed) = out.replayed_at else {
                continue;
            };
            let live: Vec<usize> = (0..cfg.members)
                .filter(|m| cfg.failed & (1 << m) == 0)
                .collect();
            let fails = [Fail {
                member: live[r.range(0, live.len() as u64 - 1) as usize],
                at_event: (replayed + r.range(0, 8)).saturating_sub(3),
            }];
            let out = run_with(&cfg, &[whole], &fails);
            sum.record_with(&cfg, &[whole], &fails, &out);
        }
    }
}

/// Member failures during takeovers: per seed, `runs` runs that crash one random AMF at a
/// random event and fail a member (within the level's tolerance) a few events later, often
/// while the recoverer rewrites the dead AMF's operations.
pub fn takeover_failures(cfg: &Config, seeds: core::ops::Range<u64>, runs: u64, sum: &mut Summary) {
    for seed in seeds {
        let cfg = Config { seed, ..*cfg };
        sum.schedules += 1;
        let base = run(&cfg, &[]);
        sum.record(&cfg, &[], &base);
        let mut r = rng::Rng::new(seed ^ 0xfa11);
        for _ in 0..runs {
            let at_event = r.range(0, base.events);
            let node = r.range(0, cfg.nodes as u64 - 1) as usize;
            let Some(member) = failable(&cfg, &mut r) else {
                return;
            };
            let crashes = [Crash { node, at_event }];
            let fails = [Fail {
                member,
                at_event: at_event + r.range(0, 30),
            }];
            let out = run_with(&cfg, &crashes, &fails);
            sum.record_with(&cfg, &crashes, &fails, &out);
        }
    }
}

/// A small configuration of `level` for exhaustive exploration.
pub fn small(level: Level, fault: Fault) -> Config {
    let members = match level {
        Level::Raid1 => 2,
        Level::Raid5 => 3,
        Level::Raid6 => 4,
        Level::Raid10 { .. } => 3,
        Level::Raid0 => 2,
    };
    Config {
        level,
        members,
        chunk_sectors: 2,
        rows: 2,
        nodes: 3,
        host_ops: 3,
        host_depth: 2,
        seed: 0,
        fault,
        failed: 0,
        region_rows: 1,
        ppl: true,
    }
}

/// The standard pass: exhaustive single crashes over small RAID1/5/6 clusters (3 nodes and
/// 2 nodes, healthy and degraded), then randomized multiple crashes over larger RAID1/5/6/10
/// clusters. `scale` multiplies the number of seeds.
pub fn standard_pass(scale: u64, fault: Fault) -> Summary {
    let mut sum = Summary::default();
    for level in [Level::Raid1, Level::Raid5, Level::Raid6] {
        exhaustive(&small(level, fault), 0..scale, &mut sum);
    }
    for (level, members) in [
        (Level::Raid1, 3),
        (Level::Raid5, 5),
        (Level::Raid6, 6),
        (Level::Raid10 { copies: 2 }, 4),
    ] {
        let cfg = Config {
            level,
            members,
            chunk_sectors: 4,
            rows: 3,
            nodes: 4,
            host_ops: 8,
            host_depth: 2,
            seed: 0,
            fault,
            failed: 0,
            region_rows: 2,
            ppl: true,
        };
        // Up to three of four nodes crash: later crashes often hit a recovery in progress,
        // and the last survivor runs alone (acking only after its disk writes).
        randomized(&cfg, 100..100 + scale, 60, 3, &mut sum);
    }
    // Two nodes: every crash leaves one AMF alone with the other's records.
    for level in [Level::Raid1, Level::Raid5, Level::Raid6] {
        let cfg = Config {
            nodes: 2,
            ..small(level, fault)
        };
        exhaustive(&cfg, 300..300 + scale.div_ceil(4), &mut sum);
    }
    // Degraded arrays: the write hole proper (a torn stripe would rebuild garbage).
    for (level, members, failed) in [
        (Level::Raid5, 3, 0b001),
        (Level::Raid6, 4, 0b0010),
        (Level::Raid6, 5, 0b01001),
        (Level::Raid1, 2, 0b10),
    ] {
        let cfg = Config {
            members,
            failed,
            ..small(level, fault)
        };
        exhaustive(&cfg, 200..200 + scale.div_ceil(4), &mut sum);
    }
    // Every AMF at once, on healthy arrays: torn member writes, restart resync from the
    // write-intent bitmaps, then (every other crash point) a member failure.
    for level in [Level::Raid1, Level::Raid5, Level::Raid6] {
        whole_group(
            &small(level, fault),
            400..400 + scale.div_ceil(2),
            2,
            &mut sum,
        );
    }
    // A member failing in the middle of a takeover, healthy and already degraded.
    for (level, members, failed) in [
        (Level::Raid1, 2, 0),
        (Level::Raid5, 3, 0),
        (Level::Raid6, 4, 0),
        (Level::Raid6, 5, 0b00100),
    ] {
        let cfg = Config {
            members,
            failed,
            ..small(level, fault)
        };
        takeover_failures(&cfg, 500..500 + scale, 40, &mut sum);
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Print past the test harness's capture so the line shows in `cargo test` output.
    fn report(line: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
    }

    /// Seeds per configuration of the partial parity log test.
    const PPL_SEEDS: u64 = 8;

    fn scale() -> u64 {
        // Debug builds are ~10x slower: a smaller pass, still over 10,000 crash points.
        if cfg!(debug_assertions) {
            6
        } else {
            8
        }
    }

    #[test]
    fn simulator_pass_finds_no_violation() {
        let sum = standard_pass(scale(), Fault::None);
        report(&sum.line());
        report(&sum.exercised());
        assert_eq!(sum.violations, 0, "{:?}", sum.first);
        assert!(sum.crash_points >= 10_000, "{}", sum.line());
        let s = sum.stats;
        assert!(s.whole_crashes >= 500, "{}", sum.exercised());
        assert!(s.regions_resynced >= 100 && s.torn_landed > 0 && s.torn_lost > 0);
        assert!(
            s.member_failures >= 100 && s.bits_cleared > 0,
            "{}",
            sum.exercised()
        );
    }

    #[test]
    fn runs_are_deterministic() {
        let cfg = small(Level::Raid6, Fault::None);
        let crashes = [Crash {
            node: 1,
            at_event: 40,
        }];
        let a = run(&cfg, &crashes);
        let b = run(&cfg, &crashes);
        assert_eq!((a.events, a.crashes), (b.events, b.crashes));
        assert_eq!(a.crashes, 1);
        assert!(a.events > 50);
        let whole = [Crash {
            node: ALL,
            at_event: 40,
        }];
        let fails = [Fail {
            member: 2,
            at_event: 90,
        }];
        let a = run_with(&cfg, &whole, &fails);
        let b = run_with(&cfg, &whole, &fails);
        assert_eq!((a.events, a.resynced_at), (b.events, b.resynced_at));
        assert_eq!(a.stats.whole_crashes, 1);
        assert!(a.violations.is_empty(), "{:?}", a.violations);
    }

    fn broken(fault: Fault) -> Summary {
        let mut sum = Summary::default();
        for level in [Level::Raid1, Level::Raid5, Level::Raid6] {
            exhaustive(&small(level, fault), 0..3, &mut sum);
        }
        // Not the `simulator:` line: that one is the correct protocol's alone.
        report(&std::format!(
            "broken protocol {fault:?}: {} schedules, {} crash points, {} violations (expected > 0)",
            sum.schedules, sum.crash_points, sum.violations
        ));
        sum
    }

    #[test]
    fn acking_before_replication_is_caught() {
        assert!(broken(Fault::AckBeforeReplication).violations > 0);
    }

    #[test]
    fn writing_before_prepared_is_caught() {
        assert!(broken(Fault::WriteBeforePrepared).violations > 0);
    }

    #[test]
    fn skipping_recovery_is_caught() {
        assert!(broken(Fault::SkipRecovery).violations > 0);
    }

    /// Whole-group crashes over the small healthy configurations, with `fault`.
    fn broken_whole(fault: Fault) -> Summary {
        let mut sum = Summary::default();
        for level in [Level::Raid1, Level::Raid5, Level::Raid6] {
            whole_group(&small(level, fault), 0..2, 0, &mut sum);
        }
        report(&std::format!(
            "broken protocol {fault:?}: {} schedules, {} whole-group crashes, {} violations (expected > 0)",
            sum.schedules, sum.stats.whole_crashes, sum.violations
        ));
        sum
    }

    #[test]
    fn writing_without_the_bitmap_is_caught() {
        assert!(broken_whole(Fault::SkipBitmap).violations > 0);
    }

    #[test]
    fn skipping_the_restart_resync_is_caught() {
        assert!(broken_whole(Fault::SkipResync).violations > 0);
    }

    /// What the partial parity log closes, shown without it (`ppl: false`): a whole-group
    /// crash of an already degraded RAID5/6 array tears stripes that the restart resync
    /// cannot repair (the lost member's chunk exists only as the parity that the torn write
    /// left stale), so a degraded read of a *previously acknowledged* chunk in the same
    /// stripe returns garbage: the RAID write hole. A member failing during the restart
    /// resync, before the torn row is resynced, is the same hole.
    #[test]
    fn degraded_whole_group_crash_is_the_write_hole() {
        let mut sum = Summary::default();
        for (level, members, failed) in [(Level::Raid5, 3, 0b001), (Level::Raid6, 4, 0b0011)] {
            let cfg = Config {
                members,
                failed,
                ppl: false,
                ..small(level, Fault::None)
            };
            whole_group(&cfg, 0..2, 0, &mut sum);
        }
        report(&std::format!(
            "write hole (degraded whole-group crash, no PPL): {} whole-group crashes, {} violations (expected > 0)",
            sum.stats.whole_crashes, sum.violations
        ));
        assert!(sum.violations > 0);
    }

    /// The same degraded whole-group crashes with the partial parity log (the default): every
    /// restart replays the live entries before its resync, so no acknowledged block is lost.
    /// Also an AMF dying alone shortly before (its takeover replays its entry), and a member
    /// failing during the replay (the group then stops serving, or the replay writes the
    /// parity members still there).
    #[test]
    fn degraded_whole_group_crash_with_ppl_keeps_every_block() {
        let mut sum = Summary::default();
        for (level, members, failed) in [
            (Level::Raid5, 3, 0b001),
            (Level::Raid6, 4, 0b0010),
            (Level::Raid6, 4, 0b0011),
        ] {
            let cfg = Config {
                members,
                failed,
                ..small(level, Fault::None)
            };
            degraded_whole_group(&cfg, 0..PPL_SEEDS, &mut sum);
        }
        let s = &sum.stats;
        report(&std::format!(
            "partial parity log (degraded whole-group crash): {} schedules, {} whole-group crashes, \
             {} entries logged ({} copies torn by a crash), {} replayed, {} skipped (member failed \
             during the replay), {} member failures, {} violations",
            sum.schedules,
            s.whole_crashes,
            s.log_entries,
            s.log_torn,
            s.replays,
            s.replays_skipped,
            s.member_failures,
            sum.violations
        ));
        assert_eq!(sum.violations, 0, "{:?}", sum.first);
        assert!(s.whole_crashes >= 1000 && s.replays >= 100, "{s:?}");
        assert!(s.log_torn > 0 && s.replays_skipped > 0 && s.member_failures > 0);
    }
}
