//! Job store benchmark: submit and claim on SQLite and on PostgreSQL.
//!
//! `cargo bench -p attendant-server --bench store` fills each store with [`JOBS`] jobs one
//! submission at a time, claims them one at a time (latency per call), then fills it again and
//! lets [`CLAIMERS`] concurrent claimers empty it (throughput). SQLite is a WAL file in a
//! temporary directory; PostgreSQL is a private throwaway cluster on a Unix socket (or
//! `ATTENDANT_TEST_DATABASE_URL`), as in the tests. Numbers go to `docs/benchmarks.md`.
//!
//! A second table measures the statistics: [`EVENTS`] build events recorded one at a time
//! (`StatsStore::record_event`, what every build request costs on top), then each aggregation
//! the statistics endpoints and pages run over them (median of 5).
//!
//! A third table measures what the server's event queue (`stats::EventQueue`) writes every
//! 250 ms under load: one batch of [`FLUSH_EVENTS`] request events counted in [`FLUSH_KINDS`]
//! kinds (`StatsStore::record_events`), median of [`FLUSH_ROUNDS`] batches. `-- --bench flush`
//! runs this table alone.
//!
//! Under `cargo test` (no `--bench` argument) it runs a few jobs per backend, so the benchmark
//! is kept working by CI without costing it time.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::indexing_slicing,
    reason = "a benchmark, like a test, stops at its first failure and prints its table"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use attendant_proto::api::BuildRequest;
use attendant_server::stats;
use attendant_server::store::{
    BuildEvent, EventKey, EventOutcome, JobSpec, NewJob, PostgresStore, SqliteStore, Store,
    Submission,
};

#[path = "../tests/e2e/postgres.rs"]
mod postgres;

/// Jobs per phase in a real run.
const JOBS: usize = 2000;
/// Jobs per phase under `cargo test`.
const SMOKE_JOBS: usize = 20;
/// Build events in a real run (spread over 30 days).
const EVENTS: usize = 50_000;
/// Build events under `cargo test`.
const SMOKE_EVENTS: usize = 100;
/// Events in one flush of the event queue in a real run: 250 ms of cached LuCI-sized
/// `POST`s at 25,000 requests/s, each a `request` and a `cache_hit`.
const FLUSH_EVENTS: u64 = 12_500;
/// Distinct kinds (request facts, outcome, day) those events are counted in: a fleet of a
/// few dozen models polling.
const FLUSH_KINDS: u64 = 50;
/// Flushes measured per backend in a real run.
const FLUSH_ROUNDS: usize = 9;
/// Concurrent claimers in the throughput phase.
const CLAIMERS: usize = 8;
const LEASE: i64 = 60_000;

fn main() {
    let real = std::env::args().any(|arg| arg == "--bench");
    let flush_only = std::env::args().any(|arg| arg == "flush");
    let (jobs, events, flushes) = if real {
        (JOBS, EVENTS, FLUSH_ROUNDS)
    } else {
        (SMOKE_JOBS, SMOKE_EVENTS, 1)
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        if flush_only {
            let dir = tempfile::tempdir().unwrap();
            let sqlite = SqliteStore::open(&dir.path().join("bench.sqlite"))
                .await
                .unwrap();
            let database = postgres::TestDatabase::start().await;
            let postgres = PostgresStore::open(database.url()).await.unwrap();
            print_flush_header();
            measure_flush("SQLite (WAL file)", &sqlite, flushes).await;
            measure_flush("PostgreSQL (Unix socket)", &postgres, flushes).await;
            return;
        }
        println!(
            "| backend | submit p50 | submit p99 | claim p50 | claim p99 | {CLAIMERS} claimers, claims/s |"
        );
        println!("| --- | --- | --- | --- | --- | --- |");
        let dir = tempfile::tempdir().unwrap();
        let sqlite = SqliteStore::open(&dir.path().join("bench.sqlite"))
            .await
            .unwrap();
        let sqlite: Arc<dyn Store> = Arc::new(sqlite);
        measure("SQLite (WAL file)", sqlite.clone(), jobs).await;
        let database = postgres::TestDatabase::start().await;
        let postgres: Arc<dyn Store> = Arc::new(PostgresStore::open(database.url()).await.unwrap());
        measure("PostgreSQL (Unix socket)", postgres.clone(), jobs).await;

        println!(
            "\n| backend | {events} events: record p50 | record p99 | builds-per-day | builds-by-version | top-packages | top-clients | build-errors |"
        );
        println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
        measure_stats("SQLite (WAL file)", &*sqlite, events).await;
        measure_stats("PostgreSQL (Unix socket)", &*postgres, events).await;

        print_flush_header();
        measure_flush("SQLite (WAL file)", &*sqlite, flushes).await;
        measure_flush("PostgreSQL (Unix socket)", &*postgres, flushes).await;
    });
}

