//! Test harness: unpack a fixture ImageBuilder and run `make` in it as a caller would.
//!
//! [`unpack_imagebuilder`] extracts the archive of a release/target from a generated mirror;
//! [`run_make`] runs `make <args>` in it (each argument passed separately, never through a
//! shell) and returns a [`MakeOutput`] whose `Display` shows the command, the directory, the
//! exit status and both streams, for assertion messages.

use std::fmt;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::catalog::PackageManager;
use crate::imagebuilder;
use crate::mirror::MirrorInfo;

/// Largest unpacked ImageBuilder archive accepted, in bytes.
pub const MAX_UNPACKED_BYTES: u64 = 512 * 1024 * 1024;

/// Why an ImageBuilder could not be unpacked or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HarnessError {
    /// The archive or its target directory is missing or unreadable.
    #[error("cannot read `{path}`: {source}")]
    Read {
        /// The path.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The release or target is not in the mirror.
    #[error("the mirror has no ImageBuilder for `{version}` `{target}`")]
    Unknown {
        /// Release.
        version: String,
        /// Target.
        target: String,
    },
    /// The archive is larger than [`MAX_UNPACKED_BYTES`] once decompressed.
    #[error("the ImageBuilder archive unpacks to more than {MAX_UNPACKED_BYTES} bytes")]
    TooLarge,
    /// `make` could not be started.
    #[error("cannot run `make`: {0}")]
    Make(#[source] std::io::Error),
}

/// What one `make` run printed.
#[derive(Debug, Clone)]
pub struct MakeOutput {
    /// The command line, for messages.
    pub command: String,
    /// The directory it ran in.
    pub dir: PathBuf,
    /// Exit status (`-1` when killed by a signal).
    pub status: i32,
    /// stdout.
    pub stdout: String,
    /// stderr.
    pub stderr: String,
}

impl fmt::Display for MakeOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "command: {}\ndirectory: {}\nstatus: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command,
            self.dir.display(),
            self.status,
            self.stdout,
            self.stderr
        )
    }
}

/// Extracts the ImageBuilder of `version`/`target` into `dest`; returns its top directory.
pub fn unpack_imagebuilder(
    info: &MirrorInfo,
    version: &str,
    target: &str,
    dest: &Path,
) -> Result<PathBuf, HarnessError> {
    let unknown = || HarnessError::Unknown {
        version: version.to_owned(),
        target: target.to_owned(),
    };
    let catalog = crate::catalog::Catalog::new(crate::seed::Seed(info.seed));
    let release = catalog.release(version).ok_or_else(unknown)?;
    let target_info = catalog.target(target).ok_or_else(unknown)?;
    let name = imagebuilder::dir_name(version, target_info);
    let extension = match release.package_manager {
        PackageManager::Opkg => "tar.xz",
        PackageManager::Apk => "tar.zst",
    };
    let path = info
        .target_dir(version, target)
        .join(format!("{name}.{extension}"));
    let read_error = |source| HarnessError::Read {
        path: path.display().to_string(),
        source,
    };
    let compressed = fs::read(&path).map_err(read_error)?;
    let mut raw = Vec::new();
    let limit = MAX_UNPACKED_BYTES.saturating_add(1);
    let read = match release.package_manager {
        PackageManager::Opkg => liblzma::read::XzDecoder::new(compressed.as_slice())
            .take(limit)
            .read_to_end(&mut raw),
        PackageManager::Apk => zstd::stream::read::Decoder::new(compressed.as_slice())
            .and_then(|decoder| decoder.take(limit).read_to_end(&mut raw)),
    };
    read.map_err(read_error)?;
    if raw.len() as u64 > MAX_UNPACKED_BYTES {
        return Err(HarnessError::TooLarge);
    }
    // tar's `unpack` refuses members that would escape `dest`.
    tar::Archive::new(raw.as_slice())
        .unpack(dest)
        .map_err(read_error)?;
    Ok(dest.join(name))
}

/// Runs `make <args>` in `dir`, with `env` added to the environment.
pub fn run_make(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> Result<MakeOutput, HarnessError> {
    let mut command = Command::new("make");
    command.args(args).current_dir(dir);
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().map_err(HarnessError::Make)?;
    Ok(MakeOutput {
        command: format!("make {}", args.join(" ")),
        dir: dir.to_path_buf(),
        status: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}
