//! The plugin's command line: what rpcd runs, and the hidden job commands.
//!
//! ```text
//! PLUGIN [--root DIR] list              # method signatures, at once
//! PLUGIN [--root DIR] call METHOD       # one JSON object in, one out
//! PLUGIN [--root DIR] __job ID          # the detached worker of `start`
//! PLUGIN [--root DIR] __install ID      # the detached worker of `install`
//! ```
//!
//! `PLUGIN` is `/usr/libexec/rpcd/attendant` on a router (the multi-call binary, see
//! [`crate::multicall`]) or the development binary `attendant-ubus`.
//!
//! rpcd passes no options, so the root is `/` unless `--root` or `$ATTENDANT_ROOT` says
//! otherwise (tests and image preparation, like the agent's `--root`). `call` always exits 0 and
//! answers errors in the reply (rpcd ignores the exit status); every call is bounded by
//! [`CALL_DEADLINE`], so rpcd's 30-second kill never leaves the caller without an answer.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use serde_json::Value;

use crate::context::{Context, Launcher};
use crate::error::{BridgeError, reply};
use crate::jobs::{INSTALL_COMMAND, JOB_COMMAND};
use crate::{methods, protocol, worker};

/// Environment variable naming the router root when `--root` is not given.
pub const ROOT_ENV: &str = attendant_proto::wire::ROOT_ENV;

/// Longest a `call` may take before it answers `timeout`: below rpcd's and ubus's 30 s.
pub const CALL_DEADLINE: Duration = Duration::from_secs(25);

/// Runs the plugin with `args` (without the program name).
pub fn run(args: &[String], launcher: &Launcher) -> ExitCode {
    let (root, rest) = match split_root(args) {
        Ok(split) => split,
        Err(error) => return usage(&error),
    };
    let context = Context {
        root,
        launcher: launcher.clone(),
    };
    match rest {
        [command] if command == "list" => write_stdout(&methods::signatures()),
        [command, method] if command == "call" => {
            let reply = call_with_deadline(method.clone(), context);
            write_stdout(&reply)
        }
        [command, id] if command == JOB_COMMAND => worker::run_job(&context, id),
        [command, id] if command == INSTALL_COMMAND => worker::run_install(&context, id),
        [] => usage(&BridgeError::Usage("no command given".to_owned())),
        [command, ..] => usage(&BridgeError::Usage(format!(
            "unknown command `{command}`, or wrong number of arguments"
        ))),
    }
}

/// Reads the request, runs `method` and returns the reply, or `timeout` after [`CALL_DEADLINE`].
fn call_with_deadline(method: String, context: Context) -> Value {
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        let result = protocol::read_request(std::io::stdin().lock())
            .and_then(|arguments| methods::call(&method, &arguments, &context));
        // The receiver is gone only after the deadline passed; nothing is left to tell.
        let _ = sender.send(result);
    });
    let result = receiver
        .recv_timeout(CALL_DEADLINE)
        .unwrap_or(Err(BridgeError::Timeout(CALL_DEADLINE)));
    match result {
        Ok(value) => value,
        Err(error) => reply(&error),
    }
}

fn split_root(args: &[String]) -> Result<(PathBuf, &[String]), BridgeError> {
    match args {
        [flag, dir, rest @ ..] if flag == "--root" => Ok((PathBuf::from(dir), rest)),
        [flag] if flag == "--root" => {
            Err(BridgeError::Usage("`--root` needs a directory".to_owned()))
        }
        rest => Ok((
            std::env::var_os(ROOT_ENV)
                .filter(|root| !root.is_empty())
                .map_or_else(|| PathBuf::from("/"), PathBuf::from),
            rest,
        )),
    }
}

fn write_stdout(value: &Value) -> ExitCode {
    let mut text = value.to_string();
    text.push('\n');
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        // rpcd closed the pipe: it no longer wants the answer.
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

fn usage(error: &BridgeError) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "attendant (rpcd plugin): {error}");
    ExitCode::from(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| (*a).to_owned()).collect()
    }

    #[test]
    fn root_comes_from_the_option_first() {
        let args = strings(&["--root", "/tmp/r", "list"]);
        let (root, rest) = split_root(&args).unwrap();
        assert_eq!(root, PathBuf::from("/tmp/r"));
        assert_eq!(rest, ["list"]);
    }

    #[test]
    fn a_root_option_without_a_directory_is_a_usage_error() {
        let args = strings(&["--root"]);
        assert_eq!(
            split_root(&args).unwrap_err().to_string(),
            "`--root` needs a directory\n\nusage: /usr/libexec/rpcd/attendant [--root DIR] list | call METHOD"
        );
    }
}
