//! `attendant-server demo`: a working server in one command, nothing to install.
//!
//! Generates the fixture OpenWrt mirror of `attendant-e2e` (releases, targets, package feeds,
//! signed `sha256sums`, ImageBuilders whose `make` is a small helper program) into
//! `<data_dir>/demo-upstream` unless it is there already, serves it over HTTP on a loopback port
//! (as downloads.openwrt.org would be), trusts its signing key, creates an
//! image signing key, prints the commands to paste, and serves.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use attendant_e2e::MirrorServer;
use attendant_e2e::mirror::{DEFAULT_SEED, MirrorInfo, generate, helper_path};

use crate::config::Config;
use crate::signing::{generate_key_pair, load_secret_key};

/// `demo --help`'s examples.
pub(super) const EXAMPLES: &str = "\
Examples:
  attendant-server demo
  attendant-server demo --listen 127.0.0.1:9000 --workers 1

The mirror (`<data_dir>/demo-upstream`, default ./data/demo-upstream) is generated once and
served on a loopback port; images are signed with `<data_dir>/demo-key-build`. The commands to
try are printed at start.";

/// Options of `demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on (default: `listen` of the configuration, 127.0.0.1:8000).
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
    /// Build workers; the configuration's `workers` is not used.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
}

pub(crate) async fn run(mut config: Config, args: Args) -> anyhow::Result<ExitCode> {
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    let dir = config.data_dir.join("demo-upstream");
    let info = mirror(&dir)?;
    // Served over HTTP like downloads.openwrt.org, not read as a directory: clients such as the
    // agent and owut fetch `profiles.json` from the `upstream_url` that overview.json names.
    let upstream = MirrorServer::start(&info.root)
        .with_context(|| format!("cannot serve the demo mirror `{}`", info.root.display()))?;
    config.upstream_url = upstream.url();
    config.trusted_keys = vec![info.public_key.clone()];
    let key_path = config.data_dir.join("demo-key-build");
    if !key_path.is_file() {
        generate_key_pair(&key_path, None)?;
    }
    let fingerprint = load_secret_key(&key_path)?.fingerprint().to_string();
    config.signing_key = Some(key_path);
    print_instructions(&config, &fingerprint);
    super::serve::serve(config, args.workers).await?;
    drop(upstream);
    Ok(ExitCode::SUCCESS)
}

fn mirror(dir: &Path) -> anyhow::Result<MirrorInfo> {
    let info_path = dir.join("mirror.json");
    if info_path.is_file() {
        let bytes = std::fs::read(&info_path)
            .with_context(|| format!("cannot read `{}`", info_path.display()))?;
        return serde_json::from_slice(&bytes)
            .with_context(|| format!("`{}` is not a mirror description", info_path.display()));
    }
    tracing::info!(dir = %dir.display(), "generating the demo mirror (once)");
    let helper = helper_path()?;
    Ok(generate(dir, DEFAULT_SEED, &helper)?)
}

#[expect(
    clippy::print_stdout,
    reason = "the demo's instructions are its output"
)]
fn print_instructions(config: &Config, fingerprint: &str) {
    let base = format!("http://{}", config.listen);
    let upstream = &config.upstream_url;
    println!(
        r#"Attendant demo server on {base} (upstream: the fixture mirror on {upstream}, images signed by key {fingerprint})

1. Ask for an image (x86/64 generic, OpenWrt 24.10.5, with tmux and htop added):

   curl -s -X POST {base}/api/v1/build -H 'Content-Type: application/json' \
     -d '{{"version": "24.10.5", "target": "x86/64", "profile": "generic", "packages": ["tmux", "htop"]}}'

   The answer (202) carries "request_hash" and "queue_position".

2. Poll until "status" is 200 (a HEAD shows the stage in X-Imagebuilder-Status):

   curl -s {base}/api/v1/build/<request_hash>

3. Download an image named in "images", and its signature:

   curl -O {base}/store/<request_hash>/<image name>
   curl -O {base}/store/<request_hash>/<image name>.sig
   curl -o demo.pub {base}/keys/{fingerprint}
   signify-openbsd -V -p demo.pub -x <image name>.sig -m <image name>

Or let the agent do all of it (on a router, or anywhere with --dry-run):

   attendant upgrade --server {base} --dry-run
"#
    );
}
