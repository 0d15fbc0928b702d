//! What the CLI prints: data on stdout, messages for people on stderr.
//!
//! # Human output
//!
//! Tables and verdicts go to stdout; warnings, errors, hints and progress go to stderr. Colour
//! is used only when stderr is a terminal and `NO_COLOR` is unset, and every message reads the
//! same without it. Progress (build status, download) is redrawn in place on a terminal and
//! printed as plain lines, one per change, otherwise.
//!
//! # `--json`
//!
//! Every command prints JSON lines on stdout: zero or more progress events, then exactly one
//! result, always the last line. Progress events are the engine's [`Event`]s; `step` marks the
//! start of each step of the fetch pipeline (`build`, `download`, `verify`):
//!
//! ```text
//! {"event":"step","step":"build"}
//! {"event":"build","state":"queued","position":3,"elapsed_secs":2}
//! {"event":"build","state":"building","stage":"building_image","elapsed_secs":41}
//! {"event":"step","step":"download"}
//! {"event":"note","message":"downloading `http://…/store/…/openwrt-…-sysupgrade.bin` to `/tmp/firmware.bin`"}
//! {"event":"download","bytes":1048576,"total":7340032}
//! ```
//!
//! The result is `{"event":"result","command":"<name>","exit_code":N,"data":{…}}` on success
//! and `{"event":"result","command":"<name>","exit_code":N,"error":"<message>"}` on failure. The
//! `data` of each command is documented in its module under `cli`. When channel metadata was
//! refused (exit code 7) the result also names the check that refused it, as the human output's
//! `cause:` line does:
//!
//! ```text
//! {"event":"result","command":"check","exit_code":7,"error":"refusing `…/channels.json`: …\ncause: expired\n\nhint: …","cause":"expired"}
//! ```
//!
//! # Untrusted text
//!
//! Strings from the server or the package database pass through [`sanitize`] before they reach
//! a terminal, so an escape sequence in a `detail` cannot move the cursor or retitle the window.

use std::io::{self, IsTerminal, Write};

use serde::Serialize;

use crate::build::BuildProgress;
use crate::engine::Event;

/// Where and how to print.
#[derive(Debug)]
pub struct Output {
    json: bool,
    color: bool,
    terminal: bool,
    verbosity: i8,
    last_line: String,
    last_percent: Option<u64>,
}

impl Output {
    /// Output for `--json` (or not) at a verbosity (`-v` raises, `-q` lowers; 0 is normal).
    pub fn new(json: bool, verbosity: i8) -> Self {
        let terminal = io::stderr().is_terminal();
        let color = terminal
            && std::env::var_os(attendant_proto::wire::NO_COLOR_ENV).is_none_or(|v| v.is_empty());
        Self {
            json,
            color,
            terminal,
            verbosity,
            last_line: String::new(),
            last_percent: None,
        }
    }

    /// True with `--json`.
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// The verbosity.
    pub fn verbosity(&self) -> i8 {
        self.verbosity
    }

    /// Writes data to stdout.
    pub fn data(&mut self, text: &str) -> io::Result<()> {
        self.end_progress_line();
        let mut stdout = io::stdout().lock();
        stdout.write_all(text.as_bytes())?;
        if !text.ends_with('\n') {
            stdout.write_all(b"\n")?;
        }
        stdout.flush()
    }

    /// Writes one JSON line to stdout.
    pub fn json_line<T: Serialize>(&mut self, value: &T) -> io::Result<()> {
        let line = serde_json::to_string(value).map_err(io::Error::other)?;
        self.data(&line)
    }

    /// A warning that needs action: shown unless `-q`.
    pub fn warn(&mut self, text: &str) {
        if self.verbosity >= 0 {
            self.stderr_message("warning", "33", text);
        }
    }

    /// An error, always shown.
    pub fn error(&mut self, text: &str) {
        self.stderr_message("error", "31", text);
    }

    /// A note, shown at normal verbosity (JSON: an event).
    pub fn note(&mut self, text: &str) {
        if self.json {
            let _ = self.json_line(&Event::Note {
                message: text.to_owned(),
            });
        } else if self.verbosity >= 0 {
            self.end_progress_line();
            eprintln!("{}", sanitize(text));
        }
    }

