//! [`KnownHashes`]: which request hashes the store holds, kept in memory so that a status poll
//! for a hash no job has is answered `404` without a database round trip.
//!
//! Unknown hashes are what bots and stale clients send, and each used to cost a query (three
//! times the price of a finished build's status, which the result cache answers from memory).
//! The filter holds the first 8 bytes of every stored hash. It answers only one question,
//! "is this hash certainly unknown?", and says yes only when both hold:
//!
//! * the prefix is not in the set: a prefix shared with another hash only sends the request on
//!   to the store, which is always right;
//! * the set was brought up to date from the store by a query that *started* less than
//!   [`TRUST_WINDOW`] ago.
//!
//! Why a hash created by another process never gets a lasting false `404`, with several `serve`
//! processes (and admin commands) on one database:
//!
//! * This process adds each job it creates or finds to the set before answering the `POST`, so
//!   its own clients never see a false `404`.
//! * A job another process created is committed before that process answers the `POST`, and a
//!   client learns the hash only from that answer. Every refresh query starts after the
//!   refresh's start time was taken, so it sees every job committed before that time. The set
//!   answers "unknown" only within [`TRUST_WINDOW`] of that start; so for a job committed at
//!   time `C`, a "certainly unknown" can only come from a refresh that started before `C`, and
//!   only until that start plus [`TRUST_WINDOW`], which is before `C` + [`TRUST_WINDOW`]. After
//!   that, polls go to the store until a refresh that started after `C` (and so saw the job)
//!   has finished. The worst case is one `404` for a poll sent within 250 ms of the `POST`'s
//!   answer to another process; the clients wait longer before their first poll: owut 500 ms,
//!   auc about a second, LuCI five (<https://github.com/openwrt/owut>,
//!   <https://github.com/openwrt/luci/tree/master/applications/luci-app-attendedsysupgrade>).
//! * "Sees every committed job" needs the refresh to ask for the right rows, which is the
//!   subject of the next paragraph: ids are not committed in order on PostgreSQL.
//! * Refreshes never interleave (one holds a lock), so an older refresh cannot overwrite the
//!   set or its time with what a newer one already knew.
//! * A failed refresh changes nothing: the set stops being trusted when the window ends, and
//!   every poll is answered from the store again.
//!
//! Keeping in step: a refresh asks for the rows whose id is above the largest id seen
//! ([`Store::hashes_after`]), so it costs what was created since. SQLite hands out ids in commit
//! order (`AUTOINCREMENT`, one writer at a time, never reused). PostgreSQL hands them out at
//! insert, so with several processes a transaction can commit after a later id did, and an
//! `INSERT ... ON CONFLICT` that found the row burns an id that never appears. So an id skipped
//! by a refresh is remembered as a gap and asked for again for [`GAP_WAIT`] (a submission's
//! transaction lasts milliseconds); a gap that never fills is dropped then. At most
//! [`MAX_GAPS`] gaps are kept, the newest: an old one is a burned id, not a transaction still
//! open. Every [`FULL_RELOAD`] the whole set is
//! read again, which also forgets the hashes of expired jobs the collector deleted (until then
//! they only send their requests on to the store).
//!
//! Refreshes happen only while requests ask: the first status poll that finds the set older than
//! half the window starts one in the background (one at a time) and is answered from the store,
//! as every poll is while the set is stale. An idle server queries nothing.
//!
//! Bounded: past [`MAX_KNOWN_HASHES`] hashes (8 MiB of prefixes) the filter switches itself off
//! until a full reload finds fewer, and every request goes to the store as before.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use attendant_proto::api::RequestHash;

use crate::store::{Store, StoreError};

/// How long after its last refresh started the set is trusted to say "unknown".
pub const TRUST_WINDOW: Duration = Duration::from_millis(250);

/// How long an id skipped by a refresh is asked for again (a submission's transaction takes
/// milliseconds; one still open after this is not one).
pub const GAP_WAIT: Duration = Duration::from_secs(60);

/// How often the whole set is read again.
pub const FULL_RELOAD: Duration = Duration::from_secs(600);

