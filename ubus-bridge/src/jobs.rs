//! The one background job: its file under `/var/run/attendant/`, its lock, its process.
//!
//! An rpcd exec call is killed after 30 s, so building, downloading, verifying and flashing run
//! in a detached process: this same program re-executed as `__job <id>` (or `__install <id>`)
//! in its own process group, stdin and stdout on `/dev/null`, stderr on
//! `/var/run/attendant/ubus-job.log`, started with an argument vector (never a shell). The job's
//! progress lives in `/var/run/attendant/ubus-job.json` ([`Job`]), written to a temporary file
//! and renamed, so every later plugin call (and an rpcd restart) sees it. Every read-modify-write
//! of that file holds an exclusive lock on `ubus-job.lock`, so `start`, `cancel` and the worker
//! never overwrite each other.
//!
//! A job is alive while `/proc/<pid>/cmdline` is this program's job command for this job id; a
//! job in a working state whose process is gone is turned into `failed` with the code
//! `job_died` the next time anyone looks ([`JobStore::refresh`]).

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use attendant::atomic::write_atomic;
use rustix::process::{Pid, Signal};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::context::Launcher;
use crate::error::{BridgeError, job_died};

/// The state directory (shared with the agent's `state.json`).
pub const STATE_DIR: &str = attendant_proto::wire::STATE_DIR;

/// The job file in [`STATE_DIR`].
pub const JOB_FILE: &str = "ubus-job.json";

/// The lock file in [`STATE_DIR`].
pub const LOCK_FILE: &str = "ubus-job.lock";

/// The job process's stderr in [`STATE_DIR`].
pub const LOG_FILE: &str = "ubus-job.log";

/// Largest job file read.
pub const MAX_JOB_FILE_LEN: u64 = 1024 * 1024;

/// The hidden subcommand that runs a job's build, download and verification.
pub const JOB_COMMAND: &str = "__job";

/// The hidden subcommand that flashes a ready job's image.
pub const INSTALL_COMMAND: &str = "__install";

/// How long `cancel` waits for the job to end after `SIGTERM` before sending `SIGKILL`.
pub const CANCEL_GRACE: Duration = Duration::from_secs(2);

/// Largest `/proc/<pid>/cmdline` read.
const MAX_CMDLINE_LEN: u64 = 64 * 1024;

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Running the pre-build checks.
    Checking,
    /// Waiting in the server's build queue.
    Queued,
    /// The server is building.
    Building,
    /// Downloading the image.
    Downloading,
    /// Verifying the image.
    Verifying,
    /// Verified; `install` may flash it.
    Ready,
    /// The checks found nothing to upgrade.
    UpToDate,
    /// `install` was called: waiting the delay, then `sysupgrade --test` and sysupgrade.
    Installing,
    /// sysupgrade accepted the image; the router is rebooting.
    Rebooting,
    /// The job failed; `error` says why.
    Failed,
    /// `cancel` stopped the job.
    Cancelled,
}

impl JobState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Checking => "checking",
            Self::Queued => "queued",
            Self::Building => "building",
            Self::Downloading => "downloading",
            Self::Verifying => "verifying",
            Self::Ready => "ready",
            Self::UpToDate => "up_to_date",
            Self::Installing => "installing",
            Self::Rebooting => "rebooting",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// True while a process works on the job.
    pub fn is_working(self) -> bool {
        matches!(
            self,
            Self::Checking
                | Self::Queued
                | Self::Building
                | Self::Downloading
                | Self::Verifying
                | Self::Installing
        )
    }
}

/// What `start` was asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartOptions {
    /// Target version or branch.
    pub version: Option<String>,
    /// Packages to add.
    pub add: Vec<String>,
    /// Packages to remove.
    pub remove: Vec<String>,
    /// Root filesystem type.
    pub fstype: Option<String>,
    /// Root filesystem size in MB.
    pub rootfs_size: Option<u32>,
    /// Keep the configuration (verification uses it for the compat_version rule).
    pub keep_settings: Option<bool>,
    /// Build despite downgrades or no changes.
    pub force: bool,
    /// The release channel (`None`: the configured one, if any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// The phase to use instead of the router's own, 0 to 100 (only with a channel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<u8>,
    /// With a channel: the published image even when the router has packages it lacks.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub prebuilt: bool,
}

