//! The detached job processes: `__job <id>` builds, downloads and verifies; `__install <id>`
//! flashes.
//!
//! `__job` runs the agent's checks and then its fetch pipeline ([`Engine::fetch`]) — or, for a
//! release channel, the agent's channel plan and the download of the published image of its
//! next build ([`attendant::prebuilt::fetch`], in state `downloading`) — and turns the
//! pipeline's events into the job file: each [`Step`] becomes a job state (`queued`,
//! `downloading`, `verifying`), notes become the job's `message`, build and download progress
//! its counters. `__install` runs the agent's install pipeline
//! ([`Engine::verify_and_install`]; for a channel job, the agent's channel fetch again, then
//! [`Engine::install`]). The bridge holds no upgrade sequence of its own.
//!
//! Writes go to the job file under its lock. A process writes only while the job file still
//! names it (same id, its pid, a working state): once `cancel` or a new `start` took the job
//! over, it exits without a word. Download progress is written at most every
//! [`PROGRESS_INTERVAL`].

use std::path::Path;
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use attendant::build::BuildProgress;
use attendant::channel::ChannelRequest;
use attendant::channel::attended::ChannelRoute;
use attendant::config::Settings;
use attendant::engine::Step;
use attendant::install::Installed;
use attendant::report::PendingReport;
use attendant::verify::Verification;
use attendant::{Engine, Event, FlashOptions};

use crate::channel;
use crate::check::plan_options;
use crate::context::Context;
use crate::error::BridgeError;
use crate::hint;
use crate::jobs::{Job, JobChannel, JobState, JobStore};
use crate::logger;
use crate::upgrade::INSTALL_DELAY;

/// Shortest time between two download-progress writes of the job file.
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(500);

/// `__job <id>`.
pub fn run_job(context: &Context, id: &str) -> ExitCode {
    logger::init();
    let store = JobStore::new(&context.root);
    let Some(mut progress) = Progress::attach(&store, id, JobState::Checking) else {
        return ExitCode::FAILURE;
    };
    let result = fetch(context, &mut progress);
    progress.finish(result)
}

/// `__install <id>`.
pub fn run_install(context: &Context, id: &str) -> ExitCode {
    logger::init();
    thread::sleep(INSTALL_DELAY);
    let store = JobStore::new(&context.root);
    let Some(mut progress) = Progress::attach(&store, id, JobState::Installing) else {
        return ExitCode::FAILURE;
    };
    let result = flash(context, &mut progress);
    progress.finish(result)
}

fn fetch(context: &Context, progress: &mut Progress<'_>) -> Result<(), BridgeError> {
    let options = progress.job.options.clone();
    let settings = Settings::load(&context.root).map_err(attendant::Error::from)?;
    let keep_settings = options.keep_settings.unwrap_or(settings.keep_settings);
    let engine = Engine::new(&context.root, settings);
    let plan = plan_options(&engine, &options)?;
    let interval = Duration::from_millis(engine.settings().poll_interval_ms);
    let image = engine.settings().image.clone();
    let path = engine.router_path(&image);

    let mut flash = FlashOptions::default();
    flash.keep_settings = keep_settings;
    if let Some(request) = channel::request(engine.settings(), &options)? {
        progress.update(|job| job.image = Some(image.display().to_string()));
        let prebuilt = options.prebuilt;
        let fetched = fetch_channel(
            &engine, &request, prebuilt, &path, interval, &flash, progress,
        )?;
        finish_fetch(progress, fetched);
        return Ok(());
    }

    log::info!("checking");
    let check = engine.check(&plan)?;
    progress.update(|job| {
        job.version = Some(check.target.version.clone());
        job.warnings = hint::findings(&check.warnings);
        job.image = Some(image.display().to_string());
    });
    let fetched = engine.fetch(&check, &path, interval, &flash, &mut |event| {
        progress.event(event);
    })?;
    finish_fetch(progress, fetched);
    Ok(())
}

/// The fetched image's verification into the job: `ready`, or `up_to_date` without one.
fn finish_fetch(progress: &mut Progress<'_>, fetched: Option<Verification>) {
    progress.update(|job| {
        match fetched {
            Some(verification) => {
                job.verification = serde_json::to_value(&verification).ok().map(without_nulls);
                job.message = Some("the image passed every check".to_owned());
                job.enter(JobState::Ready);
            }
            None => {
                job.message = Some("the firmware is up to date".to_owned());
                job.enter(JobState::UpToDate);
            }
        }
        job.pid = 0;
    });
}

