//! `attendant`: see the library for everything it does.

fn main() -> std::process::ExitCode {
    attendant::run(argh::from_env())
}
