//! The full `--help` of every command, pinned: the README's option tables are copied from these.
//!
//! After changing an option, regenerate the files with `ATTENDANT_BLESS=1 cargo test -p
//! attendant --test help` and review the diff.

#![expect(clippy::unwrap_used, reason = "test helpers may unwrap")]

use std::process::Command;

use argh::FromArgs;

const COMMANDS: [&str; 13] = [
    "", "check", "channels", "upgrade", "download", "verify", "install", "versions", "list",
    "blob", "status", "report", "dump",
];

fn help(command: &str) -> String {
    let args: Vec<&str> = if command.is_empty() {
        vec!["--help"]
    } else {
        vec![command, "--help"]
    };
    let exit = attendant::Args::from_args(&["attendant"], &args).unwrap_err();
    assert_eq!(exit.status, Ok(()), "--help must succeed");
    exit.output
}

#[test]
fn help_of_every_command_is_pinned() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/help");
    let bless = std::env::var_os("ATTENDANT_BLESS").is_some();
    for command in COMMANDS {
        let name = if command.is_empty() {
            "attendant"
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
            "`attendant {command} --help` changed; see {}",
            path.display()
        );
    }
}

#[test]
fn every_command_lists_examples() {
    for command in COMMANDS {
        assert!(
            help(command).contains("\nExamples:\n"),
            "`{command} --help` has no example"
        );
    }
}

#[test]
fn help_and_version_into_a_closed_pipe_exit_quietly() {
    for args in [&["--help"][..], &["--version"], &["check", "--help"]] {
        // A pipe whose reader is gone: every write fails with EPIPE, as with `... | head -0`.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let output = Command::new(env!("CARGO_BIN_EXE_attendant"))
            .args(args)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}
