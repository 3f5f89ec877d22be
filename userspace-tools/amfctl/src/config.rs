// SPDX-License-Identifier: GPL-2.0
//! The server's configuration file, `/etc/amf/amf.conf` (TOML), which `amfctl assemble`
//! builds the volumes from: this server's identity in the cluster and one `[group.<uuid>]`
//! table per redundancy group (`Documentation/admin-guide.rst`, "The configuration file").
//!
//! ```toml
//! node = 2                      # this server's corosync node id (clustered groups)
//! cluster = "amfcl"             # corosync's totem.cluster_name (clustered groups)
//!
//! [group.6a1f0c2e-93b4-4d5e-8f70-1a2b3c4d5e6f]
//! name = "r5"                   # /dev/mapper/r5
//! clustered = true              # cluster <cluster> node <node>
//! lock_stripes = 8
//! peers = ["1@10.0.0.1:7789", "2@10.0.0.2:7789"]
//! auth_key = "dm-amf:grp1"
//! secret_file = "/etc/amf/secret"
//! transport = "tcp"
//! ppl = true
//! size = "1G"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use amf_core::superblock::{Uuid, UuidText};
use serde::Deserialize;

use crate::superblock::parse_uuid;
use crate::table::ClusterRequest;

/// Where `amfctl assemble` reads its configuration unless `--config` says otherwise.
pub const DEFAULT_PATH: &str = "/etc/amf/amf.conf";

/// Largest `lock_stripes` the table takes.
const MAX_LOCK_STRIPES: u64 = 1 << 20;
/// Largest corosync node id the table's `node <id>` takes.
const MAX_NODE: u64 = 2_147_483_647;
/// device-mapper's name limit (DM_NAME_LEN - 1).
const MAX_VOLUME_NAME: usize = 127;

/// Why the configuration file was refused. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {err}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        err: std::io::Error,
    },
    /// Not valid TOML, or a key that does not exist or has the wrong type.
    #[error("{path}: {message}")]
    Syntax {
        /// The file.
        path: String,
        /// The parser's message (with line and column).
        message: String,
    },
    /// Valid TOML, but a value is not acceptable.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong, naming the key.
        message: String,
    },
}

/// A `size` value: sectors as a number, or a string with a K/M/G/T suffix (or `s`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum SizeValue {
    Sectors(u64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    node: Option<u64>,
    cluster: Option<String>,
    #[serde(default)]
    group: BTreeMap<String, RawGroup>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    name: String,
    #[serde(default)]
    clustered: bool,
    lock_stripes: Option<u64>,
    #[serde(default)]
    peers: Vec<String>,
    auth_key: Option<String>,
    secret_file: Option<PathBuf>,
    transport: Option<String>,
    #[serde(default)]
    ppl: bool,
    size: Option<SizeValue>,
}

/// The whole file, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The file it came from (for messages).
    pub path: String,
    /// This server's corosync node id.
    pub node: Option<u32>,
    /// The corosync cluster name.
    pub cluster: Option<String>,
    /// The groups, in the file's key order (by UUID text).
    pub groups: Vec<GroupConfig>,
}

/// One `[group.<uuid>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    /// The group UUID (the table key).
    pub uuid: Uuid,
    /// The volume's device-mapper name.
    pub name: String,
    /// Cluster mode: `cluster <cluster> node <node>` in the table.
    pub clustered: bool,
    /// `lock_stripes <n>`.
    pub lock_stripes: Option<u64>,
    /// `peers`: every AMF of the group, `node@a.b.c.d:port`.
    pub peers: Vec<String>,
    /// `auth_key <description>`.
    pub auth_key: Option<String>,
    /// A file holding the shared secret, added as the `auth_key` logon key before the
    /// table is loaded (as `amfctl key-add --secret-file`).
    pub secret_file: Option<PathBuf>,
    /// `transport tcp|rdma`.
    pub transport: Option<String>,
    /// `ppl`.
    pub ppl: bool,
    /// The volume size in sectors (default: the largest that fits the data area).
    pub size: Option<u64>,
    /// With `clustered`: the server's cluster name and node id (copied from the top).
    pub cluster: Option<(String, u32)>,
}

