// SPDX-License-Identifier: GPL-2.0
//! Running `dmsetup`.
//!
//! The program is `dmsetup` from `PATH`, or what the environment variable `AMFCTL_DMSETUP`
//! names (tests use a stand-in script; an administrator may point at a specific build).

use std::ffi::OsString;
use std::process::{Command, Output};

/// Environment variable naming the `dmsetup` program to run.
pub const DMSETUP_ENV: &str = "AMFCTL_DMSETUP";

/// Why `dmsetup` did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum DmsetupError {
    /// It could not be started at all.
    #[error("cannot run '{program}': {source}{hint}", program = .program.to_string_lossy(), hint = spawn_hint(.source))]
    Spawn {
        /// Program name or path.
        program: OsString,
        /// Why.
        source: std::io::Error,
    },
    /// It ran and failed.
    #[error("{command} failed ({status}){}", stderr_block(.stderr))]
    Failed {
        /// The command as a shell would show it.
        command: String,
        /// Exit status, as text.
        status: String,
        /// What it printed on stderr.
        stderr: String,
    },
}

fn spawn_hint(e: &std::io::Error) -> &'static str {
    if e.kind() == std::io::ErrorKind::NotFound {
        " (is dmsetup installed? Debian: apt-get install dmsetup)"
    } else {
        ""
    }
}

fn stderr_block(stderr: &str) -> String {
    let t = stderr.trim_end();
    if t.is_empty() {
        String::new()
    } else {
        let lines: Vec<String> = t.lines().map(|l| format!("  {l}")).collect();
        format!(":\n{}", lines.join("\n"))
    }
}

/// The `dmsetup` program to run.
pub fn program() -> OsString {
    std::env::var_os(DMSETUP_ENV)
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| OsString::from("dmsetup"))
}

/// Quotes a word for display as a shell would need it.
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Runs `dmsetup <args>` and returns its output if it exited 0.
pub fn run(args: &[String]) -> Result<Output, DmsetupError> {
    let program = program();
    let out = Command::new(&program)
        .args(args)
        .output()
        .map_err(|source| DmsetupError::Spawn {
            program: program.clone(),
            source,
        })?;
    if out.status.success() {
        return Ok(out);
    }
    let mut command = shell_quote(&program.to_string_lossy());
    for a in args {
        command.push(' ');
        command.push_str(&shell_quote(a));
    }
    let status = match out.status.code() {
        Some(c) => format!("exit status {c}"),
        None => "killed by a signal".to_string(),
    };
    Err(DmsetupError::Failed {
        command,
        status,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Arguments of `dmsetup create`.
pub fn create_args(name: &str, table: &str, noudevsync: bool) -> Vec<String> {
    let mut args = vec!["create".to_string(), name.to_string()];
    if noudevsync {
        args.push("--noudevsync".to_string());
    }
    args.push("--table".to_string());
    args.push(table.to_string());
    args
}

/// Arguments of `dmsetup status` for `amf` targets.
pub fn status_args(name: Option<&str>) -> Vec<String> {
    let mut args = vec![
        "status".to_string(),
        "--target".to_string(),
        "amf".to_string(),
    ];
    if let Some(n) = name {
        args.push(n.to_string());
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argument_lists() {
        assert_eq!(
            create_args("vol0", "0 16 amf raid0 1 8 2 /dev/a 0 /dev/b 0", true),
            [
                "create",
                "vol0",
                "--noudevsync",
                "--table",
                "0 16 amf raid0 1 8 2 /dev/a 0 /dev/b 0"
            ]
        );
        assert_eq!(
            create_args("v", "t", false),
            ["create", "v", "--table", "t"]
        );
        assert_eq!(status_args(None), ["status", "--target", "amf"]);
        assert_eq!(
            status_args(Some("vol0")),
            ["status", "--target", "amf", "vol0"]
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("vol0"), "vol0");
        assert_eq!(shell_quote("0 16 amf"), "'0 16 amf'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn failure_message_carries_stderr() {
        let e = DmsetupError::Failed {
            command: "dmsetup create vol0".to_string(),
            status: "exit status 1".to_string(),
            stderr:
                "device-mapper: reload ioctl on vol0  failed: Invalid argument\nCommand failed.\n"
                    .to_string(),
        };
        assert_eq!(
            e.to_string(),
            "dmsetup create vol0 failed (exit status 1):\n  device-mapper: reload ioctl on vol0  failed: Invalid argument\n  Command failed."
        );
    }
}
