// SPDX-License-Identifier: GPL-2.0
//! The few device-mapper ioctls `amfctl monitor` needs, on `/dev/mapper/control`, as
//! `dmsetup ls`, `dmsetup status`, `dmsetup table` and `dmsetup wait` issue them
//! (`include/uapi/linux/dm-ioctl.h`, interface version 4):
//!
//! - `DM_LIST_DEVICES`: every mapped device's name and `dev_t`;
//! - `DM_TABLE_STATUS`: a device's event number and its targets' INFO status, or with
//!   `DM_STATUS_TABLE_FLAG` their table lines;
//! - `DM_DEV_WAIT`: sleeps until the device's event number differs from the one given
//!   (`dm_wait_event`), then answers as `DM_TABLE_STATUS`.
//!
//! Hand-written rather than the `devicemapper` crate: that one builds its bindings with
//! bindgen (libclang at build time, a dozen more crates) for the four structures below.
//! Encoding and decoding are plain functions over byte buffers (unit-tested); the `ioctl(2)`
//! call itself is this module's only `unsafe`.
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// The control node of device-mapper.
pub const CONTROL: &str = "/dev/mapper/control";

/// `sizeof(struct dm_ioctl)`.
pub const DM_IOCTL_SIZE: usize = 312;
/// `DM_NAME_LEN`.
pub const DM_NAME_LEN: usize = 128;
/// `sizeof(struct dm_target_spec)`.
const TARGET_SPEC_SIZE: usize = 40;
/// `sizeof(struct dm_name_list)` up to `name`.
const NAME_LIST_HEADER: usize = 12;

/// `DM_VERSION_MAJOR`; minor 0 is accepted by every kernel of that major.
const VERSION: [u32; 3] = [4, 0, 0];

/// `_IOWR(DM_IOCTL, nr, struct dm_ioctl)`.
const fn iowr(nr: u32) -> u32 {
    (3 << 30) | ((DM_IOCTL_SIZE as u32) << 16) | (0xfd << 8) | nr
}

/// `DM_VERSION`.
pub const DM_VERSION: u32 = iowr(0);
/// `DM_LIST_DEVICES`.
pub const DM_LIST_DEVICES: u32 = iowr(2);
/// `DM_DEV_WAIT`.
pub const DM_DEV_WAIT: u32 = iowr(8);
/// `DM_TABLE_STATUS`.
pub const DM_TABLE_STATUS: u32 = iowr(12);

/// `DM_STATUS_TABLE_FLAG`: the table lines instead of the INFO status.
pub const DM_STATUS_TABLE_FLAG: u32 = 1 << 4;
/// `DM_NOFLUSH_FLAG`: a status read that makes the target write nothing (thin pools).
pub const DM_NOFLUSH_FLAG: u32 = 1 << 11;
/// `DM_BUFFER_FULL_FLAG`: the answer did not fit; ask again with a larger buffer.
pub const DM_BUFFER_FULL_FLAG: u32 = 1 << 8;

// Offsets in struct dm_ioctl.
const OFF_DATA_SIZE: usize = 12;
const OFF_DATA_START: usize = 16;
const OFF_TARGET_COUNT: usize = 20;
const OFF_FLAGS: usize = 28;
const OFF_EVENT_NR: usize = 32;
const OFF_NAME: usize = 48;

/// The largest answer buffer asked for (a table of many targets); doubling from 16 KiB.
const MAX_BUFFER: usize = 4 << 20;

/// One target of a device: `<start> <length> <type> <params>` as `dmsetup status` or
/// `dmsetup table` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetLine {
    /// First sector.
    pub start: u64,
    /// Length in sectors.
    pub length: u64,
    /// Target type (`amf`).
    pub target_type: String,
    /// The target's status or table words.
    pub params: String,
}

impl std::fmt::Display for TargetLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {} {}",
            self.start, self.length, self.target_type, self.params
        )
    }
}

/// A device's answer to `DM_TABLE_STATUS` or `DM_DEV_WAIT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevStatus {
    /// The device's event number (`dmsetup info`'s "Event number").
    pub event_nr: u32,
    /// Its live table's targets.
    pub targets: Vec<TargetLine>,
}

