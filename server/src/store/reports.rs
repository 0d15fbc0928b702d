//! Outcome report storage: `channel_reports`, `report_salt` and `channel_rollouts`, see
//! `migrations/*/0004_reports.sql`.
//!
//! A report is one row per router (its salted `machine` token), channel, device and build it
//! upgraded to: recording the same upgrade again replaces the row, so a router that retries after
//! a lost answer counts once. Each build holds at most the caller's `max_per_build` rows; a
//! router new to a full build is not stored ([`Recorded::Capped`]), a router already counted
//! still updates its row. Counting is a `GROUP BY` in the database. The SQL is the same on both
//! backends, so one implementation serves both ([`impl_report_store`]).

use std::collections::BTreeMap;

use attendant_proto::channel::ReportResult;
use futures_util::future::BoxFuture;
use serde::Serialize;
use sqlx::Row;

use super::{StoreError, UnixMillis};

/// One report as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredReport {
    /// The channel.
    pub channel: String,
    /// `target/subtarget/profile`.
    pub device: String,
    /// The build upgraded from (0: none).
    pub from_build: u64,
    /// The build upgraded to.
    pub to_build: u64,
    /// How it went.
    pub result: ReportResult,
    /// A failure's cause.
    pub cause: Option<String>,
    /// The router's salted machine token.
    pub machine: String,
    /// When it arrived.
    pub at: UnixMillis,
}

/// What [`ReportStore::record_report`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// A new router's report.
    Stored,
    /// The router had reported this upgrade before; its row now holds this report.
    Replaced,
    /// The build holds `max_per_build` reports already; nothing was written.
    Capped,
}

/// Reports of one build by result.
///
/// JSON shape: `{"booted": 9, "rolled_back": 1, "failed_before_flash": 0, "failure_rate": 0.1}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReportCounts {
    /// The router runs the build.
    pub booted: u64,
    /// The router flashed it and fell back.
    pub rolled_back: u64,
    /// The upgrade stopped before flashing.
    pub failed_before_flash: u64,
}

impl ReportCounts {
    /// Every report.
    pub fn total(&self) -> u64 {
        self.booted
            .saturating_add(self.rolled_back)
            .saturating_add(self.failed_before_flash)
    }

    /// Failures (rolled back or failed before flashing).
    pub fn failures(&self) -> u64 {
        self.rolled_back.saturating_add(self.failed_before_flash)
    }

    /// Failures over all reports; 0 without reports.
    pub fn failure_rate(&self) -> f64 {
        let total = self.total();
        if total == 0 {
            return 0.0;
        }
        #[expect(
            clippy::cast_precision_loss,
            reason = "counts far below 2^52; a rate needs no more precision"
        )]
        let rate = self.failures() as f64 / total as f64;
        rate
    }

    fn add(&mut self, result: ReportResult, count: u64) {
        let slot = match result {
            ReportResult::Booted => &mut self.booted,
            ReportResult::RolledBack => &mut self.rolled_back,
            ReportResult::FailedBeforeFlash => &mut self.failed_before_flash,
        };
        *slot = slot.saturating_add(count);
    }
}

impl Serialize for ReportCounts {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let mut out = serializer.serialize_struct("ReportCounts", 4)?;
        out.serialize_field("booted", &self.booted)?;
        out.serialize_field("rolled_back", &self.rolled_back)?;
        out.serialize_field("failed_before_flash", &self.failed_before_flash)?;
        out.serialize_field("failure_rate", &self.failure_rate())?;
        out.end()
    }
}

/// Where a build's rollout was last seen: its phased percentage and since when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RolloutStep {
    /// The phased percentage.
    pub percentage: u8,
    /// Since when (Unix milliseconds).
    pub since: UnixMillis,
}

/// Outcome report storage; every [`Store`](super::Store) is one.
pub trait ReportStore: Send + Sync {
    /// The server's report salt: `candidate` if none is stored yet (it is stored then), else
    /// the stored one. Every process and host sharing the database gets the same salt.
    fn report_salt<'a>(&'a self, candidate: &'a str) -> BoxFuture<'a, Result<String, StoreError>>;

