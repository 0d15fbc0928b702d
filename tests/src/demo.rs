//! `attendant-e2e demo`: a working `attendant-server` in one command, nothing to install.
//!
//! Generates the fixture OpenWrt mirror ([`crate::mirror`]: releases, targets, package feeds,
//! signed `sha256sums`, ImageBuilders whose `make` is a small helper program) into
//! `<data_dir>/demo-upstream` unless it is there already, serves it over HTTP on a loopback port
//! (as downloads.openwrt.org would be), trusts its signing key, creates an image signing key,
//! prints the commands to paste, and runs the server's `serve` with that configuration.
//!
//! It lives here, in the fixture crate, and not in `attendant-server`, so that the production
//! server binary carries no fixture code: `attendant-server` does not depend on this crate.

use std::path::Path;

use anyhow::Context;
use attendant_server::config::Config;
use attendant_server::signing::{generate_key_pair, load_secret_key};

use crate::mirror::{DEFAULT_SEED, MirrorInfo, generate, helper_path};
use crate::mirror_server::MirrorServer;

/// Serves the demo until SIGINT/SIGTERM: `listen` replaces the configuration's address when
/// given, and `workers` build workers run in-process.
pub async fn run(
    mut config: Config,
    listen: Option<std::net::SocketAddr>,
    workers: usize,
) -> anyhow::Result<()> {
    if let Some(listen) = listen {
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
    attendant_server::cli::serve(config, workers).await?;
    drop(upstream);
    Ok(())
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
