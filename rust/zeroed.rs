// SPDX-License-Identifier: GPL-2.0

//! Large values built in place on the heap. `KBox::new(value)` moves `value` through the
//! caller's stack frame, and at opt-level `s` (`CONFIG_CC_OPTIMIZE_FOR_SIZE`) the temporary
//! stays there: a 4 KiB write plan built that way overflowed the 16 KiB kernel stack at the
//! first `dmsetup create`. Types whose all-zero bytes are a valid value are allocated zeroed
//! instead, and structs around them with `init!`, so that nothing large touches the stack.

use kernel::alloc::Flags;
use kernel::init::{self, Zeroable};
use kernel::prelude::*;

use crate::core_proto::{
    geometry::BoundedList,
    op::{Io, Plan},
    wire::OpKind,
};

// SAFETY: `Io`'s fields are integers and a `Block`, which is `repr(u8)` with `Data(u8)` as
// its first variant (discriminant 0): all zero bytes are `Io { member: 0, sector: 0,
// sectors: 0, what: Block::Data(0) }`.
unsafe impl Zeroable for Io {}

// SAFETY: `BoundedList` is an array of `Io` (zeroable, above) and a `usize` length; all zero
// bytes are the empty list.
unsafe impl<const N: usize> Zeroable for BoundedList<Io, N> {}

/// An empty [`Plan`] on the heap, built in place (its two I/O lists zeroed).
pub(crate) fn boxed_plan(flags: Flags) -> Result<KBox<Plan>> {
    KBox::init(
        kernel::init!(Plan {
            kind: OpKind::Mirror,
            reads <- init::zeroed(),
            writes <- init::zeroed(),
            p: false,
            q: false,
        }),
        flags,
    )
}
