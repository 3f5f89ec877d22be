// SPDX-License-Identifier: GPL-2.0
//! Member devices: the `--dev <path>[:<offset>]` argument and the size and identity of what a
//! path names.

use std::fs;
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use amf_core::table::parse_decimal;

use crate::size::{parse_sectors, SizeError, SECTOR_SIZE};

/// One `--dev` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevArg {
    /// Block device path, `major:minor`, or (for `amfctl table`) a regular file.
    pub path: String,
    /// First sector of the member's data area.
    pub offset: u64,
}

impl DevArg {
    /// `path` with its data area starting at sector `offset`.
    pub fn new(path: &str, offset: u64) -> DevArg {
        DevArg {
            path: path.to_string(),
            offset,
        }
    }
}

/// Why a `--dev` argument was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DevArgError {
    /// Empty path.
    #[error("empty device path in --dev '{0}'")]
    Empty(String),
    /// A table line is split on whitespace, so it cannot carry such a path.
    #[error("device path '{0}' contains whitespace, which a table line cannot carry")]
    Whitespace(String),
    /// The offset after the last `:` is not a size.
    #[error("bad offset in --dev '{arg}': {err}")]
    Offset {
        /// The whole argument.
        arg: String,
        /// What was wrong with the offset.
        err: SizeError,
    },
}

/// `true` for `major:minor` (both decimal).
pub fn is_major_minor(s: &str) -> bool {
    parse_major_minor(s).is_some()
}

fn parse_major_minor(s: &str) -> Option<(u64, u64)> {
    let (ma, mi) = s.split_once(':')?;
    Some((parse_decimal(ma)?, parse_decimal(mi)?))
}

/// Parses `--dev <path>[:<offset>]`.
///
/// The offset is in sectors or takes a size suffix (`1M`). Paths may themselves contain
/// colons (`/dev/disk/by-path/pci-0000:00:04.0`), so: an argument that names an existing
/// file is never split; otherwise it is split at its last colon when what follows is
/// decimal (or a size) and what precedes is not just a major number. `8:16` is the device
/// `8:16` at offset 0; `8:16:2048` the same device at offset 2048.
pub fn parse_dev_arg(arg: &str) -> Result<DevArg, DevArgError> {
    let (path, offset) = split_dev_arg(arg)?;
    if path.is_empty() {
        return Err(DevArgError::Empty(arg.to_string()));
    }
    if path.chars().any(char::is_whitespace) {
        return Err(DevArgError::Whitespace(path.to_string()));
    }
    Ok(DevArg::new(path, offset))
}

fn split_dev_arg(arg: &str) -> Result<(&str, u64), DevArgError> {
    if Path::new(arg).exists() {
        return Ok((arg, 0));
    }
    let Some((prefix, suffix)) = arg.rsplit_once(':') else {
        return Ok((arg, 0));
    };
    // `8:16`: a bare major:minor.
    if parse_decimal(prefix).is_some() && parse_decimal(suffix).is_some() {
        return Ok((arg, 0));
    }
    // A suffix that starts with a digit is meant as an offset; anything else is part of a
    // path (`pci-0000:00:04.0` ends in `04.0`, which is not a size either and stays a path).
    let looks_numeric = suffix.starts_with(|c: char| c.is_ascii_digit());
    match parse_sectors(suffix) {
        Ok(offset) => Ok((prefix, offset)),
        Err(err) if looks_numeric && !suffix.contains('.') => Err(DevArgError::Offset {
            arg: arg.to_string(),
            err,
        }),
        Err(_) => Ok((arg, 0)),
    }
}

/// What a member path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevKind {
    /// A block device (what the kernel target needs).
    Block,
    /// A regular file (usable with `amfctl table`, e.g. for loop devices or tests).
    File,
}

/// The identity of a member, to find the same device named twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevId {
    /// A block device number.
    Block {
        /// Major number.
        major: u64,
        /// Minor number.
        minor: u64,
    },
    /// A regular file: filesystem device and inode.
    File {
        /// `st_dev`.
        dev: u64,
        /// `st_ino`.
        ino: u64,
    },
}

/// Size and identity of a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DevInfo {
    /// Whole 512-byte sectors.
    pub sectors: u64,
    /// Block device or file.
    pub kind: DevKind,
    /// Identity.
    pub id: DevId,
}

/// Splits a Linux `dev_t` like glibc's `major()`/`minor()`.
pub fn split_dev_t(dev: u64) -> (u64, u64) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major, minor)
}

