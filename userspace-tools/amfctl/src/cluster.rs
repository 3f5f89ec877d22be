// SPDX-License-Identifier: GPL-2.0
//! The cluster description of `amfctl cluster-conf`: a cluster name, the nodes (corosync node
//! id and ring0 address) and the totem token timeout, checked, and the `corosync.conf` every
//! node of that cluster runs with (corosync 3, knet transport).
//!
//! Every node gets the same file: corosync finds its own node in the nodelist by the address
//! of one of its interfaces.

use std::fmt::Write as _;
use std::net::IpAddr;

/// Longest cluster name: the kernel DLM keeps `cluster_name` in a buffer of
/// `DLM_LOCKSPACE_LEN` (64) bytes with its terminating NUL and compares the name a lockspace
/// is created with against it (a longer name never matches). corosync itself has no limit.
pub const MAX_NAME_LEN: usize = 63;

/// Largest node id: corosync's knet transport takes node ids below `KNET_MAX_HOST` (65536);
/// 0 is not a node id.
pub const MAX_NODE_ID: u32 = 65535;

/// Smallest token timeout (ms). corosync refuses a token retransmit timeout (token / 4.2 by
/// default) below 30 ms; 200 ms leaves room.
pub const MIN_TOKEN_MS: u32 = 200;

/// Default token timeout (ms), corosync's own default for knet clusters.
pub const DEFAULT_TOKEN_MS: u32 = 3000;

/// One node of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// corosync node id (`nodeid`, 1..=65535); also the DLM's node id.
    pub id: u32,
    /// `ring0_addr`: an IP address or a host name.
    pub addr: String,
}

/// A whole cluster description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSpec {
    /// `totem.cluster_name`; the DLM checks lockspaces against it.
    pub name: String,
    /// The nodes, in any order (the file lists them by id).
    pub nodes: Vec<Node>,
    /// `totem.token` in milliseconds: how long a silent node has before it is declared dead.
    pub token_ms: u32,
    /// Log to this file (`logging.to_logfile`); `None`: no logging at all.
    pub logfile: Option<String>,
    /// votequorum's `last_man_standing` with this window (ms): after nodes died and the
    /// membership was stable that long, the expected votes drop to the nodes left, so that
    /// the cluster can shrink step by step. `None`: off.
    pub last_man_standing_ms: Option<u32>,
    /// votequorum's `auto_tie_breaker`: in a split into two equal halves (of the expected
    /// votes), the half with the lowest node id keeps quorum. With an odd number of nodes
    /// corosync also needs `wait_for_all`, which amfctl then adds.
    pub auto_tie_breaker: bool,
}

/// Why a cluster description was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    /// Empty `--name`.
    #[error("the cluster name is empty")]
    EmptyName,
    /// `--name` longer than [`MAX_NAME_LEN`].
    #[error(
        "cluster name '{0}' is {len} characters long; the kernel DLM takes at most {MAX_NAME_LEN}",
        len = .0.len()
    )]
    NameTooLong(String),
    /// A character a table line or corosync.conf cannot carry, or that a DLM tool would choke on.
    #[error("cluster name '{name}' contains {ch:?}: use letters, digits, '-', '_' and '.'")]
    NameChar {
        /// The name.
        name: String,
        /// The first bad character.
        ch: char,
    },
    /// `--node` without `=`.
    #[error("--node '{0}': expected <nodeid>=<address>, e.g. 1=10.0.0.1")]
    NodeSyntax(String),
    /// Node id not in 1..=65535.
    #[error("--node '{arg}': node id '{id}' is not a number from 1 to {MAX_NODE_ID} (corosync's knet transport takes ids below 65536; 0 is not a node id)")]
    NodeId {
        /// The whole argument.
        arg: String,
        /// The id part.
        id: String,
    },
    /// Neither an IP address nor a host name.
    #[error("--node '{arg}': '{addr}' is neither an IP address nor a host name")]
    NodeAddr {
        /// The whole argument.
        arg: String,
        /// The address part.
        addr: String,
    },
    /// Two nodes with one id.
    #[error("node id {0} is given twice")]
    DuplicateId(u32),
    /// Two nodes with one address.
    #[error("address {addr} is given twice (nodes {first} and {second})")]
    DuplicateAddr {
        /// The address.
        addr: String,
        /// The first node with it.
        first: u32,
        /// The second.
        second: u32,
    },
    /// IPv4 and IPv6 addresses mixed.
    #[error("nodes {v4} ({v4addr}) and {v6} ({v6addr}): corosync wants all nodes' addresses of one IP family")]
    MixedFamilies {
        /// A node with an IPv4 address.
        v4: u32,
        /// Its address.
        v4addr: String,
        /// A node with an IPv6 address.
        v6: u32,
        /// Its address.
        v6addr: String,
    },
    /// Fewer than two nodes.
    #[error("a cluster needs at least 2 nodes (--node <id>=<address>, repeated), got {0}")]
    TooFewNodes(usize),
    /// Token timeout below [`MIN_TOKEN_MS`].
    #[error("--token {0}: corosync needs a token timeout of at least {MIN_TOKEN_MS} ms")]
    Token(u32),
    /// A log file path corosync.conf cannot carry.
    #[error("--logfile '{0}': want an absolute path without whitespace")]
    LogFile(String),
    /// `last_man_standing` or `auto_tie_breaker` with two nodes (votequorum refuses them
    /// together with `two_node`).
    #[error(
        "--last-man-standing and --auto-tie-breaker need at least 3 nodes (2 nodes use two_node)"
    )]
    TwoNodeQuorum,
    /// `last_man_standing` with `auto_tie_breaker` and an odd number of nodes: corosync
    /// refuses to start with it.
    #[error(
        "--last-man-standing with --auto-tie-breaker needs an even number of nodes (corosync refuses it with {0})"
    )]
    OddLmsAtb(usize),
}

