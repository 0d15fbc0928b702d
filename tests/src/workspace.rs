//! This workspace's own binaries, for end-to-end tests that run them as processes: built (or
//! brought up to date) with cargo in the profile of the running test, and found beside it in
//! `target/<profile>/`.
//!
//! A test binary lives in `target/<profile>/deps/`; the binaries of other packages are not
//! built for it (cargo only builds `CARGO_BIN_EXE_*` of the package under test), so the test
//! asks cargo once per run. Cargo's own lock makes racing test processes safe.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::mirror::{MirrorError, MirrorInfo, helper_path, shared_fixture};

/// Why a binary could not be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkspaceError {
    /// The running executable's path is unknown.
    #[error("cannot find the running test executable: {0}")]
    CurrentExe(#[source] std::io::Error),
    /// The running executable is not under `target/<profile>/deps/`.
    #[error("`{0}` is not in a cargo target directory")]
    NotInTarget(PathBuf),
    /// cargo could not be started or failed.
    #[error("`cargo build {args}` failed: {reason}")]
    Build {
        /// The arguments.
        args: String,
        /// The exit status or the error starting it.
        reason: String,
    },
    /// cargo succeeded but the binary is not where it should be.
    #[error("`{0}` was not built")]
    Missing(PathBuf),
    /// The fixture mirror could not be made.
    #[error(transparent)]
    Mirror(#[from] MirrorError),
}

/// `target/<profile>/<name>`, built first by `cargo build ARGS`.
///
/// Cargo unifies features over the packages of one command, so each distinct `ARGS` can
/// compile the shared dependencies once more: callers reuse an argument list another test
/// already uses ([`AGENT_BUILD`] for the agent; the LuCI end-to-end test's [`SERVER_BUILD`] for
/// the server).
pub fn binary(args: &[&str], name: &str) -> Result<PathBuf, WorkspaceError> {
    cargo_build(args)?;
    let path = profile_dir()?.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(WorkspaceError::Missing(path))
    }
}

/// The `attendant` agent, built as every test that runs it builds it.
pub fn agent() -> Result<PathBuf, WorkspaceError> {
    binary(&AGENT_BUILD, "attendant")
}

/// The `cargo build` arguments of [`agent`].
pub const AGENT_BUILD: [&str; 4] = ["-p", "attendant", "--bin", "attendant"];

/// The `cargo build` arguments `luci/tests/run.sh` builds `attendant-server` with.
pub const SERVER_BUILD: [&str; 7] = [
    "-p",
    "attendant-ubus",
    "-p",
    "attendant-server",
    "-p",
    "attendant-e2e",
    "--bins",
];

/// The fixture mirror of `seed`, with the ImageBuilder helper built first when needed
/// ([`shared_fixture`]).
pub fn fixture(seed: u64) -> Result<MirrorInfo, WorkspaceError> {
    if helper_path().is_err() {
        cargo_build(&["-p", "attendant-e2e", "--bin", "attendant-ib-helper"])?;
    }
    Ok(shared_fixture(seed)?)
}

/// Set to `1` by `scripts/test-all.sh` for its `cargo test --workspace --all-targets`: that
/// command builds every binary of the workspace into `target/<profile>/` before it runs a test,
/// so [`cargo_build`] asks cargo nothing. Asking again with a narrower package list would resolve
/// the dependencies' features differently and compile them a second time (minutes on a 2-core
/// CI machine) only to replace binaries that are already up to date.
pub const PREBUILT_ENV: &str = "ATTENDANT_TEST_PREBUILT";

/// `cargo build --quiet ARGS` in the profile of the running test (`--release` when it runs
/// from `target/release`); nothing when [`PREBUILT_ENV`] is `1`.
pub fn cargo_build(args: &[&str]) -> Result<(), WorkspaceError> {
    if std::env::var_os(PREBUILT_ENV).is_some_and(|value| value == "1") {
        return Ok(());
    }
    let release = profile_dir()?
        .file_name()
        .is_some_and(|name| name == "release");
    let mut command = Command::new(env!("CARGO"));
    command.arg("build").arg("--quiet").args(args);
    if release {
        command.arg("--release");
    }
    let failed = |reason: String| WorkspaceError::Build {
        args: args.join(" "),
        reason,
    };
    let status = command.status().map_err(|e| failed(e.to_string()))?;
    if status.success() {
        Ok(())
    } else {
        Err(failed(status.to_string()))
    }
}

/// `target/<profile>`: the parent of the `deps/` directory the test runs from.
fn profile_dir() -> Result<PathBuf, WorkspaceError> {
    let exe = std::env::current_exe().map_err(WorkspaceError::CurrentExe)?;
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .ok_or(WorkspaceError::NotInTarget(exe))
}
