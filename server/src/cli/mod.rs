//! The `attendant-server` command line: one file per subcommand.
//!
//! | command | what |
//! | --- | --- |
//! | `serve` | HTTP API + in-process workers + store collector |
//! | `worker` | workers only: sharing the database and store, or (`--server`) over HTTP with a token |
//! | `workers` | remote workers' identities: add (prints the token), list, revoke |
//! | `keygen` | write a usign key pair for image signing |
//! | `keys` | channel metadata keys: offline root, delegated signing key, revocations |
//! | `gc` | one store collection pass |
//! | `check-config` | validate a configuration and the files it names, start nothing |
//! | `channel` | release channels: create, build, phase, alias, redirect, copy, ... |
//! | `streams` | the channel builds as simplestreams: insert, promote, clean-md, orphans, sync, query |
//!
//! The offline demo (a fixture mirror and this server in one command) is `attendant-e2e demo`
//! in the `tests/` crate, which calls [`serve`]: the fixture code stays out of this binary.

mod channel;
mod check_config;
mod gc;
mod keygen;
mod keys;
mod serve;
mod streams;
mod worker;
mod workers;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

pub use self::serve::serve;
use crate::channels::keys::ChannelKeyError;
use crate::config::{CONFIG_ENV, Config};
use crate::imagebuilder::IbError;
use crate::signing::SigningError;
use crate::streams::StreamsError;

/// Image-on-demand server for OpenWrt, compatible with Attended SysUpgrade (ASU) clients.
#[derive(Debug, Parser)]
#[command(name = "attendant-server", version, about, long_about = None, after_help = EXAMPLES)]
pub struct Cli {
    /// Configuration file (TOML); `ATTENDANT_<KEY>` environment variables override its
    /// top-level keys (default: none, built-in defaults).
    #[arg(long, short = 'c', global = true, env = CONFIG_ENV)]
    pub config: Option<PathBuf>,
    /// Log format on stderr; the level comes from `RUST_LOG` (default: `info`).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The top-level help's examples and notes.
const EXAMPLES: &str = "\
Examples:
  attendant-server serve --config /etc/attendant/attendant.toml
  ATTENDANT_WORKERS=0 attendant-server serve --listen 0.0.0.0:8000
  attendant-server keygen -s /etc/attendant/key-build

Configuration: the TOML file of --config or ATTENDANT_CONFIG. An ATTENDANT_<KEY> environment
variable overrides the top-level key <key> (ATTENDANT_DATABASE_URL sets `database_url`); tables
such as `branches` are set in the file only. Every key has a default; the keys are documented in
server/src/config.rs and the README.";

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API with in-process build workers.
    #[command(after_help = serve::EXAMPLES)]
    Serve(serve::Args),
    /// Run build workers only, sharing the database and store of a `serve` process (on other
    /// hosts: a PostgreSQL `database_url` and a shared `store_dir`).
    #[command(after_help = worker::EXAMPLES)]
    Worker(worker::Args),
    /// Manage remote build workers: add (prints the worker's token once), list, revoke.
    #[command(after_help = workers::EXAMPLES)]
    Workers(workers::Args),
    /// Write a usign key pair for signing images (secret key mode 0600) and print its fingerprint.
    #[command(after_help = keygen::EXAMPLES)]
    Keygen(keygen::Args),
    /// Manage the keys that sign channel metadata: the offline root key, delegations of signing
    /// keys, revocations.
    #[command(after_help = keys::EXAMPLES)]
    Keys(keys::Args),
    /// Delete expired results with their files and unreferenced store directories, once.
    #[command(after_help = gc::EXAMPLES)]
    Gc(gc::Args),
    /// Check a configuration and the files it names (keys, upstream directory), print what the
    /// server would run with, and start nothing.
    #[command(after_help = check_config::EXAMPLES)]
    CheckConfig(check_config::Args),
    /// Manage release channels: channels, devices, numbered builds, phasing, aliases, redirects.
    #[command(after_help = channel::EXAMPLES)]
    Channel(channel::Args),
    /// Publish the channel builds as simplestreams and manage the streams as MAAS does: insert,
    /// promote, clean-md, find-orphans, reap-orphans, sync, query.
    #[command(after_help = streams::EXAMPLES)]
    Streams(streams::Args),
}

/// Runs the command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    init_logging(cli.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(load_config(cli.config.as_deref())?, args).await,
            Command::Worker(args) => worker::run(load_config(cli.config.as_deref())?, args).await,
            Command::Workers(args) => workers::run(load_config(cli.config.as_deref())?, args).await,
            Command::Keygen(args) => keygen::run(&args),
            Command::Keys(args) => keys::run(&args),
            Command::Gc(args) => gc::run(load_config(cli.config.as_deref())?, args).await,
            Command::CheckConfig(args) => Ok(check_config::run(
                &load_config(cli.config.as_deref())?,
                &args,
            )),
            Command::Channel(args) => channel::run(load_config(cli.config.as_deref())?, args).await,
            Command::Streams(args) => streams::run(load_config(cli.config.as_deref())?, args).await,
        }
    })
}

/// The operator's way out of `error`: the hint of the first error in its chain that has one
/// (the errors with hints are those of the signing keys and the ImageBuilder upstream).
/// `main` prints it after the error chain as `hint: ...`.
pub fn hint(error: &anyhow::Error) -> Option<String> {
    error.chain().find_map(|cause| {
        if let Some(signing) = cause.downcast_ref::<SigningError>() {
            signing.hint()
        } else if let Some(keys) = cause.downcast_ref::<ChannelKeyError>() {
            keys.hint()
        } else if let Some(streams) = cause.downcast_ref::<StreamsError>() {
            streams.hint()
        } else {
            cause.downcast_ref::<IbError>().and_then(IbError::hint)
        }
    })
}

fn load_config(path: Option<&std::path::Path>) -> anyhow::Result<Config> {
    Ok(Config::load(path, std::env::vars())?)
}

/// Logs to stderr in `format`, at the level of `RUST_LOG` (default: `info`).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // A second initialisation (tests) keeps the first subscriber.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Resolves when SIGINT or SIGTERM arrives.
pub(crate) async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

#[cfg(test)]
mod tests {
    use anyhow::Context;

    use super::*;

    #[test]
    fn hint_is_found_under_context() {
        let error = "https://[::1"
            .parse::<crate::imagebuilder::Upstream>()
            .context("cannot open the ImageBuilder cache")
            .unwrap_err();
        let hint = hint(&error).unwrap();
        assert!(hint.starts_with("use an `https://` URL"), "{hint}");
        assert!(!format!("{error:#}").contains("hint"), "{error:#}");

        let plain = anyhow::anyhow!("no hint here");
        assert_eq!(super::hint(&plain), None);
    }
}