fn get_u32(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

fn get_u64(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

fn put_u32(b: &mut [u8], off: usize, v: u32) {
    if let Some(s) = b.get_mut(off..off + 4) {
        s.copy_from_slice(&v.to_ne_bytes());
    }
}

/// A NUL-terminated string at `off`, at most `max` bytes.
fn get_cstr(b: &[u8], off: usize, max: usize) -> Option<String> {
    let s = b.get(off..)?;
    let s = &s[..s.len().min(max)];
    let end = s.iter().position(|&c| c == 0)?;
    Some(String::from_utf8_lossy(&s[..end]).into_owned())
}

/// A request buffer of `size` bytes (at least the header): version, sizes, flags, the
/// device name and event number filled in.
pub fn encode(size: usize, name: Option<&str>, flags: u32, event_nr: u32) -> io::Result<Vec<u8>> {
    let size = size.max(DM_IOCTL_SIZE);
    let mut b = vec![0u8; size];
    for (i, v) in VERSION.iter().enumerate() {
        put_u32(&mut b, 4 * i, *v);
    }
    put_u32(
        &mut b,
        OFF_DATA_SIZE,
        u32::try_from(size).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
    );
    put_u32(&mut b, OFF_DATA_START, DM_IOCTL_SIZE as u32);
    put_u32(&mut b, OFF_FLAGS, flags);
    put_u32(&mut b, OFF_EVENT_NR, event_nr);
    if let Some(n) = name {
        if n.is_empty() || n.len() >= DM_NAME_LEN || n.contains('\0') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("'{n}' is not a device-mapper device name"),
            ));
        }
        b[OFF_NAME..OFF_NAME + n.len()].copy_from_slice(n.as_bytes());
    }
    Ok(b)
}

fn malformed(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("malformed device-mapper answer: {what}"),
    )
}

/// The answer's data area (`data_start` to `data_size`).
fn data_of(b: &[u8]) -> io::Result<&[u8]> {
    let start = get_u32(b, OFF_DATA_START).ok_or_else(|| malformed("short header"))? as usize;
    let size = get_u32(b, OFF_DATA_SIZE).ok_or_else(|| malformed("short header"))? as usize;
    let end = size.min(b.len());
    b.get(start..end.max(start))
        .ok_or_else(|| malformed("data_start beyond the buffer"))
}

/// Whether the kernel said the answer did not fit.
pub fn buffer_full(b: &[u8]) -> bool {
    get_u32(b, OFF_FLAGS).is_some_and(|f| f & DM_BUFFER_FULL_FLAG != 0)
}

/// Decodes a `DM_LIST_DEVICES` answer: `(name, dev_t)` of each device.
pub fn decode_list(b: &[u8]) -> io::Result<Vec<(String, u64)>> {
    let data = data_of(b)?;
    let mut out = Vec::new();
    if data.is_empty() {
        // No devices: `data_size` is `data_start` (the kernel's `dev = 0` lies beyond it).
        return Ok(out);
    }
    let mut off = 0usize;
    loop {
        let dev = get_u64(data, off).ok_or_else(|| malformed("short name list"))?;
        if dev == 0 && out.is_empty() {
            // `nl->dev = 0`: no devices.
            return Ok(out);
        }
        let next = get_u32(data, off + 8).ok_or_else(|| malformed("short name list"))? as usize;
        let name = get_cstr(data, off + NAME_LIST_HEADER, DM_NAME_LEN)
            .ok_or_else(|| malformed("unterminated device name"))?;
        out.push((name, dev));
        if next == 0 {
            return Ok(out);
        }
        off = off
            .checked_add(next)
            .filter(|&o| o < data.len())
            .ok_or_else(|| malformed("name list entry beyond the buffer"))?;
    }
}

/// Decodes a `DM_TABLE_STATUS` (or `DM_DEV_WAIT`) answer.
pub fn decode_status(b: &[u8]) -> io::Result<DevStatus> {
    let event_nr = get_u32(b, OFF_EVENT_NR).ok_or_else(|| malformed("short header"))?;
    let count = get_u32(b, OFF_TARGET_COUNT).ok_or_else(|| malformed("short header"))?;
    let data = data_of(b)?;
    let mut targets = Vec::new();
    let mut off = 0usize;
    for i in 0..count {
        let start = get_u64(data, off).ok_or_else(|| malformed("short target spec"))?;
        let length = get_u64(data, off + 8).ok_or_else(|| malformed("short target spec"))?;
        let next = get_u32(data, off + 20).ok_or_else(|| malformed("short target spec"))? as usize;
        let target_type =
            get_cstr(data, off + 24, 16).ok_or_else(|| malformed("unterminated target type"))?;
        let params = get_cstr(data, off + TARGET_SPEC_SIZE, data.len())
            .ok_or_else(|| malformed("unterminated target status"))?;
        targets.push(TargetLine {
            start,
            length,
            target_type,
            params,
        });
        if i + 1 < count {
            // `next` counts from the start of the data area.
            if next <= off || next >= data.len() {
                return Err(malformed("target spec beyond the buffer"));
            }
            off = next;
        }
    }
    Ok(DevStatus { event_nr, targets })
}

