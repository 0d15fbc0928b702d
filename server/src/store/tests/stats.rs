//! The statistics tables, in the store suite (both backends).

use std::sync::Arc;

use super::super::*;
use super::Reopen;

fn event(at: UnixMillis, outcome: EventOutcome, version: &str, target: &str) -> BuildEvent {
    BuildEvent {
        at,
        outcome,
        version: version.to_owned(),
        target: target.to_owned(),
        profile: "generic".to_owned(),
        client: "owut/1".to_owned(),
        packages: vec!["luci".to_owned(), "tcpdump".to_owned()],
        detail: (outcome == EventOutcome::Failure).then(|| format!("Error: broke at {at}")),
        duration_ms: None,
    }
}

pub(super) async fn build_events_are_counted_per_bucket_and_pruned(
    store: Arc<dyn Store>,
    _: Reopen,
) {
    let day = 24 * 3600 * 1000;
    let events = [
        event(10, EventOutcome::Request, "24.10.5", "x86/64"),
        event(20, EventOutcome::Success, "24.10.5", "x86/64"),
        event(day + 5, EventOutcome::Success, "23.05.4", "ath79/generic"),
        event(day + 6, EventOutcome::Failure, "24.10.4", "x86/64"),
        event(day + 7, EventOutcome::Failure, "24.10.4", "x86/64"),
    ];
    // One at a time (a finished build) and in one batch (the request events the server
    // queues): both end up as the same rows.
    let (single, batch) = events.split_at(2);
    for event in single {
        store.record_event(event).await.unwrap();
    }
    let batch: Vec<(BuildEvent, u64)> = batch.iter().map(|event| (event.clone(), 1)).collect();
    store.record_events(&batch).await.unwrap();
    let query = |key, outcome, prefix: &str| EventQuery {
        since: 0,
        bucket_ms: day,
        key,
        outcome,
        version_prefix: prefix.to_owned(),
    };
    let by_version = store
        .event_counts(query(EventKey::Version, Some(EventOutcome::Success), ""))
        .await
        .unwrap();
    assert_eq!(
        by_version,
        [
            EventCount {
                bucket: 0,
                key: "24.10.5".to_owned(),
                count: 1
            },
            EventCount {
                bucket: 1,
                key: "23.05.4".to_owned(),
                count: 1
            },
        ]
    );
    let in_branch = store
        .event_counts(query(EventKey::Outcome, None, "24.10"))
        .await
        .unwrap();
    let summary: Vec<(i64, &str, u64)> = in_branch
        .iter()
        .map(|c| (c.bucket, c.key.as_str(), c.count))
        .collect();
    assert_eq!(
        summary,
        [(0, "request", 1), (0, "success", 1), (1, "failure", 2)]
    );
    // A prefix is a prefix, not a pattern: `%` matches nothing.
    assert!(
        store
            .event_counts(query(EventKey::Outcome, None, "%"))
            .await
            .unwrap()
            .is_empty()
    );

    let packages = store.success_packages(0, "24.10").await.unwrap();
    assert_eq!(
        packages,
        [(vec!["luci".to_owned(), "tcpdump".to_owned()], 1)]
    );

    let failures = store.recent_failures(1).await.unwrap();
    assert_eq!(failures.len(), 1);
    assert_eq!(
        failures[0].detail.as_deref(),
        Some("Error: broke at 86400007")
    );
    assert_eq!(failures[0].target, "x86/64");

    assert_eq!(store.prune_stats(day).await.unwrap(), 2);
    let left = store
        .event_counts(EventQuery {
            bucket_ms: i64::MAX,
            ..query(EventKey::Outcome, None, "")
        })
        .await
        .unwrap();
    let total: u64 = left.iter().map(|c| c.count).sum();
    assert_eq!(total, 3);

    // Counted copies (the server's request events) count as many events; a count of 0 none.
    let hits = event(2 * day + 1, EventOutcome::CacheHit, "22.03.7", "x86/64");
    let nothing = event(2 * day + 2, EventOutcome::Request, "22.03.7", "x86/64");
    store
        .record_events(&[(hits, 3), (nothing, 0)])
        .await
        .unwrap();
    let counted = store
        .event_counts(query(EventKey::Outcome, None, "22.03"))
        .await
        .unwrap();
    assert_eq!(
        counted,
        [EventCount {
            bucket: 2,
            key: "cache_hit".to_owned(),
            count: 3
        }]
    );
}

