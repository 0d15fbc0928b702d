//! Process metrics in the Prometheus text exposition format, version 0.0.4
//! (<https://prometheus.io/docs/instrumenting/exposition_formats/>), served at `/metrics`.
//!
//! [`Metrics`] holds what this process counts itself: HTTP requests by route, method and status
//! and their latency (a histogram per route), builds finished by this process's workers by
//! outcome, the workers alive, and the ImageBuilder cache's hits, downloads and evictions.
//! What every process shares (queue length, running jobs, store bytes) is read when scraped and
//! passed to [`Metrics::render`] as a [`Snapshot`]. Routes are the router's patterns
//! (`/api/v1/build/{request_hash}`), never raw paths, and unknown paths are one `unmatched`
//! route, so no request can grow the label sets.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use attendant_proto::channel::ReportResult;

use crate::imagebuilder::ImagebuilderCache;

/// Upper bounds (seconds) of the request latency buckets.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// The `Content-Type` of the exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How a build run by this process's workers ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildOutcome {
    /// Images published.
    Success,
    /// Failed for good (cached).
    Failure,
    /// Put back in the queue (infrastructure trouble).
    Retry,
}

impl BuildOutcome {
    const ALL: [Self; 3] = [Self::Success, Self::Failure, Self::Retry];

    fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Retry => "retry",
        }
    }
}

/// What is shared by every process and read from the store when scraped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Jobs waiting.
    pub queue_length: u64,
    /// Jobs being built, by any worker.
    pub running: u64,
    /// Bytes of built images in the store.
    pub store_bytes: u64,
    /// Each remote worker's last request (Unix milliseconds), as the database has it: every
    /// API node records it there, so any node reports every worker.
    pub worker_heartbeats: Vec<(String, i64)>,
}

/// This process's counters; shared by the HTTP layer and the workers.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    builds: [AtomicU64; 3],
    workers_alive: AtomicU64,
    imagebuilders: OnceLock<ImagebuilderCache>,
    store_bytes: Mutex<Option<(Instant, u64)>>,
    reports: [AtomicU64; 3],
    reports_capped: AtomicU64,
    rollout_actions: [AtomicU64; 2],
    /// Builds published per worker (`local:<host>` or a registered remote worker's name: the
    /// label set grows only with `workers add`).
    worker_builds: Mutex<BTreeMap<String, u64>>,
}

/// What the server did to a rollout by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutAction {
    /// Phased a failing build to 0 %.
    Halt,
    /// Moved a healthy build to its next step.
    Advance,
}

impl RolloutAction {
    const ALL: [Self; 2] = [Self::Halt, Self::Advance];

    /// The audit log's actor and the metric's label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Halt => "auto-halt",
            Self::Advance => "auto-advance",
        }
    }
}

const REPORT_RESULTS: [ReportResult; 3] = [
    ReportResult::Booted,
    ReportResult::RolledBack,
    ReportResult::FailedBeforeFlash,
];

#[derive(Debug, Default)]
struct Histogram {
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Metrics {
    /// Counts one answered request.
    pub fn observe_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let method = known_method(method);
        *self
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry((method, route.to_owned(), status))
            .or_default() += 1;
        let seconds = elapsed.as_secs_f64();
        let mut latency = self.latency.lock().unwrap_or_else(PoisonError::into_inner);
        let histogram = latency.entry(route.to_owned()).or_default();
        for (slot, bound) in histogram.buckets.iter_mut().zip(LATENCY_BUCKETS) {
            if seconds <= bound {
                *slot += 1;
            }
        }
        histogram.count += 1;
        histogram.sum += seconds;
    }

