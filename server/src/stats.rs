//! Build statistics as ASU keeps them (<https://github.com/openwrt/asu>, `asu/routers/stats.py`),
//! on the job store's database instead of RedisTimeSeries.
//!
//! What is recorded, one event per outcome ([`record`], one row each, spawned so that no request
//! waits for it; the request outcomes, one or two per build request, counted in memory by an
//! [`EventQueue`] and written in batches, one row per kind of event standing for its count):
//! every valid build request (`request`), a request answered by a finished build (`cache_hit`),
//! a finished build (`success`, with its packages and duration) and a failed one (`failure`,
//! with the error [`anonymise`]d as ASU does: whitespace collapsed, cut to
//! [`MAX_DETAIL_CHARS`], request hashes replaced by `[job-id]`). Rows older than [`RETENTION`]
//! are deleted by the collector (`gc`). Whole-file image downloads are added up in memory by a
//! [`DownloadCounter`] and written in one transaction every [`DOWNLOAD_FLUSH_INTERVAL`], so the
//! download path never waits for the database.
//!
//! The aggregations here answer the statistics endpoints and pages in ASU's shapes:
//! [`builds_per_day`] (30 daily buckets of requests, cache hits and failures),
//! [`builds_by_version`] (26 weekly buckets per branch, or per version within a branch),
//! [`top_packages`], [`top`] (targets, profiles, clients) and [`build_errors`].

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use attendant_proto::api::BuildRequest;
use serde::Serialize;

use crate::store::{
    BuildEvent, EventKey, EventOutcome, EventQuery, ImageDownloads, Store, StoreError, UnixMillis,
};

/// How long events and download counts are kept.
pub const RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);
/// A failure's error text is cut to this many characters (ASU: 200).
pub const MAX_DETAIL_CHARS: usize = 200;
/// The longest client name recorded; longer ones are cut.
pub const MAX_CLIENT_CHARS: usize = 64;
/// How often counted downloads are written to the database.
pub const DOWNLOAD_FLUSH_INTERVAL: Duration = Duration::from_secs(10);
/// Distinct images a [`DownloadCounter`] holds between flushes. A full counter asks for a flush;
/// downloads of images it does not hold yet are not counted until one succeeds (the memory stays
/// bounded while the database is down).
pub const MAX_PENDING_DOWNLOADS: usize = 10_000;
/// Days in [`builds_per_day`] and [`top_packages`].
pub const DAYS: i64 = 30;
/// Weeks in [`builds_by_version`].
pub const WEEKS: i64 = 26;
/// Largest `n` of `top-packages` and the other top lists (ASU caps at 100).
pub const MAX_TOP: u32 = 100;
/// Largest `n` of `build-errors` (ASU caps at 500).
pub const MAX_ERRORS: u32 = 500;

const DAY_MS: i64 = 24 * 3600 * 1000;

/// The client of a build request, as ASU names it: the request's `client` field, else
/// `auc/<version>` from a `User-Agent: auc (<version>)` or `auc/<version>`, else `unknown/0`.
pub fn client_of(client: Option<&str>, user_agent: Option<&str>) -> String {
    let name = client
        .filter(|client| !client.trim().is_empty())
        .map(str::to_owned)
        .or_else(|| {
            let agent = user_agent?.trim();
            let rest = agent.strip_prefix("auc")?;
            let version = rest
                .strip_prefix(" (")
                .and_then(|rest| rest.strip_suffix(')'))
                .or_else(|| rest.strip_prefix('/'))?;
            Some(format!("auc/{version}"))
        })
        .unwrap_or_else(|| "unknown/0".to_owned());
    name.chars()
        .filter(|c| !c.is_control())
        .take(MAX_CLIENT_CHARS)
        .collect()
}

/// A failure's error text as it is kept: whitespace collapsed, 64-hex-digit words (request
/// hashes) replaced by `[job-id]`, at most [`MAX_DETAIL_CHARS`] characters.
pub fn anonymise(detail: &str) -> String {
    let words: Vec<&str> = detail
        .split_whitespace()
        .map(|word| {
            let hex = word.trim_matches(|c: char| !c.is_ascii_hexdigit());
            if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                "[job-id]"
            } else {
                word
            }
        })
        .collect();
    words.join(" ").chars().take(MAX_DETAIL_CHARS).collect()
}

