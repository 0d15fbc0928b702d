//! The command line: one file per subcommand, the shared options, and [`run`].
//!
//! Options shared by several subcommands are declared once in the `command!` macro's groups
//! (`common`, `server`, `plan`, `image`, `poll`, `keep`, `hook`) and copied into each
//! subcommand's struct, so every subcommand takes its options after its name, as owut does:
//! `attendant check --version-to 25.12 --json`. Settings from `/etc/config/attendedsysupgrade`
//! apply first; options on the command line override them.

mod blob;
mod channel_check;
mod channels;
mod check;
mod download;
mod dump;
mod install;
mod list;
mod report;
mod status;
mod upgrade;
mod verify;
mod versions;

use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use argh::FromArgs;
use serde::Serialize;

use crate::config::{self, Settings};
use crate::engine::{Engine, FlashOptions};
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::options::{PlanArgs, PlanOptions};
use crate::output::{Output, StderrLogger};

/// Copies the named option groups into a subcommand struct.
macro_rules! command {
    (
        $(#[$meta:meta])*
        pub(crate) struct $name:ident { $($field:tt)* }
        groups: [$($group:ident),*]
    ) => {
        command!(@build [$(#[$meta])*] $name [$($field)*] [$($group),*]);
    };
    (@build [$($meta:tt)*] $name:ident [$($acc:tt)*] []) => {
        #[derive(argh::FromArgs, Debug)]
        $($meta)*
        pub(crate) struct $name { $($acc)* }
    };
    (@build [$($meta:tt)*] $name:ident [$($acc:tt)*] [common $(, $rest:ident)*]) => {
        command!(@build [$($meta)*] $name [$($acc)*
            /// print JSON lines on stdout instead of text (default: text)
            #[argh(switch)]
            pub(crate) json: bool,
            /// read the router's files under DIR instead of / (for tests and preparing images)
            #[argh(option, default = "std::path::PathBuf::from(\"/\")")]
            pub(crate) root: std::path::PathBuf,
            /// more output; repeat for more (undo with -q)
            #[argh(switch, short = 'v')]
            pub(crate) verbose: u8,
            /// less output; repeat for less (undo with -v)
            #[argh(switch, short = 'q')]
            pub(crate) quiet: u8,
        ] [$($rest),*]);
    };
    (@build [$($meta:tt)*] $name:ident [$($acc:tt)*] [server $(, $rest:ident)*]) => {
        command!(@build [$($meta)*] $name [$($acc)*
            /// upgrade server URL (default: `server.url` in /etc/config/attendedsysupgrade, else https://sysupgrade.openwrt.org)
            #[argh(option)]
            pub(crate) server: Option<String>,
            /// CA bundle for https (default: $ATTENDANT_CA_FILE, else /etc/ssl/certs/ca-certificates.crt)
            #[argh(option)]
            pub(crate) ca_file: Option<std::path::PathBuf>,
        ] [$($rest),*]);
    };
    (@build [$($meta:tt)*] $name:ident [$($acc:tt)*] [plan $(, $rest:ident)*]) => {
        command!(@build [$($meta)*] $name [$($acc)*
            /// version or branch to upgrade to, e.g. 24.10.5 or 25.12 (default: newest release of the installed branch; snapshots stay on theirs)
            #[argh(option, short = 'V')]
            pub(crate) version_to: Option<String>,
            /// revision to request, rNNNNN-hash, or `none` to skip the server's revision check (default: the target's current revision)
            #[argh(option, short = 'R')]
            pub(crate) rev_code: Option<String>,
            /// packages to add, comma or space separated; repeatable (default: none)
            #[argh(option, short = 'a')]
            pub(crate) add: Vec<String>,
            /// packages to remove from the build, comma or space separated; repeatable (default: none)
            #[argh(option, short = 'r')]
            pub(crate) remove: Vec<String>,
            /// build from the profile's default packages only, plus --add (default: keep the installed top-level packages)
            #[argh(switch)]
            pub(crate) clean_slate: bool,
            /// default packages removed on purpose; silences their warning (default: none)
            #[argh(option)]
            pub(crate) ignored_defaults: Vec<String>,
            /// entries of the server's package_changes to skip, keeping the old name (default: apply all)
            #[argh(option)]
            pub(crate) ignored_changes: Vec<String>,
            /// uci-defaults script to embed in the image, or `-` for stdin (default: none)
            #[argh(option, short = 'I')]
            pub(crate) init_script: Option<std::path::PathBuf>,
            /// root filesystem of the new image: squashfs, ext4, ubifs, ... (default: the running one)
            #[argh(option, short = 'F')]
            pub(crate) fstype: Option<String>,
            /// root filesystem size in MB (default: the server's; changing it may wipe the configuration)
            #[argh(option, short = 'S')]
            pub(crate) rootfs_size: Option<u32>,
            /// build even with package or firmware downgrades, or with no changes (default: refuse)
            #[argh(switch)]
            pub(crate) force: bool,
        ] [$($rest),*]);
    };
    (@build [$($meta:tt)*] $name:ident [$($acc:tt)*] [channel $(, $rest:ident)*]) => {
        command!(@build [$($meta)*] $name [$($acc)*
            /// release channel to use for this run (default: `channel` in the config, else none: the newest release of the branch)
            #[argh(option)]
            pub(crate) channel: Option<String>,
            /// use this phase, 0 to 100, instead of the router's own in phased rollouts (default: the router's phase)
            #[argh(option)]
            pub(crate) percentage: Option<u8>,
            /// with a channel, flash the published image even when this router has packages it lacks (default: build an image with them; needs the build API)
            #[argh(switch)]
            pub(crate) prebuilt: bool,
        ] [$($rest),*]);
    };
    (@build [$($meta:tt)*] $name:ident [$($acc:tt)*] [image $(, $rest:ident)*]) => {
        command!(@build [$($meta)*] $name [$($acc)*
            /// image path (default: `image` in the config, else /tmp/firmware.bin)
            #[argh(option, short = 'i')]
            pub(crate) image: Option<std::path::PathBuf>,
        ] [$($rest),*]);
    };
    (@build [$($meta:tt)*] $name:ident [$($acc:tt)*] [poll $(, $rest:ident)*]) => {
        command!(@build [$($meta)*] $name [$($acc)*
            /// build-status poll interval in milliseconds, at least 500 (default: 2000)
            #[argh(option, short = 'T')]
            pub(crate) poll_interval: Option<u64>,
        ] [$($rest),*]);
    };
    (@build [$($meta:tt)*] $name:ident [$($acc:tt)*] [keep $(, $rest:ident)*]) => {
        command!(@build [$($meta)*] $name [$($acc)*
            /// do not keep the configuration: sysupgrade -n (default: keep, or `keep_settings` in the config)
            #[argh(switch)]
            pub(crate) no_keep_settings: bool,
            /// flash even when the image is for another board or compat_version: sysupgrade -F (default: refuse)
            #[argh(switch)]
            pub(crate) force_flash: bool,
        ] [$($rest),*]);
    };
    (@build [$($meta:tt)*] $name:ident [$($acc:tt)*] [hook $(, $rest:ident)*]) => {
        command!(@build [$($meta)*] $name [$($acc)*
            /// program to run before sysupgrade; a non-zero exit aborts (default: `pre_install` in the config, else none)
            #[argh(option, short = 'p')]
            pub(crate) pre_install: Option<std::path::PathBuf>,
            /// run every check and `sysupgrade --test`, but do not flash (default: flash)
            #[argh(switch)]
            pub(crate) dry_run: bool,
        ] [$($rest),*]);
    };
}

pub(crate) use command;

/// Attended firmware upgrades for OpenWrt: build, verify and install new firmware that keeps your packages.
#[derive(FromArgs, Debug)]
#[argh(
    example = "attendant check",
    example = "attendant upgrade --version-to 25.12",
    note = "Run `attendant <command> --help` for the options of each command.",
    error_code(1, "an error not listed here"),
    error_code(2, "usage error"),
    error_code(3, "check: an upgrade is available"),
    error_code(4, "blocked by the checks"),
    error_code(5, "server error"),
    error_code(6, "verification failed"),
    error_code(7, "channel metadata refused"),
    error_code(130, "interrupted")
)]
pub struct Args {
    /// print the version and exit
    #[argh(switch)]
    pub version: bool,
    #[argh(subcommand)]
    command: Option<Command>,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
enum Command {
    Check(check::CheckCommand),
    Channels(channels::ChannelsCommand),
    Upgrade(upgrade::UpgradeCommand),
    Download(download::DownloadCommand),
    Verify(verify::VerifyCommand),
    Install(install::InstallCommand),
    Versions(versions::VersionsCommand),
    List(list::ListCommand),
    Blob(blob::BlobCommand),
    Status(status::StatusCommand),
    Report(report::ReportCommand),
    Dump(dump::DumpCommand),
}

/// Parses the command line; on `--help` or a usage error prints and returns the exit code.
pub fn parse(args: &[String]) -> Result<Args, ExitCode> {
    let strings: Vec<&str> = args.iter().map(String::as_str).collect();
    let (program, rest) = strings
        .split_first()
        .map_or(("attendant", &[][..]), |(p, r)| (*p, r));
    let name = Path::new(program)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("attendant");
    Args::from_args(&[name], rest).map_err(|exit| match exit.status {
        Ok(()) => {
            say(io::stdout(), exit.output.trim_end());
            ExitCode::SUCCESS
        }
        Err(()) => {
            let mut text = exit.output.trim_end().to_owned();
            if let Some(hint) = option_before_command(rest) {
                text.push_str("\n\n");
                text.push_str(&hint);
            }
            say(
                io::stderr(),
                &format!("{text}\nRun `{name} --help` for more information."),
            );
            ExitStatus::Usage.into()
        }
    })
}

/// The hint for `attendant -v check`: options belong to a command and follow it (as with owut),
/// which argh reports only as an unrecognized argument.
fn option_before_command(rest: &[&str]) -> Option<String> {
    let first = *rest.first()?;
    if !first.starts_with('-') || matches!(first, "--help" | "--version") {
        return None;
    }
    let command = rest
        .iter()
        .find(|arg| Command::NAMES.contains(arg))
        .copied()
        .unwrap_or("check");
    Some(format!(
        "hint: options follow the command: `attendant {command} {first} ...`"
    ))
}

/// Writes `text` and a newline, ignoring a reader that went away: `attendant --help | head -1`
/// must not end in a panic (`println!` panics on a closed pipe).
fn say(mut stream: impl io::Write, text: &str) {
    let _ = writeln!(stream, "{text}");
}

/// Runs a parsed command line.
pub fn run(args: Args) -> ExitCode {
    if args.version {
        say(
            io::stdout(),
            &format!("attendant {}", env!("CARGO_PKG_VERSION")),
        );
        return ExitCode::SUCCESS;
    }
    let Some(command) = args.command else {
        say(
            io::stderr(),
            "error: a command is needed\n\nhint: `attendant check` shows whether an upgrade is available; `attendant --help` lists every command",
        );
        return ExitStatus::Usage.into();
    };
    let (name, json, verbosity) = command.output_settings();
    StderrLogger::init(verbosity);
    let mut out = Output::new(json, verbosity);
    let result = match command {
        Command::Check(cmd) => check::run(cmd, &mut out),
        Command::Channels(cmd) => channels::run(cmd, &mut out),
        Command::Upgrade(cmd) => upgrade::run(cmd, &mut out),
        Command::Download(cmd) => download::run(cmd, &mut out),
        Command::Verify(cmd) => verify::run(cmd, &mut out),
        Command::Install(cmd) => install::run(cmd, &mut out),
        Command::Versions(cmd) => versions::run(cmd, &mut out),
        Command::List(cmd) => list::run(cmd, &mut out),
        Command::Blob(cmd) => blob::run(cmd, &mut out),
        Command::Status(cmd) => status::run(cmd, &mut out),
        Command::Report(cmd) => report::run(cmd, &mut out),
        Command::Dump(cmd) => dump::run(cmd, &mut out),
    };
    finish(name, result, &mut out).into()
}

/// What a command hands back: its exit status and the `data` of its JSON result.
pub(crate) type Outcome = Result<(ExitStatus, serde_json::Value), CommandError>;

/// A command's failure: an engine error, or a closed stdout.
#[derive(Debug)]
pub(crate) enum CommandError {
    Engine(Error),
    Output(std::io::Error),
}

impl From<Error> for CommandError {
    fn from(error: Error) -> Self {
        Self::Engine(error)
    }
}

impl From<std::io::Error> for CommandError {
    fn from(error: std::io::Error) -> Self {
        Self::Output(error)
    }
}

#[derive(Serialize)]
struct JsonResult<'a> {
    event: &'static str,
    command: &'a str,
    exit_code: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// The check that refused channel metadata (`Error::cause`).
    #[serde(skip_serializing_if = "Option::is_none")]
    cause: Option<&'static str>,
}

fn finish(command: &str, result: Outcome, out: &mut Output) -> ExitStatus {
    out.end_progress_line();
    let (status, data, error, cause) = match result {
        Ok((status, data)) => (status, Some(data), None, None),
        // `attendant list | head -1`: a closed pipe is not an error.
        Err(CommandError::Output(error)) if error.kind() == std::io::ErrorKind::BrokenPipe => {
            return ExitStatus::Success;
        }
        Err(CommandError::Output(error)) => {
            out.error(&format!("cannot write the output: {error}"));
            return ExitStatus::Failure;
        }
        Err(CommandError::Engine(error)) => {
            let status = error.exit_status();
            (status, None, Some(error.cli_text()), error.cause())
        }
    };
    if out.is_json() {
        let line = JsonResult {
            event: "result",
            command,
            exit_code: status.code(),
            data,
            error,
            cause,
        };
        if let Err(error) = out.json_line(&line)
            && error.kind() != std::io::ErrorKind::BrokenPipe
        {
            return ExitStatus::Failure;
        }
    } else if let Some(error) = error {
        out.error(&error);
    }
    status
}

impl Command {
    /// Every command's name, as typed.
    const NAMES: [&str; 12] = [
        "check", "channels", "upgrade", "download", "verify", "install", "versions", "list",
        "blob", "status", "report", "dump",
    ];

    fn output_settings(&self) -> (&'static str, bool, i8) {
        let (name, json, verbose, quiet) = match self {
            Self::Check(c) => ("check", c.json, c.verbose, c.quiet),
            Self::Channels(c) => ("channels", c.json, c.verbose, c.quiet),
            Self::Upgrade(c) => ("upgrade", c.json, c.verbose, c.quiet),
            Self::Download(c) => ("download", c.json, c.verbose, c.quiet),
            Self::Verify(c) => ("verify", c.json, c.verbose, c.quiet),
            Self::Install(c) => ("install", c.json, c.verbose, c.quiet),
            Self::Versions(c) => ("versions", c.json, c.verbose, c.quiet),
            Self::List(c) => ("list", c.json, c.verbose, c.quiet),
            Self::Blob(c) => ("blob", c.json, c.verbose, c.quiet),
            Self::Status(c) => ("status", c.json, c.verbose, c.quiet),
            Self::Report(c) => ("report", c.json, c.verbose, c.quiet),
            Self::Dump(c) => ("dump", c.json, c.verbose, c.quiet),
        };
        let verbosity = i16::from(verbose) - i16::from(quiet);
        (
            name,
            json,
            i8::try_from(verbosity.clamp(-8, 8)).unwrap_or_default(),
        )
    }
}

/// Settings from the config under `root`, with `--server` and `--ca-file` applied.
pub(crate) fn settings(
    root: &Path,
    server: Option<&str>,
    ca_file: Option<&Path>,
) -> Result<Settings, Error> {
    let mut settings = Settings::load(root)?;
    if let Some(server) = server {
        if !config::is_server_url(server) {
            return Err(Error::Usage(format!(
                "server `{server}` must start with `http://` or `https://`"
            )));
        }
        settings.server = server.trim_end_matches('/').to_owned();
    }
    if let Some(ca_file) = ca_file {
        settings.ca_file = Some(ca_file.to_owned());
    }
    Ok(settings)
}

/// The channel request of a subcommand with the `channel` group, or `None` when no channel is
/// in use (neither `--channel` nor `channel` in the config).
pub(crate) fn channel_request(
    settings: &Settings,
    channel: Option<&str>,
    percentage: Option<u8>,
) -> Result<Option<crate::channel::ChannelRequest>, Error> {
    if let Some(percentage) = percentage.filter(|p| *p > crate::channel::phase::MAX_PHASE) {
        return Err(Error::Usage(format!(
            "`--percentage {percentage}` is out of range; use 0 to 100"
        )));
    }
    if let Some(name) = channel {
        attendant_proto::channel::field::channel_name(name)
            .map_err(|rule| Error::Usage(format!("`--channel {name}`: {rule}")))?;
    }
    let Some(name) = channel
        .map(str::to_owned)
        .or_else(|| settings.channel.clone())
    else {
        if percentage.is_some() {
            return Err(Error::Usage(
                "`--percentage` needs a channel: `--channel NAME` or `channel` in the config"
                    .to_owned(),
            ));
        }
        return Ok(None);
    };
    Ok(Some(crate::channel::ChannelRequest {
        channel: Some(name),
        percentage,
    }))
}

/// The plan options from a subcommand with the `plan` group, over the config's defaults.
macro_rules! plan_options_of {
    ($cmd:expr, $settings:expr) => {{
        let mut args = $crate::options::PlanArgs::default();
        args.version_to = $cmd.version_to.clone();
        args.rev_code = $cmd.rev_code.clone();
        args.add = $cmd.add.clone();
        args.remove = $cmd.remove.clone();
        args.clean_slate = $cmd.clean_slate;
        args.ignored_defaults = $cmd.ignored_defaults.clone();
        args.ignored_changes = $cmd.ignored_changes.clone();
        args.init_script = $cmd.init_script.clone();
        args.fstype = $cmd.fstype.clone();
        args.rootfs_size = $cmd.rootfs_size;
        args.force = $cmd.force;
        $crate::cli::plan_options(&$settings, &$cmd.root, args)
    }};
}

pub(crate) use plan_options_of;

impl Args {
    /// The plan options this command line asks for, over the configuration under its `--root`;
    /// `None` for a command that plans nothing. The rpcd bridge's tests use it to pin that a
    /// call and a command line with the same settings plan alike.
    pub fn plan_options(&self) -> Option<Result<PlanOptions, Error>> {
        macro_rules! merged {
            ($cmd:expr) => {
                settings(&$cmd.root, $cmd.server.as_deref(), $cmd.ca_file.as_deref())
                    .and_then(|settings| plan_options_of!($cmd, settings))
            };
        }
        Some(match self.command.as_ref()? {
            Command::Check(cmd) => merged!(cmd),
            Command::Upgrade(cmd) => merged!(cmd),
            Command::Download(cmd) => merged!(cmd),
            Command::Blob(cmd) => merged!(cmd),
            _ => return None,
        })
    }
}

/// [`PlanOptions::merge`], saying when `--force` weakens the checks.
pub(crate) fn plan_options(
    settings: &Settings,
    root: &Path,
    args: PlanArgs,
) -> Result<PlanOptions, Error> {
    let options = PlanOptions::merge(settings, root, args)?;
    if options.force {
        log::warn!("--force: downgrades and unchanged builds are allowed");
    }
    Ok(options)
}

/// The `keep` and `hook` groups over the config.
pub(crate) fn flash_options(
    settings: &Settings,
    no_keep_settings: bool,
    force_flash: bool,
    pre_install: Option<PathBuf>,
    dry_run: bool,
) -> FlashOptions {
    FlashOptions {
        keep_settings: settings.keep_settings && !no_keep_settings,
        force_flash,
        dry_run,
        pre_install: pre_install.or_else(|| settings.pre_install.clone()),
    }
}

/// The image path: the option, else the config, mapped under the root.
pub(crate) fn image_path(engine: &Engine, option: Option<&Path>) -> PathBuf {
    let path = option.map_or_else(|| engine.settings().image.clone(), Path::to_owned);
    engine.router_path(&path)
}

/// [`image_path`] for a command that writes the image: its directory must exist, checked
/// before anything is built (owut's rule), so a mistyped `--image` costs no build.
pub(crate) fn image_path_to_write(
    engine: &Engine,
    option: Option<&Path>,
) -> Result<PathBuf, Error> {
    let path = image_path(engine, option);
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(Error::Usage(format!(
            "the directory `{}` of the image path does not exist; `--image` (or the `image` option) must name a file in an existing directory",
            dir.display()
        )));
    }
    Ok(path)
}

/// The poll interval from the option or the config.
pub(crate) fn poll_interval(
    settings: &Settings,
    option: Option<u64>,
) -> Result<std::time::Duration, Error> {
    let ms = option.unwrap_or(settings.poll_interval_ms);
    if ms < config::MIN_POLL_INTERVAL_MS {
        return Err(Error::Usage(format!(
            "`--poll-interval {ms}` is too short; use at least {} ms",
            config::MIN_POLL_INTERVAL_MS
        )));
    }
    Ok(std::time::Duration::from_millis(ms))
}

/// JSON `data` for a value.
pub(crate) fn to_data<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests;
