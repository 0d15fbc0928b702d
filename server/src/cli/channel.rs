//! `attendant-server channel ...`: release channels from the command line.
//!
//! Every mutation goes through [`crate::channels::apply::apply`] (the admin API's path too),
//! is recorded in the audit log as `cli:<user>`, and takes `--dry-run` (print what would change,
//! commit nothing) and `--json` (print the change as one JSON object, the shape documented on
//! [`crate::channels::apply::Applied`]). Builds are waited for, with in-process workers running
//! meanwhile, unless `--no-wait`.
//!
//! Exit codes: 0 done; 1 refused (the rule is printed) or failed; 2 usage error.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use tokio_util::sync::CancellationToken;

use crate::channels::apply::{Applied, ChannelError, apply, existing_channel};
use crate::channels::builds::{self, BuildOrder, ImportOrder, SettleReport};
use crate::channels::downloads;
use crate::channels::model::{BuildState, Channel, ChannelKind, Recipe};
use crate::channels::ops::{self, BuildRef, CreateOptions};
use crate::channels::reports;
use crate::config::Config;
use crate::service::Service;
use crate::worker::run_workers;

/// `channel --help`'s examples.
pub(super) const EXAMPLES: &str = "\
Examples:
  attendant-server channel create stable --fullcount 5
  attendant-server channel device add stable ath79/generic/tplink_archer-c7-v5
  attendant-server channel build stable ath79/generic/tplink_archer-c7-v5 --version 24.10.5 --add luci
  attendant-server channel build stable x86/64/generic --file openwrt-x86-64-generic-ext4-combined.img.gz --version 24.10.5
  attendant-server channel phase stable ath79/generic/tplink_archer-c7-v5 7 25
  attendant-server channel copy testing ath79/generic/tplink_archer-c7-v5 7 stable --dry-run
  attendant-server channel alias daily testing
  attendant-server channel rollout stable --halt-failure-rate 0.05 --advance 1,10,50,100 --soak 1d
  attendant-server channel list --json

Every change is written to the audit log as `cli:<user>`; --dry-run prints it and commits nothing.
Exit codes: 0 done, 1 refused (the rule is printed) or failed, 2 usage error.";

/// Longest uci-defaults script read by `--defaults`, in bytes.
const MAX_DEFAULTS_FILE_BYTES: u64 = 64 * 1024;

/// How often a waiting build command looks at its jobs.
const WAIT_INTERVAL: Duration = Duration::from_millis(500);

/// Options of `channel`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The channel command.
    #[command(subcommand)]
    pub command: ChannelCommand,
}

/// Options every mutation takes.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Mutation {
    /// Print what would change and commit nothing (default: commit).
    #[arg(long)]
    pub dry_run: bool,
    /// Print the change as one JSON object on stdout (default: lines for people).
    #[arg(long)]
    pub json: bool,
    /// Return once the change is committed, without waiting for the images it asks for
    /// (default: wait, running build workers in this process).
    #[arg(long)]
    pub no_wait: bool,
}

