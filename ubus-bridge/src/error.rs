//! The bridge's errors and the one place where an error becomes a ubus reply.
//!
//! Every failed call answers with one JSON object (never an empty reply, which rpcd would turn
//! into `UBUS_STATUS_NO_DATA`):
//!
//! ```json
//! {"error": {"code": "invalid_argument", "message": "argument `rootfs_size` must be an integer from 1 to 4294967295, got a string", "argument": "rootfs_size"}}
//! ```
//!
//! `code` is one of [`ErrorCode`]'s snake_case names, `message` is the text written for a user.
//! Some codes add keys: `argument` (`invalid_argument`), `problems` (`blocked`; each a
//! `{"message", "hint"?}` object of [`crate::hint`]), and `detail`, `details`, `stdout`,
//! `stderr` (the server's words on a refused or failed build). An agent error that suggests a
//! way out has `hint` (`{"code", "message"}`): the agent's own text names command-line flags, so
//! `message` is the agent's message, which never holds the command line's hint.
//! A failed job carries the same inner object under `status`'s `error` key. The table is in
//! `contract.json`.

use std::path::PathBuf;
use std::time::Duration;

use attendant::build::BuildError;
use attendant::client::ClientError;
use attendant::{Error as AgentError, ExitStatus};
use serde_json::{Map, Value, json};

use crate::hint;

/// Any failure of a call, a job or the command line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BridgeError {
    /// The request on stdin is larger than the limit.
    #[error("the request is larger than the limit of {limit} bytes")]
    InputTooLarge {
        /// The limit ([`crate::protocol::MAX_INPUT_LEN`]).
        limit: usize,
    },
    /// The request on stdin is not one JSON object.
    #[error("the request is not a JSON object: {message}")]
    InvalidJson {
        /// What the parser said.
        message: String,
    },
    /// `call` named a method the object does not have.
    #[error("unknown method `{method}`; the object `attendant` has: {}", known.join(", "))]
    UnknownMethod {
        /// The method asked for (truncated).
        method: String,
        /// The methods there are.
        known: Vec<&'static str>,
    },
    /// An argument has the wrong type or an unusable value.
    #[error("argument `{argument}` must be {expected}, got {found}")]
    InvalidArgument {
        /// The argument's name.
        argument: &'static str,
        /// What it must be.
        expected: &'static str,
        /// What it was (a JSON type, or the value truncated).
        found: String,
    },
    /// A required argument is missing.
    #[error("argument `{argument}` is required")]
    MissingArgument {
        /// The argument's name.
        argument: &'static str,
    },
    /// `status`, `cancel` or `install` named a job that is not the current one.
    #[error("there is no job `{job}`{}", match current { Some(current) => format!("; the current job is `{current}`"), None => "; no job was started".to_owned() })]
    NoJob {
        /// The job asked for.
        job: String,
        /// The current job, if any.
        current: Option<String>,
    },
    /// `install` on a job whose image is not verified and ready.
    #[error("job `{job}` is `{state}`; only a `ready` job can be installed")]
    NotReady {
        /// The job.
        job: String,
        /// Its state.
        state: &'static str,
    },
    /// `cancel` on a job that is flashing the image.
    #[error("job `{job}` is `{state}` and cannot be cancelled: sysupgrade must not be interrupted")]
    NotCancellable {
        /// The job.
        job: String,
        /// Its state.
        state: &'static str,
    },
    /// The agent's engine failed.
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// The UCI file could not be changed.
    #[error("cannot change `{path}`: {source}")]
    Uci {
        /// The file.
        path: PathBuf,
        /// The parser's or builder's error.
        source: attendant_proto::uci::UciError,
    },
    /// A file or process operation failed.
    #[error("cannot {action} `{path}`: {source}")]
    Io {
        /// What we were doing.
        action: &'static str,
        /// The path (a program for `start`).
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The job file is damaged.
    #[error("the job file `{path}` is not valid: {message}")]
    JobFile {
        /// The path.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// The call ran past its deadline.
    #[error("the call did not finish within {} s", .0.as_secs())]
    Timeout(Duration),
    /// The command line of the plugin itself is wrong.
    #[error("{0}\n\nusage: {plugin} [--root DIR] list | call METHOD", plugin = attendant_proto::wire::RPCD_PLUGIN_PATH)]
    Usage(String),
}

/// The machine-readable kind of an error: the reply's `code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `input_too_large`.
    InputTooLarge,
    /// `invalid_json`.
    InvalidJson,
    /// `unknown_method`.
    UnknownMethod,
    /// `invalid_argument`: a wrong type, a bad value or a missing required argument.
    InvalidArgument,
    /// `no_job`.
    NoJob,
    /// `not_ready`.
    NotReady,
    /// `not_cancellable`.
    NotCancellable,
    /// `usage`: the engine refused an option value (an unknown version or filesystem).
    Usage,
    /// `blocked`: the pre-build checks refused the upgrade.
    Blocked,
    /// `server_busy`: the server's queue is full (HTTP 529); try again later.
    ServerBusy,
    /// `server`: unreachable, refused the request, or failed the build.
    Server,
    /// `verification`: the image failed a check and will not be flashed.
    Verification,
    /// `metadata`: release channel metadata failed a check; `cause` names it.
    Metadata,
    /// `job_died`: the job's process ended without finishing.
    JobDied,
    /// `timeout`: the call ran past its deadline.
    Timeout,
    /// `failure`: anything else (files, configuration, a failed sysupgrade).
    Failure,
}