/// The event of `outcome` for `request` at `at`, without the success and failure details.
pub fn event(
    request: &BuildRequest,
    user_agent: Option<&str>,
    outcome: EventOutcome,
    at: UnixMillis,
) -> BuildEvent {
    BuildEvent {
        at,
        outcome,
        version: request.version.clone(),
        target: request.target.clone(),
        profile: request.profile.clone(),
        client: client_of(request.client.as_deref(), user_agent),
        packages: Vec::new(),
        detail: None,
        duration_ms: None,
    }
}

/// What the events of one build request say about it, shared behind an `Arc`: a request
/// answered from the request memo (`crate::request_memo`) records its events without copying a
/// string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestFacts {
    /// Requested version.
    pub version: String,
    /// `target/subtarget`.
    pub target: String,
    /// The profile id (after resolution).
    pub profile: String,
    /// The client, named by [`client_of`].
    pub client: String,
}

impl RequestFacts {
    /// The facts of `request`, sent with `user_agent`.
    pub fn of(request: &BuildRequest, user_agent: Option<&str>) -> Self {
        Self {
            version: request.version.clone(),
            target: request.target.clone(),
            profile: request.profile.clone(),
            client: client_of(request.client.as_deref(), user_agent),
        }
    }

    fn event(&self, outcome: EventOutcome, at: UnixMillis) -> BuildEvent {
        BuildEvent {
            at,
            outcome,
            version: self.version.clone(),
            target: self.target.clone(),
            profile: self.profile.clone(),
            client: self.client.clone(),
            packages: Vec::new(),
            detail: None,
            duration_ms: None,
        }
    }
}

/// Distinct kinds of build request events (request facts, outcome, UTC day) an [`EventQueue`]
/// counts between two writes; events of further kinds are counted as dropped (and the count
/// logged) until a write empties the queue.
pub const MAX_PENDING_EVENT_KINDS: usize = 50_000;

/// How long a queued event waits for others to share its transaction.
pub const EVENT_FLUSH_DELAY: Duration = Duration::from_millis(250);

/// The events of build requests (`request`, `cache_hit`), counted in memory and written in
/// batches: every valid `POST /api/v1/build` records one or two, and one `INSERT` each, as
/// [`record`] does, costs a cache-hit `POST` more than answering it (and under load, the
/// spawned inserts queue up for the database faster than it takes them).
///
/// Events are counted per kind (the same request facts, outcome and UTC day), so a burst of
/// identical polls is one counter, not a list; [`EVENT_FLUSH_DELAY`] after the first event of a
/// batch the counters are written in one transaction, one row per kind carrying its count
/// ([`StatsStore::record_events`](crate::store::StatsStore::record_events)). Each row carries
/// the time of the first event of its kind in the batch, so the statistics lag by at most the
/// delay and no event moves to another day's bucket.
#[derive(Debug, Default)]
pub struct EventQueue {
    pending: Mutex<HashMap<EventKind, Pending>>,
    scheduled: AtomicBool,
    dropped: AtomicU64,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct EventKind {
    facts: Arc<RequestFacts>,
    outcome: EventOutcome,
    day: i64,
}

#[derive(Debug)]
struct Pending {
    first_at: UnixMillis,
    count: u64,
}

impl EventQueue {
    /// Counts an `outcome` event of the request `facts` at `at` for `store`; the write happens
    /// in the background, and a failure is logged, never seen by the request.
    pub fn record(
        self: &Arc<Self>,
        store: &Arc<dyn Store>,
        facts: &Arc<RequestFacts>,
        outcome: EventOutcome,
        at: UnixMillis,
    ) {
        let kind = EventKind {
            facts: Arc::clone(facts),
            outcome,
            day: at.div_euclid(DAY_MS),
        };
        {
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            let full = pending.len() >= MAX_PENDING_EVENT_KINDS;
            match pending.get_mut(&kind) {
                Some(counted) => counted.count = counted.count.saturating_add(1),
                None if full => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                None => {
                    pending.insert(
                        kind,
                        Pending {
                            first_at: at,
                            count: 1,
                        },
                    );
                }
            }
        }
        if !self.scheduled.swap(true, Ordering::AcqRel) {
            tokio::spawn(Arc::clone(self).write(Arc::clone(store)));
        }
    }

