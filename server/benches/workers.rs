//! Remote build workers: how fast a job reaches a worker, how many builds per minute one, two and
//! four workers finish, and how many bytes a build moves between a worker and the main server.
//!
//! `cargo bench -p attendant-server --bench workers` runs the main server in this process
//! (`service::spawn`, no workers of its own, signing with a fresh key) and remote workers as real
//! processes (`attendant-server worker --server URL --token-file F`), each with a data directory
//! of its own, against the fixture mirror of `attendant-e2e` served over HTTP on loopback. The
//! workers reach the main server through a byte-counting TCP relay, so the traffic per build is
//! measured on the wire: claims (long-polls), lease heartbeats, the declaration and the upload.
//!
//! 1. **First build** on a fresh worker, alone: the ImageBuilder is downloaded (from the
//!    mirror, not counted as traffic to the main server), verified and unpacked.
//! 2. **Builds per minute** with 1, 2 and 4 workers whose ImageBuilder caches are warm: the
//!    jobs are queued at once (distinct requests, each with its own first-boot script) and the
//!    clock runs from the first submission to the last result.
//! 3. **Claim latency**, with this process as the worker (its own token): the round trip of a
//!    claim when a job is waiting, and the time from a submission to the answer of a claim that
//!    was already long-polling (what an idle worker adds to a build's latency).
//!
//! The machine runs everything at once (server, workers, ImageBuilder), so builds per minute
//! is bounded by its cores; the numbers go to `docs/benchmarks.md` with the core count. Under
//! `cargo test` (no `--bench` argument) it runs one worker and a few jobs, so the benchmark is
//! kept working by CI without costing it time.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::indexing_slicing,
    reason = "a benchmark, like a test, stops at its first failure and prints its table"
)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use attendant_e2e::mirror::MirrorInfo;
use attendant_e2e::mirror_server::MirrorServer;
use attendant_server::config::Config;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

#[path = "../tests/e2e/fixture.rs"]
#[expect(dead_code, reason = "the soak benchmark uses the rest of the file")]
mod fixture;

/// Jobs per builds-per-minute phase in a real run.
const JOBS: usize = 200;
/// Jobs per phase under `cargo test`.
const SMOKE_JOBS: usize = 3;
/// Claims measured in a real run (each kind).
const CLAIMS: usize = 50;
/// Claims measured under `cargo test`.
const SMOKE_CLAIMS: usize = 2;
/// How long anything may take before the benchmark gives up.
const PATIENCE: Duration = Duration::from_secs(600);

fn main() {
    let real = std::env::args().any(|arg| arg == "--bench");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(real));
}

async fn run(real: bool) {
    let (jobs, claims, counts): (usize, usize, &[usize]) = if real {
        (JOBS, CLAIMS, &[1, 2, 4])
    } else {
        (SMOKE_JOBS, SMOKE_CLAIMS, &[1])
    };
    let workers_needed = counts.iter().copied().max().unwrap_or(1);
    let bench = Bench::start().await;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    println!("remote workers on {cores} cores, fixture ImageBuilder, the main server in process");
    println!();
    println!("| phase | jobs | wall | builds/min | to main server per build | from it per build |");
    println!("| --- | --- | --- | --- | --- | --- |");

    // 1. Each worker's first build, alone: its ImageBuilder cache is empty.
    for index in 1..=workers_needed {
        let mut worker = bench.worker(index).await;
        bench.relay.reset();
        let started = Instant::now();
        bench
            .build_all(&[bench.submit(&format!("first {index}")).await])
            .await;
        let took = started.elapsed();
        stop(&mut worker).await;
        let (up, down) = bench.relay.settle().await;
        row(
            &format!("first build on fresh worker w{index}"),
            1,
            took,
            up,
            down,
        );
    }
    let archive = bench.archive_bytes();

    // 2. Builds per minute with warm workers.
    for &count in counts {
        let mut running = Vec::with_capacity(count);
        for index in 1..=count {
            running.push(bench.worker(index).await);
        }
        // Let every worker reach its long-poll before the queue fills.
        tokio::time::sleep(Duration::from_millis(500)).await;
        bench.relay.reset();
        let started = Instant::now();
        let mut hashes = Vec::with_capacity(jobs);
        for job in 0..jobs {
            hashes.push(bench.submit(&format!("{count} workers, job {job}")).await);
        }
        bench.build_all(&hashes).await;
        let wall = started.elapsed();
        for worker in &mut running {
            stop(worker).await;
        }
        let (up, down) = bench.relay.settle().await;
        row(
            &format!("{count} warm worker{}", if count == 1 { "" } else { "s" }),
            jobs,
            wall,
            up / jobs as u64,
            down / jobs as u64,
        );
    }
    println!();
    println!(
        "Not counted above: each worker downloads the ImageBuilder once, from the mirror \
         ({} KiB for the fixture's), before its first build.",
        archive / 1024
    );

    // 3. Claim latency, this process being the worker.
    let token = bench.add_token("bench").await;
    let mut round_trips = Vec::with_capacity(claims);
    for claim in 0..claims {
        bench.submit(&format!("claim {claim}")).await;
    }
    for _ in 0..claims {
        let started = Instant::now();
        let (status, body) = bench.claim(&token, 0).await;
        round_trips.push(started.elapsed());
        assert_eq!(status, 200, "{body}");
    }
    let mut wake_ups = Vec::with_capacity(claims);
    for claim in 0..claims {
        let waiting = {
            let client = bench.client.clone();
            let url = bench.claim_url(10);
            let token = token.clone();
            tokio::spawn(async move {
                let response = client.post(url).bearer_auth(token).send().await.unwrap();
                (response.status().as_u16(), Instant::now())
            })
        };
        // The claim is parked on the server before the job arrives.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let submitted = Instant::now();
        bench.submit(&format!("wake-up {claim}")).await;
        let (status, answered) = waiting.await.unwrap();
        assert_eq!(status, 200, "the parked claim got no job");
        wake_ups.push(answered.duration_since(submitted));
    }
    println!();
    println!("| claim | median | p90 | max | samples |");
    println!("| --- | --- | --- | --- | --- |");
    latency_row("a job waiting (`wait=0`)", &mut round_trips);
    latency_row("parked claim, job submitted", &mut wake_ups);
    bench.stop().await;
}

