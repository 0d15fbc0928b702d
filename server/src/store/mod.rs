//! Job storage: the queue and the result cache, behind the [`Store`] trait.
//!
//! One table holds one row per request hash (`jobs`, see `migrations/`). The unique key on the
//! hash is the de-duplication: identical requests share one row, whether it is still queued,
//! running, or finished and cached. The queue protocol (claim, lease, fence, reap) is the one of
//! underway (<https://github.com/maxcountryman/underway>):
//!
//! * [`Store::claim`] takes the oldest runnable queued job in one statement (SQLite: inside
//!   `BEGIN IMMEDIATE`; PostgreSQL: `FOR UPDATE SKIP LOCKED`), sets the lease and increments the
//!   attempt number;
//! * the worker renews the lease with [`Store::heartbeat`];
//! * every later update names the attempt it belongs to and is refused
//!   ([`StoreError::LeaseLost`]) once another claim has taken the job over;
//! * [`Store::requeue_expired`] returns jobs whose lease ran out (their worker died) to the queue.
//!
//! Rows come out typed: the request hash as a [`RequestHash`], the stage as an
//! [`ImagebuilderStatus`], the stored request as a [`JobSpec`]. The JSON of a [`JobSpec`] is
//! written and read only in this module (`row.rs`, shared by both backends), so a worker or a
//! response never parses it again.
//!
//! Times are Unix milliseconds passed in by the caller, so tests control the clock (and hosts
//! sharing a PostgreSQL database need synchronised clocks).
//!
//! Two implementations: [`SqliteStore`] (the default, one file, any number of processes on one
//! host) and [`PostgresStore`] (selected by `database_url`; API nodes and workers on several
//! hosts). Both pools close a connection that a failed transaction left open instead of
//! reusing it (`reusable`). They run the same test suite (`tests` below is written against `dyn Store`), each
//! test on a fresh real database.

pub mod channel_store;
pub mod postgres;
mod reports;
mod row;
pub mod sqlite;
mod stats;
mod workers;

use std::time::Duration;

use attendant_proto::api::{BuildRequest, ImagebuilderStatus, RequestHash};
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use channel_store::ChannelStore;

pub use postgres::PostgresStore;
pub use reports::{Recorded, ReportCounts, ReportStore, RolloutStep, StoredReport};
pub use sqlite::SqliteStore;
pub use stats::{
    BuildEvent, EventCount, EventKey, EventOutcome, EventQuery, ImageDownloads, MAX_PACKAGE_ROWS,
    StatsStore,
};
pub use workers::{MAX_WORKER_NAME_LEN, WorkerRecord, WorkerStore, is_worker_name};