/// An open `/dev/mapper/control`. Its calls may run from several threads at once.
#[derive(Debug)]
pub struct Control {
    file: File,
}

impl Control {
    /// Opens the control node and checks that the kernel speaks interface version 4.
    pub fn open() -> io::Result<Self> {
        Self::open_path(Path::new(CONTROL))
    }

    /// Opens another control node (tests).
    pub fn open_path(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        let c = Control { file };
        c.call(DM_VERSION, None, 0, 0)?;
        Ok(c)
    }

    /// Issues `cmd`, growing the buffer while the kernel says it is full.
    fn call(&self, cmd: u32, name: Option<&str>, flags: u32, event_nr: u32) -> io::Result<Vec<u8>> {
        let mut size = 16 << 10;
        loop {
            let mut b = encode(size, name, flags, event_nr)?;
            // SAFETY: `b` is a writable buffer of `data_size` bytes that starts with a
            // `struct dm_ioctl` (encode); the kernel writes at most `data_size` bytes of it.
            let r = unsafe {
                libc::ioctl(
                    self.file.as_raw_fd(),
                    cmd as libc::Ioctl,
                    b.as_mut_ptr() as *mut libc::c_void,
                )
            };
            if r < 0 {
                return Err(io::Error::last_os_error());
            }
            if !buffer_full(&b) {
                return Ok(b);
            }
            if size >= MAX_BUFFER {
                return Err(malformed("the answer does not fit in 4 MiB"));
            }
            size *= 2;
            if cmd == DM_DEV_WAIT {
                // The wait is over; what is left is reading the status, without waiting.
                return self.call(DM_TABLE_STATUS, name, flags, 0);
            }
        }
    }

    /// Every mapped device: `(name, dev_t)`.
    pub fn list_devices(&self) -> io::Result<Vec<(String, u64)>> {
        decode_list(&self.call(DM_LIST_DEVICES, None, 0, 0)?)
    }

    /// A device's event number and INFO status (`table`: its table lines instead), without
    /// a flush (`DM_NOFLUSH_FLAG`, as `dmsetup status --noflush`).
    pub fn table_status(&self, name: &str, table: bool) -> io::Result<DevStatus> {
        let flags = DM_NOFLUSH_FLAG | if table { DM_STATUS_TABLE_FLAG } else { 0 };
        decode_status(&self.call(DM_TABLE_STATUS, Some(name), flags, 0)?)
    }

