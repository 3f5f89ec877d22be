// SPDX-License-Identifier: GPL-2.0
//! The per-node write-intent bitmaps, as the kernel will keep them (on-disk-format.rst:
//! one bitmap per node slot, one bit per region of whole rows on every member).
//!
//! Why: replication records live in RAM, so when every AMF dies at once nothing says which
//! stripes were being written and may now be torn (some member writes landed, some not).
//! The bitmap is the durable answer: a node sets a region's bit on the shared disk *before*
//! its first member write to that region, and clears it only when it has no write in flight
//! there, so after a whole-group crash every possibly torn row lies in a region some node's
//! bitmap marks dirty, and that node resyncs it before serving.
//!
//! The bits are durable simulator state (they survive crashes). What a node remembers about
//! each region is the kernel's own state word (`crate::bitmap::state`, the very code the
//! module runs): writes in flight, durable, touched since the last sweep, resync pending.
//! So the sim checks the kernel's rules, not a copy of them: a write starts only once the
//! bit is durable, a sweep clears a bit only after a whole idle period, a region waiting for
//! its resync keeps its bit.

use super::super::bitmap::state::{self, Sweep};
use std::collections::{BTreeMap, BTreeSet};
use std::vec;
use std::vec::Vec;

/// Every node's bitmap and what each node remembers about it.
#[derive(Debug)]
pub struct Bitmaps {
    /// Sectors of a member per region (`region_rows` rows of one chunk).
    region_sectors: u64,
    /// Durable: the dirty regions of each node's bitmap.
    durable: Vec<BTreeSet<u64>>,
    /// Memory: each node's state word per region (absent: 0).
    words: Vec<BTreeMap<u64, u32>>,
}

impl Bitmaps {
    /// Empty bitmaps of `nodes` nodes with regions of `region_sectors` member sectors.
    pub fn new(nodes: usize, region_sectors: u64) -> Bitmaps {
        Bitmaps {
            region_sectors: region_sectors.max(1),
            durable: vec![BTreeSet::new(); nodes],
            words: vec![BTreeMap::new(); nodes],
        }
    }

    /// The region holding member sector `sector`.
    pub fn region(&self, sector: u64) -> u64 {
        sector / self.region_sectors
    }

    /// Node `node` issues a member write to `region`. If the bit is not durable yet, the
    /// worker marks it first (set on disk, then `DURABLE`; the `SkipBitmap` bug, `set` false,
    /// skips that), then the write starts as the map path starts one. A region waiting for
    /// its resync takes only the resync's own writes, which the worker tracks itself (the
    /// region's bit stays set until the resync is over). Returns whether a bit was newly set.
    pub fn write_issued(&mut self, node: usize, region: u64, set: bool) -> bool {
        let w = self.words[node].entry(region).or_insert(0);
        let mut newly = false;
        if set && *w & state::DURABLE == 0 {
            newly = self.durable[node].insert(region);
            *w |= state::DURABLE;
        }
        if let Some(n) = state::start(*w) {
            *w = n;
        }
        newly
    }

    /// A member write of `node` to `region` completed.
    pub fn write_done(&mut self, node: usize, region: u64) {
        if let Some(w) = self.words[node].get_mut(&region) {
            *w = state::end(*w);
        }
    }

    /// The node's sweep (the sim runs it on the node's host tick): a region written since
    /// the last sweep is only untouched, one idle for a whole period gets its bit cleared
    /// (memory first, then on disk). Returns how many bits were cleared.
    pub fn sweep(&mut self, node: usize) -> u64 {
        let mut cleared = 0;
        for (r, w) in self.words[node].iter_mut() {
            match state::sweep(*w) {
                Sweep::Keep => {}
                Sweep::Untouch => *w &= !state::TOUCHED,
                Sweep::Clear => {
                    *w &= !state::DURABLE;
                    if self.durable[node].remove(r) {
                        cleared += 1;
                    }
                }
            }
        }
        cleared
    }

    /// At start: the dirty regions of `node`'s own bitmap, marked as waiting for resync.
    pub fn pin_dirty(&mut self, node: usize) -> Vec<u64> {
        let dirty: Vec<u64> = self.durable[node].iter().copied().collect();
        for r in dirty.iter() {
            self.words[node].insert(*r, state::DURABLE | state::RESYNC);
        }
        dirty
    }

    /// `node` resynced `region`: the bit is left to the next sweeps to clear.
    pub fn resynced(&mut self, node: usize, region: u64) {
        if let Some(w) = self.words[node].get_mut(&region) {
            *w &= !state::RESYNC;
        }
    }

    /// Every node died: the state words were memory; the bits stay.
    pub fn lose_memory(&mut self) {
        for m in self.words.iter_mut() {
            m.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_is_set_before_and_cleared_after_a_whole_idle_period() {
        let mut b = Bitmaps::new(2, 4);
        let r = b.region(5);
        assert_eq!(r, 1);
        assert!(b.write_issued(0, r, true));
        assert!(!b.write_issued(0, r, true));
        b.write_done(0, r);
        assert_eq!(b.sweep(0), 0, "a write still in flight");
        b.write_done(0, r);
        assert_eq!(b.sweep(0), 0, "touched since the last sweep");
        assert_eq!(b.sweep(0), 1);
        assert!(b.durable[0].is_empty() && b.durable[1].is_empty());
    }

    #[test]
    fn bits_survive_a_crash_and_wait_for_their_resync() {
        let mut b = Bitmaps::new(1, 2);
        b.write_issued(0, 3, true);
        b.lose_memory();
        assert_eq!(b.pin_dirty(0), [3]);
        assert_eq!(b.sweep(0), 0);
        b.resynced(0, 3);
        assert_eq!(b.sweep(0), 1);
        assert!(b.pin_dirty(0).is_empty());
    }
}
