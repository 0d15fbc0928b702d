//! Artifact store throughput: the local directory against an S3-compatible bucket.
//!
//! `cargo bench -p attendant-server --bench artifacts` publishes a [`SIZE`] image through
//! `Artifacts::publish` (local: a rename within one file system, so nearly free; S3: a
//! multipart upload to a real S3 protocol server, s3s with s3s-fs, on loopback) and serves it
//! back whole through a running server's `/store/` over HTTP, printing MiB/s (median of
//! [`ROUNDS`]) as a Markdown table for `docs/benchmarks.md`. Under `cargo test` (no `--bench`
//! argument) it moves 1 MiB once per backend, so CI keeps it working at no cost.

#![expect(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::indexing_slicing,
    reason = "a benchmark, like a test, stops at its first failure and prints its table"
)]

#[path = "../tests/s3/server.rs"]
mod s3;

use std::path::Path;
use std::time::{Duration, Instant};

use attendant_proto::api::RequestHash;
use attendant_server::config::{Config, StoreBackend, StoreConfig};
use attendant_server::service::spawn;

/// Image size in a real run.
const SIZE: usize = 64 * 1024 * 1024;
/// Image size under `cargo test`.
const SMOKE_SIZE: usize = 1024 * 1024;
/// Rounds per measurement in a real run (the median is printed).
const ROUNDS: usize = 5;

fn main() {
    let full = std::env::args().any(|arg| arg == "--bench");
    let (size, rounds) = if full {
        (SIZE, ROUNDS)
    } else {
        (SMOKE_SIZE, 1)
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!("| backend | publish MiB/s | serve MiB/s |\n| --- | ---: | ---: |");
    for backend in ["local", "s3"] {
        let (publish, serve) = runtime.block_on(measure(backend, size, rounds));
        println!("| {backend} | {publish:.0} | {serve:.0} |");
    }
}

/// Median publish and serve throughput in MiB/s.
async fn measure(backend: &str, size: usize, rounds: usize) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.data_dir = dir.path().join("data");
    config.workers = 0;
    config.shutdown_timeout = Duration::from_secs(5);
    if backend == "s3" {
        let server = s3::s3_server();
        server.create_bucket("bench");
        let credentials = dir.path().join("credentials.toml");
        std::fs::write(
            &credentials,
            format!(
                "access_key_id = \"{}\"\nsecret_access_key = \"{}\"\n",
                s3::ACCESS_KEY,
                s3::SECRET_KEY
            ),
        )
        .unwrap();
        let text = format!(
            "backend = \"s3\"\nbucket = \"bench\"\nendpoint = \"{}\"\ncredentials_file = \"{}\"\nallow_http = true\n",
            server.endpoint,
            credentials.display()
        );
        config.store = toml::from_str::<StoreConfig>(&text).unwrap();
        assert_eq!(config.store.backend, StoreBackend::S3);
    }
    let running = spawn(config.clone()).await.unwrap();
    let artifacts = running.service.state.artifacts.clone();
    let client = reqwest::Client::new();
    let image: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let hash: RequestHash = "ab".repeat(32).parse().unwrap();
    let mut publish = Vec::new();
    let mut serve = Vec::new();
    for round in 0..rounds {
        let output = config.data_dir.join(format!("out-{round}"));
        write_output(&output, &image);
        let started = Instant::now();
        artifacts.publish(&output, &hash).await.unwrap();
        publish.push(mib_per_second(size, started.elapsed()));

        let started = Instant::now();
        let response = client
            .get(format!("http://{}/store/{hash}/image.bin", running.addr))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let mut received = 0usize;
        let mut response = response;
        while let Some(chunk) = response.chunk().await.unwrap() {
            received += chunk.len();
        }
        assert_eq!(received, size);
        serve.push(mib_per_second(size, started.elapsed()));
    }
    artifacts.remove(&hash).await.unwrap();
    running.shutdown.cancel();
    let _ = running.task.await;
    if backend == "s3" {
        let _ = std::fs::remove_dir_all(s3::s3_server().root.join("bench"));
    }
    (median(publish), median(serve))
}

fn write_output(output: &Path, image: &[u8]) {
    std::fs::create_dir_all(output).unwrap();
    std::fs::write(output.join("image.bin"), image).unwrap();
    std::fs::write(output.join("profiles.json"), b"{}").unwrap();
}

fn mib_per_second(size: usize, elapsed: Duration) -> f64 {
    size as f64 / (1024.0 * 1024.0) / elapsed.as_secs_f64()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