/// Most hashes held; beyond it the filter is off (see the module docs).
pub const MAX_KNOWN_HASHES: usize = 1 << 20;

/// Most gaps remembered; beyond it the oldest are forgotten (a job of one of those committing
/// later is then found by the next full reload).
pub const MAX_GAPS: usize = 4096;

/// At a full reload, how many ids below the largest are treated as possible gaps: a
/// transaction in flight during the reload holds one of the newest ids.
const RELOAD_GAP_SPAN: i64 = 1024;

/// Rows asked for per query.
const PAGE: u32 = 10_000;

/// The set of stored request hashes (see the module docs).
#[derive(Debug, Default)]
pub struct KnownHashes {
    inner: RwLock<Inner>,
    /// A background refresh is spawned or running (so that polls spawn at most one).
    refreshing: AtomicBool,
    /// Held for the whole of a refresh: two never interleave.
    refresh_lock: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct Inner {
    prefixes: HashSet<u64>,
    /// The largest id seen.
    last_id: i64,
    /// Ids skipped by a refresh, with when that was noticed.
    gaps: BTreeMap<i64, Instant>,
    /// When the last successful refresh started.
    refreshed: Option<Instant>,
    /// When the last successful full reload started.
    reloaded: Option<Instant>,
    /// Hashes this process stored while a full reload was running, to be kept by its swap.
    inserted_during_reload: Option<Vec<u64>>,
    /// More than [`MAX_KNOWN_HASHES`]: the set answers nothing.
    overflowed: bool,
}

impl KnownHashes {
    /// Records a hash this process has just stored (before its client can learn it).
    pub fn insert(&self, request_hash: &RequestHash) {
        let prefix = prefix(request_hash);
        let mut inner = self.write();
        if let Some(pending) = &mut inner.inserted_during_reload {
            pending.push(prefix);
        }
        inner.add(prefix);
    }

    /// Whether the store certainly holds no job with `request_hash`. Starts a background
    /// refresh from `store` when one is due, so that a steady stream of polls keeps the set
    /// trusted.
    pub fn certainly_unknown(
        self: &Arc<Self>,
        store: &Arc<dyn Store>,
        request_hash: &RequestHash,
    ) -> bool {
        let (trusted, due, known) = {
            let inner = self.read();
            let age = inner.refreshed.map(|at| at.elapsed());
            let trusted = !inner.overflowed && age.is_some_and(|age| age < TRUST_WINDOW);
            let due = age.is_none_or(|age| age >= TRUST_WINDOW / 2);
            (trusted, due, inner.prefixes.contains(&prefix(request_hash)))
        };
        if due && !self.refreshing.swap(true, Ordering::AcqRel) {
            let this = Arc::clone(self);
            let store = Arc::clone(store);
            tokio::spawn(async move {
                if let Err(error) = this.refresh(&*store).await {
                    tracing::warn!(error = %error, "cannot refresh the known request hashes");
                }
                this.refreshing.store(false, Ordering::Release);
            });
        }
        trusted && !known
    }

    /// Brings the set up to date with `store`: the rows created since the last refresh, or all
    /// of them when a full reload is due.
    pub async fn refresh(&self, store: &dyn Store) -> Result<(), StoreError> {
        let _only_one = self.refresh_lock.lock().await;
        let started = Instant::now();
        let full = self
            .read()
            .reloaded
            .is_none_or(|at| at.elapsed() >= FULL_RELOAD);
        if full {
            self.reload(store, started).await
        } else {
            self.catch_up(store, started).await
        }
    }

