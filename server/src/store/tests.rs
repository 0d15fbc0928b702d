//! The store test suite, written once against `dyn Store` and instantiated per backend
//! (STYLE rule 24). Each test gets a fresh database.

use std::sync::Arc;

use super::*;

/// Instantiates every test of the suite for one backend constructor.
macro_rules! store_suite {
    ($backend:ident, $open:expr) => {
        mod $backend {
            use super::*;

            async fn open() -> (tempfile::TempDir, Arc<dyn Store>) {
                let dir = tempfile::tempdir().unwrap();
                let open = $open;
                let store = open(dir.path()).await;
                (dir, store)
            }

            store_suite!(@tests open;
                identical_submissions_share_one_job,
                concurrent_identical_submissions_share_one_job,
                queue_position_counts_jobs_ahead,
                overloaded_queue_refuses_new_jobs_but_not_existing,
                claim_takes_oldest_and_increments_attempt,
                stale_job_is_reclaimed,
                update_after_reclaim_is_refused,
                heartbeat_keeps_the_lease,
                finished_job_is_cached_until_expiry,
                expired_job_is_replaced_by_resubmission,
                failure_is_cached_with_its_output,
                retried_job_waits_for_its_back_off,
                job_out_of_attempts_fails_when_its_lease_expires,
                delete_expired_keeps_live_jobs,
                data_survives_reopen
            );
        }
    };
    (@tests $open:ident; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let (dir, store) = $open().await;
                super::$name(store, dir.path()).await;
            }
        )*
    };
}

store_suite!(sqlite, |dir: &std::path::Path| {
    let path = dir.join("jobs.sqlite");
    async move { Arc::new(SqliteStore::open(&path).await.unwrap()) as Arc<dyn Store> }
});

const MINUTE: UnixMillis = 60_000;

fn hash(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

fn new_job(n: u8) -> NewJob {
    NewJob {
        request_hash: hash(n),
        request: format!("{{\"n\":{n}}}"),
    }
}

async fn created(store: &dyn Store, n: u8, now: UnixMillis) -> Job {
    match store.submit(new_job(n), 1000, now).await.unwrap() {
        Submission::Created(job) => job,
        other => panic!("expected a new job, got {other:?}"),
    }
}

async fn identical_submissions_share_one_job(store: Arc<dyn Store>, _: &std::path::Path) {
    let first = created(&*store, 1, 0).await;
    assert_eq!(first.state, JobState::Queued);
    assert_eq!(first.queue_position, Some(0));
    let Submission::Existing(second) = store.submit(new_job(1), 1000, 5).await.unwrap() else {
        panic!("second submission enqueued again");
    };
    assert_eq!(second.request_hash, first.request_hash);
    assert_eq!(second.enqueued_at, 0);
    assert_eq!(store.counts(10).await.unwrap().queue_length, 1);
}

async fn concurrent_identical_submissions_share_one_job(
    store: Arc<dyn Store>,
    _: &std::path::Path,
) {
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.submit(new_job(7), 1000, 1).await.unwrap() })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        if matches!(task.await.unwrap(), Submission::Created(_)) {
            created += 1;
        }
    }
    assert_eq!(created, 1);
    assert_eq!(store.counts(1).await.unwrap().queue_length, 1);
}

async fn queue_position_counts_jobs_ahead(store: Arc<dyn Store>, _: &std::path::Path) {
    for n in 1..=3 {
        created(&*store, n, 0).await;
    }
    let third = store.job(&hash(3), 0).await.unwrap().unwrap();
    assert_eq!(third.queue_position, Some(2));
    store.claim("w", 0, MINUTE).await.unwrap().unwrap();
    let third = store.job(&hash(3), 0).await.unwrap().unwrap();
    assert_eq!(third.queue_position, Some(1));
    let running = store.job(&hash(1), 0).await.unwrap().unwrap();
    assert_eq!(running.state, JobState::Running);
    assert_eq!(running.queue_position, None);
}

async fn overloaded_queue_refuses_new_jobs_but_not_existing(
    store: Arc<dyn Store>,
    _: &std::path::Path,
) {
    for n in 1..=3 {
        store.submit(new_job(n), 2, 0).await.unwrap();
    }
    let refused = store.submit(new_job(4), 2, 0).await.unwrap();
    assert!(
        matches!(refused, Submission::Overloaded { queue_length: 3 }),
        "{refused:?}"
    );
    let existing = store.submit(new_job(2), 2, 0).await.unwrap();
    assert!(matches!(existing, Submission::Existing(_)), "{existing:?}");
    assert!(store.job(&hash(4), 0).await.unwrap().is_none());
}