/// The main server, its mirror, the relay the workers reach it through, and where the workers
/// live.
struct Bench {
    running: attendant_server::service::Running,
    base: String,
    relay: Relay,
    upstream: MirrorServer,
    mirror: MirrorInfo,
    config_file: PathBuf,
    dir: tempfile::TempDir,
    client: reqwest::Client,
}

impl Bench {
    async fn start() -> Self {
        let mirror = fixture::mirror();
        let dir = tempfile::tempdir().unwrap();
        let mut config = base_config(dir.path(), &mirror, "main");
        config.upstream_url = mirror.root.display().to_string();
        config.workers = 0;
        config.max_pending_jobs = 100_000;
        config.allow_defaults = true;
        let key = config.data_dir.join("key-build");
        std::fs::create_dir_all(&config.data_dir).unwrap();
        attendant_server::signing::generate_key_pair(&key, None).unwrap();
        config.signing_key = Some(key);
        let config_file = dir.path().join("main.toml");
        std::fs::write(&config_file, toml::to_string(&config).unwrap()).unwrap();
        let running = attendant_server::service::spawn(config).await.unwrap();
        let relay = Relay::start(running.addr).await;
        let upstream = MirrorServer::start(&mirror.root).unwrap();
        Self {
            base: format!("http://{}", running.addr),
            running,
            relay,
            upstream,
            mirror,
            config_file,
            dir,
            client: reqwest::Client::new(),
        }
    }

