//! Garbage collection of the artifact store: expired results and their files go together, and
//! nothing stays on disk that no job references — while nothing referenced is deleted.
//!
//! One pass ([`collect`]):
//! 1. delete the job rows whose cached result or failure expired, then their directories (a row
//!    goes first: a crash in between leaves an unreferenced directory, which step 2 removes,
//!    never a row pointing at missing files);
//! 2. walk the store: a `<hash>` entry without a row, an incomplete one (in an object store, a
//!    result without its completion marker: an upload that stopped half-way), or a staging
//!    entry (`.incoming-*`, `.old-*`, `.fetch-*`), older than the grace period is deleted. The
//!    grace period covers a build that is being moved into place (or uploaded) while its row
//!    exists but the walk saw it first, and a worker on another host whose row was just
//!    written;
//! 3. delete statistics rows older than [`crate::stats::RETENTION`].
//!
//! Both artifact backends (a local directory, an S3-compatible bucket) are collected the same
//! way through [`Artifacts::entries`] and [`Artifacts::remove_entry`].
//!
//! [`plan`] finds the same things without deleting anything (`gc --dry-run`), and
//! [`Collection::render`] lists them with their files.
//!
//! ASU (<https://github.com/openwrt/asu>) expires the database entry of a result but never
//! deletes its store directory, so its store only grows; this is the fix.

use std::path::PathBuf;
use std::time::Duration;

use attendant_proto::api::RequestHash;

use crate::artifacts::{ArtifactError, Artifacts, Entry};
use crate::store::{Store, StoreError, UnixMillis};

/// What one collection pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Expired jobs deleted (rows).
    pub expired_jobs: u64,
    /// Their directories deleted.
    pub expired_dirs: u64,
    /// Unreferenced directories and staging leftovers deleted.
    pub orphans: u64,
    /// Statistics rows older than the retention period deleted.
    pub stats_rows: u64,
}

/// Why a collection pass stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GcError {
    /// The job store failed.
    #[error("cannot read the job store")]
    Store(#[from] StoreError),
    /// A file operation failed.
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
}

/// What one pass would delete ([`plan`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Collection {
    /// Finished jobs whose cached outcome expired, with their store directories.
    pub expired: Vec<ExpiredResult>,
    /// Store entries that no job references (and staging leftovers), past the grace period.
    pub orphans: Vec<PathBuf>,
}

/// An expired result and what it leaves on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiredResult {
    /// The job.
    pub request_hash: RequestHash,
    /// Its store directory, if it has one (failed builds have none).
    pub dir: Option<PathBuf>,
    /// The files in that directory, sorted.
    pub files: Vec<PathBuf>,
}

impl Collection {
    /// One line per expired result and per unreferenced entry, the files of each result
    /// indented below it, then a summary line; `verb` says what happens ("would delete").
    pub fn render(&self, verb: &str) -> String {
        let mut out = String::new();
        for result in &self.expired {
            let place = match &result.dir {
                Some(dir) => format!("`{}` ({} files)", dir.display(), result.files.len()),
                None => "no store directory".to_owned(),
            };
            out.push_str(&format!(
                "{verb} expired result {}: {place}\n",
                result.request_hash
            ));
            for file in &result.files {
                out.push_str(&format!("  {}\n", file.display()));
            }
        }
        for orphan in &self.orphans {
            out.push_str(&format!("{verb} unreferenced `{}`\n", orphan.display()));
        }
        out.push_str(&format!(
            "{} expired results, {} unreferenced store entries\n",
            self.expired.len(),
            self.orphans.len()
        ));
        out
    }
}

/// Runs one collection pass at `now`, deleting orphans older than `orphan_grace`.
pub async fn collect(
    store: &dyn Store,
    artifacts: &Artifacts,
    now: UnixMillis,
    orphan_grace: Duration,
) -> Result<GcReport, GcError> {
    let mut report = GcReport::default();
    for hash in store.delete_expired(now).await? {
        report.expired_jobs = report.expired_jobs.saturating_add(1);
        if artifacts.remove(&hash).await? {
            report.expired_dirs = report.expired_dirs.saturating_add(1);
        }
    }
    for entry in orphans(store, artifacts, orphan_grace).await? {
        if artifacts.remove_entry(&entry).await? {
            tracing::info!(entry = %entry.name, "deleted unreferenced store entry");
            report.orphans = report.orphans.saturating_add(1);
        }
    }
    let retention = i64::try_from(crate::stats::RETENTION.as_millis()).unwrap_or(i64::MAX);
    report.stats_rows = store.prune_stats(now.saturating_sub(retention)).await?;
    Ok(report)
}