/// The channel build a job fetched: what the outcome report names when it is flashed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobChannel {
    /// The channel, after redirects.
    pub name: String,
    /// `target/subtarget/profile`.
    pub device: String,
    /// The build the router runs in that channel (0: none).
    pub from_build: u64,
    /// The build fetched: the first hop of the winning path.
    pub to_build: u64,
    /// The image was built for this router (it has packages the published image lacks), so it
    /// is checked before flashing against its build record, as any on-demand image; else it is
    /// the channel's published image.
    #[serde(default)]
    pub attended: bool,
}

/// The job file: everything `status` reports, plus the worker's pid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// The job id: 16 lower-case hex digits.
    pub id: String,
    /// Where it is.
    pub state: JobState,
    /// The process working on it; 0 when none.
    pub pid: u32,
    /// Unix seconds when `start` was called.
    pub started_at: u64,
    /// Unix seconds when `state` was entered.
    pub state_since: u64,
    /// The options of `start`.
    pub options: StartOptions,
    /// The version being built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The server's request hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_hash: Option<String>,
    /// Jobs ahead in the server's queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_position: Option<u64>,
    /// The ImageBuilder stage (`X-Imagebuilder-Status`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_stage: Option<String>,
    /// Seconds since the build request, as of the last poll.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_elapsed: Option<u64>,
    /// Image bytes on disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downloaded: Option<u64>,
    /// The image's size, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// The image path on the router.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The verification result (`attendant::verify::Verification`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<Value>,
    /// The last progress note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Warnings from the checks, as [`crate::hint::finding`] words them.
    #[serde(default)]
    pub warnings: Vec<Value>,
    /// The sysupgrade command `install` runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// `install`'s keep-settings choice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install_keep_settings: Option<bool>,
    /// `install`'s force choice (`sysupgrade -F`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install_force: Option<bool>,
    /// Why it failed: the same object as a call's `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
    /// The channel build fetched, when the job follows a channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<JobChannel>,
}

impl Job {
    /// A new job in `checking`, not yet given a process.
    pub fn new(id: String, options: StartOptions) -> Self {
        let now = now();
        Self {
            id,
            state: JobState::Checking,
            pid: 0,
            started_at: now,
            state_since: now,
            options,
            version: None,
            request_hash: None,
            queue_position: None,
            build_stage: None,
            build_elapsed: None,
            downloaded: None,
            total: None,
            image: None,
            verification: None,
            message: None,
            warnings: Vec::new(),
            command: None,
            install_keep_settings: None,
            install_force: None,
            error: None,
            channel: None,
        }
    }

    /// Moves to `state`, restarting the state clock when it changes.
    pub fn enter(&mut self, state: JobState) {
        if self.state != state {
            self.state = state;
            self.state_since = now();
        }
    }

    /// The `status` reply: the job without its internals, plus elapsed times.
    pub fn status(&self) -> Value {
        let now = now();
        let mut reply = serde_json::Map::new();
        reply.insert("job".to_owned(), self.id.clone().into());
        reply.insert("state".to_owned(), self.state.as_str().into());
        reply.insert("started_at".to_owned(), self.started_at.into());
        reply.insert(
            "elapsed".to_owned(),
            now.saturating_sub(self.started_at).into(),
        );
        reply.insert(
            "state_elapsed".to_owned(),
            now.saturating_sub(self.state_since).into(),
        );
        let optional: [(&str, Option<Value>); 11] = [
            ("version", self.version.clone().map(Value::from)),
            ("request_hash", self.request_hash.clone().map(Value::from)),
            ("queue_position", self.queue_position.map(Value::from)),
            ("build_stage", self.build_stage.clone().map(Value::from)),
            ("build_elapsed", self.build_elapsed.map(Value::from)),
            ("downloaded", self.downloaded.map(Value::from)),
            ("total", self.total.map(Value::from)),
            ("image", self.image.clone().map(Value::from)),
            ("verification", self.verification.clone()),
            ("message", self.message.clone().map(Value::from)),
            ("command", self.command.clone().map(Value::from)),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                reply.insert(key.to_owned(), value);
            }
        }
        reply.insert("warnings".to_owned(), self.warnings.clone().into());
        if let Some(error) = &self.error {
            reply.insert("error".to_owned(), error.clone());
        }
        Value::Object(reply)
    }
}