    /// `attendant-server workers add <name>`, the token written to `<dir>/<name>.token`.
    async fn add_token(&self, name: &str) -> String {
        let output = Command::new(env!("CARGO_BIN_EXE_attendant-server"))
            .arg("--config")
            .arg(&self.config_file)
            .args(["workers", "add", name])
            .output()
            .await
            .unwrap();
        assert!(
            output.status.success(),
            "workers add {name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let token = String::from_utf8(output.stdout).unwrap().trim().to_owned();
        std::fs::write(self.dir.path().join(format!("{name}.token")), &token).unwrap();
        token
    }

    /// Starts remote worker `w<index>` (its token made on first use), through the relay.
    async fn worker(&self, index: usize) -> Child {
        let name = format!("w{index}");
        let token = self.dir.path().join(format!("{name}.token"));
        if !token.exists() {
            self.add_token(&name).await;
        }
        let mut config = base_config(self.dir.path(), &self.mirror, &name);
        config.upstream_url = self.upstream.url();
        let file = self.dir.path().join(format!("{name}.toml"));
        std::fs::write(&file, toml::to_string(&config).unwrap()).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{name}.log")))
            .unwrap();
        Command::new("setpriv")
            .args([
                "--pdeathsig=KILL",
                "--",
                env!("CARGO_BIN_EXE_attendant-server"),
            ])
            .arg("--config")
            .arg(&file)
            .args(["worker", "--workers", "1", "--server"])
            .arg(format!("http://{}", self.relay.addr))
            .arg("--token-file")
            .arg(&token)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    }

    /// Queues a distinct build (its first-boot script names `label`); its request hash.
    async fn submit(&self, label: &str) -> String {
        let request = json!({"version": "24.10.5", "target": "x86/64", "profile": "generic",
            "packages": [], "defaults": format!("# {label}\n")});
        let response = self
            .client
            .post(format!("{}/api/v1/build", self.base))
            .header("content-type", "application/json")
            .body(request.to_string())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        assert_eq!(status, 202, "{body}");
        body["request_hash"].as_str().unwrap().to_owned()
    }

    /// Waits until every job in `hashes` is built.
    async fn build_all(&self, hashes: &[String]) {
        let started = Instant::now();
        for hash in hashes {
            loop {
                let response = self
                    .client
                    .get(format!("{}/api/v1/build/{hash}", self.base))
                    .send()
                    .await
                    .unwrap();
                match response.status().as_u16() {
                    202 => {}
                    200 => break,
                    status => panic!(
                        "{hash}: {status} {}\n{}",
                        response.text().await.unwrap(),
                        self.logs()
                    ),
                }
                assert!(
                    started.elapsed() < PATIENCE,
                    "not built in time\n{}",
                    self.logs()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    fn claim_url(&self, wait: u64) -> String {
        format!("{}/api/v1/worker/claim?wait={wait}", self.base)
    }

    async fn claim(&self, token: &str, wait: u64) -> (u16, String) {
        let response = self
            .client
            .post(self.claim_url(wait))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    /// Size of the fixture's ImageBuilder archive, what each worker downloads once.
    fn archive_bytes(&self) -> u64 {
        let dir = self.mirror.root.join("releases/24.10.5/targets/x86/64");
        std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|entry| {
                entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with("openwrt-imagebuilder-")
            })
            .map(|entry| entry.metadata().unwrap().len())
            .sum()
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for entry in std::fs::read_dir(self.dir.path()).unwrap().flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|ext| ext == "log") {
                out.push_str(&format!(
                    "--- {}\n{}\n",
                    path.display(),
                    std::fs::read_to_string(&path).unwrap_or_default()
                ));
            }
        }
        out
    }

    async fn stop(self) {
        self.running.shutdown.cancel();
        self.running.task.await.unwrap().unwrap();
    }
}

/// A configuration with a data directory of its own under `dir`.
fn base_config(dir: &Path, mirror: &MirrorInfo, name: &str) -> Config {
    let mut config = Config::default();
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.data_dir = dir.join(name);
    config.trusted_keys = vec![mirror.public_key.clone()];
    config.job_lease = Duration::from_secs(10);
    config.job_timeout = Duration::from_secs(120);
    config.shutdown_timeout = Duration::from_secs(5);
    config
}

/// Stops a worker between phases: every job it took is done, so SIGKILL loses nothing and
/// closes its connections at once.
async fn stop(child: &mut Child) {
    child.kill().await.unwrap();
}

/// A TCP relay in front of the main server that counts the bytes of every connection through
/// it, in each direction, as they pass.
struct Relay {
    addr: SocketAddr,
    up: Arc<AtomicU64>,
    down: Arc<AtomicU64>,
    open: Arc<AtomicU64>,
}

impl Relay {
    async fn start(target: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let relay = Self {
            addr: listener.local_addr().unwrap(),
            up: Arc::default(),
            down: Arc::default(),
            open: Arc::default(),
        };
        let (up, down, open) = (relay.up.clone(), relay.down.clone(), relay.open.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(target).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                open.fetch_add(2, Ordering::SeqCst);
                let (to_server, open_up) = (up.clone(), open.clone());
                tokio::spawn(async move {
                    pump(client_read, server_write, &to_server).await;
                    open_up.fetch_sub(1, Ordering::SeqCst);
                });
                let (from_server, open_down) = (down.clone(), open.clone());
                tokio::spawn(async move {
                    pump(server_read, client_write, &from_server).await;
                    open_down.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        relay
    }

    fn reset(&self) {
        self.up.store(0, Ordering::SeqCst);
        self.down.store(0, Ordering::SeqCst);
    }

    /// The bytes (to the server, from it) since [`Relay::reset`], once the stopped workers'
    /// connections have closed.
    async fn settle(&self) -> (u64, u64) {
        let started = Instant::now();
        while self.open.load(Ordering::SeqCst) > 0 && started.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (
            self.up.load(Ordering::SeqCst),
            self.down.load(Ordering::SeqCst),
        )
    }
}

/// Copies one direction of a relayed connection, counting its bytes.
async fn pump(
    mut read: impl tokio::io::AsyncRead + Unpin,
    mut write: impl tokio::io::AsyncWrite + Unpin,
    counter: &AtomicU64,
) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let count = match read.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(count) => count,
        };
        counter.fetch_add(count as u64, Ordering::SeqCst);
        if write.write_all(&buffer[..count]).await.is_err() {
            break;
        }
    }
    let _ = write.shutdown().await;
}

fn row(phase: &str, jobs: usize, wall: Duration, up: u64, down: u64) {
    println!(
        "| {phase} | {jobs} | {:.2} s | {:.0} | {} | {} |",
        wall.as_secs_f64(),
        jobs as f64 * 60.0 / wall.as_secs_f64(),
        kib(up),
        kib(down)
    );
}

fn kib(bytes: u64) -> String {
    format!("{:.1} KiB", bytes as f64 / 1024.0)
}

fn latency_row(what: &str, samples: &mut [Duration]) {
    samples.sort();
    let at = |fraction: f64| samples[((samples.len() - 1) as f64 * fraction).round() as usize];
    println!(
        "| {what} | {:.2} ms | {:.2} ms | {:.2} ms | {} |",
        millis(at(0.5)),
        millis(at(0.9)),
        millis(at(1.0)),
        samples.len()
    );
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
