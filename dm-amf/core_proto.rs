// SPDX-License-Identifier: GPL-2.0

//! The no_std protocol core (`dm-amf/core`), compiled into the module from the very files
//! that cargo tests in userspace. Sibling modules refer to each other with `super::`.
//!
//! The data path uses `geometry`, `table` and `parity` today. `superblock`, `wire`, `lock`,
//! `op` and `recovery` are compiled in so that the kernel build proves they stay
//! kernel-clean; they come into use with the metadata, the lock arbiter and the replication
//! channel.

#![allow(dead_code, unreachable_pub, clippy::all)]

#[path = "core/src/bitmap.rs"]
pub(crate) mod bitmap;
#[path = "core/src/geometry.rs"]
pub(crate) mod geometry;
#[path = "core/src/handshake.rs"]
pub(crate) mod handshake;
#[path = "core/src/lock.rs"]
pub(crate) mod lock;
#[path = "core/src/op.rs"]
pub(crate) mod op;
#[path = "core/src/parity.rs"]
pub(crate) mod parity;
#[path = "core/src/ppl.rs"]
pub(crate) mod ppl;
#[path = "core/src/recovery.rs"]
pub(crate) mod recovery;
#[path = "core/src/superblock.rs"]
pub(crate) mod superblock;
#[path = "core/src/table.rs"]
pub(crate) mod table;
#[path = "core/src/wire.rs"]
pub(crate) mod wire;
