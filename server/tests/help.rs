//! The full `--help` of `attendant-server` and of every subcommand, pinned (the README copies
//! these, so a change shows up here first).
//!
//! After changing an option or a help text, regenerate the files with `ATTENDANT_BLESS=1 cargo
//! test -p attendant-server --test help` and review the diff.

#![expect(clippy::unwrap_used, reason = "test helpers may unwrap")]

use std::process::{Command, Output, Stdio};

/// The subcommands, as `attendant-server --help` lists them ("" is the top level).
const COMMANDS: [&str; 10] = [
    "",
    "serve",
    "worker",
    "workers",
    "keygen",
    "keys",
    "gc",
    "check-config",
    "channel",
    "streams",
];

/// Runs `attendant-server` with `args`, as a user would, without the environment variables that
/// change help (`ATTENDANT_CONFIG` is shown in it; `CLICOLOR_FORCE` would colour it).
fn run(args: &[&str], stdout: impl Into<Stdio>) -> Output {
    Command::new(env!("CARGO_BIN_EXE_attendant-server"))
        .args(args)
        .env_remove("ATTENDANT_CONFIG")
        .env_remove("CLICOLOR_FORCE")
        .stdout(stdout)
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

fn help(command: &str) -> String {
    let args: Vec<&str> = if command.is_empty() {
        vec!["--help"]
    } else {
        vec![command, "--help"]
    };
    let output = run(&args, Stdio::piped());
    assert!(
        output.status.success(),
        "`attendant-server {}` failed ({}): {}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn help_of_every_command_is_pinned() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/help");
    let bless = std::env::var_os("ATTENDANT_BLESS").is_some();
    for command in COMMANDS {
        let name = if command.is_empty() {
            "attendant-server"
        } else {
            command
        };
        let path = dir.join(format!("{name}.txt"));
        let actual = help(command);
        if bless {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}; run with ATTENDANT_BLESS=1", path.display()));
        assert_eq!(
            actual,
            expected,
            "`attendant-server {command} --help` changed; see {}",
            path.display()
        );
    }
}

#[test]
fn every_command_is_pinned() {
    // A subcommand added later must be added to COMMANDS (and so pinned).
    let top = help("");
    let listed: Vec<&str> = top
        .split("\nCommands:\n")
        .nth(1)
        .unwrap()
        .split("\n\n")
        .next()
        .unwrap()
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .collect();
    assert_eq!(listed, COMMANDS[1..], "{top}");
}

#[test]
fn every_command_lists_examples() {
    for command in COMMANDS {
        assert!(
            help(command).contains("\nExamples:\n  attendant-server"),
            "`attendant-server {command} --help` has no example"
        );
    }
}

#[test]
fn help_and_version_into_a_closed_pipe_exit_quietly() {
    for args in [&["--help"][..], &["--version"], &["serve", "--help"]] {
        // A pipe whose reader is gone: every write fails with EPIPE, as with `... | head -0`.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let output = run(args, writer);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

/// The production binary carries no fixture code: no `demo` subcommand (that is `attendant-e2e
/// demo`), and no normal dependency on the fixture crate, whatever features are enabled.
#[test]
fn production_build_carries_no_fixture_code() {
    let output = run(&["demo"], Stdio::piped());
    assert_eq!(output.status.code(), Some(2), "`demo` must be unknown");
    assert!(!help("").contains("demo"), "{}", help(""));

    let tree = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "--edges",
            "normal,build",
            "--all-features",
            "--prefix",
            "none",
            "--package",
            "attendant-server",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&tree.stdout);
    assert!(
        tree.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&tree.stderr)
    );
    assert!(stdout.contains("attendant-proto"), "{stdout}");
    assert!(!stdout.contains("attendant-e2e"), "{stdout}");
}
