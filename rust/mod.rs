// SPDX-License-Identifier: GPL-2.0

//! Safe Rust abstractions over the kernel C APIs that the `kernel` crate of 6.12 lacks.
//!
//! Everything `unsafe` that dm-amf needs lives here, behind types whose methods are safe:
//! the target code in `dm-amf/` never touches a raw pointer or a C struct field.

pub(crate) mod bindings;
pub(crate) mod bio;
pub(crate) mod block_io;
pub(crate) mod checksum;
pub(crate) mod crypto;
pub(crate) mod delay;
pub(crate) mod device_mapper;
#[cfg(CONFIG_DLM)]
pub(crate) mod dlm;
pub(crate) mod dm_event;
pub(crate) mod keyring;
pub(crate) mod net;
pub(crate) mod parity;
pub(crate) mod ratelimit;
#[cfg(CONFIG_INFINIBAND_ADDR_TRANS)]
pub(crate) mod rdma;
pub(crate) mod workqueue;
pub(crate) mod zeroed;
