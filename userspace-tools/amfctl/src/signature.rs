// SPDX-License-Identifier: GPL-2.0
//! Foreign signatures on a device that `amfctl format` is about to overwrite: file systems,
//! partition tables, other RAID and volume managers' labels, swap, encryption headers.
//!
//! The probes read the well-known magic numbers at their documented places, as `blkid` and
//! `wipefs` do (util-linux `libblkid/src/superblocks/*.c` and `partitions/*.c`). Short magics
//! (ext's two bytes, the MBR's `55 AA`) are confirmed by fields that random data does not
//! hold, so that a member that held another group's data is not taken for a file system.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

use crate::size::SECTOR_SIZE;

/// One signature found on a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// What it is, as `blkid` names it (`ext4`, `xfs`, `linux_raid_member`, `dos`, ...).
    pub kind: &'static str,
    /// Where its magic is, in bytes from the start of the device.
    pub offset: u64,
}

impl std::fmt::Display for Found {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (magic at byte {})", self.kind, self.offset)
    }
}

/// The first 128 KiB and the last 128 KiB of a device: where every probe below looks.
struct Window {
    head: Vec<u8>,
    /// Bytes from `tail_start` to the end of the device.
    tail: Vec<u8>,
    tail_start: u64,
    size: u64,
}

const HEAD: u64 = 128 << 10;
const TAIL: u64 = 128 << 10;

impl Window {
    fn read(f: &mut File, size: u64) -> io::Result<Window> {
        let mut head = vec![0u8; HEAD.min(size) as usize];
        f.seek(SeekFrom::Start(0))?;
        read_full(f, &mut head)?;
        let tail_start = size.saturating_sub(TAIL);
        let mut tail = vec![0u8; (size - tail_start) as usize];
        f.seek(SeekFrom::Start(tail_start))?;
        read_full(f, &mut tail)?;
        Ok(Window {
            head,
            tail,
            tail_start,
            size,
        })
    }

    /// `len` bytes at byte `at` of the device, if they lie in the window.
    fn at(&self, at: u64, len: usize) -> Option<&[u8]> {
        let end = at.checked_add(len as u64)?;
        if end > self.size {
            return None;
        }
        if end <= self.head.len() as u64 {
            return self.head.get(at as usize..end as usize);
        }
        let rel = at.checked_sub(self.tail_start)?;
        self.tail.get(rel as usize..rel as usize + len)
    }

    fn is(&self, at: u64, magic: &[u8]) -> bool {
        self.at(at, magic.len()) == Some(magic)
    }

