//! `attendant-e2e demo`: a working `attendant-server` in one command, nothing to install.
//!
//! Generates the fixture OpenWrt mirror ([`crate::mirror`]: releases, targets, package feeds,
//! signed `sha256sums`, ImageBuilders whose `make` is a small helper program) into
//! `<data_dir>/demo-upstream` unless it is there already, serves it over HTTP on a loopback port
//! (as downloads.openwrt.org would be), trusts its signing key, creates an image signing key,
//! writes two demo routers (file trees an agent can upgrade with `--root`, see [`ROUTERS`]),
//! prints the commands to paste, and runs the server's `serve` with that configuration.
//!
//! It lives here, in the fixture crate, and not in `attendant-server`, so that the production
//! server binary carries no fixture code: `attendant-server` does not depend on this crate.

use std::path::{Path, PathBuf};

use anyhow::Context;
use attendant_server::config::Config;
use attendant_server::signing::{generate_key_pair, load_secret_key, public_path_of};

use attendant_proto::wire;

use crate::catalog::Catalog;
use crate::mirror::{DEFAULT_SEED, MirrorInfo, generate, helper_path};
use crate::mirror_server::MirrorServer;
use crate::router::{RouterSpec, write_root};
use crate::seed::Seed;

/// The demo routers: directory name below `<data_dir>/demo-routers/`, then what they are. Both
/// run OpenWrt 24.10.4 with packages the user added, so `attendant upgrade` has a point release
/// to go to and packages to keep.
pub const ROUTERS: [(&str, &str, &str, &str, &str); 2] = [
    (
        "archer-c7",
        "ath79/generic",
        "tplink_archer-c7-v5",
        "tplink,archer-c7-v5",
        "TP-Link Archer C7 v5",
    ),
    (
        "x86-64",
        "x86/64",
        "generic",
        "qemu-standard-pc-q35-ich9-2009",
        "QEMU Standard PC (Q35 + ICH9, 2009)",
    ),
];

/// The OpenWrt release the demo routers run.
const ROUTER_VERSION: &str = "24.10.4";

/// Packages the user installed on the demo routers.
const ROUTER_USER_PACKAGES: [&str; 3] = ["tmux", "luci-app-sqm", "htop"];

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
    let routers = write_routers(&config, &info, &key_path, &fingerprint)?;
    config.signing_key = Some(key_path);
    print_instructions(&config, &fingerprint, &routers);
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

/// Writes the demo routers afresh (a previous run's upgrade log and images are dropped): the
/// router's files as OpenWrt has them, the server in `/etc/config/attendedsysupgrade`, the
/// demo's image key and the mirror's release key in `/etc/opkg/keys/`, and a stand-in
/// `sysupgrade` in `bin/` that records what it was asked to flash (see [`crate::sysupgrade`]).
/// Returns their absolute directories, in [`ROUTERS`] order.
fn write_routers(
    config: &Config,
    info: &MirrorInfo,
    key_path: &Path,
    fingerprint: &str,
) -> anyhow::Result<Vec<PathBuf>> {
    let base = config.data_dir.join("demo-routers");
    let catalog = Catalog::new(Seed(info.seed));
    let image_key = std::fs::read_to_string(public_path_of(key_path))
        .context("cannot read the demo's public image key")?;
    let release_key = std::fs::read_to_string(&info.public_key)
        .with_context(|| format!("cannot read `{}`", info.public_key.display()))?;
    let mut written = Vec::new();
    for (name, target, profile, board, model) in ROUTERS {
        let dir = base.join(name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| {
                format!("cannot remove the old demo router `{}`", dir.display())
            })?;
        }
        let mut spec = RouterSpec::new(ROUTER_VERSION, target, profile, board);
        spec.model = model.to_owned();
        spec.user_packages = ROUTER_USER_PACKAGES.map(str::to_owned).to_vec();
        write_root(&dir, &catalog, &spec)
            .with_context(|| format!("cannot write the demo router `{}`", dir.display()))?;
        let files = [
            (
                wire::under_root(&dir, wire::UCI_CONFIG_PATH),
                format!(
                    "config server 'server'\n\toption url 'http://{}'\n\n\
                     config attendant 'attendant'\n\toption require_signature '1'\n",
                    config.listen
                ),
            ),
            (
                wire::under_root(&dir, wire::OPKG_KEYS_DIR).join(fingerprint),
                image_key.clone(),
            ),
            (
                wire::under_root(&dir, wire::OPKG_KEYS_DIR).join(&info.fingerprint),
                release_key.clone(),
            ),
        ];
        for (path, contents) in files {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("cannot create `{}`", parent.display()))?;
            }
            std::fs::write(&path, contents)
                .with_context(|| format!("cannot write `{}`", path.display()))?;
        }
        // Absolute, so the stand-in logs there whatever directory the agent runs in.
        let absolute = std::fs::canonicalize(&dir)
            .with_context(|| format!("cannot resolve `{}`", dir.display()))?;
        crate::sysupgrade::install(&absolute, 0).with_context(|| {
            format!(
                "cannot write the stand-in sysupgrade in `{}`",
                absolute.display()
            )
        })?;
        written.push(absolute);
    }
    Ok(written)
}

/// The agent to run: `attendant` beside this program when `cargo build --bins` built it.
fn agent_command() -> String {
    std::env::current_exe()
        .ok()
        .map(|exe| exe.with_file_name("attendant"))
        .filter(|agent| agent.is_file())
        .map_or_else(
            || "attendant".to_owned(),
            |agent| agent.display().to_string(),
        )
}

#[expect(
    clippy::print_stdout,
    reason = "the demo's instructions are its output"
)]
fn print_instructions(config: &Config, fingerprint: &str, routers: &[PathBuf]) {
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

4. Or let the agent do all of it on a demo router: {routers_dir} holds the files of two
   routers on OpenWrt {ROUTER_VERSION} (a TP-Link Archer C7 v5 and an x86/64 PC) with tmux,
   luci-app-sqm and htop added by the user. Their `sysupgrade` is a stand-in that only records
   what it was asked to flash; the demo writes them afresh at every start.
"#,
        routers_dir = routers
            .first()
            .and_then(|dir| dir.parent())
            .map_or_else(String::new, |dir| dir.display().to_string()),
    );
    let agent = agent_command();
    for dir in routers {
        println!(
            "   PATH=\"{bin}:$PATH\" {agent} upgrade --root {root}\n   cat {log}\n",
            bin = dir.join("bin").display(),
            root = dir.display(),
            log = dir.join(crate::sysupgrade::LOG).display(),
        );
    }
}
