//! Every failure of the agent's library, and the one place where an error becomes an exit code
//! ([`Error::exit_status`]) or a way out ([`Error::hint`]).
//!
//! An error's `Display` is the CLI's text, hint included; front ends without flags take
//! [`Error::summary`] and [`Error::hint`] instead.

use std::path::PathBuf;

use crate::build::BuildError;
use crate::client::ClientError;
use crate::config::ConfigError;
use crate::download::DownloadError;
use crate::exit::ExitStatus;
use crate::facts::FactsError;
use crate::hint::{self, Finding, Hint, HintCode};
use crate::install::InstallError;
use crate::plan::PlanError;
use crate::state::StateError;
use crate::verify::VerifyError;

/// Any failure of the engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad option values.
    #[error("{0}")]
    Usage(String),
    /// The configuration file.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The device facts.
    #[error(transparent)]
    Facts(#[from] FactsError),
    /// Talking to the server.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A server document that does not parse.
    #[error("{what} from the server is not valid: {message}")]
    Document {
        /// Which document.
        what: &'static str,
        /// The parser's message.
        message: String,
    },
    /// Planning.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The checks refused the upgrade.
    #[error("the checks found problems; not upgrading:{}", problem_lines(.0))]
    Blocked(Vec<Finding>),
    /// The build.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The download.
    #[error(transparent)]
    Download(#[from] DownloadError),
    /// Verification.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// Installing.
    #[error(transparent)]
    Install(#[from] InstallError),
    /// The state file.
    #[error(transparent)]
    State(#[from] StateError),
    /// Another run holds the run lock.
    #[error(
        "another attendant run is downloading, verifying or installing (it holds `{path}`); wait for it to finish\n\nhint: `attendant status` shows what it is doing"
    )]
    Busy {
        /// The lock file.
        path: PathBuf,
    },
    /// A local file that could not be written.
    #[error("cannot write `{path}`: {source}")]
    Write {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A local file.
    #[error("cannot read `{path}`: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl Error {
    /// The one mapping from an error to an exit status.
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            Self::Usage(_) => ExitStatus::Usage,
            Self::Config(_)
            | Self::Facts(_)
            | Self::State(_)
            | Self::Io { .. }
            | Self::Write { .. }
            | Self::Busy { .. } => ExitStatus::Failure,
            Self::Client(ClientError::CaFile { .. } | ClientError::CaEmpty { .. })
            | Self::Client(ClientError::Proxy { .. }) => ExitStatus::Failure,
            Self::Client(_) | Self::Document { .. } | Self::Build(_) => ExitStatus::Server,
            Self::Download(DownloadError::Io { .. }) => ExitStatus::Failure,
            Self::Download(DownloadError::NoSpace { .. }) => ExitStatus::Blocked,
            Self::Download(_) => ExitStatus::Server,
            Self::Plan(PlanError::UnknownVersion { .. }) => ExitStatus::Usage,
            Self::Plan(_) | Self::Blocked(_) => ExitStatus::Blocked,
            Self::Verify(_) => ExitStatus::Verification,
            Self::Install(InstallError::Interrupted { .. }) => ExitStatus::Interrupted,
            Self::Install(InstallError::Test { .. }) => ExitStatus::Verification,
            Self::Install(_) => ExitStatus::Failure,
        }
    }

    /// The way out that the error's `hint:` paragraph names, with its kind; `None` when the
    /// text has no hint. A blocked check has one hint per problem instead.
    pub fn hint(&self) -> Option<Hint> {
        if let Self::Blocked(_) = self {
            return None;
        }
        let text = self.to_string();
        let cli = hint::split_hint(&text).1?;
        Some(Hint {
            code: self.hint_code()?,
            cli: cli.to_owned(),
        })
    }

    /// The error's text without its `hint:` paragraph (a blocked check: without the problems'
    /// hints), for front ends that word the way out themselves.
    pub fn summary(&self) -> String {
        match self {
            Self::Blocked(problems) => {
                let messages: Vec<Finding> = problems
                    .iter()
                    .map(|p| Finding {
                        hint: None,
                        ..p.clone()
                    })
                    .collect();
                Self::Blocked(messages).to_string()
            }
            _ => hint::split_hint(&self.to_string()).0.to_owned(),
        }
    }

    fn hint_code(&self) -> Option<HintCode> {
        match self {
            Self::Plan(error) => error.hint_code(),
            Self::Client(error)
            | Self::Build(BuildError::Client(error))
            | Self::Download(DownloadError::Client(error)) => client_hint_code(error),
            Self::Build(BuildError::TimedOut) => Some(HintCode::TryLater),
            Self::Download(DownloadError::NoSpace { .. }) => Some(HintCode::FreeSpace),
            Self::Download(DownloadError::Interrupted { .. }) => Some(HintCode::Resume),
            Self::Verify(VerifyError::Sha256Mismatch { .. }) => Some(HintCode::DownloadAgain),
            Self::Verify(VerifyError::Unsigned { .. }) => Some(HintCode::RequireSignature),
            Self::Verify(VerifyError::Manifest { .. }) => Some(HintCode::TryLater),
            Self::Install(InstallError::Hook { .. }) => Some(HintCode::PreInstall),
            Self::Install(InstallError::Test { .. }) => Some(HintCode::ForceFlash),
            Self::State(StateError::TooLarge { .. } | StateError::Invalid { .. }) => {
                Some(HintCode::ClearState)
            }
            _ => None,
        }
    }
}

