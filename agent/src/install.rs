//! Running the pre-install hook and sysupgrade.
//!
//! Each program runs directly with an argument vector (never a shell, never ubus `file exec`
//! with its 30-second limit, which a sysupgrade outlives), with a timeout, and with its
//! stdout and stderr read concurrently so a chatty child cannot block on a full pipe; the tail of
//! its stderr goes into the error. The order is: the hook (its non-zero exit aborts), then
//! `sysupgrade --test` with the same flags as the real run, then `sysupgrade [-n] [-F] <image>`,
//! which on a router stops every service and reboots.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::hint::{Hint, HintCode};

/// The sysupgrade program, found on `PATH` (`/sbin/sysupgrade` on OpenWrt).
pub const SYSUPGRADE: &str = "sysupgrade";

/// Time allowed for the pre-install hook.
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(600);

/// Time allowed for `sysupgrade --test` (slow MIPS devices take minutes on big images).
pub const TEST_TIMEOUT: Duration = Duration::from_secs(600);

/// Time allowed for `sysupgrade` to hand over to procd before we stop waiting.
pub const INSTALL_TIMEOUT: Duration = Duration::from_secs(900);

/// Bytes of a child's output kept for error messages.
pub const MAX_OUTPUT_TAIL: usize = 4096;

/// Environment variable that tells the pre-install hook which image is about to be flashed.
pub const HOOK_IMAGE_ENV: &str = attendant_proto::wire::HOOK_IMAGE_ENV;

/// How to install.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct InstallOptions {
    /// Keep the configuration (without this, `sysupgrade -n`).
    pub keep_settings: bool,
    /// `sysupgrade -F`: flash even when sysupgrade's checks fail.
    pub force_flash: bool,
    /// Run every check, but not the real sysupgrade.
    pub dry_run: bool,
    /// A program run before sysupgrade; a non-zero exit aborts.
    pub pre_install: Option<PathBuf>,
}

/// How the install ended (when it returns at all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Installed {
    /// sysupgrade accepted the image and the device is rebooting.
    Rebooting {
        /// The command that was run.
        command: Vec<String>,
    },
    /// `--dry-run`: everything passed, nothing was flashed.
    DryRun {
        /// The command that would have run.
        command: Vec<String>,
    },
}

/// Why the install did not happen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InstallError {
    /// A program could not be started.
    #[error("cannot run `{program}`: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A program ran past its time limit and was killed.
    #[error("`{program}` did not finish within {} s and was stopped", timeout.as_secs())]
    Timeout {
        /// The program.
        program: String,
        /// The limit.
        timeout: Duration,
    },
    /// A program was killed by Ctrl-C.
    #[error("`{program}` was interrupted")]
    Interrupted {
        /// The program.
        program: String,
    },
    /// The pre-install hook failed.
    #[error("the pre-install hook `{path}` failed with {status}{}", tail(stderr))]
    Hook {
        /// The hook.
        path: PathBuf,
        /// How it ended.
        status: String,
        /// The end of its stderr.
        stderr: String,
    },
    /// `sysupgrade --test` refused the image.
    #[error("`sysupgrade --test` refused the image with {status}{}", tail(stderr))]
    Test {
        /// How it ended.
        status: String,
        /// The end of its stderr.
        stderr: String,
    },
    /// sysupgrade failed.
    #[error("sysupgrade failed with {status}{}", tail(stderr))]
    Sysupgrade {
        /// How it ended.
        status: String,
        /// The end of its stderr.
        stderr: String,
    },
}

impl InstallError {
    /// The way out, if there is one.
    pub fn hint(&self) -> Option<Hint> {
        match self {
            Self::Hook { .. } => Some(Hint::coded(
                HintCode::PreInstall,
                "fix the hook, or leave out `--pre-install`",
            )),
            Self::Test { .. } => Some(Hint::coded(
                HintCode::ForceFlash,
                "sysupgrade's own checks failed; `--force-flash` passes `-F` if you are sure",
            )),
            _ => None,
        }
    }
}