    /// Stores `report`, replacing the router's earlier report of the same upgrade; a router new
    /// to a build with `max_per_build` reports already is not stored.
    fn record_report<'a>(
        &'a self,
        report: &'a StoredReport,
        max_per_build: u64,
    ) -> BoxFuture<'a, Result<Recorded, StoreError>>;

    /// Report counts per build of one device of one channel, of reports that arrived at or
    /// after `since`.
    fn report_counts<'a>(
        &'a self,
        channel: &'a str,
        device: &'a str,
        since: UnixMillis,
    ) -> BoxFuture<'a, Result<BTreeMap<u64, ReportCounts>, StoreError>>;

    /// The recorded rollout step of a build.
    fn rollout_step<'a>(
        &'a self,
        channel: &'a str,
        device: &'a str,
        build: u64,
    ) -> BoxFuture<'a, Result<Option<RolloutStep>, StoreError>>;

    /// Deletes the reports and rollout steps of one device's builds numbered below
    /// `below_build` (builds the tree no longer has: numbers are never reused); returns how many
    /// reports went.
    fn prune_reports<'a>(
        &'a self,
        channel: &'a str,
        device: &'a str,
        below_build: u64,
    ) -> BoxFuture<'a, Result<u64, StoreError>>;

    /// Records a build's rollout step.
    fn set_rollout_step<'a>(
        &'a self,
        channel: &'a str,
        device: &'a str,
        build: u64,
        step: RolloutStep,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
}

fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn result_of(text: &str) -> Option<ReportResult> {
    [
        ReportResult::Booted,
        ReportResult::RolledBack,
        ReportResult::FailedBeforeFlash,
    ]
    .into_iter()
    .find(|result| result.as_str() == text)
}

