//! Soak test: `attendant-server` under mixed and hostile load, with faults injected.
//!
//! `cargo bench -p attendant-server --bench soak -- --minutes 10` runs the API server
//! (`attendant-server serve --workers 0`) and one build worker (`attendant-server worker`) as
//! real processes sharing an SQLite database, against the fixture mirror of `attendant-e2e`
//! served over HTTP on loopback, with `data_dir` on a 512 MiB tmpfs (when run as root; the
//! disk faults are skipped otherwise). For the given time:
//!
//! * builders POST builds (random package selections for two targets, so that ImageBuilders are
//!   evicted and downloaded again) and poll each until it ends;
//! * pollers read build status, `/api/v1/stats` and `overview.json`;
//! * downloaders fetch finished images from `/store/` and check their SHA-256;
//! * hostile clients hold half-sent headers (slowloris), send garbage, and POST oversized bodies;
//! * faults: the worker is killed with `SIGKILL` and restarted, the upstream cuts every
//!   ImageBuilder download short for a while, and the data disk is filled and freed.
//!
//! Then the faults stop and every job the builders submitted must end within a drain period:
//! built (`200`) or failed with a `detail` naming the cause (`500`). The server's open sockets
//! must be back to what they were before the load (no stuck connection), and its resident
//! memory within 20 % of what it was after the warm-up build. The figures are printed as the
//! table in `docs/benchmarks.md`.
//!
//! Under `cargo test` (no `--bench` argument) it runs for a few seconds, so that the harness
//! keeps working without costing CI time.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::indexing_slicing,
    reason = "a benchmark, like a test, stops at its first failure and prints its table"
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use attendant_e2e::mirror_server::MirrorServer;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "../tests/e2e/fixture.rs"]
mod fixture;
#[path = "../tests/e2e/small_disk.rs"]
mod small_disk;

use fixture::{free_port, mirror};

/// Load duration under `cargo test`.
const SMOKE: Duration = Duration::from_secs(8);
/// How long the jobs get to finish after the load and the faults stop.
const DRAIN: Duration = Duration::from_secs(180);
/// A client request that takes longer than this counts as stuck.
const REQUEST_LIMIT: Duration = Duration::from_secs(30);
/// How long the server may take to answer its first request (a loaded CI machine pages in a
/// 140 MB debug binary and opens a new database).
const START_LIMIT: Duration = Duration::from_secs(90);
/// Most jobs the builders submit (bounded, whatever the duration).
const MAX_JOBS: u64 = 400;
/// The ImageBuilder archive path prefix the upstream faults cut.
const IMAGEBUILDER_PREFIX: &str = "/releases/24.10.5/targets/";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let benching = args.iter().any(|arg| arg == "--bench");
    let minutes = args
        .iter()
        .position(|arg| arg == "--minutes")
        .and_then(|at| args.get(at + 1))
        .map(|value| value.parse::<f64>().expect("--minutes takes a number"));
    let duration = match (benching, minutes) {
        (_, Some(minutes)) => Duration::from_secs_f64(minutes * 60.0),
        (true, None) => Duration::from_secs(600),
        (false, None) => SMOKE,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(soak(duration));
}

/// Counters of everything that happened, printed at the end.
#[derive(Default)]
struct Tally {
    counts: Mutex<BTreeMap<String, u64>>,
}

impl Tally {
    fn add(&self, what: impl Into<String>) {
        *self.counts.lock().unwrap().entry(what.into()).or_default() += 1;
    }
}

/// A built job's images: file name and SHA-256.
type Images = Vec<(String, String)>;

struct Soak {
    base: String,
    client: reqwest::Client,
    tally: Tally,
    /// Every job submitted, with its images once built.
    jobs: Mutex<BTreeMap<String, Option<Images>>>,
    submitted: AtomicU64,
    stop: AtomicBool,
}

