//! Statistics storage: build request outcomes (`build_events`) and image download counts
//! (`image_downloads`), see `migrations/*/0003_stats.sql` and `0007_event_counts.sql`.
//!
//! A row of `build_events` stands for `count` identical events: recording a finished build is
//! one `INSERT` of a row counting 1, recording a batch of counted request events is one
//! `INSERT` per kind of event, whatever its count. Reading sums `count` with `GROUP BY` in the
//! database, so every answer is in events, not rows, and the rows never travel to the server
//! except for the package lists of `top-packages` (bounded by [`MAX_PACKAGE_ROWS`]) and the
//! failures of the error log. The SQL is the same on both backends (`$n` parameters, integer
//! division for time buckets, `substr`), so one implementation serves both ([`impl_stats_store`]).

use futures_util::future::BoxFuture;
use sqlx::Row;

use super::{StoreError, UnixMillis};

/// Most success rows whose package lists one `top-packages` query reads (newest first; a row
/// counts as many builds as its `count`).
pub const MAX_PACKAGE_ROWS: i64 = 200_000;

/// What happened to a build request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventOutcome {
    /// A valid build request arrived.
    Request,
    /// The request was answered from a finished (cached) build.
    CacheHit,
    /// A build finished successfully.
    Success,
    /// A build failed for good.
    Failure,
}

impl EventOutcome {
    /// The database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Request => "request",
            Self::CacheHit => "cache_hit",
            Self::Success => "success",
            Self::Failure => "failure",
        }
    }

    /// The outcome of its database spelling.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Request, Self::CacheHit, Self::Success, Self::Failure]
            .into_iter()
            .find(|outcome| outcome.as_str() == text)
    }
}

/// One build request outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildEvent {
    /// When it happened.
    pub at: UnixMillis,
    /// What happened.
    pub outcome: EventOutcome,
    /// Requested version, e.g. `24.10.5`.
    pub version: String,
    /// `target/subtarget`.
    pub target: String,
    /// The profile id.
    pub profile: String,
    /// Who asked, e.g. `luci/25.168.50434~d6b13f6`, `auc/0.3.2` or `unknown/0`.
    pub client: String,
    /// Successes: the requested packages.
    pub packages: Vec<String>,
    /// Failures: the error, anonymised.
    pub detail: Option<String>,
    /// Successes: how long the build took.
    pub duration_ms: Option<i64>,
}

/// The column [`StatsStore::event_counts`] groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKey {
    /// The outcome (`request`, `cache_hit`, ...).
    Outcome,
    /// The requested version.
    Version,
    /// `target/subtarget`.
    Target,
    /// The profile.
    Profile,
    /// The client.
    Client,
}

impl EventKey {
    fn column(self) -> &'static str {
        match self {
            Self::Outcome => "outcome",
            Self::Version => "version",
            Self::Target => "target",
            Self::Profile => "profile",
            Self::Client => "client",
        }
    }
}

/// Which events [`StatsStore::event_counts`] counts and how it groups them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventQuery {
    /// Events at or after this time; buckets start here.
    pub since: UnixMillis,
    /// Bucket width; `i64::MAX` puts everything in bucket 0.
    pub bucket_ms: i64,
    /// The column to group by within a bucket.
    pub key: EventKey,
    /// Only this outcome, or all.
    pub outcome: Option<EventOutcome>,
    /// Only versions starting with this (empty: all).
    pub version_prefix: String,
}

/// Events in one bucket with one key value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventCount {
    /// 0-based bucket index from [`EventQuery::since`].
    pub bucket: i64,
    /// The grouped column's value.
    pub key: String,
    /// How many events.
    pub count: u64,
}

/// Downloads of one image.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct ImageDownloads {
    /// The build's request hash.
    pub request_hash: String,
    /// The image file name.
    pub image: String,
    /// Whole-file downloads.
    pub count: u64,
}

/// Statistics storage; every [`Store`](super::Store) is one.
pub trait StatsStore: Send + Sync {
    /// Records one outcome.
    fn record_event<'a>(&'a self, event: &'a BuildEvent) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Records many outcomes in one transaction: one commit (on SQLite, one write-lock turn)
    /// for the whole batch, and one row per entry standing for its count of identical events
    /// (a count of 0 records nothing).
    fn record_events<'a>(
        &'a self,
        events: &'a [(BuildEvent, u64)],
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Event counts per bucket and key value.
    fn event_counts(&self, query: EventQuery)
    -> BoxFuture<'_, Result<Vec<EventCount>, StoreError>>;

