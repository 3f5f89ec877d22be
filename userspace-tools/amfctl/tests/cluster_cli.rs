// SPDX-License-Identifier: GPL-2.0
//! Runs `amfctl cluster-conf`: the file it prints, its refusals (exit status 2 with the
//! reason), and, where corosync is installed, `corosync -t` accepting the file. Then the
//! cluster's tables (`amfctl table --cluster --node`) and a clustered target's status.

use std::path::Path;
use std::process::Command;

mod common;
use common::{amfctl, stderr, stdout, TempDir};

fn conf(args: &[&str]) -> std::process::Output {
    let mut v = vec!["cluster-conf"];
    v.extend_from_slice(args);
    amfctl(&v)
}

#[test]
fn prints_a_nodelist() {
    let o = conf(&[
        "--name",
        "amftest",
        "--node",
        "2=10.199.0.2",
        "--node",
        "1=10.199.0.1",
        "--node",
        "3=10.199.0.3",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = stdout(&o);
    assert!(s.contains("\tcluster_name: amftest\n"), "{s}");
    assert!(s.contains("\ttoken: 3000\n"), "{s}");
    assert!(
        s.contains(
            "nodelist {\n\
             \tnode {\n\t\tnodeid: 1\n\t\tring0_addr: 10.199.0.1\n\t}\n\
             \tnode {\n\t\tnodeid: 2\n\t\tring0_addr: 10.199.0.2\n\t}\n\
             \tnode {\n\t\tnodeid: 3\n\t\tring0_addr: 10.199.0.3\n\t}\n}\n"
        ),
        "{s}"
    );
    assert!(!s.contains("two_node"), "{s}");
}

#[test]
fn refusals_exit_2_with_the_reason() {
    let cases: &[(&[&str], &str)] = &[
        (&["--name", "c", "--node", "1=a"], "at least 2 nodes"),
        (
            &["--name", "c", "--node", "1=a", "--node", "1=b"],
            "node id 1 is given twice",
        ),
        (
            &[
                "--name",
                "c",
                "--node",
                "1=10.0.0.1",
                "--node",
                "2=10.0.0.1",
            ],
            "address 10.0.0.1 is given twice (nodes 1 and 2)",
        ),
        (
            &["--name", "", "--node", "1=a", "--node", "2=b"],
            "the cluster name is empty",
        ),
        (
            &["--name", "a b", "--node", "1=a", "--node", "2=b"],
            "contains ' '",
        ),
        (
            &["--name", "c", "--node", "0=a", "--node", "2=b"],
            "1 to 65535",
        ),
        (
            &["--name", "c", "--node", "1:a", "--node", "2=b"],
            "<nodeid>=<address>",
        ),
        (
            &[
                "--name", "c", "--node", "1=a", "--node", "2=b", "--token", "50",
            ],
            "at least 200 ms",
        ),
        (&["--node", "1=a", "--node", "2=b"], "--name"),
    ];
    for (args, want) in cases {
        let o = conf(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
        assert!(stdout(&o).is_empty(), "{args:?}");
    }
    let long = "x".repeat(64);
    let o = conf(&["--name", &long, "--node", "1=a", "--node", "2=b"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("64 characters"), "{}", stderr(&o));
}

/// corosync's own parser takes the file (`corosync -t` checks the configuration and exits;
/// one node is this host, 127.0.0.1, or it finds no local node).
#[test]
fn corosync_accepts_it() {
    let corosync = "/usr/sbin/corosync";
    if !Path::new(corosync).exists() {
        eprintln!("skipped: no {corosync}");
        return;
    }
    let d = TempDir::new("corosync");
    let log = d.0.join("corosync.log");
    for args in [
        vec![
            "--node",
            "1=127.0.0.1",
            "--node",
            "2=10.199.0.2",
            "--node",
            "3=10.199.0.3",
        ],
        vec![
            "--node",
            "1=127.0.0.1",
            "--node",
            "2=10.199.0.2",
            "--token",
            "1000",
        ],
        vec![
            "--node",
            "1=::1",
            "--node",
            "2=fd00::2",
            "--logfile",
            log.to_str().unwrap(),
        ],
    ] {
        let mut a = vec!["--name", "amftest"];
        a.extend_from_slice(&args);
        let o = conf(&a);
        assert!(o.status.success(), "{}", stderr(&o));
        let path = d.0.join("corosync.conf");
        // Errors go to the log only: let them reach stderr for this check.
        std::fs::write(&path, stdout(&o).replace("to_stderr: no", "to_stderr: yes")).unwrap();
        let t = Command::new(corosync)
            .arg("-c")
            .arg(&path)
            .arg("-t")
            .output()
            .unwrap();
        assert!(
            t.status.success(),
            "corosync -t refused it ({}): {}\n{}",
            t.status,
            String::from_utf8_lossy(&t.stderr),
            stdout(&o)
        );
    }
}

const MIB: u64 = 1 << 20;
const UUID: &str = "6a1f0c2e-93b4-4d5e-8f70-1a2b3c4d5e6f";

#[test]
fn each_nodes_table() {
    let d = TempDir::new("tables");
    let devs = d.files(4, 68 * MIB);
    let mut format = vec![
        "format", "--level", "raid5", "--chunk", "64K", "--uuid", UUID,
    ];
    format.extend(devs.iter().map(String::as_str));
    let o = amfctl(&format);
    assert!(o.status.success(), "{}", stderr(&o));
    // The members at their data offset, as amfctl format laid them out.
    let members: Vec<String> = devs.iter().map(|p| format!("{p}:4M")).collect();
    let table = |rest: &[&str]| {
        let mut args = vec!["table", "--level", "raid5", "--chunk", "64K"];
        for m in &members {
            args.extend(["--dev", m.as_str()]);
        }
        args.extend_from_slice(rest);
        amfctl(&args)
    };
    let devs_words: Vec<String> = devs.iter().map(|p| format!("{p} 8192")).collect();
    let devs_words = devs_words.join(" ");
    for node in ["1", "2", "3"] {
        let o = table(&["--group", UUID, "--cluster", "amftest", "--node", node]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(
            stdout(&o),
            format!(
                "0 393216 amf raid5 7 128 group {UUID} cluster amftest node {node} \
                 4 {devs_words}\n"
            )
        );
    }
    let o = table(&[
        "--group",
        UUID,
        "--cluster",
        "amftest",
        "--node",
        "2",
        "--lock-stripes",
        "16",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with(&format!(
            "0 393216 amf raid5 9 128 group {UUID} cluster amftest node 2 lock_stripes 16 4 "
        )),
        "{}",
        stdout(&o)
    );

    // Refusals: the kernel's message, then the options at fault; exit status 1.
    let refused = |rest: &[&str], want: &str| {
        let o = table(rest);
        assert_eq!(o.status.code(), Some(1), "{rest:?}: {}", stdout(&o));
        assert!(stderr(&o).starts_with(want), "{rest:?}: {}", stderr(&o));
    };
    refused(
        &["--cluster", "amftest", "--node", "1"],
        "amfctl: cluster needs group <uuid> (--cluster needs --group <uuid>: ",
    );
    refused(
        &["--group", UUID, "--cluster", "amftest"],
        "amfctl: cluster and node must be given together (--cluster needs --node <id>",
    );
    refused(
        &["--group", UUID, "--node", "1"],
        "amfctl: cluster and node must be given together (--node needs --cluster <name>",
    );
    refused(
        &["--group", UUID, "--cluster", "amf test", "--node", "1"],
        "amfctl: Invalid cluster name (--cluster: cluster name 'amf test' contains ' '",
    );
    refused(
        &["--group", UUID, "--cluster", "amftest", "--node", "0"],
        "amfctl: Invalid node id (--node 0: ",
    );
    refused(
        &["--group", UUID, "--lock-stripes", "4"],
        "amfctl: lock_stripes is only valid with cluster (--lock-stripes needs --cluster",
    );
    let mut args = vec![
        "table", "--level", "raid10", "--chunk", "64K", "--group", UUID,
    ];
    args.extend(["--cluster", "amftest", "--node", "1"]);
    args.extend(["--dev", &members[0], "--dev", &members[1]]);
    let o = amfctl(&args);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with(
            "amfctl: cluster is only implemented for raid1, raid5 and raid6 (--level raid10 with \
             --cluster"
        ),
        "{}",
        stderr(&o)
    );
}

#[test]
fn clustered_status() {
    let d = TempDir::new("status");
    let f = d.0.join("status.txt");
    std::fs::write(
        &f,
        "r5: 0 393216 amf raid5 4 AAAA 393216/393216 idle 0 cluster ready 3 120 4051 7 12 0\n\
         plain: 0 1024 amf raid0 2 AA 1024/1024 idle 0\n",
    )
    .unwrap();
    let path = f.to_str().unwrap();
    let o = amfctl(&["status", "--from-file", path]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains(
            "  mismatches: 0\n  cluster:    ready, 3 members, 120 lock requests, 4051 cached, \
             7 blocking callbacks answered, 12 waits, 0 node deaths\n\nplain: "
        ),
        "{out}"
    );
    assert_eq!(out.matches("cluster:").count(), 1, "{out}");
    let o = amfctl(&["status", "--from-file", path, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        j[0]["cluster"],
        serde_json::json!({"state": "ready", "members": 3, "requests": 120, "cached": 4051,
                           "blocking": 7, "waits": 12, "deaths": 0})
    );
    assert!(j[1].get("cluster").is_none());

    std::fs::write(
        &f,
        "r5: 0 393216 amf raid5 4 AAAA 393216/393216 idle 0 cluster stuck 3 1 2 3 4 5\n",
    )
    .unwrap();
    let o = amfctl(&["status", "--from-file", path]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with(
            "amfctl: status line 1: cluster state 'stuck' is not ready, recovering or lost"
        ),
        "{}",
        stderr(&o)
    );
}

#[test]
fn replicated_tables() {
    let base = [
        "table",
        "--offline",
        "--size",
        "393216",
        "--level",
        "raid5",
        "--chunk",
        "64K",
        "--dev",
        "8:16:4M",
        "--dev",
        "8:32:4M",
        "--dev",
        "8:48:4M",
        "--dev",
        "8:64:4M",
        "--group",
        UUID,
        "--cluster",
        "amftest",
    ];
    let table = |rest: &[&str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(rest);
        amfctl(&args)
    };
    let peers = [
        "--peer",
        "3@10.199.0.3:7789",
        "--peer",
        "1@10.199.0.1:7789",
        "--peer",
        "2@10.199.0.2:7789",
    ];
    for node in ["1", "2", "3"] {
        let mut rest = vec!["--node", node, "--auth-key", "dm-amf:grp1"];
        rest.extend_from_slice(&peers);
        let o = table(&rest);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(
            stdout(&o),
            format!(
                "0 393216 amf raid5 14 128 group {UUID} cluster amftest node {node} peers 3 \
                 1@10.199.0.1:7789 2@10.199.0.2:7789 3@10.199.0.3:7789 auth_key dm-amf:grp1 \
                 4 8:16 8192 8:32 8192 8:48 8192 8:64 8192\n"
            )
        );
    }
    // --transport rdma: `transport rdma` after auth_key, as dmsetup table prints it back;
    // --transport tcp, the default, is left out as the kernel leaves it out.
    for (transport, nr_params, echo) in [("rdma", 16, " transport rdma"), ("tcp", 14, "")] {
        let mut rest = vec!["--node", "2", "--auth-key", "dm-amf:grp1"];
        rest.extend_from_slice(&peers);
        rest.extend(["--transport", transport]);
        let o = table(&rest);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(
            stdout(&o),
            format!(
                "0 393216 amf raid5 {nr_params} 128 group {UUID} cluster amftest node 2 peers 3 \
                 1@10.199.0.1:7789 2@10.199.0.2:7789 3@10.199.0.3:7789 auth_key dm-amf:grp1{echo} \
                 4 8:16 8192 8:32 8192 8:48 8192 8:64 8192\n"
            )
        );
    }
    // Refusals: the kernel's message, then the options at fault; exit status 1.
    let refused = |rest: &[&str], want: &str| {
        let o = table(rest);
        assert_eq!(o.status.code(), Some(1), "{rest:?}: {}", stdout(&o));
        assert!(stderr(&o).starts_with(want), "{rest:?}: {}", stderr(&o));
        assert!(stdout(&o).is_empty());
    };
    let mut rest = vec!["--node", "4", "--auth-key", "dm-amf:grp1"];
    rest.extend_from_slice(&peers);
    refused(
        &rest,
        "amfctl: peers must list this table's node id (--node 4 is not among the --peer node \
         ids (1, 2, 3)",
    );
    // Options as one string each (split at spaces), with the start of the refusal.
    for (rest, want) in [
        (
            "--node 1 --peer 1@10.0.0.1:1 --peer 2@10.0.0.2:0 --auth-key a:b",
            "amfctl: peer must be <node>@<a.b.c.d>:<port> with node 1..63 (--peer 2@10.0.0.2:0: \
             port '0' is not a decimal number from 1 to 65535)",
        ),
        (
            "--node 1 --peer 1@10.0.0.1:1 --peer 2@10.0.0.2:2",
            "amfctl: peers needs auth_key (--peer needs --auth-key <description>",
        ),
        (
            "--node 1 --peer 1@10.0.0.1:1 --peer 2@10.0.0.2:2 --auth-key grp1",
            "amfctl: auth_key must be <prefix>:<name>, 1 to 255 characters (--auth-key: key \
             description 'grp1' has no '<prefix>:'",
        ),
        (
            "--node 1 --peer 1@10.0.0.1:1 --peer 2@10.0.0.2:2 --auth-key a:b --transport udp",
            "amfctl: transport must be tcp or rdma (--transport udp: expected tcp or rdma)\n",
        ),
        (
            "--node 1 --transport rdma",
            "amfctl: transport needs peers (--transport needs --peer)\n",
        ),
        (
            "--node 1 --transport tcp",
            "amfctl: transport needs peers (--transport needs --peer)\n",
        ),
    ] {
        refused(&rest.split(' ').collect::<Vec<_>>(), want);
    }
}

#[test]
fn key_add_refusals() {
    // Refused before anything reaches the keyring (a test must not leave keys behind).
    let d = TempDir::new("keys");
    let secret = d.file("secret", 0);
    std::fs::write(&secret, "\n\n").unwrap();
    let short = d.file("short", 0);
    std::fs::write(&short, "fifteen bytes!!\n").unwrap();
    for (args, want) in [
        (
            vec!["key-add", "grp1", "--secret-file", secret.as_str()],
            "amfctl: key description 'grp1' has no '<prefix>:'",
        ),
        (
            vec!["key-add", "dm-amf:grp1", "--secret-file", secret.as_str()],
            "amfctl: the secret is empty",
        ),
        (
            vec!["key-add", "dm-amf:grp1", "--secret-file", short.as_str()],
            "amfctl: the secret is 15 bytes long; at least 16 are needed (a shorter one can \
             be guessed offline",
        ),
        (
            vec![
                "key-add",
                "dm-amf:grp1",
                "--secret-file",
                "/nonexistent/secret",
            ],
            "amfctl: reading /nonexistent/secret",
        ),
    ] {
        let o = amfctl(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(stderr(&o).starts_with(want), "{args:?}: {}", stderr(&o));
        assert!(stdout(&o).is_empty());
    }
}

#[test]
fn replicated_status() {
    let d = TempDir::new("repstatus");
    let f = d.0.join("status.txt");
    std::fs::write(
        &f,
        "r5: 0 393216 amf raid5 4 AAAA 393216/393216 idle 0 cluster ready 3 120 4051 7 12 0 \
         replication 2 2 5000 6 0 0 0 0 2\n",
    )
    .unwrap();
    let path = f.to_str().unwrap();
    let o = amfctl(&["status", "--from-file", path]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).ends_with(
            "  peers:      2 of 2 up, 5000 records sent, 6 held, 0 bad frames, 0 authentication \
             failures, 0 operations replayed, no takeover, 2 reconnects\n"
        ),
        "{}",
        stdout(&o)
    );
    let o = amfctl(&["status", "--from-file", path, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        j[0]["replication"],
        serde_json::json!({"up": 2, "peers": 2, "records_sent": 5000, "records_held": 6,
                           "bad_frames": 0, "auth_failures": 0, "replayed": 0,
                           "last_takeover_ms": 0, "reconnects": 2})
    );
    // A module without <reconnects> (8 fields): refused with what is missing.
    let old = "r5: 0 393216 amf raid5 4 AAAA 393216/393216 idle 0 cluster ready 3 120 4051 7 12 0 \
               replication 2 2 5000 6 0 0 0 0";
    std::fs::write(&f, format!("{old}\n")).unwrap();
    let o = amfctl(&["status", "--from-file", path]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        format!(
            "amfctl: status line 1: replication part has 8 of its 9 fields, expected \
             'replication <up> <peers> <records_sent> <records_held> <bad_frames> \
             <auth_failures> <replayed> <last_takeover_ms> <reconnects>': '{old}'\n"
        )
    );
    assert!(stdout(&o).is_empty());
}