/// Implements [`ReportStore`] for a store with a `pool` field: the SQL is the same on SQLite and
/// PostgreSQL, only the pool and row types differ.
macro_rules! impl_report_store {
    ($store:ty) => {
        impl ReportStore for $store {
            fn report_salt<'a>(
                &'a self,
                candidate: &'a str,
            ) -> BoxFuture<'a, Result<String, StoreError>> {
                Box::pin(async move {
                    // Insert-if-absent, then read: two processes asking at once both read the
                    // one salt that won.
                    sqlx::query(
                        "INSERT INTO report_salt (id, salt) VALUES (1, $1)
                         ON CONFLICT (id) DO NOTHING",
                    )
                    .bind(candidate)
                    .execute(&self.pool)
                    .await?;
                    let row = sqlx::query("SELECT salt FROM report_salt WHERE id = 1")
                        .fetch_one(&self.pool)
                        .await?;
                    Ok(row.try_get(0)?)
                })
            }

            fn record_report<'a>(
                &'a self,
                report: &'a StoredReport,
                max_per_build: u64,
            ) -> BoxFuture<'a, Result<Recorded, StoreError>> {
                Box::pin(async move {
                    let updated = sqlx::query(
                        "UPDATE channel_reports
                            SET from_build = $5, result = $6, cause = $7, at = $8
                          WHERE channel = $1 AND device = $2 AND to_build = $3 AND machine = $4",
                    )
                    .bind(&report.channel)
                    .bind(&report.device)
                    .bind(signed(report.to_build))
                    .bind(&report.machine)
                    .bind(signed(report.from_build))
                    .bind(report.result.as_str())
                    .bind(&report.cause)
                    .bind(report.at)
                    .execute(&self.pool)
                    .await?;
                    if updated.rows_affected() > 0 {
                        return Ok(Recorded::Replaced);
                    }
                    // The cap is checked in the same statement as the insert; two new routers
                    // racing for the last free row may both get in, which bounds the table all
                    // the same. A router inserted meanwhile by a retry is updated instead.
                    let inserted = sqlx::query(
                        "INSERT INTO channel_reports
                           (channel, device, to_build, machine, from_build, result, cause, at)
                         SELECT $1, $2, $3, $4, $5, $6, $7, $8
                          WHERE (SELECT COUNT(*) FROM channel_reports
                                  WHERE channel = $1 AND device = $2 AND to_build = $3) < $9
                         ON CONFLICT (channel, device, to_build, machine) DO UPDATE
                           SET from_build = excluded.from_build, result = excluded.result,
                               cause = excluded.cause, at = excluded.at",
                    )
                    .bind(&report.channel)
                    .bind(&report.device)
                    .bind(signed(report.to_build))
                    .bind(&report.machine)
                    .bind(signed(report.from_build))
                    .bind(report.result.as_str())
                    .bind(&report.cause)
                    .bind(report.at)
                    .bind(signed(max_per_build))
                    .execute(&self.pool)
                    .await?;
                    Ok(if inserted.rows_affected() > 0 {
                        Recorded::Stored
                    } else {
                        Recorded::Capped
                    })
                })
            }

            fn report_counts<'a>(
                &'a self,
                channel: &'a str,
                device: &'a str,
                since: UnixMillis,
            ) -> BoxFuture<'a, Result<BTreeMap<u64, ReportCounts>, StoreError>> {
                Box::pin(async move {
                    let rows = sqlx::query(
                        "SELECT to_build, result, COUNT(*) FROM channel_reports
                          WHERE channel = $1 AND device = $2 AND at >= $3
                          GROUP BY 1, 2",
                    )
                    .bind(channel)
                    .bind(device)
                    .bind(since)
                    .fetch_all(&self.pool)
                    .await?;
                    let mut counts: BTreeMap<u64, ReportCounts> = BTreeMap::new();
                    for row in &rows {
                        let build: i64 = row.try_get(0)?;
                        let result: String = row.try_get(1)?;
                        // The column's CHECK admits only the three spellings.
                        let Some(result) = result_of(&result) else {
                            continue;
                        };
                        counts
                            .entry(u64::try_from(build).unwrap_or(0))
                            .or_default()
                            .add(result, super::row::count(row, 2)?);
                    }
                    Ok(counts)
                })
            }

            fn rollout_step<'a>(
                &'a self,
                channel: &'a str,
                device: &'a str,
                build: u64,
            ) -> BoxFuture<'a, Result<Option<RolloutStep>, StoreError>> {
                Box::pin(async move {
                    let row = sqlx::query(
                        "SELECT percentage, since FROM channel_rollouts
                          WHERE channel = $1 AND device = $2 AND build = $3",
                    )
                    .bind(channel)
                    .bind(device)
                    .bind(signed(build))
                    .fetch_optional(&self.pool)
                    .await?;
                    let Some(row) = row else {
                        return Ok(None);
                    };
                    let percentage: i64 = row.try_get(0)?;
                    Ok(Some(RolloutStep {
                        percentage: u8::try_from(percentage).unwrap_or(u8::MAX),
                        since: row.try_get(1)?,
                    }))
                })
            }

            fn prune_reports<'a>(
                &'a self,
                channel: &'a str,
                device: &'a str,
                below_build: u64,
            ) -> BoxFuture<'a, Result<u64, StoreError>> {
                Box::pin(async move {
                    let reports = sqlx::query(
                        "DELETE FROM channel_reports
                          WHERE channel = $1 AND device = $2 AND to_build < $3",
                    )
                    .bind(channel)
                    .bind(device)
                    .bind(signed(below_build))
                    .execute(&self.pool)
                    .await?;
                    sqlx::query(
                        "DELETE FROM channel_rollouts
                          WHERE channel = $1 AND device = $2 AND build < $3",
                    )
                    .bind(channel)
                    .bind(device)
                    .bind(signed(below_build))
                    .execute(&self.pool)
                    .await?;
                    Ok(reports.rows_affected())
                })
            }

            fn set_rollout_step<'a>(
                &'a self,
                channel: &'a str,
                device: &'a str,
                build: u64,
                step: RolloutStep,
            ) -> BoxFuture<'a, Result<(), StoreError>> {
                Box::pin(async move {
                    sqlx::query(
                        "INSERT INTO channel_rollouts (channel, device, build, percentage, since)
                         VALUES ($1, $2, $3, $4, $5)
                         ON CONFLICT (channel, device, build) DO UPDATE
                           SET percentage = excluded.percentage, since = excluded.since",
                    )
                    .bind(channel)
                    .bind(device)
                    .bind(signed(build))
                    .bind(i64::from(step.percentage))
                    .bind(step.since)
                    .execute(&self.pool)
                    .await?;
                    Ok(())
                })
            }
        }
    };
}

impl_report_store!(super::SqliteStore);
impl_report_store!(super::PostgresStore);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_serialise_with_their_failure_rate() {
        let counts = ReportCounts {
            booted: 3,
            rolled_back: 1,
            failed_before_flash: 0,
        };
        assert_eq!(
            serde_json::to_string(&counts).unwrap(),
            r#"{"booted":3,"rolled_back":1,"failed_before_flash":0,"failure_rate":0.25}"#
        );
        assert_eq!(ReportCounts::default().failure_rate(), 0.0);
    }
}
