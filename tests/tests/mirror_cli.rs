//! The `attendant-e2e` command line: its help is part of the interface.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail the test by panicking"
)]

use std::process::Command;

fn help(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_attendant-e2e"))
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn mirror_help_is_pinned() {
    assert_eq!(
        help(&["mirror", "--help"]),
        "Usage: attendant-e2e mirror [--seed <seed>] [--] <dir>\n\n\
         Write the mirror: the served tree to DIR/www, its usign keys to DIR/keys, a summary to DIR/mirror.json.\n\n\
         Positional Arguments:\n  dir               directory to write into (created if missing)\n\n\
         Options:\n  --seed            seed that varies revisions, hashes and contents (default: 1)\n  --help, help      display usage information\n\n\
         Examples:\n  attendant-e2e mirror /tmp/mirror --seed 7\n\n\
         Notes:\n  The ImageBuilder helper is taken from $ATTENDANT_IB_HELPER or from next to this program.\n\n"
    );
}

#[test]
fn serve_help_is_pinned() {
    assert_eq!(
        help(&["serve", "--help"]),
        "Usage: attendant-e2e serve [--port <port>] [--] <dir>\n\n\
         Serve a directory (a mirror's DIR/www, or DIR itself) over HTTP on 127.0.0.1.\n\n\
         Positional Arguments:\n  dir               mirror directory or tree to serve\n\n\
         Options:\n  --port            port on 127.0.0.1 (default: 0, any free port)\n  --help, help      display usage information\n\n\
         Examples:\n  attendant-e2e serve /tmp/mirror --port 8080\n\n"
    );
}

#[test]
fn router_writes_a_root_the_agent_reads_and_names_a_bad_release() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("c7");
    let output = Command::new(env!("CARGO_BIN_EXE_attendant-e2e"))
        .args(["router"])
        .arg(&root)
        .args([
            "--version",
            "24.10.4",
            "--target",
            "ath79/generic",
            "--profile",
            "tplink_archer-c7-v5",
            "--board",
            "tplink,archer-c7-v5",
            "--add",
            "tmux",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let board = std::fs::read_to_string(root.join("tmp/sysinfo/board_name")).unwrap();
    assert_eq!(board, "tplink,archer-c7-v5\n");
    // The same database the agent parses: tmux is top level, the defaults are there.
    let status = std::fs::read(root.join("usr/lib/opkg/status")).unwrap();
    let installed = attendant_proto::opkg::parse(&status).unwrap();
    let tmux = installed.get("tmux").unwrap();
    assert!(tmux.top_level);
    assert!(installed.provider("nftables").is_some());

    let bad = Command::new(env!("CARGO_BIN_EXE_attendant-e2e"))
        .args(["router"])
        .arg(dir.path().join("bad"))
        .args([
            "--version",
            "9.9",
            "--target",
            "x86/64",
            "--profile",
            "generic",
            "--board",
            "x",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr)
            .contains("release `9.9` is not in the fixture catalogue")
    );
}
