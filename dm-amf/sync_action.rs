// SPDX-License-Identifier: GPL-2.0

//! Online check and repair, dm-raid's `check` and `repair` sync actions: the stripe worker
//! walks every stripe between host I/O, reads all its blocks and compares them with what
//! they should be (P and Q recomputed from the data, every copy of a mirrored chunk with the
//! first). `check` counts the mismatches; `repair` also rewrites the parity (or the copies)
//! of the stripes found inconsistent. The count is md's `mismatch_cnt`: 512-byte sectors,
//! counted a 4 KiB block at a time, kept after the action ends until the next one starts.
//!
//! Not persistent, as md's check is not: a table reload or a restart ends it.

use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};

/// The sync actions this state runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    Check,
    Repair,
}

impl Action {
    /// Its name in messages and in the status line.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Action::Check => "check",
            Action::Repair => "repair",
        }
    }
}

const IDLE: u8 = 0;
const CHECK: u8 = 1;
const REPAIR: u8 = 2;
/// Claimed by a start that has not reset the cursor and count yet.
const STARTING: u8 = 3;

/// Why a sync action could not start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StartError {
    /// One already runs.
    Running,
}

/// The running sync action (if any), how far it got and what it found.
pub(crate) struct SyncAction {
    action: AtomicU8,
    /// First stripe not looked at yet; only the stripe worker advances it.
    cursor: AtomicU64,
    /// Mismatched sectors found by the running action, or by the last one.
    mismatches: AtomicU64,
}

impl SyncAction {
    pub(crate) const fn new() -> Self {
        Self {
            action: AtomicU8::new(IDLE),
            cursor: AtomicU64::new(0),
            mismatches: AtomicU64::new(0),
        }
    }

    /// The running action.
    pub(crate) fn running(&self) -> Option<Action> {
        match self.action.load(Ordering::Acquire) {
            CHECK => Some(Action::Check),
            REPAIR => Some(Action::Repair),
            _ => None,
        }
    }

    /// Whether an action runs or is being started (sequentially consistent: see
    /// `Group::begin_direct_write`).
    pub(crate) fn busy(&self) -> bool {
        self.action.load(Ordering::SeqCst) != IDLE
    }

    /// Starts `action` from stripe 0 with a zero count.
    pub(crate) fn start(&self, action: Action) -> Result<(), StartError> {
        let code = match action {
            Action::Check => CHECK,
            Action::Repair => REPAIR,
        };
        // Claimed first, the cursor and count reset, then published: the worker sees the
        // action only with them, and a second start fails without touching them.
        // Sequentially consistent: see `Group::begin_direct_write`.
        self.action
            .compare_exchange(IDLE, STARTING, Ordering::SeqCst, Ordering::SeqCst)
            .map_err(|_| StartError::Running)?;
        self.cursor.store(0, Ordering::Release);
        self.mismatches.store(0, Ordering::Release);
        self.action.store(code, Ordering::Release);
        Ok(())
    }

    /// Ends the running action (`idle`, the end of the group, a failure); returns whether
    /// one ran. The count stays.
    pub(crate) fn stop(&self) -> bool {
        let was = self.action.load(Ordering::Acquire);
        matches!(was, CHECK | REPAIR)
            && self
                .action
                .compare_exchange(was, IDLE, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    /// First stripe the running action has not looked at.
    pub(crate) fn cursor(&self) -> u64 {
        self.cursor.load(Ordering::Acquire)
    }

    /// The worker looked at stripe `stripe` and found `sectors` mismatched sectors in it.
    pub(crate) fn advanced(&self, stripe: u64, sectors: u64) {
        if sectors != 0 {
            self.mismatches.fetch_add(sectors, Ordering::AcqRel);
        }
        self.cursor
            .store(stripe.saturating_add(1), Ordering::Release);
    }

    /// md's `mismatch_cnt`: of the running action, or the last one.
    pub(crate) fn mismatches(&self) -> u64 {
        self.mismatches.load(Ordering::Acquire)
    }
}
