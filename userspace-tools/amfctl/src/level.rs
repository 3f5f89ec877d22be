// SPDX-License-Identifier: GPL-2.0
//! `--level`: the table's level names and mdadm's spellings of them.

/// The levels, as tables name them, with the other spellings `--level` takes (mdadm's).
pub const LEVELS: &[(&str, &[&str])] = &[
    ("raid0", &["0", "stripe"]),
    ("raid1", &["1", "mirror"]),
    ("raid5", &["5"]),
    ("raid6", &["6"]),
    ("raid10", &["10"]),
];

/// The table's name of a `--level` value (`5`, `raid5`, `RAID5` -> `raid5`); `None` if it
/// names no level.
pub fn canonical(name: &str) -> Option<&'static str> {
    let n = name.trim().to_ascii_lowercase();
    LEVELS
        .iter()
        .find(|(table, other)| *table == n || other.contains(&n.as_str()))
        .map(|(table, _)| *table)
}

/// `raid0 (0, stripe), raid1 (1, mirror), raid5 (5), raid6 (6), raid10 (10)`.
pub fn valid_list() -> String {
    LEVELS
        .iter()
        .map(|(t, o)| format!("{t} ({})", o.join(", ")))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings() {
        for (given, want) in [
            ("raid5", "raid5"),
            ("5", "raid5"),
            ("RAID6", "raid6"),
            ("0", "raid0"),
            ("stripe", "raid0"),
            ("mirror", "raid1"),
            ("10", "raid10"),
            ("raid10", "raid10"),
        ] {
            assert_eq!(canonical(given), Some(want), "{given}");
        }
        for bad in ["raid4", "4", "", "raid", "linear", "55"] {
            assert_eq!(canonical(bad), None, "{bad}");
        }
        assert_eq!(
            valid_list(),
            "raid0 (0, stripe), raid1 (1, mirror), raid5 (5), raid6 (6), raid10 (10)"
        );
    }
}
