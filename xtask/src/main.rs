//! `cargo run -p xtask -- dist [--binaries-from DIR --target T] [--out DIR]`: see [`xtask::dist`].

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use argh::FromArgs;
use xtask::{DistOptions, Mtime, Target};

/// Attendant's release tool.
#[derive(FromArgs)]
struct Args {
    #[argh(subcommand)]
    command: Command,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum Command {
    Dist(DistArgs),
}

/// Build the static router binaries and write .ipk packages and tarballs to target/dist.
#[derive(FromArgs)]
#[argh(subcommand, name = "dist")]
struct DistArgs {
    /// take `attendant-multicall` from DIR instead of building it (one --target)
    #[argh(option)]
    binaries_from: Option<PathBuf>,
    /// x86_64 or aarch64; repeat for both (default: both)
    #[argh(option, from_str_fn(parse_target))]
    target: Vec<Target>,
    /// output directory (default: target/dist)
    #[argh(option)]
    out: Option<PathBuf>,
}

fn main() -> ExitCode {
    let Args {
        command: Command::Dist(args),
    } = argh::from_env();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            if let Some(hint) = error.hint() {
                eprintln!("\nhint: {hint}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run(args: DistArgs) -> Result<(), xtask::DistError> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let options = DistOptions {
        repo,
        binaries_from: args.binaries_from,
        targets: args.target,
        out: args.out,
        mtime: source_date_epoch(),
    };
    for path in xtask::dist(&options)? {
        println!("{}", path.display());
    }
    Ok(())
}

/// `SOURCE_DATE_EPOCH` when set to a number (reproducible builds), else 0.
fn source_date_epoch() -> Mtime {
    Mtime(
        std::env::var("SOURCE_DATE_EPOCH")
            .ok()
            .and_then(|value| value.parse().ok())
            .unwrap_or(0),
    )
}

fn parse_target(value: &str) -> Result<Target, String> {
    Target::from_name(value)
        .ok_or_else(|| format!("unknown target `{value}` (expected x86_64 or aarch64)"))
}
