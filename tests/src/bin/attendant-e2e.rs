//! `attendant-e2e`: write the fixture OpenWrt mirror, or serve a directory over HTTP.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use argh::FromArgs;

/// Fixture OpenWrt downloads mirror for tests and the offline demo.
#[derive(FromArgs)]
struct Args {
    #[argh(subcommand)]
    command: Command,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum Command {
    Mirror(MirrorArgs),
    Serve(ServeArgs),
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

fn main() -> ExitCode {
    let args: Args = argh::from_env();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
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
    }
}
