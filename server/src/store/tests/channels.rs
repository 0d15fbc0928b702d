//! The channel half of the store suite ([`ChannelStore`]), run on both backends with the same
//! fixtures as the job suite.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::Reopen;
use crate::channels::model::{BuildState, Channel, Device, test_build, test_channel};
use crate::store::channel_store::{
    AuditEntry, ChannelStore, Snapshot, TREE_REVISION_KEY, TreeChange,
};
use crate::store::{Store, StoreError};

macro_rules! channel_suite {
    ($backend:ident, $fixture:path) => {
        mod $backend {
            channel_suite!(@tests $fixture;
                committed_tree_reads_back,
                stale_revision_is_refused_and_nothing_is_written,
                concurrent_commits_from_one_snapshot_let_exactly_one_win,
                creating_an_existing_channel_conflicts,
                removed_channel_takes_its_devices,
                only_changed_devices_get_a_new_revision,
                serial_increments_atomically,
                a_counter_only_rises,
                pool_downloads_add_up_per_file,
                lock_is_a_lease,
                pending_builds_are_listed,
                audit_log_pages_in_order,
                conflicts_leave_the_store_usable,
                tree_survives_reopen,
                tree_revision_moves_with_every_commit_and_the_cached_tree_follows
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

channel_suite!(sqlite, super::super::sqlite_fixture);
channel_suite!(postgres, super::super::postgres_fixture);

const DEVICE: &str = "ath79/generic/tplink_archer-c7-v5";

fn audit(operation: &str) -> AuditEntry {
    AuditEntry {
        at_ms: 1,
        actor: "cli:test".to_owned(),
        operation: operation.to_owned(),
        target: "stable".to_owned(),
        before: "{}".to_owned(),
        after: "{}".to_owned(),
    }
}

fn with_device(mut channel: Channel, device: &str, builds: &[u64]) -> Channel {
    let device_entry = Device {
        builds: builds.iter().map(|n| test_build(*n)).collect(),
        last_build: builds.iter().copied().max().unwrap_or(0),
        ..Device::default()
    };
    channel.devices.insert(device.to_owned(), device_entry);
    channel
}

fn put(snapshot: &Snapshot, channels: &[Channel]) -> TreeChange {
    let touched: BTreeMap<String, Option<Channel>> = channels
        .iter()
        .map(|channel| (channel.name.clone(), Some(channel.clone())))
        .collect();
    TreeChange::from_snapshot(snapshot, &touched)
}

async fn commit(store: &dyn ChannelStore, channels: &[Channel]) {
    let snapshot = store.snapshot().await.unwrap();
    store
        .commit(&put(&snapshot, channels), &audit("test"))
        .await
        .unwrap();
}

async fn committed_tree_reads_back(store: Arc<dyn Store>, _: Reopen) {
    let channels = store.channels();
    let stable = with_device(test_channel("stable"), DEVICE, &[1, 2]);
    let canary = test_channel("lab/canary");
    commit(channels, &[stable.clone(), canary.clone()]).await;
    let tree = channels.load_tree().await.unwrap();
    assert_eq!(tree, vec![canary.clone(), stable.clone()]);
    assert_eq!(channels.load_channel("stable").await.unwrap(), Some(stable));
    assert_eq!(channels.load_channel("missing").await.unwrap(), None);
    let snapshot = channels.snapshot().await.unwrap();
    assert_eq!(snapshot.revisions["stable"], 1);
    assert_eq!(
        snapshot.device_revisions[&("stable".to_owned(), DEVICE.to_owned())],
        1
    );
}

async fn stale_revision_is_refused_and_nothing_is_written(store: Arc<dyn Store>, _: Reopen) {
    let channels = store.channels();
    commit(channels, &[test_channel("stable"), test_channel("testing")]).await;
    let stale = channels.snapshot().await.unwrap();
    let mut hidden = test_channel("stable");
    hidden.hidden = true;
    commit(channels, &[hidden.clone()]).await;

    // A change computed from the stale snapshot touches both channels; `testing` alone would
    // pass, but the transaction is all or nothing.
    let mut testing = test_channel("testing");
    testing.hidden = true;
    let refused = channels
        .commit(
            &put(&stale, &[test_channel("stable"), testing]),
            &audit("late"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, StoreError::ChannelConflict { channel } if channel == "stable"),
        "{refused:?}"
    );
    let after = channels.snapshot().await.unwrap();
    assert_eq!(after.channels["stable"], hidden);
    assert!(!after.channels["testing"].hidden);
    let log = channels.audit_log(0, 100).await.unwrap();
    assert!(log.iter().all(|record| record.entry.operation != "late"));
}

async fn concurrent_commits_from_one_snapshot_let_exactly_one_win(
    store: Arc<dyn Store>,
    _: Reopen,
) {
    commit(store.channels(), &[test_channel("stable")]).await;
    let snapshot = store.channels().snapshot().await.unwrap();
    let tasks: Vec<_> = (0..10u32)
        .map(|n| {
            let store = store.clone();
            let mut channel = test_channel("stable");
            channel.settings.fullcount = n;
            let change = put(&snapshot, &[channel]);
            tokio::spawn(async move { store.channels().commit(&change, &audit("race")).await })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => won += 1,
            Err(StoreError::ChannelConflict { .. }) => {}
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(
        store.channels().snapshot().await.unwrap().revisions["stable"],
        2
    );
}

async fn creating_an_existing_channel_conflicts(store: Arc<dyn Store>, _: Reopen) {
    let channels = store.channels();
    let empty = channels.snapshot().await.unwrap();
    commit(channels, &[test_channel("stable")]).await;
    let error = channels
        .commit(&put(&empty, &[test_channel("stable")]), &audit("create"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, StoreError::ChannelConflict { .. }),
        "{error:?}"
    );
}

async fn removed_channel_takes_its_devices(store: Arc<dyn Store>, _: Reopen) {
    let channels = store.channels();
    commit(channels, &[with_device(test_channel("old"), DEVICE, &[1])]).await;
    let snapshot = channels.snapshot().await.unwrap();
    let touched = BTreeMap::from([("old".to_owned(), None)]);
    channels
        .commit(
            &TreeChange::from_snapshot(&snapshot, &touched),
            &audit("remove"),
        )
        .await
        .unwrap();
    let after = channels.snapshot().await.unwrap();
    assert!(after.channels.is_empty());
    assert!(after.device_revisions.is_empty());
    // The name is free again.
    commit(channels, &[test_channel("old")]).await;
    assert!(
        channels
            .load_channel("old")
            .await
            .unwrap()
            .unwrap()
            .devices
            .is_empty()
    );
}

async fn only_changed_devices_get_a_new_revision(store: Arc<dyn Store>, _: Reopen) {
    let channels = store.channels();
    let other = "x86/64/generic";
    let stable = with_device(
        with_device(test_channel("stable"), DEVICE, &[1]),
        other,
        &[1],
    );
    commit(channels, std::slice::from_ref(&stable)).await;
    let mut changed = stable;
    changed
        .devices
        .get_mut(DEVICE)
        .unwrap()
        .builds
        .push(test_build(2));
    commit(channels, &[changed]).await;
    let snapshot = channels.snapshot().await.unwrap();
    let revision =
        |device: &str| snapshot.device_revisions[&("stable".to_owned(), device.to_owned())];
    assert_eq!(revision(DEVICE), 2);
    assert_eq!(revision(other), 1);
    assert_eq!(snapshot.revisions["stable"], 2);
}

async fn serial_increments_atomically(store: Arc<dyn Store>, _: Reopen) {
    assert_eq!(store.channels().current_serial().await.unwrap(), 0);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.channels().next_serial().await.unwrap() })
        })
        .collect();
    let mut serials = Vec::new();
    for task in tasks {
        serials.push(task.await.unwrap());
    }
    serials.sort_unstable();
    assert_eq!(serials, (1..=20).collect::<Vec<u64>>());
    assert_eq!(store.channels().current_serial().await.unwrap(), 20);
}

async fn a_counter_only_rises(store: Arc<dyn Store>, _: Reopen) {
    let channels = store.channels();
    let key = "remote-serial https://upgrade.example.org";
    assert_eq!(channels.counter(key).await.unwrap(), 0);
    assert_eq!(channels.raise_counter(key, 7).await.unwrap(), 7);
    assert_eq!(
        channels.raise_counter(key, 3).await.unwrap(),
        7,
        "never lowered"
    );
    assert_eq!(channels.raise_counter(key, 9).await.unwrap(), 9);
    assert_eq!(channels.counter(key).await.unwrap(), 9);
    // Counters are apart from the publication serial.
    assert_eq!(channels.current_serial().await.unwrap(), 0);
}

async fn pool_downloads_add_up_per_file(store: Arc<dyn Store>, _: Reopen) {
    let channels = store.channels();
    let download = |sha256: &str, image: &str, count| crate::store::ImageDownloads {
        request_hash: sha256.to_owned(),
        image: image.to_owned(),
        count,
    };
    channels
        .add_pool_downloads(
            &[download("aa", "x.bin", 2), download("bb", "y.bin", 1)],
            10,
        )
        .await
        .unwrap();
    channels
        .add_pool_downloads(&[download("aa", "x.bin", 3)], 20)
        .await
        .unwrap();
    let counts = channels
        .pool_downloads(&["aa".to_owned(), "cc".to_owned()])
        .await
        .unwrap();
    assert_eq!(
        counts,
        BTreeMap::from([(("aa".to_owned(), "x.bin".to_owned()), 5)])
    );
    assert!(channels.pool_downloads(&[]).await.unwrap().is_empty());
}

async fn lock_is_a_lease(store: Arc<dyn Store>, _: Reopen) {
    let channels = store.channels();
    assert!(channels.try_lock("import", "a", 1000, 0).await.unwrap());
    assert!(!channels.try_lock("import", "b", 1000, 500).await.unwrap());
    // The holder renews.
    assert!(channels.try_lock("import", "a", 1000, 900).await.unwrap());
    assert!(!channels.try_lock("import", "b", 1000, 1500).await.unwrap());
    // Another lock name is independent.
    assert!(channels.try_lock("other", "b", 1000, 1500).await.unwrap());
    // A dead holder's lease runs out.
    assert!(channels.try_lock("import", "b", 1000, 1900).await.unwrap());
    assert!(!channels.unlock("import", "a").await.unwrap());
    assert!(channels.unlock("import", "b").await.unwrap());
    assert!(channels.try_lock("import", "c", 1000, 1901).await.unwrap());

    // Many contenders at once: exactly one gets it.
    let tasks: Vec<_> = (0..10)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .channels()
                    .try_lock("race", &format!("h{n}"), 60_000, 0)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut holders = 0;
    for task in tasks {
        if task.await.unwrap() {
            holders += 1;
        }
    }
    assert_eq!(holders, 1);
}

async fn pending_builds_are_listed(store: Arc<dyn Store>, _: Reopen) {
    let channels = store.channels();
    let mut stable = with_device(test_channel("stable"), DEVICE, &[1, 2, 3]);
    let device = stable.devices.get_mut(DEVICE).unwrap();
    device.builds[1].state = BuildState::Pending {
        request_hash: "ab".repeat(32),
    };
    device.builds[2].state = BuildState::Failed {
        reason: "no".to_owned(),
    };
    commit(
        channels,
        &[
            stable.clone(),
            with_device(test_channel("testing"), DEVICE, &[1]),
        ],
    )
    .await;
    let pending = channels.pending_builds().await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].channel, "stable");
    assert_eq!(pending[0].device, DEVICE);
    assert_eq!(pending[0].number, 2);
    assert_eq!(pending[0].request_hash, "ab".repeat(32));

    stable.devices.get_mut(DEVICE).unwrap().builds[1].state = BuildState::Ready;
    commit(channels, &[stable]).await;
    assert!(channels.pending_builds().await.unwrap().is_empty());
}