    fn le16(&self, at: u64) -> Option<u16> {
        self.at(at, 2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }

    fn le32(&self, at: u64) -> Option<u32> {
        self.at(at, 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// Reads until `buf` is full or the end of the file (the rest stays zero).
fn read_full(f: &mut File, buf: &mut [u8]) -> io::Result<()> {
    let mut got = 0;
    while got < buf.len() {
        match f.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// md's superblock magic (`MD_SB_MAGIC`), little-endian on disk for 1.x, host order (here
/// little-endian) for 0.90.
const MD_MAGIC: u32 = 0xa92b_4efc;

fn probe_window(w: &Window) -> Vec<Found> {
    let mut found: Vec<Found> = Vec::new();
    let add = |found: &mut Vec<Found>, kind: &'static str, offset: u64| {
        found.push(Found { kind, offset })
    };

    // ext2/3/4: s_magic 0xEF53 at 1024 + 0x38, confirmed by s_log_block_size <= 6 (64 KiB
    // blocks) and s_rev_level <= 1.
    if w.le16(1024 + 0x38) == Some(0xef53)
        && w.le32(1024 + 24).is_some_and(|v| v <= 6)
        && w.le32(1024 + 76).is_some_and(|v| v <= 1)
    {
        let compat = w.le32(1024 + 0x5c).unwrap_or(0);
        let incompat = w.le32(1024 + 0x60).unwrap_or(0);
        // ext4: extents, 64bit, flex_bg...; ext3: has_journal.
        let kind = if incompat & !0x0006 != 0 {
            "ext4"
        } else if compat & 0x0004 != 0 {
            "ext3"
        } else {
            "ext2"
        };
        add(&mut found, kind, 1024 + 0x38);
    }
    if w.is(0, b"XFSB") {
        add(&mut found, "xfs", 0);
    }
    if w.is(0x10040, b"_BHRfS_M") {
        add(&mut found, "btrfs", 0x10040);
    }
    if w.is(1024, &0xf2f5_2010u32.to_le_bytes()) {
        add(&mut found, "f2fs", 1024);
    }
    if w.is(0, b"hsqs") {
        add(&mut found, "squashfs", 0);
    }
    if w.is(0x8001, b"CD001") {
        add(&mut found, "iso9660", 0x8001);
    }
    if w.is(3, b"NTFS    ") {
        add(&mut found, "ntfs", 3);
    }
    if w.is(0x52, b"FAT32   ") {
        add(&mut found, "vfat", 0x52);
    } else if w.is(0x36, b"FAT16   ") || w.is(0x36, b"FAT12   ") {
        add(&mut found, "vfat", 0x36);
    }
    // Swap: the signature ends the first page (4 KiB here; 64 KiB pages on some machines).
    for page in [4096u64, 8192, 16384, 65536] {
        if w.is(page - 10, b"SWAPSPACE2") || w.is(page - 10, b"SWAP-SPACE") {
            add(&mut found, "swap", page - 10);
            break;
        }
    }
    // LUKS 1 and 2 (LUKS2 has a second header at one of several offsets; the first is
    // enough unless it was wiped).
    if w.is(0, b"LUKS\xba\xbe") {
        add(&mut found, "crypto_LUKS", 0);
    } else if w.is(0x4000, b"SKUL\xba\xbe") {
        add(&mut found, "crypto_LUKS", 0x4000);
    }
    // LVM2 physical volume: "LABELONE" in one of the first four sectors, "LVM2 001" at +24.
    for s in 0..4u64 {
        let at = s * SECTOR_SIZE;
        if w.is(at, b"LABELONE") && w.is(at + 24, b"LVM2 001") {
            add(&mut found, "LVM2_member", at);
            break;
        }
    }
    // bcache: its UUID-like magic at 4096 + 24.
    if w.is(
        4096 + 24,
        &[
            0xc6, 0x85, 0x73, 0xf6, 0x4e, 0x1a, 0x45, 0xca, 0x82, 0x65, 0xf5, 0x7f, 0x48, 0xba,
            0x6d, 0x81,
        ],
    ) {
        add(&mut found, "bcache", 4096 + 24);
    }
    // md superblocks: 1.1 at 0, 1.2 at 4 KiB, 1.0 at the end (8 KiB from the end rounded
    // down to 4 KiB), each with major_version 1; 0.90 in the last 64 KiB-aligned 64 KiB
    // (major_version 0).
    let md1 = |at: u64| w.le32(at) == Some(MD_MAGIC) && w.le32(at + 4) == Some(1);
    let sectors = w.size / SECTOR_SIZE;
    let end_1_0 = sectors
        .checked_sub(16)
        .map(|s| (s & !7) * SECTOR_SIZE)
        .filter(|&at| at >= 8192);
    if let Some(at) = [Some(0), Some(4096), end_1_0]
        .into_iter()
        .flatten()
        .find(|&at| md1(at))
    {
        add(&mut found, "linux_raid_member", at);
    } else if w.size >= 128 << 10 {
        let at = (w.size & !0xffff) - 0x10000;
        if w.le32(at) == Some(MD_MAGIC) && w.le32(at + 4) == Some(0) {
            add(&mut found, "linux_raid_member", at);
        }
    }
    // Partition tables. GPT: "EFI PART" in LBA 1 (512- or 4096-byte sectors).
    if w.is(512, b"EFI PART") {
        add(&mut found, "gpt", 512);
    } else if w.is(4096, b"EFI PART") {
        add(&mut found, "gpt", 4096);
    } else if w.is(510, &[0x55, 0xaa]) {
        // A DOS label: the boot signature and four partition entries whose boot flags are
        // 0x00 or 0x80 (what fdisk writes; random data or a boot loader rarely is). A FAT or
        // NTFS boot sector carries 55 AA too: it was reported above.
        let entries_ok = (0..4u64).all(|i| matches!(w.at(446 + 16 * i, 1), Some([0x00 | 0x80])));
        let fs_boot_sector = found.iter().any(|f| f.kind == "vfat" || f.kind == "ntfs");
        if entries_ok && !fs_boot_sector {
            add(&mut found, "dos", 510);
        }
    }
    found
}

/// The foreign signatures on `path` (a block device or regular file): empty when none.
pub fn probe(path: &str) -> io::Result<Vec<Found>> {
    let mut f = File::open(path)?;
    let size = f.seek(SeekFrom::End(0))?;
    let w = Window::read(&mut f, size)?;
    Ok(probe_window(&w))
}

/// `ext4 (magic at byte 1080), dos (...)`.
pub fn describe(found: &[Found]) -> String {
    found
        .iter()
        .map(Found::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A device of `size` bytes with `bytes` written at each offset; what `probe` finds.
    fn found(size: u64, writes: &[(u64, &[u8])]) -> Vec<(&'static str, u64)> {
        let dir = std::env::temp_dir().join(format!(
            "amfctl-sig-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("dev");
        let mut f = File::create(&p).unwrap();
        f.set_len(size).unwrap();
        for (at, b) in writes {
            f.seek(SeekFrom::Start(*at)).unwrap();
            f.write_all(b).unwrap();
        }
        drop(f);
        let r = probe(p.to_str().unwrap()).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        r.into_iter().map(|f| (f.kind, f.offset)).collect()
    }

    const MIB: u64 = 1 << 20;

    #[test]
    fn blank_and_tiny_devices_have_none() {
        assert_eq!(found(8 * MIB, &[]), []);
        assert_eq!(found(0, &[]), []);
        assert_eq!(found(700, &[(510, &[0x55, 0xaa])]), [("dos", 510)]);
        assert_eq!(found(100, &[(0, b"XFSB")]), [("xfs", 0)]);
    }

    #[test]
    fn each_magic() {
        let md = |v: u32| [MD_MAGIC.to_le_bytes(), v.to_le_bytes()].concat();
        let size = 8 * MIB + 3 * 512;
        type Case = (Vec<(u64, Vec<u8>)>, (&'static str, u64));
        let cases: Vec<Case> = vec![
            (vec![(1080, vec![0x53, 0xef])], ("ext2", 1080)),
            (
                vec![(1080, vec![0x53, 0xef]), (1024 + 0x5c, vec![4])],
                ("ext3", 1080),
            ),
            (
                vec![(1080, vec![0x53, 0xef]), (1024 + 0x60, vec![0x40, 0x02])],
                ("ext4", 1080),
            ),
            (vec![(0, b"XFSB".to_vec())], ("xfs", 0)),
            (vec![(0x10040, b"_BHRfS_M".to_vec())], ("btrfs", 0x10040)),
            (vec![(4086, b"SWAPSPACE2".to_vec())], ("swap", 4086)),
            (vec![(65526, b"SWAP-SPACE".to_vec())], ("swap", 65526)),
            (
                vec![(512, b"LABELONE".to_vec()), (536, b"LVM2 001".to_vec())],
                ("LVM2_member", 512),
            ),
            (vec![(0, b"LUKS\xba\xbe".to_vec())], ("crypto_LUKS", 0)),
            (vec![(0, md(1))], ("linux_raid_member", 0)),
            (vec![(4096, md(1))], ("linux_raid_member", 4096)),
            // 1.0: (sectors - 16) rounded down to 8 sectors.
            (
                vec![(((size / 512 - 16) & !7) * 512, md(1))],
                ("linux_raid_member", ((size / 512 - 16) & !7) * 512),
            ),
            // 0.90: the last 64 KiB-aligned 64 KiB block.
            (
                vec![(8 * MIB - 65536, md(0))],
                ("linux_raid_member", 8 * MIB - 65536),
            ),
            (vec![(512, b"EFI PART".to_vec())], ("gpt", 512)),
            (
                vec![(510, vec![0x55, 0xaa]), (446, vec![0x80])],
                ("dos", 510),
            ),
            (
                vec![(0x52, b"FAT32   ".to_vec()), (510, vec![0x55, 0xaa])],
                ("vfat", 0x52),
            ),
            (
                vec![(3, b"NTFS    ".to_vec()), (510, vec![0x55, 0xaa])],
                ("ntfs", 3),
            ),
            (vec![(0x8001, b"CD001".to_vec())], ("iso9660", 0x8001)),
            (vec![(0, b"hsqs".to_vec())], ("squashfs", 0)),
            (vec![(1024, vec![0x10, 0x20, 0xf5, 0xf2])], ("f2fs", 1024)),
        ];
        for (writes, want) in cases {
            let w: Vec<(u64, &[u8])> = writes.iter().map(|(a, b)| (*a, &b[..])).collect();
            assert_eq!(found(size, &w), [want], "{writes:?}");
        }
    }

    #[test]
    fn short_magics_need_their_confirmation() {
        // ext's magic with an impossible block size or revision; 55 AA with boot flags that
        // are not 0x00/0x80; md's magic with another major version: random data, not labels.
        assert_eq!(found(MIB, &[(1080, &[0x53, 0xef]), (1048, &[7])]), []);
        assert_eq!(found(MIB, &[(1080, &[0x53, 0xef]), (1100, &[2])]), []);
        assert_eq!(found(MIB, &[(510, &[0x55, 0xaa]), (462, &[0x12])]), []);
        let md2 = [MD_MAGIC.to_le_bytes(), 2u32.to_le_bytes()].concat();
        assert_eq!(found(MIB, &[(4096, &md2)]), []);
        // Several at once are all reported.
        assert_eq!(
            found(MIB, &[(0, b"XFSB"), (512, b"EFI PART")]),
            [("xfs", 0), ("gpt", 512)]
        );
    }
}