/// `channel` subcommands.
#[derive(Debug, Subcommand)]
pub enum ChannelCommand {
    /// Create a channel.
    Create {
        /// Channel name: `[a-z0-9][a-z0-9._/-]*`, e.g. `stable` or `lab/canary`.
        name: String,
        /// Filled by the importer from the configuration (default: manual).
        #[arg(long)]
        auto: bool,
        /// Number of the first build of each device (default: 1, or BASE's).
        #[arg(long, value_name = "N")]
        versionbase: Option<u64>,
        /// Builds kept per device, older ones expire; 0 keeps all (default: 0, or BASE's).
        #[arg(long, value_name = "N")]
        fullcount: Option<u32>,
        /// Take the devices (without builds) and settings of BASE.
        #[arg(long, value_name = "BASE")]
        like: Option<String>,
        #[command(flatten)]
        mutation: Mutation,
    },
    /// List the channels (hidden ones are marked).
    List {
        /// Print JSON (default: a table).
        #[arg(long)]
        json: bool,
    },
    /// Remove a channel with its devices and builds.
    Remove {
        /// The channel.
        name: String,
        #[command(flatten)]
        mutation: Mutation,
    },
    /// Hide a channel from listings on routers.
    Hide {
        /// The channel.
        name: String,
        #[command(flatten)]
        mutation: Mutation,
    },
    /// Show a hidden channel again.
    Show {
        /// The channel.
        name: String,
        #[command(flatten)]
        mutation: Mutation,
    },
    /// Rename a channel; the old name becomes a hidden redirect to the new one.
    Rename {
        /// The current name.
        old: String,
        /// The new name.
        new: String,
        #[command(flatten)]
        mutation: Mutation,
    },
    /// Make ALIAS mirror TARGET's devices and builds (create, or re-target).
    Alias {
        /// The alias channel.
        alias: String,
        /// The channel it mirrors.
        target: String,
        #[command(flatten)]
        mutation: Mutation,
    },
    /// Send NAME's routers (or one device's) to TARGET's indexes.
    Redirect {
        /// The channel redirected (created hidden if missing).
        name: String,
        /// Where its routers go.
        target: String,
        /// Redirect only this device of NAME (default: the whole channel).
        #[arg(long, value_name = "DEVICE")]
        device: Option<String>,
        #[command(flatten)]
        mutation: Mutation,
    },
    /// Add or remove a device of a channel.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Build (or import) the next build of a device.
    Build(BuildArgs),
    /// List a device's builds in a channel.
    Images {
        /// The channel.
        name: String,
        /// The device, `target/subtarget/profile`.
        device: String,
        /// Print JSON (default: a table).
        #[arg(long)]
        json: bool,
    },
    /// Print, or set, the phased percentage of the latest build (0 pulls it).
    Phase {
        /// The channel.
        name: String,
        /// The device.
        device: String,
        /// The build number (must be the latest).
        build: u64,
        /// 0 to 100; without it, the current percentage is printed.
        percent: Option<u64>,
        #[command(flatten)]
        mutation: Mutation,
    },
    /// Print, or set, the channel's auto-halt and auto-advance from outcome reports.
    Rollout(RolloutArgs),
    /// Tag the latest build: the same images as a new build with `tag=TAG`.
    Tag {
        /// The channel.
        name: String,
        /// The device.
        device: String,
        /// The build number (must be the latest).
        build: u64,
        /// The tag: `A-Z a-z 0-9 . _ -`.
        tag: String,
        #[command(flatten)]
        mutation: Mutation,
    },
    /// Copy a build to a channel as its newest build (revert, or promote).
    Copy {
        /// The source channel.
        name: String,
        /// The device.
        device: String,
        /// The source build number.
        build: u64,
        /// The destination channel (the same one reverts).
        target_channel: String,
        #[command(flatten)]
        mutation: Mutation,
    },
    /// Run the importer for the automatic channels of the configuration (`[[channels.auto]]`;
    /// default: all of them): a new build for each device whose inputs changed.
    Import {
        /// The automatic channels to import (default: every one configured).
        names: Vec<String>,
        /// Print the report as one JSON object (default: a line per device).
        #[arg(long)]
        json: bool,
    },
    /// Remove one build.
    RemoveBuild {
        /// The channel.
        name: String,
        /// The device.
        device: String,
        /// The build number.
        build: u64,
        #[command(flatten)]
        mutation: Mutation,
    },
}

/// Options of `channel rollout`.
#[derive(Debug, clap::Args)]
pub struct RolloutArgs {
    /// The channel.
    pub name: String,
    /// Phase the latest build to 0 % when the share of failed upgrades goes above RATE (0 to
    /// 1); `off` stops it (default: unchanged, off for a new channel).
    #[arg(long, value_name = "RATE")]
    pub halt_failure_rate: Option<String>,
    /// Reports needed before the failure rate counts (default: unchanged, 10 once a rate is
    /// set).
    #[arg(long, value_name = "N")]
    pub halt_min_reports: Option<u64>,
    /// Phased percentages a healthy latest build moves through by itself, e.g. `1,10,50,100`;
    /// `off` stops it (default: unchanged, off for a new channel).
    #[arg(long, value_name = "STEPS")]
    pub advance: Option<String>,
    /// Booted reports needed at a step before the next (default: unchanged, 10 once steps are
    /// set).
    #[arg(long, value_name = "N")]
    pub min_successes: Option<u64>,
    /// Time at a step before the next, e.g. `6h` or `2d` (default: unchanged, 1d once steps
    /// are set).
    #[arg(long, value_name = "DURATION")]
    pub soak: Option<String>,
    #[command(flatten)]
    pub mutation: Mutation,
}