fn sysfs_sectors(major: u64, minor: u64) -> io::Result<u64> {
    // The same file as /sys/class/block/<name>/size, reached by number. It counts 512-byte
    // sectors whatever the logical block size.
    let text = fs::read_to_string(format!("/sys/dev/block/{major}:{minor}/size"))?;
    parse_decimal(text.trim()).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected content in /sys/dev/block/{major}:{minor}/size: {text:?}"),
        )
    })
}

/// Looks a member up: a block device (path or `major:minor`) or a regular file.
pub fn probe(path: &str) -> io::Result<DevInfo> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some((major, minor)) = parse_major_minor(path) {
                return Ok(DevInfo {
                    sectors: sysfs_sectors(major, minor)?,
                    kind: DevKind::Block,
                    id: DevId::Block { major, minor },
                });
            }
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    let ft = meta.file_type();
    if ft.is_file() {
        return Ok(DevInfo {
            sectors: meta.len() / SECTOR_SIZE,
            kind: DevKind::File,
            id: DevId::File {
                dev: meta.dev(),
                ino: meta.ino(),
            },
        });
    }
    if !ft.is_block_device() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a block device or regular file",
        ));
    }
    let (major, minor) = split_dev_t(meta.rdev());
    let sectors = match sysfs_sectors(major, minor) {
        Ok(s) => s,
        // No sysfs (a container): the size of a block device is where its end is.
        Err(_) => fs::File::open(path)?.seek(SeekFrom::End(0))? / SECTOR_SIZE,
    };
    Ok(DevInfo {
        sectors,
        kind: DevKind::Block,
        id: DevId::Block { major, minor },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_args() {
        let by_path = "/dev/disk/by-path/pci-0000:00:04.0";
        let by_id = "/dev/disk/by-id/wwn-x:part";
        let cases = [
            ("/dev/vdb", "/dev/vdb", 0),
            ("/dev/vdb:2048", "/dev/vdb", 2048),
            ("/dev/vdb:1M", "/dev/vdb", 2048),
            ("/dev/vdb:0", "/dev/vdb", 0),
            ("8:16", "8:16", 0),
            ("8:16:2048", "8:16", 2048),
            (by_path, by_path, 0),
            ("/dev/disk/by-path/pci-0000:00:04.0:2048", by_path, 2048),
            (by_id, by_id, 0),
        ];
        for (arg, path, offset) in cases {
            assert_eq!(parse_dev_arg(arg), Ok(DevArg::new(path, offset)), "{arg}");
        }
    }

    #[test]
    fn bad_dev_args() {
        assert!(matches!(parse_dev_arg(""), Err(DevArgError::Empty(_))));
        assert!(matches!(parse_dev_arg(":2048"), Err(DevArgError::Empty(_))));
        assert!(matches!(
            parse_dev_arg("/dev/a b"),
            Err(DevArgError::Whitespace(_))
        ));
        assert!(matches!(
            parse_dev_arg("/dev/vdb:12X"),
            Err(DevArgError::Offset { .. })
        ));
        assert!(matches!(
            parse_dev_arg("/dev/vdb:99999999999999999999"),
            Err(DevArgError::Offset { .. })
        ));
    }

    #[test]
    fn existing_path_with_colon_is_not_split() {
        let dir = std::env::temp_dir().join(format!("amfctl-dev-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("disk:7");
        fs::write(&p, vec![0u8; 4096]).unwrap();
        let s = p.to_str().unwrap();
        assert_eq!(parse_dev_arg(s), Ok(DevArg::new(s, 0)));
        assert_eq!(parse_dev_arg(&format!("{s}:8")), Ok(DevArg::new(s, 8)));
        let info = probe(s).unwrap();
        assert_eq!(info.sectors, 8);
        assert_eq!(info.kind, DevKind::File);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn dev_t_split() {
        // makedev(8, 16) and makedev(259, 1048577) as glibc encodes them.
        assert_eq!(split_dev_t(0x810), (8, 16));
        let (ma, mi) = (259u64, 0x10_0001u64);
        let dev = ((ma & 0xfff) << 8) | ((ma & !0xfff) << 32) | (mi & 0xff) | ((mi & !0xff) << 12);
        assert_eq!(split_dev_t(dev), (ma, mi));
    }

    #[test]
    fn probe_missing_path_fails() {
        let e = probe("/nonexistent/amfctl/disk").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }
}
