//! [`Store`] on a PostgreSQL database, shared by API nodes and workers on several hosts.
//!
//! Same table, same semantics as [`super::SqliteStore`] (one test suite runs against both), in
//! PostgreSQL's dialect (<https://www.postgresql.org/docs/current/sql-select.html#SQL-FOR-UPDATE-SHARE>):
//!
//! * [`Store::claim`] is one `UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED LIMIT 1)`:
//!   two claimers never wait for each other and never get the same job;
//! * [`Store::submit`] de-duplicates with `INSERT ... ON CONFLICT DO UPDATE ... WHERE expired`,
//!   so exactly one of many concurrent identical submissions creates the job;
//! * [`Store::requeue_expired`] locks the expired rows with `SKIP LOCKED` in one statement, so
//!   reapers on several hosts neither block nor deadlock each other;
//! * every later update is fenced by `attempt`, as in SQLite.
//!
//! [`PostgresStore::open`] connects once directly before it builds the pool: the pool retries a
//! refused connection until its timeout and then reports only "timed out", while an operator
//! needs to read "connection refused" or "password authentication failed" and the host it was
//! for. Messages name host, port, database and user, never the password.
//!
//! Connections use TLS as `sslmode` and `sslrootcert` in the URL say (libpq's parameters and
//! defaults: `prefer` unless told otherwise); `postgres/tls.rs` says what is checked and reported.

mod channels;
mod tls;

use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use futures_util::future::BoxFuture;
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};

use self::tls::TlsSettings;
use attendant_proto::api::{ImagebuilderStatus, RequestHash};

use crate::store::channel_store::ChannelStore;

use super::row::{
    CLAIM_COLUMNS, ClaimRow, JOB_COLUMNS, JobRow, count, encode_spec, hashes, ids_and_hashes,
};
use super::{
    Claim, Counts, Failure, Job, JobState, NewJob, Reaped, Store, StoreError, Submission,
    UnixMillis, fenced, reusable,
};

/// How long the first connection may take before start-up fails.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections per process. Every API node and worker process opens its own pool against the
/// one server, whose `max_connections` is 100 by default: keep this well below.
const MAX_CONNECTIONS: u32 = 8;

/// `application_name` shown in `pg_stat_activity`.
const APPLICATION_NAME: &str = "attendant-server";

/// The PostgreSQL job store.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pub(super) pool: PgPool,
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://` or `postgresql://`, with libpq's
    /// `sslmode` and `sslrootcert` parameters) and applies the migrations (under PostgreSQL's
    /// advisory lock, so nodes starting together take turns).
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|source| StoreError::InvalidUrl { source })?
            .application_name(APPLICATION_NAME);
        let tls = TlsSettings::of(url, &options);
        let options = tls.apply(options);
        let target = describe(&options);
        tls.check_root_cert().await?;
        tls::install_crypto_provider();
        let first =
            match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options)).await
            {
                Ok(Ok(connection)) => connection,
                Ok(Err(error)) if tls.is_tls_failure(&error) => {
                    return Err(StoreError::Tls {
                        target,
                        tls: tls.describe(),
                        source: cause(error),
                    });
                }
                Ok(Err(error)) => {
                    return Err(StoreError::Connect {
                        target,
                        source: cause(error),
                    });
                }
                Err(_) => {
                    return Err(StoreError::ConnectTimeout {
                        target,
                        after: CONNECT_TIMEOUT,
                    });
                }
            };
        first.close().await?;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(CONNECT_TIMEOUT)
            .after_release(reusable)
            .connect_with(options)
            .await
            .map_err(|error| StoreError::Connect {
                target,
                source: cause(error),
            })?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(Self { pool })
    }
}