/// `channel device` subcommands.
#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Add a device (`target/subtarget/profile`; board names resolve as in the build API).
    Add {
        /// The channel.
        name: String,
        /// The device.
        device: String,
        #[command(flatten)]
        mutation: Mutation,
    },
    /// Remove a device with its builds.
    Remove {
        /// The channel.
        name: String,
        /// The device.
        device: String,
        #[command(flatten)]
        mutation: Mutation,
    },
}

/// Options of `channel build`.
#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// The channel.
    pub name: String,
    /// The device, `target/subtarget/profile`.
    pub device: String,
    /// The OpenWrt release to build, or that the imported image is.
    #[arg(long, value_name = "V")]
    pub version: String,
    /// Import this prebuilt image instead of building (its fwtool metadata must name the device).
    #[arg(long, value_name = "IMAGE", conflicts_with_all = ["add", "remove", "defaults", "rootfs_size"])]
    pub file: Option<PathBuf>,
    /// Packages to add to the profile's defaults (repeatable).
    #[arg(long, value_name = "PKG", num_args = 1..)]
    pub add: Vec<String>,
    /// Packages to remove from the defaults (repeatable).
    #[arg(long, value_name = "PKG", num_args = 1..)]
    pub remove: Vec<String>,
    /// A uci-defaults script run at first boot (needs `allow_defaults`).
    #[arg(long, value_name = "FILE")]
    pub defaults: Option<PathBuf>,
    /// Root filesystem size in MB (default: the target's).
    #[arg(long, value_name = "MB")]
    pub rootfs_size: Option<u32>,
    /// The oldest build that may upgrade straight to this one (default: any).
    #[arg(long, value_name = "N")]
    pub minversion: Option<u64>,
    /// Text for people (default: none).
    #[arg(long, value_name = "TEXT", default_value = "")]
    pub description: String,
    #[command(flatten)]
    pub mutation: Mutation,
}

pub(crate) async fn run(config: Config, args: Args) -> anyhow::Result<ExitCode> {
    let service = Service::open(config).await?;
    let actor = actor();
    let outcome = dispatch(&service, &actor, args.command).await;
    match outcome {
        Ok(code) => Ok(code),
        Err(Failure::Channel(error)) if error.is_refusal() => {
            eprintln!("error: {}", chain(&error));
            if let Some(hint) = error.hint() {
                eprintln!("\nhint: {hint}");
            }
            Ok(ExitCode::from(1))
        }
        Err(Failure::Channel(error)) => Err(error.into()),
        Err(Failure::Other(error)) => Err(error),
    }
}

/// What a command failed with: a channel error (refusals get exit code 1 and a hint) or any
/// other error.
enum Failure {
    Channel(ChannelError),
    Other(anyhow::Error),
}

impl From<ChannelError> for Failure {
    fn from(error: ChannelError) -> Self {
        Self::Channel(error)
    }
}

impl From<ops::OpError> for Failure {
    fn from(error: ops::OpError) -> Self {
        Self::Channel(error.into())
    }
}

impl From<builds::BuildsError> for Failure {
    fn from(error: builds::BuildsError) -> Self {
        Self::Channel(error.into())
    }
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Self::Other(error)
    }
}

impl From<crate::store::StoreError> for Failure {
    fn from(error: crate::store::StoreError) -> Self {
        Self::Channel(error.into())
    }
}

