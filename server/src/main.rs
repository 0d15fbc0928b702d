//! `attendant-server`: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = attendant_server::cli::Cli::parse();
    match attendant_server::cli::run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            if let Some(hint) = attendant_server::cli::hint(&error) {
                eprintln!("\nhint: {hint}");
            }
            ExitCode::FAILURE
        }
    }
}