async fn claim_takes_oldest_and_increments_attempt(store: Arc<dyn Store>, _: &std::path::Path) {
    created(&*store, 2, 0).await;
    created(&*store, 1, 1).await;
    let claim = store.claim("w", 2, MINUTE).await.unwrap().unwrap();
    assert_eq!(claim.request_hash, hash(2));
    assert_eq!(claim.attempt, 1);
    assert_eq!(claim.request, "{\"n\":2}");
    let claim = store.claim("w", 2, MINUTE).await.unwrap().unwrap();
    assert_eq!(claim.request_hash, hash(1));
    assert!(store.claim("w", 2, MINUTE).await.unwrap().is_none());
}

async fn stale_job_is_reclaimed(store: Arc<dyn Store>, _: &std::path::Path) {
    created(&*store, 1, 0).await;
    let first = store.claim("a", 0, MINUTE).await.unwrap().unwrap();
    let none = Failure::default();
    let reaped = store
        .requeue_expired(MINUTE - 1, 5, &none, 0)
        .await
        .unwrap();
    assert_eq!(reaped, Reaped::default(), "a live lease must not be reaped");
    let reaped = store
        .requeue_expired(MINUTE + 1, 5, &none, 0)
        .await
        .unwrap();
    assert_eq!(reaped.requeued, 1);
    let job = store.job(&hash(1), MINUTE + 1).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(
        job.last_error.as_deref(),
        Some("the worker stopped renewing its lease")
    );
    let second = store
        .claim("b", MINUTE + 2, 3 * MINUTE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.request_hash, first.request_hash);
    assert_eq!(second.attempt, 2);
}

async fn update_after_reclaim_is_refused(store: Arc<dyn Store>, _: &std::path::Path) {
    created(&*store, 1, 0).await;
    let old = store.claim("a", 0, MINUTE).await.unwrap().unwrap();
    store
        .requeue_expired(2 * MINUTE, 5, &Failure::default(), 0)
        .await
        .unwrap();
    let new = store
        .claim("b", 2 * MINUTE, 3 * MINUTE)
        .await
        .unwrap()
        .unwrap();
    let h = &old.request_hash;
    for refused in [
        store.heartbeat(h, old.attempt, 9 * MINUTE).await,
        store.set_stage(h, old.attempt, "building_image").await,
        store.finish(h, old.attempt, "{}", 0, 9 * MINUTE).await,
        store
            .fail(h, old.attempt, &Failure::default(), 0, 9 * MINUTE)
            .await,
        store.retry(h, old.attempt, "x", 0).await,
    ] {
        let error = refused.unwrap_err();
        assert!(
            matches!(error, StoreError::LeaseLost { attempt: 1, .. }),
            "{error:?}"
        );
    }
    assert_eq!(
        store
            .set_stage(h, old.attempt, "done")
            .await
            .unwrap_err()
            .to_string(),
        format!("job `{h}` attempt 1 no longer holds the lease")
    );
    store
        .set_stage(h, new.attempt, "building_image")
        .await
        .unwrap();
    let job = store.job(h, 2 * MINUTE).await.unwrap().unwrap();
    assert_eq!(job.stage, "building_image");
    assert_eq!(job.state, JobState::Running);
}

async fn heartbeat_keeps_the_lease(store: Arc<dyn Store>, _: &std::path::Path) {
    created(&*store, 1, 0).await;
    let claim = store.claim("a", 0, MINUTE).await.unwrap().unwrap();
    store
        .heartbeat(&claim.request_hash, claim.attempt, 3 * MINUTE)
        .await
        .unwrap();
    let reaped = store
        .requeue_expired(2 * MINUTE, 5, &Failure::default(), 0)
        .await
        .unwrap();
    assert_eq!(reaped, Reaped::default());
}

async fn finished_job_is_cached_until_expiry(store: Arc<dyn Store>, _: &std::path::Path) {
    created(&*store, 1, 0).await;
    let claim = store.claim("a", 0, MINUTE).await.unwrap().unwrap();
    store
        .finish(
            &claim.request_hash,
            claim.attempt,
            "{\"id\":\"x\"}",
            10,
            100,
        )
        .await
        .unwrap();
    let job = store.job(&hash(1), 99).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Succeeded);
    assert_eq!(job.stage, "done");
    assert_eq!(job.result.as_deref(), Some("{\"id\":\"x\"}"));
    assert_eq!(job.finished_at, Some(10));
    assert!(store.job(&hash(1), 100).await.unwrap().is_none());
    assert_eq!(store.counts(99).await.unwrap().builds_24h, 1);
}

