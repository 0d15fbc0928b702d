//! [`RequestMemo`]: the exact body of a build request → its validated job and request hash, so
//! that a client posting the same body again skips parsing, validation and hashing.
//!
//! Clients post the same body again and again: owut, auc and LuCI poll a build by re-sending
//! its `POST` (<https://github.com/openwrt/owut>,
//! <https://github.com/openwrt/luci/tree/master/applications/luci-app-attendedsysupgrade>), and
//! a fleet of one model with one package list sends one body from many routers. Parsing a
//! LuCI-sized request (about fifty packages), checking it against the upstream metadata, applying
//! the package fixups and hashing it cost a cached `POST` three times what sending the finished
//! answer does.
//!
//! What an entry holds is a pure function of three inputs: the body's bytes, the configuration
//! (fixed for the life of the process; a change needs a restart, which starts an empty memo)
//! and the upstream metadata the request was validated against. An entry is used only while
//! that metadata is unchanged:
//!
//! * it records [`Metadata::generation`] read *before* validation began, and is used only
//!   while the generation is still the same: any file stored in a metadata cache since (a
//!   forced reload of `.versions.json`, a refetch after a cache was emptied) retires it;
//! * it records [`Metadata::fresh_until`] of the files validation read, and is not used past
//!   it: when a file's TTL runs out, the next request validates afresh, which refetches the
//!   file exactly as it would have without the memo.
//!
//! Only successes are kept (a refused request is answered with whatever the current metadata
//! says), and never a request with embedded files (server-side channel builds).
//!
//! Why this is right with several `serve` processes on one database: an entry says nothing
//! about the job. Every request, memo hit or not, looks the job up by its hash afterwards in
//! the result cache and then the store, so a job another process created, finished or whose
//! result expired is found exactly as without the memo. The package check against the target's
//! indexes runs, as before, whenever no job exists yet. And the entry's values are what this
//! process would compute from its own configuration and metadata; the memo of another process
//! is never consulted.
//!
//! Bounded: at most [`MAX_ENTRIES`] entries and [`MAX_BYTES`] of bodies (each counted twice:
//! the body, and the validated request made from it); a body over [`MAX_ENTRY_BYTES`] is not
//! kept. When an entry would not fit, the memo is emptied first (as the result cache is): a
//! flood of distinct bodies costs what it cost before the memo, and common bodies come back at
//! their next request.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use attendant_proto::api::RequestHash;
use bytes::Bytes;

use crate::metadata::Metadata;
use crate::stats::RequestFacts;
use crate::store::JobSpec;

/// Most entries held.
pub const MAX_ENTRIES: usize = 4096;

/// Most bytes held (bodies counted twice, see the module docs).
pub const MAX_BYTES: usize = 16 * 1024 * 1024;

/// Largest body kept.
pub const MAX_ENTRY_BYTES: usize = 64 * 1024;

/// A request that passed parsing and validation: its job and request hash, and what its
/// statistics record.
#[derive(Debug)]
pub struct Admitted {
    /// The validated job (profile resolved, packages fixed up).
    pub spec: JobSpec,
    /// Its request hash.
    pub hash: RequestHash,
    /// The facts its statistics events carry, the client named with the `User-Agent` of the
    /// request that made the entry.
    pub facts: Arc<RequestFacts>,
}

impl Admitted {
    /// The facts for a request sent with `user_agent`: the stored ones, unless the body names
    /// no client and this `User-Agent` names another one than the request that made the entry.
    pub fn facts_for(&self, user_agent: Option<&str>) -> Arc<RequestFacts> {
        if self.spec.request.client.is_none() {
            let client = crate::stats::client_of(None, user_agent);
            if client != self.facts.client {
                return Arc::new(RequestFacts {
                    client,
                    ..(*self.facts).clone()
                });
            }
        }
        Arc::clone(&self.facts)
    }
}

/// The memo (see the module docs).
#[derive(Debug, Default)]
pub struct RequestMemo {
    inner: RwLock<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<Bytes, Entry>,
    bytes: usize,
}