/// The job file, its lock and its log under a root.
#[derive(Debug, Clone)]
pub struct JobStore {
    dir: PathBuf,
}

/// An exclusive hold on the job file; released when dropped.
#[derive(Debug)]
pub struct JobLock {
    _file: File,
}

impl JobStore {
    /// The store of the router whose files are under `root`.
    pub fn new(root: &Path) -> Self {
        Self {
            dir: attendant_proto::wire::under_root(root, STATE_DIR),
        }
    }

    /// The job process's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join(LOG_FILE)
    }

    /// The job file.
    pub fn job_path(&self) -> PathBuf {
        self.dir.join(JOB_FILE)
    }

    /// Takes the lock, waiting for another holder to finish.
    pub fn lock(&self) -> Result<JobLock, BridgeError> {
        self.create_dir()?;
        let path = self.dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| io("open", &path, source))?;
        file.lock().map_err(|source| io("lock", &path, source))?;
        Ok(JobLock { _file: file })
    }

    /// The job, if one was ever started. Call with the lock held.
    pub fn load(&self, _lock: &JobLock) -> Result<Option<Job>, BridgeError> {
        let path = self.job_path();
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(io("read", &path, source)),
        };
        let mut bytes = Vec::new();
        file.take(MAX_JOB_FILE_LEN.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|source| io("read", &path, source))?;
        if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > MAX_JOB_FILE_LEN {
            return Err(BridgeError::JobFile {
                path,
                message: format!("larger than {MAX_JOB_FILE_LEN} bytes"),
            });
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|error| BridgeError::JobFile {
                path,
                message: error.to_string(),
            })
    }

    /// Writes the job atomically ([`write_atomic`]).
    pub fn save(&self, _lock: &JobLock, job: &Job) -> Result<(), BridgeError> {
        self.create_dir()?;
        let path = self.job_path();
        let bytes = serde_json::to_vec(job).map_err(|error| BridgeError::JobFile {
            path: path.clone(),
            message: error.to_string(),
        })?;
        write_atomic(&path, &bytes).map_err(|source| io("write", &path, source))
    }

    /// Marks a working job whose process is gone as failed (and saves it); true when it did.
    pub fn refresh(&self, lock: &JobLock, job: &mut Job) -> Result<bool, BridgeError> {
        if !job.state.is_working() || process_runs_job(job.pid, &job.id) {
            return Ok(false);
        }
        job.error = Some(job_died(job.pid, &self.log_path()));
        job.enter(JobState::Failed);
        job.pid = 0;
        self.save(lock, job)?;
        Ok(true)
    }

    /// Starts `program args.. --root ROOT <subcommand> <id>` (with the launcher's `argv[0]`)
    /// detached: its own process group, stdin and stdout on `/dev/null`, stderr appended to the
    /// log. Returns its pid.
    pub fn spawn(
        &self,
        launcher: &Launcher,
        root: &Path,
        subcommand: &str,
        id: &str,
        truncate_log: bool,
    ) -> Result<u32, BridgeError> {
        self.create_dir()?;
        let log_path = self.log_path();
        let log = OpenOptions::new()
            .create(true)
            .append(!truncate_log)
            .write(true)
            .truncate(truncate_log)
            .open(&log_path)
            .map_err(|source| io("open", &log_path, source))?;
        let mut command = Command::new(&launcher.program);
        if let Some(arg0) = &launcher.arg0 {
            command.arg0(arg0);
        }
        let child = command
            .args(&launcher.args)
            .arg("--root")
            .arg(root)
            .arg(subcommand)
            .arg(id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .spawn()
            .map_err(|source| io("start", &launcher.program, source))?;
        // Not waited for: the job outlives this call, and init reaps it.
        Ok(child.id())
    }

    fn create_dir(&self) -> Result<(), BridgeError> {
        fs::create_dir_all(&self.dir).map_err(|source| io("create", &self.dir, source))
    }
}

