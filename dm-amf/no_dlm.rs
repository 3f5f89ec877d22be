// SPDX-License-Identifier: GPL-2.0

//! What the target uses of `cluster` and `stripe_lock` when the kernel has no DLM
//! (`CONFIG_DLM` off): a table with `cluster` is refused, so no clustered target and no
//! stripe lock ever exists. The types are uninhabited; only the constructor error is real.

pub(crate) mod cluster {
    use kernel::{prelude::*, sync::Arc};

    use crate::core_proto::superblock::Uuid;

    /// Nothing to register without a DLM.
    pub(crate) struct RegistryOwner;

    impl RegistryOwner {
        pub(crate) fn new() -> Result<Self> {
            Ok(Self)
        }
    }

    /// Cannot exist without a DLM.
    pub(crate) enum GroupSpace {}

    /// Cannot exist without a DLM.
    pub(crate) enum Membership {}

    impl Membership {
        pub(crate) fn recovering(&self) -> bool {
            match *self {}
        }

        pub(crate) fn members(&self) -> u32 {
            match *self {}
        }

        pub(crate) fn live_nodes(&self) -> u64 {
            match *self {}
        }

        pub(crate) fn pending_deaths(&self) -> u64 {
            match *self {}
        }

        pub(crate) fn clear_pending(&self, _mask: u64) {
            match *self {}
        }

        pub(crate) fn last_death(&self) -> kernel::time::Ktime {
            match *self {}
        }

        pub(crate) fn deaths(&self) -> u64 {
            match *self {}
        }

        pub(crate) fn our_node(&self) -> u32 {
            match *self {}
        }
    }

    /// Why a table with `cluster` is refused.
    #[derive(Clone, Copy, Debug)]
    pub(crate) enum ClusterError {
        NoDlm,
    }

    impl ClusterError {
        pub(crate) fn message(self) -> &'static core::ffi::CStr {
            c"cluster needs a kernel with the DLM (CONFIG_DLM)"
        }
    }

    /// Cannot exist without a DLM.
    pub(crate) enum GroupMembership {}

    impl GroupMembership {
        pub(crate) fn join(
            _uuid: &Uuid,
            _cluster: &str,
            _node: u32,
            _events: crate::kernel_ext::dm_event::EventSender,
        ) -> Result<Self, ClusterError> {
            Err(ClusterError::NoDlm)
        }

        pub(crate) fn membership(&self) -> &Membership {
            match *self {}
        }

        pub(crate) fn space(&self) -> &Arc<GroupSpace> {
            match *self {}
        }

        pub(crate) fn agree_unit(
            &self,
            _uuid: &Uuid,
            _unit: u32,
        ) -> Result<UnitLock, ClusterError> {
            match *self {}
        }
    }

    /// Cannot exist without a DLM.
    pub(crate) enum UnitLock {}
}

pub(crate) mod stripe_lock {
    use kernel::{prelude::*, sync::Arc};

    use super::cluster::GroupSpace;
    use crate::core_proto::superblock::Uuid;
    use crate::group::Round;
    use crate::lock_stats::LockStats;
    use crate::stripe_worker::StripeWorker;

    /// Never constructed: there is no lockspace to lock in.
    pub(crate) enum StripeLocks {}

    /// Why an operation may not run.
    #[derive(Clone, Copy, Debug)]
    pub(crate) enum LockFailure {}

    impl StripeLocks {
        pub(crate) fn new(
            space: Arc<GroupSpace>,
            _group: (Uuid, bool),
            _lock_stripes: u32,
            _worker: Arc<StripeWorker>,
            _stats: Arc<LockStats>,
        ) -> Result<Self> {
            match *space {}
        }

        pub(crate) fn acquire(&mut self, _stripe: u64) -> Result<usize, LockFailure> {
            match *self {}
        }

        pub(crate) fn release(&mut self, _slot: usize) {
            match *self {}
        }

        pub(crate) fn idle(&mut self) {
            match *self {}
        }

        pub(crate) fn agrees_members(&self) -> bool {
            match *self {}
        }

        pub(crate) fn membership(&self) -> &super::cluster::Membership {
            match *self {}
        }

        pub(crate) fn members_shared(&mut self) -> Result<Option<Round>, LockFailure> {
            match *self {}
        }

        pub(crate) fn members_exclusive(&mut self) -> Result<(), LockFailure> {
            match *self {}
        }

        pub(crate) fn publish_members(&mut self, _events: u64) -> Result<(), LockFailure> {
            match *self {}
        }
    }
}
