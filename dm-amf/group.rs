// SPDX-License-Identifier: GPL-2.0

//! The redundancy group a target serves: its geometry, member devices and which members
//! have failed, shared by `map`, `end_io` and the stripe worker.

use core::sync::atomic::{AtomicU64, Ordering};

use kernel::prelude::*;

use crate::core_proto::geometry::{Geometry, MemberSet};
use crate::kernel_ext::device_mapper::DmDev;

/// One member device and where its data area starts.
pub(crate) struct Member {
    pub(crate) dev: DmDev,
    pub(crate) offset: u64,
}

/// Geometry and members of the group.
pub(crate) struct Group {
    pub(crate) geometry: Geometry,
    pub(crate) chunk_sectors: u32,
    /// Sectors each member contributes (from `offset`).
    pub(crate) member_len: u64,
    pub(crate) members: KVec<Member>,
    /// Members that returned an I/O error (bit i = member i). Never cleared while the table
    /// lives: a failed member is out until the administrator replaces it.
    failed: AtomicU64,
}

impl Group {
    /// A group with every member in service.
    pub(crate) fn new(
        geometry: Geometry,
        chunk_sectors: u32,
        member_len: u64,
        members: KVec<Member>,
    ) -> Self {
        Self {
            geometry,
            chunk_sectors,
            member_len,
            members,
            failed: AtomicU64::new(0),
        }
    }

    /// Member `i`, if the group has it.
    pub(crate) fn member(&self, i: usize) -> Option<&Member> {
        self.members.get(i)
    }

    /// The members out of service.
    pub(crate) fn failed(&self) -> MemberSet {
        MemberSet(self.failed.load(Ordering::Acquire))
    }

    /// Takes members `set` out of service after an I/O error; safe in any context.
    pub(crate) fn mark_failed(&self, set: MemberSet) {
        let before = MemberSet(self.failed.fetch_or(set.0, Ordering::AcqRel));
        for m in set.iter().filter(|m| !before.contains(*m)) {
            let name = self.member(m).map_or("?", |x| x.dev.name());
            pr_err!("member {m} ({name}) failed: I/O error; the group runs degraded\n");
        }
    }

    /// Whether the group still holds all its data.
    pub(crate) fn can_serve(&self) -> bool {
        self.failed().len() <= self.geometry.tolerated_failures()
    }
}
