// SPDX-License-Identifier: GPL-2.0
//! The simulated DLM: grants in FIFO order by the compatibility matrix, sends blocking
//! callbacks to holders that stand in the way, and purges a dead node's locks only after
//! every survivor acknowledged the membership change (like the DLM's lockspace recovery).

use super::super::lock::Mode;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::vec::Vec;

/// What the arbiter tells a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    /// Completion AST: granted in this mode.
    Grant(u64, Mode),
    /// Blocking AST: someone waits for this mode.
    Bast(u64, Mode),
}

#[derive(Default, Debug)]
struct Resource {
    granted: BTreeMap<usize, Mode>,
    queue: VecDeque<(usize, Mode)>,
    basted: BTreeSet<(usize, Mode)>,
}

/// Lock arbiter state.
#[derive(Default, Debug)]
pub struct Arbiter {
    res: BTreeMap<u64, Resource>,
    dead: BTreeSet<usize>,
}

impl Arbiter {
    /// Mark `node` dead: its requests are ignored from now on (its grants stay until purge).
    pub fn mark_dead(&mut self, node: usize) {
        self.dead.insert(node);
        for r in self.res.values_mut() {
            r.queue.retain(|(n, _)| *n != node);
        }
    }

    /// Drop every lock of the dead nodes; returns the notices this causes.
    pub fn purge(&mut self) -> Vec<(usize, Notice)> {
        let mut out = Vec::new();
        let dead = self.dead.clone();
        let ids: Vec<u64> = self.res.keys().copied().collect();
        for id in ids {
            if let Some(r) = self.res.get_mut(&id) {
                r.granted.retain(|n, _| !dead.contains(n));
                r.basted.clear();
            }
            self.process(id, &mut out);
        }
        out
    }

    /// `node` asks for `mode` on `stripe` (new request or conversion).
    pub fn request(&mut self, node: usize, stripe: u64, mode: Mode) -> Vec<(usize, Notice)> {
        let mut out = Vec::new();
        if self.dead.contains(&node) {
            return out;
        }
        let r = self.res.entry(stripe).or_default();
        let current = r.granted.get(&node).copied();
        match current {
            // Down-conversions are always grantable.
            Some(c) if mode <= c => {
                r.granted.insert(node, mode);
                r.basted.retain(|(n, _)| *n != node);
                out.push((node, Notice::Grant(stripe, mode)));
            }
            // Up-conversion with CONVDEADLK: demote to NL at once, then queue.
            Some(_) => {
                r.granted.insert(node, Mode::Nl);
                r.basted.retain(|(n, _)| *n != node);
                r.queue.push_back((node, mode));
            }
            None => r.queue.push_back((node, mode)),
        }
        self.process(stripe, &mut out);
        out
    }

    fn process(&mut self, stripe: u64, out: &mut Vec<(usize, Notice)>) {
        let Some(r) = self.res.get_mut(&stripe) else {
            return;
        };
        while let Some(&(node, mode)) = r.queue.front() {
            let ok = r
                .granted
                .iter()
                .all(|(n, m)| *n == node || m.compatible(mode));
            if !ok {
                for (n, m) in r.granted.iter() {
                    if *n != node && !m.compatible(mode) && r.basted.insert((*n, mode)) {
                        out.push((*n, Notice::Bast(stripe, mode)));
                    }
                }
                break;
            }
            r.queue.pop_front();
            r.granted.insert(node, mode);
            r.basted.clear();
            out.push((node, Notice::Grant(stripe, mode)));
        }
    }

    /// First pair of incompatible grants, if any.
    pub fn conflict(&self) -> Option<(u64, usize, usize)> {
        for (id, r) in self.res.iter() {
            for (a, ma) in r.granted.iter() {
                for (b, mb) in r.granted.iter() {
                    if a < b && !ma.compatible(*mb) {
                        return Some((*id, *a, *b));
                    }
                }
            }
        }
        None
    }
}
