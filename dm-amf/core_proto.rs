// SPDX-License-Identifier: GPL-2.0

//! The no_std protocol core (`dm-amf/core`), compiled into the module from the very files
//! that cargo tests in userspace. Sibling modules refer to each other with `super::`.
//!
//! The data path uses `geometry` and `table` today; `parity`, `wire`, `lock`, `op` and
//! `recovery` are compiled in so the kernel build proves they stay kernel-clean, and are used
//! as the RAID5/6 data path, the lock arbiter and the replication channel arrive.

#![allow(dead_code, unreachable_pub, clippy::all)]

#[path = "core/src/geometry.rs"]
pub(crate) mod geometry;
#[path = "core/src/lock.rs"]
pub(crate) mod lock;
#[path = "core/src/op.rs"]
pub(crate) mod op;
#[path = "core/src/parity.rs"]
pub(crate) mod parity;
#[path = "core/src/recovery.rs"]
pub(crate) mod recovery;
#[path = "core/src/table.rs"]
pub(crate) mod table;
#[path = "core/src/wire.rs"]
pub(crate) mod wire;
