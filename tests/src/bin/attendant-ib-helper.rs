//! `attendant-ib-helper`: the program the fixture ImageBuilder's Makefile runs in place of
//! opkg/apk and the image recipes (see `attendant_e2e::imagebuilder::helper`).

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = attendant_e2e::imagebuilder::helper::run(
        &args,
        &mut std::io::stdout(),
        &mut std::io::stderr(),
    );
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