/// Checks a cluster name (see [`MAX_NAME_LEN`]).
pub fn check_name(name: &str) -> Result<(), ClusterError> {
    if name.is_empty() {
        return Err(ClusterError::EmptyName);
    }
    if let Some(ch) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(ClusterError::NameChar {
            name: name.to_string(),
            ch,
        });
    }
    if name.len() > MAX_NAME_LEN {
        return Err(ClusterError::NameTooLong(name.to_string()));
    }
    Ok(())
}

fn is_host_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        // All-numeric dotted names are malformed IPv4 addresses, not host names.
        && !s.chars().all(|c| c.is_ascii_digit() || c == '.')
}

/// Parses `--node <id>=<address>`. IP addresses come back in their canonical form.
pub fn parse_node(arg: &str) -> Result<Node, ClusterError> {
    let Some((id, addr)) = arg.split_once('=') else {
        return Err(ClusterError::NodeSyntax(arg.to_string()));
    };
    let (id, addr) = (id.trim(), addr.trim());
    let n: u32 = match id.parse() {
        Ok(n) if (1..=MAX_NODE_ID).contains(&n) && !id.starts_with('+') => n,
        _ => {
            return Err(ClusterError::NodeId {
                arg: arg.to_string(),
                id: id.to_string(),
            })
        }
    };
    let addr = if let Ok(ip) = addr.parse::<IpAddr>() {
        ip.to_string()
    } else if is_host_name(addr) {
        addr.to_ascii_lowercase()
    } else {
        return Err(ClusterError::NodeAddr {
            arg: arg.to_string(),
            addr: addr.to_string(),
        });
    };
    Ok(Node { id: n, addr })
}

/// Checks a whole description: the name, at least two nodes, unique ids and addresses, the
/// token timeout, the log file.
pub fn check(spec: &ClusterSpec) -> Result<(), ClusterError> {
    check_name(&spec.name)?;
    if spec.nodes.len() < 2 {
        return Err(ClusterError::TooFewNodes(spec.nodes.len()));
    }
    for (i, a) in spec.nodes.iter().enumerate() {
        for b in &spec.nodes[..i] {
            if a.id == b.id {
                return Err(ClusterError::DuplicateId(a.id));
            }
            if a.addr == b.addr {
                return Err(ClusterError::DuplicateAddr {
                    addr: a.addr.clone(),
                    first: b.id,
                    second: a.id,
                });
            }
        }
    }
    let family = |v6: bool| {
        spec.nodes
            .iter()
            .find(|n| n.addr.parse::<IpAddr>().is_ok_and(|ip| ip.is_ipv6() == v6))
    };
    if let (Some(a), Some(b)) = (family(false), family(true)) {
        return Err(ClusterError::MixedFamilies {
            v4: a.id,
            v4addr: a.addr.clone(),
            v6: b.id,
            v6addr: b.addr.clone(),
        });
    }
    if spec.token_ms < MIN_TOKEN_MS {
        return Err(ClusterError::Token(spec.token_ms));
    }
    if let Some(p) = &spec.logfile {
        if !p.starts_with('/') || p.chars().any(char::is_whitespace) {
            return Err(ClusterError::LogFile(p.clone()));
        }
    }
    if spec.nodes.len() == 2 && (spec.last_man_standing_ms.is_some() || spec.auto_tie_breaker) {
        return Err(ClusterError::TwoNodeQuorum);
    }
    if spec.nodes.len() % 2 == 1 && spec.last_man_standing_ms.is_some() && spec.auto_tie_breaker {
        return Err(ClusterError::OddLmsAtb(spec.nodes.len()));
    }
    Ok(())
}

