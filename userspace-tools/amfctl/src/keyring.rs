// SPDX-License-Identifier: GPL-2.0
//! The kernel's key retention service: `amfctl key-add` adds the shared secret of a
//! replicated group as a `logon` key, which the kernel target finds by the description its
//! table names (`auth_key <description>`, `Documentation/table-syntax.rst`, "Replication
//! peers"). User space can add and replace a `logon` key but never read it back.
//!
//! The one `unsafe` of amfctl is here: the `add_key(2)` system call, which std does not wrap.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;

use crate::table::auth_key_problem;

/// `KEY_SPEC_USER_KEYRING`: the calling user's keyring (`@u` to keyctl).
pub const KEY_SPEC_USER_KEYRING: i32 = -4;

/// The largest payload of a `logon` (or `user`) key, in bytes.
pub const MAX_SECRET_LEN: usize = 32767;

/// Why no key was added.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The description cannot name an `auth_key`.
    #[error("{0}")]
    Description(String),
    /// Nothing left of the secret once trailing newlines are removed.
    #[error("the secret is empty")]
    EmptySecret,
    /// More than a logon key holds.
    #[error("the secret is {0} bytes long; a logon key holds at most {MAX_SECRET_LEN}")]
    SecretTooLong(usize),
    /// The kernel refused.
    #[error("add_key(logon, {description}): {}", explain(.source))]
    Kernel {
        /// The key's description.
        description: String,
        /// The system call's error.
        source: io::Error,
    },
}

fn explain(e: &io::Error) -> String {
    let why = match e.raw_os_error() {
        Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP) => {
            "; the kernel has no key retention service (CONFIG_KEYS)"
        }
        Some(libc::EDQUOT) => "; the user's key quota is used up (see /proc/key-users)",
        Some(libc::EACCES) | Some(libc::EPERM) => "; not allowed to write to the user keyring",
        _ => "",
    };
    format!("{e}{why}")
}

/// The secret as read: trailing newlines removed (as the shell's `"$(cat F)"` removes them,
/// so that `keyctl add logon <desc> "$(cat F)" @u` gives the same key), then checked.
pub fn secret_from(mut bytes: Vec<u8>) -> Result<Vec<u8>, KeyError> {
    while bytes.last() == Some(&b'\n') {
        bytes.pop();
    }
    if bytes.is_empty() {
        return Err(KeyError::EmptySecret);
    }
    if bytes.len() > MAX_SECRET_LEN {
        return Err(KeyError::SecretTooLong(bytes.len()));
    }
    Ok(bytes)
}

/// Adds (or, when `keyring` already holds a `logon` key of that description, updates) the
/// `logon` key `description` with payload `secret` to `keyring`; returns its serial number.
/// The description is checked as the table parser checks `auth_key` first.
pub fn add_logon_key(description: &str, secret: &[u8], keyring: i32) -> Result<i32, KeyError> {
    auth_key_problem(description).map_err(KeyError::Description)?;
    if secret.is_empty() {
        return Err(KeyError::EmptySecret);
    }
    if secret.len() > MAX_SECRET_LEN {
        return Err(KeyError::SecretTooLong(secret.len()));
    }
    // Printable ASCII (checked above): no NUL inside.
    let desc = CString::new(description).map_err(|_| KeyError::Description(description.into()))?;
    // SAFETY: add_key(2) reads the NUL-terminated strings `type` and `description` and
    // `plen` bytes from `payload`; all three live until the call returns and are only read.
    // The integer arguments are passed as longs, as the system call takes them.
    let serial = unsafe {
        libc::syscall(
            libc::SYS_add_key,
            c"logon".as_ptr(),
            desc.as_ptr(),
            secret.as_ptr().cast::<libc::c_void>(),
            secret.len(),
            libc::c_long::from(keyring),
        )
    };
    if serial < 0 {
        return Err(KeyError::Kernel {
            description: description.to_string(),
            source: io::Error::last_os_error(),
        });
    }
    i32::try_from(serial).map_err(|_| KeyError::Kernel {
        description: description.to_string(),
        source: io::Error::other(format!("unexpected serial {serial}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_loses_trailing_newlines_only() {
        assert_eq!(secret_from(b"abc\n\n".to_vec()).unwrap(), b"abc");
        assert_eq!(secret_from(b"\na b\r\n".to_vec()).unwrap(), b"\na b\r");
        assert_eq!(secret_from(b"\0\x01".to_vec()).unwrap(), b"\0\x01");
        assert!(matches!(
            secret_from(b"\n\n".to_vec()),
            Err(KeyError::EmptySecret)
        ));
        assert!(matches!(
            secret_from(Vec::new()),
            Err(KeyError::EmptySecret)
        ));
        assert_eq!(
            secret_from(vec![7; MAX_SECRET_LEN]).unwrap().len(),
            MAX_SECRET_LEN
        );
        assert!(matches!(
            secret_from(vec![7; MAX_SECRET_LEN + 1]),
            Err(KeyError::SecretTooLong(32768))
        ));
    }

    #[test]
    fn refused_before_the_kernel() {
        // Nothing reaches the keyring: each is refused by the checks.
        for (desc, why) in [
            ("", "the key description is empty"),
            ("dm-amf", "key description 'dm-amf' has no '<prefix>:'"),
            ("dm amf:x", "key description 'dm amf:x' contains ' '"),
        ] {
            let e = add_logon_key(desc, b"s", KEY_SPEC_USER_KEYRING).unwrap_err();
            assert!(e.to_string().starts_with(why), "{e}");
        }
        assert!(matches!(
            add_logon_key("a:b", b"", KEY_SPEC_USER_KEYRING),
            Err(KeyError::EmptySecret)
        ));
    }

    #[test]
    fn adds_and_updates_a_logon_key() {
        // Into this test process's own keyring (KEY_SPEC_PROCESS_KEYRING), which goes away
        // with the process: nothing is left behind. Where the kernel or a sandbox has no
        // keys, the refusal says so.
        const PROCESS_KEYRING: i32 = -2;
        match add_logon_key("dm-amf:amfctl-test", b"one", PROCESS_KEYRING) {
            Ok(serial) => {
                assert!(serial > 0);
                // The same description again updates the key: same serial.
                let again = add_logon_key("dm-amf:amfctl-test", b"two", PROCESS_KEYRING);
                assert_eq!(again.unwrap(), serial);
            }
            Err(KeyError::Kernel { source, .. }) => {
                eprintln!("skipped: add_key: {source}");
                assert!(matches!(
                    source.raw_os_error(),
                    Some(libc::ENOSYS | libc::EOPNOTSUPP | libc::EPERM | libc::EACCES)
                ));
            }
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn kernel_errors_are_explained() {
        // An invalid keyring id: the kernel refuses (EINVAL), or has no keys at all, or a
        // sandbox forbids the call; it never succeeds.
        let e = add_logon_key("dm-amf:amfctl-test", b"s", 0).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("add_key(logon, dm-amf:amfctl-test): "),
            "{e}"
        );
    }
}
