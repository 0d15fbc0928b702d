//! `attendant-e2e`: run the offline demo server, write the fixture OpenWrt mirror, serve a
//! directory over HTTP, or write a fake router's files.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use argh::FromArgs;
use attendant_e2e::catalog::Catalog;
use attendant_e2e::mirror::MirrorError;
use attendant_e2e::router::{RouterSpec, write_root};
use attendant_e2e::seed::Seed;

/// Fixture OpenWrt downloads mirror for tests and the offline demo.
#[derive(FromArgs)]
struct Args {
    #[argh(subcommand)]
    command: Command,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum Command {
    Demo(DemoArgs),
    Mirror(MirrorArgs),
    Serve(ServeArgs),
    Router(RouterArgs),
}

/// Run attendant-server against the fixture mirror: generated once into
/// <data_dir>/demo-upstream (default ./data/demo-upstream) and served on a loopback port; images
/// are signed with <data_dir>/demo-key-build. The commands to try are printed at start.
#[derive(FromArgs)]
#[argh(
    subcommand,
    name = "demo",
    example = "attendant-e2e demo",
    example = "attendant-e2e demo --listen 127.0.0.1:9000 --workers 1",
    note = "The server's configuration comes from --config or ATTENDANT_CONFIG and ATTENDANT_<KEY> variables, as for `attendant-server serve`; upstream_url, trusted_keys and signing_key are the demo's."
)]
struct DemoArgs {
    /// address to listen on (default: `listen` of the configuration, 127.0.0.1:8000)
    #[argh(option)]
    listen: Option<std::net::SocketAddr>,
    /// build workers; the configuration's `workers` is not used (default: 2)
    #[argh(option, default = "2")]
    workers: usize,
    /// server configuration file (TOML; default: none, built-in defaults)
    #[argh(option, short = 'c')]
    config: Option<PathBuf>,
}

/// Write the mirror: the served tree to DIR/www, its usign keys to DIR/keys, a summary to
/// DIR/mirror.json.
#[derive(FromArgs)]
#[argh(
    subcommand,
    name = "mirror",
    example = "attendant-e2e mirror /tmp/mirror --seed 7",
    note = "The ImageBuilder helper is taken from $ATTENDANT_IB_HELPER or from next to this program."
)]
struct MirrorArgs {
    /// directory to write into (created if missing)
    #[argh(positional)]
    dir: PathBuf,
    /// seed that varies revisions, hashes and contents (default: 1)
    #[argh(option, default = "attendant_e2e::mirror::DEFAULT_SEED")]
    seed: u64,
}

/// Serve a directory (a mirror's DIR/www, or DIR itself) over HTTP on 127.0.0.1.
#[derive(FromArgs)]
#[argh(
    subcommand,
    name = "serve",
    example = "attendant-e2e serve /tmp/mirror --port 8080"
)]
struct ServeArgs {
    /// mirror directory or tree to serve
    #[argh(positional)]
    dir: PathBuf,
    /// port on 127.0.0.1 (default: 0, any free port)
    #[argh(option, default = "0")]
    port: u16,
}

/// Write a fake router's files (board, os-release, mounts, the opkg or apk database of the
/// fixture release's defaults plus --add packages) under DIR, for `attendant --root DIR`.
#[derive(FromArgs)]
#[argh(
    subcommand,
    name = "router",
    example = "attendant-e2e router /tmp/c7 --version 24.10.4 --target ath79/generic --profile tplink_archer-c7-v5 --board tplink,archer-c7-v5 --add tmux",
    note = "The packages are those the fixture ImageBuilder of that release installs, as on a real router: Provides, ABI versions and top-level marks included. Use the --seed of the mirror the agent will talk to."
)]
struct RouterArgs {
    /// directory to write into (created if missing)
    #[argh(positional)]
    dir: PathBuf,
    /// the installed release, e.g. 24.10.4
    #[argh(option)]
    version: String,
    /// board/subtarget, e.g. ath79/generic
    #[argh(option)]
    target: String,
    /// the profile whose defaults are installed, e.g. tplink_archer-c7-v5
    #[argh(option)]
    profile: String,
    /// the board name, e.g. tplink,archer-c7-v5
    #[argh(option)]
    board: String,
    /// the model /tmp/sysinfo/model reports (default: the board name)
    #[argh(option)]
    model: Option<String>,
    /// a package the user installed on top of the defaults (repeatable)
    #[argh(option)]
    add: Vec<String>,
    /// the fixture seed (default: 1, as `mirror`)
    #[argh(option, default = "attendant_e2e::mirror::DEFAULT_SEED")]
    seed: u64,
}

fn main() -> ExitCode {
    let args: Args = argh::from_env();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            if let Some(hint) = hint(&error) {
                eprintln!("\nhint: {hint}");
            }
            ExitCode::FAILURE
        }
    }
}

/// The way out of `error`: the mirror's own (a missing helper), else the server's (the demo
/// runs `attendant-server`).
fn hint(error: &anyhow::Error) -> Option<String> {
    error
        .chain()
        .find_map(|cause| {
            cause
                .downcast_ref::<MirrorError>()
                .and_then(MirrorError::hint)
        })
        .or_else(|| attendant_server::cli::hint(error))
}

fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Demo(demo) => {
            attendant_server::cli::init_logging(attendant_server::cli::LogFormat::Text);
            let path = demo.config.or_else(|| {
                std::env::var_os(attendant_server::config::CONFIG_ENV).map(PathBuf::from)
            });
            let config = attendant_server::config::Config::load(path.as_deref(), std::env::vars())?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            runtime.block_on(attendant_e2e::demo::run(config, demo.listen, demo.workers))
        }
        Command::Mirror(mirror) => {
            let helper = attendant_e2e::mirror::helper_path()?;
            let info = attendant_e2e::mirror::generate(&mirror.dir, mirror.seed, &helper)
                .with_context(|| {
                    format!("cannot write the mirror into `{}`", mirror.dir.display())
                })?;
            println!("{}", info.root.display());
            Ok(())
        }
        Command::Serve(serve) => {
            let www = serve.dir.join("www");
            let root = if www.is_dir() { www } else { serve.dir };
            let server =
                attendant_e2e::MirrorServer::start_on(&root, &format!("127.0.0.1:{}", serve.port))
                    .with_context(|| format!("cannot serve `{}`", root.display()))?;
            println!("{}", server.url());
            loop {
                std::thread::park();
            }
        }
        Command::Router(router) => {
            let mut spec = RouterSpec::new(
                &router.version,
                &router.target,
                &router.profile,
                &router.board,
            );
            if let Some(model) = router.model {
                spec.model = model;
            }
            spec.user_packages = router.add;
            let catalog = Catalog::new(Seed(router.seed));
            let installed = write_root(&router.dir, &catalog, &spec).with_context(|| {
                format!("cannot write the router into `{}`", router.dir.display())
            })?;
            println!(
                "{}: {} packages installed",
                router.dir.display(),
                installed.len()
            );
            Ok(())
        }
    }
}
