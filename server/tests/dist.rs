//! The operating files in `server/dist/`: the systemd units load in systemd's own checker, keep
//! their hardening, and start commands the binary really has.

#![expect(clippy::unwrap_used, reason = "test helpers may unwrap")]

use std::path::{Path, PathBuf};
use std::process::Command;

const UNITS: [&str; 2] = ["attendant-server.service", "attendant-worker.service"];

fn dist() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("dist")
}

fn unit(name: &str) -> String {
    std::fs::read_to_string(dist().join("systemd").join(name)).unwrap()
}

fn value<'a>(unit: &'a str, key: &str) -> Option<&'a str> {
    unit.lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
}

/// The units with `ExecStart` pointing at the binary under test, in a temporary directory.
fn units_for_this_build() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in UNITS {
        let text = unit(name).replace(
            "/usr/bin/attendant-server",
            env!("CARGO_BIN_EXE_attendant-server"),
        );
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

fn systemd_analyze() -> Option<&'static str> {
    let found = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    if found {
        Some("systemd-analyze")
    } else {
        println!("SKIPPED: systemd-analyze is not installed (Debian package `systemd`)");
        None
    }
}

#[test]
fn every_unit_starts_a_real_subcommand_with_its_options() {
    for name in UNITS {
        let text = unit(name);
        let exec = value(&text, "ExecStart").unwrap();
        let mut words = exec.split_whitespace();
        assert_eq!(words.next(), Some("/usr/bin/attendant-server"), "{name}");
        let args: Vec<&str> = words.collect();
        // `--help` after the real arguments: clap parses them all first, so an unknown
        // subcommand or option fails here as it would at start.
        let output = Command::new(env!("CARGO_BIN_EXE_attendant-server"))
            .args(&args)
            .arg("--help")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{name}: {exec}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn units_keep_their_hardening() {
    for name in UNITS {
        let text = unit(name);
        for (key, expected) in [
            ("DynamicUser", "yes"),
            ("User", "attendant"),
            ("StateDirectory", "attendant"),
            ("NoNewPrivileges", "yes"),
            ("ProtectSystem", "strict"),
            ("ProtectHome", "yes"),
            ("PrivateTmp", "yes"),
            ("PrivateDevices", "yes"),
            ("CapabilityBoundingSet", ""),
            ("SystemCallFilter", "@system-service"),
        ] {
            assert_eq!(value(&text, key), Some(expected), "{name}: {key}");
        }
    }
}

#[test]
fn systemd_accepts_the_units() {
    let Some(tool) = systemd_analyze() else {
        return;
    };
    let dir = units_for_this_build();
    let output = Command::new(tool)
        .args(["verify", "--man=no"])
        .args(UNITS.map(|name| dir.path().join(name)))
        .output()
        .unwrap();
    assert!(
        output.status.success() && output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for name in UNITS {
        let output = Command::new(tool)
            .args(["security", "--offline=yes", "--threshold=20"])
            .arg(dir.path().join(name))
            .output()
            .unwrap();
        // systemd rates exposure from 0 (locked down) to 10; --threshold=20 fails above 2.0.
        assert!(
            output.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&output.stdout)
        );
    }
}
