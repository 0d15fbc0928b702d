//! `attendant-multicall`: the router's `/usr/bin/attendant`, the agent and (through the symlink
//! `/usr/libexec/rpcd/attendant`) the rpcd plugin in one binary. See
//! [`attendant_ubus::multicall`] for how it picks one.

use std::process::ExitCode;

fn main() -> ExitCode {
    attendant_ubus::multicall::run(std::env::args_os().collect())
}