impl ErrorCode {
    /// Every code, for the contract test.
    pub const ALL: [ErrorCode; 16] = [
        Self::InputTooLarge,
        Self::InvalidJson,
        Self::UnknownMethod,
        Self::InvalidArgument,
        Self::NoJob,
        Self::NotReady,
        Self::NotCancellable,
        Self::Usage,
        Self::Blocked,
        Self::ServerBusy,
        Self::Server,
        Self::Verification,
        Self::Metadata,
        Self::JobDied,
        Self::Timeout,
        Self::Failure,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InputTooLarge => "input_too_large",
            Self::InvalidJson => "invalid_json",
            Self::UnknownMethod => "unknown_method",
            Self::InvalidArgument => "invalid_argument",
            Self::NoJob => "no_job",
            Self::NotReady => "not_ready",
            Self::NotCancellable => "not_cancellable",
            Self::Usage => "usage",
            Self::Blocked => "blocked",
            Self::ServerBusy => "server_busy",
            Self::Server => "server",
            Self::Verification => "verification",
            Self::Metadata => "metadata",
            Self::JobDied => "job_died",
            Self::Timeout => "timeout",
            Self::Failure => "failure",
        }
    }
}

impl BridgeError {
    /// The code this error is reported under.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::InputTooLarge { .. } => ErrorCode::InputTooLarge,
            Self::InvalidJson { .. } => ErrorCode::InvalidJson,
            Self::UnknownMethod { .. } => ErrorCode::UnknownMethod,
            Self::InvalidArgument { .. } | Self::MissingArgument { .. } => {
                ErrorCode::InvalidArgument
            }
            Self::NoJob { .. } => ErrorCode::NoJob,
            Self::NotReady { .. } => ErrorCode::NotReady,
            Self::NotCancellable { .. } => ErrorCode::NotCancellable,
            Self::Agent(error) => agent_code(error),
            Self::Usage(_) => ErrorCode::Usage,
            Self::Timeout(_) => ErrorCode::Timeout,
            Self::Uci { .. } | Self::Io { .. } | Self::JobFile { .. } => ErrorCode::Failure,
        }
    }

    /// The inner error object: `{"code": ..., "message": ..., <extra keys>}`.
    pub fn to_object(&self) -> Value {
        let mut object = Map::new();
        object.insert("code".to_owned(), self.code().as_str().into());
        object.insert("message".to_owned(), self.to_string().into());
        if let Self::Agent(error) = self
            && let Some(hint) = error.hint().as_ref().and_then(hint::hint)
        {
            object.insert("hint".to_owned(), hint);
        }
        match self {
            Self::InvalidArgument { argument, .. } | Self::MissingArgument { argument } => {
                object.insert("argument".to_owned(), (*argument).into());
            }
            Self::Agent(AgentError::Blocked(problems)) => {
                object.insert("problems".to_owned(), hint::findings(problems).into());
            }
            Self::Agent(
                AgentError::Client(client) | AgentError::Build(BuildError::Client(client)),
            ) => server_words(client, &mut object),
            Self::Agent(AgentError::Channel(channel)) => {
                if let Some(cause) = channel.cause() {
                    object.insert("cause".to_owned(), cause.into());
                }
            }
            _ => {}
        }
        Value::Object(object)
    }
}

/// The one mapping from an error to the ubus reply: `{"error": {...}}`.
pub fn reply(error: &BridgeError) -> Value {
    json!({ "error": error.to_object() })
}

/// The error object of a job whose process vanished.
pub(crate) fn job_died(pid: u32, log: &std::path::Path) -> Value {
    json!({
        "code": ErrorCode::JobDied.as_str(),
        "message": format!(
            "the job's process {pid} ended without finishing (killed, or crashed); its log is `{}`",
            log.display()
        ),
    })
}

fn agent_code(error: &AgentError) -> ErrorCode {
    if let AgentError::Client(ClientError::Overloaded { .. })
    | AgentError::Build(BuildError::Client(ClientError::Overloaded { .. })) = error
    {
        return ErrorCode::ServerBusy;
    }
    match error.exit_status() {
        ExitStatus::Usage => ErrorCode::Usage,
        ExitStatus::Blocked => ErrorCode::Blocked,
        ExitStatus::Server => ErrorCode::Server,
        ExitStatus::Verification => ErrorCode::Verification,
        ExitStatus::Metadata => ErrorCode::Metadata,
        _ => ErrorCode::Failure,
    }
}