fn print_flush_header() {
    println!(
        "\n| backend | flush of {FLUSH_EVENTS} events in {FLUSH_KINDS} kinds: p50 | min | max |"
    );
    println!("| --- | --- | --- | --- |");
}

/// Times `rounds` flushes of one event-queue batch, each with its own day so no two batches
/// share a kind.
async fn measure_flush(backend: &str, store: &dyn Store, rounds: usize) {
    let mut flushes = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let at = 100 * DAY_MS + i64::try_from(round).unwrap() * DAY_MS;
        let batch: Vec<(BuildEvent, u64)> = (0..FLUSH_KINDS)
            .map(|kind| {
                let mut request =
                    BuildRequest::new("24.10.5", "x86/64", format!("profile-{}", kind / 2));
                request.client = Some("luci/25.1".to_owned());
                let outcome = if kind % 2 == 0 {
                    EventOutcome::Request
                } else {
                    EventOutcome::CacheHit
                };
                (
                    stats::event(&request, None, outcome, at),
                    FLUSH_EVENTS / FLUSH_KINDS,
                )
            })
            .collect();
        let started = Instant::now();
        store.record_events(&batch).await.unwrap();
        flushes.push(started.elapsed());
    }
    flushes.sort();
    println!(
        "| {backend} | {} | {} | {} |",
        millis(percentile(&mut flushes, 50)),
        millis(flushes.first().copied().unwrap_or_default()),
        millis(flushes.last().copied().unwrap_or_default())
    );
}

async fn measure(backend: &str, store: Arc<dyn Store>, jobs: usize) {
    let mut submits = Vec::with_capacity(jobs);
    for n in 0..jobs {
        let started = Instant::now();
        let submission = store.submit(job(0, n), u64::MAX, 0).await.unwrap();
        submits.push(started.elapsed());
        assert!(matches!(submission, Submission::Created(_)));
    }
    let mut claims = Vec::with_capacity(jobs);
    for _ in 0..jobs {
        let started = Instant::now();
        let claim = store.claim("bench", 1, LEASE).await.unwrap();
        claims.push(started.elapsed());
        assert!(claim.is_some());
    }

    for n in 0..jobs {
        store.submit(job(1, n), u64::MAX, 0).await.unwrap();
    }
    let started = Instant::now();
    let claimers: Vec<_> = (0..CLAIMERS)
        .map(|claimer| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut claimed = 0_usize;
                while store
                    .claim(&format!("bench-{claimer}"), 1, LEASE)
                    .await
                    .unwrap()
                    .is_some()
                {
                    claimed += 1;
                }
                claimed
            })
        })
        .collect();
    let mut claimed = 0;
    for claimer in claimers {
        claimed += claimer.await.unwrap();
    }
    let elapsed = started.elapsed();
    assert_eq!(claimed, jobs, "every job claimed exactly once");
    println!(
        "| {backend} | {} | {} | {} | {} | {:.0} |",
        millis(percentile(&mut submits, 50)),
        millis(percentile(&mut submits, 99)),
        millis(percentile(&mut claims, 50)),
        millis(percentile(&mut claims, 99)),
        jobs as f64 / elapsed.as_secs_f64()
    );
}

