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
    assert_eq!(packages, [vec!["luci".to_owned(), "tcpdump".to_owned()]]);

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

    // Counted copies (the server's request events) become as many rows; a count of 0 none.
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
