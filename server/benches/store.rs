//! Job store benchmark: submit and claim on SQLite and on PostgreSQL.
//!
//! `cargo bench -p attendant-server --bench store` fills each store with [`JOBS`] jobs one
//! submission at a time, claims them one at a time (latency per call), then fills it again and
//! lets [`CLAIMERS`] concurrent claimers empty it (throughput). SQLite is a WAL file in a
//! temporary directory; PostgreSQL is a private throwaway cluster on a Unix socket (or
//! `ATTENDANT_TEST_DATABASE_URL`), as in the tests. Numbers go to `docs/benchmarks.md`.
//!
//! Under `cargo test` (no `--bench` argument) it runs a few jobs per backend, so the benchmark
//! is kept working by CI without costing it time.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    reason = "a benchmark, like a test, stops at its first failure and prints its table"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use attendant_proto::api::BuildRequest;
use attendant_server::store::{JobSpec, NewJob, PostgresStore, SqliteStore, Store, Submission};

#[path = "../tests/e2e/postgres.rs"]
mod postgres;

/// Jobs per phase in a real run.
const JOBS: usize = 2000;
/// Jobs per phase under `cargo test`.
const SMOKE_JOBS: usize = 20;
/// Concurrent claimers in the throughput phase.
const CLAIMERS: usize = 8;
const LEASE: i64 = 60_000;

fn main() {
    let jobs = if std::env::args().any(|arg| arg == "--bench") {
        JOBS
    } else {
        SMOKE_JOBS
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        println!(
            "| backend | submit p50 | submit p99 | claim p50 | claim p99 | {CLAIMERS} claimers, claims/s |"
        );
        println!("| --- | --- | --- | --- | --- | --- |");
        let dir = tempfile::tempdir().unwrap();
        let sqlite = SqliteStore::open(&dir.path().join("bench.sqlite"))
            .await
            .unwrap();
        measure("SQLite (WAL file)", Arc::new(sqlite), jobs).await;
        let database = postgres::TestDatabase::start().await;
        let postgres = PostgresStore::open(database.url()).await.unwrap();
        measure("PostgreSQL (Unix socket)", Arc::new(postgres), jobs).await;
    });
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
