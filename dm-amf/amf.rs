// SPDX-License-Identifier: GPL-2.0

//! dm-amf: active-active RAID over shared disks, as a device-mapper target.
//!
//! Several storage servers run an Array Management Function (AMF) each over the same member
//! disks. This module registers the device-mapper target `amf`; see
//! `Documentation/table-syntax.rst` for its table line and status output.

use kernel::prelude::*;

#[path = "../rust/mod.rs"]
mod kernel_ext;

#[cfg(CONFIG_DLM)]
mod cluster;
mod core_proto;
mod failover;
mod group;
mod lock_stats;
#[cfg(CONFIG_DLM)]
mod member_lock;
#[cfg(not(CONFIG_DLM))]
mod no_dlm;
#[cfg(not(CONFIG_DLM))]
use no_dlm::{cluster, stripe_lock};
mod metadata;
mod parity_check;
mod parity_log;
mod repl;
mod repl_session;
mod stripe_buf;
mod stripe_check;
#[cfg(CONFIG_DLM)]
mod stripe_lock;
mod stripe_ppl;
mod stripe_read;
mod stripe_rebuild;
mod stripe_resync;
mod stripe_worker;
mod stripe_write;
mod sync_action;
mod sync_pace;
mod target;
mod transport;
mod write_intent;

use kernel_ext::device_mapper::Registration;

module! {
    type: AmfModule,
    name: "dm_amf",
    author: "dm-amf developers",
    description: "device-mapper target for active-active RAID over shared disks",
    license: "GPL",
}

struct AmfModule {
    // Declared first: unregistered (no more targets) before the cluster registry goes.
    _target: Registration<target::AmfTarget>,
    _cluster: cluster::RegistryOwner,
}

impl kernel::Module for AmfModule {
    fn init(module: &'static ThisModule) -> Result<Self> {
        parity_check::self_test()?;
        let cluster = cluster::RegistryOwner::new()?;
        let reg = Registration::new(module)?;
        pr_info!(
            "dm-amf: target amf v{}.{}.{} registered\n",
            target::VERSION[0],
            target::VERSION[1],
            target::VERSION[2]
        );
        Ok(Self {
            _target: reg,
            _cluster: cluster,
        })
    }
}
