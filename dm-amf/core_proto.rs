// SPDX-License-Identifier: GPL-2.0

//! The no_std protocol core (`dm-amf/core`), compiled into the module from the very files
//! that cargo tests in userspace. Sibling modules refer to each other with `super::`.

#![allow(dead_code, unreachable_pub, clippy::all)]

#[path = "core/src/geometry.rs"]
pub(crate) mod geometry;
#[path = "core/src/table.rs"]
pub(crate) mod table;
