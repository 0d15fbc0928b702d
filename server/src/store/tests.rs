//! The store test suite, written once against `dyn Store` and instantiated per backend
//! (never a mock): SQLite on a file in a temporary directory, PostgreSQL on a fresh database
//! of a private throwaway cluster (or of `ATTENDANT_TEST_DATABASE_URL`'s server; see
//! `tests/e2e/postgres.rs`). PostgreSQL-only guarantees (`SKIP LOCKED`, connection errors)
//! follow the suite; TLS (`sslmode`, `sslrootcert`) is in `tests/tls.rs`.

use std::any::Any;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::Connection;
use sqlx::postgres::PgConnection;

use attendant_proto::api::{ImagebuilderStatus, RequestHash};

use super::*;
use crate::known_hashes::{self, KnownHashes};

#[path = "../../tests/e2e/postgres.rs"]
mod test_database;

use test_database::TestDatabase;

mod channels;
mod reports;
#[path = "../../tests/e2e/small_disk.rs"]
mod small_disk;
mod stats;

use small_disk::SmallDisk;

mod tls;
mod workers;

use reports::reports_are_idempotent_capped_and_counted;
use stats::{
    build_events_are_counted_per_bucket_and_pruned, concurrent_flushes_of_two_stores_add_up,
    download_counts_add_up, statistics_answer_per_event,
};
use workers::workers_are_added_found_revoked_and_named_on_jobs;

/// Opens the same database again, as a restarted server would.
type Reopen = Box<dyn FnOnce() -> BoxFuture<'static, Arc<dyn Store>> + Send>;

/// A fresh store, what keeps its database alive (dropped last), and the way to reopen it.
type Fixture = (Box<dyn Any + Send>, Arc<dyn Store>, Reopen);

/// Instantiates every test of the suite for one backend's fixture.
macro_rules! store_suite {
    ($backend:ident, $fixture:path) => {
        mod $backend {
            store_suite!(@tests $fixture;
                identical_submissions_share_one_job,
                concurrent_identical_submissions_share_one_job,
                queue_position_counts_jobs_ahead,
                overloaded_queue_refuses_new_jobs_but_not_existing,
                claim_takes_oldest_and_increments_attempt,
                concurrent_claims_get_distinct_jobs,
                stale_job_is_reclaimed,
                update_after_reclaim_is_refused,
                heartbeat_keeps_the_lease,
                finished_job_is_cached_until_expiry,
                expired_job_is_replaced_by_resubmission,
                resubmitted_expired_job_goes_to_the_back_of_the_queue,
                failure_is_cached_with_its_output,
                failure_output_with_nul_bytes_is_recorded,
                retried_job_waits_for_its_back_off,
                job_out_of_attempts_fails_when_its_lease_expires,
                delete_expired_keeps_live_jobs,
                data_survives_reopen,
                build_events_are_counted_per_bucket_and_pruned,
                download_counts_add_up,
                statistics_answer_per_event,
                concurrent_flushes_of_two_stores_add_up,
                known_hashes_follow_the_store,
                reports_are_idempotent_capped_and_counted,
                workers_are_added_found_revoked_and_named_on_jobs
            );
        }
    };
    (@tests $fixture:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let (database, store, reopen) = $fixture().await;
                super::$name(store, reopen).await;
                drop(database);
            }
        )*
    };
}

store_suite!(sqlite, super::sqlite_fixture);
store_suite!(postgres, super::postgres_fixture);

async fn sqlite_fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.sqlite");
    let store = Arc::new(SqliteStore::open(&path).await.unwrap());
    let reopen: Reopen = Box::new(move || {
        Box::pin(async move { Arc::new(SqliteStore::open(&path).await.unwrap()) as Arc<dyn Store> })
    });
    (Box::new(dir), store, reopen)
}

async fn postgres_fixture() -> Fixture {
    let database = TestDatabase::start().await;
    let url = database.url().to_owned();
    let store = Arc::new(PostgresStore::open(&url).await.unwrap());
    let reopen: Reopen = Box::new(move || {
        Box::pin(
            async move { Arc::new(PostgresStore::open(&url).await.unwrap()) as Arc<dyn Store> },
        )
    });
    (Box::new(database), store, reopen)
}

const MINUTE: UnixMillis = 60_000;

fn hash(n: u8) -> RequestHash {
    RequestHash([n; 32])
}

fn new_job(n: u8) -> NewJob {
    NewJob {
        request_hash: hash(n),
        request: test_spec(n),
    }
}