impl GroupConfig {
    /// The UUID as the table prints it.
    pub fn uuid_text(&self) -> String {
        UuidText(&self.uuid).to_string()
    }

    /// The cluster part of the table request.
    pub fn cluster_request(&self) -> ClusterRequest {
        let Some((name, node)) = &self.cluster else {
            return ClusterRequest::default();
        };
        ClusterRequest {
            name: Some(name.clone()),
            node: Some(node.to_string()),
            lock_stripes: self.lock_stripes.map(|n| n.to_string()),
            peers: self.peers.clone(),
            auth_key: self.auth_key.clone(),
            transport: self.transport.clone(),
        }
    }
}

impl Config {
    /// The group a volume name or group UUID (any spelling) names.
    pub fn find(&self, what: &str) -> Option<&GroupConfig> {
        let uuid = parse_uuid(what).ok();
        self.groups
            .iter()
            .find(|g| g.name == what || Some(g.uuid) == uuid)
    }

    /// The group of a UUID.
    pub fn group(&self, uuid: &Uuid) -> Option<&GroupConfig> {
        self.groups.iter().find(|g| &g.uuid == uuid)
    }
}

/// Reads and checks a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|err| ConfigError::Read {
        path: shown.clone(),
        err,
    })?;
    parse(&text, &shown)
}

/// A valid device-mapper name for a volume: 1 to 127 characters, no `/`, no whitespace or
/// control characters, not `.` or `..`.
pub fn volume_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("is empty".to_string());
    }
    if name.len() > MAX_VOLUME_NAME {
        return Some(format!("is longer than {MAX_VOLUME_NAME} bytes"));
    }
    if name == "." || name == ".." {
        return Some("cannot be '.' or '..'".to_string());
    }
    if let Some(c) = name
        .chars()
        .find(|c| *c == '/' || c.is_whitespace() || c.is_control())
    {
        return Some(format!(
            "contains {c:?} (no '/', spaces or control characters)"
        ));
    }
    None
}

