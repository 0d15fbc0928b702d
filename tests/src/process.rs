//! Running this workspace's router programs (the `attendant` agent, the rpcd plugin) on a fake
//! router root as a user or rpcd would, and reading what they printed.
//!
//! [`on_root`] makes the command: the root's stand-ins (`<root>/bin`, where
//! [`crate::sysupgrade::install`] puts the recording `sysupgrade`) come first on `PATH`, and the
//! caller's proxy variables are removed, because the agent honours them and these tests talk to
//! loopback servers only. The other functions are what the tests assert with: the exit code
//! with both streams on failure, the streams as text, and the last JSON line (the agent's
//! `--json` result).

use std::path::Path;
use std::process::{Command, Output};

use attendant_proto::wire;
use serde_json::Value;

/// The proxy variables the agent reads (curl's names, both spellings).
const PROXY_VARIABLES: [&str; 8] = [
    "http_proxy",
    "https_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
];

/// `program` as it runs on the fake router at `root`: `<root>/bin` first on `PATH`, no proxy
/// variables, no colour. The caller adds the arguments (`--root`, or `ATTENDANT_ROOT` for the
/// plugin).
pub fn on_root(program: &Path, root: &Path) -> Command {
    let path = format!(
        "{}:{}",
        root.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut command = Command::new(program);
    command.env("PATH", path).env(wire::NO_COLOR_ENV, "1");
    for name in PROXY_VARIABLES {
        command.env_remove(name);
    }
    command
}

/// Asserts the exit code, showing the status and both streams when it differs.
pub fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "exit status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        stdout(output),
        stderr(output)
    );
}

/// stdout as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The last line of stdout as JSON: the `result` line of the agent's `--json` output.
///
/// # Panics
///
/// When there is none, showing both streams: it is an assertion.
#[expect(
    clippy::panic,
    reason = "an assertion helper: the test stops with what the program printed"
)]
pub fn last_json(output: &Output) -> Value {
    let text = stdout(output);
    let line = text.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|error| {
        panic!(
            "the last line of stdout is not JSON ({error}), exit status {:?}\n--- stdout\n{text}\n--- stderr\n{}",
            output.status,
            stderr(output)
        )
    })
}
