//! The remote worker table, in the store suite (both backends).

use std::sync::Arc;

use super::super::*;
use super::{Reopen, created, hash};

/// A name is registered once; the token finds its worker until it is revoked, and a revoked
/// worker keeps its row; heartbeats and builds are recorded; every job names its claimer.
pub(super) async fn workers_are_added_found_revoked_and_named_on_jobs(
    store: Arc<dyn Store>,
    reopen: Reopen,
) {
    let token = "ab".repeat(32);
    assert!(store.add_worker("builder-1", &token, 1_000).await.unwrap());
    assert!(
        !store
            .add_worker("builder-1", &"cd".repeat(32), 2_000)
            .await
            .unwrap(),
        "a taken name is refused"
    );
    assert!(
        store
            .add_worker("builder-2", &"ef".repeat(32), 3_000)
            .await
            .unwrap()
    );

    let found = store.worker_by_token(&token).await.unwrap().unwrap();
    assert_eq!(found.name, "builder-1");
    assert_eq!(found.created_at, 1_000);
    assert_eq!(found.revoked_at, None);
    assert!(
        store
            .worker_by_token(&"00".repeat(32))
            .await
            .unwrap()
            .is_none()
    );

    store.touch_worker("builder-1", 5_000).await.unwrap();
    store.count_worker_build("builder-1").await.unwrap();
    store.count_worker_build("builder-1").await.unwrap();

    created(&*store, 1, 0).await;
    let claim = store
        .claim("builder-1", 10, 100_000)
        .await
        .unwrap()
        .unwrap();
    let job = store.job(&hash(1), 10).await.unwrap().unwrap();
    assert_eq!(job.worker.as_deref(), Some("builder-1"));
    store
        .finish(&claim.request_hash, claim.attempt, "{}", 20, 1_000_000)
        .await
        .unwrap();
    let job = store.job(&hash(1), 30).await.unwrap().unwrap();
    assert_eq!(
        job.worker.as_deref(),
        Some("builder-1"),
        "kept once finished"
    );

    assert!(store.revoke_worker("builder-1", 6_000).await.unwrap());
    assert!(
        !store.revoke_worker("builder-1", 7_000).await.unwrap(),
        "once"
    );
    assert!(!store.revoke_worker("nobody", 7_000).await.unwrap());

    let store = reopen().await;
    let workers = store.workers().await.unwrap();
    assert_eq!(
        workers,
        [
            WorkerRecord {
                name: "builder-1".to_owned(),
                created_at: 1_000,
                last_heartbeat: Some(5_000),
                builds: 2,
                revoked_at: Some(6_000),
            },
            WorkerRecord {
                name: "builder-2".to_owned(),
                created_at: 3_000,
                last_heartbeat: None,
                builds: 0,
                revoked_at: None,
            },
        ]
    );
    let revoked = store.worker_by_token(&token).await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(6_000));
}
