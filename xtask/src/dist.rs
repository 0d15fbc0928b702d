//! `cargo run -p xtask -- dist`: builds the static router binaries (or takes them from a
//! directory) and writes every installable file under `target/dist/`:
//!
//! - `attendant_<version>_<arch>.ipk` for `x86_64` and each aarch64 architecture name
//!   ([`Target::opkg_architectures`]),
//! - `luci-app-attendant_<version>_all.ipk`,
//! - `attendant-<version>-<target>.tar.gz` (both packages' files and an install script) for
//!   routers that use apk (OpenWrt 25.12 and later).
//!
//! The router gets one binary, `ubus-bridge`'s multi-call `attendant-multicall` (agent and rpcd
//! plugin), built static for musl with the `openwrt` profile and the cross settings of
//! `scripts/build-agent.sh` (which builds only the agent's own binary), std rebuilt without its
//! backtrace symboliser and with the `immediate-abort` panic strategy, as that script does by
//! default (it says why and what it costs).

use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

use crate::elf;
use crate::ipk::{self, ArchiveError, Mtime};
use crate::layout::{self, Binaries, LayoutError, Target};

/// Longest a release build may take (two LTO cross builds of the whole dependency tree).
pub const BUILD_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// The Cargo profile of the router binaries (root `Cargo.toml`).
pub const PROFILE: &str = "openwrt";

/// The panic strategy of the router binaries, as `scripts/build-agent.sh` sets it: a panic
/// stops the program without its message, which takes the panic machinery out of the binary.
pub const IMMEDIATE_ABORT: &str = "-Zunstable-options -Cpanic=immediate-abort";

/// The size settings of the router binaries, as `scripts/build-agent.sh` sets them (it says what
/// they save and cost): no panic locations, the `sha2` crate's compact software rounds.
pub const SIZE_FLAGS: &str = "-Zlocation-detail=none --cfg sha2_backend_soft=\"compact\"";

/// Cargo's target directory for builds against a rebuilt std (as `scripts/build-agent.sh`).
pub const REBUILT_STD_TARGET_DIR: &str = "target/rebuilt-std";

/// What `dist` needs to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistOptions {
    /// The repository root.
    pub repo: PathBuf,
    /// Take `attendant-multicall` from here instead of building them.
    pub binaries_from: Option<PathBuf>,
    /// The targets to package (empty: all).
    pub targets: Vec<Target>,
    /// Where to write (default `<repo>/target/dist`).
    pub out: Option<PathBuf>,
    /// The mtime of every archive member.
    pub mtime: Mtime,
}

/// `dist` failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DistError {
    /// `--binaries-from` was given without exactly one target.
    #[error("`--binaries-from` holds binaries for one target, but {count} targets were selected")]
    BinariesNeedOneTarget {
        /// How many targets were selected.
        count: usize,
    },
    /// A build command could not start, failed or timed out.
    #[error("`{command}` {outcome}")]
    Build {
        /// The command line.
        command: String,
        /// What happened.
        outcome: String,
    },
    /// A binary would not run on the routers of its package.
    #[error("`{path}` cannot go into the {} packages: {problem}", target.name())]
    Binary {
        /// The binary.
        path: PathBuf,
        /// The target it was to be packed for.
        target: Target,
        /// What is wrong with it.
        problem: String,
    },
    /// Reading the package sources failed.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// Writing an archive failed.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// Writing an output file failed.
    #[error("cannot write `{path}`")]
    Write {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl DistError {
    /// The way out, printed after the error as `hint: ...`; `None` when the message says it
    /// all. Kept out of `Display` so the message reads the same wherever it is chained.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            Self::BinariesNeedOneTarget { .. } => {
                Some("add `--target x86_64` or `--target aarch64`")
            }
            Self::Build { .. }
            | Self::Binary { .. }
            | Self::Layout(_)
            | Self::Archive(_)
            | Self::Write { .. } => None,
        }
    }
}

