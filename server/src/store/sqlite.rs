//! [`Store`] on an SQLite file in WAL mode.
//!
//! SQLite has one writer at a time, so the claim runs inside `BEGIN IMMEDIATE` (it takes the
//! write lock up front rather than upgrading a read lock, which could fail with `SQLITE_BUSY`
//! half-way) and is a single `UPDATE ... WHERE id = (SELECT ... LIMIT 1) RETURNING` statement
//! (<https://www.sqlite.org/lang_returning.html>). Readers never block the writer in WAL mode;
//! `busy_timeout` makes
//! writers queue for each other instead of failing. Works for any number of processes on one
//! host; several hosts need the PostgreSQL store.

mod channels;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use futures_util::future::BoxFuture;
use sqlx::SqliteConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use attendant_proto::api::{ImagebuilderStatus, RequestHash};

use crate::store::channel_store::ChannelStore;

use super::row::{
    CLAIM_COLUMNS, ClaimRow, JOB_COLUMNS, JobRow, count, encode_spec, hashes, ids_and_hashes,
};
use super::{
    Claim, Counts, Failure, Job, JobState, NewJob, Reaped, Store, StoreError, Submission,
    UnixMillis, fenced, reusable,
};

/// How long a writer waits for the write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections in the pool (readers run in parallel under WAL).
const MAX_CONNECTIONS: u32 = 16;

/// The SQLite job store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(super) pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file and applies the migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .after_release(reusable)
            .connect_with(options)
            .await?;
        migrate_locked(&pool, path).await?;
        Ok(Self { pool })
    }

    /// Opens a store from a `sqlite:` URL (used by tests and `database_url`-style settings).
    pub async fn open_url(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .after_release(reusable)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(Self { pool })
    }
}

/// Applies the migrations while holding an exclusive `flock` on `<database>.migrate-lock`.
/// sqlx takes no lock on SQLite, so a `serve` and a `worker` started together on a new database
/// would both apply the first migration and one of them would fail (`table jobs already
/// exists`); the second one to get the lock finds everything applied.
async fn migrate_locked(pool: &SqlitePool, path: &Path) -> Result<(), StoreError> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".migrate-lock");
    let lock = tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)?;
        Ok(file)
    })
    .await
    .map_err(|join| sqlx::Error::Io(std::io::Error::other(join)))?
    .map_err(sqlx::Error::Io)?;
    let migrated = sqlx::migrate!("./migrations/sqlite").run(pool).await;
    drop(lock);
    Ok(migrated?)
}

