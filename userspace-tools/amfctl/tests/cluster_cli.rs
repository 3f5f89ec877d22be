// SPDX-License-Identifier: GPL-2.0
//! Runs `amfctl cluster-conf`: the file it prints, its refusals (exit status 2 with the
//! reason), and, where corosync is installed, `corosync -t` accepting the file.

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
