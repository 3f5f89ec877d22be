// SPDX-License-Identifier: GPL-2.0
//! Placeholder until the simulator lands.
fn main() {}
