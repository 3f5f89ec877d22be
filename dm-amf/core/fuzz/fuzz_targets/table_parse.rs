// SPDX-License-Identifier: GPL-2.0
//! Fuzz the dm table parser: any argument list must parse or fail with a typed error.
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
    let _ = amf_core::table::parse(&args, target_len);
});
