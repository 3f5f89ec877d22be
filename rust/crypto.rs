// SPDX-License-Identifier: GPL-2.0

//! HMAC-SHA256 through the kernel crypto API, constant-time comparison and random bytes, to
//! authenticate the replication channel's messages.
//!
//! C header: [`include/crypto/hash.h`](srctree/include/crypto/hash.h)

use core::ptr::NonNull;

use kernel::{bindings, error::from_err_ptr, error::to_result, prelude::*};

use super::bindings as b;

/// Bytes of an HMAC-SHA256 tag.
pub(crate) const TAG_LEN: usize = 32;

/// Parts one [`HmacSha256::tag`] takes at most (its kvec array is on the stack).
pub(crate) const MAX_PARTS: usize = 16;

/// A keyed `hmac(sha256)` transform. Keyed once, then only read: every [`HmacSha256::tag`]
/// hashes on its own on-stack descriptor, so threads may share one.
pub(crate) struct HmacSha256 {
    tfm: NonNull<b::crypto_shash>,
}

// SAFETY: the transform may be used and freed from any thread.
unsafe impl Send for HmacSha256 {}
// SAFETY: after `setkey` the transform is read-only; each digest has its own descriptor.
unsafe impl Sync for HmacSha256 {}

impl HmacSha256 {
    /// A transform keyed with `key` (`crypto_alloc_shash("hmac(sha256)")` + setkey). May
    /// sleep and allocate: call it from the constructor, not the I/O path.
    pub(crate) fn new(key: &[u8]) -> Result<Self> {
        let key_len = u32::try_from(key.len()).map_err(|_| EINVAL)?;
        // SAFETY: the name is NUL-terminated; no type or mask requirements.
        let raw =
            from_err_ptr(unsafe { b::crypto_alloc_shash(c"hmac(sha256)".as_ptr().cast(), 0, 0) })?;
        let this = Self {
            tfm: NonNull::new(raw).ok_or(ENOMEM)?,
        };
        // SAFETY: `tfm` is a live transform of ours.
        if unsafe { b::amf_crypto_shash_digestsize(this.tfm.as_ptr()) } as usize != TAG_LEN {
            return Err(EINVAL);
        }
        // SAFETY: `tfm` is ours and not yet shared; `key` is valid for `key_len` bytes and
        // copied by the call.
        to_result(unsafe { b::crypto_shash_setkey(this.tfm.as_ptr(), key.as_ptr(), key_len) })?;
        Ok(this)
    }

    /// HMAC of the concatenation of `parts`; no allocation (usable in the I/O path).
    ///
    /// At most [`MAX_PARTS`] parts of at most 4 GiB - 1 each, else EINVAL.
    pub(crate) fn tag(&self, parts: &[&[u8]], out: &mut [u8; TAG_LEN]) -> Result {
        if parts.len() > MAX_PARTS {
            return Err(EINVAL);
        }
        let mut vecs = [bindings::kvec::default(); MAX_PARTS];
        for (v, p) in vecs.iter_mut().zip(parts) {
            if u32::try_from(p.len()).is_err() {
                return Err(EINVAL);
            }
            *v = bindings::kvec {
                iov_base: p.as_ptr().cast_mut().cast(),
                iov_len: p.len(),
            };
        }
        // SAFETY: `tfm` is keyed and only read; the first `parts.len()` kvecs describe
        // borrowed slices that the helper only reads; `out` has room for the 32-byte digest
        // (checked in `new`).
        to_result(unsafe {
            b::amf_hmac_parts(
                self.tfm.as_ptr(),
                vecs.as_ptr(),
                parts.len() as u32,
                out.as_mut_ptr(),
            )
        })
    }
}

impl Drop for HmacSha256 {
    fn drop(&mut self) {
        // SAFETY: the transform is ours and no tag is being computed (`&mut self`); freeing
        // wipes the keyed state (crypto_destroy_tfm frees it with kfree_sensitive).
        unsafe { b::amf_crypto_free_shash(self.tfm.as_ptr()) };
    }
}

/// Constant-time equality (crypto_memneq): slices of different lengths are unequal.
pub(crate) fn tags_equal(x: &[u8], y: &[u8]) -> bool {
    if x.len() != y.len() {
        return false;
    }
    // SAFETY: both slices are valid for reads of `x.len()` bytes.
    unsafe { b::amf_crypto_memneq(x.as_ptr().cast(), y.as_ptr().cast(), x.len()) == 0 }
}

/// Cryptographically random bytes (get_random_bytes).
pub(crate) fn random_bytes(out: &mut [u8]) {
    // SAFETY: `out` is valid for writes of its length.
    unsafe { bindings::get_random_bytes(out.as_mut_ptr().cast(), out.len()) };
}

/// Wipes `buf` (memzero_explicit: the compiler may not drop the stores as dead).
pub(crate) fn wipe(buf: &mut [u8]) {
    // SAFETY: `buf` is valid for writes of its length.
    unsafe { b::amf_memzero_explicit(buf.as_mut_ptr().cast(), buf.len()) };
}

/// Key material on the stack, wiped when it goes out of scope (on every path, errors
/// included).
pub(crate) struct KeyBytes(pub(crate) [u8; TAG_LEN]);

impl KeyBytes {
    /// All zero.
    pub(crate) fn new() -> Self {
        Self([0; TAG_LEN])
    }
}

impl Drop for KeyBytes {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}
