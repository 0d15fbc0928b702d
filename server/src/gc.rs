//! Garbage collection of the artifact store: expired results and their files go together, and
//! nothing stays on disk that no job references — while nothing referenced is deleted.
//!
//! One pass ([`collect`]):
//! 1. delete the job rows whose cached result or failure expired, then their directories (a row
//!    goes first: a crash in between leaves an unreferenced directory, which step 2 removes,
//!    never a row pointing at missing files);
//! 2. walk the store: a `<hash>` directory without a row, or a staging entry (`.incoming-*`,
//!    `.old-*`), older than the grace period is deleted. The grace period covers a build
//!    that is being moved into place while its row exists but the walk saw the directory
//!    first, and a worker on another host whose row was just written.
//!
//! ASU never deletes store directories (asu-server.md §3.2 "File expiry"); this is the fix.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use attendant_proto::api::RequestHash;

use crate::artifacts::{ArtifactError, Artifacts, remove_tree};
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
    for (name, path, modified) in list(artifacts).await? {
        let old_enough = modified.elapsed().is_ok_and(|age| age >= orphan_grace);
        if !old_enough {
            continue;
        }
        let orphan = if let Ok(hash) = name.parse::<RequestHash>() {
            !store.is_referenced(&hash).await?
        } else {
            name.starts_with(".incoming-") || name.starts_with(".old-")
        };
        if orphan && remove_tree(path).await? {
            tracing::info!(entry = %name, "deleted unreferenced store entry");
            report.orphans = report.orphans.saturating_add(1);
        }
    }
    Ok(report)
}

async fn list(artifacts: &Artifacts) -> Result<Vec<(String, PathBuf, SystemTime)>, ArtifactError> {
    let root = artifacts.root().to_owned();
    let io_error = |action, path: &PathBuf| {
        let path = path.clone();
        move |source| ArtifactError::Io {
            action,
            path,
            source,
        }
    };
    let mut entries = Vec::new();
    let mut dir = tokio::fs::read_dir(&root)
        .await
        .map_err(io_error("list", &root))?;
    while let Some(entry) = dir.next_entry().await.map_err(io_error("list", &root))? {
        let path = entry.path();
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let metadata = tokio::fs::symlink_metadata(&path)
            .await
            .map_err(io_error("inspect", &path))?;
        if !metadata.is_dir() {
            continue;
        }
        let modified = metadata.modified().map_err(io_error("inspect", &path))?;
        entries.push((name, path, modified));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::{NewJob, SqliteStore, Submission, test_spec};

    #[tokio::test]
    async fn deletes_expired_and_orphans_but_nothing_referenced() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(&dir.path().join("db.sqlite"))
                .await
                .unwrap(),
        );
        let artifacts = Artifacts::open(&dir.path().join("store")).unwrap();
        let hash = |n: u8| RequestHash([n; 32]);
        let submit = |n: u8| NewJob {
            request_hash: hash(n),
            request: test_spec(n),
        };
        // 1: finished, expired.  2: finished, live.  3: still queued.  4: no row (orphan).
        for n in 1..=3 {
            assert!(matches!(
                store.submit(submit(n), 100, 0).await.unwrap(),
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
            std::fs::create_dir_all(&job_dir).unwrap();
            std::fs::write(job_dir.join("image.bin"), "x").unwrap();
        }
        std::fs::create_dir_all(artifacts.root().join(".incoming-x")).unwrap();
        std::fs::create_dir_all(artifacts.root().join("not-a-hash")).unwrap();

        // Within the grace period only the expired job goes, with its files.
        let report = collect(&*store, &artifacts, 200, Duration::from_secs(3600))
            .await
            .unwrap();
        assert_eq!(
            report,
            GcReport {
                expired_jobs: 1,
                expired_dirs: 1,
                orphans: 0
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
}
