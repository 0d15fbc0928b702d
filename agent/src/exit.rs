//! The exit codes of `attendant`, one table for every command.
//!
//! | code | meaning |
//! | ---: | --- |
//! | 0 | success; for `check`: the firmware is up to date |
//! | 1 | an error not listed below (file I/O, configuration, a failed install) |
//! | 2 | usage error: bad option or argument |
//! | 3 | `check`: an upgrade is available |
//! | 4 | blocked by checks (missing packages, downgrades without `--force`, no image type) |
//! | 5 | server error: unreachable, a refused build request, a failed build |
//! | 6 | verification failed: SHA-256, signature, board, compat_version or manifest |
//! | 7 | channel metadata refused: signature, key chain, revoked key, expired, replayed serial, wrong device, format |
//! | 130 | interrupted (Ctrl-C) |
//!
//! A closed stdout (`attendant list | head -1`) is not an error. The same table is in the
//! `--help` output (argh's `error_code`) and in the README.

use std::process::ExitCode;

/// How a command ended, as the shell sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExitStatus {
    /// The command did what was asked; `check`: the firmware is up to date.
    Success,
    /// Any error without a code of its own.
    Failure,
    /// The command line was not understood.
    Usage,
    /// `check`: a newer firmware is on offer.
    UpgradeAvailable,
    /// The pre-build checks refused the upgrade.
    Blocked,
    /// The server could not be reached, refused the request or failed the build.
    Server,
    /// The image failed verification and was not flashed.
    Verification,
    /// Release channel metadata failed a check of its signature, key chain, freshness, serial,
    /// device or format, and was not used.
    Metadata,
    /// Interrupted by SIGINT.
    Interrupted,
}

impl ExitStatus {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::Failure => 1,
            Self::Usage => 2,
            Self::UpgradeAvailable => 3,
            Self::Blocked => 4,
            Self::Server => 5,
            Self::Verification => 6,
            Self::Metadata => 7,
            Self::Interrupted => 130,
        }
    }
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> Self {
        ExitCode::from(status.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_has_a_distinct_code() {
        let all = [
            ExitStatus::Success,
            ExitStatus::Failure,
            ExitStatus::Usage,
            ExitStatus::UpgradeAvailable,
            ExitStatus::Blocked,
            ExitStatus::Server,
            ExitStatus::Verification,
            ExitStatus::Metadata,
            ExitStatus::Interrupted,
        ];
        let mut codes: Vec<u8> = all.iter().map(|s| s.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes, [0, 1, 2, 3, 4, 5, 6, 7, 130]);
    }
}
