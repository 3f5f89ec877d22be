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
//! Run it with `cargo run --release -p amf-core --features sim --bin amf-sim`, or through the
//! tests (`cargo test --release -p amf-core sim::`).

mod arbiter;
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
}

/// Crash `node` just before the `at_event`-th event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Crash {
    /// Node to crash.
    pub node: usize,
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
}

/// Run one schedule with the given crashes.
pub fn run(cfg: &Config, crashes: &[Crash]) -> Outcome {
    world::World::new(cfg, crashes).run()
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

    fn record(&mut self, cfg: &Config, crashes: &[Crash], out: &Outcome) {
        self.stats.add(&out.stats);
        if out.crashes > 0 {
            self.crash_points += 1;
        }
        if !out.violations.is_empty() {
            self.violations += 1;
            if self.first.is_none() {
                self.first = Some(format!(
                    "{:?} nodes={} seed={} crashes={crashes:?}: {}",
                    cfg.level, cfg.nodes, cfg.seed, out.violations[0]
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
        assert_eq!(sum.violations, 0, "{:?}", sum.first);
        assert!(sum.crash_points >= 10_000, "{}", sum.line());
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
}