    /// Writes batches until the queue stays empty.
    async fn write(self: Arc<Self>, store: Arc<dyn Store>) {
        loop {
            tokio::time::sleep(EVENT_FLUSH_DELAY).await;
            let counted =
                std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner));
            let batch: Vec<(BuildEvent, u64)> = counted
                .into_iter()
                .map(|(kind, pending)| {
                    (
                        kind.facts.event(kind.outcome, pending.first_at),
                        pending.count,
                    )
                })
                .collect();
            if !batch.is_empty()
                && let Err(error) = store.record_events(&batch).await
            {
                let events: u64 = batch.iter().map(|(_, count)| count).sum();
                tracing::warn!(error = %error, events, "cannot record build statistics");
            }
            let dropped = self.dropped.swap(0, Ordering::Relaxed);
            if dropped > 0 {
                tracing::warn!(
                    dropped,
                    max = MAX_PENDING_EVENT_KINDS,
                    "build statistics dropped: more kinds of requests than the database took"
                );
            }
            // An event queued after the batch was taken found `scheduled` set and left it to
            // this task: go round again unless another task has taken over.
            self.scheduled.store(false, Ordering::Release);
            let empty = self
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_empty();
            if empty || self.scheduled.swap(true, Ordering::AcqRel) {
                return;
            }
        }
    }
}

/// Records `event` in the background; a failure is logged, never seen by the request.
pub fn record(store: &Arc<dyn Store>, event: BuildEvent) {
    let store = Arc::clone(store);
    tokio::spawn(async move {
        if let Err(error) = store.record_event(&event).await {
            tracing::warn!(error = %error, outcome = event.outcome.as_str(), "cannot record a build statistic");
        }
    });
}

/// Whole-file downloads per image, added up in memory until the next [`DownloadCounter::flush`].
#[derive(Debug)]
pub struct DownloadCounter {
    pending: Mutex<HashMap<(String, String), u64>>,
    last_flush: Mutex<Instant>,
}

impl Default for DownloadCounter {
    fn default() -> Self {
        Self {
            pending: Mutex::default(),
            last_flush: Mutex::new(Instant::now()),
        }
    }
}

impl DownloadCounter {
    /// Whether `interval` has passed since this last returned `true` (or since start): only one
    /// caller per interval is told to flush.
    pub fn due(&self, interval: Duration) -> bool {
        let mut last = self
            .last_flush
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last.elapsed() < interval {
            return false;
        }
        *last = Instant::now();
        true
    }

    /// Counts one download of `image` of build `request_hash`; `true` when the batch is full
    /// and should be flushed now.
    pub fn count(&self, request_hash: &str, image: &str) -> bool {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (request_hash.to_owned(), image.to_owned());
        let full = pending.len() >= MAX_PENDING_DOWNLOADS;
        if let Some(count) = pending.get_mut(&key) {
            *count += 1;
        } else if !full {
            pending.insert(key, 1);
        }
        full || pending.len() >= MAX_PENDING_DOWNLOADS
    }

    /// Writes the counted downloads; on failure they are counted again for the next flush.
    pub async fn flush(&self, store: &dyn Store, now: UnixMillis) -> Result<(), StoreError> {
        let batch = self.drain();
        if batch.is_empty() {
            return Ok(());
        }
        let written = store.add_downloads(&batch, now).await;
        if written.is_err() {
            self.restore(batch);
        }
        written
    }