/// What [`collect`] would delete at `now`; deletes nothing.
pub async fn plan(
    store: &dyn Store,
    artifacts: &Artifacts,
    now: UnixMillis,
    orphan_grace: Duration,
) -> Result<Collection, GcError> {
    let mut collection = Collection::default();
    for request_hash in store.expired(now).await? {
        let (dir, files) = match artifacts.files_of(&request_hash).await? {
            Some((dir, files)) => (Some(dir), files),
            None => (None, Vec::new()),
        };
        collection.expired.push(ExpiredResult {
            request_hash,
            dir,
            files,
        });
    }
    // Expired rows still exist here, so their directories count as referenced and are listed
    // once, above, not again as orphans.
    collection.orphans = orphans(store, artifacts, orphan_grace)
        .await?
        .into_iter()
        .map(|entry| entry.location)
        .collect();
    Ok(collection)
}

/// Store entries older than `grace` that no row references (`<hash>` entries without a row),
/// incomplete results, and staging leftovers. Anything else in the store is not ours and is
/// left alone.
async fn orphans(
    store: &dyn Store,
    artifacts: &Artifacts,
    grace: Duration,
) -> Result<Vec<Entry>, GcError> {
    let mut found = Vec::new();
    for entry in artifacts.entries().await? {
        let old_enough = entry.modified.elapsed().is_ok_and(|age| age >= grace);
        if !old_enough {
            continue;
        }
        let orphan = if let Ok(hash) = entry.name.parse::<RequestHash>() {
            !entry.complete || !store.is_referenced(&hash).await?
        } else {
            STAGING_PREFIXES
                .iter()
                .any(|prefix| entry.name.starts_with(prefix))
        };
        if orphan {
            found.push(entry);
        }
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

/// Names of the store's own staging entries: a build being moved into place, an old result
/// being moved aside, files fetched from an object store.
const STAGING_PREFIXES: [&str; 3] = [".incoming-", ".old-", ".fetch-"];

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use super::*;
    use crate::store::{
        EventKey, EventOutcome, EventQuery, NewJob, SqliteStore, Submission, test_spec,
    };

    fn hash(n: u8) -> RequestHash {
        RequestHash([n; 32])
    }

    /// 1: finished, expired.  2: finished, live.  3: still queued.  4: no row (orphan). Plus a
    /// staging leftover and an entry that is not ours.
    async fn fixture(dir: &Path) -> (Arc<dyn Store>, Artifacts) {
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.join("db.sqlite")).await.unwrap());
        let artifacts = Artifacts::open(&dir.join("store")).unwrap();
        for n in 1..=3 {
            let job = NewJob {
                request_hash: hash(n),
                request: test_spec(n),
            };
            assert!(matches!(
                store.submit(job, 100, 0).await.unwrap(),
                Submission::Created(_)
            ));
        }
        for expires in [100, 1_000_000] {
            let claim = store.claim("w", 0, 60_000).await.unwrap().unwrap();
            store
                .finish(&claim.request_hash, claim.attempt, "{}", 1, expires)
                .await
                .unwrap();
        }
        for n in 1..=4 {
            let job_dir = artifacts.job_dir(&hash(n));
            std::fs::create_dir_all(job_dir.join("sub")).unwrap();
            std::fs::write(job_dir.join("image.bin"), "x").unwrap();
            std::fs::write(job_dir.join("sub/profiles.json"), "{}").unwrap();
        }
        std::fs::create_dir_all(artifacts.root().join(".incoming-x")).unwrap();
        std::fs::create_dir_all(artifacts.root().join("not-a-hash")).unwrap();
        (store, artifacts)
    }

    #[tokio::test]
    async fn deletes_expired_and_orphans_but_nothing_referenced() {
        let dir = tempfile::tempdir().unwrap();
        let (store, artifacts) = fixture(dir.path()).await;

        // Within the grace period only the expired job goes, with its files.
        let report = collect(&*store, &artifacts, 200, Duration::from_secs(3600))
            .await
            .unwrap();
        assert_eq!(
            report,
            GcReport {
                expired_jobs: 1,
                expired_dirs: 1,
                orphans: 0,
                stats_rows: 0
            }
        );
        assert!(!artifacts.job_dir(&hash(1)).exists());
        assert!(
            artifacts.job_dir(&hash(4)).exists(),
            "young orphans are kept"
        );

        // After the grace period the orphan and the staging leftover go; referenced stay.
        let report = collect(&*store, &artifacts, 200, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(report.orphans, 2);
        assert!(!artifacts.job_dir(&hash(4)).exists());
        assert!(!artifacts.root().join(".incoming-x").exists());
        assert!(artifacts.job_dir(&hash(2)).join("image.bin").exists());
        assert!(artifacts.job_dir(&hash(3)).join("image.bin").exists());
        assert!(
            artifacts.root().join("not-a-hash").exists(),
            "foreign entries are left alone"
        );
    }

    #[tokio::test]
    async fn dry_run_lists_what_a_pass_deletes_and_deletes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (store, artifacts) = fixture(dir.path()).await;
        let expired_dir = artifacts.job_dir(&hash(1));

        let young = plan(&*store, &artifacts, 200, Duration::from_secs(3600))
            .await
            .unwrap();
        assert_eq!(
            young,
            Collection {
                expired: vec![ExpiredResult {
                    request_hash: hash(1),
                    dir: Some(expired_dir.clone()),
                    files: vec![
                        expired_dir.join("image.bin"),
                        expired_dir.join("sub/profiles.json")
                    ],
                }],
                orphans: Vec::new(),
            }
        );
        let old = plan(&*store, &artifacts, 200, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(
            old.expired, young.expired,
            "listed once, not as an orphan too"
        );
        assert_eq!(
            old.orphans,
            [
                artifacts.root().join(".incoming-x"),
                artifacts.job_dir(&hash(4))
            ]
        );
        let root = artifacts.root().display().to_string();
        let h1 = hash(1).to_string();
        let h4 = hash(4).to_string();
        assert_eq!(
            old.render("would delete"),
            format!(
                "would delete expired result {h1}: `{root}/{h1}` (2 files)\n\
                 \x20 {root}/{h1}/image.bin\n\
                 \x20 {root}/{h1}/sub/profiles.json\n\
                 would delete unreferenced `{root}/.incoming-x`\n\
                 would delete unreferenced `{root}/{h4}`\n\
                 1 expired results, 2 unreferenced store entries\n"
            )
        );

        // Nothing was touched: the same pass for real still finds all of it.
        assert!(store.is_referenced(&hash(1)).await.unwrap());
        assert!(expired_dir.join("sub/profiles.json").is_file());
        assert!(artifacts.job_dir(&hash(4)).join("image.bin").is_file());
        let report = collect(&*store, &artifacts, 200, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(
            report,
            GcReport {
                expired_jobs: 1,
                expired_dirs: 1,
                orphans: 2,
                stats_rows: 0
            }
        );
    }

    #[tokio::test]
    async fn statistics_past_the_retention_period_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let (store, artifacts) = fixture(dir.path()).await;
        let retention = i64::try_from(crate::stats::RETENTION.as_millis()).unwrap();
        let now = retention + 1000;
        let request = test_spec(1).request;
        for at in [999, 1000, 1001] {
            let event = crate::stats::event(&request, None, EventOutcome::Request, at);
            store.record_event(&event).await.unwrap();
        }
        let report = collect(&*store, &artifacts, now, Duration::from_secs(3600))
            .await
            .unwrap();
        assert_eq!(report.stats_rows, 1, "only the event older than 90 days");
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
        assert_eq!(left.iter().map(|c| c.count).sum::<u64>(), 2);
    }
}
