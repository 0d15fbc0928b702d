//! Remote worker identities: the `workers` table, see `migrations/*/0006_workers.sql`.
//!
//! A remote worker (`attendant-server worker --server URL`) proves who it is with a bearer
//! token that `attendant-server workers add` printed once; the table keeps only the token's
//! SHA-256, looked up by equality (the presented token is hashed first, so the lookup's timing
//! says nothing about the token's bytes). A revoked worker keeps its row, so its name is never
//! handed out again and its build count stays in `workers list`. The SQL is the same on both
//! backends, so one implementation serves both ([`impl_worker_store`]).

use futures_util::future::BoxFuture;
use sqlx::Row;

use super::{StoreError, UnixMillis};

/// Longest worker name, in bytes.
pub const MAX_WORKER_NAME_LEN: usize = 64;

/// One registered worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerRecord {
    /// Its name: what `jobs.worker` records for the builds it claims.
    pub name: String,
    /// When it was added.
    pub created_at: UnixMillis,
    /// Its last claim, heartbeat or upload.
    pub last_heartbeat: Option<UnixMillis>,
    /// Results it uploaded that were published.
    pub builds: u64,
    /// When it was revoked, if it was.
    pub revoked_at: Option<UnixMillis>,
}

/// Whether `name` may name a worker: 1 to [`MAX_WORKER_NAME_LEN`] ASCII letters, digits, `-`,
/// `_` and `.`, starting with a letter or digit. No `:`, so no remote worker can be mistaken for
/// an in-process one (`local:<host>`).
pub fn is_worker_name(name: &str) -> bool {
    name.len() <= MAX_WORKER_NAME_LEN
        && name
            .bytes()
            .next()
            .is_some_and(|first| first.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'))
}

/// Remote worker storage; every [`Store`](super::Store) is one.
pub trait WorkerStore: Send + Sync {
    /// Registers a worker with the SHA-256 (lowercase hex) of its token; `false` when the name
    /// is taken (revoked names included), and nothing is written then.
    fn add_worker<'a>(
        &'a self,
        name: &'a str,
        token_sha256: &'a str,
        now: UnixMillis,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Every registered worker, by name.
    fn workers(&self) -> BoxFuture<'_, Result<Vec<WorkerRecord>, StoreError>>;

    /// Revokes a worker; `false` when no worker has that name or it was revoked already.
    fn revoke_worker<'a>(
        &'a self,
        name: &'a str,
        now: UnixMillis,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// The worker whose token hashes to `token_sha256`, revoked or not.
    fn worker_by_token<'a>(
        &'a self,
        token_sha256: &'a str,
    ) -> BoxFuture<'a, Result<Option<WorkerRecord>, StoreError>>;

    /// Records that the worker was heard from at `now`.
    fn touch_worker<'a>(
        &'a self,
        name: &'a str,
        now: UnixMillis,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Counts one published build of the worker.
    fn count_worker_build<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), StoreError>>;
}

const WORKER_COLUMNS: &str = "name, created_at, last_heartbeat, builds, revoked_at";

fn record_of<R>(row: &R) -> Result<WorkerRecord, StoreError>
where
    R: Row,
    usize: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let builds: i64 = row.try_get(3)?;
    Ok(WorkerRecord {
        name: row.try_get(0)?,
        created_at: row.try_get(1)?,
        last_heartbeat: row.try_get(2)?,
        builds: u64::try_from(builds).unwrap_or(0),
        revoked_at: row.try_get(4)?,
    })
}

/// Implements [`WorkerStore`] for a store with a `pool` field: the SQL is the same on SQLite and
/// PostgreSQL, only the pool and row types differ.
macro_rules! impl_worker_store {
    ($store:ty) => {
        impl WorkerStore for $store {
            fn add_worker<'a>(
                &'a self,
                name: &'a str,
                token_sha256: &'a str,
                now: UnixMillis,
            ) -> BoxFuture<'a, Result<bool, StoreError>> {
                Box::pin(async move {
                    let done = sqlx::query(
                        "INSERT INTO workers (name, token_sha256, created_at) VALUES ($1, $2, $3)
                         ON CONFLICT (name) DO NOTHING",
                    )
                    .bind(name)
                    .bind(token_sha256)
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                    Ok(done.rows_affected() == 1)
                })
            }

            fn workers(&self) -> BoxFuture<'_, Result<Vec<WorkerRecord>, StoreError>> {
                Box::pin(async move {
                    let query = sqlx::AssertSqlSafe(format!(
                        "SELECT {WORKER_COLUMNS} FROM workers ORDER BY name"
                    ));
                    let rows = sqlx::query(query).fetch_all(&self.pool).await?;
                    rows.iter().map(record_of).collect()
                })
            }

            fn revoke_worker<'a>(
                &'a self,
                name: &'a str,
                now: UnixMillis,
            ) -> BoxFuture<'a, Result<bool, StoreError>> {
                Box::pin(async move {
                    let done = sqlx::query(
                        "UPDATE workers SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL",
                    )
                    .bind(name)
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                    Ok(done.rows_affected() == 1)
                })
            }

            fn worker_by_token<'a>(
                &'a self,
                token_sha256: &'a str,
            ) -> BoxFuture<'a, Result<Option<WorkerRecord>, StoreError>> {
                Box::pin(async move {
                    let query = sqlx::AssertSqlSafe(format!(
                        "SELECT {WORKER_COLUMNS} FROM workers WHERE token_sha256 = $1"
                    ));
                    let row = sqlx::query(query)
                        .bind(token_sha256)
                        .fetch_optional(&self.pool)
                        .await?;
                    row.as_ref().map(record_of).transpose()
                })
            }

            fn touch_worker<'a>(
                &'a self,
                name: &'a str,
                now: UnixMillis,
            ) -> BoxFuture<'a, Result<(), StoreError>> {
                Box::pin(async move {
                    sqlx::query("UPDATE workers SET last_heartbeat = $2 WHERE name = $1")
                        .bind(name)
                        .bind(now)
                        .execute(&self.pool)
                        .await?;
                    Ok(())
                })
            }

            fn count_worker_build<'a>(
                &'a self,
                name: &'a str,
            ) -> BoxFuture<'a, Result<(), StoreError>> {
                Box::pin(async move {
                    sqlx::query("UPDATE workers SET builds = builds + 1 WHERE name = $1")
                        .bind(name)
                        .execute(&self.pool)
                        .await?;
                    Ok(())
                })
            }
        }
    };
}

impl_worker_store!(super::SqliteStore);
impl_worker_store!(super::PostgresStore);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_names_are_plain_and_never_local() {
        for good in ["builder-1", "a", "eu.west_2"] {
            assert!(is_worker_name(good), "{good}");
        }
        let long = "x".repeat(MAX_WORKER_NAME_LEN + 1);
        for bad in [
            "",
            "local:host",
            "-lead",
            ".hidden",
            "a b",
            "ü",
            long.as_str(),
        ] {
            assert!(!is_worker_name(bad), "{bad}");
        }
    }
}
