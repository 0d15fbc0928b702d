//! `attendant`: see the library for everything it does.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match attendant::parse(&args) {
        Ok(args) => attendant::run(args),
        Err(code) => code,
    }
}