/// Runs the hook, `sysupgrade --test`, then sysupgrade (unless `dry_run`).
pub fn install(
    image: &Path,
    options: &InstallOptions,
    note: &mut dyn FnMut(&str),
) -> Result<Installed, InstallError> {
    if let Some(hook) = &options.pre_install {
        note(&format!(
            "running the pre-install hook `{}`",
            hook.display()
        ));
        let output = run(hook.as_os_str(), &[], Some(image), HOOK_TIMEOUT)?;
        if !output.success {
            return Err(InstallError::Hook {
                path: hook.clone(),
                status: output.status,
                stderr: output.stderr,
            });
        }
    }
    let flags = sysupgrade_flags(options);
    let mut test_args = vec!["--test".to_owned()];
    test_args.extend(flags.iter().cloned());
    test_args.push(image.display().to_string());
    note(&format!(
        "checking the image with `{SYSUPGRADE} {}`",
        test_args.join(" ")
    ));
    let output = run(SYSUPGRADE.as_ref(), &test_args, None, TEST_TIMEOUT)?;
    if !output.success {
        return Err(InstallError::Test {
            status: output.status,
            stderr: output.stderr,
        });
    }
    let mut args = flags;
    args.push(image.display().to_string());
    let mut command = vec![SYSUPGRADE.to_owned()];
    command.extend(args.iter().cloned());
    if options.dry_run {
        return Ok(Installed::DryRun { command });
    }
    if options.force_flash {
        log::warn!("--force-flash: sysupgrade runs with `-F` and skips its own image checks");
    }
    note(&format!(
        "installing `{}` and rebooting{}; this session will drop",
        image.display(),
        if options.keep_settings {
            ", keeping the configuration"
        } else {
            ", with a fresh configuration"
        }
    ));
    let output = run(SYSUPGRADE.as_ref(), &args, None, INSTALL_TIMEOUT)?;
    if output.success {
        Ok(Installed::Rebooting { command })
    } else {
        Err(InstallError::Sysupgrade {
            status: output.status,
            stderr: output.stderr,
        })
    }
}

/// sysupgrade's flags for `options`: `-n` when not keeping settings, `-F` when forced.
pub fn sysupgrade_flags(options: &InstallOptions) -> Vec<String> {
    let mut flags = Vec::new();
    if !options.keep_settings {
        flags.push("-n".to_owned());
    }
    if options.force_flash {
        flags.push("-F".to_owned());
    }
    flags
}

struct Output {
    success: bool,
    status: String,
    stderr: String,
}

fn run(
    program: &std::ffi::OsStr,
    args: &[String],
    image: Option<&Path>,
    timeout: Duration,
) -> Result<Output, InstallError> {
    let name = program.to_string_lossy().into_owned();
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(image) = image {
        command.env(HOOK_IMAGE_ENV, image);
    }
    let mut child = command.spawn().map_err(|source| InstallError::Spawn {
        program: name.clone(),
        source,
    })?;
    let stdout = child
        .stdout
        .take()
        .map(|pipe| thread::spawn(move || drain(pipe, true)));
    let stderr = child
        .stderr
        .take()
        .map(|pipe| thread::spawn(move || drain(pipe, false)));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(InstallError::Timeout {
                    program: name,
                    timeout,
                });
            }
            Ok(None) => thread::sleep(Duration::from_millis(50)),
            Err(source) => {
                return Err(InstallError::Spawn {
                    program: name,
                    source,
                });
            }
        }
    };
    let _ = stdout.map(thread::JoinHandle::join);
    let stderr = stderr
        .and_then(|handle| handle.join().ok())
        .unwrap_or_default();
    {
        use std::os::unix::process::ExitStatusExt;
        if status.signal() == Some(2) {
            return Err(InstallError::Interrupted { program: name });
        }
    }
    Ok(Output {
        success: status.success(),
        status: status.to_string(),
        stderr,
    })
}

/// Reads a pipe to its end, echoing stdout lines to the log and keeping the tail.
fn drain(mut pipe: impl Read, echo: bool) -> String {
    let mut tail: Vec<u8> = Vec::new();
    let mut buffer = [0_u8; 4096];
    loop {
        match pipe.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => {
                let chunk = buffer.get(..read).unwrap_or_default();
                if echo {
                    for line in String::from_utf8_lossy(chunk).lines() {
                        log::info!("{line}");
                    }
                }
                tail.extend_from_slice(chunk);
                if tail.len() > MAX_OUTPUT_TAIL {
                    let cut = tail.len() - MAX_OUTPUT_TAIL;
                    tail.drain(..cut);
                }
            }
        }
    }
    String::from_utf8_lossy(&tail).trim().to_owned()
}

fn tail(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(":\n{stderr}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_n_and_f_only_when_asked() {
        let mut options = InstallOptions {
            keep_settings: true,
            ..InstallOptions::default()
        };
        assert!(sysupgrade_flags(&options).is_empty());
        options.keep_settings = false;
        options.force_flash = true;
        assert_eq!(sysupgrade_flags(&options), ["-n", "-F"]);
    }

    #[test]
    fn a_failing_hook_stops_before_sysupgrade() {
        let dir = tempfile::tempdir().unwrap();
        let hook = dir.path().join("hook");
        std::fs::write(
            &hook,
            "#!/bin/sh\necho \"no: $ATTENDANT_IMAGE\" >&2\nexit 3\n",
        )
        .unwrap();
        std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let options = InstallOptions {
            pre_install: Some(hook),
            ..InstallOptions::default()
        };
        let error = install(Path::new("/tmp/img"), &options, &mut |_| {}).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("failed with exit status: 3:\nno: /tmp/img"),
            "{error}"
        );
    }

    #[test]
    fn a_hung_program_is_stopped() {
        let error = run(
            "sleep".as_ref(),
            &["5".to_owned()],
            None,
            Duration::from_millis(200),
        )
        .err()
        .unwrap();
        assert!(matches!(error, InstallError::Timeout { .. }));
    }
}