pub(super) async fn download_counts_add_up(store: Arc<dyn Store>, _: Reopen) {
    let download = |hash: &str, image: &str, count| ImageDownloads {
        request_hash: hash.to_owned(),
        image: image.to_owned(),
        count,
    };
    store
        .add_downloads(&[download("a", "x.bin", 2), download("b", "y.bin", 1)], 100)
        .await
        .unwrap();
    store
        .add_downloads(&[download("b", "y.bin", 4)], 200)
        .await
        .unwrap();
    assert_eq!(
        store.downloads(None, 10).await.unwrap(),
        [download("b", "y.bin", 5), download("a", "x.bin", 2)]
    );
    assert_eq!(
        store.downloads(Some("a"), 10).await.unwrap(),
        [download("a", "x.bin", 2)]
    );
    assert_eq!(store.downloads(None, 1).await.unwrap().len(), 1);
    // Pruning goes by the last download: `b` was downloaded at 200.
    assert_eq!(store.prune_stats(150).await.unwrap(), 1);
    assert_eq!(
        store.downloads(None, 10).await.unwrap(),
        [download("b", "y.bin", 5)]
    );
}

const DAY: UnixMillis = 24 * 3600 * 1000;
/// 2026-12-06 12:00 UTC: the 30 daily buckets of `builds-per-day` end at the next midnight,
/// so an event `k` days before this lands in bucket `29 - k`.
const NOW: UnixMillis = 1_796_558_400_000;

fn facts(
    at: UnixMillis,
    outcome: EventOutcome,
    (version, target, profile, client): (&str, &str, &str, &str),
) -> BuildEvent {
    BuildEvent {
        at,
        outcome,
        version: version.to_owned(),
        target: target.to_owned(),
        profile: profile.to_owned(),
        client: client.to_owned(),
        packages: Vec::new(),
        detail: None,
        duration_ms: None,
    }
}

const LUCI: (&str, &str, &str, &str) = ("24.10.5", "x86/64", "generic", "luci/25.1");
const OWUT: (&str, &str, &str, &str) = ("23.05.4", "ath79/generic", "archer-c7", "owut/1");
const AUC: (&str, &str, &str, &str) = ("SNAPSHOT", "mediatek/filogic", "bpi-r4", "auc/0.3.2");

/// A stream of events the way the server records them: request events counted in memory and
/// written with their counts, finished builds one at a time; a few successes and failures also
/// come counted, as `record_events` allows any outcome. Each entry is an event and how many
/// identical copies of it happened.
fn stream() -> Vec<(BuildEvent, u64)> {
    let success = |at, request, packages: &[&str]| BuildEvent {
        packages: packages.iter().map(|&p| p.to_owned()).collect(),
        duration_ms: Some(60_000),
        ..facts(at, EventOutcome::Success, request)
    };
    let failure = |at, request, detail: &str| BuildEvent {
        detail: Some(detail.to_owned()),
        ..facts(at, EventOutcome::Failure, request)
    };
    vec![
        (facts(NOW - 2 * DAY, EventOutcome::Request, LUCI), 5),
        (facts(NOW - 2 * DAY + 1, EventOutcome::CacheHit, LUCI), 3),
        (facts(NOW - 10 * DAY, EventOutcome::Request, OWUT), 2),
        (facts(NOW - 10 * DAY, EventOutcome::CacheHit, OWUT), 0),
        (facts(NOW - DAY, EventOutcome::Request, AUC), 1),
        (success(NOW - 2 * DAY + 100, LUCI, &["luci", "tcpdump"]), 1),
        (success(NOW - 2 * DAY + 200, LUCI, &["luci", "tcpdump"]), 2),
        (success(NOW - 10 * DAY + 5, OWUT, &["luci"]), 1),
        (
            success(
                NOW - DAY + 5,
                AUC,
                &["luci-app-attendedsysupgrade", "tcpdump"],
            ),
            1,
        ),
        (failure(NOW - 40 * DAY, AUC, "Error: old"), 1),
        (failure(NOW - 3 * DAY, LUCI, "Error: twice"), 2),
        (failure(NOW - DAY + 7, LUCI, "Error: broke"), 1),
    ]
}

/// Records [`stream`] as the server does: counted events in one batch, the rest one at a time.
async fn record_stream(store: &dyn Store) {
    let (single, counted): (Vec<_>, Vec<_>) = stream().into_iter().partition(|(event, count)| {
        *count == 1 && matches!(event.outcome, EventOutcome::Success | EventOutcome::Failure)
    });
    for (event, _) in &single {
        store.record_event(event).await.unwrap();
    }
    store.record_events(&counted).await.unwrap();
}

