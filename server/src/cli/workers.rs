//! `attendant-server workers`: the identities of remote build workers (`worker --server`).
//!
//! `add` prints the new worker's token once; the database keeps only its SHA-256, so a lost
//! token is replaced by revoking the worker and adding it under a new name.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context;
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::service::open_store;
use crate::state::now;
use crate::store::{MAX_WORKER_NAME_LEN, WorkerRecord, is_worker_name};
use crate::view::iso_time;

/// `workers --help`'s examples.
pub(super) const EXAMPLES: &str = "\
Examples:
  attendant-server workers add builder-eu-1 > builder-eu-1.token
  attendant-server workers list
  attendant-server workers list --json
  attendant-server workers revoke builder-eu-1

The worker host runs `attendant-server worker --server https://attendant.example --token-file
builder-eu-1.token`. The token is printed once and stored only as its SHA-256; a revoked worker
keeps its name and build count, and its token is refused (401) from then on.";

/// Options of `workers`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub command: WorkersCommand,
}

/// `workers` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum WorkersCommand {
    /// Register a remote worker and print its token (once) on stdout.
    Add {
        /// The worker's name: letters, digits, `-`, `_`, `.`, at most 64 bytes.
        name: String,
    },
    /// List the registered workers: name, created, last heartbeat, builds, revoked.
    List {
        /// Print one JSON document instead of a table (default: the table).
        #[arg(long)]
        json: bool,
    },
    /// Revoke a worker: its token is refused from now on.
    Revoke {
        /// The worker's name.
        name: String,
    },
}

/// Bytes of randomness in a worker token (printed as hex).
const TOKEN_BYTES: usize = 32;

pub(crate) async fn run(config: Config, args: Args) -> anyhow::Result<ExitCode> {
    let store = open_store(&config).await?;
    match args.command {
        WorkersCommand::Add { name } => {
            anyhow::ensure!(
                is_worker_name(&name),
                "worker name `{name}` is not 1 to {MAX_WORKER_NAME_LEN} letters, digits, `-`, `_` or `.` starting with a letter or digit"
            );
            let mut random = [0u8; TOKEN_BYTES];
            getrandom::fill(&mut random)
                .map_err(|error| anyhow::anyhow!("cannot draw a random token: {error}"))?;
            let token = hex::encode(random);
            let digest = hex::encode(Sha256::digest(token.as_bytes()));
            let added = store
                .add_worker(&name, &digest, now())
                .await
                .context("cannot register the worker")?;
            anyhow::ensure!(
                added,
                "a worker named `{name}` exists already (revoked names are not reused)\n\nhint: pick another name, e.g. `{name}-2`"
            );
            tracing::info!(worker = %name, "worker added");
            print(&format!("{token}\n"));
        }
        WorkersCommand::List { json } => {
            let workers = store.workers().await.context("cannot list the workers")?;
            print(&if json {
                list_json(&workers)
            } else {
                list_table(&workers)
            });
        }
        WorkersCommand::Revoke { name } => {
            let revoked = store
                .revoke_worker(&name, now())
                .await
                .context("cannot revoke the worker")?;
            anyhow::ensure!(
                revoked,
                "no active worker is named `{name}`\n\nhint: `attendant-server workers list` shows the workers"
            );
            tracing::info!(worker = %name, "worker revoked");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `workers list --json`: `{"workers": [{"name", "created_at", "last_heartbeat", "builds",
/// "revoked_at"}]}`, times as ISO 8601 strings or `null`.
fn list_json(workers: &[WorkerRecord]) -> String {
    let workers: Vec<serde_json::Value> = workers
        .iter()
        .map(|worker| {
            serde_json::json!({
                "name": worker.name,
                "created_at": iso_time(worker.created_at),
                "last_heartbeat": worker.last_heartbeat.map(iso_time),
                "builds": worker.builds,
                "revoked_at": worker.revoked_at.map(iso_time),
            })
        })
        .collect();
    format!("{}\n", serde_json::json!({ "workers": workers }))
}

fn list_table(workers: &[WorkerRecord]) -> String {
    let mut out = String::from("NAME\tCREATED\tLAST HEARTBEAT\tBUILDS\tREVOKED\n");
    for worker in workers {
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\n",
            worker.name,
            iso_time(worker.created_at),
            worker
                .last_heartbeat
                .map_or_else(|| "-".to_owned(), iso_time),
            worker.builds,
            worker.revoked_at.map_or_else(|| "-".to_owned(), iso_time),
        ));
    }
    out
}

/// The command's output: stdout is data, the logs go to stderr.
fn print(text: &str) {
    // A closed pipe (`workers list | head`) is not an error.
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}