/// Unix time in milliseconds.
pub type UnixMillis = i64;

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database failed.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// The migrations could not be applied.
    #[error("cannot migrate the database")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The job was claimed again by someone else (our lease expired), or it is gone.
    #[error("job `{request_hash}` attempt {attempt} no longer holds the lease")]
    LeaseLost {
        /// The job.
        request_hash: RequestHash,
        /// The attempt that tried to update it.
        attempt: u32,
    },
    /// `database_url` could not be read as PostgreSQL connection options.
    #[error("`database_url` is not a usable PostgreSQL URL")]
    InvalidUrl {
        /// The parser's complaint (it never repeats the password).
        #[source]
        source: sqlx::Error,
    },
    /// The PostgreSQL server refused or failed the first connection.
    #[error("cannot connect to PostgreSQL at {target}")]
    Connect {
        /// Host and port (or socket directory), database and user; never the password.
        target: String,
        /// What failed: the I/O or server error itself where sqlx wraps one, so the cause is
        /// printed once.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// TLS with the PostgreSQL server failed: `sslmode` demands TLS and the server offers none,
    /// or the server's certificate was refused (unknown issuer, wrong host name, expired).
    #[error("cannot connect to PostgreSQL at {target} over TLS ({tls})")]
    Tls {
        /// Host and port, database and user; never the password.
        target: String,
        /// The `sslmode` and, where it is used, the `sslrootcert`.
        tls: String,
        /// rustls' or sqlx's complaint, e.g. "invalid peer certificate: UnknownIssuer" or
        /// "server does not support TLS".
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The `sslrootcert` file that `database_url` names cannot be read.
    #[error("cannot read the `sslrootcert` file `{}` named by `database_url`", path.display())]
    RootCertUnreadable {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The `sslrootcert` file holds no PEM certificate.
    #[error(
        "the `sslrootcert` file `{}` holds no PEM certificate (`-----BEGIN CERTIFICATE-----`); expected the CA certificate that signed the PostgreSQL server's certificate",
        path.display()
    )]
    RootCertNotPem {
        /// The file.
        path: std::path::PathBuf,
    },
    /// The PostgreSQL server did not answer in time.
    #[error("cannot connect to PostgreSQL at {target}: no answer within {after:?}")]
    ConnectTimeout {
        /// Host and port (or socket directory), database and user; never the password.
        target: String,
        /// How long we waited.
        after: Duration,
    },
    /// A stored value is not what this version of the server writes.
    #[error("job `{request_hash}` has an unreadable `{column}` column")]
    Corrupt {
        /// The job, as stored (it may itself be what is unreadable).
        request_hash: String,
        /// The column.
        column: &'static str,
    },
    /// Another writer changed the channel since it was read; nothing was written. Reload and
    /// run the operation again.
    #[error("channel `{channel}` was changed by someone else meanwhile")]
    ChannelConflict {
        /// The channel.
        channel: String,
    },
    /// A stored channel or device is not what this version of the server writes.
    #[error("channel `{channel}`{} has an unreadable stored document", device.as_ref().map(|d| format!(" device `{d}`")).unwrap_or_default())]
    ChannelCorrupt {
        /// The channel.
        channel: String,
        /// The device, when its row is the unreadable one.
        device: Option<String>,
    },
    /// A channel could not be encoded for storage.
    #[error("cannot encode channel `{channel}`")]
    ChannelEncode {
        /// The channel.
        channel: String,
        /// serde's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// A job's request could not be encoded for storage.
    #[error("cannot encode the request of job `{request_hash}`")]
    Encode {
        /// The job.
        request_hash: RequestHash,
        /// serde's complaint.
        #[source]
        source: serde_json::Error,
    },
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Waiting for a worker.
    Queued,
    /// Claimed by a worker (leased).
    Running,
    /// Finished; the result is cached.
    Succeeded,
    /// Failed for good; the failure is cached.
    Failed,
}

impl JobState {
    /// The database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "queued" => Some(Self::Queued),
            "running" => Some(Self::Running),
            "succeeded" => Some(Self::Succeeded),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// What the worker needs to build a job: stored as the job's `request` column (JSON), encoded
/// and decoded only here, in the store layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    /// The validated request, with `profile` replaced by the resolved profile id; echoed to
    /// clients as `request`.
    pub request: BuildRequest,
    /// Download path of the version, e.g. `releases/24.10.5` or `snapshots`.
    pub version_path: String,
    /// Target, e.g. `x86`.
    pub target: String,
    /// Subtarget, e.g. `64`.
    pub subtarget: String,
    /// The package list of the build command: normalised, in first-requester order, after ASU's
    /// per-release fixups.
    pub packages: Vec<String>,
    /// Files the worker writes into the ImageBuilder's `FILES` directory, so they are in the
    /// image (a channel build's `/etc/attendant/channel.json`). Part of the request hash only
    /// when present, so the hash of every ordinary request stays what it was.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<EmbeddedFile>,
}

/// Longest embedded file, in bytes.
pub const MAX_EMBEDDED_FILE_BYTES: usize = 64 * 1024;

/// Most embedded files of one job.
pub const MAX_EMBEDDED_FILES: usize = 16;

/// A file put into the image at `path`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbeddedFile {
    /// Absolute path inside the image, e.g. `/etc/attendant/channel.json`: `/`-separated plain
    /// names (no `.`, `..` or empty segment).
    pub path: String,
    /// The contents.
    pub contents: String,
}

impl EmbeddedFile {
    /// The path relative to the image root, if it is an absolute path of plain names of at
    /// most 256 bytes; `None` otherwise (it could escape the `FILES` directory).
    pub fn relative_path(&self) -> Option<&str> {
        let relative = self.path.strip_prefix('/')?;
        let plain = self.path.len() <= 256
            && relative.split('/').all(|segment| {
                !segment.is_empty()
                    && segment != "."
                    && segment != ".."
                    && !segment.contains(['\\', '\0'])
            });
        plain.then_some(relative)
    }
}

/// A build failure as ASU reports it in a `500` body.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Failure {
    /// The `detail` text, `Error: ...`.
    pub detail: String,
    /// stdout of the last command.
    pub stdout: String,
    /// stderr of the last command.
    pub stderr: String,
}