/// Only `slots` set (bucket, value) in `len` buckets.
fn series(len: usize, slots: &[(usize, u64)]) -> Vec<u64> {
    let mut data = vec![0; len];
    for &(slot, value) in slots {
        data[slot] = value;
    }
    data
}

/// What every statistics endpoint answers for [`stream`] recorded `times` times over (the
/// errors log is checked for `times == 1` only): pinned from the answers of the store that
/// kept one row per event.
async fn assert_answers(store: &dyn Store, times: u64) {
    use crate::stats;

    let per_day = stats::builds_per_day(store, NOW).await.unwrap();
    assert_eq!(per_day.labels.len(), 30);
    assert_eq!(per_day.labels[29], "2026-12-06Z");
    let lines: Vec<(&str, &[u64])> = per_day
        .datasets
        .iter()
        .map(|line| (line.label.as_str(), line.data.as_slice()))
        .collect();
    assert_eq!(
        lines,
        [
            (
                "Requests",
                series(30, &[(19, 2 * times), (27, 5 * times), (28, times)]).as_slice()
            ),
            ("Cache-Hits", series(30, &[(27, 3 * times)]).as_slice()),
            (
                "Failures",
                series(30, &[(26, 2 * times), (28, times)]).as_slice()
            ),
        ]
    );

    let by_branch = stats::builds_by_version(store, None, NOW).await.unwrap();
    let lines: Vec<(&str, Vec<u64>)> = by_branch
        .datasets
        .iter()
        .map(|line| (line.label.as_str(), line.data.clone()))
        .collect();
    assert_eq!(
        lines,
        [
            ("23.05", series(26, &[(24, times)])),
            ("24.10", series(26, &[(25, 3 * times)])),
            ("SNAPSHOT", series(26, &[(25, times)])),
        ]
    );
    let in_branch = stats::builds_by_version(store, Some("24.10"), NOW)
        .await
        .unwrap();
    assert_eq!(in_branch.datasets.len(), 1);
    assert_eq!(in_branch.datasets[0].label, "24.10.5");
    assert_eq!(in_branch.datasets[0].data, series(26, &[(25, 3 * times)]));

    let named = |list: Vec<stats::NameCount>| -> Vec<(String, u64)> {
        list.into_iter().map(|c| (c.name, c.count)).collect()
    };
    let owned = |pairs: &[(&str, u64)]| -> Vec<(String, u64)> {
        pairs.iter().map(|&(n, c)| (n.to_owned(), c)).collect()
    };
    let packages = stats::top_packages(store, None, 30, NOW).await.unwrap();
    assert_eq!(
        named(packages.packages),
        owned(&[
            ("luci", 4 * times),
            ("tcpdump", 4 * times),
            ("luci-app-attendedsysupgrade", times)
        ])
    );
    let packages = stats::top_packages(store, Some("24.10"), 1, NOW)
        .await
        .unwrap();
    assert_eq!(named(packages.packages), owned(&[("luci", 3 * times)]));
    let targets = stats::top(store, EventKey::Target, 30, NOW).await.unwrap();
    assert_eq!(
        named(targets),
        owned(&[
            ("x86/64", 3 * times),
            ("ath79/generic", times),
            ("mediatek/filogic", times)
        ])
    );
    let profiles = stats::top(store, EventKey::Profile, 2, NOW).await.unwrap();
    assert_eq!(
        named(profiles),
        owned(&[("generic", 3 * times), ("archer-c7", times)])
    );
    let clients = stats::top(store, EventKey::Client, 30, NOW).await.unwrap();
    assert_eq!(
        named(clients),
        owned(&[
            ("luci/25.1", 5 * times),
            ("owut/1", 2 * times),
            ("auc/0.3.2", times)
        ])
    );

    if times == 1 {
        assert_eq!(
            stats::build_errors(store, 100).await.unwrap(),
            "Build Errors: 4 entries\n\
             Time range: 2026-10-27 - 2026-12-05\n\n\
             2026-10-27 12:00:00 SNAPSHOT:mediatek/filogic:bpi-r4 Error: old\n\
             2026-12-03 12:00:00 24.10.5:x86/64:generic Error: twice\n\
             2026-12-03 12:00:00 24.10.5:x86/64:generic Error: twice\n\
             2026-12-05 12:00:00 24.10.5:x86/64:generic Error: broke\n"
        );
        let last_two: Vec<String> = store
            .recent_failures(2)
            .await
            .unwrap()
            .into_iter()
            .map(|failure| failure.detail.unwrap())
            .collect();
        assert_eq!(last_two, ["Error: broke", "Error: twice"]);
    }
}

