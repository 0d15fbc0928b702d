//! `attendant-server keys`: the channel metadata keys (root, delegation, revocation).
//!
//! `keys show --json` prints one JSON document:
//!
//! ```json
//! {"file": "signing.ucert", "elements": [
//!   {"kind": "auth", "signed_by": "3d851eb6ad1db4f5", "key": "0707070707070707",
//!    "valid_from": 1796557500, "valid_from_text": "Sun Dec 06 11:45:00 UTC 2026",
//!    "expires_at": 1804333500, "expires_at_text": "Sat Mar 06 11:45:00 UTC 2027"},
//!   {"kind": "revoke", "signed_by": "…", "fingerprint": "…", "valid_from": …, "valid_from_text": "…"},
//!   {"kind": "signature", "signed_by": "…"}]}
//! ```
//!
//! (`kind` `other` with `certtype` for a certificate type ucert does not define.)

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use attendant_proto::timestamp::Timestamp;
use attendant_proto::ucert::{CertBody, Chain, TimeText};
use attendant_proto::usign::Fingerprint;
use attendant_proto::wire::CHANNEL_KEYS_DIR;
use serde_json::json;

use crate::channels::keys::{self, REVOCATIONS_FILE};

/// `keys --help`'s examples.
pub(super) const EXAMPLES: &str = "\
Examples:
  attendant-server keys root-init -s /media/offline/channel-root.sec
  attendant-server keys delegate --root /media/offline/channel-root.sec \\
      --signing /etc/attendant/channel-signing.sec --valid-for 90d \\
      -o /etc/attendant/channel-signing.ucert
  attendant-server keys revoke --root /media/offline/channel-root.sec 0707070707070707 \\
      -o /etc/attendant/revoked.ucert
  attendant-server keys show /etc/attendant/channel-signing.ucert

Routers pin the root's public key (<root>.pub) in their channel key directory (`keys root-init --help`). Keep the root secret key
offline; the server needs only the signing key and its delegation ([channels] signing_key and
delegation in the configuration). Rotate before the delegation expires: delegate a new signing key,
publish both delegations while they overlap, then switch signing_key.";

/// Options of `keys`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub command: KeysCommand,
}

/// `keys` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Make the offline root key pair (secret key mode 0600; the public key, `<file>.pub`, is
    /// what routers pin) and print its fingerprint.
    #[command(after_help = root_init_examples())]
    RootInit(RootInitArgs),
    /// Certify a signing key with the root key for a time window (a ucert auth certificate);
    /// the signing key pair is made first when its file does not exist.
    #[command(after_help = DELEGATE_EXAMPLES)]
    Delegate(DelegateArgs),
    /// Add a root-signed revoke certificate for a key to a revocation list (created when absent).
    #[command(after_help = REVOKE_EXAMPLES)]
    Revoke(RevokeArgs),
    /// Print the certificates and signatures of a ucert file.
    #[command(after_help = SHOW_EXAMPLES)]
    Show(ShowArgs),
}

fn root_init_examples() -> String {
    format!(
        "Examples:
  attendant-server keys root-init -s /media/offline/channel-root.sec

Copy /media/offline/channel-root.sec.pub to {CHANNEL_KEYS_DIR}/ on every router."
    )
}

const DELEGATE_EXAMPLES: &str = "\
Examples:
  attendant-server keys delegate --root root.sec --signing signing.sec --valid-for 90d -o signing.ucert
  attendant-server keys delegate --root root.sec --signing next.sec \\
      --valid-from 2027-02-01T00:00:00Z --valid-for 90d -o next.ucert";

const REVOKE_EXAMPLES: &str = "\
Examples:
  attendant-server keys revoke --root root.sec 0707070707070707 -o revoked.ucert

Publish the list (the server does, from [channels] revocations): routers then refuse the key even
inside its delegation's window.";

const SHOW_EXAMPLES: &str = "\
Examples:
  attendant-server keys show signing.ucert
  attendant-server keys show --json revoked.ucert";

/// Options of `keys root-init`.
#[derive(Debug, clap::Args)]
pub struct RootInitArgs {
    /// Root secret key file to write; the public key goes to `<file>.pub` (refuses to
    /// overwrite either).
    #[arg(long, short = 's', value_name = "ROOT_SECRET")]
    pub secret_key: PathBuf,
}