async fn expired_job_is_replaced_by_resubmission(store: Arc<dyn Store>, _: &std::path::Path) {
    created(&*store, 1, 0).await;
    let claim = store.claim("a", 0, MINUTE).await.unwrap().unwrap();
    store
        .finish(&claim.request_hash, claim.attempt, "{}", 10, 100)
        .await
        .unwrap();
    let Submission::Created(job) = store.submit(new_job(1), 10, 200).await.unwrap() else {
        panic!("an expired result must not be served");
    };
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(job.enqueued_at, 200);
    assert_eq!(job.result, None);
    assert_eq!(job.expires_at, None);
}

async fn failure_is_cached_with_its_output(store: Arc<dyn Store>, _: &std::path::Path) {
    created(&*store, 1, 0).await;
    let claim = store.claim("a", 0, MINUTE).await.unwrap().unwrap();
    let failure = Failure {
        detail: "Error: Selected packages exceed device storage".to_owned(),
        stdout: "out".to_owned(),
        stderr: "is too big".to_owned(),
    };
    store
        .fail(&claim.request_hash, claim.attempt, &failure, 5, 50)
        .await
        .unwrap();
    let job = store.job(&hash(1), 6).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.failure, Some(failure));
    let again = store.submit(new_job(1), 10, 7).await.unwrap();
    assert!(
        matches!(again, Submission::Existing(_)),
        "failures are cached: {again:?}"
    );
}

async fn retried_job_waits_for_its_back_off(store: Arc<dyn Store>, _: &std::path::Path) {
    created(&*store, 1, 0).await;
    let claim = store.claim("a", 0, MINUTE).await.unwrap().unwrap();
    store
        .retry(
            &claim.request_hash,
            claim.attempt,
            "upstream unreachable",
            1000,
        )
        .await
        .unwrap();
    let job = store.job(&hash(1), 1).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(job.failure, None, "a retried job is not a cached failure");
    assert_eq!(job.last_error.as_deref(), Some("upstream unreachable"));
    assert!(store.claim("a", 999, MINUTE).await.unwrap().is_none());
    let again = store.claim("a", 1000, MINUTE).await.unwrap().unwrap();
    assert_eq!(again.attempt, 2);
}

async fn job_out_of_attempts_fails_when_its_lease_expires(
    store: Arc<dyn Store>,
    _: &std::path::Path,
) {
    created(&*store, 1, 0).await;
    store.claim("a", 0, 10).await.unwrap().unwrap();
    let failure = Failure {
        detail: "Error: gave up".to_owned(),
        ..Failure::default()
    };
    let reaped = store.requeue_expired(20, 1, &failure, 500).await.unwrap();
    assert_eq!(
        reaped,
        Reaped {
            requeued: 0,
            failed: 1
        }
    );
    let job = store.job(&hash(1), 20).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.expires_at, Some(500));
}

async fn delete_expired_keeps_live_jobs(store: Arc<dyn Store>, _: &std::path::Path) {
    created(&*store, 1, 0).await;
    created(&*store, 2, 0).await;
    created(&*store, 3, 0).await;
    let first = store.claim("a", 0, MINUTE).await.unwrap().unwrap();
    store
        .finish(&first.request_hash, first.attempt, "{}", 1, 100)
        .await
        .unwrap();
    let second = store.claim("a", 0, MINUTE).await.unwrap().unwrap();
    store
        .finish(&second.request_hash, second.attempt, "{}", 1, 10_000)
        .await
        .unwrap();
    assert_eq!(store.delete_expired(100).await.unwrap(), vec![hash(1)]);
    assert!(!store.is_referenced(&hash(1)).await.unwrap());
    assert!(store.is_referenced(&hash(2)).await.unwrap());
    assert!(
        store.is_referenced(&hash(3)).await.unwrap(),
        "queued jobs are never expired"
    );
    assert!(store.delete_expired(100).await.unwrap().is_empty());
}

async fn data_survives_reopen(store: Arc<dyn Store>, dir: &std::path::Path) {
    created(&*store, 1, 0).await;
    created(&*store, 2, 0).await;
    let claim = store.claim("a", 0, MINUTE).await.unwrap().unwrap();
    store
        .finish(&claim.request_hash, claim.attempt, "{}", 1, 10_000)
        .await
        .unwrap();
    drop(store);
    let reopened = SqliteStore::open(&dir.join("jobs.sqlite")).await.unwrap();
    let done = reopened.job(&hash(1), 2).await.unwrap().unwrap();
    assert_eq!(done.state, JobState::Succeeded);
    let queued = reopened.job(&hash(2), 2).await.unwrap().unwrap();
    assert_eq!(queued.state, JobState::Queued);
}