/// A job as read from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The request hash.
    pub request_hash: RequestHash,
    /// Life-cycle state.
    pub state: JobState,
    /// Build stage (`imagebuilder_status`) while running.
    pub stage: ImagebuilderStatus,
    /// Number of claims so far.
    pub attempt: u32,
    /// 0-based position among queued jobs (queued jobs only).
    pub queue_position: Option<u64>,
    /// When the job was enqueued.
    pub enqueued_at: UnixMillis,
    /// When the job finished (succeeded or failed).
    pub finished_at: Option<UnixMillis>,
    /// When the cached outcome expires.
    pub expires_at: Option<UnixMillis>,
    /// What to build.
    pub request: JobSpec,
    /// The result JSON (succeeded jobs).
    pub result: Option<String>,
    /// The failure (failed jobs).
    pub failure: Option<Failure>,
    /// Why the last attempt was put back in the queue, if it was.
    pub last_error: Option<String>,
    /// Who claimed the running attempt or built the finished result: a remote worker's name,
    /// or `local:<host>` for an in-process worker.
    pub worker: Option<String>,
    /// A queued job is not claimed before this time (the back-off after a failed attempt).
    pub run_after: UnixMillis,
}

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// The request hash.
    pub request_hash: RequestHash,
    /// What to build.
    pub request: JobSpec,
}

/// What [`Store::submit`] did.
#[derive(Debug, Clone)]
pub enum Submission {
    /// A live job with this hash exists (queued, running or cached); nothing was enqueued.
    Existing(Job),
    /// The job was enqueued.
    Created(Job),
    /// The queue holds more than the allowed number of jobs; nothing was enqueued.
    Overloaded {
        /// Jobs waiting.
        queue_length: u64,
    },
}

/// A job handed to a worker by [`Store::claim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The request hash.
    pub request_hash: RequestHash,
    /// This claim's attempt number; pass it to every later update.
    pub attempt: u32,
    /// What to build.
    pub request: JobSpec,
    /// When the job was enqueued.
    pub enqueued_at: UnixMillis,
}

/// What [`Store::requeue_expired`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reaped {
    /// Jobs whose lease expired and that went back to the queue.
    pub requeued: u64,
    /// Jobs whose lease expired after the last allowed attempt, now failed.
    pub failed: u64,
}

/// Counters for `/api/v1/stats/summary`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Jobs waiting.
    pub queue_length: u64,
    /// Jobs being built.
    pub running: u64,
    /// Jobs that finished successfully within the last 24 hours.
    pub builds_24h: u64,
}

