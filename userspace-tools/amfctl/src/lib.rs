// SPDX-License-Identifier: GPL-2.0
//! `amfctl`, the dm-amf administrator's tool, as a library: table lines, member devices,
//! status parsing, the `dmsetup` calls, member superblocks, the offline parity check, the
//! cluster's corosync.conf and the replication key. The binary (`main.rs`) is the command
//! line over these.
// Denied, not forbidden: `keyring` and `dm_ioctl` allow it for their system calls.
#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod assemble;
pub mod cluster;
pub mod config;
pub mod device;
pub mod devnames;
pub mod dm_ioctl;
pub mod dmsetup;
pub mod keyring;
pub mod level;
pub mod monitor;
pub mod scrub;
pub mod signature;
pub mod size;
pub mod status;
pub mod superblock;
pub mod table;
