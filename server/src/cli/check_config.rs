//! `attendant-server check-config`: validate a configuration without starting anything.
//!
//! Loading already checks the syntax, the types and the rules between keys (the same errors
//! `serve` would stop with). This command then checks what loading leaves to start-up — the files
//! the configuration names (signing key, trusted keys), the upstream directory — collects every
//! problem instead of stopping at the first, and prints what the server would run with
//! (secrets left out), so an operator can check a change before restarting the service.
//!
//! A *problem* is something `serve` or `worker` would stop on (an unreadable key file, a missing
//! upstream directory) and fails the check. A *warning* is a configuration the server runs with
//! but that cannot do everything yet: an http(s) upstream without `trusted_keys` serves the
//! API, but every build fails until the keys that sign the upstream's `sha256sums` are listed.
//! That is the state of the shipped sample (no OpenWrt release keys are shipped: the operator
//! fetches them from <https://git.openwrt.org/?p=keyring.git>), so the sample passes with that
//! one warning.

use std::path::Path;
use std::process::ExitCode;

use serde::Serialize;

use crate::config::{Config, UpstreamLocation};
use crate::service::read_trusted_key;
use crate::signing::{load_certificate, load_secret_key};

/// `check-config --help`'s examples.
pub(super) const EXAMPLES: &str = "\
Examples:
  attendant-server check-config --config /etc/attendant/attendant.toml
  ATTENDANT_WORKERS=8 attendant-server check-config --config attendant.toml --json

Exit status: 0 when the configuration is usable (warnings are printed, they do not fail the
check), 1 with every problem listed otherwise. Nothing is started, created or contacted (no
database connection, no upstream request).";

/// Options of `check-config`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the summary and the problems as one JSON object (default: text).
    #[arg(long)]
    pub json: bool,
}

/// What the server would run with, and what is wrong.
#[derive(Debug, Serialize)]
struct Report {
    listen: String,
    data_dir: String,
    database: String,
    store_dir: String,
    store: String,
    upstream: String,
    workers: usize,
    signing_key: Option<String>,
    signature_trailer: String,
    trusted_keys: Vec<String>,
    allow_defaults: bool,
    cors_allowed_origins: Vec<String>,
    repository_allow_list: Vec<String>,
    branches: Vec<String>,
    problems: Vec<String>,
    warnings: Vec<String>,
}

#[expect(clippy::print_stdout, reason = "the report is the command's output")]
pub(crate) fn run(config: &Config, args: &Args) -> ExitCode {
    let report = check(config);
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(error) => eprintln!("error: cannot encode the report: {error}"),
        }
    } else {
        print!("{}", render(&report));
    }
    if report.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn check(config: &Config) -> Report {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let key = config
        .signing_key
        .as_ref()
        .and_then(|path| match load_secret_key(path) {
            Ok(key) => Some((path, key)),
            Err(error) => {
                let hint = error.hint().map(|h| format!("; {h}")).unwrap_or_default();
                problems.push(format!("signing_key: {error}{hint}"));
                None
            }
        });
    let signing_key = key
        .as_ref()
        .map(|(path, key)| format!("{} (key {})", path.display(), key.fingerprint()));
    let signature_trailer = match (&key, config.signature_trailer, &config.signing_certificate) {
        (_, false, _) => "off".to_owned(),
        (Some((_, key)), true, Some(path)) => match load_certificate(path, key) {
            Ok(chain) => format!(
                "on, after {} certificate(s) from {}",
                chain.elements().len(),
                path.display()
            ),
            Err(error) => {
                let hint = error.hint().map(|h| format!("; {h}")).unwrap_or_default();
                let error = crate::imagebuilder::error_chain(&error);
                problems.push(format!("signing_certificate: {error}{hint}"));
                "on".to_owned()
            }
        },
        (_, true, _) => "on, the signature alone".to_owned(),
    };
    let trusted_keys = config
        .trusted_keys
        .iter()
        .filter_map(|path| match read_trusted_key(path) {
            Ok(key) => Some(format!("{} (key {})", path.display(), key.fingerprint())),
            Err(error) => {
                problems.push(format!("trusted_keys: {error:#}"));
                None
            }
        })
        .collect();
    let upstream = match config.upstream() {
        UpstreamLocation::Http(url) => {
            if config.trusted_keys.is_empty() {
                warnings.push(format!(
                    "trusted_keys: empty, so no ImageBuilder from `{url}` can be verified and every build fails; list the usign keys that sign its sha256sums"
                ));
            }
            url
        }
        UpstreamLocation::Directory(path) => {
            check_upstream_directory(&path, &mut problems);
            path.display().to_string()
        }
    };
    let database = config.database_url.as_ref().map_or_else(
        || format!("SQLite {}", config.database_path().display()),
        |url| format!("PostgreSQL {}", url.redacted()),
    );
    Report {
        listen: config.listen.to_string(),
        data_dir: config.data_dir.display().to_string(),
        database,
        store_dir: config.store_path().display().to_string(),
        store: config.store.describe(&config.store_path()),
        upstream,
        workers: config.workers,
        signing_key,
        signature_trailer,
        trusted_keys,
        allow_defaults: config.allow_defaults,
        cors_allowed_origins: config.cors_allowed_origins.clone(),
        repository_allow_list: config.repository_allow_list.clone(),
        branches: config.branches.keys().cloned().collect(),
        problems,
        warnings,
    }
}

fn check_upstream_directory(path: &Path, problems: &mut Vec<String>) {
    let versions = path.join(".versions.json");
    if !path.is_dir() {
        problems.push(format!(
            "upstream_url: `{}` is not a directory (nor an http(s) URL)",
            path.display()
        ));
    } else if !versions.is_file() {
        problems.push(format!(
            "upstream_url: `{}` has no `.versions.json`; expected a copy of the downloads tree",
            path.display()
        ));
    }
}

fn render(report: &Report) -> String {
    let mut text = String::new();
    let mut line = |key: &str, value: &str| text.push_str(&format!("{key:<22} {value}\n"));
    line("listen", &report.listen);
    line("data_dir", &report.data_dir);
    line("database", &report.database);
    line("store_dir", &report.store_dir);
    line("store", &report.store);
    line("upstream", &report.upstream);
    line("workers", &report.workers.to_string());
    line(
        "signing_key",
        report
            .signing_key
            .as_deref()
            .unwrap_or("none: images are not signed"),
    );
    line("signature_trailer", &report.signature_trailer);
    line(
        "trusted_keys",
        &if report.trusted_keys.is_empty() {
            "none".to_owned()
        } else {
            report.trusted_keys.join(", ")
        },
    );
    line("allow_defaults", &report.allow_defaults.to_string());
    line(
        "cors_allowed_origins",
        &report.cors_allowed_origins.join(", "),
    );
    line(
        "repository_allow_list",
        &if report.repository_allow_list.is_empty() {
            "none: extra repositories refused".to_owned()
        } else {
            report.repository_allow_list.join(", ")
        },
    );
    line("branches", &report.branches.join(", "));
    if !report.warnings.is_empty() {
        text.push_str(&format!("\n{} warning(s):\n", report.warnings.len()));
        for warning in &report.warnings {
            text.push_str(&format!("  - {warning}\n"));
        }
    }
    if report.problems.is_empty() {
        text.push_str("\nconfiguration OK\n");
    } else {
        text.push_str(&format!("\n{} problem(s):\n", report.problems.len()));
        for problem in &report.problems {
            text.push_str(&format!("  - {problem}\n"));
        }
    }
    text
}