    /// Shows an engine event.
    pub fn event(&mut self, event: &Event) {
        if self.json {
            let _ = self.json_line(event);
            return;
        }
        if self.verbosity < 0 {
            return;
        }
        match event {
            Event::Note { message } => self.note(message),
            // The note that follows each step says what it does, with the URL or the hash;
            // the step itself is for programs reading `--json`.
            Event::Step { .. } => {}
            Event::Build(BuildProgress::Accepted { request_hash }) => {
                self.note(&format!("build request accepted: `{request_hash}`"));
            }
            Event::Build(BuildProgress::Queued {
                position,
                elapsed_secs,
            }) => {
                let status = match position {
                    Some(position) => format!("queued - {position} ahead of you"),
                    None => "queued".to_owned(),
                };
                self.progress(&format!("Status:   {status}  ({elapsed_secs}s)"), &status);
            }
            Event::Build(BuildProgress::Building {
                stage,
                elapsed_secs,
            }) => {
                let stage = sanitize(stage.as_str());
                self.progress(&format!("Status:   {stage}  ({elapsed_secs}s)"), &stage);
            }
            Event::Download { bytes, total } => {
                let text = match total {
                    Some(total) if *total > 0 => {
                        let permille = bytes.saturating_mul(1000) / total;
                        format!(
                            "Download progress: {:>3}.{}%  {bytes}/{total} bytes",
                            permille / 10,
                            permille % 10
                        )
                    }
                    _ => format!("Download progress: {bytes} bytes"),
                };
                let step = total
                    .filter(|t| *t > 0)
                    .map(|t| bytes.saturating_mul(10) / t);
                if self.terminal {
                    self.redraw(&text);
                } else if step != self.last_percent {
                    self.last_percent = step;
                    eprintln!("{text}");
                }
            }
        }
    }

    /// Ends an in-place progress line so the next message starts on its own line.
    pub fn end_progress_line(&mut self) {
        if self.terminal && !self.last_line.is_empty() {
            eprintln!();
        }
        self.last_line.clear();
    }

    fn progress(&mut self, text: &str, key: &str) {
        if self.terminal {
            self.redraw(text);
        } else if self.last_line != key {
            eprintln!("{text}");
            self.last_line = key.to_owned();
        }
    }

    fn redraw(&mut self, text: &str) {
        eprint!("\r\x1b[2K{text}");
        let _ = io::stderr().flush();
        self.last_line = text.to_owned();
    }

    fn stderr_message(&mut self, label: &str, color: &str, text: &str) {
        self.end_progress_line();
        let text = sanitize(text);
        if self.color {
            eprintln!("\x1b[{color}m{label}\x1b[0m: {text}");
        } else {
            eprintln!("{label}: {text}");
        }
    }
}

/// Replaces control characters (other than newline and tab) and bidirectional overrides with
/// escapes (`\r`, `\u{1b}`), so text from the server or the package database cannot rewrite the
/// terminal.
pub fn sanitize(text: &str) -> String {
    // What reaches the terminal is not shortened here, only made visible.
    attendant_proto::excerpt::excerpt_lines(text, usize::MAX)
}

/// The stderr logger behind `log`: `-v` shows info, `-vv` debug, `-vvv` trace.
#[derive(Debug)]
pub struct StderrLogger;

static LOGGER: StderrLogger = StderrLogger;

impl StderrLogger {
    /// Installs the logger for `verbosity` (ignored when one is installed already).
    pub fn init(verbosity: i8) {
        let level = match verbosity {
            i8::MIN..=-1 => log::LevelFilter::Error,
            0 => log::LevelFilter::Warn,
            1 => log::LevelFilter::Info,
            2 => log::LevelFilter::Debug,
            _ => log::LevelFilter::Trace,
        };
        if log::set_logger(&LOGGER).is_ok() {
            log::set_max_level(level);
        }
    }
}

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let label = match record.level() {
                log::Level::Error => "error",
                log::Level::Warn => "warning",
                log::Level::Info => "info",
                log::Level::Debug => "debug",
                log::Level::Trace => "trace",
            };
            eprintln!("{label}: {}", sanitize(&record.args().to_string()));
        }
    }

    fn flush(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_escapes_terminal_controls() {
        assert_eq!(
            sanitize("ok\x1b]0;pwned\x07 done\n"),
            "ok\\u{1b}]0;pwned\\u{7} done\n"
        );
        assert_eq!(sanitize("tab\there"), "tab\there");
    }

    #[test]
    fn json_events_have_a_stable_shape() {
        let event = Event::Build(BuildProgress::Queued {
            position: Some(3),
            elapsed_secs: 2,
        });
        assert_eq!(
            serde_json::to_string(&event).unwrap(),
            r#"{"event":"build","state":"queued","position":3,"elapsed_secs":2}"#
        );
        let event = Event::Download {
            bytes: 10,
            total: Some(20),
        };
        assert_eq!(
            serde_json::to_string(&event).unwrap(),
            r#"{"event":"download","bytes":10,"total":20}"#
        );
        let event = Event::Step {
            step: crate::engine::Step::Verify,
        };
        assert_eq!(
            serde_json::to_string(&event).unwrap(),
            r#"{"event":"step","step":"verify"}"#
        );
    }
}
