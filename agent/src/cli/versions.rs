//! `attendant versions`: what the server offers.
//!
//! JSON `data`: `{"installed": "...", "target": "...", "branches": [{"name", "enabled",
//! "snapshot", "latest", "versions": [...]}], "hidden": [{"name", "reason"}]}`, newest branch
//! first. As owut does, branches that build no firmware for this device's target (old branch
//! snapshots, dropped targets) are hidden; `-v` says which and why.

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
struct HiddenBranch {
    name: String,
    reason: String,
}

#[derive(Serialize)]
struct Versions {
    installed: Option<String>,
    target: Option<String>,
    branches: Vec<BranchVersions>,
    hidden: Vec<HiddenBranch>,
}

pub(super) fn run(cmd: VersionsCommand, out: &mut Output) -> Outcome {
    let settings = settings(&cmd.root, cmd.server.as_deref(), cmd.ca_file.as_deref())?;
    let engine = Engine::new(&cmd.root, settings);
    let device = engine.device().ok();
    let installed = device.as_ref().map(|d| d.version.clone());
    let target = device.map(|d| d.target);
    let client = engine.client()?;
    let overview = engine.overview(&client)?;
    let mut hidden = Vec::new();
    let mut branches: Vec<BranchVersions> = overview
        .branches
        .values()
        .filter(|branch| match &target {
            Some(target) if !plan::builds_target(branch, target) => {
                hidden.push(HiddenBranch {
                    name: branch.name.clone(),
                    reason: format!("builds no firmware for target `{target}`"),
                });
                false
            }
            _ => true,
        })
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
        if out.verbosity() > 0 {
            for branch in &hidden {
                out.note(&format!("hidden: {} ({})", branch.name, branch.reason));
            }
        }
    }
    Ok((
        ExitStatus::Success,
        to_data(&Versions {
            installed,
            target,
            branches,
            hidden,
        }),
    ))
}
