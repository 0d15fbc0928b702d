//! Rows of the `jobs` table decoded into [`Job`] and [`Claim`], once for both backends.
//!
//! The SQLite and PostgreSQL tables have the same column names and the same value types (`TEXT`
//! and 64-bit integers), so sqlx's derived [`sqlx::FromRow`] reads a row of either by name and
//! the checks (state spelling, attempt range, the stored [`JobSpec`]) are written here only.

use attendant_proto::api::{ImagebuilderStatus, RequestHash};
use sqlx::{ColumnIndex, Decode, Row, Type};

use super::{Claim, Failure, Job, JobSpec, JobState, StoreError, UnixMillis};

/// The columns [`JobRow`] reads, in a `SELECT` list.
pub(super) const JOB_COLUMNS: &str = "request_hash, state, stage, attempt, enqueued_at, \
     finished_at, expires_at, request, result, failure_detail, stdout, stderr, last_error, run_after, worker, id";

/// The columns [`ClaimRow`] reads, in a `RETURNING` list.
pub(super) const CLAIM_COLUMNS: &str = "request_hash, attempt, request, enqueued_at";

/// A `jobs` row as stored.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct JobRow {
    request_hash: String,
    state: String,
    stage: String,
    attempt: i64,
    enqueued_at: UnixMillis,
    finished_at: Option<UnixMillis>,
    expires_at: Option<UnixMillis>,
    request: String,
    result: Option<String>,
    failure_detail: Option<String>,
    stdout: Option<String>,
    stderr: Option<String>,
    last_error: Option<String>,
    run_after: UnixMillis,
    worker: Option<String>,
    /// The queue order (`queue_position` counts queued rows with a smaller id).
    pub(super) id: i64,
}

/// The columns of a claimed row that a worker needs.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct ClaimRow {
    request_hash: String,
    attempt: i64,
    request: String,
    enqueued_at: UnixMillis,
}

impl TryFrom<JobRow> for Job {
    type Error = StoreError;

    fn try_from(row: JobRow) -> Result<Self, StoreError> {
        let request_hash = hash_of(&row.request_hash)?;
        let Some(state) = JobState::parse(&row.state) else {
            return Err(corrupt(&row.request_hash, "state"));
        };
        let failure = row.failure_detail.map(|detail| Failure {
            detail,
            stdout: row.stdout.unwrap_or_default(),
            stderr: row.stderr.unwrap_or_default(),
        });
        Ok(Job {
            state,
            stage: ImagebuilderStatus::from_wire(&row.stage),
            attempt: attempt_of(row.attempt, &row.request_hash)?,
            queue_position: None,
            enqueued_at: row.enqueued_at,
            finished_at: row.finished_at,
            expires_at: row.expires_at,
            request: spec_of(&row.request, &row.request_hash)?,
            result: row.result,
            failure,
            last_error: row.last_error,
            run_after: row.run_after,
            worker: row.worker,
            request_hash,
        })
    }
}

impl TryFrom<ClaimRow> for Claim {
    type Error = StoreError;

    fn try_from(row: ClaimRow) -> Result<Self, StoreError> {
        Ok(Claim {
            request_hash: hash_of(&row.request_hash)?,
            attempt: attempt_of(row.attempt, &row.request_hash)?,
            request: spec_of(&row.request, &row.request_hash)?,
            enqueued_at: row.enqueued_at,
        })
    }
}

/// The `request` column for a new job.
pub(super) fn encode_spec(
    request_hash: &RequestHash,
    spec: &JobSpec,
) -> Result<String, StoreError> {
    serde_json::to_string(spec).map_err(|source| StoreError::Encode {
        request_hash: *request_hash,
        source,
    })
}

/// A `COUNT(*)` (or any non-negative 64-bit integer) in column `index` of `row`.
pub(super) fn count<R>(row: &R, index: usize) -> Result<u64, StoreError>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let value: i64 = row.try_get(index)?;
    Ok(u64::try_from(value).unwrap_or(0))
}

/// Request hashes returned by a `RETURNING request_hash`.
pub(super) fn hashes<R>(rows: &[R]) -> Result<Vec<RequestHash>, StoreError>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
    rows.iter()
        .map(|row| hash_of(&row.try_get::<String, _>(0)?))
        .collect()
}