    /// The package lists of successful builds since `since` whose version starts with
    /// `version_prefix`, each with how many builds asked for it, newest first, at most
    /// [`MAX_PACKAGE_ROWS`] lists.
    fn success_packages<'a>(
        &'a self,
        since: UnixMillis,
        version_prefix: &'a str,
    ) -> BoxFuture<'a, Result<Vec<PackageListCount>, StoreError>>;

    /// The `limit` most recent failures, newest first (a row counting several identical
    /// failures gives as many).
    fn recent_failures(&self, limit: u32) -> BoxFuture<'_, Result<Vec<BuildEvent>, StoreError>>;

    /// Adds download counts (one statement per image).
    fn add_downloads<'a>(
        &'a self,
        downloads: &'a [ImageDownloads],
        now: UnixMillis,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// The most downloaded images, of one build or of all, at most `limit`.
    fn downloads<'a>(
        &'a self,
        request_hash: Option<&'a str>,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<ImageDownloads>, StoreError>>;

    /// Deletes events and download counts older than `before`; returns how many events and
    /// download rows went.
    fn prune_stats(&self, before: UnixMillis) -> BoxFuture<'_, Result<u64, StoreError>>;
}

/// A package list of successful builds and how many builds asked for it.
pub(crate) type PackageListCount = (Vec<String>, u64);

