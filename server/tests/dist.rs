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

/// Keys the sample shows commented out although they have a value: `workers` defaults to the
/// number of CPUs of the machine, `branches` to ASU's whole table, which a `[branches]` in the
/// file would replace.
const NOT_SPELLED_OUT: [&str; 2] = ["workers", "branches"];

/// `dist/attendant.toml` holds every key of the configuration: with its default value where it
/// has one, commented out where it is unset by default; loading it gives the defaults.
#[test]
fn the_sample_configuration_is_every_default() {
    use attendant_server::config::Config;

    let path = dist().join("attendant.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let loaded = Config::from_sources(&text, &path, []).unwrap();
    let mut expected = serde_json::to_value(Config::default()).unwrap();
    let mut found = serde_json::to_value(&loaded).unwrap();
    for key in NOT_SPELLED_OUT {
        expected.as_object_mut().unwrap().remove(key);
        found.as_object_mut().unwrap().remove(key);
    }
    assert_eq!(
        found, expected,
        "the sample's values differ from the defaults"
    );

    // Every key is in the file: set (a `key =` line) or shown commented out (`# key =`).
    let written: toml::Table = toml::from_str(&text).unwrap();
    let mut missing = Vec::new();
    for (key, value) in expected.as_object().unwrap() {
        let nested = value
            .as_object()
            .filter(|_| written.get(key).is_some_and(toml::Value::is_table));
        match nested {
            Some(fields) => {
                let table = written[key].as_table().unwrap();
                for (field, value) in fields {
                    let commented = value.is_null() && text.contains(&format!("\n# {field} = "));
                    if !table.contains_key(field) && !commented {
                        missing.push(format!("{key}.{field}"));
                    }
                }
            }
            None => {
                let commented = value.is_null() && text.contains(&format!("\n# {key} = "));
                if !written.contains_key(key) && !commented {
                    missing.push(key.clone());
                }
            }
        }
    }
    for key in NOT_SPELLED_OUT {
        if !text.contains(&format!("\n# {key}")) && !text.contains(&format!("\n# [{key}")) {
            missing.push(key.to_owned());
        }
    }
    assert!(
        missing.is_empty(),
        "keys missing from the sample: {missing:?}"
    );
}

/// `check-config` accepts the sample. Its default upstream is downloads.openwrt.org, which needs
/// the operator's `trusted_keys`; here the upstream is a local mirror directory, the one key
/// that differs.
#[test]
fn check_config_accepts_the_sample() {
    let mirror = tempfile::tempdir().unwrap();
    std::fs::write(mirror.path().join(".versions.json"), "{}").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_attendant-server"))
        .arg("check-config")
        .arg("--config")
        .arg(dist().join("attendant.toml"))
        .env_remove("ATTENDANT_CONFIG")
        .env("ATTENDANT_UPSTREAM_URL", mirror.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.ends_with("\nconfiguration OK\n"), "{stdout}");
}
