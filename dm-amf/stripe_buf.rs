// SPDX-License-Identifier: GPL-2.0

//! The buffers of one stripe operation, allocated when the target is built so that writing a
//! stripe never allocates memory: one chunk each for the new data of every data chunk, the
//! old data (read-modify-write), P, Q and a zero chunk (RAID6 read-modify-write).
//!
//! They are kmalloc memory (`KVec`): physically contiguous, so one bio segment covers a
//! chunk, and for power-of-two chunk sizes naturally aligned, as the parity routines need.

use kernel::prelude::*;

/// Buffers for one stripe of `data_chunks` data chunks of `chunk_bytes` bytes.
pub(crate) struct StripeBuffers {
    /// New data; for reconstruct-write also the untouched chunks read back.
    pub(crate) data: KVec<KVec<u8>>,
    /// Old data of the written chunks, then (old XOR new).
    pub(crate) old: KVec<KVec<u8>>,
    pub(crate) p: KVec<u8>,
    /// Empty for RAID5.
    pub(crate) q: KVec<u8>,
    /// All zero, never written; empty for RAID5.
    pub(crate) zero: KVec<u8>,
}

fn chunk(bytes: usize) -> Result<KVec<u8>> {
    Ok(KVec::from_elem(0u8, bytes, GFP_KERNEL)?)
}

fn chunks(n: usize, bytes: usize) -> Result<KVec<KVec<u8>>> {
    let mut v = KVec::with_capacity(n, GFP_KERNEL)?;
    for _ in 0..n {
        v.push(chunk(bytes)?, GFP_KERNEL)?;
    }
    Ok(v)
}

impl StripeBuffers {
    /// Allocates the buffers (may sleep; only from the constructor).
    pub(crate) fn new(data_chunks: usize, chunk_bytes: usize, raid6: bool) -> Result<Self> {
        let q_bytes = if raid6 { chunk_bytes } else { 0 };
        Ok(Self {
            data: chunks(data_chunks, chunk_bytes)?,
            old: chunks(data_chunks, chunk_bytes)?,
            p: chunk(chunk_bytes)?,
            q: chunk(q_bytes)?,
            zero: chunk(q_bytes)?,
        })
    }
}