#[derive(Debug)]
struct Entry {
    generation: u64,
    fresh_until: Instant,
    admitted: Arc<Admitted>,
}

impl RequestMemo {
    /// The admitted request of `body`, if one is held and still valid for `metadata`.
    pub fn get(&self, body: &[u8], metadata: &Metadata) -> Option<Arc<Admitted>> {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        let entry = inner.entries.get(body)?;
        let valid = entry.generation == metadata.generation() && Instant::now() < entry.fresh_until;
        valid.then(|| Arc::clone(&entry.admitted))
    }

    /// Keeps `admitted`, made from `body` by a validation that started when the metadata was
    /// at `generation`. Nothing is kept when the files validation read are no longer all
    /// cached, or the body is too large.
    pub fn insert(
        &self,
        body: &[u8],
        generation: u64,
        metadata: &Metadata,
        admitted: Arc<Admitted>,
    ) {
        let cost = body.len().saturating_mul(2);
        if body.len() > MAX_ENTRY_BYTES {
            return;
        }
        let spec = &admitted.spec;
        let Some(fresh_until) = metadata.fresh_until(&spec.version_path, &spec.request.target)
        else {
            return;
        };
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        if inner.entries.remove(body).is_some() {
            inner.bytes = inner.bytes.saturating_sub(cost);
        }
        if inner.entries.len() >= MAX_ENTRIES || inner.bytes.saturating_add(cost) > MAX_BYTES {
            inner.entries.clear();
            inner.bytes = 0;
        }
        inner.bytes = inner.bytes.saturating_add(cost);
        inner.entries.insert(
            Bytes::copy_from_slice(body),
            Entry {
                generation,
                fresh_until,
                admitted,
            },
        );
    }

    /// How many entries are held.
    pub fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .entries
            .len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::config::UpstreamLocation;

    const PATH: &str = "releases/24.10.5";