impl Store for PostgresStore {
    fn submit(
        &self,
        job: NewJob,
        max_pending: u64,
        now: UnixMillis,
    ) -> BoxFuture<'_, Result<Submission, StoreError>> {
        Box::pin(async move {
            let request = encode_spec(&job.request_hash, &job.request)?;
            let mut conn = self.pool.acquire().await?;
            if let Some(existing) = select_job(&mut conn, &job.request_hash).await?
                && existing.expires_at.is_none_or(|expires| expires > now)
            {
                return Ok(Submission::Existing(existing));
            }
            let queue_length = count_queued(&mut conn).await?;
            if queue_length > max_pending {
                return Ok(Submission::Overloaded { queue_length });
            }
            // Inserts, or resets an expired row (the hash stays unique, its old files are
            // replaced by the new build). The reset row takes a new id (`id = DEFAULT`, the next
            // value of the identity), so it queues behind everything submitted since, as a new
            // submission does: the id is the queue order. A live row that a concurrent
            // submission created in the meantime fails the `WHERE`: nothing is returned and that
            // row is the answer.
            let written = sqlx::query(
                "INSERT INTO jobs (request_hash, state, stage, attempt, run_after, enqueued_at, request)
                 VALUES ($1, 'queued', 'init', 0, $2, $2, $3)
                 ON CONFLICT (request_hash) DO UPDATE SET
                   id = DEFAULT, state = 'queued', stage = 'init', attempt = 0, worker = NULL,
                   lease_until = NULL, run_after = $2, enqueued_at = $2, started_at = NULL,
                   finished_at = NULL, expires_at = NULL, request = $3, result = NULL,
                   failure_detail = NULL, stdout = NULL, stderr = NULL, last_error = NULL
                 WHERE jobs.expires_at IS NOT NULL AND jobs.expires_at <= $2
                 RETURNING id",
            )
            .bind(job.request_hash.to_string())
            .bind(now)
            .bind(text(&request))
            .fetch_optional(&mut *conn)
            .await?;
            let current = select_job(&mut conn, &job.request_hash).await?;
            let Some(current) = current else {
                return Err(StoreError::Corrupt {
                    request_hash: job.request_hash.to_string(),
                    column: "request_hash",
                });
            };
            Ok(match written {
                Some(_) => Submission::Created(current),
                None => Submission::Existing(current),
            })
        })
    }

    fn job<'a>(
        &'a self,
        request_hash: &'a RequestHash,
        now: UnixMillis,
    ) -> BoxFuture<'a, Result<Option<Job>, StoreError>> {
        Box::pin(async move {
            let mut conn = self.pool.acquire().await?;
            let job = select_job(&mut conn, request_hash).await?;
            Ok(job.filter(|job| job.expires_at.is_none_or(|expires| expires > now)))
        })
    }

    fn counts(&self, now: UnixMillis) -> BoxFuture<'_, Result<Counts, StoreError>> {
        Box::pin(async move {
            let row = sqlx::query(
                "SELECT
                   (SELECT COUNT(*) FROM jobs WHERE state = 'queued'),
                   (SELECT COUNT(*) FROM jobs WHERE state = 'running'),
                   (SELECT COUNT(*) FROM jobs WHERE state = 'succeeded' AND finished_at > $1)",
            )
            .bind(now.saturating_sub(24 * 3600 * 1000))
            .fetch_one(&self.pool)
            .await?;
            Ok(Counts {
                queue_length: count(&row, 0)?,
                running: count(&row, 1)?,
                builds_24h: count(&row, 2)?,
            })
        })
    }

    fn claim<'a>(
        &'a self,
        worker: &'a str,
        now: UnixMillis,
        lease_until: UnixMillis,
    ) -> BoxFuture<'a, Result<Option<Claim>, StoreError>> {
        Box::pin(async move {
            let query = sqlx::AssertSqlSafe(format!(
                "UPDATE jobs SET state = 'running', stage = 'init', attempt = attempt + 1,
                   worker = $1, lease_until = $2, started_at = $3
                 WHERE id = (SELECT id FROM jobs WHERE state = 'queued' AND run_after <= $3
                             ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
                   AND state = 'queued'
                 RETURNING {CLAIM_COLUMNS}",
            ));
            let row = sqlx::query_as::<_, ClaimRow>(query)
                .bind(text(worker))
                .bind(lease_until)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
            row.map(Claim::try_from).transpose()
        })
    }

    fn heartbeat<'a>(
        &'a self,
        request_hash: &'a RequestHash,
        attempt: u32,
        lease_until: UnixMillis,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let done = sqlx::query(
                "UPDATE jobs SET lease_until = $3
                 WHERE request_hash = $1 AND attempt = $2 AND state = 'running'",
            )
            .bind(request_hash.to_string())
            .bind(i64::from(attempt))
            .bind(lease_until)
            .execute(&self.pool)
            .await?;
            fenced(done.rows_affected(), request_hash, attempt)
        })
    }

    fn set_stage<'a>(
        &'a self,
        request_hash: &'a RequestHash,
        attempt: u32,
        stage: &'a ImagebuilderStatus,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let done = sqlx::query(
                "UPDATE jobs SET stage = $3
                 WHERE request_hash = $1 AND attempt = $2 AND state = 'running'",
            )
            .bind(request_hash.to_string())
            .bind(i64::from(attempt))
            .bind(text(stage.as_str()))
            .execute(&self.pool)
            .await?;
            fenced(done.rows_affected(), request_hash, attempt)
        })
    }

    fn finish<'a>(
        &'a self,
        request_hash: &'a RequestHash,
        attempt: u32,
        result: &'a str,
        now: UnixMillis,
        expires_at: UnixMillis,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let done = sqlx::query(
                "UPDATE jobs SET state = 'succeeded', stage = 'done', result = $3,
                   finished_at = $4, expires_at = $5, lease_until = NULL
                 WHERE request_hash = $1 AND attempt = $2 AND state = 'running'",
            )
            .bind(request_hash.to_string())
            .bind(i64::from(attempt))
            .bind(text(result))
            .bind(now)
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
            fenced(done.rows_affected(), request_hash, attempt)
        })
    }

    fn fail<'a>(
        &'a self,
        request_hash: &'a RequestHash,
        attempt: u32,
        failure: &'a Failure,
        now: UnixMillis,
        expires_at: UnixMillis,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let done = sqlx::query(
                "UPDATE jobs SET state = 'failed', stage = 'failed', failure_detail = $3,
                   stdout = $4, stderr = $5, finished_at = $6, expires_at = $7, lease_until = NULL
                 WHERE request_hash = $1 AND attempt = $2 AND state = 'running'",
            )
            .bind(request_hash.to_string())
            .bind(i64::from(attempt))
            .bind(text(&failure.detail))
            .bind(text(&failure.stdout))
            .bind(text(&failure.stderr))
            .bind(now)
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
            fenced(done.rows_affected(), request_hash, attempt)
        })
    }

    fn retry<'a>(
        &'a self,
        request_hash: &'a RequestHash,
        attempt: u32,
        reason: &'a str,
        run_after: UnixMillis,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let done = sqlx::query(
                "UPDATE jobs SET state = 'queued', stage = 'init', worker = NULL,
                   lease_until = NULL, run_after = $3, last_error = $4
                 WHERE request_hash = $1 AND attempt = $2 AND state = 'running'",
            )
            .bind(request_hash.to_string())
            .bind(i64::from(attempt))
            .bind(run_after)
            .bind(text(reason))
            .execute(&self.pool)
            .await?;
            fenced(done.rows_affected(), request_hash, attempt)
        })
    }

    fn requeue_expired<'a>(
        &'a self,
        now: UnixMillis,
        max_attempts: u32,
        failure: &'a Failure,
        failure_expires_at: UnixMillis,
    ) -> BoxFuture<'a, Result<Reaped, StoreError>> {
        Box::pin(async move {
            // One statement: the expired rows are locked in id order, rows another reaper (or a
            // heartbeat) holds are skipped, and the two updates touch disjoint rows.
            let row = sqlx::query(
                "WITH expired AS (
                   SELECT id FROM jobs WHERE state = 'running' AND lease_until < $1
                   ORDER BY id FOR UPDATE SKIP LOCKED
                 ), failed AS (
                   UPDATE jobs SET state = 'failed', stage = 'failed', failure_detail = $3,
                     stdout = $4, stderr = $5, finished_at = $1, expires_at = $6,
                     lease_until = NULL
                   FROM expired WHERE jobs.id = expired.id AND jobs.attempt >= $2
                   RETURNING jobs.id
                 ), requeued AS (
                   UPDATE jobs SET state = 'queued', stage = 'init', worker = NULL,
                     lease_until = NULL, run_after = $1,
                     last_error = 'the worker stopped renewing its lease'
                   FROM expired WHERE jobs.id = expired.id AND jobs.attempt < $2
                   RETURNING jobs.id
                 )
                 SELECT (SELECT COUNT(*) FROM requeued), (SELECT COUNT(*) FROM failed)",
            )
            .bind(now)
            .bind(i64::from(max_attempts))
            .bind(text(&failure.detail))
            .bind(text(&failure.stdout))
            .bind(text(&failure.stderr))
            .bind(failure_expires_at)
            .fetch_one(&self.pool)
            .await?;
            Ok(Reaped {
                requeued: count(&row, 0)?,
                failed: count(&row, 1)?,
            })
        })
    }

    fn expired(&self, now: UnixMillis) -> BoxFuture<'_, Result<Vec<RequestHash>, StoreError>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT request_hash FROM jobs WHERE expires_at IS NOT NULL AND expires_at <= $1
                   AND state IN ('succeeded', 'failed')
                 ORDER BY id",
            )
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
            hashes(&rows)
        })
    }

    fn delete_expired(
        &self,
        now: UnixMillis,
    ) -> BoxFuture<'_, Result<Vec<RequestHash>, StoreError>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "DELETE FROM jobs WHERE expires_at IS NOT NULL AND expires_at <= $1
                   AND state IN ('succeeded', 'failed')
                 RETURNING request_hash",
            )
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
            hashes(&rows)
        })
    }

    fn is_referenced<'a>(
        &'a self,
        request_hash: &'a RequestHash,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let row = sqlx::query("SELECT 1 FROM jobs WHERE request_hash = $1")
                .bind(request_hash.to_string())
                .fetch_optional(&self.pool)
                .await?;
            Ok(row.is_some())
        })
    }

    fn hashes_after(
        &self,
        after: i64,
        limit: u32,
    ) -> BoxFuture<'_, Result<Vec<(i64, RequestHash)>, StoreError>> {
        Box::pin(async move {
            let rows =
                sqlx::query("SELECT id, request_hash FROM jobs WHERE id > $1 ORDER BY id LIMIT $2")
                    .bind(after)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?;
            ids_and_hashes(&rows)
        })
    }

    fn channels(&self) -> &dyn ChannelStore {
        self
    }
}

