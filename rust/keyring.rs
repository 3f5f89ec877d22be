// SPDX-License-Identifier: GPL-2.0

//! Secrets from the kernel keyrings: the payload of a `logon` key, which userspace can add
//! but never read back, found the way dm-crypt finds its `:logon:<description>` keys.
//!
//! C header: [`include/keys/user-type.h`](srctree/include/keys/user-type.h)

use core::ptr::{self, NonNull};

use kernel::{bindings, error::from_err_ptr, prelude::*};

use super::bindings as b;

/// A secret in kernel memory, zeroised when dropped.
pub(crate) struct Secret {
    bytes: KVec<u8>,
}

impl Secret {
    /// The secret's bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        // SAFETY: the vector is valid for writes of its length; the vector was allocated
        // with its final capacity, so no copy of the secret was left behind by growth.
        unsafe { b::amf_memzero_explicit(self.bytes.as_mut_ptr().cast(), self.bytes.len()) };
    }
}

/// The secret of the `logon` key `description` from the caller's keyrings (the process
/// running the constructor: dmsetup), copied into a KVec (zeroised on drop by a wrapper type
/// `Secret` with `fn bytes(&self) -> &[u8]`).
///
/// ENOKEY if absent, EKEYREVOKED if revoked, EINVAL for an empty description or one with a
/// NUL byte; other errors of `request_key` (EACCES, EKEYEXPIRED...) as they come.
pub(crate) fn logon_key(description: &str) -> Result<Secret> {
    let d = description.as_bytes();
    if d.is_empty() || d.contains(&0) {
        return Err(EINVAL);
    }
    let mut c_desc = KVec::with_capacity(d.len() + 1, GFP_KERNEL)?;
    c_desc.extend_from_slice(d, GFP_KERNEL)?;
    c_desc.push(0, GFP_KERNEL)?;
    // SAFETY: `key_type_logon` is a registered key type that lives as long as the kernel;
    // `c_desc` is NUL-terminated; no domain tag and no callout (an absent key is ENOKEY,
    // never constructed by an upcall).
    let key = from_err_ptr(unsafe {
        bindings::request_key_tag(
            ptr::addr_of_mut!(b::key_type_logon),
            c_desc.as_ptr().cast(),
            ptr::null_mut(),
            ptr::null(),
        )
    })?;
    let key = NonNull::new(key).ok_or(Error::from_errno(-(bindings::ENOKEY as i32)))?;
    // SAFETY: `request_key_tag` returned a reference to a live logon key.
    let secret = unsafe { copy_payload(key) };
    // SAFETY: drops the reference `request_key_tag` took.
    unsafe { bindings::key_put(key.as_ptr()) };
    secret
}

/// Copies the payload of a `logon` (or `user`) key under its semaphore, as dm-crypt's
/// `set_key_user` does.
///
/// # Safety
///
/// `key` is a live key of type `logon` or `user` on which the caller holds a reference.
unsafe fn copy_payload(key: NonNull<bindings::key>) -> Result<Secret> {
    let key = key.as_ptr();
    // SAFETY: `key` is live (function contract); its semaphore guards the payload.
    unsafe { bindings::down_read(ptr::addr_of_mut!((*key).sem)) };
    // SAFETY: the semaphore is held; a user-type key's payload is a `user_key_payload`,
    // NULL once revoked.
    let ukp = unsafe { b::amf_user_key_payload_locked(key) };
    let secret = if ukp.is_null() {
        Err(Error::from_errno(-(bindings::EKEYREVOKED as i32)))
    } else {
        // SAFETY: the payload stays valid while the semaphore is held; `data` holds
        // `datalen` bytes.
        let data = unsafe {
            core::slice::from_raw_parts((*ukp).data.as_ptr().cast::<u8>(), (*ukp).datalen.into())
        };
        copy_secret(data)
    };
    // SAFETY: pairs with the `down_read` above.
    unsafe { bindings::up_read(ptr::addr_of_mut!((*key).sem)) };
    secret
}

/// A [`Secret`] holding a copy of `data`, allocated at its final size so that the only copy
/// is the one zeroised on drop.
fn copy_secret(data: &[u8]) -> Result<Secret> {
    let mut secret = Secret {
        bytes: KVec::with_capacity(data.len(), GFP_KERNEL)?,
    };
    secret.bytes.extend_from_slice(data, GFP_KERNEL)?;
    Ok(secret)
}