async fn measure_stats(backend: &str, store: &dyn Store, events: usize) {
    let now = 40 * DAY_MS;
    let mut records = Vec::with_capacity(events);
    for n in 0..events {
        let event = event(n, events, now);
        let started = Instant::now();
        store.record_event(&event).await.unwrap();
        records.push(started.elapsed());
    }
    let mut row = format!(
        "| {backend} | {} | {} |",
        millis(percentile(&mut records, 50)),
        millis(percentile(&mut records, 99))
    );
    let per_day = median(|| async {
        stats::builds_per_day(store, now).await.unwrap();
    })
    .await;
    let by_version = median(|| async {
        stats::builds_by_version(store, None, now).await.unwrap();
    })
    .await;
    let packages = median(|| async {
        stats::top_packages(store, Some("24.10"), 30, now)
            .await
            .unwrap();
    })
    .await;
    let clients = median(|| async {
        stats::top(store, EventKey::Client, 30, now).await.unwrap();
    })
    .await;
    let errors = median(|| async {
        stats::build_errors(store, 500).await.unwrap();
    })
    .await;
    for duration in [per_day, by_version, packages, clients, errors] {
        row.push_str(&format!(" {} |", millis(duration)));
    }
    println!("{row}");
}

const DAY_MS: i64 = 24 * 3600 * 1000;

/// Event `n` of `total`, spread evenly over the 30 days before `now`: every fourth a success
/// with a few packages, every tenth a cache hit, every twentieth a failure, the rest requests.
fn event(n: usize, total: usize, now: i64) -> BuildEvent {
    let outcome = match n % 20 {
        0 => EventOutcome::Failure,
        1 | 11 => EventOutcome::CacheHit,
        2 | 6 | 10 | 14 | 18 => EventOutcome::Success,
        _ => EventOutcome::Request,
    };
    let offset = 30 * DAY_MS * i64::try_from(n).unwrap() / i64::try_from(total).unwrap();
    let mut request = BuildRequest::new(
        ["24.10.5", "24.10.4", "23.05.5", "SNAPSHOT"][n % 4],
        [
            "x86/64",
            "ath79/generic",
            "mediatek/filogic",
            "ramips/mt7621",
        ][n % 7 % 4],
        format!("profile-{}", n % 50),
    );
    request.client = Some(["luci/25.1", "owut/2024.07", "ofs/4.3"][n % 3].to_owned());
    let mut event = stats::event(&request, None, outcome, now - offset);
    if outcome == EventOutcome::Success {
        event.packages = (0..4)
            .map(|i| format!("package-{}", (n + i * 7) % 100))
            .collect();
    }
    if outcome == EventOutcome::Failure {
        event.detail = Some(stats::anonymise(
            "Error: Impossible package selection: missing",
        ));
    }
    event
}

/// The median of 5 runs of `run`.
async fn median<F, Fut>(run: F) -> Duration
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut samples = Vec::with_capacity(5);
    for _ in 0..5 {
        let started = Instant::now();
        run().await;
        samples.push(started.elapsed());
    }
    percentile(&mut samples, 50)
}

/// A job with a realistic stored request: a device build of a few packages.
fn job(round: u8, n: usize) -> NewJob {
    NewJob {
        request_hash: format!("{round:02x}{n:062x}").parse().unwrap(),
        request: JobSpec {
            request: BuildRequest::new("24.10.5", "x86/64", format!("profile-{n}")),
            version_path: "releases/24.10.5".to_owned(),
            target: "x86".to_owned(),
            subtarget: "64".to_owned(),
            packages: vec!["luci".to_owned(), "tmux".to_owned(), format!("package-{n}")],
            files: Vec::new(),
        },
    }
}

fn percentile(samples: &mut [Duration], percent: usize) -> Duration {
    samples.sort();
    let index = (samples.len() * percent / 100).min(samples.len().saturating_sub(1));
    samples.get(index).copied().unwrap_or_default()
}

fn millis(duration: Duration) -> String {
    format!("{:.3} ms", duration.as_secs_f64() * 1000.0)
}
