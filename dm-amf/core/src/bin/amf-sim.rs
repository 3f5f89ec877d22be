// SPDX-License-Identifier: GPL-2.0
//! Command-line driver of the cluster simulator.
//!
//! `amf-sim [SCALE] [FAULT]`: SCALE multiplies the seeds of the standard pass (default 8);
//! FAULT is `none` (default), `ack-before-replication`, `write-before-prepared`,
//! `skip-recovery`, `skip-bitmap` or `skip-resync`. Prints `simulator: N schedules, M crash
//! points, V violations` and a `simulator exercised:` line (whole-group crashes, regions
//! resynced, member failures), and exits non-zero if V > 0.

use amf_core::sim::{standard_pass, Fault};

fn main() {
    let mut args = std::env::args().skip(1);
    let scale = args.next().and_then(|s| s.parse().ok()).unwrap_or(8);
    let fault = match args.next().as_deref() {
        None | Some("none") => Fault::None,
        Some("ack-before-replication") => Fault::AckBeforeReplication,
        Some("write-before-prepared") => Fault::WriteBeforePrepared,
        Some("skip-recovery") => Fault::SkipRecovery,
        Some("skip-bitmap") => Fault::SkipBitmap,
        Some("skip-resync") => Fault::SkipResync,
        Some(other) => {
            eprintln!("amf-sim: unknown fault {other}");
            std::process::exit(2);
        }
    };
    let sum = standard_pass(scale, fault);
    eprintln!("exercised: {:?}", sum.stats);
    if let Some(first) = &sum.first {
        eprintln!("first violation: {first}");
    }
    println!("{}", sum.line());
    println!("{}", sum.exercised());
    if sum.violations > 0 {
        std::process::exit(1);
    }
}