    /// Takes the counted downloads out, for a writer of its own (channel pool files have their
    /// own table); give them back with [`DownloadCounter::restore`] when writing failed.
    pub fn drain(&self) -> Vec<ImageDownloads> {
        match self.pending.lock() {
            Ok(mut pending) => pending
                .drain()
                .map(|((request_hash, image), count)| ImageDownloads {
                    request_hash,
                    image,
                    count,
                })
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Counts a drained batch again, so the next flush writes it.
    pub fn restore(&self, batch: Vec<ImageDownloads>) {
        if let Ok(mut pending) = self.pending.lock() {
            for download in batch {
                *pending
                    .entry((download.request_hash, download.image))
                    .or_default() += download.count;
            }
        }
    }
}

/// Chart data as ASU answers it (Chart.js' shape): one label per bucket, one dataset per line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Chart {
    /// Bucket labels, `YYYY-MM-DDZ` (the day a bucket starts).
    pub labels: Vec<String>,
    /// The lines.
    pub datasets: Vec<Dataset>,
}

/// One line of a [`Chart`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dataset {
    /// What it counts.
    pub label: String,
    /// One value per bucket.
    pub data: Vec<u64>,
    /// A colour name (only `builds-per-day` sets one, as ASU).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub color: Option<&'static str>,
}

/// `top-packages`: the most requested packages of a branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopPackages {
    /// Most requested first.
    pub packages: Vec<NameCount>,
    /// The branch asked for (`null`: all).
    pub branch: Option<String>,
    /// Days counted.
    pub days: i64,
}

/// A name and how often it was counted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NameCount {
    /// Package, target, profile or client.
    pub name: String,
    /// How often.
    pub count: u64,
}

/// ASU's bucket boundaries: buckets end at the next UTC midnight; returns the first bucket's
/// start.
fn start_of(now: UnixMillis, buckets: i64, width: i64) -> UnixMillis {
    let stop = (now.div_euclid(DAY_MS) + 1) * DAY_MS;
    stop - buckets * width
}

fn labels(start: UnixMillis, buckets: i64, width: i64) -> Vec<String> {
    (0..buckets)
        .map(|i| {
            let seconds = (start + i * width) / 1000;
            time::OffsetDateTime::from_unix_timestamp(seconds)
                .map(|at| format!("{}Z", at.date()))
                .unwrap_or_default()
        })
        .collect()
}

/// `builds-per-day`: requests, cache hits and failures in each of the last 30 days.
pub async fn builds_per_day(store: &dyn Store, now: UnixMillis) -> Result<Chart, StoreError> {
    let start = start_of(now, DAYS, DAY_MS);
    let counts = store
        .event_counts(EventQuery {
            since: start,
            bucket_ms: DAY_MS,
            key: EventKey::Outcome,
            outcome: None,
            version_prefix: String::new(),
        })
        .await?;
    let line = |outcome: EventOutcome, label: &str, color| {
        let mut data = vec![0; DAYS as usize];
        for count in &counts {
            if EventOutcome::parse(&count.key) == Some(outcome)
                && let Some(slot) = usize::try_from(count.bucket)
                    .ok()
                    .and_then(|i| data.get_mut(i))
            {
                *slot += count.count;
            }
        }
        Dataset {
            label: label.to_owned(),
            data,
            color: Some(color),
        }
    };
    Ok(Chart {
        labels: labels(start, DAYS, DAY_MS),
        datasets: vec![
            line(EventOutcome::Request, "Requests", "green"),
            line(EventOutcome::CacheHit, "Cache-Hits", "orange"),
            line(EventOutcome::Failure, "Failures", "red"),
        ],
    })
}

/// `builds-by-version`: successful builds per week over 26 weeks, one line per branch (the
/// version cut to 5 characters, as ASU), or with `branch` one line per version of that branch.
pub async fn builds_by_version(
    store: &dyn Store,
    branch: Option<&str>,
    now: UnixMillis,
) -> Result<Chart, StoreError> {
    let width = 7 * DAY_MS;
    let start = start_of(now, WEEKS, width);
    let counts = store
        .event_counts(EventQuery {
            since: start,
            bucket_ms: width,
            key: EventKey::Version,
            outcome: Some(EventOutcome::Success),
            version_prefix: branch.unwrap_or_default().to_owned(),
        })
        .await?;
    let mut lines: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for count in counts {
        let name = if branch.is_none() && count.key.contains('.') {
            count.key.chars().take(5).collect()
        } else {
            count.key
        };
        let data = lines.entry(name).or_insert_with(|| vec![0; WEEKS as usize]);
        if let Some(slot) = usize::try_from(count.bucket)
            .ok()
            .and_then(|i| data.get_mut(i))
        {
            *slot += count.count;
        }
    }
    Ok(Chart {
        labels: labels(start, WEEKS, width),
        datasets: lines
            .into_iter()
            .map(|(label, data)| Dataset {
                label,
                data,
                color: None,
            })
            .collect(),
    })
}

