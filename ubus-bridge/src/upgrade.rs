//! `start`, `status`, `cancel` and `install`: the background job seen from a call.
//!
//! Each answers at once; the work happens in the job's own process ([`crate::worker`]).
//!
//! - `start {…, channel?, percentage?}` → `{"job": "<id>", "state": "checking", "busy":
//!   false}` (with a channel, the job fetches the channel's next build); while another job works,
//!   `{"job": "<its id>", "state": "<its state>", "busy": true}` and nothing new starts.
//! - `status {job?}` → the job ([`crate::jobs::Job::status`]), or `{"state": "idle"}` when no
//!   job was ever started. A job whose process died is reported `failed` (`job_died`).
//! - `cancel {job?}` → `{"job", "state": "cancelled", "cancelled": true}`; a finished job is left
//!   as it is (`"cancelled": false`); an installing one is refused.
//! - `install {job, keep_settings?, force?}` → `{"job", "state": "installing", "command": [...],
//!   "delay": 2}`; the install process waits `delay` seconds (as `rpc-sys upgrade_start` does,
//!   so this answer reaches the caller first), verifies the image again, and runs
//!   `sysupgrade --test` and `sysupgrade [-n] [-F] <image>`.

use std::time::Duration;

use attendant::config::Settings;
use attendant::install::{InstallOptions, SYSUPGRADE, sysupgrade_flags};
use serde_json::{Value, json};

use crate::check::start_options;
use crate::context::Context;
use crate::error::BridgeError;
use crate::jobs::{
    INSTALL_COMMAND, JOB_COMMAND, Job, JobLock, JobState, JobStore, is_job_id, kill_job, new_job_id,
};
use crate::protocol::Arguments;

/// How long the install process waits before it starts, so the reply is delivered first.
pub const INSTALL_DELAY: Duration = Duration::from_secs(2);

/// `start`.
pub fn start(context: &Context, arguments: &Arguments) -> Result<Value, BridgeError> {
    let options = start_options(arguments, true)?;
    // A `percentage` without a channel is refused now, not by the job.
    let settings = Settings::load(&context.root).map_err(attendant::Error::from)?;
    crate::channel::request(&settings, &options)?;
    let store = JobStore::new(&context.root);
    let lock = store.lock()?;
    if let Some(mut job) = store.load(&lock)? {
        store.refresh(&lock, &mut job)?;
        if job.state.is_working() {
            return Ok(json!({"job": job.id, "state": job.state.as_str(), "busy": true}));
        }
    }
    let mut job = Job::new(new_job_id(), options);
    // The worker waits for the lock we hold, so it finds the job saved with its pid.
    job.pid = store.spawn(&context.launcher, &context.root, JOB_COMMAND, &job.id, true)?;
    store.save(&lock, &job)?;
    Ok(json!({"job": job.id, "state": job.state.as_str(), "busy": false}))
}

/// `status`.
pub fn status(context: &Context, arguments: &Arguments) -> Result<Value, BridgeError> {
    let wanted = job_argument(arguments, false)?;
    let store = JobStore::new(&context.root);
    let lock = store.lock()?;
    let Some(mut job) = current(&store, &lock, wanted.as_deref())? else {
        return Ok(json!({"state": "idle"}));
    };
    store.refresh(&lock, &mut job)?;
    Ok(job.status())
}

/// `cancel`.
pub fn cancel(context: &Context, arguments: &Arguments) -> Result<Value, BridgeError> {
    let wanted = job_argument(arguments, false)?;
    let store = JobStore::new(&context.root);
    let lock = store.lock()?;
    let Some(mut job) = current(&store, &lock, wanted.as_deref())? else {
        return Err(BridgeError::NoJob {
            job: wanted.unwrap_or_default(),
            current: None,
        });
    };
    store.refresh(&lock, &mut job)?;
    if job.state == JobState::Installing {
        return Err(BridgeError::NotCancellable {
            job: job.id,
            state: job.state.as_str(),
        });
    }
    if !job.state.is_working() {
        return Ok(json!({"job": job.id, "state": job.state.as_str(), "cancelled": false}));
    }
    kill_job(job.pid, &job.id);
    job.pid = 0;
    job.message = Some("cancelled".to_owned());
    job.enter(JobState::Cancelled);
    store.save(&lock, &job)?;
    Ok(json!({"job": job.id, "state": job.state.as_str(), "cancelled": true}))
}

/// `install`.
pub fn install(context: &Context, arguments: &Arguments) -> Result<Value, BridgeError> {
    let wanted = job_argument(arguments, true)?;
    let store = JobStore::new(&context.root);
    let lock = store.lock()?;
    let Some(mut job) = current(&store, &lock, wanted.as_deref())? else {
        return Err(BridgeError::NoJob {
            job: wanted.unwrap_or_default(),
            current: None,
        });
    };
    store.refresh(&lock, &mut job)?;
    if job.state != JobState::Ready {
        return Err(BridgeError::NotReady {
            job: job.id,
            state: job.state.as_str(),
        });
    }
    let settings = Settings::load(&context.root).map_err(attendant::Error::from)?;
    let keep_settings = arguments
        .bool("keep_settings")?
        .or(job.options.keep_settings)
        .unwrap_or(settings.keep_settings);
    let force = arguments.bool("force")?.unwrap_or(false);
    let mut options = InstallOptions::default();
    options.keep_settings = keep_settings;
    options.force_flash = force;
    let mut command = vec![SYSUPGRADE.to_owned()];
    command.extend(sysupgrade_flags(&options));
    command.push(job.image.clone().unwrap_or_default());
    job.install_keep_settings = Some(keep_settings);
    job.install_force = Some(force);
    job.command = Some(command.clone());
    job.error = None;
    job.enter(JobState::Installing);
    job.pid = store.spawn(
        &context.launcher,
        &context.root,
        INSTALL_COMMAND,
        &job.id,
        false,
    )?;
    store.save(&lock, &job)?;
    Ok(json!({
        "job": job.id,
        "state": job.state.as_str(),
        "command": command,
        "delay": INSTALL_DELAY.as_secs(),
    }))
}

/// The job file's job when it is the one asked for (or none was named).
fn current(
    store: &JobStore,
    lock: &JobLock,
    wanted: Option<&str>,
) -> Result<Option<Job>, BridgeError> {
    let job = store.load(lock)?;
    match (wanted, job) {
        (Some(wanted), Some(job)) if job.id != wanted => Err(BridgeError::NoJob {
            job: wanted.to_owned(),
            current: Some(job.id),
        }),
        (Some(wanted), None) => Err(BridgeError::NoJob {
            job: wanted.to_owned(),
            current: None,
        }),
        (_, job) => Ok(job),
    }
}

fn job_argument(arguments: &Arguments, required: bool) -> Result<Option<String>, BridgeError> {
    match arguments.string("job")? {
        Some(job) if is_job_id(&job) => Ok(Some(job)),
        Some(job) => Err(BridgeError::InvalidArgument {
            argument: "job",
            expected: "a job id of 16 hex digits",
            found: format!(
                "`{}`",
                attendant_proto::excerpt::excerpt(&job, attendant_proto::excerpt::MAX_VALUE_CHARS)
            ),
        }),
        None if required => Err(BridgeError::MissingArgument { argument: "job" }),
        None => Ok(None),
    }
}