/// True when `pid` is running this program's job command for `id` (not a zombie, not a pid
/// reused by something else).
pub fn process_runs_job(pid: u32, id: &str) -> bool {
    if pid == 0 {
        return false;
    }
    let mut bytes = Vec::new();
    let read = File::open(format!("/proc/{pid}/cmdline"))
        .and_then(|file| file.take(MAX_CMDLINE_LEN).read_to_end(&mut bytes));
    if read.is_err() {
        return false;
    }
    // A zombie's cmdline is empty, so it never matches.
    let args: Vec<&[u8]> = bytes.split(|b| *b == 0).collect();
    args.windows(2).any(|pair| {
        matches!(pair, [command, job] if (*command == JOB_COMMAND.as_bytes() || *command == INSTALL_COMMAND.as_bytes()) && *job == id.as_bytes())
    })
}

/// Stops the job's process group: `SIGTERM`, then `SIGKILL` after [`CANCEL_GRACE`].
pub fn kill_job(pid: u32, id: &str) {
    let Some(group) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return;
    };
    if !process_runs_job(pid, id) {
        return;
    }
    if let Err(error) = rustix::process::kill_process_group(group, Signal::TERM) {
        log::debug!("cannot signal the job's process group {pid}: {error}");
    }
    let deadline = Instant::now() + CANCEL_GRACE;
    while Instant::now() < deadline {
        if !process_runs_job(pid, id) {
            return;
        }
        thread::sleep(Duration::from_millis(50));
    }
    if let Err(error) = rustix::process::kill_process_group(group, Signal::KILL) {
        log::debug!("cannot kill the job's process group {pid}: {error}");
    }
}

/// A new job id: 16 hex digits from `/dev/urandom`, else from the clock and pid.
pub fn new_job_id() -> String {
    let mut bytes = [0_u8; 8];
    let random = File::open("/dev/urandom").and_then(|mut file| file.read_exact(&mut bytes));
    if random.is_err() {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let mixed = (nanos as u64) ^ (u64::from(std::process::id()) << 32);
        bytes = mixed.to_be_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// True for a string shaped like [`new_job_id`]'s.
pub fn is_job_id(text: &str) -> bool {
    text.len() == 16 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Unix seconds now.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn io(action: &'static str, path: &Path, source: std::io::Error) -> BridgeError {
    BridgeError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_and_loads_a_job() {
        let root = tempfile::tempdir().unwrap();
        let store = JobStore::new(root.path());
        let lock = store.lock().unwrap();
        assert_eq!(store.load(&lock).unwrap(), None);
        let mut job = Job::new("0123456789abcdef".into(), StartOptions::default());
        job.queue_position = Some(3);
        store.save(&lock, &job).unwrap();
        assert_eq!(store.load(&lock).unwrap(), Some(job));
    }

    #[test]
    fn a_working_job_without_a_process_fails() {
        let root = tempfile::tempdir().unwrap();
        let store = JobStore::new(root.path());
        let lock = store.lock().unwrap();
        let mut job = Job::new("0123456789abcdef".into(), StartOptions::default());
        job.pid = std::process::id();
        assert!(store.refresh(&lock, &mut job).unwrap());
        assert_eq!(job.state, JobState::Failed);
        assert_eq!(job.error.as_ref().unwrap()["code"], "job_died");
        let mut done = Job::new("0123456789abcdef".into(), StartOptions::default());
        done.enter(JobState::Ready);
        assert!(!store.refresh(&lock, &mut done).unwrap());
    }

    #[test]
    fn the_current_test_process_is_not_a_job() {
        assert!(!process_runs_job(std::process::id(), "0123456789abcdef"));
        assert!(!process_runs_job(0, "0123456789abcdef"));
    }

    #[test]
    fn job_ids_are_sixteen_hex_digits() {
        let id = new_job_id();
        assert!(is_job_id(&id), "{id}");
        assert!(!is_job_id("../../etc/passwd"));
        assert_ne!(new_job_id(), id);
    }

    #[test]
    fn status_leaves_out_what_is_not_known() {
        let job = Job::new("0123456789abcdef".into(), StartOptions::default());
        let status = job.status();
        assert_eq!(status["state"], "checking");
        assert!(status.get("queue_position").is_none());
        assert!(status.get("error").is_none());
        assert_eq!(status["warnings"], serde_json::json!([]));
    }
}
