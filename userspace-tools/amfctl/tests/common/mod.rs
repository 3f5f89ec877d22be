// SPDX-License-Identifier: GPL-2.0
//! Helpers shared by the integration tests: scratch directories and running the binary.
//! Each test file uses a subset, hence the `dead_code` allowances.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output};

/// A scratch directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh directory, unique per test process and `tag`.
    pub fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("amfctl-test-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    /// A sparse file of `len` bytes.
    pub fn file(&self, name: &str, len: u64) -> String {
        let p = self.0.join(name);
        fs::File::create(&p).unwrap().set_len(len).unwrap();
        p.to_str().unwrap().to_string()
    }

    /// `n` sparse files `m0`, `m1`... of `len` bytes.
    #[allow(dead_code)]
    pub fn files(&self, n: usize, len: u64) -> Vec<String> {
        (0..n).map(|i| self.file(&format!("m{i}"), len)).collect()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Runs `amfctl` with `args` (never through a stand-in `dmsetup` from the environment).
pub fn amfctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_amfctl"))
        .args(args)
        .env_remove("AMFCTL_DMSETUP")
        .output()
        .unwrap()
}

/// A command's standard output as text.
#[allow(dead_code)]
pub fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// A command's standard error as text.
#[allow(dead_code)]
pub fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}