async fn soak(duration: Duration) {
    let mirror = mirror();
    let upstream = MirrorServer::start(&mirror.root).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let disk = small_disk::SmallDisk::mount(512 * 1024 * 1024);
    let data = match &disk {
        Some(disk) => disk.path().join("data"),
        None => {
            println!("not root: no tmpfs for data_dir, the disk-full fault is skipped");
            dir.path().join("data")
        }
    };
    let port = free_port();
    let config = dir.path().join("attendant.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\ndata_dir = {:?}\ndatabase = {:?}\n\
             upstream_url = {:?}\ntrusted_keys = [{:?}]\njob_lease = \"3s\"\n\
             retry_backoff = \"1s\"\nmax_attempts = 4\nbuild_failure_ttl = \"1h\"\n\
             imagebuilder_cache_bytes = 120000000\nmax_connections = 256\n\
             header_read_timeout = \"5s\"\nidle_timeout = \"20s\"\n",
            data.display().to_string(),
            dir.path().join("jobs.sqlite").display().to_string(),
            upstream.url(),
            mirror.public_key.display().to_string(),
        ),
    )
    .unwrap();
    let mut server = spawn(&config, "serve", &["--workers", "0"]);
    let mut worker = spawn(&config, "worker", &["--workers", "1"]);
    let soak = Arc::new(Soak {
        base: format!("http://127.0.0.1:{port}"),
        client: reqwest::Client::builder()
            .timeout(REQUEST_LIMIT)
            .build()
            .unwrap(),
        tally: Tally::default(),
        jobs: Mutex::new(BTreeMap::new()),
        submitted: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });

    let ready = Instant::now();
    while soak
        .send(soak.client.get(soak.url("/api/v1/stats")))
        .await
        .is_none()
    {
        if let Some(status) = server.0.try_wait().unwrap() {
            panic!("the server exited at start ({status}):\n{}", server.log());
        }
        assert!(
            ready.elapsed() < START_LIMIT,
            "the server did not answer within {START_LIMIT:?}:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    soak.tally.counts.lock().unwrap().clear();
    // Warm-up: a build of each target, so that the start figures include the upstream metadata
    // (package indexes) of both, as the server holds them for the rest of its life.
    for (target, profile) in [
        ("x86/64", "generic"),
        ("ath79/generic", "tplink_tl-wr902ac-v1"),
    ] {
        let warm = soak
            .build_until_done(json!(["curl"]), target, profile)
            .await;
        assert_eq!(warm.0, 200, "warm-up build of {target}: {}", warm.1);
    }
    let rss_warm = rss_kib(server.id());
    let sockets_start = sockets(server.id());
    let started = Instant::now();

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..3 {
        tasks.spawn(Arc::clone(&soak).builder());
    }
    for _ in 0..4 {
        tasks.spawn(Arc::clone(&soak).poller());
    }
    tasks.spawn(Arc::clone(&soak).downloader());
    tasks.spawn(Arc::clone(&soak).hostile());
    let mut rss_peak = rss_warm;
    // The baseline is taken once the load has run for a minute (a second in the smoke run):
    // by then the database pool, the connection buffers and the allocator's per-thread arenas
    // have grown to their working size, which a leak check must not count as growth.
    let mut rss_start = rss_warm;
    let mut rss_minutes = Vec::new();
    let (mut kills, mut cuts, mut fills) = (0u64, 0u64, 0u64);
    let smoke = duration <= SMOKE;
    let mut second = 0u64;
    while started.elapsed() < duration {
        tokio::time::sleep(Duration::from_secs(1)).await;
        second += 1;
        let rss = rss_kib(server.id());
        rss_peak = rss_peak.max(rss);
        if second == if smoke { 1 } else { 60 } {
            rss_start = rss;
        }
        if second.is_multiple_of(60) {
            rss_minutes.push(format!("{:.1}", rss as f64 / 1024.0));
        }
        match fault_at(second, smoke) {
            Some(Fault::KillWorker) => {
                // SIGKILL: the worker gets no chance to give its job back.
                drop(worker);
                worker = spawn(&config, "worker", &["--workers", "1"]);
                kills += 1;
            }
            Some(Fault::CutUpstream) => {
                upstream.cut_after(IMAGEBUILDER_PREFIX, 4096);
                cuts += 1;
            }
            Some(Fault::HealUpstream) => upstream.clear_faults(),
            Some(Fault::FillDisk) => {
                if let Some(disk) = &disk {
                    let filler = disk.fill();
                    fills += 1;
                    tokio::time::sleep(if smoke {
                        Duration::from_secs(1)
                    } else {
                        Duration::from_secs(10)
                    })
                    .await;
                    std::fs::remove_file(filler).unwrap();
                }
            }
            None => {}
        }
    }
    soak.stop.store(true, Ordering::Relaxed);
    upstream.clear_faults();
    while let Some(joined) = tasks.join_next().await {
        joined.unwrap();
    }
    let load_time = started.elapsed();

    // Drain: every job ends, built or failed for a named cause.
    let drain_started = Instant::now();
    let hashes: Vec<String> = soak.jobs.lock().unwrap().keys().cloned().collect();
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    for hash in &hashes {
        let (status, body) = soak
            .wait(hash, DRAIN.saturating_sub(drain_started.elapsed()))
            .await;
        let outcome = match status {
            200 => "built".to_owned(),
            500 => {
                let detail = body["detail"].as_str().unwrap_or_default();
                assert!(
                    !detail.is_empty() && detail != "failed",
                    "job {hash} failed without a cause: {body}"
                );
                format!("failed: {}", cause(detail))
            }
            404 => "expired".to_owned(),
            other => panic!("job {hash} did not end within the drain period: {other} {body}"),
        };
        *outcomes.entry(outcome).or_default() += 1;
    }
    let drain_time = drain_started.elapsed();
    // Keep-alive connections of the clients end after the header timeout (5 s).
    tokio::time::sleep(Duration::from_secs(7)).await;
    let sockets_end = sockets(server.id());
    let rss_end = rss_kib(server.id());
    drop(worker);
    drop(server);

    println!("| figure | value |");
    println!("| --- | --- |");
    println!("| load | {:.1} min |", load_time.as_secs_f64() / 60.0);
    println!(
        "| drain until every job ended | {:.1} s |",
        drain_time.as_secs_f64()
    );
    println!("| jobs submitted | {} |", hashes.len());
    for (outcome, count) in &outcomes {
        println!("| jobs {outcome} | {count} |");
    }
    for (what, count) in soak.tally.counts.lock().unwrap().iter() {
        println!("| {what} | {count} |");
    }
    println!("| worker kills / upstream cuts / disk fills | {kills} / {cuts} / {fills} |");
    println!("| server sockets before / after | {sockets_start} / {sockets_end} |");
    println!(
        "| server RSS after warm-up / after 1 min (baseline) / peak / end | {:.1} / {:.1} / {:.1} / {:.1} MiB |",
        rss_warm as f64 / 1024.0,
        rss_start as f64 / 1024.0,
        rss_peak as f64 / 1024.0,
        rss_end as f64 / 1024.0
    );
    println!(
        "| server RSS each minute | {} MiB |",
        rss_minutes.join(", ")
    );
    assert!(
        sockets_end <= sockets_start,
        "connections left open: {sockets_end} sockets, {sockets_start} before the load"
    );
    assert!(
        rss_end as f64 <= rss_start as f64 * 1.2,
        "resident memory did not come back: {rss_end} KiB after, {rss_start} KiB before"
    );
    let stuck = soak
        .tally
        .counts
        .lock()
        .unwrap()
        .get("requests stuck")
        .copied();
    assert_eq!(stuck, None, "requests took longer than {REQUEST_LIMIT:?}");
}

impl Soak {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a request; a transport error or a timeout is tallied, not fatal (the server is
    /// under attack and faults), but a timeout counts as a stuck request.
    async fn send(&self, request: reqwest::RequestBuilder) -> Option<(u16, Value)> {
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let bytes = response.bytes().await.unwrap_or_default();
                Some((
                    status,
                    serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                ))
            }
            Err(error) if error.is_timeout() => {
                self.tally.add("requests stuck");
                None
            }
            Err(_) => {
                self.tally.add("requests failed to connect or were cut");
                None
            }
        }
    }

    async fn post(&self, packages: Value, target: &str, profile: &str) -> Option<(u16, Value)> {
        self.post_with(packages, target, profile, None).await
    }

    /// POSTs a build; `rootfs_size_mb` (x86 only) makes an otherwise cached selection a new
    /// job.
    async fn post_with(
        &self,
        packages: Value,
        target: &str,
        profile: &str,
        rootfs_size_mb: Option<u64>,
    ) -> Option<(u16, Value)> {
        let mut body = json!({"version": "24.10.5", "target": target, "profile": profile,
                              "packages": packages});
        if let Some(size) = rootfs_size_mb {
            body["rootfs_size_mb"] = json!(size);
        }
        self.send(
            self.client
                .post(self.url("/api/v1/build"))
                .header("content-type", "application/json")
                .body(body.to_string()),
        )
        .await
    }

    async fn build_until_done(&self, packages: Value, target: &str, profile: &str) -> (u16, Value) {
        let (status, body) = self.post(packages, target, profile).await.unwrap();
        let Some(hash) = body["request_hash"].as_str() else {
            return (status, body);
        };
        self.wait(hash, DRAIN).await
    }

    /// Polls a job until it is no longer `202` or `patience` ran out.
    async fn wait(&self, hash: &str, patience: Duration) -> (u16, Value) {
        let started = Instant::now();
        loop {
            let answer = self
                .send(self.client.get(self.url(&format!("/api/v1/build/{hash}"))))
                .await;
            if let Some((status, body)) = answer
                && (status != 202 || started.elapsed() > patience)
            {
                return (status, body);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn builder(self: Arc<Self>) {
        let choices = [
            (
                "x86/64",
                "generic",
                ["htop", "curl", "nano", "tmux"].as_slice(),
            ),
            (
                "ath79/generic",
                "tplink_tl-wr902ac-v1",
                ["curl", "nano", "htop"].as_slice(),
            ),
        ];
        let mut seed = u64::from(std::process::id()) ^ now_nanos();
        while !self.stop.load(Ordering::Relaxed)
            && self.submitted.fetch_add(1, Ordering::Relaxed) < MAX_JOBS
        {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let (target, profile, packages) = choices[(seed >> 33) as usize % choices.len()];
            let picked: Vec<&str> = packages
                .iter()
                .enumerate()
                .filter(|(bit, _)| seed >> (40 + bit) & 1 == 1)
                .map(|(_, name)| *name)
                .collect();
            // Every third x86 build asks for a rootfs size of its own: a new job, not a cache hit.
            let rootfs =
                (target == "x86/64" && seed >> 50 & 3 == 0).then(|| 100 + (seed >> 52) % 400);
            let Some((status, body)) = self.post_with(json!(picked), target, profile, rootfs).await
            else {
                continue;
            };
            self.tally.add(format!("build POST answered {status}"));
            if let Some(hash) = body["request_hash"].as_str() {
                self.jobs
                    .lock()
                    .unwrap()
                    .entry(hash.to_owned())
                    .or_default();
                let (status, body) = self.wait(hash, Duration::from_secs(120)).await;
                if status == 200
                    && let Some(images) = body["images"].as_array()
                {
                    let files = images
                        .iter()
                        .filter_map(|image| {
                            let name = image["name"].as_str()?.to_owned();
                            let sha256 = image["sha256"].as_str()?.to_owned();
                            Some((name, sha256))
                        })
                        .collect();
                    self.jobs
                        .lock()
                        .unwrap()
                        .insert(hash.to_owned(), Some(files));
                }
            }
        }
    }

    async fn poller(self: Arc<Self>) {
        let mut round = 0usize;
        while !self.stop.load(Ordering::Relaxed) {
            round += 1;
            let hash = {
                let jobs = self.jobs.lock().unwrap();
                jobs.keys().nth(round % jobs.len().max(1)).cloned()
            };
            let path = match (round % 3, hash) {
                (0, Some(hash)) => format!("/api/v1/build/{hash}"),
                (1, _) => "/api/v1/stats".to_owned(),
                _ => "/json/v1/overview.json".to_owned(),
            };
            if let Some((status, _)) = self.send(self.client.get(self.url(&path))).await {
                self.tally.add(format!("polls answered {status}"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn downloader(self: Arc<Self>) {
        let mut round = 0usize;
        while !self.stop.load(Ordering::Relaxed) {
            round += 1;
            let file = {
                let jobs = self.jobs.lock().unwrap();
                let built: Vec<_> = jobs
                    .iter()
                    .filter_map(|(hash, files)| Some((hash, files.as_ref()?)))
                    .flat_map(|(hash, files)| {
                        files.iter().map(move |file| (hash.clone(), file.clone()))
                    })
                    .collect();
                built.get(round % built.len().max(1)).cloned()
            };
            let Some((hash, (name, sha256))) = file else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            let response = self
                .client
                .get(self.url(&format!("/store/{hash}/{name}")))
                .send()
                .await;
            match response {
                Ok(response) if response.status() == 200 => match response.bytes().await {
                    Ok(bytes) if hex::encode(Sha256::digest(&bytes)) == sha256 => {
                        self.tally.add("downloads whole, SHA-256 checked");
                    }
                    Ok(_) => panic!("`/store/{hash}/{name}` does not have SHA-256 `{sha256}`"),
                    Err(_) => self.tally.add("downloads cut"),
                },
                Ok(response) => self
                    .tally
                    .add(format!("downloads answered {}", response.status())),
                Err(error) if error.is_timeout() => self.tally.add("requests stuck"),
                Err(_) => self.tally.add("downloads cut"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Slowloris, garbage and oversized bodies, in turns, a few connections at a time.
    async fn hostile(self: Arc<Self>) {
        let address = self.base.trim_start_matches("http://").to_owned();
        let mut round = 0u64;
        while !self.stop.load(Ordering::Relaxed) {
            round += 1;
            let Ok(mut stream) = tokio::net::TcpStream::connect(&address).await else {
                self.tally.add("hostile connections refused");
                continue;
            };
            let outcome = match round % 3 {
                0 => {
                    // Slowloris: a header that never ends, one byte a second.
                    let _ = stream
                        .write_all(b"GET /api/v1/stats HTTP/1.1\r\nX-A: ")
                        .await;
                    let mut closed = false;
                    for _ in 0..10 {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        if stream.write_all(b"a").await.is_err() {
                            closed = true;
                            break;
                        }
                    }
                    if closed {
                        "slowloris closed by the server"
                    } else {
                        "slowloris held 10 s"
                    }
                }
                1 => {
                    let _ = stream
                        .write_all(b"\x16\x03\x01\x02\x00garbage\r\n\r\n\0\xff")
                        .await;
                    let mut answer = Vec::new();
                    let read =
                        tokio::time::timeout(REQUEST_LIMIT, stream.read_to_end(&mut answer)).await;
                    match read {
                        Ok(_) => "garbage answered and closed",
                        Err(_) => "requests stuck",
                    }
                }
                _ => {
                    let body = vec![b'{'; 8 * 1024 * 1024];
                    match self
                        .client
                        .post(self.url("/api/v1/build"))
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await
                    {
                        Ok(response) if response.status() == 413 => "oversized body refused (413)",
                        Ok(_) => "oversized body answered otherwise",
                        Err(error) if error.is_timeout() => "requests stuck",
                        Err(_) => "oversized body cut by the server",
                    }
                }
            };
            self.tally.add(outcome);
        }
    }
}

/// A fault the soak injects.
enum Fault {
    KillWorker,
    CutUpstream,
    HealUpstream,
    FillDisk,
}

/// The schedule: every 90 s the worker is killed (at 20 s), the upstream cuts every
/// ImageBuilder download after 4 KiB (40–55 s), and the data disk is full for 10 s (from 70 s).
/// The smoke run has each once within its first seconds.
fn fault_at(second: u64, smoke: bool) -> Option<Fault> {
    let at = if smoke { second } else { second % 90 };
    match (smoke, at) {
        (true, 2) | (false, 20) => Some(Fault::KillWorker),
        (true, 3) | (false, 40) => Some(Fault::CutUpstream),
        (true, 5) | (false, 55) => Some(Fault::HealUpstream),
        (true, 6) | (false, 70) => Some(Fault::FillDisk),
        _ => None,
    }
}

/// The first words of a failure's detail, so that failures group by cause.
fn cause(detail: &str) -> String {
    let words: Vec<&str> = detail.split_whitespace().take(6).collect();
    words.join(" ").replace('|', "/")
}

/// A server process, killed with `SIGKILL` when dropped (also when the soak fails).
/// A child process and the file its standard error goes to.
struct Process(Child, PathBuf);

impl Process {
    fn id(&self) -> u32 {
        self.0.id()
    }

    /// The last lines the process wrote to standard error (shown when it fails).
    fn log(&self) -> String {
        let log = std::fs::read_to_string(&self.1).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(config: &Path, command: &str, args: &[&str]) -> Process {
    let log = config.with_file_name(format!("{command}.log"));
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_attendant-server"))
        .arg(command)
        .arg("--config")
        .arg(config)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    Process(child, log)
}

/// Resident set size of a process, KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Open sockets of a process.
fn sockets(pid: u32) -> usize {
    let dir = PathBuf::from(format!("/proc/{pid}/fd"));
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|entry| {
                    std::fs::read_link(entry.path())
                        .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"))
                })
                .count()
        })
        .unwrap_or(0)
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos() as u64)
}
