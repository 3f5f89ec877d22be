// SPDX-License-Identifier: GPL-2.0
//! `add-logon-key`: adds a `logon` key to the user keyring with any payload, even one that
//! `amfctl key-add` refuses (shorter than 16 bytes), so that a suite can check that the
//! kernel refuses it at table load too. The guest has no keyctl(1).
//!
//!   add-logon-key --desc D --secret S     the key `D` (`<prefix>:<name>`) holding S's bytes

use std::ffi::{c_char, c_long, c_void, CString};

use crate::{Args, Fail, Res};

/// `__NR_add_key` on x86_64.
const NR_ADD_KEY: c_long = 248;
/// `KEY_SPEC_USER_KEYRING`.
const KEY_SPEC_USER_KEYRING: c_long = -4;

extern "C" {
    fn syscall(number: c_long, ...) -> c_long;
}

/// `add-logon-key --desc D --secret S`.
pub fn cmd_add_logon_key(a: &Args) -> Res<u64> {
    let desc = CString::new(a.str("desc")?).map_err(|_| Fail("--desc holds a NUL".into()))?;
    let secret = a.str("secret")?.as_bytes();
    let ty = c"logon";
    // SAFETY: add_key(2) reads the NUL-terminated type and description and `secret.len()`
    // bytes of payload, all valid for the call; it keeps no pointer after returning.
    let id = unsafe {
        syscall(
            NR_ADD_KEY,
            ty.as_ptr(),
            desc.as_ptr() as *const c_char,
            secret.as_ptr() as *const c_void,
            secret.len(),
            KEY_SPEC_USER_KEYRING,
        )
    };
    if id < 0 {
        return Err(Fail(format!(
            "add_key: {}",
            std::io::Error::last_os_error()
        )));
    }
    println!("{id}");
    Ok(0)
}