/// The corosync.conf of the cluster (checked first). One directive per line: corosync's
/// parser refuses `node { a: b c: d }` on one line.
pub fn corosync_conf(spec: &ClusterSpec) -> Result<String, ClusterError> {
    check(spec)?;
    let mut nodes: Vec<&Node> = spec.nodes.iter().collect();
    nodes.sort_by_key(|n| n.id);
    let mut s = String::new();
    // Writing to a String cannot fail.
    let _ = write!(
        s,
        "# corosync.conf of cluster {name} ({n} nodes), written by amfctl cluster-conf.\n\
         # The same file serves every node: corosync finds its own node by its address.\n\
         totem {{\n\
         \tversion: 2\n\
         \tcluster_name: {name}\n\
         \ttransport: knet\n\
         \ttoken: {token}\n\
         \tcrypto_cipher: none\n\
         \tcrypto_hash: none\n\
         }}\n\
         \n\
         nodelist {{\n",
        name = spec.name,
        n = nodes.len(),
        token = spec.token_ms,
    );
    for n in &nodes {
        let _ = write!(
            s,
            "\tnode {{\n\t\tnodeid: {}\n\t\tring0_addr: {}\n\t}}\n",
            n.id, n.addr
        );
    }
    s.push_str("}\n\nquorum {\n\tprovider: corosync_votequorum\n");
    if nodes.len() == 2 {
        // Quorum with one of two votes; implies wait_for_all (both nodes at the first start).
        s.push_str("\ttwo_node: 1\n");
    }
    if let Some(ms) = spec.last_man_standing_ms {
        let _ = write!(
            s,
            "\tlast_man_standing: 1\n\tlast_man_standing_window: {ms}\n"
        );
    }
    if spec.auto_tie_breaker {
        s.push_str("\tauto_tie_breaker: 1\n");
        if nodes.len() % 2 == 1 {
            // corosync: "wait_for_all (mandatory for ATB in odd-numbered clusters)".
            s.push_str("\twait_for_all: 1\n");
        }
    }
    s.push_str("}\n\nlogging {\n\tto_stderr: no\n\tto_syslog: no\n");
    match &spec.logfile {
        Some(p) => {
            let _ = write!(s, "\tto_logfile: yes\n\tlogfile: {p}\n\ttimestamp: on\n");
        }
        None => s.push_str("\tto_logfile: no\n"),
    }
    s.push_str("}\n");
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A corosync.conf section tree, as corosync's parser reads it: `name {` opens a
    /// section, `}` closes one, `key: value` is a directive; one of them per line.
    #[derive(Debug, Default)]
    struct Section {
        name: String,
        items: Vec<(String, String)>,
        subs: Vec<Section>,
    }

    impl Section {
        fn get(&self, k: &str) -> Option<&str> {
            self.items
                .iter()
                .find(|(a, _)| a == k)
                .map(|(_, v)| v.as_str())
        }
        fn sub(&self, name: &str) -> &Section {
            let v: Vec<_> = self.subs.iter().filter(|s| s.name == name).collect();
            assert_eq!(v.len(), 1, "one section {name}");
            v[0]
        }
    }

    fn parse(text: &str) -> Section {
        let mut stack = vec![Section::default()];
        for line in text.lines() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            if let Some(name) = l.strip_suffix('{') {
                let name = name.trim();
                assert!(
                    !name.is_empty() && !name.contains(char::is_whitespace),
                    "{line}"
                );
                stack.push(Section {
                    name: name.to_string(),
                    ..Default::default()
                });
            } else if l == "}" {
                let s = stack.pop().unwrap();
                stack.last_mut().expect("unbalanced }").subs.push(s);
            } else {
                assert!(
                    !l.contains('{') && !l.contains('}'),
                    "one directive a line: {line}"
                );
                let (k, v) = l.split_once(':').expect("key: value");
                assert!(!v.trim().contains(": "), "one directive a line: {line}");
                stack
                    .last_mut()
                    .unwrap()
                    .items
                    .push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        assert_eq!(stack.len(), 1, "unbalanced sections");
        stack.pop().unwrap()
    }

    fn spec(name: &str, nodes: &[&str]) -> ClusterSpec {
        ClusterSpec {
            name: name.into(),
            nodes: nodes.iter().map(|a| parse_node(a).unwrap()).collect(),
            token_ms: DEFAULT_TOKEN_MS,
            last_man_standing_ms: None,
            auto_tie_breaker: false,
            logfile: None,
        }
    }

    #[test]
    fn three_nodes_parse_back() {
        let s = spec("amftest", &["3=10.199.0.3", "1=10.199.0.1", "2=10.199.0.2"]);
        let text = corosync_conf(&s).unwrap();
        let top = parse(&text);
        let totem = top.sub("totem");
        assert_eq!(totem.get("cluster_name"), Some("amftest"));
        assert_eq!(totem.get("transport"), Some("knet"));
        assert_eq!(totem.get("token"), Some("3000"));
        assert_eq!(totem.get("crypto_cipher"), Some("none"));
        assert_eq!(totem.get("crypto_hash"), Some("none"));
        let nodes: Vec<(u32, String)> = top
            .sub("nodelist")
            .subs
            .iter()
            .map(|n| {
                assert_eq!(n.name, "node");
                assert_eq!(n.items.len(), 2);
                (
                    n.get("nodeid").unwrap().parse().unwrap(),
                    n.get("ring0_addr").unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(
            nodes,
            vec![
                (1, "10.199.0.1".into()),
                (2, "10.199.0.2".into()),
                (3, "10.199.0.3".into())
            ]
        );
        let q = top.sub("quorum");
        assert_eq!(q.get("provider"), Some("corosync_votequorum"));
        assert_eq!(q.get("two_node"), None);
        let l = top.sub("logging");
        assert_eq!(l.get("to_stderr"), Some("no"));
        assert_eq!(l.get("to_syslog"), Some("no"));
        assert_eq!(l.get("to_logfile"), Some("no"));
        // Every line holds one directive or one brace.
        for line in text.lines() {
            assert!(
                line.matches(':').count() <= 1 || line.contains("::"),
                "{line}"
            );
        }
    }

    #[test]
    fn two_nodes_get_two_node_and_logfile() {
        let mut s = spec("c", &["1=fe80::1", "7=node-b.example"]);
        s.token_ms = 1000;
        s.logfile = Some("/tmp/corosync.log".into());
        let top = parse(&corosync_conf(&s).unwrap());
        assert_eq!(top.sub("quorum").get("two_node"), Some("1"));
        assert_eq!(top.sub("totem").get("token"), Some("1000"));
        let l = top.sub("logging");
        assert_eq!(l.get("to_logfile"), Some("yes"));
        assert_eq!(l.get("logfile"), Some("/tmp/corosync.log"));
        let n = &top.sub("nodelist").subs;
        assert_eq!(n[0].get("ring0_addr"), Some("fe80::1"));
        assert_eq!(n[1].get("nodeid"), Some("7"));
        assert_eq!(n[1].get("ring0_addr"), Some("node-b.example"));
    }

    #[test]
    fn shrinking_quorum() {
        let mut s = spec("c", &["1=10.0.0.1", "2=10.0.0.2", "3=10.0.0.3"]);
        s.auto_tie_breaker = true;
        let top = parse(&corosync_conf(&s).unwrap());
        let q = top.sub("quorum");
        assert_eq!(q.get("auto_tie_breaker"), Some("1"));
        assert_eq!(q.get("wait_for_all"), Some("1"));
        s.last_man_standing_ms = Some(2000);
        assert_eq!(corosync_conf(&s), Err(ClusterError::OddLmsAtb(3)));
        let mut s = spec(
            "c",
            &["1=10.0.0.1", "2=10.0.0.2", "3=10.0.0.3", "4=10.0.0.4"],
        );
        s.last_man_standing_ms = Some(2000);
        s.auto_tie_breaker = true;
        let top = parse(&corosync_conf(&s).unwrap());
        let q = top.sub("quorum");
        assert_eq!(q.get("last_man_standing"), Some("1"));
        assert_eq!(q.get("last_man_standing_window"), Some("2000"));
        assert_eq!(q.get("auto_tie_breaker"), Some("1"));
        assert_eq!(q.get("wait_for_all"), None);
        let mut two = spec("c", &["1=10.0.0.1", "2=10.0.0.2"]);
        two.auto_tie_breaker = true;
        assert_eq!(corosync_conf(&two), Err(ClusterError::TwoNodeQuorum));
        two.auto_tie_breaker = false;
        two.last_man_standing_ms = Some(1000);
        assert_eq!(corosync_conf(&two), Err(ClusterError::TwoNodeQuorum));
    }

    #[test]
    fn node_arguments() {
        assert_eq!(
            parse_node("1=10.0.0.1").unwrap(),
            Node {
                id: 1,
                addr: "10.0.0.1".into()
            }
        );
        assert_eq!(parse_node("65535=::ffff:0a00:0001").unwrap().id, 65535);
        assert_eq!(parse_node("2=2001:DB8:0:0::1").unwrap().addr, "2001:db8::1");
        assert_eq!(parse_node("2=Host-B").unwrap().addr, "host-b");
        for bad in ["1", "10.0.0.1", ""] {
            assert!(matches!(parse_node(bad), Err(ClusterError::NodeSyntax(_))));
        }
        for bad in ["0=10.0.0.1", "65536=a", "x=a", "-1=a", "+1=a", "=a"] {
            assert!(
                matches!(parse_node(bad), Err(ClusterError::NodeId { .. })),
                "{bad}"
            );
        }
        for bad in [
            "1=",
            "1=10.0.0.256",
            "1=a b",
            "1=-a",
            "1=a..b",
            "1=a{",
            "1=1.2.3",
        ] {
            assert!(
                matches!(parse_node(bad), Err(ClusterError::NodeAddr { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn refusals() {
        let ok = spec("amftest", &["1=10.0.0.1", "2=10.0.0.2"]);
        assert!(check(&ok).is_ok());
        let with = |f: &dyn Fn(&mut ClusterSpec)| {
            let mut s = ok.clone();
            f(&mut s);
            corosync_conf(&s).unwrap_err()
        };
        assert_eq!(with(&|s| s.name.clear()), ClusterError::EmptyName);
        let long = "a".repeat(MAX_NAME_LEN + 1);
        assert_eq!(
            with(&|s| s.name = long.clone()),
            ClusterError::NameTooLong(long.clone())
        );
        let max = spec(&"b".repeat(MAX_NAME_LEN), &["1=a", "2=b"]);
        assert!(corosync_conf(&max).is_ok());
        for (name, ch) in [
            ("a b", ' '),
            ("a{", '{'),
            ("a:b", ':'),
            ("é", 'é'),
            ("a#", '#'),
        ] {
            assert_eq!(
                with(&|s| s.name = name.into()),
                ClusterError::NameChar {
                    name: name.into(),
                    ch
                }
            );
        }
        assert_eq!(with(&|s| s.nodes.truncate(1)), ClusterError::TooFewNodes(1));
        assert_eq!(
            with(&|s| s.nodes.push(parse_node("1=10.0.0.3").unwrap())),
            ClusterError::DuplicateId(1)
        );
        assert_eq!(
            with(&|s| s.nodes.push(parse_node("5=10.0.0.2").unwrap())),
            ClusterError::DuplicateAddr {
                addr: "10.0.0.2".into(),
                first: 2,
                second: 5
            }
        );
        // The same address in another spelling is still the same address.
        let v6 = spec("c", &["1=2001:db8::1", "2=2001:DB8:0::0:1"]);
        assert!(matches!(
            corosync_conf(&v6),
            Err(ClusterError::DuplicateAddr { .. })
        ));
        assert_eq!(
            with(&|s| s.nodes.push(parse_node("3=fd00::3").unwrap())),
            ClusterError::MixedFamilies {
                v4: 1,
                v4addr: "10.0.0.1".into(),
                v6: 3,
                v6addr: "fd00::3".into()
            }
        );
        // Host names resolve to either.
        assert!(check(&spec("c", &["1=fd00::1", "2=b"])).is_ok());
        assert_eq!(with(&|s| s.token_ms = 199), ClusterError::Token(199));
        assert_eq!(
            with(&|s| s.logfile = Some("log".into())),
            ClusterError::LogFile("log".into())
        );
    }

    #[test]
    fn messages_name_the_problem() {
        let e = ClusterError::NameTooLong("x".repeat(70)).to_string();
        assert!(
            e.contains("70 characters") && e.contains("at most 63"),
            "{e}"
        );
        let e = parse_node("0=a").unwrap_err().to_string();
        assert!(e.contains("'0=a'") && e.contains("1 to 65535"), "{e}");
    }
}