/// `top-packages`: the `n` packages most often in successful builds of the last 30 days.
pub async fn top_packages(
    store: &dyn Store,
    branch: Option<&str>,
    n: u32,
    now: UnixMillis,
) -> Result<TopPackages, StoreError> {
    let lists = store
        .success_packages(now - DAYS * DAY_MS, branch.unwrap_or_default())
        .await?;
    let mut counts: HashMap<String, u64> = HashMap::new();
    for (packages, builds) in lists {
        for package in packages {
            *counts.entry(package).or_default() += builds;
        }
    }
    Ok(TopPackages {
        packages: ranked(counts, n),
        branch: branch.map(str::to_owned),
        days: DAYS,
    })
}

/// The `n` most frequent values of `key` over the last 30 days: targets and profiles of
/// successful builds, clients of requests.
pub async fn top(
    store: &dyn Store,
    key: EventKey,
    n: u32,
    now: UnixMillis,
) -> Result<Vec<NameCount>, StoreError> {
    let outcome = if key == EventKey::Client {
        EventOutcome::Request
    } else {
        EventOutcome::Success
    };
    let counts = store
        .event_counts(EventQuery {
            since: now - DAYS * DAY_MS,
            bucket_ms: i64::MAX,
            key,
            outcome: Some(outcome),
            version_prefix: String::new(),
        })
        .await?;
    Ok(ranked(
        counts.into_iter().map(|count| (count.key, count.count)),
        n,
    ))
}

/// Most frequent first, ties by name; at most `n`.
fn ranked(counts: impl IntoIterator<Item = (String, u64)>, n: u32) -> Vec<NameCount> {
    let mut ranked: Vec<NameCount> = counts
        .into_iter()
        .map(|(name, count)| NameCount { name, count })
        .collect();
    ranked.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
    ranked.truncate(usize::try_from(n).unwrap_or(usize::MAX));
    ranked
}

/// `build-errors`: the `n` most recent failures as ASU's text, one line each:
/// `YYYY-MM-DD HH:MM:SS <version>:<target>:<profile> <error>`, oldest first.
pub async fn build_errors(store: &dyn Store, n: u32) -> Result<String, StoreError> {
    let mut failures = store.recent_failures(n).await?;
    if failures.is_empty() {
        return Ok("No error logs found.".to_owned());
    }
    failures.reverse();
    let lines: Vec<String> = failures.iter().map(error_line).collect();
    let first = lines.first().and_then(|line| line.split(' ').next());
    let last = lines.last().and_then(|line| line.split(' ').next());
    Ok(format!(
        "Build Errors: {} entries\nTime range: {} - {}\n\n{}\n",
        lines.len(),
        first.unwrap_or_default(),
        last.unwrap_or_default(),
        lines.join("\n")
    ))
}

/// One failure as a line of the error log.
pub fn error_line(failure: &BuildEvent) -> String {
    format!(
        "{} {}:{}:{} {}",
        timestamp(failure.at),
        failure.version,
        failure.target,
        failure.profile,
        failure.detail.as_deref().unwrap_or_default()
    )
}