async fn audit_log_pages_in_order(store: Arc<dyn Store>, _: Reopen) {
    let channels = store.channels();
    for n in 0..5 {
        let snapshot = channels.snapshot().await.unwrap();
        let mut channel = test_channel("stable");
        channel.settings.fullcount = n;
        channels
            .commit(&put(&snapshot, &[channel]), &audit(&format!("op{n}")))
            .await
            .unwrap();
    }
    let first = channels.audit_log(0, 3).await.unwrap();
    let operations: Vec<&str> = first.iter().map(|r| r.entry.operation.as_str()).collect();
    assert_eq!(operations, ["op0", "op1", "op2"]);
    let rest = channels.audit_log(first[2].id, 100).await.unwrap();
    let operations: Vec<&str> = rest.iter().map(|r| r.entry.operation.as_str()).collect();
    assert_eq!(operations, ["op3", "op4"]);
    assert_eq!(rest[0].entry.actor, "cli:test");
}

/// Issue 20: a connection must never go back to the pool inside a failed transaction. Many
/// refused commits in a row, then ordinary work on every pooled connection.
async fn conflicts_leave_the_store_usable(store: Arc<dyn Store>, _: Reopen) {
    let channels = store.channels();
    let empty = channels.snapshot().await.unwrap();
    commit(channels, &[test_channel("stable")]).await;
    for _ in 0..40 {
        let error = channels
            .commit(&put(&empty, &[test_channel("stable")]), &audit("refused"))
            .await
            .unwrap_err();
        assert!(matches!(error, StoreError::ChannelConflict { .. }));
    }
    let tasks: Vec<_> = (0..20)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                loop {
                    let channels = store.channels();
                    let snapshot = channels.snapshot().await.unwrap();
                    let mut channel = test_channel("stable");
                    channel.settings.fullcount = n;
                    match channels
                        .commit(&put(&snapshot, &[channel]), &audit("retry"))
                        .await
                    {
                        Ok(()) => return,
                        Err(StoreError::ChannelConflict { .. }) => {}
                        Err(other) => panic!("{other:?}"),
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        tokio::time::timeout(std::time::Duration::from_secs(30), task)
            .await
            .expect("a commit hung behind an abandoned transaction")
            .unwrap();
    }
    assert_eq!(channels.snapshot().await.unwrap().revisions["stable"], 21);
    assert!(
        channels
            .audit_log(0, 1000)
            .await
            .unwrap()
            .iter()
            .all(|r| r.entry.operation != "refused")
    );
}

async fn tree_survives_reopen(store: Arc<dyn Store>, reopen: Reopen) {
    let stable = with_device(test_channel("stable"), DEVICE, &[1]);
    commit(store.channels(), std::slice::from_ref(&stable)).await;
    store.channels().next_serial().await.unwrap();
    drop(store);
    let reopened = reopen().await;
    assert_eq!(reopened.channels().load_tree().await.unwrap(), vec![stable]);
    assert_eq!(reopened.channels().current_serial().await.unwrap(), 1);
}

async fn tree_revision_moves_with_every_commit_and_the_cached_tree_follows(
    store: Arc<dyn Store>,
    _: Reopen,
) {
    use crate::channels::cache::{REVALIDATE_EVERY, TreeCache};
    let channels = store.channels();
    assert_eq!(channels.counter(TREE_REVISION_KEY).await.unwrap(), 0);
    let cache = TreeCache::default();
    assert_eq!(cache.encoded(channels).await.unwrap().as_ref(), b"[]");
    commit(channels, &[test_channel("stable")]).await;
    assert_eq!(channels.counter(TREE_REVISION_KEY).await.unwrap(), 1);
    // A refused commit changes nothing, the counter included.
    let stale = channels.snapshot().await.unwrap();
    commit(
        channels,
        &[with_device(test_channel("stable"), DEVICE, &[1])],
    )
    .await;
    let refused = channels
        .commit(&put(&stale, &[test_channel("stable")]), &audit("stale"))
        .await;
    assert!(matches!(refused, Err(StoreError::ChannelConflict { .. })));
    assert_eq!(channels.counter(TREE_REVISION_KEY).await.unwrap(), 2);
    // Committed behind the cache's back (another process): seen within the interval.
    let started = std::time::Instant::now();
    let expected = serde_json::to_vec(&channels.load_tree().await.unwrap()).unwrap();
    loop {
        if cache.encoded(channels).await.unwrap() == expected {
            break;
        }
        assert!(
            started.elapsed() < REVALIDATE_EVERY * 3,
            "the cached tree did not follow the store"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Committed by this process: seen at once.
    commit(channels, &[test_channel("testing")]).await;
    cache.invalidate();
    let tree: serde_json::Value =
        serde_json::from_slice(&cache.encoded(channels).await.unwrap()).unwrap();
    assert_eq!(tree.as_array().unwrap().len(), 2, "{tree}");
}