async fn created(store: &dyn Store, n: u8, now: UnixMillis) -> Job {
    match store.submit(new_job(n), 1000, now).await.unwrap() {
        Submission::Created(job) => job,
        other => panic!("expected a new job, got {other:?}"),
    }
}

async fn identical_submissions_share_one_job(store: Arc<dyn Store>, _: Reopen) {
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

async fn concurrent_identical_submissions_share_one_job(store: Arc<dyn Store>, _: Reopen) {
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

async fn queue_position_counts_jobs_ahead(store: Arc<dyn Store>, _: Reopen) {
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

async fn overloaded_queue_refuses_new_jobs_but_not_existing(store: Arc<dyn Store>, _: Reopen) {
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

async fn claim_takes_oldest_and_increments_attempt(store: Arc<dyn Store>, _: Reopen) {
    created(&*store, 2, 0).await;
    created(&*store, 1, 1).await;
    let claim = store.claim("w", 2, MINUTE).await.unwrap().unwrap();
    assert_eq!(claim.request_hash, hash(2));
    assert_eq!(claim.attempt, 1);
    assert_eq!(
        claim.request,
        test_spec(2),
        "the stored spec comes back decoded"
    );
    let claim = store.claim("w", 2, MINUTE).await.unwrap().unwrap();
    assert_eq!(claim.request_hash, hash(1));
    assert!(store.claim("w", 2, MINUTE).await.unwrap().is_none());
    // The stages the SQL writes itself are the wire stages, not `Unknown` spellings.
    let job = store.job(&hash(1), 2).await.unwrap().unwrap();
    assert_eq!(job.stage, ImagebuilderStatus::Init);
}

async fn concurrent_claims_get_distinct_jobs(store: Arc<dyn Store>, _: Reopen) {
    for n in 1..=8 {
        created(&*store, n, 0).await;
    }
    let claimers: Vec<_> = (0..12)
        .map(|worker| {
            let store = store.clone();
            tokio::spawn(
                async move { store.claim(&format!("w{worker}"), 1, MINUTE).await.unwrap() },
            )
        })
        .collect();
    let mut claimed = Vec::new();
    for claimer in claimers {
        if let Some(claim) = claimer.await.unwrap() {
            assert_eq!(claim.attempt, 1);
            claimed.push(claim.request_hash);
        }
    }
    claimed.sort();
    let expected: Vec<RequestHash> = (1..=8).map(hash).collect();
    assert_eq!(claimed, expected, "every job claimed exactly once");
    assert_eq!(store.counts(1).await.unwrap().running, 8);
}

async fn stale_job_is_reclaimed(store: Arc<dyn Store>, _: Reopen) {
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

async fn update_after_reclaim_is_refused(store: Arc<dyn Store>, _: Reopen) {
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
        store
            .set_stage(h, old.attempt, &ImagebuilderStatus::BuildingImage)
            .await,
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
            .set_stage(h, old.attempt, &ImagebuilderStatus::Done)
            .await
            .unwrap_err()
            .to_string(),
        format!("job `{h}` attempt 1 no longer holds the lease")
    );
    store
        .set_stage(h, new.attempt, &ImagebuilderStatus::BuildingImage)
        .await
        .unwrap();
    let job = store.job(h, 2 * MINUTE).await.unwrap().unwrap();
    assert_eq!(job.stage.as_str(), "building_image");
    assert_eq!(job.state, JobState::Running);
}

async fn heartbeat_keeps_the_lease(store: Arc<dyn Store>, _: Reopen) {
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

async fn finished_job_is_cached_until_expiry(store: Arc<dyn Store>, _: Reopen) {
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
    assert_eq!(job.stage.as_str(), "done");
    assert_eq!(job.stage, ImagebuilderStatus::Done);
    assert_eq!(job.result.as_deref(), Some("{\"id\":\"x\"}"));
    assert_eq!(job.finished_at, Some(10));
    assert!(store.job(&hash(1), 100).await.unwrap().is_none());
    assert_eq!(store.counts(99).await.unwrap().builds_24h, 1);
}

async fn expired_job_is_replaced_by_resubmission(store: Arc<dyn Store>, _: Reopen) {
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

/// A result that expired is built again as a new submission would be: behind every job queued
/// before it, not in the place its first submission once had.
async fn resubmitted_expired_job_goes_to_the_back_of_the_queue(store: Arc<dyn Store>, _: Reopen) {
    created(&*store, 1, 0).await;
    let claim = store.claim("a", 0, MINUTE).await.unwrap().unwrap();
    store
        .finish(&claim.request_hash, claim.attempt, "{}", 10, 100)
        .await
        .unwrap();
    created(&*store, 2, 150).await;
    created(&*store, 3, 160).await;
    let Submission::Created(again) = store.submit(new_job(1), 10, 200).await.unwrap() else {
        panic!("an expired result must not be served");
    };
    assert_eq!(
        again.queue_position,
        Some(2),
        "two jobs were queued before it"
    );
    let polled = store.job(&hash(1), 200).await.unwrap().unwrap();
    assert_eq!(polled.queue_position, Some(2));
    let order: Vec<RequestHash> = [
        store.claim("a", 200, MINUTE).await.unwrap().unwrap(),
        store.claim("a", 200, MINUTE).await.unwrap().unwrap(),
        store.claim("a", 200, MINUTE).await.unwrap().unwrap(),
    ]
    .into_iter()
    .map(|claim| claim.request_hash)
    .collect();
    assert_eq!(
        order,
        [hash(2), hash(3), hash(1)],
        "claimed in submission order"
    );
}

async fn failure_is_cached_with_its_output(store: Arc<dyn Store>, _: Reopen) {
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
    assert_eq!(job.stage, ImagebuilderStatus::Failed);
    assert_eq!(job.failure, Some(failure));
    let again = store.submit(new_job(1), 10, 7).await.unwrap();
    assert!(
        matches!(again, Submission::Existing(_)),
        "failures are cached: {again:?}"
    );
}

async fn failure_output_with_nul_bytes_is_recorded(store: Arc<dyn Store>, _: Reopen) {
    created(&*store, 1, 0).await;
    let claim = store.claim("a", 0, MINUTE).await.unwrap().unwrap();
    let failure = Failure {
        detail: "Error: make image failed".to_owned(),
        stdout: String::new(),
        stderr: "binary\0garbage".to_owned(),
    };
    store
        .fail(&claim.request_hash, claim.attempt, &failure, 5, 50)
        .await
        .unwrap();
    let job = store.job(&hash(1), 6).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Failed);
    let stderr = job.failure.unwrap().stderr;
    assert!(
        stderr.starts_with("binary") && stderr.ends_with("garbage"),
        "{stderr:?}"
    );
}

async fn retried_job_waits_for_its_back_off(store: Arc<dyn Store>, _: Reopen) {
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

async fn job_out_of_attempts_fails_when_its_lease_expires(store: Arc<dyn Store>, _: Reopen) {
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

async fn delete_expired_keeps_live_jobs(store: Arc<dyn Store>, _: Reopen) {
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
    assert_eq!(store.expired(100).await.unwrap(), vec![hash(1)]);
    assert!(
        store.is_referenced(&hash(1)).await.unwrap(),
        "listing deletes nothing"
    );
    assert_eq!(store.delete_expired(100).await.unwrap(), vec![hash(1)]);
    assert!(store.expired(100).await.unwrap().is_empty());
    assert!(!store.is_referenced(&hash(1)).await.unwrap());
    assert!(store.is_referenced(&hash(2)).await.unwrap());
    assert!(
        store.is_referenced(&hash(3)).await.unwrap(),
        "queued jobs are never expired"
    );
    assert!(store.delete_expired(100).await.unwrap().is_empty());
}

async fn data_survives_reopen(store: Arc<dyn Store>, reopen: Reopen) {
    created(&*store, 1, 0).await;
    created(&*store, 2, 0).await;
    let claim = store.claim("a", 0, MINUTE).await.unwrap().unwrap();
    store
        .finish(&claim.request_hash, claim.attempt, "{}", 1, 10_000)
        .await
        .unwrap();
    drop(store);
    let reopened = reopen().await;
    let done = reopened.job(&hash(1), 2).await.unwrap().unwrap();
    assert_eq!(done.state, JobState::Succeeded);
    let queued = reopened.job(&hash(2), 2).await.unwrap().unwrap();
    assert_eq!(queued.state, JobState::Queued);
}

/// Claimer A holds the oldest queued job locked inside its claim transaction; claimer B, with its
/// own pool as on another host, gets the next job at once instead of waiting for A, and a third
/// finds nothing free rather than queueing behind the lock.
#[tokio::test]
async fn postgres_claim_skips_a_job_another_claimer_holds() {
    let database = TestDatabase::start().await;
    let store = PostgresStore::open(database.url()).await.unwrap();
    let other_host = PostgresStore::open(database.url()).await.unwrap();
    created(&store, 1, 0).await;
    created(&store, 2, 0).await;
    let mut claimer_a = PgConnection::connect(database.url()).await.unwrap();
    let mut transaction = claimer_a.begin().await.unwrap();
    let (held,): (String,) = sqlx::query_as(
        "SELECT request_hash FROM jobs WHERE state = 'queued'
         ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED",
    )
    .fetch_one(&mut *transaction)
    .await
    .unwrap();
    assert_eq!(held, hash(1).to_string());

    // A claim that waited for A's lock would not return before the rollback below.
    let patience = Duration::from_secs(10);
    let started = Instant::now();
    let claim = tokio::time::timeout(patience, other_host.claim("b", 1, MINUTE))
        .await
        .expect("claimer B waited for claimer A's lock")
        .unwrap()
        .unwrap();
    assert_eq!(claim.request_hash, hash(2));
    let nothing = tokio::time::timeout(patience, store.claim("c", 1, MINUTE))
        .await
        .expect("claimer C waited for claimer A's lock")
        .unwrap();
    assert_eq!(nothing, None);
    let waited = started.elapsed();

    transaction.rollback().await.unwrap();
    let claim = store.claim("c", 1, MINUTE).await.unwrap().unwrap();
    assert_eq!(claim.request_hash, hash(1));
    assert!(waited < patience, "claims took {waited:?}");
}

/// The in-memory filter of stored hashes (`known_hashes`), as a `serve` process sharing the
/// database with another one uses it: only a refreshed filter says "unknown", a refresh sees
/// what the other process created, and this process's own jobs count at once.
async fn known_hashes_follow_the_store(store: Arc<dyn Store>, _: Reopen) {
    let here = Arc::new(KnownHashes::default());
    assert!(
        !here.certainly_unknown(&store, &hash(9)),
        "a filter never refreshed must send every poll to the store"
    );
    created(&*store, 1, 0).await;
    here.refresh(&*store).await.unwrap();
    assert!(here.certainly_unknown(&store, &hash(9)));
    assert!(!here.certainly_unknown(&store, &hash(1)));

    // Created by another process: known after the next refresh.
    created(&*store, 2, 0).await;
    here.refresh(&*store).await.unwrap();
    assert!(!here.certainly_unknown(&store, &hash(2)));
    // Created by this one: known at once.
    here.insert(&hash(3));
    assert!(!here.certainly_unknown(&store, &hash(3)));

    tokio::time::sleep(known_hashes::TRUST_WINDOW).await;
    assert!(
        !here.certainly_unknown(&store, &hash(9)),
        "a filter not refreshed within the trust window must not answer"
    );
}

/// PostgreSQL hands out ids at insert, so a job can commit after one with a larger id; the
/// refresh that saw the larger id must still pick up the smaller one once it commits.
#[tokio::test]
async fn postgres_known_hashes_see_a_commit_that_lands_after_a_later_id() {
    let database = TestDatabase::start().await;
    let store: Arc<dyn Store> = Arc::new(PostgresStore::open(database.url()).await.unwrap());
    let here = Arc::new(KnownHashes::default());
    here.refresh(&*store).await.unwrap();

    let mut other_process = PgConnection::connect(database.url()).await.unwrap();
    let mut transaction = other_process.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO jobs (request_hash, state, run_after, enqueued_at, request)
         VALUES ($1, 'queued', 0, 0, '{}')",
    )
    .bind(hash(1).to_string())
    .execute(&mut *transaction)
    .await
    .unwrap();
    created(&*store, 2, 0).await;
    here.refresh(&*store).await.unwrap();
    assert!(!here.certainly_unknown(&store, &hash(2)));
    assert!(
        here.certainly_unknown(&store, &hash(1)),
        "an uncommitted job is not in the store yet"
    );

    transaction.commit().await.unwrap();
    here.refresh(&*store).await.unwrap();
    assert!(
        !here.certainly_unknown(&store, &hash(1)),
        "the id skipped by the first refresh was asked for again"
    );
}

/// Start-up against a server that is not there names host, port, database and user, and the
/// cause, but never the password.
#[tokio::test]
async fn postgres_unreachable_server_is_named_without_the_password() {
    let error = PostgresStore::open("postgres://attendant:s3cret@127.0.0.1:1/jobs")
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "cannot connect to PostgreSQL at `127.0.0.1:1`, database `jobs`, user `attendant`"
    );
    let cause = std::error::Error::source(&error).unwrap().to_string();
    assert!(cause.contains("Connection refused"), "{cause}");
    assert!(!format!("{error:?}").contains("s3cret"));
}

/// Submits and claims enough jobs, one after the other, that every pooled connection is used
/// again (issue 20, item 2: a connection left inside a transaction answered every second
/// request with "attempted to call begin_with at non-zero transaction depth").
async fn every_connection_still_works(store: &dyn Store, first: u8) {
    for n in first..first.saturating_add(40) {
        store
            .submit(new_job(n), 1000, 0)
            .await
            .unwrap_or_else(|error| panic!("submit {n} after the fault: {error:?}"));
        let claim = store
            .claim("a", 0, MINUTE)
            .await
            .unwrap_or_else(|error| panic!("claim {n} after the fault: {error:?}"))
            .expect("a queued job to claim");
        store
            .finish(&claim.request_hash, claim.attempt, "{}", 1, MINUTE)
            .await
            .unwrap();
    }
}

/// SQLite rolls a whole transaction back by itself on some errors (`SQLITE_FULL` from a full
/// disk among them, <https://www.sqlite.org/lang_transaction.html>); `RAISE(ROLLBACK)` in a
/// trigger does the same on demand. The connection must not go back to the pool believing it
/// is still inside the transaction.
#[tokio::test]
async fn sqlite_transaction_the_database_rolled_back_does_not_poison_the_pool() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.sqlite");
    let store = SqliteStore::open(&path).await.unwrap();
    created(&store, 1, 0).await;
    let mut admin = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::raw_sql(
        "CREATE TRIGGER refuse_inserts BEFORE INSERT ON jobs
         BEGIN SELECT RAISE(ROLLBACK, 'database or disk is full (injected)'); END",
    )
    .execute(&mut admin)
    .await
    .unwrap();
    for n in 2..6 {
        let error = store.submit(new_job(n), 1000, 0).await.unwrap_err();
        assert!(format!("{error:?}").contains("injected"), "{error:?}");
    }
    sqlx::raw_sql("DROP TRIGGER refuse_inserts")
        .execute(&mut admin)
        .await
        .unwrap();
    every_connection_still_works(&store, 10).await;
}

/// The same with a real full disk: the database on a 16 MiB tmpfs that a filler file fills up
/// (needs root for the mount, as CI has; elsewhere the trigger test above covers the path).
#[tokio::test]
async fn sqlite_commit_on_a_full_disk_is_rolled_back_and_space_freed_is_used_again() {
    let Some(disk) = SmallDisk::mount(16 * 1024 * 1024) else {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let path = disk.path().join("jobs.sqlite");
    let store = SqliteStore::open(&path).await.unwrap();
    created(&store, 1, 0).await;
    let filler = disk.fill();
    let mut big = new_job(2);
    big.request.packages = (0..20_000).map(|n| format!("package-{n:08}")).collect();
    let error = store.submit(big.clone(), 1000, 0).await.unwrap_err();
    assert!(
        format!("{error:?}").contains("full"),
        "expected a full disk: {error:?}"
    );
    std::fs::remove_file(filler).unwrap();
    assert!(matches!(
        store.submit(big, 1000, 0).await.unwrap(),
        Submission::Created(_)
    ));
    store.claim("a", 0, MINUTE).await.unwrap().unwrap();
    every_connection_still_works(&store, 10).await;
}

/// A statement whose commit fails (a deferred constraint trigger that raises at `COMMIT`), then
/// killed backends: the next requests and claims succeed on PostgreSQL too.
#[tokio::test]
async fn postgres_failed_commit_and_killed_backends_leave_the_pool_usable() {
    let database = TestDatabase::start().await;
    let store = PostgresStore::open(database.url()).await.unwrap();
    created(&store, 1, 0).await;
    let mut admin = PgConnection::connect(database.url()).await.unwrap();
    sqlx::raw_sql(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN RAISE EXCEPTION 'could not extend file: No space left on device (injected)'; END $$;
         CREATE CONSTRAINT TRIGGER refuse_at_commit AFTER INSERT OR UPDATE ON jobs
           DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse();",
    )
    .execute(&mut admin)
    .await
    .unwrap();
    for n in 2..6 {
        let error = store.submit(new_job(n), 1000, 0).await.unwrap_err();
        assert!(format!("{error:?}").contains("injected"), "{error:?}");
    }
    let error = store.claim("a", 0, MINUTE).await.unwrap_err();
    assert!(format!("{error:?}").contains("injected"), "{error:?}");
    sqlx::raw_sql("DROP TRIGGER refuse_at_commit ON jobs")
        .execute(&mut admin)
        .await
        .unwrap();
    every_connection_still_works(&store, 10).await;

    let (killed,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
           WHERE application_name = 'attendant-server' AND pid <> pg_backend_pid()) AS killed",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert!(killed > 0, "no backend of the store to kill");
    every_connection_still_works(&store, 100).await;
}
