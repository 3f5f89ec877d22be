// SPDX-License-Identifier: GPL-2.0

//! The redundancy group a target serves: its geometry and member devices, shared by `map`
//! and the stripe worker.

use kernel::prelude::*;

use crate::core_proto::geometry::Geometry;
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
}

impl Group {
    /// Member `i`, if the group has it.
    pub(crate) fn member(&self, i: usize) -> Option<&Member> {
        self.members.get(i)
    }
}