    /// Sleeps until the device's event number is no longer `event_nr`, as `dmsetup wait
    /// <name> <event_nr>`; returns the event number then. `ENXIO`: the device is gone.
    pub fn wait(&self, name: &str, event_nr: u32) -> io::Result<u32> {
        let b = self.call(DM_DEV_WAIT, Some(name), DM_NOFLUSH_FLAG, event_nr)?;
        Ok(decode_status(&b)?.event_nr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers() {
        // As strace shows them for dmsetup.
        assert_eq!(DM_VERSION, 0xc138_fd00);
        assert_eq!(DM_LIST_DEVICES, 0xc138_fd02);
        assert_eq!(DM_DEV_WAIT, 0xc138_fd08);
        assert_eq!(DM_TABLE_STATUS, 0xc138_fd0c);
    }

    #[test]
    fn request_header() {
        let b = encode(1024, Some("r5"), DM_STATUS_TABLE_FLAG, 7).unwrap();
        assert_eq!(b.len(), 1024);
        assert_eq!(get_u32(&b, 0), Some(4));
        assert_eq!(get_u32(&b, 4), Some(0));
        assert_eq!(get_u32(&b, OFF_DATA_SIZE), Some(1024));
        assert_eq!(get_u32(&b, OFF_DATA_START), Some(312));
        assert_eq!(get_u32(&b, OFF_FLAGS), Some(16));
        assert_eq!(get_u32(&b, OFF_EVENT_NR), Some(7));
        assert_eq!(get_cstr(&b, OFF_NAME, DM_NAME_LEN).as_deref(), Some("r5"));
        // Never smaller than the header.
        assert_eq!(encode(10, None, 0, 0).unwrap().len(), DM_IOCTL_SIZE);
        for bad in ["", &"x".repeat(128), "a\0b"] {
            assert!(encode(1024, Some(bad), 0, 0).is_err(), "{bad:?}");
        }
        assert!(encode(1024, Some(&"x".repeat(127)), 0, 0).is_ok());
    }

    /// An answer: the header with `data_size`, then `data` at offset 312.
    fn answer(data: &[u8], count: u32, event_nr: u32, flags: u32) -> Vec<u8> {
        let mut b = encode(DM_IOCTL_SIZE + data.len() + 64, None, flags, event_nr).unwrap();
        put_u32(&mut b, OFF_DATA_SIZE, (DM_IOCTL_SIZE + data.len()) as u32);
        put_u32(&mut b, OFF_TARGET_COUNT, count);
        b[DM_IOCTL_SIZE..DM_IOCTL_SIZE + data.len()].copy_from_slice(data);
        b
    }

    fn name_entry(dev: u64, next: u32, name: &str) -> Vec<u8> {
        let mut e = dev.to_ne_bytes().to_vec();
        e.extend(next.to_ne_bytes());
        e.extend(name.as_bytes());
        e.push(0);
        while e.len() % 8 != 0 {
            e.push(0);
        }
        e
    }

    #[test]
    fn device_list() {
        let mut data = name_entry((253 << 8) | 3, 24, "r5");
        // Newer kernels put event_nr and flags after the name: `next` skips them.
        data.extend([7u8; 8]);
        data.extend(name_entry((253 << 8) | 4, 0, "mirror0"));
        let l = decode_list(&answer(&data, 0, 0, 0)).unwrap();
        assert_eq!(
            l,
            vec![
                ("r5".to_string(), (253 << 8) | 3),
                ("mirror0".to_string(), (253 << 8) | 4)
            ]
        );
        // No devices: nothing in the data area (what the kernel answers), or dev 0.
        assert_eq!(
            decode_list(&answer(&[], 0, 0, 0)).unwrap(),
            Vec::<(String, u64)>::new()
        );
        assert_eq!(
            decode_list(&answer(&[0; 16], 0, 0, 0)).unwrap(),
            Vec::<(String, u64)>::new()
        );
        // A `next` that points outside, or no terminator: errors, not panics.
        let data = name_entry(1, 4096, "x");
        assert!(decode_list(&answer(&data, 0, 0, 0)).is_err());
        let mut data = 1u64.to_ne_bytes().to_vec();
        data.extend(0u32.to_ne_bytes());
        data.extend(b"abc");
        assert!(decode_list(&answer(&data, 0, 0, 0)).is_err());
    }

    fn spec(start: u64, len: u64, next: u32, ty: &str, params: &str) -> Vec<u8> {
        let mut e = start.to_ne_bytes().to_vec();
        e.extend(len.to_ne_bytes());
        e.extend(0i32.to_ne_bytes());
        e.extend(next.to_ne_bytes());
        let mut t = [0u8; 16];
        t[..ty.len()].copy_from_slice(ty.as_bytes());
        e.extend(t);
        e.extend(params.as_bytes());
        e.push(0);
        while e.len() % 8 != 0 {
            e.push(0);
        }
        e
    }

    #[test]
    fn status_answer() {
        let first = spec(0, 1024, 0, "amf", "raid1 2 AD 1024/1024 idle 0");
        let next = first.len() as u32;
        let mut data = spec(0, 1024, next, "amf", "raid1 2 AD 1024/1024 idle 0");
        data.extend(spec(1024, 8, 0, "linear", "253:0 0"));
        let s = decode_status(&answer(&data, 2, 9, 0)).unwrap();
        assert_eq!(s.event_nr, 9);
        assert_eq!(s.targets.len(), 2);
        assert_eq!(
            s.targets[0].to_string(),
            "0 1024 amf raid1 2 AD 1024/1024 idle 0"
        );
        assert_eq!(s.targets[1].to_string(), "1024 8 linear 253:0 0");
        // No table: no targets.
        assert_eq!(
            decode_status(&answer(&[], 0, 3, 0)).unwrap().targets,
            vec![]
        );
        // Counted targets that are not there.
        assert!(decode_status(&answer(&data[..first.len()], 2, 9, 0)).is_err());
        assert!(decode_status(&answer(&data[..20], 1, 9, 0)).is_err());
        // The buffer-full flag.
        assert!(buffer_full(&answer(&[], 0, 0, DM_BUFFER_FULL_FLAG)));
        assert!(!buffer_full(&answer(&[], 0, 0, 0)));
    }

    #[test]
    fn missing_control_node() {
        let e = Control::open_path(Path::new("/nonexistent/control")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().starts_with("/nonexistent/control: "), "{e}");
    }
}