    /// Counts one build finished by a worker of this process; a success also makes the next
    /// scrape measure the store again.
    pub fn observe_build(&self, outcome: BuildOutcome) {
        if outcome == BuildOutcome::Success {
            *self
                .store_bytes
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = None;
        }
        let index = BuildOutcome::ALL
            .iter()
            .position(|known| *known == outcome)
            .unwrap_or_default();
        if let Some(counter) = self.builds.get(index) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts one outcome report received; `counted: false` when the build's cap kept it out.
    pub fn observe_report(&self, result: ReportResult, counted: bool) {
        if !counted {
            self.reports_capped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let index = REPORT_RESULTS
            .iter()
            .position(|known| *known == result)
            .unwrap_or_default();
        if let Some(counter) = self.reports.get(index) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts one auto-halt or auto-advance committed by this process.
    pub fn observe_rollout(&self, action: RolloutAction) {
        let index = RolloutAction::ALL
            .iter()
            .position(|known| *known == action)
            .unwrap_or_default();
        if let Some(counter) = self.rollout_actions.get(index) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A worker started; the returned guard counts it until dropped.
    pub fn worker_alive(&self) -> WorkerAlive<'_> {
        self.workers_alive.fetch_add(1, Ordering::Relaxed);
        WorkerAlive(self)
    }

    /// Build workers running in this process now.
    pub fn workers_alive(&self) -> u64 {
        self.workers_alive.load(Ordering::Relaxed)
    }

    /// Reports this ImageBuilder cache's counters too.
    pub fn watch_imagebuilders(&self, cache: ImagebuilderCache) {
        // Set once at start-up; a second cache in one process is not reported.
        let _ = self.imagebuilders.set(cache);
    }

    /// The store size measured within `max_age` and since the last successful build here, if
    /// any (walking the store on every scrape would cost a directory read per build).
    pub fn recent_store_bytes(&self, max_age: Duration) -> Option<u64> {
        let measured = *self
            .store_bytes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        measured
            .filter(|(at, _)| at.elapsed() <= max_age)
            .map(|(_, bytes)| bytes)
    }

    /// Remembers a store size just measured.
    pub fn set_store_bytes(&self, bytes: u64) {
        *self
            .store_bytes
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((Instant::now(), bytes));
    }

    /// Counts one build published for `worker`.
    pub fn observe_worker_build(&self, worker: &str) {
        let mut builds = self
            .worker_builds
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let count = builds.entry(worker.to_owned()).or_default();
        *count = count.saturating_add(1);
    }

    /// The exposition text.
    pub fn render(&self, snapshot: &Snapshot) -> String {
        let mut out = String::new();
        family(
            &mut out,
            "attendant_http_requests_total",
            "counter",
            "HTTP requests answered, by route, method and status.",
        );
        for ((method, route, status), count) in self
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            let _ = writeln!(
                out,
                "attendant_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {count}",
                escape(route)
            );
        }
        let name = "attendant_http_request_duration_seconds";
        family(
            &mut out,
            name,
            "histogram",
            "Time from receiving a request to the response head, by route.",
        );
        for (route, histogram) in self
            .latency
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            let route = escape(route);
            for (count, bound) in histogram.buckets.iter().zip(LATENCY_BUCKETS) {
                let _ = writeln!(
                    out,
                    "{name}_bucket{{route=\"{route}\",le=\"{bound}\"}} {count}"
                );
            }
            let count = histogram.count;
            let _ = writeln!(
                out,
                "{name}_bucket{{route=\"{route}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(out, "{name}_sum{{route=\"{route}\"}} {}", histogram.sum);
            let _ = writeln!(out, "{name}_count{{route=\"{route}\"}} {count}");
        }
        family(
            &mut out,
            "attendant_builds_total",
            "counter",
            "Builds finished by this process's workers, by outcome.",
        );
        for (outcome, counter) in BuildOutcome::ALL.iter().zip(&self.builds) {
            let _ = writeln!(
                out,
                "attendant_builds_total{{outcome=\"{}\"}} {}",
                outcome.as_str(),
                counter.load(Ordering::Relaxed)
            );
        }
        family(
            &mut out,
            "attendant_worker_builds_total",
            "counter",
            "Builds published through this process, by the worker that built them.",
        );
        for (worker, count) in self
            .worker_builds
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            let _ = writeln!(
                out,
                "attendant_worker_builds_total{{worker=\"{}\"}} {count}",
                escape(worker)
            );
        }
        family(
            &mut out,
            "attendant_worker_last_heartbeat_seconds",
            "gauge",
            "Unix time a remote worker was last heard from by any API node (claim, heartbeat, upload).",
        );
        for (worker, at) in &snapshot.worker_heartbeats {
            let _ = writeln!(
                out,
                "attendant_worker_last_heartbeat_seconds{{worker=\"{}\"}} {}",
                escape(worker),
                *at as f64 / 1000.0
            );
        }
        family(
            &mut out,
            "attendant_reports_total",
            "counter",
            "Outcome reports counted by this process, by result.",
        );
        for (result, counter) in REPORT_RESULTS.iter().zip(&self.reports) {
            let _ = writeln!(
                out,
                "attendant_reports_total{{result=\"{}\"}} {}",
                result.as_str(),
                counter.load(Ordering::Relaxed)
            );
        }
        let name = "attendant_reports_capped_total";
        family(
            &mut out,
            name,
            "counter",
            "Outcome reports not counted because their build holds max_reports_per_build.",
        );
        let _ = writeln!(
            out,
            "{name} {}",
            self.reports_capped.load(Ordering::Relaxed)
        );
        family(
            &mut out,
            "attendant_rollout_actions_total",
            "counter",
            "Rollouts halted or advanced by this process on its own, by action.",
        );
        for (action, counter) in RolloutAction::ALL.iter().zip(&self.rollout_actions) {
            let _ = writeln!(
                out,
                "attendant_rollout_actions_total{{action=\"{}\"}} {}",
                action.as_str(),
                counter.load(Ordering::Relaxed)
            );
        }
        let gauges = [
            (
                "attendant_queue_length",
                "Jobs waiting for a worker.",
                snapshot.queue_length,
            ),
            (
                "attendant_jobs_running",
                "Jobs being built by any worker.",
                snapshot.running,
            ),
            (
                "attendant_workers_alive",
                "Build workers running in this process.",
                self.workers_alive(),
            ),
            (
                "attendant_store_bytes",
                "Bytes of built images in the store.",
                snapshot.store_bytes,
            ),
        ];
        for (name, help, value) in gauges {
            family(&mut out, name, "gauge", help);
            let _ = writeln!(out, "{name} {value}");
        }
        if let Some(cache) = self.imagebuilders.get() {
            let counts = cache.counts();
            let counters = [
                (
                    "attendant_imagebuilder_cache_hits_total",
                    "ImageBuilders handed out from the cache.",
                    counts.hits,
                ),
                (
                    "attendant_imagebuilder_downloads_total",
                    "ImageBuilders downloaded (cache misses).",
                    counts.downloads,
                ),
                (
                    "attendant_imagebuilder_evictions_total",
                    "ImageBuilders evicted to stay within the disk budget.",
                    counts.evictions,
                ),
            ];
            for (name, help, value) in counters {
                family(&mut out, name, "counter", help);
                let _ = writeln!(out, "{name} {value}");
            }
            let name = "attendant_imagebuilder_cache_bytes";
            family(
                &mut out,
                name,
                "gauge",
                "Unpacked size of the cached ImageBuilders.",
            );
            let _ = writeln!(out, "{name} {}", cache.cached_bytes());
        }
        out
    }
}

/// Counts a worker as alive while it lives.
#[derive(Debug)]
pub struct WorkerAlive<'a>(&'a Metrics);

impl Drop for WorkerAlive<'_> {
    fn drop(&mut self) {
        self.0.workers_alive.fetch_sub(1, Ordering::Relaxed);
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// The method as a label: the ones the API answers, everything else `other`.
fn known_method(method: &str) -> &'static str {
    ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"]
        .into_iter()
        .find(|known| *known == method)
        .unwrap_or("other")
}

/// A label value: backslash, double quote and line feed escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_latency_are_rendered_per_route() {
        let metrics = Metrics::default();
        metrics.observe_request("GET", "/a\"b", 200, Duration::from_millis(3));
        metrics.observe_request("BREW", "/a\"b", 404, Duration::from_secs(20));
        metrics.observe_build(BuildOutcome::Failure);
        let text = metrics.render(&Snapshot {
            queue_length: 4,
            ..Snapshot::default()
        });
        assert!(text.contains(
            "attendant_http_requests_total{method=\"GET\",route=\"/a\\\"b\",status=\"200\"} 1"
        ));
        assert!(text.contains("method=\"other\",route=\"/a\\\"b\",status=\"404\"} 1"));
        assert!(text.contains(
            "attendant_http_request_duration_seconds_bucket{route=\"/a\\\"b\",le=\"0.005\"} 1"
        ));
        assert!(text.contains(
            "attendant_http_request_duration_seconds_bucket{route=\"/a\\\"b\",le=\"+Inf\"} 2"
        ));
        assert!(text.contains("attendant_builds_total{outcome=\"failure\"} 1"));
        assert!(text.contains("attendant_queue_length 4"));
        {
            let _worker = metrics.worker_alive();
            assert!(
                metrics
                    .render(&Snapshot::default())
                    .contains("attendant_workers_alive 1")
            );
        }
        assert!(
            metrics
                .render(&Snapshot::default())
                .contains("attendant_workers_alive 0")
        );
    }
}
