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

/// The shortest secret taken, in bytes (the kernel refuses a shorter one at table load too).
pub use amf_core::handshake::MIN_SECRET_LEN;

/// Why no key was added.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The description cannot name an `auth_key`.
    #[error("{0}")]
    Description(String),
    /// Nothing left of the secret once trailing newlines are removed.
    #[error("the secret is empty")]
    EmptySecret,
    /// Too short to resist offline guessing.
    #[error(
        "the secret is {0} bytes long; at least {MIN_SECRET_LEN} are needed (a shorter one can \
         be guessed offline from one recorded handshake; make one with 'openssl rand -hex 32')"
    )]
    SecretTooShort(usize),
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
    check_secret(&bytes)?;
    Ok(bytes)
}

/// Refuses an empty, too short or too long secret.
fn check_secret(secret: &[u8]) -> Result<(), KeyError> {
    match secret.len() {
        0 => Err(KeyError::EmptySecret),
        n if n < MIN_SECRET_LEN => Err(KeyError::SecretTooShort(n)),
        n if n > MAX_SECRET_LEN => Err(KeyError::SecretTooLong(n)),
        _ => Ok(()),
    }
}

/// Adds (or, when `keyring` already holds a `logon` key of that description, updates) the
/// `logon` key `description` with payload `secret` to `keyring`; returns its serial number.
/// The description is checked as the table parser checks `auth_key` first.
pub fn add_logon_key(description: &str, secret: &[u8], keyring: i32) -> Result<i32, KeyError> {
    auth_key_problem(description).map_err(KeyError::Description)?;
    check_secret(secret)?;
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
        const S: &[u8] = b"0123456789abcdef";
        assert_eq!(secret_from([S, b"\n\n"].concat()).unwrap(), S);
        assert_eq!(
            secret_from([b"\na b\r", S, b"\r\n"].concat()).unwrap(),
            [b"\na b\r", S, b"\r"].concat()
        );
        assert_eq!(
            secret_from([&[0u8, 1][..], S].concat()).unwrap(),
            [&[0u8, 1][..], S].concat()
        );
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
    fn short_secrets_are_refused() {
        let e = secret_from(b"fifteen bytes!!\n".to_vec()).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("the secret is 15 bytes long; at least 16 are needed"),
            "{e}"
        );
        assert_eq!(secret_from(vec![b'x'; 16]).unwrap().len(), 16);
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
        match add_logon_key("dm-amf:amfctl-test", b"one-0123456789ab", PROCESS_KEYRING) {
            Ok(serial) => {
                assert!(serial > 0);
                // The same description again updates the key: same serial.
                let again =
                    add_logon_key("dm-amf:amfctl-test", b"two-0123456789ab", PROCESS_KEYRING);
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
        let e = add_logon_key("dm-amf:amfctl-test", b"0123456789abcdef", 0).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("add_key(logon, dm-amf:amfctl-test): "),
            "{e}"
        );
    }
}
