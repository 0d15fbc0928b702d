//! Mirror push: the commands of `[[channels.mirror_push]]`, run after each publication.
//!
//! Each command is an argument vector started directly ([`crate::process::run`]: no shell, its
//! own process group, killed with everything it started when its `timeout` runs out). It runs in
//! the published tree's directory with a clean environment plus the server's `HOME` (so `ssh` and
//! `rsync` find their keys) and two variables naming what was published:
//! [`CHANNELS_DIR_ENV`] and [`CHANNELS_SERIAL_ENV`]. A failing command is logged and reported; it
//! never undoes the publication, and the next publication runs it again.
//!
//! Mirrors should copy the pool and the indexes before `channels.json` and the `current` link
//! (`rsync --delay-updates`, or two passes), so a mirror never names a file it does not have yet.

use std::path::Path;

use crate::config::MirrorPush;
use crate::process::{Invocation, run};

/// The published tree's directory, for the command.
pub const CHANNELS_DIR_ENV: &str = "ATTENDANT_CHANNELS_DIR";
/// The serial just published, for the command.
pub const CHANNELS_SERIAL_ENV: &str = "ATTENDANT_CHANNELS_SERIAL";

/// Bytes of each output stream kept for the log.
const OUTPUT_CAP: usize = 16 * 1024;

/// How one push command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PushOutcome {
    /// The command's program.
    pub program: String,
    /// `None` when it succeeded; otherwise why not (exit status, timeout, start failure) and the
    /// end of its standard error.
    pub failure: Option<String>,
}

/// Runs every command in order after publication `serial` of `tree`; never fails itself.
pub async fn push(commands: &[MirrorPush], tree: &Path, serial: u64) -> Vec<PushOutcome> {
    let mut outcomes = Vec::with_capacity(commands.len());
    for command in commands {
        let Some((program, args)) = command.argv.split_first() else {
            continue;
        };
        let mut invocation = Invocation::new(program.clone(), args.iter().cloned(), tree);
        invocation.timeout = command.timeout;
        invocation.output_cap = OUTPUT_CAP;
        invocation.env = vec![
            (
                CHANNELS_DIR_ENV.to_owned(),
                tree.to_string_lossy().into_owned(),
            ),
            (CHANNELS_SERIAL_ENV.to_owned(), serial.to_string()),
        ];
        if let Some(home) = std::env::var_os("HOME") {
            invocation
                .env
                .push(("HOME".to_owned(), home.to_string_lossy().into_owned()));
        }
        let failure = match run(invocation).await {
            Ok(output) if output.success() => None,
            Ok(output) => Some(format!(
                "exited with {}: {}",
                output
                    .status
                    .map_or_else(|| "a signal".to_owned(), |code| format!("status {code}")),
                attendant_proto::excerpt::excerpt_lines(output.stderr.trim(), 400)
            )),
            Err(error) => Some(error.to_string()),
        };
        match &failure {
            None => tracing::info!(program, serial, "mirror push done"),
            Some(failure) => tracing::warn!(program, serial, %failure, "mirror push failed"),
        }
        outcomes.push(PushOutcome {
            program: program.clone(),
            failure,
        });
    }
    outcomes
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn command(argv: &[&str], timeout: Duration) -> MirrorPush {
        let mut push: MirrorPush =
            toml::from_str(&format!("argv = {}", serde_json::to_string(argv).unwrap())).unwrap();
        push.timeout = timeout;
        push
    }

    #[tokio::test]
    async fn commands_run_without_a_shell_and_failures_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("pushed");
        let outcomes = push(
            &[
                // `$ATTENDANT_CHANNELS_SERIAL` stays literal: no shell expands it.
                command(
                    &["cp", "/dev/null", "$ATTENDANT_CHANNELS_SERIAL; touch x"],
                    Duration::from_secs(10),
                ),
                command(
                    &["sh", "-c", "echo \"$ATTENDANT_CHANNELS_SERIAL\" > pushed"],
                    Duration::from_secs(10),
                ),
                command(&["false"], Duration::from_secs(10)),
                command(&["sleep", "5"], Duration::from_millis(200)),
                command(&["/nonexistent/program"], Duration::from_secs(10)),
            ],
            dir.path(),
            42,
        )
        .await;
        assert!(
            dir.path()
                .join("$ATTENDANT_CHANNELS_SERIAL; touch x")
                .exists()
        );
        assert!(!dir.path().join("x").exists());
        assert_eq!(std::fs::read_to_string(&marker).unwrap(), "42\n");
        assert_eq!(outcomes[0].failure, None);
        assert_eq!(outcomes[1].failure, None);
        assert_eq!(
            outcomes[2].failure.as_deref(),
            Some("exited with status 1: ")
        );
        assert!(
            outcomes[3]
                .failure
                .as_deref()
                .unwrap()
                .contains("did not finish within 200ms"),
            "{outcomes:?}"
        );
        assert!(
            outcomes[4]
                .failure
                .as_deref()
                .unwrap()
                .starts_with("could not start `/nonexistent/program`"),
            "{outcomes:?}"
        );
    }
}