async fn dispatch(
    service: &Service,
    actor: &str,
    command: ChannelCommand,
) -> Result<ExitCode, Failure> {
    let state = &service.state;
    let now = crate::state::now;
    let (applied, mutation) = match command {
        ChannelCommand::List { json } => return list(service, json).await,
        ChannelCommand::Import { names, json } => return import(service, &names, json).await,
        ChannelCommand::Images { name, device, json } => {
            return images(service, &name, &device, json).await;
        }
        ChannelCommand::Create {
            name,
            auto,
            versionbase,
            fullcount,
            like,
            mutation,
        } => {
            let options = CreateOptions {
                auto,
                versionbase,
                fullcount,
                like,
            };
            let applied = apply(state, actor, mutation.dry_run, |tree| {
                ops::create(tree, &name, &options)
            })
            .await?;
            (applied, mutation)
        }
        ChannelCommand::Remove { name, mutation } => (
            apply(state, actor, mutation.dry_run, |tree| {
                ops::remove(tree, &name)
            })
            .await?,
            mutation,
        ),
        ChannelCommand::Hide { name, mutation } => (
            apply(state, actor, mutation.dry_run, |tree| {
                ops::set_hidden(tree, &name, true)
            })
            .await?,
            mutation,
        ),
        ChannelCommand::Show { name, mutation } => (
            apply(state, actor, mutation.dry_run, |tree| {
                ops::set_hidden(tree, &name, false)
            })
            .await?,
            mutation,
        ),
        ChannelCommand::Rename { old, new, mutation } => (
            apply(state, actor, mutation.dry_run, |tree| {
                ops::rename(tree, &old, &new)
            })
            .await?,
            mutation,
        ),
        ChannelCommand::Alias {
            alias,
            target,
            mutation,
        } => (
            apply(state, actor, mutation.dry_run, |tree| {
                ops::alias(tree, &alias, &target, now())
            })
            .await?,
            mutation,
        ),
        ChannelCommand::Redirect {
            name,
            target,
            device,
            mutation,
        } => {
            let device = match device {
                Some(text) => Some(text.parse::<crate::channels::model::DeviceId>().map_err(
                    |error| builds::BuildsError::UnknownDevice {
                        device: text.clone(),
                        reason: error.to_string(),
                    },
                )?),
                None => None,
            };
            (
                apply(state, actor, mutation.dry_run, |tree| {
                    ops::redirect(tree, &name, &target, device.as_ref())
                })
                .await?,
                mutation,
            )
        }
        ChannelCommand::Device(DeviceCommand::Add {
            name,
            device,
            mutation,
        }) => {
            let device = builds::resolve_device(state, &device).await?;
            (
                apply(state, actor, mutation.dry_run, |tree| {
                    ops::device_add(tree, &name, &device)
                })
                .await?,
                mutation,
            )
        }
        ChannelCommand::Device(DeviceCommand::Remove {
            name,
            device,
            mutation,
        }) => (
            apply(state, actor, mutation.dry_run, |tree| {
                ops::device_remove(tree, &name, &device)
            })
            .await?,
            mutation,
        ),
        ChannelCommand::Build(args) => {
            let mutation = args.mutation;
            (build(service, actor, args).await?, mutation)
        }
        ChannelCommand::Phase {
            name,
            device,
            build,
            percent: None,
            mutation,
        } => return phase_show(service, &name, &device, build, mutation.json).await,
        ChannelCommand::Phase {
            name,
            device,
            build,
            percent: Some(percent),
            mutation,
        } => (
            apply(state, actor, mutation.dry_run, |tree| {
                ops::phase(tree, &name, &device, build, percent)
            })
            .await?,
            mutation,
        ),
        ChannelCommand::Rollout(args) => {
            let Some(update) = rollout_update(&args)? else {
                return rollout_show(service, &args.name, args.mutation.json).await;
            };
            (
                apply(state, actor, args.mutation.dry_run, |tree| {
                    ops::set_rollout(tree, &args.name, &update)
                })
                .await?,
                args.mutation,
            )
        }
        ChannelCommand::Tag {
            name,
            device,
            build,
            tag,
            mutation,
        } => (
            apply(state, actor, mutation.dry_run, |tree| {
                ops::tag(tree, &name, &device, build, &tag, now())
            })
            .await?,
            mutation,
        ),
        ChannelCommand::Copy {
            name,
            device,
            build,
            target_channel,
            mutation,
        } => (
            apply(state, actor, mutation.dry_run, |tree| {
                ops::copy(tree, &name, &device, build, &target_channel, now())
            })
            .await?,
            mutation,
        ),
        ChannelCommand::RemoveBuild {
            name,
            device,
            build,
            mutation,
        } => (
            apply(state, actor, mutation.dry_run, |tree| {
                ops::remove_build(tree, &name, &device, build)
            })
            .await?,
            mutation,
        ),
    };
    print_applied(&applied, mutation)?;
    if applied.committed && !applied.rebuilds.is_empty() && !mutation.no_wait {
        return wait(service, actor, &applied.rebuilds).await;
    }
    Ok(ExitCode::SUCCESS)
}