/// `(id, request_hash)` pairs of a `SELECT id, request_hash`.
pub(super) fn ids_and_hashes<R>(rows: &[R]) -> Result<Vec<(i64, RequestHash)>, StoreError>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    rows.iter()
        .map(|row| Ok((row.try_get(0)?, hash_of(&row.try_get::<String, _>(1)?)?)))
        .collect()
}

fn hash_of(text: &str) -> Result<RequestHash, StoreError> {
    text.parse().map_err(|_| corrupt(text, "request_hash"))
}

fn spec_of(text: &str, request_hash: &str) -> Result<JobSpec, StoreError> {
    serde_json::from_str(text).map_err(|_| corrupt(request_hash, "request"))
}

fn attempt_of(attempt: i64, request_hash: &str) -> Result<u32, StoreError> {
    u32::try_from(attempt).map_err(|_| corrupt(request_hash, "attempt"))
}

fn corrupt(request_hash: &str, column: &'static str) -> StoreError {
    StoreError::Corrupt {
        request_hash: request_hash.chars().take(64).collect(),
        column,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_spec;

    fn row() -> JobRow {
        JobRow {
            request_hash: "ab".repeat(32),
            state: "running".to_owned(),
            stage: "building_image".to_owned(),
            attempt: 2,
            enqueued_at: 1,
            finished_at: None,
            expires_at: None,
            request: serde_json::to_string(&test_spec(1)).unwrap(),
            result: None,
            failure_detail: None,
            stdout: Some("ignored without a failure".to_owned()),
            stderr: None,
            last_error: None,
            run_after: 1,
            worker: Some("local:host".to_owned()),
            id: 7,
        }
    }

    fn corrupt_column(row: JobRow) -> &'static str {
        match Job::try_from(row).unwrap_err() {
            StoreError::Corrupt { column, .. } => column,
            other => panic!("expected a corrupt column, got {other:?}"),
        }
    }

    #[test]
    fn decodes_a_row_into_typed_fields() {
        let job = Job::try_from(row()).unwrap();
        assert_eq!(job.request_hash, RequestHash([0xab; 32]));
        assert_eq!(job.state, JobState::Running);
        assert_eq!(job.stage, ImagebuilderStatus::BuildingImage);
        assert_eq!(job.attempt, 2);
        assert_eq!(job.request, test_spec(1));
        assert_eq!(job.failure, None);
    }

    #[test]
    fn keeps_a_stage_this_version_does_not_know() {
        let job = Job::try_from(JobRow {
            stage: "compressing".to_owned(),
            ..row()
        })
        .unwrap();
        assert_eq!(job.stage, ImagebuilderStatus::Unknown("compressing".into()));
    }

    #[test]
    fn names_the_unreadable_column() {
        let cases = [
            (
                JobRow {
                    request_hash: "AB".repeat(32),
                    ..row()
                },
                "request_hash",
            ),
            (
                JobRow {
                    state: "lost".to_owned(),
                    ..row()
                },
                "state",
            ),
            (
                JobRow {
                    attempt: -1,
                    ..row()
                },
                "attempt",
            ),
            (
                JobRow {
                    request: "{\"n\":1}".to_owned(),
                    ..row()
                },
                "request",
            ),
        ];
        for (row, column) in cases {
            assert_eq!(corrupt_column(row), column);
        }
    }

    #[test]
    fn claim_rows_decode_like_job_rows() {
        let claim = Claim::try_from(ClaimRow {
            request_hash: "cd".repeat(32),
            attempt: 1,
            request: serde_json::to_string(&test_spec(3)).unwrap(),
            enqueued_at: 5,
        })
        .unwrap();
        assert_eq!(claim.request_hash, RequestHash([0xcd; 32]));
        assert_eq!(claim.request, test_spec(3));
        let error = Claim::try_from(ClaimRow {
            request_hash: "cd".repeat(32),
            attempt: i64::from(u32::MAX) + 1,
            request: String::new(),
            enqueued_at: 5,
        })
        .unwrap_err();
        assert!(
            matches!(
                error,
                StoreError::Corrupt {
                    column: "attempt",
                    ..
                }
            ),
            "{error:?}"
        );
    }
}