/// Options of `keys delegate`.
#[derive(Debug, clap::Args)]
pub struct DelegateArgs {
    /// The root secret key that certifies.
    #[arg(long, value_name = "ROOT_SECRET")]
    pub root: PathBuf,
    /// The signing secret key to certify (made, with `<file>.pub`, when it does not exist).
    #[arg(long, value_name = "SIGNING_SECRET")]
    pub signing: PathBuf,
    /// Start of the window: RFC 3339 (`2027-02-01T00:00:00Z`), a channel date
    /// (`Mon Feb 01 00:00:00 UTC 2027`) or Unix seconds (default: now).
    #[arg(long, value_name = "TIME")]
    pub valid_from: Option<String>,
    /// Length of the window (`90d`, `12weeks`).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub valid_for: Duration,
    /// The delegation file to write (replaced if it exists).
    #[arg(long, short = 'o', value_name = "OUT.ucert")]
    pub output: PathBuf,
}

/// Options of `keys revoke`.
#[derive(Debug, clap::Args)]
pub struct RevokeArgs {
    /// The root secret key that revokes.
    #[arg(long, value_name = "ROOT_SECRET")]
    pub root: PathBuf,
    /// Fingerprint of the key to revoke (16 hex digits, as `keys show` and usign print it).
    pub fingerprint: String,
    /// When the revocation takes effect, in the forms of `delegate --valid-from` (default: now).
    #[arg(long, value_name = "TIME")]
    pub valid_from: Option<String>,
    /// The revocation list to append to (created when absent).
    #[arg(long, short = 'o', value_name = "FILE", default_value = REVOCATIONS_FILE)]
    pub output: PathBuf,
}

/// Options of `keys show`.
#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// Print one JSON document instead of text (its shape is in `server/src/cli/keys.rs`).
    #[arg(long)]
    pub json: bool,
    /// The ucert file.
    pub file: PathBuf,
}

