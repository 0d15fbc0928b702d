//! `attendant-server keygen`.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::signing::{generate_key_pair, public_path_of};

/// `keygen --help`'s examples.
pub(super) const EXAMPLES: &str = "\
Examples:
  attendant-server keygen
  attendant-server keygen -s /etc/attendant/key-build --comment 'attendant.example.org'

Then set `signing_key = \"/etc/attendant/key-build\"` (or ATTENDANT_SIGNING_KEY) so that `serve`
signs every image and publishes the public key at /keys/<fingerprint>.";

/// Options of `keygen`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Secret key file to write; the public key goes to `<file>.pub` (refuses to overwrite).
    #[arg(long, short = 's', default_value = "./data/key-build")]
    pub secret_key: PathBuf,
    /// Comment for both key files (default: usign's `private key <fp>` / `public key <fp>`).
    #[arg(long)]
    pub comment: Option<String>,
}

#[expect(
    clippy::print_stdout,
    reason = "the fingerprint is the command's output"
)]
pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    if let Some(parent) = args
        .secret_key
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent)?;
    }
    let public = generate_key_pair(&args.secret_key, args.comment.as_deref())?;
    let fingerprint = public.fingerprint().to_string();
    eprintln!(
        "wrote `{}` and `{}`; set `signing_key = \"{}\"` to sign images",
        args.secret_key.display(),
        public_path_of(&args.secret_key).display(),
        args.secret_key.display()
    );
    println!("{fingerprint}");
    Ok(ExitCode::SUCCESS)
}