/// Every statistics answer counts events, however they were written: one row each or counted.
pub(super) async fn statistics_answer_per_event(store: Arc<dyn Store>, _: Reopen) {
    record_stream(&*store).await;
    assert_answers(&*store, 1).await;
    // Retention counts events too: the failure 40 days back, then the `owut` request (two),
    // success and (zero) cache hits 10 days back.
    assert_eq!(store.prune_stats(NOW - 35 * DAY).await.unwrap(), 1);
    assert_eq!(store.prune_stats(NOW - 9 * DAY).await.unwrap(), 3);
    let left = store
        .event_counts(EventQuery {
            since: 0,
            bucket_ms: i64::MAX,
            key: EventKey::Outcome,
            outcome: None,
            version_prefix: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(left.iter().map(|c| c.count).sum::<u64>(), 16);
}

/// Two `serve` processes on one database, each with its own event queue, flushing at the same
/// time: every event of both is counted.
pub(super) async fn concurrent_flushes_of_two_stores_add_up(store: Arc<dyn Store>, reopen: Reopen) {
    use crate::stats::{EventQueue, RequestFacts};

    let other = reopen().await;
    let request = attendant_proto::api::BuildRequest::new("24.10.5", "x86/64", "generic");
    let facts = Arc::new(RequestFacts::of(&request, None));
    let queues = [
        (Arc::new(EventQueue::default()), Arc::clone(&store)),
        (Arc::new(EventQueue::default()), other),
    ];
    const PER_QUEUE: u64 = 2_000;
    let tasks: Vec<_> = queues
        .iter()
        .map(|(queue, store)| {
            let (queue, store, facts) = (Arc::clone(queue), Arc::clone(store), Arc::clone(&facts));
            tokio::spawn(async move {
                for n in 0..PER_QUEUE {
                    let outcome = if n % 4 == 0 {
                        EventOutcome::CacheHit
                    } else {
                        EventOutcome::Request
                    };
                    queue.record(&store, &facts, outcome, NOW + i64::try_from(n).unwrap());
                    if n % 100 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let counted = || async {
        let counts = store
            .event_counts(EventQuery {
                since: 0,
                bucket_ms: i64::MAX,
                key: EventKey::Outcome,
                outcome: None,
                version_prefix: String::new(),
            })
            .await
            .unwrap();
        counts
            .into_iter()
            .map(|count| (count.key, count.count))
            .collect::<Vec<_>>()
    };
    let expected = vec![
        ("cache_hit".to_owned(), PER_QUEUE / 2),
        ("request".to_owned(), 3 * PER_QUEUE / 2),
    ];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut seen = counted().await;
    while seen != expected && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        seen = counted().await;
    }
    assert_eq!(seen, expected);
}

/// Inserts [`stream`] as a database at migration 0006 held it: one row per event.
macro_rules! insert_old_rows {
    ($pool:expr) => {
        for (event, count) in stream() {
            for _ in 0..count {
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
                .execute($pool)
                .await
                .unwrap();
            }
        }
    };
}

/// The last migration before build events carried a count.
const BEFORE_COUNTS: i64 = 6;

/// A database written before events were counted answers as it did, and events counted
/// afterwards add to the old rows.
async fn old_rows_answer_after_migration(store: Arc<dyn Store>) {
    assert_answers(&*store, 1).await;
    record_stream(&*store).await;
    assert_answers(&*store, 2).await;
}

#[tokio::test]
async fn sqlite_rows_from_before_counts_answer_after_migration() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.sqlite");
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    sqlx::migrate!("./migrations/sqlite")
        .run_to(BEFORE_COUNTS, &pool)
        .await
        .unwrap();
    insert_old_rows!(&pool);
    pool.close().await;
    let store = Arc::new(SqliteStore::open(&path).await.unwrap());
    old_rows_answer_after_migration(store).await;
}

#[tokio::test]
async fn postgres_rows_from_before_counts_answer_after_migration() {
    let database = super::TestDatabase::start().await;
    let pool = sqlx::PgPool::connect(database.url()).await.unwrap();
    sqlx::migrate!("./migrations/postgres")
        .run_to(BEFORE_COUNTS, &pool)
        .await
        .unwrap();
    insert_old_rows!(&pool);
    pool.close().await;
    let store = Arc::new(PostgresStore::open(database.url()).await.unwrap());
    old_rows_answer_after_migration(store).await;
    drop(database);
}
