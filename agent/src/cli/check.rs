//! `attendant check`: is there an upgrade, and would it work?
//!
//! JSON `data`: the whole [`Check`](crate::engine::Check): `device`, `server`, `upstream`,
//! `target` (`version`, `branch`, `path`), `version_code`, `profile`, `image`,
//! `package_changes`, `packages` (rows with `name`, `installed`, `available`, `change`,
//! `requested`), `defaults`, `missing_defaults`, `warnings`, `problems`, `verdict`
//! (`up_to_date`/`upgrade_available`/`blocked`) and `request` (the build request).

use crate::check::{Check, Verdict};
use crate::cli::channel_check;
use crate::cli::{
    CommandError, Outcome, channel_request, command, plan_options_of, settings, to_data,
};
use crate::engine::Engine;
use crate::exit::ExitStatus;
use crate::output::{Output, sanitize};
use crate::plan::VersionChange;

command! {
    /// Show whether a newer firmware is available and whether it can be built with your packages.
    #[argh(
        subcommand,
        name = "check",
        example = "attendant check",
        example = "attendant check --version-to 25.12 --add luci-app-sqm",
        example = "attendant check --channel stable --dry-run",
        note = "Nothing is built or downloaded. The exit code says what was found.",
        error_code(0, "up to date"),
        error_code(3, "an upgrade is available"),
        error_code(4, "blocked: missing packages, downgrades without --force, no image"),
        error_code(5, "server error"),
        error_code(7, "channel metadata refused")
    )]
    pub(crate) struct CheckCommand {
        /// with a channel, print every upgrade path with its score (default: only the verdict)
        #[argh(switch)]
        pub(crate) dry_run: bool,
    }
    groups: [common, server, channel, plan]
}

pub(super) fn run(cmd: CheckCommand, out: &mut Output) -> Outcome {
    let settings = settings(&cmd.root, cmd.server.as_deref(), cmd.ca_file.as_deref())?;
    let request = channel_request(&settings, cmd.channel.as_deref(), cmd.percentage)?;
    let options = plan_options_of!(cmd, settings)?;
    let engine = Engine::new(&cmd.root, settings);
    if let Some(request) = request {
        let device = engine.device()?;
        let plan = engine.channel_plan(&device, &request)?;
        // Whether the published image will do takes the build API; without it the check still
        // shows the channel's offer.
        let route = engine
            .channel_route(&plan, &device, cmd.prebuilt)
            .inspect_err(|error| {
                out.warn(&format!(
                    "cannot compare this router's packages with the build's recipe: {error}"
                ));
            })
            .ok()
            .flatten();
        return channel_check::report(&plan, &device, route.as_ref(), cmd.dry_run, out);
    }
    let check = engine.check(&options)?;
    if !out.is_json() {
        print_check(&check, out)?;
    }
    let status = match check.verdict {
        Verdict::UpToDate => ExitStatus::Success,
        Verdict::UpgradeAvailable => ExitStatus::UpgradeAvailable,
        Verdict::Blocked => ExitStatus::Blocked,
    };
    Ok((status, to_data(&check)))
}

/// The human report of a check: summary, version table, warnings, problems, verdict.
pub(super) fn print_check(check: &Check, out: &mut Output) -> Result<(), CommandError> {
    print_summary(check, out)?;
    for warning in &check.warnings {
        out.warn(&warning.to_string());
    }
    for problem in &check.problems {
        out.error(&problem.to_string());
    }
    let verdict = match check.verdict {
        Verdict::UpToDate => "There are no changes; the firmware is up to date".to_owned(),
        Verdict::UpgradeAvailable => format!(
            "An upgrade to {} is available; `attendant upgrade` builds and installs it",
            check.target.version
        ),
        Verdict::Blocked => "The checks found problems; do not upgrade".to_owned(),
    };
    out.data(&format!("\n{verdict}"))?;
    Ok(())
}

/// What a build will change, shown by `check` and before `download`/`upgrade` build: the
/// versions, the server's renames and removals, the package table.
pub(super) fn print_summary(check: &Check, out: &mut Output) -> Result<(), CommandError> {
    let device = &check.device;
    let mut text = String::new();
    let line = |text: &mut String, key: &str, value: &str| {
        text.push_str(&format!("{key:<14}{}\n", sanitize(value)));
    };
    line(&mut text, "Server:", &check.server);
    line(&mut text, "Target:", &device.target);
    line(&mut text, "Profile:", &check.profile);
    line(
        &mut text,
        "Version-from:",
        &format!("{} ({})", device.version, device.revision),
    );
    line(
        &mut text,
        "Version-to:",
        &if check.version_code.is_empty() {
            // `--rev-code none`: the server builds whatever revision it has.
            format!("{} (any revision)", check.target.version)
        } else {
            format!("{} ({})", check.target.version, check.version_code)
        },
    );
    if let Some(image) = &check.image {
        line(
            &mut text,
            "Image:",
            &format!("{} {}", image.filesystem, image.image_type),
        );
    }
    if out.verbosity() > 0 {
        line(&mut text, "Upstream:", &check.upstream);
        line(&mut text, "Root-FS-type:", &device.rootfs_type);
        line(
            &mut text,
            "Packages:",
            &format!(
                "{} installed, {} top-level",
                device.packages.len(),
                device.packages.top_level().count()
            ),
        );
    }
    for change in &check.package_changes {
        match &change.target {
            Some(target) => text.push_str(&format!(
                "renamed:      {} -> {}\n",
                sanitize(&change.source),
                sanitize(target)
            )),
            None => text.push_str(&format!("removed:      {}\n", sanitize(&change.source))),
        }
    }
    let shown: Vec<_> = check
        .packages
        .iter()
        .filter(|row| out.verbosity() > 0 || !matches!(row.change, VersionChange::Same))
        .collect();
    if !shown.is_empty() {
        let width = shown.iter().map(|r| r.name.len()).max().unwrap_or(0);
        text.push('\n');
        for row in shown {
            let tag = match row.change {
                VersionChange::Downgrade => " (downgrade)",
                VersionChange::Indeterminate => " (indeterminate)",
                VersionChange::Missing => " (missing)",
                VersionChange::New => " (new)",
                VersionChange::Upgrade | VersionChange::Same => "",
            };
            text.push_str(&format!(
                "  {:<width$}  {} {}{tag}\n",
                sanitize(&row.name),
                sanitize(row.installed.as_deref().unwrap_or("-")),
                sanitize(row.available.as_deref().unwrap_or("-")),
            ));
        }
    }
    out.data(&text)?;
    Ok(())
}
