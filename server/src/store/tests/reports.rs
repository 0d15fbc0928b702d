//! The outcome report tables, in the store suite (both backends).

use std::sync::Arc;

use attendant_proto::channel::ReportResult;

use super::super::*;
use super::Reopen;

fn report(machine: u8, to_build: u64, result: ReportResult, at: UnixMillis) -> StoredReport {
    StoredReport {
        channel: "stable".to_owned(),
        device: "x86/64/generic".to_owned(),
        from_build: 0,
        to_build,
        result,
        cause: result
            .is_failure()
            .then(|| "sysupgrade refused the image".to_owned()),
        machine: format!("{machine:064x}"),
        at,
    }
}

/// A router's repeated report replaces its first; a full build takes no new router but still
/// updates the ones it has; counts group by build and respect `since`; the salt is made once;
/// rollout steps are kept and replaced.
pub(super) async fn reports_are_idempotent_capped_and_counted(
    store: Arc<dyn Store>,
    reopen: Reopen,
) {
    let cap = 3;
    let record = |report: StoredReport| {
        let store = store.clone();
        async move { store.record_report(&report, cap).await.unwrap() }
    };
    assert_eq!(
        record(report(1, 7, ReportResult::RolledBack, 10)).await,
        Recorded::Stored
    );
    assert_eq!(
        record(report(1, 7, ReportResult::Booted, 20)).await,
        Recorded::Replaced
    );
    assert_eq!(
        record(report(2, 7, ReportResult::FailedBeforeFlash, 30)).await,
        Recorded::Stored
    );
    assert_eq!(
        record(report(3, 7, ReportResult::Booted, 40)).await,
        Recorded::Stored
    );
    assert_eq!(
        record(report(4, 7, ReportResult::Booted, 50)).await,
        Recorded::Capped
    );
    assert_eq!(
        record(report(3, 7, ReportResult::RolledBack, 60)).await,
        Recorded::Replaced,
        "a router already counted is updated at the cap"
    );
    assert_eq!(
        record(report(4, 8, ReportResult::Booted, 70)).await,
        Recorded::Stored
    );

    let counts = store
        .report_counts("stable", "x86/64/generic", 0)
        .await
        .unwrap();
    assert_eq!(
        counts.get(&7),
        Some(&ReportCounts {
            booted: 1,
            rolled_back: 1,
            failed_before_flash: 1,
        })
    );
    assert_eq!(counts.get(&8).map(ReportCounts::total), Some(1));
    let recent = store
        .report_counts("stable", "x86/64/generic", 30)
        .await
        .unwrap();
    assert_eq!(recent[&7].total(), 2, "reports at 30 and 60");
    assert!(
        store
            .report_counts("stable", "ath79/generic/other", 0)
            .await
            .unwrap()
            .is_empty()
    );

    let salt = store.report_salt("first").await.unwrap();
    assert_eq!(salt, "first");
    assert_eq!(store.report_salt("second").await.unwrap(), "first");

    assert_eq!(
        store
            .rollout_step("stable", "x86/64/generic", 7)
            .await
            .unwrap(),
        None
    );
    let step = RolloutStep {
        percentage: 10,
        since: 100,
    };
    store
        .set_rollout_step("stable", "x86/64/generic", 7, step)
        .await
        .unwrap();
    let advanced = RolloutStep {
        percentage: 50,
        since: 200,
    };
    store
        .set_rollout_step("stable", "x86/64/generic", 7, advanced)
        .await
        .unwrap();

    assert_eq!(
        store
            .prune_reports("stable", "x86/64/generic", 8)
            .await
            .unwrap(),
        3,
        "build 7's reports go, build 8's stay"
    );
    assert_eq!(
        store
            .rollout_step("stable", "x86/64/generic", 7)
            .await
            .unwrap(),
        None
    );
    store
        .set_rollout_step("stable", "x86/64/generic", 7, advanced)
        .await
        .unwrap();
    store
        .record_report(&report(1, 7, ReportResult::Booted, 80), cap)
        .await
        .unwrap();

    let store = reopen().await;
    assert_eq!(
        store
            .rollout_step("stable", "x86/64/generic", 7)
            .await
            .unwrap(),
        Some(advanced)
    );
    assert_eq!(store.report_salt("third").await.unwrap(), "first");
    assert_eq!(
        store
            .report_counts("stable", "x86/64/generic", 0)
            .await
            .unwrap()[&7]
            .total(),
        1
    );
}
