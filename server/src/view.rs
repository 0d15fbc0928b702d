//! What a client sees of a job: status code, the two ASU headers and the JSON body
//! (as ASU's `api_v1_build_get` renders a job: [`asu/routers/api.py`]), plus the in-memory
//! cache of finished ones.
//!
//! [`asu/routers/api.py`]: https://github.com/openwrt/asu/blob/main/asu/routers/api.py
//!
//! A finished job never changes until it expires, so its rendered response ([`BuildView`], body
//! already serialised into a [`Document`] with its entity tag, `Last-Modified` (the job's
//! `finished_at`) and compressed encodings made once) is kept in a [`ResultCache`] in front of
//! the store: a cache-hit `POST` or `GET` costs a map lookup, not a database query, and sends
//! the stored bytes as they are. Entries die with the job's
//! `expires_at`; the cache holds at most [`MAX_CACHED_RESULTS`] entries and is emptied when full.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use attendant_proto::api::response::FAILED_DETAIL;
use attendant_proto::api::{BuildStatusBody, ImagebuilderStatus, RequestHash};
use bytes::Bytes;

use crate::document::Document;
use crate::store::{Job, JobState, UnixMillis};

/// Most finished results held in memory.
pub const MAX_CACHED_RESULTS: usize = 65_536;

/// A rendered build response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildView {
    /// HTTP status, equal to the body's `status`: 200, 202 or 500.
    pub status: u16,
    /// `X-Imagebuilder-Status`.
    pub imagebuilder_status: ImagebuilderStatus,
    /// `X-Queue-Position`.
    pub queue_position: u64,
    /// The JSON body.
    pub body: Document,
}

impl BuildView {
    /// Renders a job. A succeeded job's stored result is already the complete body.
    pub fn of(job: &Job) -> Self {
        match job.state {
            JobState::Queued => {
                let position = job.queue_position.unwrap_or(0);
                let detail = queued_detail(job);
                let body = BuildStatusBody {
                    queue_position: Some(position),
                    ..status_body(job, 202, &detail)
                };
                Self::json(ImagebuilderStatus::Queued, position, &body)
            }
            JobState::Running => {
                let body = BuildStatusBody {
                    imagebuilder_status: Some(job.stage.clone()),
                    ..status_body(job, 202, "started")
                };
                Self::json(job.stage.clone(), 0, &body)
            }
            JobState::Succeeded => Self {
                status: 200,
                imagebuilder_status: ImagebuilderStatus::Done,
                queue_position: 0,
                body: Document::new(
                    Bytes::from(job.result.clone().unwrap_or_default()),
                    job.finished_at,
                ),
            },
            JobState::Failed => {
                let failure = job.failure.clone().unwrap_or_default();
                // A job that failed before its first stage has no reason of its own.
                let detail = if failure.detail.is_empty()
                    || failure.detail == ImagebuilderStatus::Init.as_str()
                {
                    FAILED_DETAIL
                } else {
                    failure.detail.as_str()
                };
                let body = BuildStatusBody {
                    imagebuilder_status: Some(ImagebuilderStatus::Failed),
                    stdout: Some(failure.stdout.clone()),
                    stderr: Some(failure.stderr.clone()),
                    ..status_body(job, 500, detail)
                };
                Self::json(ImagebuilderStatus::Failed, 0, &body)
            }
        }
    }

    fn json(stage: ImagebuilderStatus, queue_position: u64, body: &BuildStatusBody) -> Self {
        Self {
            status: body.status,
            imagebuilder_status: stage,
            queue_position,
            // Strings, numbers and maps of strings: serialising them cannot fail. No
            // `Last-Modified`: a queued or running job's answer changes with every poll.
            body: Document::new(
                Bytes::from(serde_json::to_vec(body).unwrap_or_default()),
                None,
            ),
        }
    }
}

/// ASU's `queued`, and for a job waiting to be tried again after an infrastructure failure
/// (the upstream unreachable, a full disk) why and until when, so that whoever polls sees more
/// than a queue that does not move. Clients tell the states apart by `status`, the headers and
/// `queue_position`, never by this text.
fn queued_detail(job: &Job) -> String {
    match &job.last_error {
        Some(error) if job.attempt > 0 => format!(
            "queued: attempt {} failed: {error}; next attempt not before {}",
            job.attempt,
            iso_time(job.run_after)
        ),
        _ => "queued".to_owned(),
    }
}

/// The fields every 202 and 500 body carries.
fn status_body(job: &Job, status: u16, detail: &str) -> BuildStatusBody {
    BuildStatusBody {
        status,
        detail: detail.to_owned(),
        request_hash: Some(job.request_hash),
        queue_position: None,
        imagebuilder_status: None,
        enqueued_at: Some(iso_time(job.enqueued_at)),
        request: Some(job.request.request.clone()),
        build_cmd: None,
        stdout: None,
        stderr: None,
        extra: BTreeMap::new(),
    }
}

/// Python's `datetime.isoformat()` of a UTC time, as ASU writes `enqueued_at`:
/// `2026-05-01T10:00:00.123456+00:00`.
pub fn iso_time(millis: UnixMillis) -> String {
    let nanos = i128::from(millis).saturating_mul(1_000_000);
    let Ok(time) = time::OffsetDateTime::from_unix_timestamp_nanos(nanos) else {
        return String::new();
    };
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]+00:00"
    );
    time.format(&format).unwrap_or_default()
}

