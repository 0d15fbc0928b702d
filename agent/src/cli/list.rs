//! `attendant list`: the installed top-level packages, for the firmware selector or a buildroot.
//!
//! Formats (owut's): `fs-user` is the user's own top-level packages (not the image's defaults)
//! plus `-name` for each default package that is not installed, on one line (what the firmware
//! selector takes on top of the defaults it already lists); `fs-all` is every top-level package
//! on one line; `config` is one `CONFIG_PACKAGE_<name>=y` line each.
//! `fs-user` asks the server for the profile's defaults; the other formats need no network.
//! JSON `data`: `{"format": "...", "packages": ["...", ...]}`.

use serde::Serialize;

use crate::cli::{Outcome, command, settings, to_data};
use crate::engine::Engine;
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::options::PlanOptions;
use crate::output::{Output, sanitize};

command! {
    /// List the installed top-level packages in a format for the firmware selector or a buildroot.
    #[argh(
        subcommand,
        name = "list",
        example = "attendant list",
        example = "attendant list --format config >> .config",
        note = "Formats: fs-user (the top-level packages that are not defaults, and -name for each missing default), fs-all (every top-level package), config (CONFIG_PACKAGE_<name>=y lines)."
    )]
    pub(crate) struct ListCommand {
        /// output format: fs-user, fs-all or config (default: fs-user)
        #[argh(option, short = 'f', default = "String::from(\"fs-user\")")]
        pub(crate) format: String,
    }
    groups: [common, server]
}

#[derive(Serialize)]
struct Listing<'a> {
    format: &'a str,
    packages: Vec<String>,
}

pub(super) fn run(cmd: ListCommand, out: &mut Output) -> Outcome {
    let settings = settings(&cmd.root, cmd.server.as_deref(), cmd.ca_file.as_deref())?;
    let engine = Engine::new(&cmd.root, settings);
    let packages = match cmd.format.as_str() {
        "fs-all" | "config" => engine
            .device()?
            .packages
            .top_level()
            .map(|p| p.name.clone())
            .collect(),
        "fs-user" => {
            let check = engine.check(&PlanOptions::default())?;
            let mut list: Vec<String> = check
                .device
                .packages
                .top_level()
                // A package that provides a default stands for it (24.10's `nftables-json` for
                // `nftables`), so it is no more the user's choice than the default itself.
                .filter(|p| {
                    !check.defaults.contains(&p.name)
                        && !p.provides.iter().any(|v| check.defaults.contains(v))
                })
                .map(|p| p.name.clone())
                .collect();
            list.extend(check.missing_defaults.iter().map(|name| format!("-{name}")));
            list
        }
        other => {
            return Err(Error::Usage(format!(
                "format `{other}` is not one of `fs-user`, `fs-all`, `config`"
            ))
            .into());
        }
    };
    if !out.is_json() {
        let text = if cmd.format == "config" {
            packages
                .iter()
                .map(|p| format!("CONFIG_PACKAGE_{}=y\n", sanitize(p)))
                .collect()
        } else {
            sanitize(&packages.join(" "))
        };
        out.data(&text)?;
    }
    Ok((
        ExitStatus::Success,
        to_data(&Listing {
            format: &cmd.format,
            packages,
        }),
    ))
}
