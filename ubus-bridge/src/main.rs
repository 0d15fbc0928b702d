//! `attendant-ubus`: the rpcd exec plugin. See the library for everything it does.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    attendant_ubus::run(&args, &attendant_ubus::Launcher::current())
}
