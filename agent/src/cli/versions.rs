//! `attendant versions`: what the server offers.
//!
//! JSON `data`: `{"installed": "...", "branches": [{"name", "enabled", "snapshot", "latest",
//! "versions": [...]}]}`, newest branch first.

use serde::Serialize;

use crate::cli::{Outcome, command, settings, to_data};
use crate::engine::Engine;
use crate::exit::ExitStatus;
use crate::output::{Output, sanitize};
use crate::plan;

command! {
    /// List the branches and versions the server offers, marking the newest and the installed one.
    #[argh(
        subcommand,
        name = "versions",
        example = "attendant versions",
        error_code(5, "server error")
    )]
    pub(crate) struct VersionsCommand {}
    groups: [common, server]
}

#[derive(Serialize)]
struct BranchVersions {
    name: String,
    enabled: bool,
    snapshot: bool,
    latest: Option<String>,
    versions: Vec<String>,
}

#[derive(Serialize)]
struct Versions {
    installed: Option<String>,
    branches: Vec<BranchVersions>,
}

pub(super) fn run(cmd: VersionsCommand, out: &mut Output) -> Outcome {
    let settings = settings(&cmd.root, cmd.server.as_deref(), cmd.ca_file.as_deref())?;
    let engine = Engine::new(&cmd.root, settings);
    let installed = engine.device().ok().map(|d| d.version);
    let client = engine.client()?;
    let overview = engine.overview(&client)?;
    let mut branches: Vec<BranchVersions> = overview
        .branches
        .values()
        .map(|branch| BranchVersions {
            name: branch.name.clone(),
            enabled: branch.enabled,
            snapshot: branch.snapshot,
            latest: plan::latest_of(&overview, branch),
            versions: branch.versions.clone(),
        })
        .collect();
    branches.reverse();
    if !out.is_json() {
        let mut text = String::new();
        for branch in &branches {
            let state = if branch.enabled { "" } else { " (disabled)" };
            text.push_str(&format!("{}{state}\n", sanitize(&branch.name)));
            for version in &branch.versions {
                let mut tags = Vec::new();
                if branch.latest.as_ref() == Some(version) {
                    tags.push("latest");
                }
                if installed.as_ref() == Some(version) {
                    tags.push("installed");
                }
                let tags = if tags.is_empty() {
                    String::new()
                } else {
                    format!("  ({})", tags.join(", "))
                };
                text.push_str(&format!("  {}{tags}\n", sanitize(version)));
            }
        }
        out.data(&text)?;
    }
    Ok((
        ExitStatus::Success,
        to_data(&Versions {
            installed,
            branches,
        }),
    ))
}