/// Builds or collects the binaries and writes every package; returns the files written.
pub fn dist(options: &DistOptions) -> Result<Vec<PathBuf>, DistError> {
    let targets = if options.targets.is_empty() {
        Target::ALL.to_vec()
    } else {
        options.targets.clone()
    };
    let binaries: Vec<(Target, Binaries)> = match &options.binaries_from {
        Some(dir) => match targets.as_slice() {
            [target] => vec![(*target, Binaries::in_dir(dir))],
            _ => {
                return Err(DistError::BinariesNeedOneTarget {
                    count: targets.len(),
                });
            }
        },
        None => build(&options.repo, &targets)?,
    };
    for (target, binaries) in &binaries {
        // Binaries given with --binaries-from may be dynamic test builds; ours must be static.
        check_binary(
            *target,
            &binaries.multicall,
            options.binaries_from.is_none(),
        )?;
    }
    let out = options
        .out
        .clone()
        .unwrap_or_else(|| options.repo.join("target/dist"));
    fs::create_dir_all(&out).map_err(|source| DistError::Write {
        path: out.clone(),
        source,
    })?;

    let mut written = Vec::new();
    let luci = layout::luci_app(&options.repo)?;
    written.push(write(
        &out,
        &luci.ipk_name("all"),
        &ipk::ipk(&luci, "all", options.mtime)?,
    )?);
    for (target, binaries) in &binaries {
        let attendant = layout::attendant(&options.repo, binaries)?;
        for architecture in target.opkg_architectures() {
            let bytes = ipk::ipk(&attendant, architecture, options.mtime)?;
            written.push(write(&out, &attendant.ipk_name(architecture), &bytes)?);
        }
        let top = format!("attendant-{}-{}", attendant.version, target.name());
        let bytes = ipk::tarball(
            &top,
            &[&attendant, &luci],
            &instructions(*target),
            options.mtime,
        )?;
        written.push(write(&out, &format!("{top}.tar.gz"), &bytes)?);
    }
    Ok(written)
}

/// Checks that `path` is an ELF binary for `target` and, when `require_static`, that it needs no
/// dynamic loader (OpenWrt's loader is musl's, at a path no glibc binary asks for).
fn check_binary(target: Target, path: &Path, require_static: bool) -> Result<(), DistError> {
    let problem = |problem: String| DistError::Binary {
        path: path.to_owned(),
        target,
        problem,
    };
    let bytes = fs::read(path).map_err(|error| problem(format!("cannot read it: {error}")))?;
    let info = elf::inspect(&bytes).map_err(|error| problem(error.to_string()))?;
    if info.machine != target.elf_machine() {
        return Err(problem(format!(
            "it is built for ELF machine {}, not {} ({})",
            info.machine,
            target.elf_machine(),
            target.rust_triple()
        )));
    }
    if require_static && info.needs_loader {
        return Err(problem(
            "it is dynamically linked (it names a program interpreter); the router packages need \
             a static musl build"
                .to_owned(),
        ));
    }
    Ok(())
}

/// The INSTALL file of a tarball.
fn instructions(target: Target) -> String {
    format!(
        "Attendant for {target} routers without opkg (OpenWrt 25.12 and later use apk).\n\
         The binaries are static and run on every {target} OpenWrt target.\n\
         \n\
         1. On the router, install the dependencies:\n\
         \x20     apk add ca-bundle attendedsysupgrade-common\n\
         2. Copy this tarball to the router's /tmp and unpack it:\n\
         \x20     cd /tmp && tar -xzf attendant-*-{target}.tar.gz\n\
         3. Run the install script (copies root/ onto /, adds `config attendant 'attendant'`\n\
         \x20  to /etc/config/attendedsysupgrade, reloads rpcd):\n\
         \x20     sh /tmp/attendant-*-{target}/install.sh\n\
         4. Log in to LuCI again; the app is under System -> Firmware upgrade.\n\
         \n\
         To remove: sh uninstall.sh from the same directory. Files copied this way are not\n\
         known to apk and are not kept by sysupgrade unless listed in /etc/sysupgrade.conf.\n",
        target = target.name()
    )
}