async fn build(service: &Service, actor: &str, args: BuildArgs) -> Result<Applied, Failure> {
    let state = &service.state;
    let dry_run = args.mutation.dry_run;
    if let Some(file) = args.file {
        let order = ImportOrder {
            file,
            version: args.version,
            minversion: args.minversion,
            description: args.description,
            name: None,
            origin: None,
        };
        let key = service.workers.signing_key.as_deref();
        return Ok(
            builds::import(state, key, actor, &args.name, &args.device, &order, dry_run).await?,
        );
    }
    let defaults = match &args.defaults {
        Some(path) => Some(read_defaults(path)?),
        None => None,
    };
    let order = BuildOrder {
        version: args.version,
        recipe: Recipe {
            add: args.add,
            remove: args.remove,
            defaults,
            rootfs_size_mb: args.rootfs_size,
        },
        minversion: args.minversion,
        description: args.description,
    };
    Ok(builds::build(state, actor, &args.name, &args.device, &order, dry_run).await?)
}

fn read_defaults(path: &std::path::Path) -> anyhow::Result<String> {
    use anyhow::Context as _;
    let length = std::fs::metadata(path)
        .with_context(|| format!("cannot read the defaults script `{}`", path.display()))?
        .len();
    if length > MAX_DEFAULTS_FILE_BYTES {
        anyhow::bail!(
            "the defaults script `{}` is larger than {MAX_DEFAULTS_FILE_BYTES} bytes",
            path.display()
        );
    }
    std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read the defaults script `{}` as UTF-8",
            path.display()
        )
    })
}

/// Runs build workers in this process and settles until every build in `waiting_for` is ready
/// or failed, with a progress line on stderr whenever a build's stage changes.
async fn wait(
    service: &Service,
    actor: &str,
    waiting_for: &[BuildRef],
) -> Result<ExitCode, Failure> {
    let workers = service.state.config.workers.max(1);
    let shutdown = CancellationToken::new();
    let worker_task = tokio::spawn(run_workers(
        service.workers.clone(),
        workers,
        shutdown.clone(),
    ));
    let key = service.workers.signing_key.as_deref();
    let mut last: Vec<String> = Vec::new();
    let mut failed = false;
    let mut remaining: Vec<BuildRef> = waiting_for.to_vec();
    let result = loop {
        let report: SettleReport = match builds::settle(&service.state, key, actor).await {
            Ok(report) => report,
            Err(error) => break Err(Failure::from(error)),
        };
        for reference in &report.ready {
            if remaining.contains(reference) {
                eprintln!("{} is ready", describe(reference));
            }
        }
        for (reference, reason) in &report.failed {
            if remaining.contains(reference) {
                eprintln!("{} failed: {reason}", describe(reference));
                failed = true;
            }
        }
        remaining.retain(|reference| {
            report
                .waiting
                .iter()
                .any(|waiting| &waiting.build == reference)
        });
        let progress: Vec<String> = report
            .waiting
            .iter()
            .filter(|waiting| remaining.contains(&waiting.build))
            .map(|waiting| {
                let mut line = format!("{}: {}", describe(&waiting.build), waiting.stage);
                if let Some(position) = waiting.queue_position {
                    let _ = write!(line, " (queue position {position})");
                }
                line
            })
            .collect();
        for line in &progress {
            if !last.contains(line) {
                eprintln!("{line}");
            }
        }
        last = progress;
        if remaining.is_empty() {
            break Ok(if failed {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            });
        }
        tokio::time::sleep(WAIT_INTERVAL).await;
    };
    shutdown.cancel();
    let _ = worker_task.await;
    result
}

fn describe(reference: &BuildRef) -> String {
    format!(
        "`{}` `{}` build {}",
        reference.channel, reference.device, reference.number
    )
}