/// `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn timestamp(at: UnixMillis) -> String {
    let at = std::time::UNIX_EPOCH + Duration::from_millis(u64::try_from(at).unwrap_or_default());
    humantime::format_rfc3339_seconds(at)
        .to_string()
        .replacen('T', " ", 1)
        .trim_end_matches('Z')
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{EventKey, SqliteStore};

    /// Events queued in a burst, and one queued after the queue went idle, all reach the
    /// database (a real SQLite file).
    #[tokio::test]
    async fn queued_events_are_written_in_batches() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(&dir.path().join("jobs.sqlite"))
                .await
                .unwrap(),
        );
        let queue = Arc::new(EventQueue::default());
        let request = attendant_proto::api::BuildRequest::new("24.10.5", "x86/64", "generic");
        let recorded = || async {
            let counts = store
                .event_counts(EventQuery {
                    since: 0,
                    bucket_ms: DAY_MS,
                    key: EventKey::Version,
                    outcome: Some(EventOutcome::Request),
                    version_prefix: String::new(),
                })
                .await
                .unwrap();
            counts.iter().map(|count| count.count).sum::<u64>()
        };
        let until = |expected: u64| async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let count = recorded().await;
                if count == expected || Instant::now() > deadline {
                    return count;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let facts = Arc::new(RequestFacts::of(&request, None));
        for at in 0..3 {
            queue.record(&store, &facts, EventOutcome::Request, at);
        }
        assert_eq!(until(3).await, 3);
        queue.record(&store, &facts, EventOutcome::Request, 5);
        assert_eq!(until(4).await, 4);
        // Equal facts in another `Arc`, and another day: counted apart, written alike.
        let again = Arc::new(RequestFacts::of(&request, None));
        queue.record(&store, &again, EventOutcome::Request, DAY_MS + 1);
        queue.record(&store, &facts, EventOutcome::Request, 7);
        assert_eq!(until(6).await, 6);
    }

    #[test]
    fn clients_are_named_as_asu_names_them() {
        assert_eq!(
            client_of(Some("luci/25.1"), Some("auc (0.3.2)")),
            "luci/25.1"
        );
        assert_eq!(client_of(None, Some("auc (0.3.2)")), "auc/0.3.2");
        assert_eq!(client_of(None, Some("auc/0.3.2")), "auc/0.3.2");
        assert_eq!(client_of(None, Some("curl/8.0")), "unknown/0");
        assert_eq!(client_of(Some(" "), None), "unknown/0");
        assert_eq!(
            client_of(Some(&"x".repeat(500)), None).len(),
            MAX_CLIENT_CHARS
        );
        assert_eq!(client_of(Some("a\nb"), None), "ab");
    }

    #[test]
    fn failures_are_anonymised() {
        let hash = "ab".repeat(32);
        let detail = format!("Error:  cannot\n\tbuild `{hash}` now");
        assert_eq!(anonymise(&detail), "Error: cannot build [job-id] now");
        assert_eq!(
            anonymise(&"y ".repeat(300)).chars().count(),
            MAX_DETAIL_CHARS
        );
    }

    #[test]
    fn buckets_end_at_the_next_midnight() {
        // 2026-12-06 12:00 UTC.
        let now = 1_796_558_400_000;
        let start = start_of(now, DAYS, DAY_MS);
        let labels = labels(start, DAYS, DAY_MS);
        assert_eq!(labels.len(), 30);
        assert_eq!(labels.last().unwrap(), "2026-12-06Z");
        assert_eq!(labels.first().unwrap(), "2026-11-07Z");
        assert_eq!(timestamp(now), "2026-12-06 12:00:00");
    }

    #[test]
    fn a_full_download_counter_stays_bounded() {
        let counter = DownloadCounter::default();
        for n in 0..MAX_PENDING_DOWNLOADS - 1 {
            assert!(!counter.count("h", &n.to_string()));
        }
        assert!(counter.count("h", "last"), "full: flush now");
        assert!(counter.count("h", "one more"), "still full");
        assert!(counter.count("h", "last"), "a held image still counts");
        let pending = counter.pending.lock().unwrap();
        assert_eq!(pending.len(), MAX_PENDING_DOWNLOADS);
        assert_eq!(pending[&("h".to_owned(), "last".to_owned())], 2);
    }

    #[test]
    fn ranking_is_by_count_then_name_and_capped() {
        let counts = [
            ("b".to_owned(), 2),
            ("a".to_owned(), 2),
            ("c".to_owned(), 5),
        ];
        let names: Vec<String> = ranked(counts, 2).into_iter().map(|c| c.name).collect();
        assert_eq!(names, ["c", "a"]);
    }
}
