// SPDX-License-Identifier: GPL-2.0
//! Fuzz the dm table parser: any argument list must parse or fail with a typed error, and the
//! replication parameters of a table it accepts must parse back from their echo unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let target_len = u64::from_le_bytes(data[..8].try_into().unwrap());
    let Ok(text) = std::str::from_utf8(&data[8..]) else {
        return;
    };
    let args: Vec<&str> = text.split_ascii_whitespace().collect();
    let Ok(spec) = amf_core::table::parse(&args, target_len) else {
        return;
    };
    let Some(c) = spec.cluster else { return };
    let Some(r) = c.replication else { return };
    // `dmsetup table`'s cluster words, then the echo, then the members as given.
    let mut params = format!(
        "{} group 00000000000000000000000000000001",
        spec.chunk_sectors
    );
    params.push_str(&format!(" cluster {} node {}", c.name, c.node));
    if c.lock_stripes != 1 {
        params.push_str(&format!(" lock_stripes {}", c.lock_stripes));
    }
    amf_core::table::write_replication(&r, &mut params).unwrap();
    let mut line = format!(
        "{} {} {params} {}",
        spec.level_name(),
        params.split_ascii_whitespace().count(),
        spec.members().len()
    );
    for m in spec.members() {
        line.push_str(&format!(" {} {}", m.path, m.offset));
    }
    let again: Vec<&str> = line.split_ascii_whitespace().collect();
    let echoed = amf_core::table::parse(&again, target_len).expect(&line);
    assert_eq!(echoed.cluster.unwrap().replication, Some(r), "{line}");
});
