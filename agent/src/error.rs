//! Every failure of the agent's library, and the one place where an error becomes an exit code
//! ([`Error::exit_status`]) or a way out ([`Error::hint`]).
//!
//! An error's `Display` is its message alone. The way out is data beside it ([`Error::hint`]):
//! the CLI prints both ([`Error::cli_text`]), the rpcd bridge sends the message and the hint's
//! code, which LuCI words without flags. Refused channel metadata also carries the name of the
//! check that refused it ([`Error::cause`]): the CLI prints it on a `cause:` line and in its JSON
//! result, the bridge in its reply's `cause`.

use std::path::PathBuf;

use crate::build::BuildError;
use crate::channel::ChannelError;
use crate::client::ClientError;
use crate::config::ConfigError;
use crate::download::DownloadError;
use crate::exit::ExitStatus;
use crate::facts::FactsError;
use crate::hint::{Finding, HINT_SEPARATOR, Hint};
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
    #[error("{}", blocked_text(.0, Finding::without_hint))]
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
    /// Release channels: metadata refused, unknown channel, no build for the device.
    #[error(transparent)]
    Channel(#[from] ChannelError),
    /// Another run holds the run lock.
    #[error(
        "another attendant run is downloading, verifying or installing (it holds `{path}`); wait for it to finish"
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
            Self::Channel(error) if error.is_refusal() => ExitStatus::Metadata,
            Self::Channel(ChannelError::NoChannel | ChannelError::UnknownChannel { .. }) => {
                ExitStatus::Usage
            }
            Self::Channel(
                ChannelError::NoDevice { .. }
                | ChannelError::NoImage { .. }
                | ChannelError::NoRecipeScript { .. }
                | ChannelError::ScriptsRefused { .. },
            ) => ExitStatus::Blocked,
            Self::Channel(
                ChannelError::Fetch { .. }
                | ChannelError::NotPublished { .. }
                | ChannelError::RedirectLoop { .. },
            ) => ExitStatus::Server,
            Self::Channel(_) => ExitStatus::Failure,
            Self::Install(InstallError::Interrupted { .. }) => ExitStatus::Interrupted,
            Self::Install(InstallError::Test { .. }) => ExitStatus::Verification,
            Self::Install(_) => ExitStatus::Failure,
        }
    }

    /// The way out, if there is one: each error type attaches its own by variant. A blocked
    /// check has one hint per problem instead.
    pub fn hint(&self) -> Option<Hint> {
        match self {
            Self::Plan(error) => error.hint(),
            Self::Client(error) => error.hint(),
            Self::Build(error) => error.hint(),
            Self::Download(error) => error.hint(),
            Self::Verify(error) => error.hint(),
            Self::Install(error) => error.hint(),
            Self::State(error) => error.hint(),
            Self::Facts(error) => error.hint(),
            Self::Channel(error) => error.hint(),
            Self::Busy { .. } => Some(Hint::uncoded("`attendant status` shows what it is doing")),
            _ => None,
        }
    }

    /// The stable name of the check that refused channel metadata (`expired`,
    /// `serial-rollback`, `revoked`, `bad-signature`, `wrong-device`, ...), for scripts and the
    /// bridge; `None` for every other error.
    pub fn cause(&self) -> Option<&'static str> {
        match self {
            Self::Channel(error) => error.cause(),
            _ => None,
        }
    }

    /// The text the command line prints: the message, the refusing check on a `cause:` line
    /// when there is one, then its way out after a blank line (`hint: ...`); a blocked check's
    /// problems each with their own.
    pub fn cli_text(&self) -> String {
        let mut text = match self {
            Self::Blocked(problems) => blocked_text(problems, |p| p.to_string()),
            _ => self.to_string(),
        };
        if let Some(cause) = self.cause() {
            text.push_str("\ncause: ");
            text.push_str(cause);
        }
        if let Some(hint) = self.hint() {
            text.push_str(HINT_SEPARATOR);
            text.push_str(&hint.cli);
        }
        text
    }
}

fn blocked_text(problems: &[Finding], line: impl Fn(&Finding) -> String) -> String {
    let lines: String = problems
        .iter()
        .map(|p| format!("\n  - {}", line(p)))
        .collect();
    format!("the checks found problems; not upgrading:{lines}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hint::HintCode;

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
        assert_eq!(hint.code, Some(HintCode::Versions));
        assert_eq!(
            hint.cli,
            "`attendant versions` lists what the server offers"
        );
        assert_eq!(
            error.to_string(),
            "version `19.07.1` is not offered by the server; offered: 24.10.6"
        );
        assert_eq!(error.cli_text(), format!("{error}\n\nhint: {}", hint.cli));
        let busy = Error::Build(BuildError::Client(ClientError::Overloaded {
            detail: "queue full".into(),
        }));
        assert_eq!(busy.hint().unwrap().code, Some(HintCode::TryLater));
        assert!(!busy.to_string().contains("--server"), "{busy}");
    }

    #[test]
    fn refused_metadata_names_its_check_between_the_message_and_the_hint() {
        let error = Error::Channel(ChannelError::NoRootKey {
            dir: PathBuf::from("/etc/attendant/keys"),
        });
        assert_eq!(error.cause(), Some("no-root-key"));
        assert_eq!(error.exit_status(), ExitStatus::Metadata);
        let hint = error.hint().unwrap();
        assert_eq!(
            error.cli_text(),
            format!("{error}\ncause: no-root-key\n\nhint: {}", hint.cli)
        );
        assert!(!error.to_string().contains("cause"), "{error}");
        assert_eq!(Error::Channel(ChannelError::NoChannel).cause(), None);
    }

    #[test]
    fn an_error_without_a_hint_keeps_its_whole_text() {
        let error = Error::Plan(PlanError::BranchDisabled {
            branch: "24.10".into(),
        });
        assert_eq!(error.hint(), None);
        assert_eq!(error.cli_text(), error.to_string());
    }

    #[test]
    fn a_blocked_message_leaves_out_the_problems_hints_the_cli_text_has_them() {
        let error = Error::Blocked(vec![
            Finding::hinted(
                "package `x` is not in the 24.10.6 index for `ath79/generic`",
                HintCode::Remove,
                "remove it with `--remove x`",
            ),
            Finding::new("no image to install"),
        ]);
        assert_eq!(
            error.cli_text(),
            "the checks found problems; not upgrading:\n  - package `x` is not in the 24.10.6 index for `ath79/generic`\n\nhint: remove it with `--remove x`\n  - no image to install"
        );
        assert_eq!(
            error.to_string(),
            "the checks found problems; not upgrading:\n  - package `x` is not in the 24.10.6 index for `ath79/generic`\n  - no image to install"
        );
        assert_eq!(error.hint(), None);
    }
}
