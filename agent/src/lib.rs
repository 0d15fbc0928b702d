//! The router side of Attendant: device facts, the server client, the upgrade engine and the CLI.
//!
//! The binary `attendant` is a thin wrapper over [`run`]; the rpcd bridge (`attendant-ubus`)
//! calls the same engine as a library.

use std::process::ExitCode;

use argh::FromArgs;

/// Attended firmware upgrades for OpenWrt.
#[derive(FromArgs, Debug)]
pub struct Args {
    /// print the version and exit
    #[argh(switch)]
    pub version: bool,
}

/// Runs the command line.
pub fn run(args: Args) -> ExitCode {
    if args.version {
        println!("attendant {}", env!("CARGO_PKG_VERSION"));
    }
    ExitCode::SUCCESS
}
