// SPDX-License-Identifier: GPL-2.0

//! CRC-32C through the kernel's `crc32c` library (lib/libcrc32c.c, which picks the CPU's
//! accelerated implementation), for the core's on-disk and wire formats.
//!
//! C header: [`include/linux/crc32c.h`](srctree/include/linux/crc32c.h)

use super::bindings as b;

/// Extends `crc` (a CRC-32C with the usual initial value and final XOR) over `data`.
pub(crate) fn crc32c_append(crc: u32, data: &[u8]) -> u32 {
    // The kernel routine works on the raw register: undo and redo the final XOR.
    let mut raw = !crc;
    for piece in data.chunks(1 << 30) {
        // SAFETY: `piece` is valid for reads of its length, which fits an unsigned int.
        raw = unsafe { b::crc32c(raw, piece.as_ptr().cast(), piece.len() as u32) };
    }
    !raw
}