fn client_hint_code(error: &ClientError) -> Option<HintCode> {
    match error {
        ClientError::CaFile { .. } => Some(HintCode::CaFile),
        ClientError::Overloaded { .. } => Some(HintCode::TryLater),
        _ => None,
    }
}

fn problem_lines(problems: &[Finding]) -> String {
    problems.iter().map(|p| format!("\n  - {p}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_their_exit_codes() {
        assert_eq!(Error::Usage("x".into()).exit_status(), ExitStatus::Usage);
        assert_eq!(Error::Blocked(vec![]).exit_status(), ExitStatus::Blocked);
        assert_eq!(
            Error::Client(ClientError::Overloaded {
                detail: String::new()
            })
            .exit_status(),
            ExitStatus::Server
        );
        assert_eq!(
            Error::Verify(VerifyError::Manifest { problems: vec![] }).exit_status(),
            ExitStatus::Verification
        );
        assert_eq!(
            Error::Install(InstallError::Interrupted {
                program: "sysupgrade".into()
            })
            .exit_status(),
            ExitStatus::Interrupted
        );
    }

    #[test]
    fn hints_are_split_from_the_cli_text_with_their_code() {
        let error = Error::Plan(PlanError::UnknownVersion {
            requested: "19.07.1".into(),
            offered: vec!["24.10.6".into()],
        });
        let hint = error.hint().unwrap();
        assert_eq!(hint.code, HintCode::Versions);
        assert_eq!(
            hint.cli,
            "`attendant versions` lists what the server offers"
        );
        assert_eq!(
            error.summary(),
            "version `19.07.1` is not offered by the server; offered: 24.10.6"
        );
        assert_eq!(
            error.to_string(),
            format!("{}\n\nhint: {}", error.summary(), hint.cli)
        );
        let busy = Error::Build(BuildError::Client(ClientError::Overloaded {
            detail: "queue full".into(),
        }));
        assert_eq!(busy.hint().unwrap().code, HintCode::TryLater);
        assert!(!busy.summary().contains("--server"), "{}", busy.summary());
    }

    #[test]
    fn an_error_without_a_hint_keeps_its_whole_text() {
        let error = Error::Plan(PlanError::BranchDisabled {
            branch: "24.10".into(),
        });
        assert_eq!(error.hint(), None);
        assert_eq!(error.summary(), error.to_string());
    }

    #[test]
    fn a_blocked_summary_leaves_out_the_problems_hints() {
        let error = Error::Blocked(vec![
            Finding::hinted(
                "package `x` is not in the 24.10.6 index for `ath79/generic`",
                HintCode::Remove,
                "remove it with `--remove x`",
            ),
            Finding::new("no image to install"),
        ]);
        assert_eq!(
            error.to_string(),
            "the checks found problems; not upgrading:\n  - package `x` is not in the 24.10.6 index for `ath79/generic`\n\nhint: remove it with `--remove x`\n  - no image to install"
        );
        assert_eq!(
            error.summary(),
            "the checks found problems; not upgrading:\n  - package `x` is not in the 24.10.6 index for `ath79/generic`\n  - no image to install"
        );
        assert_eq!(error.hint(), None);
    }
}