/// Implements [`StatsStore`] for a store with a `pool` field: the SQL is the same on SQLite and
/// PostgreSQL, only the pool and row types differ.
macro_rules! impl_stats_store {
    ($store:ty) => {
        impl StatsStore for $store {
            fn record_event<'a>(
                &'a self,
                event: &'a BuildEvent,
            ) -> BoxFuture<'a, Result<(), StoreError>> {
                Box::pin(async move {
                    sqlx::query(
                        "INSERT INTO build_events
                           (at, outcome, version, target, profile, client, packages, detail,
                            duration_ms)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    )
                    .bind(event.at)
                    .bind(event.outcome.as_str())
                    .bind(&event.version)
                    .bind(&event.target)
                    .bind(&event.profile)
                    .bind(&event.client)
                    .bind(event.packages.join(" "))
                    .bind(&event.detail)
                    .bind(event.duration_ms)
                    .execute(&self.pool)
                    .await?;
                    Ok(())
                })
            }

            fn record_events<'a>(
                &'a self,
                events: &'a [(BuildEvent, u64)],
            ) -> BoxFuture<'a, Result<(), StoreError>> {
                Box::pin(async move {
                    let mut transaction = self.pool.begin().await?;
                    for (event, count) in events.iter().filter(|(_, count)| *count > 0) {
                        // A plain insert, never an update of an earlier row: two `serve`
                        // processes flushing the same kind at once each add their own row, and
                        // the sums add them up.
                        sqlx::query(
                            "INSERT INTO build_events
                               (at, outcome, version, target, profile, client, packages, detail,
                                duration_ms, count)
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                        )
                        .bind(event.at)
                        .bind(event.outcome.as_str())
                        .bind(&event.version)
                        .bind(&event.target)
                        .bind(&event.profile)
                        .bind(&event.client)
                        .bind(event.packages.join(" "))
                        .bind(&event.detail)
                        .bind(event.duration_ms)
                        .bind(i64::try_from(*count).unwrap_or(i64::MAX))
                        .execute(&mut *transaction)
                        .await?;
                    }
                    transaction.commit().await?;
                    Ok(())
                })
            }

            fn event_counts(
                &self,
                query: EventQuery,
            ) -> BoxFuture<'_, Result<Vec<EventCount>, StoreError>> {
                Box::pin(async move {
                    // The column and the conditions are fixed text chosen here, never input.
                    // An unused filter stays as `$n = ''` (true, and the parameter is still
                    // there to bind) rather than `$n = '' OR ...`, which would keep the
                    // planner from the `(outcome, at)` index.
                    let column = query.key.column();
                    let outcome = if query.outcome.is_some() {
                        "outcome = $3"
                    } else {
                        "$3 = ''"
                    };
                    let version = if query.version_prefix.is_empty() {
                        "$4 = ''"
                    } else {
                        "substr(version, 1, length($4)) = $4"
                    };
                    let sql = sqlx::AssertSqlSafe(format!(
                        "SELECT (at - $1) / $2, {column}, CAST(SUM(count) AS BIGINT)
                           FROM build_events
                          WHERE at >= $1 AND {outcome} AND {version}
                          GROUP BY 1, 2 ORDER BY 1, 2"
                    ));
                    let rows = sqlx::query(sql)
                        .bind(query.since)
                        .bind(query.bucket_ms.max(1))
                        .bind(query.outcome.map_or("", EventOutcome::as_str))
                        .bind(&query.version_prefix)
                        .fetch_all(&self.pool)
                        .await?;
                    rows.iter()
                        .map(|row| {
                            Ok(EventCount {
                                bucket: row.try_get(0)?,
                                key: row.try_get(1)?,
                                count: super::row::count(row, 2)?,
                            })
                        })
                        .collect()
                })
            }

            fn success_packages<'a>(
                &'a self,
                since: UnixMillis,
                version_prefix: &'a str,
            ) -> BoxFuture<'a, Result<Vec<PackageListCount>, StoreError>> {
                Box::pin(async move {
                    let rows = sqlx::query(
                        "SELECT packages, count FROM build_events
                          WHERE at >= $1 AND outcome = 'success'
                            AND substr(version, 1, length($2)) = $2
                          ORDER BY at DESC LIMIT $3",
                    )
                    .bind(since)
                    .bind(version_prefix)
                    .bind(MAX_PACKAGE_ROWS)
                    .fetch_all(&self.pool)
                    .await?;
                    rows.iter()
                        .map(|row| {
                            let packages: String = row.try_get(0)?;
                            Ok((
                                packages.split_whitespace().map(str::to_owned).collect(),
                                super::row::count(row, 1)?,
                            ))
                        })
                        .collect()
                })
            }

            fn recent_failures(
                &self,
                limit: u32,
            ) -> BoxFuture<'_, Result<Vec<BuildEvent>, StoreError>> {
                Box::pin(async move {
                    // Every row is at least one failure, so `limit` rows are enough.
                    let rows = sqlx::query(
                        "SELECT at, version, target, profile, client, detail, count
                           FROM build_events
                          WHERE outcome = 'failure' ORDER BY at DESC, id DESC LIMIT $1",
                    )
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?;
                    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
                    let mut failures = Vec::new();
                    for row in &rows {
                        let failure = BuildEvent {
                            at: row.try_get(0)?,
                            outcome: EventOutcome::Failure,
                            version: row.try_get(1)?,
                            target: row.try_get(2)?,
                            profile: row.try_get(3)?,
                            client: row.try_get(4)?,
                            packages: Vec::new(),
                            detail: row.try_get(5)?,
                            duration_ms: None,
                        };
                        let copies = usize::try_from(super::row::count(row, 6)?)
                            .unwrap_or(usize::MAX)
                            .min(limit.saturating_sub(failures.len()));
                        failures.extend(std::iter::repeat_n(failure, copies));
                        if failures.len() >= limit {
                            break;
                        }
                    }
                    Ok(failures)
                })
            }

            fn add_downloads<'a>(
                &'a self,
                downloads: &'a [ImageDownloads],
                now: UnixMillis,
            ) -> BoxFuture<'a, Result<(), StoreError>> {
                Box::pin(async move {
                    let mut tx = self.pool.begin().await?;
                    for download in downloads {
                        sqlx::query(
                            "INSERT INTO image_downloads (request_hash, image, count, last_at)
                             VALUES ($1, $2, $3, $4)
                             ON CONFLICT (request_hash, image) DO UPDATE
                               SET count = image_downloads.count + excluded.count,
                                   last_at = excluded.last_at",
                        )
                        .bind(&download.request_hash)
                        .bind(&download.image)
                        .bind(i64::try_from(download.count).unwrap_or(i64::MAX))
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    }
                    tx.commit().await?;
                    Ok(())
                })
            }

            fn downloads<'a>(
                &'a self,
                request_hash: Option<&'a str>,
                limit: u32,
            ) -> BoxFuture<'a, Result<Vec<ImageDownloads>, StoreError>> {
                Box::pin(async move {
                    let rows = sqlx::query(
                        "SELECT request_hash, image, count FROM image_downloads
                          WHERE $1 = '' OR request_hash = $1
                          ORDER BY count DESC, request_hash, image LIMIT $2",
                    )
                    .bind(request_hash.unwrap_or(""))
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?;
                    rows.iter()
                        .map(|row| {
                            Ok(ImageDownloads {
                                request_hash: row.try_get(0)?,
                                image: row.try_get(1)?,
                                count: super::row::count(row, 2)?,
                            })
                        })
                        .collect()
                })
            }

            fn prune_stats(&self, before: UnixMillis) -> BoxFuture<'_, Result<u64, StoreError>> {
                Box::pin(async move {
                    // Counted in events, as when every event was a row; in one transaction
                    // with the delete, so the count is of the rows that went.
                    let mut transaction = self.pool.begin().await?;
                    let events = sqlx::query(
                        "SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) FROM build_events
                          WHERE at < $1",
                    )
                    .bind(before)
                    .fetch_one(&mut *transaction)
                    .await?;
                    let events = super::row::count(&events, 0)?;
                    sqlx::query("DELETE FROM build_events WHERE at < $1")
                        .bind(before)
                        .execute(&mut *transaction)
                        .await?;
                    let downloads = sqlx::query("DELETE FROM image_downloads WHERE last_at < $1")
                        .bind(before)
                        .execute(&mut *transaction)
                        .await?;
                    transaction.commit().await?;
                    Ok(events + downloads.rows_affected())
                })
            }
        }
    };
}

impl_stats_store!(super::SqliteStore);
impl_stats_store!(super::PostgresStore);