/// ASU's `build_at`: the ImageBuilder's `source_date_epoch` as `%Y-%m-%dT%H:%M:%S.%fZ`.
pub fn build_at(seconds: i64) -> String {
    let Ok(time) = time::OffsetDateTime::from_unix_timestamp(seconds) else {
        return String::new();
    };
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    time.format(&format).unwrap_or_default()
}

/// Finished results in memory (see the module docs).
#[derive(Debug, Default)]
pub struct ResultCache {
    entries: RwLock<HashMap<RequestHash, (UnixMillis, Arc<BuildView>)>>,
}

impl ResultCache {
    /// The cached view of `request_hash` if it has not expired at `now`.
    pub fn get(&self, request_hash: &RequestHash, now: UnixMillis) -> Option<Arc<BuildView>> {
        let entries = self.entries.read().ok()?;
        let (expires_at, view) = entries.get(request_hash)?;
        (*expires_at > now).then(|| view.clone())
    }

    /// Caches the view of a finished job (other states are not cached).
    pub fn remember(&self, job: &Job, view: &Arc<BuildView>) {
        let finished = matches!(job.state, JobState::Succeeded | JobState::Failed);
        let Some(expires_at) = job.expires_at.filter(|_| finished) else {
            return;
        };
        if let Ok(mut entries) = self.entries.write() {
            if entries.len() >= MAX_CACHED_RESULTS {
                entries.clear();
            }
            entries.insert(job.request_hash, (expires_at, view.clone()));
        }
    }

    /// Drops the entries that expired at `now`.
    pub fn purge(&self, now: UnixMillis) {
        if let Ok(mut entries) = self.entries.write() {
            entries.retain(|_, (expires_at, _)| *expires_at > now);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::store::{Failure, test_spec};

    fn job(state: JobState) -> Job {
        Job {
            request_hash: RequestHash([0xab; 32]),
            state,
            stage: ImagebuilderStatus::BuildingImage,
            attempt: 1,
            queue_position: Some(3),
            enqueued_at: 1_777_629_600_123,
            finished_at: None,
            expires_at: Some(10),
            request: test_spec(1),
            result: Some(r#"{"status": 200}"#.to_owned()),
            failure: None,
            last_error: None,
            run_after: 1_777_629_600_123,
            worker: None,
        }
    }

    fn body(view: &BuildView) -> Value {
        serde_json::from_slice(&view.body).unwrap()
    }

    #[test]
    fn formats_enqueued_at_like_python_isoformat() {
        assert_eq!(
            iso_time(1_777_629_600_123),
            "2026-05-01T10:00:00.123000+00:00"
        );
    }

    #[test]
    fn formats_build_at_like_asu() {
        assert_eq!(build_at(1_714_513_535), "2024-04-30T21:45:35.000000Z");
    }

    #[test]
    fn queued_job_has_position_in_body_and_header() {
        let view = BuildView::of(&job(JobState::Queued));
        assert_eq!((view.status, view.queue_position), (202, 3));
        assert_eq!(view.imagebuilder_status.as_str(), "queued");
        let body = body(&view);
        assert_eq!(body["detail"], "queued");
        assert_eq!(body["status"], 202);
        assert_eq!(body["queue_position"], 3);
        assert_eq!(body["request"]["version"], "24.10.5");
        assert_eq!(body["enqueued_at"], "2026-05-01T10:00:00.123000+00:00");
    }

    #[test]
    fn queued_job_waiting_for_a_retry_says_why_and_until_when() {
        let mut queued = job(JobState::Queued);
        queued.last_error = Some("the disk is full".to_owned());
        queued.run_after = 1_777_629_605_123;
        let view = BuildView::of(&queued);
        assert_eq!((view.status, view.queue_position), (202, 3));
        assert_eq!(
            body(&view)["detail"],
            "queued: attempt 1 failed: the disk is full; next attempt not before \
             2026-05-01T10:00:05.123000+00:00"
        );
    }

    #[test]
    fn running_job_reports_its_stage() {
        let view = BuildView::of(&job(JobState::Running));
        assert_eq!((view.status, view.queue_position), (202, 0));
        assert_eq!(view.imagebuilder_status.as_str(), "building_image");
        let body = body(&view);
        assert_eq!(body["detail"], "started");
        assert!(
            body.get("queue_position").is_none(),
            "LuCI reads its presence as queued"
        );
    }

    #[test]
    fn failed_job_without_reason_says_failed() {
        let mut failed = job(JobState::Failed);
        failed.failure = Some(Failure {
            detail: "init".to_owned(),
            stdout: "o".to_owned(),
            stderr: "e".to_owned(),
        });
        let view = BuildView::of(&failed);
        assert_eq!(
            (view.status, view.imagebuilder_status.as_str()),
            (500, "failed")
        );
        let body = body(&view);
        assert_eq!(body["detail"], "failed");
        assert_eq!(body["stderr"], "e");
    }

    #[test]
    fn cache_serves_finished_results_until_expiry_only() {
        let cache = ResultCache::default();
        let done = job(JobState::Succeeded);
        let view = Arc::new(BuildView::of(&done));
        cache.remember(&done, &view);
        assert_eq!(cache.get(&done.request_hash, 9).unwrap().body, view.body);
        assert!(cache.get(&done.request_hash, 10).is_none());
        let queued = job(JobState::Queued);
        cache.remember(&queued, &Arc::new(BuildView::of(&queued)));
        cache.purge(10);
        assert!(cache.get(&queued.request_hash, 0).is_none());
    }
}