/// The server's own words on a refused or failed build, for the LuCI error panel.
fn server_words(error: &ClientError, object: &mut Map<String, Value>) {
    match error {
        ClientError::BadRequest { detail, .. }
        | ClientError::NotFound { detail, .. }
        | ClientError::Overloaded { detail }
        | ClientError::Status { detail, .. } => {
            object.insert("detail".to_owned(), detail.clone().into());
        }
        ClientError::Validation { details, .. } => {
            object.insert("details".to_owned(), json!(details));
        }
        ClientError::Failed {
            detail,
            stdout,
            stderr,
            ..
        } => {
            object.insert("detail".to_owned(), detail.clone().into());
            if let Some(stdout) = stdout {
                object.insert("stdout".to_owned(), stdout.clone().into());
            }
            if let Some(stderr) = stderr {
                object.insert("stderr".to_owned(), stderr.clone().into());
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use attendant::hint::{Finding, HintCode};
    use attendant::plan::PlanError;

    use super::*;

    #[test]
    fn invalid_argument_names_the_argument() {
        let error = BridgeError::InvalidArgument {
            argument: "rootfs_size",
            expected: "an integer from 1 to 4294967295",
            found: "a string".to_owned(),
        };
        assert_eq!(
            reply(&error),
            json!({"error": {
                "code": "invalid_argument",
                "message": "argument `rootfs_size` must be an integer from 1 to 4294967295, got a string",
                "argument": "rootfs_size",
            }})
        );
    }

    #[test]
    fn a_failed_build_carries_the_server_output() {
        let error =
            BridgeError::Agent(AgentError::Build(BuildError::Client(ClientError::Failed {
                url: "http://asu/api/v1/build/x".to_owned(),
                detail: "Error: Impossible package selection".to_owned(),
                stdout: Some("make[2]: ...".to_owned()),
                stderr: None,
            })));
        let object = error.to_object();
        assert_eq!(object["code"], "server");
        assert_eq!(object["detail"], "Error: Impossible package selection");
        assert_eq!(object["stdout"], "make[2]: ...");
        assert!(object.get("stderr").is_none());
    }

    #[test]
    fn a_full_queue_is_server_busy() {
        let error = BridgeError::Agent(AgentError::Client(ClientError::Overloaded {
            detail: "queue full".to_owned(),
        }));
        assert_eq!(error.code(), ErrorCode::ServerBusy);
    }

    #[test]
    fn blocked_lists_the_problems_without_flags() {
        let error = BridgeError::Agent(AgentError::Blocked(vec![
            Finding::hinted(
                "package `x` is not in the 24.10.6 index for `ath79/generic`",
                HintCode::Remove,
                "remove it with `--remove x`",
            ),
            Finding::new("no image to install"),
        ]));
        let object = error.to_object();
        assert_eq!(object["code"], "blocked");
        assert_eq!(
            object["message"],
            "the checks found problems; not upgrading:\n  - package `x` is not in the 24.10.6 index for `ath79/generic`\n  - no image to install"
        );
        assert_eq!(
            object["problems"],
            json!([
                {"message": "package `x` is not in the 24.10.6 index for `ath79/generic`",
                 "hint": {"code": "remove", "message": "leave the package out of the build with `remove`"}},
                {"message": "no image to install"},
            ])
        );
        assert!(object.get("hint").is_none());
    }

    #[test]
    fn an_agent_hint_is_coded_and_worded_without_flags() {
        let error = BridgeError::Agent(AgentError::Plan(PlanError::NoImage {
            profile: "generic".to_owned(),
            fstype: "ubifs".to_owned(),
            available: vec!["combined (ext4)".to_owned()],
        }));
        let BridgeError::Agent(agent) = &error else {
            unreachable!()
        };
        assert!(
            agent.cli_text().contains("--fstype"),
            "{}",
            agent.cli_text()
        );
        assert!(!error.to_string().contains("--fstype"), "{error}");
        let object = error.to_object();
        assert_eq!(
            object["message"],
            "the profile `generic` has no `ubifs` image of a type this device can install; available: combined (ext4)"
        );
        assert_eq!(
            object["hint"],
            json!({"code": "fstype", "message": "choose another filesystem with `fstype`"})
        );
    }

    #[test]
    fn no_job_names_the_current_one() {
        let error = BridgeError::NoJob {
            job: "abc".to_owned(),
            current: Some("def".to_owned()),
        };
        assert_eq!(
            error.to_string(),
            "there is no job `abc`; the current job is `def`"
        );
    }
}
