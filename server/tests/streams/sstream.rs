//! The stock simplestreams tools (`sstream-query`, `sstream-mirror` from PyPI's
//! `python-simplestreams`), as the tests that check our streams against them run them.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The stock tool `name`: from `ATTENDANT_SSTREAM_DIR`, the virtual environment that
/// `scripts/install-test-deps.sh` makes under `target/`, or `PATH`.
pub(crate) fn sstream(name: &str) -> Command {
    let candidates = [
        std::env::var_os("ATTENDANT_SSTREAM_DIR").map(PathBuf::from),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/streams-venv/bin")),
    ];
    let program = candidates
        .into_iter()
        .flatten()
        .map(|dir| dir.join(name))
        .find(|path| path.exists())
        .unwrap_or_else(|| PathBuf::from(name));
    let mut command = Command::new(&program);
    command.env("LANG", "C.UTF-8");
    command
}

/// Runs `command` in `cwd` and expects success; returns stdout.
pub(crate) fn run_stock(mut command: Command, cwd: &Path) -> String {
    let output = command.current_dir(cwd).output().unwrap_or_else(|e| {
        panic!("cannot run {command:?}: {e}; install it with scripts/install-test-deps.sh")
    });
    assert!(
        output.status.success(),
        "`{command:?}` in {} exited {}\nstdout:\n{}\nstderr:\n{}",
        cwd.display(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}