impl Store for SqliteStore {
    fn submit(
        &self,
        job: NewJob,
        max_pending: u64,
        now: UnixMillis,
    ) -> BoxFuture<'_, Result<Submission, StoreError>> {
        Box::pin(async move {
            let request = encode_spec(&job.request_hash, &job.request)?;
            let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
            if let Some(existing) = select_job(&mut tx, &job.request_hash).await?
                && existing.expires_at.is_none_or(|expires| expires > now)
            {
                tx.commit().await?;
                return Ok(Submission::Existing(existing));
            }
            let queue_length = count_queued(&mut tx).await?;
            if queue_length > max_pending {
                tx.commit().await?;
                return Ok(Submission::Overloaded { queue_length });
            }
            // An expired row that the collector has not deleted yet is replaced, not reset in
            // place: the new row's AUTOINCREMENT id is larger than any before it, so the job
            // queues behind everything submitted since, as a new submission does (the id is the
            // queue order). Its old files are replaced by the new build.
            sqlx::query(
                "DELETE FROM jobs WHERE request_hash = ?1
                   AND expires_at IS NOT NULL AND expires_at <= ?2",
            )
            .bind(job.request_hash.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO jobs (request_hash, state, stage, attempt, run_after, enqueued_at, request)
                 VALUES (?1, 'queued', 'init', 0, ?2, ?2, ?3)",
            )
            .bind(job.request_hash.to_string())
            .bind(now)
            .bind(&request)
            .execute(&mut *tx)
            .await?;
            let created = select_job(&mut tx, &job.request_hash).await?;
            tx.commit().await?;
            created
                .map(Submission::Created)
                .ok_or_else(|| StoreError::Corrupt {
                    request_hash: job.request_hash.to_string(),
                    column: "request_hash",
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
                   (SELECT COUNT(*) FROM jobs WHERE state = 'succeeded' AND finished_at > ?1)",
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
            let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
            let query = sqlx::AssertSqlSafe(format!(
                "UPDATE jobs SET state = 'running', stage = 'init', attempt = attempt + 1,
                   worker = ?1, lease_until = ?2, started_at = ?3
                 WHERE id = (SELECT id FROM jobs WHERE state = 'queued' AND run_after <= ?3
                             ORDER BY id LIMIT 1)
                 RETURNING {CLAIM_COLUMNS}",
            ));
            let row = sqlx::query_as::<_, ClaimRow>(query)
                .bind(worker)
                .bind(lease_until)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
            tx.commit().await?;
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
                "UPDATE jobs SET lease_until = ?3
                 WHERE request_hash = ?1 AND attempt = ?2 AND state = 'running'",
            )
            .bind(request_hash.to_string())
            .bind(attempt)
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
                "UPDATE jobs SET stage = ?3
                 WHERE request_hash = ?1 AND attempt = ?2 AND state = 'running'",
            )
            .bind(request_hash.to_string())
            .bind(attempt)
            .bind(stage.as_str())
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
                "UPDATE jobs SET state = 'succeeded', stage = 'done', result = ?3,
                   finished_at = ?4, expires_at = ?5, lease_until = NULL
                 WHERE request_hash = ?1 AND attempt = ?2 AND state = 'running'",
            )
            .bind(request_hash.to_string())
            .bind(attempt)
            .bind(result)
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
                "UPDATE jobs SET state = 'failed', stage = 'failed', failure_detail = ?3,
                   stdout = ?4, stderr = ?5, finished_at = ?6, expires_at = ?7, lease_until = NULL
                 WHERE request_hash = ?1 AND attempt = ?2 AND state = 'running'",
            )
            .bind(request_hash.to_string())
            .bind(attempt)
            .bind(&failure.detail)
            .bind(&failure.stdout)
            .bind(&failure.stderr)
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
                   lease_until = NULL, run_after = ?3, last_error = ?4
                 WHERE request_hash = ?1 AND attempt = ?2 AND state = 'running'",
            )
            .bind(request_hash.to_string())
            .bind(attempt)
            .bind(run_after)
            .bind(reason)
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
            let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
            let failed = sqlx::query(
                "UPDATE jobs SET state = 'failed', stage = 'failed', failure_detail = ?3,
                   stdout = ?4, stderr = ?5, finished_at = ?1, expires_at = ?6, lease_until = NULL
                 WHERE state = 'running' AND lease_until < ?1 AND attempt >= ?2",
            )
            .bind(now)
            .bind(max_attempts)
            .bind(&failure.detail)
            .bind(&failure.stdout)
            .bind(&failure.stderr)
            .bind(failure_expires_at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let requeued = sqlx::query(
                "UPDATE jobs SET state = 'queued', stage = 'init', worker = NULL,
                   lease_until = NULL, run_after = ?1,
                   last_error = 'the worker stopped renewing its lease'
                 WHERE state = 'running' AND lease_until < ?1",
            )
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            Ok(Reaped { requeued, failed })
        })
    }

    fn expired(&self, now: UnixMillis) -> BoxFuture<'_, Result<Vec<RequestHash>, StoreError>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT request_hash FROM jobs WHERE expires_at IS NOT NULL AND expires_at <= ?1
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
                "DELETE FROM jobs WHERE expires_at IS NOT NULL AND expires_at <= ?1
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
            let row = sqlx::query("SELECT 1 FROM jobs WHERE request_hash = ?1")
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
                sqlx::query("SELECT id, request_hash FROM jobs WHERE id > ?1 ORDER BY id LIMIT ?2")
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

async fn select_job(
    conn: &mut SqliteConnection,
    request_hash: &RequestHash,
) -> Result<Option<Job>, StoreError> {
    let query = sqlx::AssertSqlSafe(format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE request_hash = ?1"
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
        let ahead = sqlx::query("SELECT COUNT(*) FROM jobs WHERE state = 'queued' AND id < ?1")
            .bind(id)
            .fetch_one(&mut *conn)
            .await?;
        job.queue_position = Some(count(&ahead, 0)?);
    }
    Ok(Some(job))
}

async fn count_queued(conn: &mut SqliteConnection) -> Result<u64, StoreError> {
    let row = sqlx::query("SELECT COUNT(*) FROM jobs WHERE state = 'queued'")
        .fetch_one(&mut *conn)
        .await?;
    count(&row, 0)
}