/// The job store. Implementations: [`SqliteStore`] and [`PostgresStore`]. Each also keeps the
/// statistics ([`StatsStore`]), the outcome reports ([`ReportStore`]) and the remote workers
/// ([`WorkerStore`]) in the same database.
pub trait Store: StatsStore + ReportStore + WorkerStore + Send + Sync + 'static {
    /// Returns the live job with this hash, or enqueues `job` unless more than `max_pending`
    /// jobs are queued. An expired row is replaced by the new job, which queues behind every job
    /// already queued, as any new job does.
    fn submit(
        &self,
        job: NewJob,
        max_pending: u64,
        now: UnixMillis,
    ) -> BoxFuture<'_, Result<Submission, StoreError>>;

    /// The live (not expired) job with this hash.
    fn job<'a>(
        &'a self,
        request_hash: &'a RequestHash,
        now: UnixMillis,
    ) -> BoxFuture<'a, Result<Option<Job>, StoreError>>;

    /// Queue length, running jobs and recent builds.
    fn counts(&self, now: UnixMillis) -> BoxFuture<'_, Result<Counts, StoreError>>;

    /// Claims the oldest runnable queued job for `worker` until `lease_until`.
    fn claim<'a>(
        &'a self,
        worker: &'a str,
        now: UnixMillis,
        lease_until: UnixMillis,
    ) -> BoxFuture<'a, Result<Option<Claim>, StoreError>>;

    /// Extends the lease of a running attempt.
    fn heartbeat<'a>(
        &'a self,
        request_hash: &'a RequestHash,
        attempt: u32,
        lease_until: UnixMillis,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Records the build stage of a running attempt.
    fn set_stage<'a>(
        &'a self,
        request_hash: &'a RequestHash,
        attempt: u32,
        stage: &'a ImagebuilderStatus,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Marks a running attempt succeeded with `result` (JSON), cached until `expires_at`.
    fn finish<'a>(
        &'a self,
        request_hash: &'a RequestHash,
        attempt: u32,
        result: &'a str,
        now: UnixMillis,
        expires_at: UnixMillis,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Marks a running attempt failed for good, cached until `expires_at`.
    fn fail<'a>(
        &'a self,
        request_hash: &'a RequestHash,
        attempt: u32,
        failure: &'a Failure,
        now: UnixMillis,
        expires_at: UnixMillis,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Puts a running attempt back in the queue, not to be claimed before `run_after`.
    fn retry<'a>(
        &'a self,
        request_hash: &'a RequestHash,
        attempt: u32,
        reason: &'a str,
        run_after: UnixMillis,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Returns running jobs whose lease expired to the queue; those that reached
    /// `max_attempts` fail with `failure`, cached until `failure_expires_at`.
    fn requeue_expired<'a>(
        &'a self,
        now: UnixMillis,
        max_attempts: u32,
        failure: &'a Failure,
        failure_expires_at: UnixMillis,
    ) -> BoxFuture<'a, Result<Reaped, StoreError>>;

    /// The hashes of finished jobs that expired at `now`: what [`Store::delete_expired`] would
    /// delete (`gc --dry-run`).
    fn expired(&self, now: UnixMillis) -> BoxFuture<'_, Result<Vec<RequestHash>, StoreError>>;

    /// Deletes finished jobs that expired at `now` and returns their hashes (their store
    /// directories are to be deleted next).
    fn delete_expired(
        &self,
        now: UnixMillis,
    ) -> BoxFuture<'_, Result<Vec<RequestHash>, StoreError>>;

    /// Whether a row (expired or not) exists for this hash; files of such a row are referenced.
    fn is_referenced<'a>(
        &'a self,
        request_hash: &'a RequestHash,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// `(id, request_hash)` of up to `limit` rows (expired or not) whose id is above `after`, in
    /// id order: how a process learns which hashes exist without asking per request
    /// (`known_hashes`). Ids grow with every insert, so a caller that remembers the largest id
    /// it saw asks only for what is new.
    fn hashes_after(
        &self,
        after: i64,
        limit: u32,
    ) -> BoxFuture<'_, Result<Vec<(i64, RequestHash)>, StoreError>>;

    /// The channel tree in the same database.
    fn channels(&self) -> &dyn ChannelStore;
}

/// The result of a fenced update that touched `rows` rows: exactly one, or the lease is lost.
fn fenced(rows: u64, request_hash: &RequestHash, attempt: u32) -> Result<(), StoreError> {
    if rows == 1 {
        Ok(())
    } else {
        Err(StoreError::LeaseLost {
            request_hash: *request_hash,
            attempt,
        })
    }
}

/// The pools' `after_release` check (both backends): a connection comes back to the pool only
/// outside any transaction.
///
/// When a statement or `COMMIT` fails, the database may already have rolled the transaction back
/// by itself (SQLite does on `SQLITE_FULL`, a full disk); sqlx's own rollback then fails, its
/// count of open transactions stays at one, and every later `BEGIN` on that connection is
/// refused ("attempted to call begin_with at non-zero transaction depth", issue 20). A
/// connection that is still inside a transaction when it comes back is closed instead of reused,
/// and the pool opens a fresh one. A committed transaction is over by then; one dropped without
/// a commit (an error path) may still have its rollback queued and be closed although the
/// rollback would have worked: a new connection on an error path is cheaper than a ping on
/// every release.
fn reusable<C: sqlx::Connection>(
    conn: &mut C,
    _: sqlx::pool::PoolConnectionMetadata,
) -> BoxFuture<'_, Result<bool, sqlx::Error>> {
    Box::pin(async move {
        let idle = !conn.is_in_transaction();
        if !idle {
            tracing::warn!("closing a database connection left inside a failed transaction");
        }
        Ok(idle)
    })
}

/// A distinct job spec per `n` (the profile differs), for tests.
#[cfg(test)]
pub(crate) fn test_spec(n: u8) -> JobSpec {
    JobSpec {
        request: BuildRequest::new("24.10.5", "x86/64", format!("profile-{n}")),
        version_path: "releases/24.10.5".to_owned(),
        target: "x86".to_owned(),
        subtarget: "64".to_owned(),
        packages: vec![format!("package-{n}")],
        files: Vec::new(),
    }
}

#[cfg(test)]
mod tests;