    fn write(root: &Path, path: &str, text: &str) {
        let full = root.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, text).unwrap();
    }

    /// Metadata over a directory holding what a request for `x86/64` is validated against,
    /// with those files loaded (as a validation would have).
    async fn metadata(root: &Path, ttl: Duration) -> Metadata {
        write(
            root,
            ".versions.json",
            r#"{"stable_version": "24.10.5", "versions_list": ["24.10.5"]}"#,
        );
        write(
            root,
            &format!("{PATH}/.targets.json"),
            r#"{"x86/64": "x86_64"}"#,
        );
        write(
            root,
            &format!("{PATH}/targets/x86/64/profiles.json"),
            r#"{"arch_packages": "x86_64", "profiles": {}, "source_date_epoch": 1,
                "target": "x86/64", "version_code": "r1-abc", "version_number": "24.10.5"}"#,
        );
        let metadata = Metadata::new(
            &UpstreamLocation::Directory(root.to_owned()),
            reqwest::Client::new(),
            ttl,
        );
        metadata.versions().await.unwrap();
        metadata.targets(PATH).await.unwrap().unwrap();
        metadata.profiles(PATH, "x86/64").await.unwrap().unwrap();
        metadata
    }

    fn admitted(n: u8, client: Option<&str>) -> Arc<Admitted> {
        let mut spec = crate::store::test_spec(n);
        spec.request.client = client.map(str::to_owned);
        Arc::new(Admitted {
            hash: crate::build::job_hash(&spec),
            facts: Arc::new(RequestFacts::of(&spec.request, Some("auc (0.3.2)"))),
            spec,
        })
    }

    #[tokio::test]
    async fn an_identical_body_is_answered_until_the_metadata_changes() {
        let dir = tempfile::tempdir().unwrap();
        let metadata = metadata(dir.path(), Duration::from_secs(600)).await;
        let memo = RequestMemo::default();
        let generation = metadata.generation();
        let entry = admitted(1, None);
        memo.insert(b"{\"a\": 1}", generation, &metadata, Arc::clone(&entry));
        let hit = memo.get(b"{\"a\": 1}", &metadata).unwrap();
        assert!(Arc::ptr_eq(&hit, &entry));
        assert!(
            memo.get(b"{\"a\": 1} ", &metadata).is_none(),
            "bytes, not meaning"
        );

        // Another metadata file stored (here a target upstream does not have): every entry
        // made before is retired, and a new one is made at the new generation.
        metadata.profiles(PATH, "ath79/generic").await.unwrap();
        assert_ne!(metadata.generation(), generation);
        assert!(memo.get(b"{\"a\": 1}", &metadata).is_none());
        memo.insert(b"{\"a\": 1}", metadata.generation(), &metadata, entry);
        assert!(memo.get(b"{\"a\": 1}", &metadata).is_some());
        assert_eq!(memo.len(), 1, "the retired entry was replaced");

        // Made by a validation that started before a change: never used.
        memo.insert(b"{\"b\": 2}", generation, &metadata, admitted(2, None));
        assert!(memo.get(b"{\"b\": 2}", &metadata).is_none());
    }

    #[tokio::test]
    async fn an_entry_is_not_used_past_the_metadata_ttl() {
        let dir = tempfile::tempdir().unwrap();
        let metadata = metadata(dir.path(), Duration::from_millis(200)).await;
        let memo = RequestMemo::default();
        memo.insert(b"{}", metadata.generation(), &metadata, admitted(1, None));
        assert!(memo.get(b"{}", &metadata).is_some());
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(
            memo.get(b"{}", &metadata).is_none(),
            "`.versions.json` is due again: the next request validates (and refetches)"
        );
    }

    #[tokio::test]
    async fn nothing_is_kept_without_the_metadata_in_cache() {
        let dir = tempfile::tempdir().unwrap();
        let metadata = Metadata::new(
            &UpstreamLocation::Directory(dir.path().to_owned()),
            reqwest::Client::new(),
            Duration::from_secs(600),
        );
        let memo = RequestMemo::default();
        memo.insert(b"{}", metadata.generation(), &metadata, admitted(1, None));
        assert!(memo.is_empty());
    }

    #[tokio::test]
    async fn the_memo_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let metadata = metadata(dir.path(), Duration::from_secs(600)).await;
        let generation = metadata.generation();
        let memo = RequestMemo::default();
        let entry = admitted(1, None);
        for n in 0..=MAX_ENTRIES {
            let body = format!("{{\"n\": {n}}}");
            memo.insert(body.as_bytes(), generation, &metadata, Arc::clone(&entry));
            assert!(memo.len() <= MAX_ENTRIES);
        }
        assert!(
            memo.get(format!("{{\"n\": {MAX_ENTRIES}}}").as_bytes(), &metadata)
                .is_some()
        );

        let big = vec![b' '; MAX_ENTRY_BYTES + 1];
        memo.insert(&big, generation, &metadata, Arc::clone(&entry));
        assert!(memo.get(&big, &metadata).is_none());

        let most = MAX_BYTES / (2 * MAX_ENTRY_BYTES);
        for n in 0..2 * most {
            let mut body = vec![b' '; MAX_ENTRY_BYTES];
            body[..8].copy_from_slice(&(n as u64).to_be_bytes());
            memo.insert(&body, generation, &metadata, Arc::clone(&entry));
            assert!(
                memo.len() <= most,
                "{} entries of the largest size",
                memo.len()
            );
        }
    }

    #[test]
    fn the_client_follows_the_user_agent_only_when_the_body_names_none() {
        let named = admitted(1, Some("luci/git-24.10"));
        assert!(Arc::ptr_eq(&named.facts_for(Some("curl/8")), &named.facts));
        let unnamed = admitted(2, None);
        assert_eq!(unnamed.facts.client, "auc/0.3.2");
        assert!(Arc::ptr_eq(
            &unnamed.facts_for(Some("auc/0.3.2")),
            &unnamed.facts
        ));
        let other = unnamed.facts_for(Some("curl/8"));
        assert_eq!(other.client, "unknown/0");
        assert_eq!(other.profile, unnamed.facts.profile);
    }
}