#[expect(
    clippy::print_stdout,
    reason = "fingerprints and the dump are the command's output"
)]
pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    match &args.command {
        KeysCommand::RootInit(args) => {
            create_parent(&args.secret_key)?;
            let public = keys::root_init(&args.secret_key)?;
            eprintln!(
                "wrote `{secret}` and `{secret}.pub`; keep `{secret}` offline and pin \
                 `{secret}.pub` on routers in {CHANNEL_KEYS_DIR}/",
                secret = args.secret_key.display()
            );
            println!("{}", public.fingerprint());
        }
        KeysCommand::Delegate(args) => {
            let valid_from = time_or_now(args.valid_from.as_deref(), "--valid-from")?;
            create_parent(&args.output)?;
            create_parent(&args.signing)?;
            let delegated = keys::delegate(
                &args.root,
                &args.signing,
                valid_from,
                args.valid_for,
                &args.output,
            )?;
            if delegated.generated {
                eprintln!(
                    "made the signing key pair `{}` and `{}.pub`",
                    args.signing.display(),
                    args.signing.display()
                );
            }
            eprintln!(
                "wrote `{}`: key `{}` may sign channel metadata from {} until {}",
                args.output.display(),
                delegated.signing.fingerprint(),
                TimeText(delegated.valid_from),
                TimeText(delegated.expires_at)
            );
            println!("{}", delegated.signing.fingerprint());
        }
        KeysCommand::Revoke(args) => {
            let fingerprint = Fingerprint::from_hex(&args.fingerprint)
                .with_context(|| "cannot revoke: the key is named by its fingerprint")?;
            let valid_from = time_or_now(args.valid_from.as_deref(), "--valid-from")?;
            create_parent(&args.output)?;
            if keys::revoke(&args.root, fingerprint, valid_from, &args.output)? {
                eprintln!(
                    "added the revocation of key `{fingerprint}` to `{}`",
                    args.output.display()
                );
            } else {
                eprintln!(
                    "`{}` already revokes key `{fingerprint}`; nothing changed",
                    args.output.display()
                );
            }
        }
        KeysCommand::Show(args) => {
            let chain = keys::load_chain(&args.file)?;
            if args.json {
                println!("{}", show_json(&args.file, &chain));
            } else {
                print!("{}", show_text(&chain));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn show_text(chain: &Chain) -> String {
    let mut out = String::new();
    for (index, element) in chain.elements().iter().enumerate() {
        let signed_by = element.signature().fingerprint();
        let number = index + 1;
        match element.cert() {
            None => out.push_str(&format!("element {number}: signature by key {signed_by}\n")),
            Some(cert) => {
                let valid_from = TimeText(cert.valid_from());
                match cert.body() {
                    CertBody::Auth {
                        public_key,
                        expires_at,
                    } => out.push_str(&format!(
                        "element {number}: delegation by key {signed_by}\n  key:        {}\n  \
                         valid from: {valid_from}\n  expires at: {}\n",
                        public_key.fingerprint(),
                        TimeText(*expires_at)
                    )),
                    CertBody::Revoke { fingerprint } => out.push_str(&format!(
                        "element {number}: revocation by key {signed_by}\n  revokes:    \
                         {fingerprint}\n  valid from: {valid_from}\n"
                    )),
                    other => out.push_str(&format!(
                        "element {number}: certificate of unknown type {} by key {signed_by}\n  \
                         valid from: {valid_from}\n",
                        certtype(other)
                    )),
                }
            }
        }
    }
    out
}

fn show_json(file: &std::path::Path, chain: &Chain) -> serde_json::Value {
    let elements: Vec<serde_json::Value> = chain
        .elements()
        .iter()
        .map(|element| {
            let signed_by = element.signature().fingerprint().to_string();
            let Some(cert) = element.cert() else {
                return json!({"kind": "signature", "signed_by": signed_by});
            };
            let valid_from = cert.valid_from();
            let valid_from_text = TimeText(valid_from).to_string();
            match cert.body() {
                CertBody::Auth {
                    public_key,
                    expires_at,
                } => json!({
                    "kind": "auth",
                    "signed_by": signed_by,
                    "key": public_key.fingerprint().to_string(),
                    "valid_from": valid_from,
                    "valid_from_text": valid_from_text,
                    "expires_at": expires_at,
                    "expires_at_text": TimeText(*expires_at).to_string(),
                }),
                CertBody::Revoke { fingerprint } => json!({
                    "kind": "revoke",
                    "signed_by": signed_by,
                    "fingerprint": fingerprint.to_string(),
                    "valid_from": valid_from,
                    "valid_from_text": valid_from_text,
                }),
                other => json!({
                    "kind": "other",
                    "certtype": certtype(other),
                    "signed_by": signed_by,
                    "valid_from": valid_from,
                    "valid_from_text": valid_from_text,
                }),
            }
        })
        .collect();
    json!({"file": file.display().to_string(), "elements": elements})
}

fn certtype(body: &CertBody) -> u32 {
    match body {
        CertBody::Other { certtype } => *certtype,
        CertBody::Auth { .. } => attendant_proto::ucert::CERTTYPE_AUTH,
        CertBody::Revoke { .. } => attendant_proto::ucert::CERTTYPE_REVOKE,
        _ => 0,
    }
}

/// Unix seconds of `text` (RFC 3339, a channel date, or Unix seconds), or now.
fn time_or_now(text: Option<&str>, option: &str) -> anyhow::Result<i64> {
    let Some(text) = text else {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .context("the system clock is before 1970")?;
        return i64::try_from(now.as_secs()).context("the system clock is out of range");
    };
    if let Ok(unix) = text.parse::<i64>() {
        return Ok(Timestamp::from_unix(unix)
            .with_context(|| format!("{option} `{text}`"))?
            .unix());
    }
    if let Ok(time) = Timestamp::parse(text) {
        return Ok(time.unix());
    }
    let time = humantime::parse_rfc3339_weak(text).map_err(|_| {
        anyhow::anyhow!(
            "{option} `{text}` is not a time; expected RFC 3339 (`2027-02-01T00:00:00Z`), a \
             channel date (`Mon Feb 01 00:00:00 UTC 2027`) or Unix seconds"
        )
    })?;
    let seconds = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| anyhow::anyhow!("{option} `{text}` lies before 1970"))?
        .as_secs();
    i64::try_from(seconds).with_context(|| format!("{option} `{text}` is out of range"))
}

fn create_parent(path: &std::path::Path) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create directory `{}`", parent.display()))?;
    }
    Ok(())
}
