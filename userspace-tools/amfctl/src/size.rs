// SPDX-License-Identifier: GPL-2.0
//! Sizes on the command line: a plain number is 512-byte sectors, a number with a binary
//! suffix (`K`, `M`, `G`, `T`, optionally followed by `iB`) is that many KiB, MiB, GiB or
//! TiB. The chunk size is the exception ([`parse_chunk`]): a plain number is KiB, as
//! mdadm's `--chunk`.

use amf_core::table::parse_decimal;

/// Bytes per sector, as device-mapper counts.
pub const SECTOR_SIZE: u64 = 512;

/// Why a size was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    /// Nothing given.
    #[error("empty size")]
    Empty,
    /// Not `<digits>[suffix]`.
    #[error("invalid size '{0}': expected sectors (e.g. 2048) or a number with a K, M, G or T suffix (e.g. 64K)")]
    Syntax(String),
    /// `--chunk` is not `<digits>[suffix]`.
    #[error("invalid chunk size '{0}': expected KiB (e.g. 64, as mdadm), a number with a K, M or G suffix (e.g. 64K, 1M), or sectors with an s suffix (e.g. 128s)")]
    ChunkSyntax(String),
    /// Does not fit in a `u64` of sectors.
    #[error("size '{0}' is too large")]
    Overflow(String),
}

/// Parses a size and returns it in sectors.
///
/// `2048` and `2048s` are 2048 sectors; `64K`/`64k`/`64KiB` are 65536 bytes = 128 sectors;
/// `M`, `G` and `T` are the next powers of 1024.
pub fn parse_sectors(text: &str) -> Result<u64, SizeError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(SizeError::Empty);
    }
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, suffix) = s.split_at(digits_end);
    let value = parse_decimal(digits).ok_or_else(|| {
        if digits.is_empty() {
            SizeError::Syntax(text.to_string())
        } else {
            SizeError::Overflow(text.to_string())
        }
    })?;
    let unit = suffix.strip_suffix("iB").unwrap_or(suffix);
    let shift = match unit {
        "" | "s" | "S" if !suffix.ends_with("iB") => return Ok(value),
        "k" | "K" => 10,
        "m" | "M" => 20,
        "g" | "G" => 30,
        "t" | "T" => 40,
        _ => return Err(SizeError::Syntax(text.to_string())),
    };
    // Every suffix is a multiple of 1 KiB, so the result is always whole sectors.
    value
        .checked_mul((1u64 << shift) / SECTOR_SIZE)
        .ok_or_else(|| SizeError::Overflow(text.to_string()))
}

/// Parses `--chunk` and returns it in sectors: as mdadm, a plain number is KiB (`64` is
/// 64 KiB = 128 sectors); `K`, `M`, `G`, `T` (optionally followed by `iB`) as in
/// [`parse_sectors`]; sectors only when written so, with an `s` suffix (`128s`).
pub fn parse_chunk(text: &str) -> Result<u64, SizeError> {
    let s = text.trim();
    if !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()) {
        return parse_sectors(&format!("{s}K")).map_err(|e| match e {
            SizeError::Overflow(_) => SizeError::Overflow(text.to_string()),
            _ => SizeError::Syntax(text.to_string()),
        });
    }
    parse_sectors(s).map_err(|e| match e {
        SizeError::Syntax(_) => SizeError::ChunkSyntax(text.to_string()),
        e => e,
    })
}

/// A sector count for people: `1.00 GiB`, `512 B`.
pub fn human(sectors: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let bytes = u128::from(sectors) * u128::from(SECTOR_SIZE);
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut unit = 0;
    let mut div: u128 = 1024;
    while unit + 1 < UNITS.len() && bytes >= div * 1024 {
        div *= 1024;
        unit += 1;
    }
    // Two decimals, computed in integers so that large sizes stay exact.
    let hundredths = (bytes * 100 + div / 2) / div;
    format!(
        "{}.{:02} {}",
        hundredths / 100,
        hundredths % 100,
        UNITS[unit]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_numbers_are_sectors() {
        assert_eq!(parse_sectors("0"), Ok(0));
        assert_eq!(parse_sectors("2048"), Ok(2048));
        assert_eq!(parse_sectors("128s"), Ok(128));
        assert_eq!(parse_sectors(" 8 "), Ok(8));
        assert_eq!(parse_sectors("18446744073709551615"), Ok(u64::MAX));
    }

    #[test]
    fn binary_suffixes() {
        assert_eq!(parse_sectors("4K"), Ok(8));
        assert_eq!(parse_sectors("64k"), Ok(128));
        assert_eq!(parse_sectors("64KiB"), Ok(128));
        assert_eq!(parse_sectors("1M"), Ok(2048));
        assert_eq!(parse_sectors("1m"), Ok(2048));
        assert_eq!(parse_sectors("1G"), Ok(2_097_152));
        assert_eq!(parse_sectors("1GiB"), Ok(2_097_152));
        assert_eq!(parse_sectors("2T"), Ok(2 * 1024 * 2_097_152));
    }

    #[test]
    fn bad_sizes() {
        assert_eq!(parse_sectors(""), Err(SizeError::Empty));
        assert_eq!(parse_sectors("  "), Err(SizeError::Empty));
        for bad in [
            "K", "-1", "+1", "1.5M", "0x10", "12X", "1KB", "1 K", "sK", "1iB", "1siB",
        ] {
            assert!(
                matches!(parse_sectors(bad), Err(SizeError::Syntax(_))),
                "{bad:?} -> {:?}",
                parse_sectors(bad)
            );
        }
        assert_eq!(
            parse_sectors("1K1"),
            Err(SizeError::Syntax("1K1".to_string()))
        );
        assert!(matches!(
            parse_sectors("18446744073709551616"),
            Err(SizeError::Overflow(_))
        ));
        assert!(matches!(
            parse_sectors("99999999999T"),
            Err(SizeError::Overflow(_))
        ));
        assert_eq!(parse_sectors("1K"), Ok(2));
    }

    #[test]
    fn chunks_are_kib_unless_written_otherwise() {
        assert_eq!(parse_chunk("64"), Ok(128));
        assert_eq!(parse_chunk(" 4 "), Ok(8));
        assert_eq!(parse_chunk("512"), Ok(1024));
        assert_eq!(parse_chunk("64K"), Ok(128));
        assert_eq!(parse_chunk("64KiB"), Ok(128));
        assert_eq!(parse_chunk("1M"), Ok(2048));
        assert_eq!(parse_chunk("128s"), Ok(128));
        assert_eq!(parse_chunk("0"), Ok(0));
        for bad in ["", "x", "64X", "1.5", "-8", "64 K"] {
            assert!(
                matches!(
                    parse_chunk(bad),
                    Err(SizeError::ChunkSyntax(_) | SizeError::Syntax(_) | SizeError::Empty)
                ),
                "{bad:?} -> {:?}",
                parse_chunk(bad)
            );
        }
        assert!(parse_chunk("x")
            .unwrap_err()
            .to_string()
            .contains("expected KiB (e.g. 64, as mdadm)"));
        assert!(matches!(
            parse_chunk("18446744073709551615"),
            Err(SizeError::Overflow(_))
        ));
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(1), "512 B");
        assert_eq!(human(2), "1.00 KiB");
        assert_eq!(human(2_097_152), "1.00 GiB");
        assert_eq!(human(3 * 1024 * 1024), "1.50 GiB");
        assert_eq!(human(u64::MAX), "8192.00 EiB");
    }
}