/// A channel's next build: planned by the agent, then its published image downloaded and
/// verified ([`attendant::prebuilt::fetch`]), or, when the router has packages that image lacks,
/// an image built for it ([`Engine::channel_route`]). A failure once the build is known is
/// recorded as an outcome report, as `attendant upgrade --channel` records it.
fn fetch_channel(
    engine: &Engine,
    request: &ChannelRequest,
    prebuilt_only: bool,
    path: &Path,
    interval: Duration,
    flash: &FlashOptions,
    progress: &mut Progress<'_>,
) -> Result<Option<Verification>, BridgeError> {
    log::info!("planning the channel's upgrade");
    let device = engine.device()?;
    let plan = engine.channel_plan(&device, request)?;
    let Some(hop) = plan.next_hop() else {
        return Ok(None);
    };
    let mut channel = JobChannel {
        name: plan.name.clone(),
        device: plan.device.clone(),
        from_build: plan.current_build,
        to_build: hop.version,
        attended: false,
    };
    let version = hop.openwrt_version.clone();
    let fetched = engine
        .channel_route(&plan, &device, prebuilt_only)
        .map_err(BridgeError::from)
        .and_then(|route| {
            channel.attended = matches!(route, Some(ChannelRoute::Attended { .. }));
            let recorded = channel.clone();
            progress.update(|job| {
                job.version = Some(version);
                job.channel = Some(recorded);
            });
            match route {
                None => Ok(None),
                Some(ChannelRoute::Prebuilt) => {
                    progress.update(|job| job.enter(JobState::Downloading));
                    let fetched = attendant::prebuilt::fetch(
                        engine,
                        &plan,
                        &device,
                        path,
                        flash,
                        &mut |event| progress.event(event),
                    )?;
                    Ok(fetched.map(|(_, verification)| verification))
                }
                Some(ChannelRoute::Attended { check, extra }) => {
                    log::info!(
                        "this router has packages the published image lacks ({}): building build {} for it",
                        extra.join(", "),
                        hop.version
                    );
                    Ok(engine.fetch(&check, path, interval, flash, &mut |event| {
                        progress.event(event);
                    })?)
                }
            }
        });
    fetched.inspect_err(|error| record_failure(engine, &channel, &error.to_string()))
}

/// A channel job's image checked again before flashing, by the agent's own channel fetch: the
/// metadata verified afresh (a build pulled since the download is not flashed), the image on
/// disk kept when it is still the one the plan names (the state file says so) and verified as
/// at the download (SHA-256 from the signed index, signature, board and compatibility).
fn reverify_channel(
    engine: &Engine,
    job: &Job,
    channel: &JobChannel,
    path: &Path,
    flash: &FlashOptions,
    progress: &mut Progress<'_>,
) -> Result<(), BridgeError> {
    let device = engine.device()?;
    let mut request = ChannelRequest::default();
    request.channel = Some(channel.name.clone());
    request.percentage = job.options.percentage;
    let plan = engine.channel_plan(&device, &request)?;
    let now = plan.next_hop().map(|hop| hop.version);
    if now != Some(channel.to_build) {
        return Err(BridgeError::ChannelMoved {
            channel: channel.name.clone(),
            fetched: channel.to_build,
            now,
        });
    }
    if channel.attended {
        // Built for this router: checked against its build record, as any on-demand image.
        engine.verify(&device, &engine.load_build(path)?, path, flash)?;
    } else {
        attendant::prebuilt::fetch(engine, &plan, &device, path, flash, &mut |event| {
            progress.event(event);
        })?;
    }
    Ok(())
}

/// Records a channel upgrade that failed before flashing, when reports are on.
fn record_failure(engine: &Engine, channel: &JobChannel, cause: &str) {
    if !engine.settings().report {
        return;
    }
    let report = attendant::report::failure(
        &channel.name,
        &channel.device,
        channel.from_build,
        channel.to_build,
        cause,
    );
    if let Err(error) = attendant::report::record(engine.root(), report) {
        log::warn!("cannot record the outcome report: {error}");
    }
}

fn flash(context: &Context, progress: &mut Progress<'_>) -> Result<(), BridgeError> {
    let job = progress.job.clone();
    let settings = Settings::load(&context.root).map_err(attendant::Error::from)?;
    let engine = Engine::new(&context.root, settings);
    let image = job.image.clone().unwrap_or_default();
    let path = engine.router_path(Path::new(&image));
    let mut flash = FlashOptions::default();
    flash.keep_settings = job.install_keep_settings.unwrap_or(true);
    flash.force_flash = job.install_force.unwrap_or(false);
    flash.pre_install = engine.settings().pre_install.clone();

    // Recorded before flashing, as the agent does: sysupgrade does not come back, and the
    // report is resolved at the next boot against the build that then runs.
    if let Some(channel) = job.channel.as_ref().filter(|_| engine.settings().report) {
        attendant::report::record(
            engine.root(),
            PendingReport {
                channel: channel.name.clone(),
                device: channel.device.clone(),
                from_build: channel.from_build,
                to_build: channel.to_build,
                result: None,
                cause: None,
                attempts: 0,
                not_before: 0,
            },
        )
        .map_err(attendant::Error::from)?;
    }
    // A switch or a followed redirect: the configured channel becomes the one the router moves
    // to, so the next check plans from there (as `attendant upgrade --channel` does).
    if let Some(channel) = &job.channel
        && engine.settings().channel.as_deref() != Some(channel.name.as_str())
    {
        attendant::config::set_channel(engine.root(), &channel.name)
            .map_err(attendant::Error::from)?;
    }
    log::info!("verifying `{image}` again before flashing");
    let installed = match &job.channel {
        Some(channel) => {
            let reverified = reverify_channel(&engine, &job, channel, &path, &flash, progress);
            reverified
                .and_then(|()| Ok(engine.install(&path, &flash, &mut |e| progress.event(e))?))
                .inspect_err(|error| record_failure(&engine, channel, &error.to_string()))?
        }
        None => {
            engine
                .verify_and_install(&path, &flash, &mut |event| progress.event(event))?
                .1
        }
    };
    if let Installed::Rebooting { .. } = installed {
        progress.update(|job| {
            job.message = Some("sysupgrade accepted the image; the router is rebooting".into());
            job.pid = 0;
            job.enter(JobState::Rebooting);
        });
    }
    Ok(())
}