/// Parses and checks the text of a configuration file (`path` only names it in messages).
pub fn parse(text: &str, path: &str) -> Result<Config, ConfigError> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
        path: path.to_string(),
        message: e.to_string().trim_end().to_string(),
    })?;
    let invalid = |message: String| ConfigError::Invalid {
        path: path.to_string(),
        message,
    };
    let node = match raw.node {
        None => None,
        Some(n) if (1..=MAX_NODE).contains(&n) => Some(n as u32),
        Some(n) => {
            return Err(invalid(format!(
                "node = {n}: a corosync node id is 1 to {MAX_NODE}"
            )))
        }
    };
    if let Some(c) = &raw.cluster {
        crate::cluster::check_name(c).map_err(|e| invalid(format!("cluster = {c:?}: {e}")))?;
    }
    let mut groups: Vec<GroupConfig> = Vec::new();
    for (key, g) in raw.group {
        let here = format!("[group.{key}]");
        let uuid = parse_uuid(&key).map_err(|_| {
            invalid(format!(
                "{here}: the key must be the group UUID (32 hex digits, in 8-4-4-4-12 groups \
                 or without dashes; amfctl examine shows it)"
            ))
        })?;
        if uuid == [0; 16] {
            return Err(invalid(format!(
                "{here}: the group UUID cannot be all zero"
            )));
        }
        if let Some(other) = groups.iter().find(|o| o.uuid == uuid) {
            return Err(invalid(format!(
                "{here}: group {} is configured twice (as volume {} too)",
                UuidText(&uuid),
                other.name
            )));
        }
        if let Some(p) = volume_name_problem(&g.name) {
            return Err(invalid(format!("{here}: name = {:?} {p}", g.name)));
        }
        if let Some(other) = groups.iter().find(|o| o.name == g.name) {
            return Err(invalid(format!(
                "{here}: name = {:?} is also the name of group {}",
                g.name,
                other.uuid_text()
            )));
        }
        let cluster = if g.clustered {
            match (&raw.cluster, node) {
                (Some(c), Some(n)) => Some((c.clone(), n)),
                _ => {
                    return Err(invalid(format!(
                        "{here}: clustered = true needs this server's identity at the top of \
                         the file: node = <corosync node id> and cluster = \"<cluster name>\""
                    )))
                }
            }
        } else {
            for (set, k) in [
                (g.lock_stripes.is_some(), "lock_stripes"),
                (!g.peers.is_empty(), "peers"),
                (g.auth_key.is_some(), "auth_key"),
                (g.secret_file.is_some(), "secret_file"),
                (g.transport.is_some(), "transport"),
            ] {
                if set {
                    return Err(invalid(format!(
                        "{here}: {k} is for clustered groups only (set clustered = true)"
                    )));
                }
            }
            None
        };
        if let Some(n) = g.lock_stripes {
            if !(1..=MAX_LOCK_STRIPES).contains(&n) {
                return Err(invalid(format!(
                    "{here}: lock_stripes = {n}: 1 to {MAX_LOCK_STRIPES}"
                )));
            }
        }
        for p in &g.peers {
            crate::table::peer_problem(p)
                .map_err(|e| invalid(format!("{here}: peers: {p:?}: {e}")))?;
        }
        if !g.peers.is_empty() {
            if !(2..=16).contains(&g.peers.len()) {
                return Err(invalid(format!(
                    "{here}: peers lists {} AMFs: 2 to 16, this server included",
                    g.peers.len()
                )));
            }
            let mine = node.map(|n| format!("{n}@"));
            if mine.is_some_and(|m| !g.peers.iter().any(|p| p.starts_with(&m))) {
                return Err(invalid(format!(
                    "{here}: peers must include this server (node = {})",
                    node.unwrap_or(0)
                )));
            }
            if g.auth_key.is_none() {
                return Err(invalid(format!(
                    "{here}: peers needs auth_key = \"<prefix>:<name>\" (the logon key of the \
                     group's shared secret)"
                )));
            }
        }
        if let Some(k) = &g.auth_key {
            crate::table::auth_key_problem(k)
                .map_err(|e| invalid(format!("{here}: auth_key = {k:?}: {e}")))?;
            if g.peers.is_empty() {
                return Err(invalid(format!(
                    "{here}: auth_key is for peers (set peers)"
                )));
            }
        }
        if g.secret_file.is_some() && g.auth_key.is_none() {
            return Err(invalid(format!("{here}: secret_file needs auth_key")));
        }
        if let Some(t) = &g.transport {
            if t != "tcp" && t != "rdma" {
                return Err(invalid(format!(
                    "{here}: transport = {t:?}: expected \"tcp\" or \"rdma\""
                )));
            }
            if g.peers.is_empty() {
                return Err(invalid(format!(
                    "{here}: transport is for peers (set peers)"
                )));
            }
        }
        let size = match &g.size {
            None => None,
            Some(SizeValue::Sectors(0)) => {
                return Err(invalid(format!(
                    "{here}: size = 0: give sectors or K/M/G/T"
                )))
            }
            Some(SizeValue::Sectors(s)) => Some(*s),
            Some(SizeValue::Text(t)) => Some(
                crate::size::parse_sectors(t)
                    .map_err(|e| invalid(format!("{here}: size = {t:?}: {e}")))?,
            ),
        };
        groups.push(GroupConfig {
            uuid,
            name: g.name,
            clustered: g.clustered,
            lock_stripes: g.lock_stripes,
            peers: g.peers,
            auth_key: g.auth_key,
            secret_file: g.secret_file,
            transport: g.transport,
            ppl: g.ppl,
            size,
            cluster,
        });
    }
    Ok(Config {
        path: path.to_string(),
        node,
        cluster: raw.cluster,
        groups,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const U1: &str = "6a1f0c2e-93b4-4d5e-8f70-1a2b3c4d5e6f";
    const U2: &str = "0123456789abcdef0123456789abcdef";

    fn err(text: &str) -> String {
        parse(text, "amf.conf").unwrap_err().to_string()
    }

    #[test]
    fn full_file() {
        let c = parse(
            &format!(
                "# a comment\nnode = 2\ncluster = \"amfcl\"\n\n\
                 [group.{U1}]\nname = \"r5\"\nclustered = true\nlock_stripes = 8\n\
                 peers = [\"2@10.0.0.2:7789\", \"1@10.0.0.1:7789\"]\n\
                 auth_key = \"dm-amf:grp1\"\nsecret_file = \"/etc/amf/secret\"\n\
                 transport = \"rdma\"\nppl = true\nsize = \"1G\"\n\n\
                 [group.{U2}]\nname = \"local0\"\nsize = 4096\n"
            ),
            "amf.conf",
        )
        .unwrap();
        assert_eq!(c.node, Some(2));
        assert_eq!(c.cluster.as_deref(), Some("amfcl"));
        assert_eq!(c.groups.len(), 2);
        // Key order: 0123... before 6a1f...
        let (l, r5) = (&c.groups[0], &c.groups[1]);
        assert_eq!(l.name, "local0");
        assert_eq!(l.size, Some(4096));
        assert!(!l.clustered);
        assert_eq!(l.cluster_request(), ClusterRequest::default());
        assert_eq!(l.uuid_text(), "01234567-89ab-cdef-0123-456789abcdef");
        assert_eq!(r5.size, Some(2 << 20));
        assert!(r5.ppl);
        assert_eq!(
            r5.secret_file.as_deref(),
            Some(Path::new("/etc/amf/secret"))
        );
        assert_eq!(
            r5.cluster_request(),
            ClusterRequest {
                name: Some("amfcl".into()),
                node: Some("2".into()),
                lock_stripes: Some("8".into()),
                peers: vec!["2@10.0.0.2:7789".into(), "1@10.0.0.1:7789".into()],
                auth_key: Some("dm-amf:grp1".into()),
                transport: Some("rdma".into()),
            }
        );
        assert_eq!(c.find("r5").map(|g| g.uuid), Some(r5.uuid));
        assert_eq!(c.find(&U1.to_uppercase()).map(|g| &g.name), Some(&r5.name));
        assert_eq!(
            c.find("6a1f0c2e93b44d5e8f701a2b3c4d5e6f").map(|g| &g.name),
            Some(&r5.name)
        );
        assert!(c.find("nope").is_none());
        // An empty file is a valid configuration without groups.
        assert_eq!(parse("", "x").unwrap().groups, []);
    }

    #[test]
    fn refusals_name_the_key() {
        let g = |body: &str| format!("[group.{U1}]\nname = \"v\"\n{body}");
        let cases: &[(String, &str)] = &[
            ("nodes = 1\n".into(), "unknown field `nodes`"),
            (g("colour = 1\n"), "unknown field `colour`"),
            (
                "[group.abc]\nname = \"v\"\n".into(),
                "[group.abc]: the key must be the group UUID",
            ),
            (
                format!("[group.{}]\nname = \"v\"\n", "0".repeat(32)),
                "the group UUID cannot be all zero",
            ),
            (
                format!(
                    "[group.{U1}]\nname = \"a\"\n[group.{}]\nname = \"b\"\n",
                    U1.replace('-', "")
                ),
                "is configured twice (as volume",
            ),
            (
                format!("[group.{U1}]\nname = \"a\"\n[group.{U2}]\nname = \"a\"\n"),
                "name = \"a\" is also the name of group",
            ),
            (
                format!("[group.{U1}]\nname = \"a/b\"\n"),
                "name = \"a/b\" contains '/'",
            ),
            (
                format!("[group.{U1}]\nname = \"\"\n"),
                "name = \"\" is empty",
            ),
            (format!("[group.{U1}]\n"), "missing field `name`"),
            (
                g("clustered = true\n"),
                "clustered = true needs this server's identity",
            ),
            (
                g("lock_stripes = 4\n"),
                "lock_stripes is for clustered groups only",
            ),
            (
                g("peers = [\"1@1.2.3.4:1\"]\n"),
                "peers is for clustered groups only",
            ),
            (
                "node = 0\n".into(),
                "node = 0: a corosync node id is 1 to 2147483647",
            ),
            ("cluster = \"a b\"\n".into(), "cluster = \"a b\""),
            (g("size = \"12X\"\n"), "size = \"12X\""),
            (g("size = 0\n"), "size = 0"),
            (g("ppl = \"yes\"\n"), "invalid type"),
        ];
        for (text, want) in cases {
            let e = err(text);
            assert!(e.starts_with("amf.conf: "), "{e}");
            assert!(e.contains(want), "{text:?}: {e}");
        }
        // The syntax errors carry the line.
        let e = err("node = 1\ncluster = \n");
        assert!(e.contains("line 2"), "{e}");
        let c = |body: &str| {
            format!(
                "node = 1\ncluster = \"c\"\n[group.{U1}]\nname = \"v\"\nclustered = true\n{body}"
            )
        };
        let cases: &[(&str, &str)] = &[
            ("lock_stripes = 0\n", "lock_stripes = 0: 1 to 1048576"),
            ("peers = [\"1@10.0.0.1:7789\"]\nauth_key = \"a:b\"\n", "peers lists 1 AMFs"),
            ("peers = [\"1@10.0.0.1:7789\", \"2@10.0.0.300:1\"]\nauth_key = \"a:b\"\n", "peers: \"2@10.0.0.300:1\""),
            ("peers = [\"2@10.0.0.2:1\", \"3@10.0.0.3:1\"]\nauth_key = \"a:b\"\n", "peers must include this server (node = 1)"),
            ("peers = [\"1@10.0.0.1:1\", \"2@10.0.0.2:1\"]\n", "peers needs auth_key"),
            ("auth_key = \"a:b\"\n", "auth_key is for peers"),
            ("peers = [\"1@10.0.0.1:1\", \"2@10.0.0.2:1\"]\nauth_key = \"nocolon\"\n", "auth_key = \"nocolon\""),
            ("transport = \"rdma\"\n", "transport is for peers"),
            ("peers = [\"1@10.0.0.1:1\", \"2@10.0.0.2:1\"]\nauth_key = \"a:b\"\ntransport = \"roce\"\n", "transport = \"roce\": expected"),
            ("secret_file = \"/x\"\n", "secret_file needs auth_key"),
        ];
        for (body, want) in cases {
            let e = err(&c(body));
            assert!(e.contains(want), "{body:?}: {e}");
        }
        assert!(parse(&c("lock_stripes = 1048576\n"), "x").is_ok());
    }

    /// The installed example (userspace-tools/amf.conf.example) is valid as shipped (every
    /// group commented out) and with every commented key line taken in.
    #[test]
    fn the_example_parses() {
        let text = include_str!("../../amf.conf.example");
        assert_eq!(parse(text, "example").unwrap().groups, []);
        let on: String = text
            .lines()
            .map(|l| match l.strip_prefix('#') {
                Some(r) if r.starts_with("[group.") || r.contains(" = ") => r,
                _ => l,
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let c = parse(&on, "example").unwrap();
        assert_eq!(c.node, Some(1));
        let g = &c.groups[0];
        assert_eq!(g.name, "vol0");
        assert!(g.clustered && g.peers.len() == 2, "{g:?}");
    }

    #[test]
    fn missing_file() {
        let e = load(Path::new("/nonexistent/amf.conf"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/nonexistent/amf.conf: "), "{e}");
    }
}