/// Writes `bytes` to `dir/name` whole or not at all: a package that a crash or a full disk cut
/// short would still install its first files on a router before failing.
///
/// The bytes go to a temporary file in the same directory (so the rename stays on one file
/// system), are flushed to disk (`fsync`), and only then take the final name; on any failure
/// the temporary file is removed. The server has a writer like this, but it is private to the
/// server crate, and this release tool must not depend on the server (its HTTP and database
/// stack), so the few lines are repeated here.
fn write(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, DistError> {
    let path = dir.join(name);
    // The process id keeps two `dist` runs into one directory from sharing a temporary file.
    let temporary = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let written = write_synced(&temporary, bytes).and_then(|()| fs::rename(&temporary, &path));
    if let Err(source) = written {
        // Best effort: the write error is what matters; a leftover temporary file is hidden.
        let _ = fs::remove_file(&temporary);
        return Err(DistError::Write { path, source });
    }
    Ok(path)
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Builds the multi-call binary with cargo for `targets`.
fn build(repo: &Path, targets: &[Target]) -> Result<Vec<(Target, Binaries)>, DistError> {
    let sysroot = output(Command::new("rustc").args(["--print", "sysroot"]))?;
    let host_info = output(Command::new("rustc").arg("-vV"))?;
    let host = host_info
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .unwrap_or_default();
    let lld_dir = Path::new(sysroot.trim()).join(format!("lib/rustlib/{host}/bin"));
    let mut path = OsString::from(lld_dir);
    path.push(":");
    path.push(std::env::var_os("PATH").unwrap_or_default());

    // The same cross settings as scripts/build-agent.sh, std rebuilt as there.
    let mut plugin = Command::new("cargo");
    plugin.args([
        "build",
        "--quiet",
        "--locked",
        "-Zbuild-std=std,panic_abort",
        "-Zbuild-std-features=optimize_for_size",
        "-p",
        "attendant-ubus",
        "--bin",
        layout::MULTICALL_BIN,
    ]);
    plugin.args(["--profile", PROFILE]);
    for target in targets {
        plugin.args(["--target", target.rust_triple()]);
    }
    let target_dir = repo.join(REBUILT_STD_TARGET_DIR);
    // The panic strategy and size settings of scripts/build-agent.sh (which says what they cost
    // and save), appended to the caller's flags.
    let mut rustflags = std::env::var("RUSTFLAGS").unwrap_or_default();
    if !rustflags.is_empty() {
        rustflags.push(' ');
    }
    rustflags.push_str(IMMEDIATE_ABORT);
    rustflags.push(' ');
    rustflags.push_str(SIZE_FLAGS);
    plugin
        .env("RUSTFLAGS", rustflags)
        .env("PATH", path)
        .env("RUSTC_BOOTSTRAP", "1")
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER", "rust-lld")
        .env("CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_LINKER", "rust-lld")
        .env("CC_aarch64_unknown_linux_musl", "aarch64-linux-gnu-gcc")
        .env("AR_aarch64_unknown_linux_musl", "aarch64-linux-gnu-ar")
        .env("CC_x86_64_unknown_linux_musl", "musl-gcc");
    run(plugin.current_dir(repo))?;

    Ok(targets
        .iter()
        .map(|target| {
            let dir = target_dir.join(target.rust_triple()).join(PROFILE);
            (*target, Binaries::in_dir(&dir))
        })
        .collect())
}

/// Runs `command` (stdout and stderr shown) and waits at most [`BUILD_TIMEOUT`].
fn run(command: &mut Command) -> Result<(), DistError> {
    let line = command_line(command);
    let failed = |outcome: String| DistError::Build {
        command: line.clone(),
        outcome,
    };
    let mut child = command
        .spawn()
        .map_err(|error| failed(format!("could not start: {error}")))?;
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(failed(exited(status))),
            Ok(None) if started.elapsed() > BUILD_TIMEOUT => {
                // Best effort: the timeout is reported whether or not the kill worked.
                let _ = child.kill();
                return Err(failed(format!(
                    "did not finish within {} s",
                    BUILD_TIMEOUT.as_secs()
                )));
            }
            Ok(None) => thread::sleep(Duration::from_millis(200)),
            Err(error) => return Err(failed(format!("could not be waited for: {error}"))),
        }
    }
}

/// Runs a quick query command and returns its stdout.
fn output(command: &mut Command) -> Result<String, DistError> {
    let line = command_line(command);
    let failed = |outcome: String| DistError::Build {
        command: line.clone(),
        outcome,
    };
    let output = command
        .output()
        .map_err(|error| failed(format!("could not start: {error}")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(failed(format!(
            "{}: {}",
            exited(output.status),
            stderr.trim()
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `program arg...` as typed (no quoting, no working directory).
fn command_line(command: &Command) -> String {
    let mut line = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    line
}

fn exited(status: ExitStatus) -> String {
    match status.code() {
        Some(code) => format!("failed with exit code {code}"),
        None => "was killed by a signal".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binaries_from_needs_one_target() {
        let options = DistOptions {
            repo: PathBuf::from("."),
            binaries_from: Some(PathBuf::from("target/debug")),
            targets: Vec::new(),
            out: None,
            mtime: Mtime(0),
        };
        let error = dist(&options).unwrap_err();
        assert_eq!(
            error.to_string(),
            "`--binaries-from` holds binaries for one target, but 2 targets were selected"
        );
        assert_eq!(
            error.hint(),
            Some("add `--target x86_64` or `--target aarch64`")
        );
    }

    #[test]
    fn write_replaces_whole_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.ipk", b"first").unwrap();
        let path = write(dir.path(), "a.ipk", b"second").unwrap();
        assert_eq!(path, dir.path().join("a.ipk"));
        assert_eq!(fs::read(&path).unwrap(), b"second");
        assert_eq!(names(dir.path()), ["a.ipk"]);
    }

    #[test]
    fn a_failed_write_names_the_file_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        // A directory in the way: the rename onto it fails after the data was written.
        fs::create_dir(dir.path().join("a.ipk")).unwrap();
        let error = write(dir.path(), "a.ipk", b"bytes").unwrap_err();
        assert!(
            matches!(&error, DistError::Write { path, .. } if *path == dir.path().join("a.ipk")),
            "{error:?}"
        );
        assert_eq!(names(dir.path()), ["a.ipk"]);
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn reports_failing_command_with_exit_code() {
        let error = run(Command::new("false").current_dir("/")).unwrap_err();
        assert_eq!(error.to_string(), "`false` failed with exit code 1");
    }
}
