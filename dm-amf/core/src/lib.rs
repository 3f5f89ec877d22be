// SPDX-License-Identifier: GPL-2.0
//! dm-amf protocol core.
//!
//! One copy of the logic, two users: cargo builds and tests this crate in userspace, and the
//! kernel module includes the very same files with `#[path = ...] mod x;` under a common
//! parent module. Every file therefore refers to its siblings through `super::`, carries no
//! crate-level attribute, allocates nothing and never panics on input.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(any(test, feature = "std"))]
extern crate std;

/// The deterministic cluster simulator (userspace only).
#[cfg(any(test, feature = "sim"))]
pub mod sim;

pub mod bitmap;
pub mod geometry;
pub mod handshake;
pub mod lock;
pub mod op;
pub mod parity;
pub mod ppl;
pub mod recovery;
pub mod superblock;
pub mod table;
pub mod wire;