/// The job as this process last wrote it, and the way to write it.
struct Progress<'a> {
    store: &'a JobStore,
    job: Job,
    last_download_write: Option<Instant>,
}

impl<'a> Progress<'a> {
    /// The job `id`, when it is in `state` and names this process.
    fn attach(store: &'a JobStore, id: &str, state: JobState) -> Option<Self> {
        let lock = store.lock().ok()?;
        let job = store.load(&lock).ok().flatten()?;
        if job.id != id || job.state != state || job.pid != std::process::id() {
            log::info!("job `{id}` is not this process's to run; stopping");
            return None;
        }
        Some(Self {
            store,
            job,
            last_download_write: None,
        })
    }

    /// Changes the job and writes it; exits the process when the job is no longer ours.
    fn update(&mut self, change: impl FnOnce(&mut Job)) {
        let lock = match self.store.lock() {
            Ok(lock) => lock,
            Err(error) => {
                log::warn!("{error}");
                return;
            }
        };
        match self.store.load(&lock) {
            Ok(Some(job))
                if job.id == self.job.id
                    && job.pid == std::process::id()
                    && job.state.is_working() => {}
            Ok(_) => {
                log::info!("job `{}` was taken over; stopping", self.job.id);
                std::process::exit(0);
            }
            Err(error) => log::warn!("{error}"),
        }
        change(&mut self.job);
        if let Err(error) = self.store.save(&lock, &self.job) {
            log::warn!("{error}");
        }
    }

    /// Records one engine event.
    fn event(&mut self, event: &Event) {
        match event {
            Event::Note { message } => {
                log::info!("{message}");
                let message = message.clone();
                self.update(|job| job.message = Some(message));
            }
            Event::Step { step } => {
                let state = match step {
                    Step::Build => JobState::Queued,
                    Step::Download => JobState::Downloading,
                    Step::Verify => JobState::Verifying,
                };
                self.update(|job| {
                    if state != JobState::Queued {
                        job.queue_position = None;
                    }
                    job.enter(state);
                });
            }
            Event::Build(BuildProgress::Accepted { request_hash }) => {
                let hash = request_hash.clone();
                self.update(|job| job.request_hash = Some(hash));
            }
            Event::Build(BuildProgress::Queued {
                position,
                elapsed_secs,
            }) => {
                let (position, elapsed) = (*position, *elapsed_secs);
                self.update(|job| {
                    job.queue_position = position;
                    job.build_elapsed = Some(elapsed);
                    job.enter(JobState::Queued);
                });
            }
            Event::Build(BuildProgress::Building {
                stage,
                elapsed_secs,
            }) => {
                let (stage, elapsed) = (stage.to_string(), *elapsed_secs);
                self.update(|job| {
                    job.queue_position = None;
                    job.build_stage = Some(stage);
                    job.build_elapsed = Some(elapsed);
                    job.enter(JobState::Building);
                });
            }
            Event::Download { bytes, total } => {
                // The first bytes, then every interval, then the last bytes.
                let first = self.job.downloaded.is_none_or(|written| written == 0);
                let due = self
                    .last_download_write
                    .is_none_or(|last| last.elapsed() >= PROGRESS_INTERVAL);
                let done = total.is_some_and(|total| *bytes >= total);
                if first || due || done {
                    let (bytes, total) = (*bytes, *total);
                    self.update(|job| {
                        job.downloaded = Some(bytes);
                        job.total = total;
                    });
                    self.last_download_write = Some(Instant::now());
                }
            }
        }
    }

    /// Records how the job ended.
    fn finish(mut self, result: Result<(), BridgeError>) -> ExitCode {
        match result {
            // The last step already wrote the final state and let go of the job.
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                log::error!("{error}");
                let object = error.to_object();
                self.update(|job| {
                    job.error = Some(object);
                    job.pid = 0;
                    job.enter(JobState::Failed);
                });
                ExitCode::FAILURE
            }
        }
    }
}

/// `value` without its `null` members: a reply leaves out what is not known (blobmsg has no
/// null).
fn without_nulls(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => map
            .into_iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k, without_nulls(v)))
            .collect(),
        other => other,
    }
}
