// SPDX-License-Identifier: GPL-2.0
//! The kernel module includes the core's files as children of a parent module, not as a
//! crate (see `dm-amf/core_proto.rs`). Build them that way here too, so a `crate::` path or a
//! crate-level attribute in any file breaks this test rather than the kernel build.
#![deny(missing_docs)]

/// The core as the kernel module sees it (`#[path]` on the parent sets the directory).
#[allow(dead_code)]
#[path = "../src"]
mod core_proto {
    pub(crate) mod geometry;
    pub(crate) mod lock;
    pub(crate) mod op;
    pub(crate) mod parity;
    pub(crate) mod recovery;
    pub(crate) mod superblock;
    pub(crate) mod table;
    pub(crate) mod wire;
}

#[test]
fn core_files_work_as_child_modules() {
    use core_proto::geometry::{Geometry, Level};
    use core_proto::op::{plan_write, ChunkSet, WriteRequest};
    let g = Geometry::new(Level::Raid6, 6, 8, 64).unwrap();
    let req = WriteRequest {
        stripe: 0,
        offset: 0,
        sectors: 8,
        chunks: ChunkSet(0b1111),
    };
    let plan = plan_write(&g, &req, core_proto::geometry::MemberSet::EMPTY).unwrap();
    assert_eq!(plan.writes.as_slice().len(), 6);
}
