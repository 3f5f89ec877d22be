// SPDX-License-Identifier: GPL-2.0
//! Fuzz DLM resource-name parsing: never panics, and whatever parses renders back the same.
#![no_main]

use amf_core::lock::ResourceName;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((group, res)) = ResourceName::parse(data) {
        let name = ResourceName::new(&group, res).expect("a parsed name renders");
        assert_eq!(name.as_bytes(), data);
    }
});