/// Where `options` point, for messages: socket or host and port, database, user; no password.
fn describe(options: &PgConnectOptions) -> String {
    let place = match options.get_socket() {
        Some(socket) => format!("socket directory `{}`", socket.display()),
        None => format!("`{}:{}`", options.get_host(), options.get_port()),
    };
    let database = options
        .get_database()
        .unwrap_or_else(|| options.get_username());
    format!(
        "{place}, database `{database}`, user `{}`",
        options.get_username()
    )
}

/// The error under sqlx's "error communicating with database" wrapper, whose text repeats it.
fn cause(error: sqlx::Error) -> Box<dyn std::error::Error + Send + Sync> {
    match error {
        sqlx::Error::Io(error) => Box::new(error),
        sqlx::Error::Database(error) => error,
        sqlx::Error::Tls(error) => error,
        other => Box::new(other),
    }
}

/// PostgreSQL `text` cannot hold NUL characters, which ImageBuilder output may contain (SQLite
/// stores them); they become U+FFFD so that a failure is still recorded.
fn text(value: &str) -> Cow<'_, str> {
    if value.contains('\0') {
        Cow::Owned(value.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(value)
    }
}

async fn select_job(
    conn: &mut PgConnection,
    request_hash: &RequestHash,
) -> Result<Option<Job>, StoreError> {
    let query = sqlx::AssertSqlSafe(format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE request_hash = $1"
    ));
    let Some(row) = sqlx::query_as::<_, JobRow>(query)
        .bind(request_hash.to_string())
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(None);
    };
    let id = row.id;
    let mut job = Job::try_from(row)?;
    if job.state == JobState::Queued {
        let ahead = sqlx::query("SELECT COUNT(*) FROM jobs WHERE state = 'queued' AND id < $1")
            .bind(id)
            .fetch_one(&mut *conn)
            .await?;
        job.queue_position = Some(count(&ahead, 0)?);
    }
    Ok(Some(job))
}

async fn count_queued(conn: &mut PgConnection) -> Result<u64, StoreError> {
    let row = sqlx::query("SELECT COUNT(*) FROM jobs WHERE state = 'queued'")
        .fetch_one(&mut *conn)
        .await?;
    count(&row, 0)
}