    async fn reload(&self, store: &dyn Store, started: Instant) -> Result<(), StoreError> {
        self.write().inserted_during_reload = Some(Vec::new());
        let loaded = read_all(store).await;
        let mut inner = self.write();
        let pending = inner.inserted_during_reload.take().unwrap_or_default();
        let (prefixes, ids, last_id) = loaded?;
        inner.overflowed = prefixes.is_none();
        inner.prefixes = prefixes.unwrap_or_default();
        for prefix in pending {
            inner.add(prefix);
        }
        inner.last_id = last_id;
        inner.gaps = (last_id.saturating_sub(RELOAD_GAP_SPAN).max(0) + 1..=last_id)
            .filter(|id| !ids.contains(id))
            .map(|id| (id, started))
            .collect();
        inner.refreshed = Some(started);
        inner.reloaded = Some(started);
        inner.trim_gaps();
        Ok(())
    }

    async fn catch_up(&self, store: &dyn Store, started: Instant) -> Result<(), StoreError> {
        let mut after = {
            let mut inner = self.write();
            inner.gaps.retain(|_, noticed| noticed.elapsed() < GAP_WAIT);
            let last_id = inner.last_id;
            inner
                .gaps
                .first_key_value()
                .map_or(last_id, |(gap, _)| gap.saturating_sub(1).min(last_id))
        };
        loop {
            let rows = store.hashes_after(after, PAGE).await?;
            let mut inner = self.write();
            for (id, request_hash) in &rows {
                inner.gaps.remove(id);
                if *id > inner.last_id {
                    let first_missing = inner.last_id.saturating_add(1);
                    // Only the newest MAX_GAPS of a long run can be kept anyway.
                    let from = first_missing.max(id.saturating_sub(MAX_GAPS as i64));
                    for gap in from..*id {
                        inner.gaps.insert(gap, started);
                    }
                    inner.trim_gaps();
                    inner.last_id = *id;
                }
                inner.add(prefix(request_hash));
            }
            match rows.last() {
                Some((id, _)) if rows.len() == PAGE as usize => after = *id,
                _ => break,
            }
        }
        self.write().refreshed = Some(started);
        Ok(())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Inner {
    /// Forgets the oldest gaps beyond [`MAX_GAPS`].
    fn trim_gaps(&mut self) {
        while self.gaps.len() > MAX_GAPS {
            self.gaps.pop_first();
        }
    }

    fn add(&mut self, prefix: u64) {
        if self.overflowed {
            return;
        }
        if self.prefixes.len() >= MAX_KNOWN_HASHES {
            tracing::warn!(
                max = MAX_KNOWN_HASHES,
                "more stored request hashes than the in-memory filter holds; unknown hashes are looked up in the store"
            );
            self.overflowed = true;
            self.prefixes = HashSet::new();
            return;
        }
        self.prefixes.insert(prefix);
    }
}

/// Every row of `store`: the prefixes (`None` past [`MAX_KNOWN_HASHES`]), the ids among the
/// newest [`RELOAD_GAP_SPAN`], and the largest id.
async fn read_all(
    store: &dyn Store,
) -> Result<(Option<HashSet<u64>>, HashSet<i64>, i64), StoreError> {
    let mut prefixes = Some(HashSet::new());
    let mut ids = Vec::new();
    let mut after = 0;
    loop {
        let rows = store.hashes_after(after, PAGE).await?;
        for (id, request_hash) in &rows {
            ids.push(*id);
            if let Some(set) = &mut prefixes {
                if set.len() >= MAX_KNOWN_HASHES {
                    prefixes = None;
                } else {
                    set.insert(prefix(request_hash));
                }
            }
        }
        // Only the newest ids matter for gaps; keep the list from growing with the table.
        if ids.len() > 2 * RELOAD_GAP_SPAN as usize {
            ids.drain(..ids.len() - RELOAD_GAP_SPAN as usize);
        }
        match rows.last() {
            Some((id, _)) if rows.len() == PAGE as usize => after = *id,
            _ => break,
        }
    }
    let last_id = ids.last().copied().unwrap_or(0);
    Ok((prefixes, ids.into_iter().collect(), last_id))
}

/// The first 8 bytes of a hash: uniformly distributed, so as good a key as the whole.
fn prefix(request_hash: &RequestHash) -> u64 {
    let [a, b, c, d, e, f, g, h, ..] = request_hash.0;
    u64::from_be_bytes([a, b, c, d, e, f, g, h])
}
