//! `attendant check --channel NAME` (or with `option channel` set): the channel's offer for
//! this router.
//!
//! JSON `data`: the [`ChannelPlan`]: `configured`, `name`, `redirected_from`, `alias`,
//! `device`, `current_build`, `full_move` (`{"reason": "no_stamp"|"switch"|"alias_retarget",
//! ...}` or null), `paths` (`[{"builds": [5, 7], "score": 205, "download_bytes": N}]`, best
//! first), `winner` (index into `paths`, or null), `rollout` (`{"build", "percentage",
//! "phase", "phased_in"}` of the newest build, or null), and `target` (`{"build",
//! "openwrt_version", "description", "older_openwrt", "prebuilt", "extra_packages"}` of the
//! winning path's end, or null; `prebuilt`: the next build is flashed from the published image,
//! `extra_packages`: this router's packages the published image lacks, so an image is built for
//! it).

use serde::Serialize;

use crate::channel::attended::ChannelRoute;
use crate::channel::{ChannelPlan, image_file};
use crate::cli::CommandError;
use crate::exit::ExitStatus;
use crate::facts::Device;
use crate::output::{Output, sanitize};

/// The winning path's destination, as `check` shows it.
#[derive(Debug, Serialize)]
pub(crate) struct Target {
    pub(crate) build: u64,
    pub(crate) openwrt_version: String,
    pub(crate) description: String,
    pub(crate) older_openwrt: bool,
    pub(crate) prebuilt: bool,
    pub(crate) extra_packages: Vec<String>,
}

#[derive(Serialize)]
struct Report<'a> {
    #[serde(flatten)]
    plan: &'a ChannelPlan,
    target: Option<Target>,
}

/// The destination of `plan`'s winning path; `route`: how its next build reaches the router,
/// when that could be found out.
pub(crate) fn target(
    plan: &ChannelPlan,
    device: &Device,
    route: Option<&ChannelRoute>,
) -> Option<Target> {
    let image = plan.target()?;
    let (prebuilt, extra_packages) = match route {
        Some(ChannelRoute::Prebuilt) => (true, Vec::new()),
        Some(ChannelRoute::Attended { extra, .. }) => (false, extra.clone()),
        None => (image_file(image, device).is_some(), Vec::new()),
    };
    Some(Target {
        build: image.version,
        openwrt_version: image.openwrt_version.clone(),
        description: image.description.clone(),
        older_openwrt: plan.older_openwrt(),
        prebuilt,
        extra_packages,
    })
}

/// Prints the plan (with every path and its score when `paths`), returns the exit status and
/// the JSON data.
pub(crate) fn report(
    plan: &ChannelPlan,
    device: &Device,
    route: Option<&ChannelRoute>,
    paths: bool,
    out: &mut Output,
) -> Result<(ExitStatus, serde_json::Value), CommandError> {
    let target = target(plan, device, route);
    if !out.is_json() {
        let mut text = format!(
            "Channel:      {}\nDevice:       {}\nRunning:      build {}",
            sanitize(&plan.name),
            sanitize(&plan.device),
            plan.current_build
        );
        if let Some(from) = &plan.redirected_from {
            text.push_str(&format!("\nRedirected:   from {}", sanitize(from)));
        }
        if let Some(reason) = &plan.full_move {
            let why = match reason {
                crate::channel::MoveReason::NoStamp => {
                    "the running firmware carries no channel.json".to_owned()
                }
                crate::channel::MoveReason::Switch { from } => {
                    format!("switching from channel {}", sanitize(from))
                }
                crate::channel::MoveReason::AliasRetarget { from, to } => format!(
                    "the alias now follows {} instead of {}",
                    sanitize(to.as_deref().unwrap_or("none")),
                    sanitize(from.as_deref().unwrap_or("none"))
                ),
            };
            text.push_str(&format!("\nFull move:    {why}"));
        }
        out.data(&text)?;
        if paths {
            if plan.decision.paths.is_empty() {
                out.data("No upgrade path")?;
            }
            for (index, path) in plan.decision.paths.iter().enumerate() {
                let builds: Vec<String> = path.builds.iter().map(u64::to_string).collect();
                let mark = if plan.decision.winner == Some(index) {
                    "*"
                } else {
                    " "
                };
                out.data(&format!(
                    "{mark} path {:<20} score {:>6}  {} bytes",
                    builds.join(":"),
                    path.score,
                    path.download_bytes
                ))?;
            }
        }
        if let Some(rollout) = plan.decision.rollout {
            let state = if rollout.phased_in {
                "phased in"
            } else if rollout.percentage == 0 {
                "pulled"
            } else {
                "phased out"
            };
            out.data(&format!(
                "Target phase: {}% (build {} at {}%: {state})",
                rollout.phase, rollout.build, rollout.percentage
            ))?;
        }
        let verdict = match &target {
            Some(target) => {
                let mut line = format!(
                    "\nAn upgrade to build {} (OpenWrt {}) is available; `attendant upgrade --channel {}` installs it",
                    target.build,
                    sanitize(&target.openwrt_version),
                    sanitize(&plan.name)
                );
                if !target.extra_packages.is_empty() {
                    line.push_str(&format!(
                        "\nThe published image lacks packages this router has ({}): an image \
                         with them is built for it",
                        sanitize(&target.extra_packages.join(", "))
                    ));
                }
                if target.older_openwrt {
                    line.push_str(&format!(
                        "\nwarning: OpenWrt {} is older than the running {}",
                        sanitize(&target.openwrt_version),
                        sanitize(&plan.running_openwrt)
                    ));
                }
                line
            }
            None => "\nThe firmware is up to date in this channel".to_owned(),
        };
        out.data(&verdict)?;
    }
    let status = if target.is_some() {
        ExitStatus::UpgradeAvailable
    } else {
        ExitStatus::Success
    };
    let data = crate::cli::to_data(&Report { plan, target });
    Ok((status, data))
}