/// `channel import`: exit code 1 when an input failed for some device (the others still got
/// their builds), 0 otherwise; another importer running means nothing to do (0).
async fn import(service: &Service, names: &[String], json: bool) -> Result<ExitCode, Failure> {
    use crate::channels::import::{ImportResult, import};
    let key = service.workers.signing_key.as_deref();
    let report = import(&service.state, key, names)
        .await
        .map_err(|error| Failure::Other(error.into()))?;
    let failed = report
        .outcomes
        .iter()
        .any(|outcome| matches!(outcome.result, ImportResult::Failed { .. }));
    if json {
        print_json(&serde_json::to_value(&report).map_err(anyhow::Error::from)?)?;
    } else if report.locked {
        print("another importer is running; nothing done\n");
    } else {
        let mut text = String::new();
        for outcome in &report.outcomes {
            let what = match &outcome.result {
                ImportResult::Added {
                    number,
                    version_detail,
                } => format!("added build {number} ({version_detail})"),
                ImportResult::UpToDate => "up to date".to_owned(),
                ImportResult::Failed { reason } => format!("failed: {reason}"),
            };
            let _ = writeln!(text, "{} {}: {what}", outcome.channel, outcome.device);
        }
        print(&text);
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

async fn list(service: &Service, json: bool) -> Result<ExitCode, Failure> {
    let tree = service.state.store.channels().load_tree().await?;
    if json {
        let entries: Vec<serde_json::Value> = tree
            .iter()
            .map(|channel| {
                serde_json::json!({
                    "name": channel.name,
                    "kind": kind_name(channel.settings.kind),
                    "versionbase": channel.settings.versionbase,
                    "fullcount": channel.settings.fullcount,
                    "hidden": channel.hidden,
                    "alias": channel.alias,
                    "redirect": channel.redirect,
                    "devices": channel.devices.keys().collect::<Vec<_>>(),
                })
            })
            .collect();
        print_json(&serde_json::Value::Array(entries))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut text = String::new();
    for channel in &tree {
        let _ = writeln!(text, "{}", list_line(channel));
    }
    print(&text);
    Ok(ExitCode::SUCCESS)
}

fn list_line(channel: &Channel) -> String {
    let mut line = format!(
        "{}\t{}\t{} devices",
        channel.name,
        kind_name(channel.settings.kind),
        channel.devices.len()
    );
    if let Some(target) = &channel.alias {
        let _ = write!(line, "\talias of {target}");
    }
    if let Some(target) = &channel.redirect {
        let _ = write!(line, "\tredirect to {target}");
    }
    if channel.hidden {
        line.push_str("\t(hidden)");
    }
    line
}

async fn images(
    service: &Service,
    name: &str,
    device: &str,
    json: bool,
) -> Result<ExitCode, Failure> {
    let channel = existing_channel(&service.state, name).await?;
    let entry = channel
        .devices
        .get(device)
        .ok_or_else(|| ops::OpError::NoDevice {
            channel: name.to_owned(),
            device: device.to_owned(),
        })?;
    let counts = reports::counts(&service.state, name, device).await?;
    if json {
        let mut value = reports::device_with_reports(entry, &counts);
        downloads::add_downloads(&service.state, entry, &mut value).await?;
        print_json(&value)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut text = String::new();
    if let Some(target) = &entry.redirect {
        let _ = writeln!(text, "redirect to channel {target}");
    }
    for build in &entry.builds {
        let state = match &build.state {
            BuildState::Ready => "ready".to_owned(),
            BuildState::Pending { .. } => "pending".to_owned(),
            BuildState::Failed { reason } => format!("failed: {reason}"),
        };
        let _ = writeln!(
            text,
            "{}\t{state}\t{}\t{}%\t{}\t{}",
            build.number,
            build.openwrt_version,
            build.phased_percentage,
            build.version_detail_text(),
            build.description
        );
        if let Some(counts) = counts.get(&build.number) {
            let _ = writeln!(
                text,
                "\treports: {} booted, {} rolled back, {} failed before flashing ({:.1}% failed)",
                counts.booted,
                counts.rolled_back,
                counts.failed_before_flash,
                counts.failure_rate() * 100.0
            );
        }
        for image in &build.images {
            let _ = writeln!(
                text,
                "\t{}\t{}\t{}\t{} bytes\tsha256 {}",
                image.name, image.image_type, image.filesystem, image.size, image.sha256
            );
        }
    }
    print(&text);
    Ok(ExitCode::SUCCESS)
}

/// The change `channel rollout` asks for; `None` when it gives no setting (print them).
fn rollout_update(args: &RolloutArgs) -> Result<Option<ops::RolloutUpdate>, Failure> {
    let usage = |flag: &str, value: &str, expected: &str| {
        Failure::Other(anyhow::anyhow!(
            "`--{flag} {value}` is not allowed: expected {expected}"
        ))
    };
    let halt_failure_rate = match args.halt_failure_rate.as_deref() {
        None => None,
        Some("off") => Some(None),
        Some(text) => Some(Some(text.parse::<f64>().map_err(|_| {
            usage("halt-failure-rate", text, "a number from 0 to 1, or `off`")
        })?)),
    };
    let advance_steps = match args.advance.as_deref() {
        None => None,
        Some("off") => Some(None),
        Some(text) => Some(Some(
            text.split(',')
                .map(|step| step.trim().parse::<u64>())
                .collect::<Result<Vec<u64>, _>>()
                .map_err(|_| {
                    usage(
                        "advance",
                        text,
                        "comma-separated percentages such as `1,10,50,100`, or `off`",
                    )
                })?,
        )),
    };
    let soak_seconds = match args.soak.as_deref() {
        None => None,
        Some(text) => Some(
            humantime::parse_duration(text)
                .map_err(|_| usage("soak", text, "a duration such as `6h` or `2d`"))?
                .as_secs(),
        ),
    };
    let update = ops::RolloutUpdate {
        halt_failure_rate,
        halt_min_reports: args.halt_min_reports,
        advance_steps,
        min_successes: args.min_successes,
        soak_seconds,
    };
    Ok((update != ops::RolloutUpdate::default()).then_some(update))
}

async fn rollout_show(service: &Service, name: &str, json: bool) -> Result<ExitCode, Failure> {
    let channel = existing_channel(&service.state, name).await?;
    let rollout = &channel.settings.rollout;
    if json {
        print_json(&serde_json::to_value(rollout).map_err(anyhow::Error::from)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut text = String::new();
    match rollout.halt_failure_rate {
        Some(rate) => {
            let _ = writeln!(
                text,
                "halt: above a failure rate of {} once {} reports are in",
                rate.get(),
                rollout.halt_min_reports
            );
        }
        None => text.push_str("halt: off\n"),
    }
    match &rollout.advance {
        Some(advance) => {
            let steps: Vec<String> = advance.steps.iter().map(|s| format!("{s}%")).collect();
            let _ = writeln!(
                text,
                "advance: {} after {} booted reports and {} at each step",
                steps.join(" -> "),
                advance.min_successes,
                humantime::format_duration(Duration::from_secs(advance.soak_seconds))
            );
        }
        None => text.push_str("advance: off\n"),
    }
    print(&text);
    Ok(ExitCode::SUCCESS)
}

async fn phase_show(
    service: &Service,
    name: &str,
    device: &str,
    number: u64,
    json: bool,
) -> Result<ExitCode, Failure> {
    let channel = existing_channel(&service.state, name).await?;
    let build = channel
        .devices
        .get(device)
        .ok_or_else(|| ops::OpError::NoDevice {
            channel: name.to_owned(),
            device: device.to_owned(),
        })?
        .build(number)
        .ok_or_else(|| ops::OpError::NoBuild {
            channel: name.to_owned(),
            device: device.to_owned(),
            number,
        })?;
    if json {
        print_json(&serde_json::json!({
            "channel": name,
            "device": device,
            "build": number,
            "phased_percentage": build.phased_percentage,
        }))?;
    } else {
        print(&format!("{}\n", build.phased_percentage));
    }
    Ok(ExitCode::SUCCESS)
}

fn print_applied(applied: &Applied, mutation: Mutation) -> Result<(), Failure> {
    if mutation.json {
        return print_json(&serde_json::to_value(applied).map_err(anyhow::Error::from)?);
    }
    let mut text = String::new();
    if applied.changes.is_empty() {
        text.push_str("nothing to change\n");
    }
    for line in &applied.summary {
        let _ = writeln!(text, "{line}");
    }
    for reference in &applied.rebuilds {
        let _ = writeln!(text, "image job for {}", describe(reference));
    }
    print(&text);
    if mutation.dry_run {
        eprintln!("dry run: nothing was committed");
    }
    Ok(())
}

fn print_json(value: &serde_json::Value) -> Result<(), Failure> {
    let mut text = serde_json::to_string_pretty(value).map_err(anyhow::Error::from)?;
    text.push('\n');
    print(&text);
    Ok(())
}

/// Command output: stdout is data. A closed pipe (`channel list | head`) is not an error.
fn print(text: &str) {
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

fn kind_name(kind: ChannelKind) -> &'static str {
    match kind {
        ChannelKind::Manual => "manual",
        ChannelKind::Auto => "auto",
    }
}

/// `cli:<user>`, the audit log's "who" for the command line.
fn actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".to_owned());
    let user: String = user.chars().filter(|c| !c.is_control()).take(64).collect();
    format!("cli:{user}")
}

/// The error and its causes on one line, as `main` prints an error chain.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}
