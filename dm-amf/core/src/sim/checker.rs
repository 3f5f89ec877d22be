// SPDX-License-Identifier: GPL-2.0
//! The invariants the simulator checks: acknowledged writes stay readable with their latest
//! value, reads never go back in time (nothing is applied twice visibly), and only values
//! that some write really produced are ever seen.
//!
//! Every host write gets a unique id `w`; each of its sectors holds `w`. Writes to one stripe
//! are serialized by its EX lock, and each gets an *order* number when it computes its parity
//! (under the lock), so "newer" means "higher order".

use std::collections::BTreeSet;
use std::format;
use std::string::String;
use std::vec;
use std::vec::Vec;

#[derive(Clone, Debug, Default)]
struct WriteInfo {
    sectors: BTreeSet<u64>,
    order: Option<u64>,
    acked: bool,
}

/// Host-visible history and the checks on it.
#[derive(Debug)]
pub struct Checker {
    writes: Vec<WriteInfo>,
    next_order: u64,
    acked_order: Vec<u64>,
    seen_order: Vec<u64>,
    /// Per sector, the order of the newest write all of whose member writes completed: what
    /// must survive a whole-group crash.
    durable_order: Vec<u64>,
    /// Violations found so far.
    pub violations: Vec<String>,
}

impl Checker {
    /// A checker for a group of `sectors` logical sectors, all initially written by "w 0".
    pub fn new(sectors: u64) -> Checker {
        Checker {
            writes: vec![WriteInfo {
                order: Some(0),
                acked: true,
                ..WriteInfo::default()
            }],
            next_order: 1,
            acked_order: vec![0; sectors as usize],
            seen_order: vec![0; sectors as usize],
            durable_order: vec![0; sectors as usize],
            violations: Vec::new(),
        }
    }

    /// Register a new host write of these logical sectors; returns its id.
    pub fn new_write(&mut self, sectors: impl Iterator<Item = u64>) -> u64 {
        self.writes.push(WriteInfo {
            sectors: sectors.collect(),
            ..WriteInfo::default()
        });
        (self.writes.len() - 1) as u64
    }

    /// The write's parity was computed under the lock: it is now ordered.
    pub fn ordered(&mut self, w: u64) {
        let o = self.next_order;
        self.next_order += 1;
        if let Some(info) = self.writes.get_mut(w as usize) {
            info.order = Some(o);
            if info.acked {
                let secs: Vec<u64> = info.sectors.iter().copied().collect();
                self.raise_acked(&secs, o);
            }
        }
    }

    fn raise_acked(&mut self, secs: &[u64], o: u64) {
        for l in secs {
            if let Some(a) = self.acked_order.get_mut(*l as usize) {
                *a = (*a).max(o);
            }
        }
    }

    /// The host got the completion of write `w`.
    pub fn acked(&mut self, w: u64) {
        let Some(info) = self.writes.get_mut(w as usize) else {
            return;
        };
        if info.acked {
            self.violations.push(format!("write {w} acked twice"));
            return;
        }
        info.acked = true;
        if let Some(o) = info.order {
            let secs: Vec<u64> = info.sectors.iter().copied().collect();
            self.raise_acked(&secs, o);
        }
    }

    /// Every member write of write `w` completed: it is on the disks, not only in RAM.
    pub fn durable(&mut self, w: u64) {
        let Some(info) = self.writes.get(w as usize) else {
            return;
        };
        let Some(o) = info.order else {
            return;
        };
        for l in info.sectors.iter() {
            if let Some(d) = self.durable_order.get_mut(*l as usize) {
                *d = (*d).max(o);
            }
        }
    }

    /// Every AMF died at once: acknowledged writes that were only in RAM may be gone (no
    /// host flush covered them), so from now on a sector must only be at least as new as its
    /// newest durable write, and what reads saw before no longer binds.
    pub fn whole_crash(&mut self) {
        self.acked_order.clone_from(&self.durable_order);
        self.seen_order.clone_from(&self.durable_order);
    }

    /// What a read of sector `l` issued now must at least return (an order number).
    pub fn read_floor(&self, l: u64) -> u64 {
        let a = self.acked_order.get(l as usize).copied().unwrap_or(0);
        let s = self.seen_order.get(l as usize).copied().unwrap_or(0);
        a.max(s)
    }

    /// A read of sector `l` returned `value`; `floor` came from [`Checker::read_floor`] at issue.
    pub fn read_result(&mut self, what: &str, l: u64, value: u64, floor: u64) {
        let Some(info) = self.writes.get(value as usize) else {
            self.violations
                .push(format!("{what}: sector {l} holds {value}, never written"));
            return;
        };
        if value != 0 && !info.sectors.contains(&l) {
            self.violations.push(format!(
                "{what}: sector {l} holds write {value}, which did not cover it"
            ));
            return;
        }
        let Some(o) = info.order else {
            self.violations.push(format!(
                "{what}: sector {l} holds write {value}, never committed"
            ));
            return;
        };
        if o < floor {
            self.violations.push(format!(
                "{what}: sector {l} holds write {value} (order {o}), older than required order {floor}"
            ));
        }
        if let Some(s) = self.seen_order.get_mut(l as usize) {
            *s = (*s).max(o);
        }
    }

    /// End-of-run check: every acknowledged write was committed.
    pub fn final_check(&mut self) {
        for (w, info) in self.writes.iter().enumerate() {
            if info.acked && info.order.is_none() {
                self.violations
                    .push(format!("acked write {w} was lost (never committed)"));
            }
        }
    }
}
