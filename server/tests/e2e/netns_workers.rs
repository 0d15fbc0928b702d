//! Remote workers on hosts of their own, on one machine: the API node (`attendant-server serve`)
//! and each remote worker (`attendant-server worker --server URL --token-file F`) run in a
//! network namespace of their own, each with its own data directory and no shared files. They
//! meet only over HTTP through a private /24: a bridge in the API node's namespace, one veth
//! pair per worker. The fixture mirror (upstream) runs in the test process behind a point-to-point
//! link to the API node's namespace, which routes it to the workers given a route to it.
//!
//! ```text
//!   test process (root namespace)          API node namespace             worker namespaces
//!   mirror 10.250.S.1 ── veth /30 ── up0 10.250.S.2
//!                                          br0 10.251.S.1/24 ── veth ── eth0 10.251.S.11 (w1)
//!                                                           ── veth ── eth0 10.251.S.12 (w2) ...
//! ```
//!
//! What it shows: a build end to end (the client downloads the image the API node signed); a
//! worker killed with SIGKILL mid-build loses no job; a worker cut off from the API node
//! mid-build loses its lease, the other worker's result is the one published and the cut-off
//! worker's late hand-back is refused once it reaches the API node again; 1,000 queued jobs over
//! four workers are each built exactly once.
//!
//! Namespaces need root and iproute2 (`ip`). Where they cannot be made, each test prints
//! `SKIPPED: <reason>` straight to the test harness's stdout (visible without `--nocapture`)
//! and returns. Names carry the test process's id; a run that crashed leaves namespaces whose
//! process is gone, and the next run removes them first.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use attendant_e2e::mirror::MirrorInfo;
use attendant_e2e::mirror_server::{FaultAction, MirrorServer};
use attendant_proto::usign::{PublicKey, Signature};
use attendant_server::config::Config;
use attendant_server::state::now;
use attendant_server::store::JobState;
use futures_util::StreamExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::process::{Child, Command};

use crate::support::{config, mirror};

/// iproute2.
const IP: &str = "/usr/sbin/ip";
/// Namespace names start with this, then the test process's id.
const NAMESPACE_PREFIX: &str = "atnw-";
/// The root namespace's end of the link to the API node starts with this, then the process id.
const LINK_PREFIX: &str = "atn";
/// The API node's port inside its namespace (nothing else listens there).
const API_PORT: u16 = 8080;
/// The ImageBuilder download a worker is held in, mid-build.
const IMAGEBUILDER: &str = "/releases/24.10.5/targets/x86/64/openwrt-imagebuilder";
/// How long a wait for the topology's processes may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(120);

fn x86(packages: &[&str]) -> Value {
    json!({"version": "24.10.5", "target": "x86/64", "profile": "generic", "packages": packages})
}

#[tokio::test]
async fn netns_workers_build_survive_kill_and_partition() {
    let Some(topology) =
        Topology::create_or_skip(0, 4, "netns_workers_build_survive_kill_and_partition")
    else {
        return;
    };
    let mirror_info = mirror();
    let upstream =
        MirrorServer::start_on(&mirror_info.root, &format!("{}:0", topology.host_address()))
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let api = ApiNode::start(&topology, dir.path(), &mirror_info, &upstream, |_| {}).await;
    for index in 1..=3 {
        topology.route_to_upstream(index);
    }
    let workers = Workers::new(&topology, dir.path(), &api, &mirror_info, &upstream).await;

    // (a) A build end to end: worker 2 builds, the client downloads the image the API node
    // signed and checks its SHA-256 and signature.
    let mut second = workers.start(2, &[]);
    let (status, done) = api.build(&x86(&["tmux"])).await;
    assert_eq!(status, 200, "{done}\n{}", workers.logs());
    assert_eq!(done["worker"], "w2");
    api.check_signed_image(&done).await;
    kill(&mut second).await;

    // (b) kill -9 mid-build: worker 1 is held in its ImageBuilder download when it is killed;
    // worker 2, started then, finishes the job once worker 1's lease has run out.
    upstream.add_fault(
        IMAGEBUILDER,
        FaultAction::Delay(Duration::from_secs(60)),
        Some(1),
    );
    let mut first = workers.start(1, &[]);
    let hash = api.submit(&x86(&["htop"])).await;
    api.wait_for_stage(&hash, "container_setup", &workers).await;
    let mut second = workers.start(2, &[]);
    kill(&mut first).await;
    let (status, done) = api.wait(&hash, &workers).await;
    assert_eq!(status, 200, "{done}\n{}", workers.logs());
    assert_eq!(done["worker"], "w2");
    let job = api.job(&hash).await;
    assert_eq!((job.state, job.attempt), (JobState::Succeeded, 2));
    assert_eq!(job.worker.as_deref(), Some("w2"));
    assert_eq!(
        job.last_error.as_deref(),
        Some("the worker stopped renewing its lease")
    );
    api.check_signed_image(&done).await;
    kill(&mut second).await;

    // (c) A partition mid-build: worker 3 loses its route to the API node (it still reaches
    // the mirror) while its ImageBuilder download is held; it builds, cannot hand the result
    // back, and its lease runs out. Worker 2 builds the job; once worker 3 reaches the API node
    // again its late hand-back is refused and worker 2's result stands.
    upstream.add_fault(
        IMAGEBUILDER,
        FaultAction::Delay(Duration::from_secs(3)),
        Some(1),
    );
    let mut third = workers.start(3, &[]);
    let hash = api.submit(&x86(&["tmux", "htop"])).await;
    api.wait_for_stage(&hash, "container_setup", &workers).await;
    let partition = topology.partition(3);
    let mut second = workers.start(2, &[]);
    let (status, done) = api.wait(&hash, &workers).await;
    assert_eq!(status, 200, "{done}\n{}", workers.logs());
    assert_eq!(done["worker"], "w2");
    workers.wait_for_log(3, "cannot hand the result back").await;
    drop(partition);
    workers.wait_for_log(3, "job abandoned").await;
    let job = api.job(&hash).await;
    assert_eq!((job.state, job.attempt), (JobState::Succeeded, 2));
    assert_eq!(job.worker.as_deref(), Some("w2"));
    let (status, after) = api.wait(&hash, &workers).await;
    assert_eq!((status, &after), (200, &done), "worker 2's result stands");
    let store = api.config.store_path();
    assert!(
        !store.join(format!(".upload-{hash}-1")).exists(),
        "the refused attempt left nothing staged"
    );
    let published: Vec<_> = std::fs::read_dir(&store)
        .unwrap()
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().contains(&hash))
        .map(|entry| entry.file_name())
        .collect();
    assert_eq!(published.len(), 1, "one published result: {published:?}");
    let listed = api.workers_list().await;
    assert_eq!(builds_of(&listed, "w3"), 0, "{listed}");
    assert_eq!(builds_of(&listed, "w2"), 3, "{listed}");
    kill(&mut second).await;
    kill(&mut third).await;

    // ImageBuilders from the API node's verified cache: worker 4 has no route to the mirror
    // and builds all the same, still checking the archive against the upstream's signature.
    let unreachable = output(&[
        IP,
        "-n",
        topology.worker_namespace(4),
        "route",
        "get",
        &topology.host_address().to_string(),
    ]);
    assert!(
        unreachable.is_err(),
        "worker 4 reaches the mirror: {unreachable:?}"
    );
    let archive_requests = |upstream: &MirrorServer| -> u64 {
        upstream
            .request_counts()
            .iter()
            .filter(|(path, _)| path.starts_with(IMAGEBUILDER))
            .map(|(_, count)| count)
            .sum()
    };
    let before = archive_requests(&upstream);
    let mut fourth = workers.start(4, &["--imagebuilders-from", "server"]);
    let (status, done) = api.build(&x86(&[])).await;
    assert_eq!(status, 200, "{done}\n{}", workers.logs());
    assert_eq!(done["worker"], "w4");
    api.check_signed_image(&done).await;
    assert_eq!(
        archive_requests(&upstream),
        before + 1,
        "the API node downloaded the ImageBuilder once, for its own cache"
    );
    kill(&mut fourth).await;
}

#[tokio::test]
async fn netns_thousand_jobs_over_four_workers_each_built_once() {
    const JOBS: usize = 1000;
    let Some(topology) = Topology::create_or_skip(
        1,
        4,
        "netns_thousand_jobs_over_four_workers_each_built_once",
    ) else {
        return;
    };
    let mirror_info = mirror();
    let upstream =
        MirrorServer::start_on(&mirror_info.root, &format!("{}:0", topology.host_address()))
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let api = ApiNode::start(&topology, dir.path(), &mirror_info, &upstream, |config| {
        config.max_pending_jobs = JOBS as u64 + 10;
        config.job_lease = Duration::from_secs(10);
    })
    .await;
    let workers = Workers::new(&topology, dir.path(), &api, &mirror_info, &upstream).await;
    let mut running = Vec::new();
    for index in 1..=4 {
        topology.route_to_upstream(index);
        running.push(workers.start(index, &[]));
    }
    let started = Instant::now();
    // Distinct requests through a first-boot script each (the smallest change to a request).
    let mut hashes = Vec::with_capacity(JOBS);
    let mut pending = futures_util::stream::iter(0..JOBS)
        .map(|n| {
            let api = &api;
            async move {
                api.submit(
                    &json!({"version": "24.10.5", "target": "x86/64", "profile": "generic",
                    "packages": [], "defaults": format!("# job {n}\n")}),
                )
                .await
            }
        })
        .buffer_unordered(8);
    while let Some(hash) = pending.next().await {
        hashes.push(hash);
    }
    drop(pending);
    let queued = started.elapsed();
    api.wait_for_idle(&workers).await;
    let built = started.elapsed();
    writeln!(
        std::io::stdout().lock(),
        "netns: {JOBS} jobs queued in {queued:.1?}, built by 4 workers in {built:.1?}"
    )
    .unwrap();

    let mut by_worker = std::collections::BTreeMap::<String, u64>::new();
    let store = attendant_server::service::open_store(&api.config)
        .await
        .unwrap();
    for hash in &hashes {
        let job = store
            .job(&hash.parse().unwrap(), now())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (job.state, job.attempt),
            (JobState::Succeeded, 1),
            "{hash}: {job:?}"
        );
        *by_worker.entry(job.worker.unwrap_or_default()).or_default() += 1;
    }
    // Every hand-back in the workers' logs, per job: exactly one each.
    let mut handed_back = std::collections::BTreeMap::<String, u32>::new();
    for index in 1..=4 {
        for line in workers.log(index).lines() {
            if line.contains("job handed back")
                && let Some(at) = line.find("request_hash=")
                && let Some(hash) = line.get(at + 13..at + 13 + 64)
            {
                *handed_back.entry(hash.to_owned()).or_default() += 1;
            }
        }
    }
    assert_eq!(handed_back.len(), JOBS, "{by_worker:?}");
    assert!(
        handed_back.values().all(|&count| count == 1),
        "a job handed back twice"
    );
    let listed = api.workers_list().await;
    let total: u64 = (1..=4).map(|i| builds_of(&listed, &format!("w{i}"))).sum();
    assert_eq!(total, JOBS as u64, "{listed}");
    assert_eq!(by_worker.values().sum::<u64>(), JOBS as u64);
    assert!(
        by_worker.len() == 4,
        "every worker took part: {by_worker:?}"
    );
    for child in &mut running {
        kill(child).await;
    }
}

fn builds_of(listed: &Value, name: &str) -> u64 {
    listed["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|worker| worker["name"] == name)
        .map_or(0, |worker| worker["builds"].as_u64().unwrap())
}

async fn kill(child: &mut Child) {
    child.kill().await.unwrap();
}

/// The namespaces and links of one test; removed on drop, also when the test fails.
struct Topology {
    api: String,
    workers: Vec<String>,
    host_link: Option<String>,
    slot: u8,
}

impl Topology {
    /// Builds the topology for test `id` with `workers` worker namespaces, or prints
    /// `SKIPPED: <reason>` for `test` and returns `None` where namespaces cannot be made.
    fn create_or_skip(id: u32, workers: u8, test: &str) -> Option<Self> {
        match Self::create(id, workers) {
            Ok(topology) => Some(topology),
            Err(reason) => {
                // Straight to the process's stdout: the harness's capture would hide it.
                writeln!(std::io::stdout().lock(), "SKIPPED: {test}: {reason}").unwrap();
                None
            }
        }
    }

    fn create(id: u32, workers: u8) -> Result<Self, String> {
        if !Path::new(IP).exists() {
            return Err(format!(
                "network namespaces need iproute2 (`{IP}` is missing; scripts/install-test-deps.sh installs it)"
            ));
        }
        remove_leftovers();
        let pid = std::process::id();
        let slot = u8::try_from((pid.wrapping_mul(2).wrapping_add(id)) % 250).unwrap();
        let mut topology = Self {
            api: format!("{NAMESPACE_PREFIX}{pid}-{id}-api"),
            workers: Vec::new(),
            host_link: None,
            slot,
        };
        let api = topology.api.clone();
        ip(&["netns", "add", &api]).map_err(|error| format!("cannot make a namespace: {error}"))?;
        let host = format!("{LINK_PREFIX}{pid}x{id}");
        let host_address = format!("{}/30", topology.host_address());
        let api_uplink = format!("10.250.{slot}.2/30");
        let bridge = format!("{}/24", topology.api_address());
        ip(&["-n", &api, "link", "set", "lo", "up"])?;
        ip(&["-n", &api, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &api, "addr", "add", &bridge, "dev", "br0"])?;
        ip(&["-n", &api, "link", "set", "br0", "up"])?;
        ip(&[
            "link", "add", &host, "type", "veth", "peer", "name", "up0", "netns", &api,
        ])?;
        topology.host_link = Some(host.clone());
        ip(&["addr", "add", &host_address, "dev", &host])?;
        ip(&["link", "set", &host, "up"])?;
        ip(&["-n", &api, "addr", "add", &api_uplink, "dev", "up0"])?;
        ip(&["-n", &api, "link", "set", "up0", "up"])?;
        // The workers' answers from the mirror come back through the API node.
        ip(&[
            "route",
            "add",
            &format!("10.251.{slot}.0/24"),
            "via",
            &format!("10.250.{slot}.2"),
            "dev",
            &host,
        ])?;
        run(&[
            IP,
            "netns",
            "exec",
            &api,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ])?;
        for index in 1..=workers {
            let namespace = format!("{NAMESPACE_PREFIX}{pid}-{id}-w{index}");
            ip(&["netns", "add", &namespace])?;
            topology.workers.push(namespace.clone());
            let port = format!("w{index}");
            ip(&["-n", &namespace, "link", "set", "lo", "up"])?;
            ip(&[
                "-n", &api, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
                &namespace,
            ])?;
            ip(&["-n", &api, "link", "set", &port, "master", "br0"])?;
            ip(&["-n", &api, "link", "set", &port, "up"])?;
            let address = format!("{}/24", topology.worker_address(index));
            ip(&["-n", &namespace, "addr", "add", &address, "dev", "eth0"])?;
            ip(&["-n", &namespace, "link", "set", "eth0", "up"])?;
        }
        Ok(topology)
    }

    /// The test process's address on the link to the API node: the mirror listens there.
    fn host_address(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 250, self.slot, 1)
    }

    /// The API node's address on the workers' /24.
    fn api_address(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 251, self.slot, 1)
    }

    fn worker_address(&self, index: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 251, self.slot, 10 + index)
    }

    fn worker_namespace(&self, index: u8) -> &str {
        &self.workers[usize::from(index) - 1]
    }

    /// Gives worker `index` a route to the mirror, through the API node.
    fn route_to_upstream(&self, index: u8) {
        let namespace = self.worker_namespace(index);
        ip(&[
            "-n",
            namespace,
            "route",
            "add",
            &format!("10.250.{}.0/30", self.slot),
            "via",
            &self.api_address().to_string(),
        ])
        .unwrap();
    }

    /// Cuts worker `index` off from the API node (its packets there are dropped) until the
    /// returned guard is dropped; its route to the mirror stays.
    fn partition(&self, index: u8) -> Partition {
        let namespace = self.worker_namespace(index).to_owned();
        let target = format!("{}/32", self.api_address());
        ip(&["-n", &namespace, "route", "add", "blackhole", &target]).unwrap();
        Partition { namespace, target }
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        if let Some(link) = &self.host_link {
            let _ = ip(&["link", "del", link]);
        }
        for namespace in self.workers.iter().chain([&self.api]) {
            let _ = ip(&["netns", "del", namespace]);
        }
    }
}

/// A worker cut off from the API node; heals on drop.
struct Partition {
    namespace: String,
    target: String,
}

impl Drop for Partition {
    fn drop(&mut self) {
        let _ = ip(&[
            "-n",
            &self.namespace,
            "route",
            "del",
            "blackhole",
            &self.target,
        ]);
    }
}

/// Removes namespaces and links of earlier runs whose process is gone.
fn remove_leftovers() {
    let dead = |pid: &str| !pid.is_empty() && !Path::new("/proc").join(pid).exists();
    if let Ok(listed) = output(&[IP, "netns", "list"]) {
        for line in listed.lines() {
            let name = line.split_whitespace().next().unwrap_or_default();
            if let Some(rest) = name.strip_prefix(NAMESPACE_PREFIX)
                && dead(rest.split('-').next().unwrap_or_default())
            {
                let _ = ip(&["netns", "del", name]);
            }
        }
    }
    if let Ok(listed) = output(&[IP, "-o", "link", "show"]) {
        for line in listed.lines() {
            let name = line
                .split(':')
                .nth(1)
                .unwrap_or_default()
                .trim()
                .split('@')
                .next()
                .unwrap_or_default();
            if let Some(rest) = name.strip_prefix(LINK_PREFIX)
                && let Some((pid, _)) = rest.split_once('x')
                && pid.bytes().all(|b| b.is_ascii_digit())
                && dead(pid)
            {
                let _ = ip(&["link", "del", name]);
            }
        }
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    let mut argv = vec![IP];
    argv.extend_from_slice(args);
    run(&argv)
}

fn run(argv: &[&str]) -> Result<(), String> {
    output(argv).map(drop)
}

fn output(argv: &[&str]) -> Result<String, String> {
    let (program, args) = argv.split_first().unwrap();
    let output = std::process::Command::new(program)
        .args(args)
        .output()
        .map_err(|error| format!("`{}`: {error}", argv.join(" ")))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "`{}` failed: {}",
            argv.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Starts `argv` inside `namespace`, killed with the test (`setpriv --pdeathsig`); stderr to
/// `log`.
fn spawn_in(namespace: &str, argv: &[&std::ffi::OsStr], log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(IP)
        .args([
            "netns",
            "exec",
            namespace,
            "setpriv",
            "--pdeathsig=KILL",
            "--",
        ])
        .args(argv)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// The API node: `attendant-server serve` with no workers of its own, in its namespace.
struct ApiNode {
    base: String,
    client: reqwest::Client,
    config: Config,
    config_file: PathBuf,
    log: PathBuf,
    _process: Child,
}

impl ApiNode {
    async fn start(
        topology: &Topology,
        dir: &Path,
        mirror: &MirrorInfo,
        upstream: &MirrorServer,
        configure: impl FnOnce(&mut Config),
    ) -> Self {
        let home = dir.join("api");
        let mut config = own_config(&home, mirror, upstream);
        config.listen = format!("0.0.0.0:{API_PORT}").parse().unwrap();
        config.workers = 0;
        config.allow_defaults = true;
        config.retry_backoff = Duration::from_millis(100);
        let key = config.data_dir.join("key-build");
        attendant_server::signing::generate_key_pair(&key, None).unwrap();
        config.signing_key = Some(key);
        configure(&mut config);
        let config_file = home.join("attendant.toml");
        std::fs::write(&config_file, toml::to_string(&config).unwrap()).unwrap();
        let log = home.join("serve.log");
        let process = spawn_in(
            &topology.api,
            &[
                env!("CARGO_BIN_EXE_attendant-server").as_ref(),
                "--config".as_ref(),
                config_file.as_os_str(),
                "serve".as_ref(),
            ],
            &log,
        );
        let node = Self {
            base: format!("http://{}:{API_PORT}", topology.api_address()),
            client: reqwest::Client::builder().no_proxy().build().unwrap(),
            config,
            config_file,
            log,
            _process: process,
        };
        let started = Instant::now();
        while node
            .client
            .get(node.url("/api/v1/overview"))
            .send()
            .await
            .is_err()
        {
            assert!(
                started.elapsed() < PATIENCE,
                "the API node did not answer:\n{}",
                std::fs::read_to_string(&node.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        node
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Runs an `attendant-server` command against the API node's configuration (as an operator
    /// on that host would).
    async fn cli(&self, args: &[&str]) -> String {
        let output = Command::new(env!("CARGO_BIN_EXE_attendant-server"))
            .arg("--config")
            .arg(&self.config_file)
            .args(args)
            .output()
            .await
            .unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    async fn workers_list(&self) -> Value {
        serde_json::from_str(&self.cli(&["workers", "list", "--json"]).await).unwrap()
    }

    async fn get(&self, path: &str) -> (u16, reqwest::header::HeaderMap, Value) {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.unwrap();
        (
            status,
            headers,
            serde_json::from_slice(&body).unwrap_or(Value::Null),
        )
    }

    /// POSTs a build request; the request hash of the queued job.
    async fn submit(&self, request: &Value) -> String {
        let response = self
            .client
            .post(self.url("/api/v1/build"))
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

    async fn build(&self, request: &Value) -> (u16, Value) {
        let hash = self.submit(request).await;
        let started = Instant::now();
        loop {
            let (status, _, body) = self.get(&format!("/api/v1/build/{hash}")).await;
            if status != 202 {
                return (status, body);
            }
            assert!(started.elapsed() < PATIENCE, "not built: {body}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn wait(&self, hash: &str, workers: &Workers<'_>) -> (u16, Value) {
        let started = Instant::now();
        loop {
            let (status, _, body) = self.get(&format!("/api/v1/build/{hash}")).await;
            if status != 202 {
                return (status, body);
            }
            assert!(
                started.elapsed() < PATIENCE,
                "not built: {body}\n{}",
                workers.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn wait_for_stage(&self, hash: &str, stage: &str, workers: &Workers<'_>) {
        let started = Instant::now();
        loop {
            let (_, headers, _) = self.get(&format!("/api/v1/build/{hash}")).await;
            if headers
                .get("x-imagebuilder-status")
                .is_some_and(|value| value == stage)
            {
                return;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "no `{stage}` stage\n{}",
                workers.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until `/metrics` shows no queued and no running job.
    async fn wait_for_idle(&self, workers: &Workers<'_>) {
        let started = Instant::now();
        loop {
            let metrics = self
                .client
                .get(self.url("/metrics"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let gauge = |name: &str| {
                metrics
                    .lines()
                    .find_map(|line| line.strip_prefix(name)?.trim().parse::<f64>().ok())
            };
            if gauge("attendant_queue_length ") == Some(0.0)
                && gauge("attendant_jobs_running ") == Some(0.0)
            {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(600),
                "jobs left: {:?} queued, {:?} running\n{}",
                gauge("attendant_queue_length "),
                gauge("attendant_jobs_running "),
                workers.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The job's record, read from the API node's database.
    async fn job(&self, hash: &str) -> attendant_server::store::Job {
        let store = attendant_server::service::open_store(&self.config)
            .await
            .unwrap();
        store
            .job(&hash.parse().unwrap(), now())
            .await
            .unwrap()
            .unwrap()
    }

    /// Downloads the result's first image and its signature; checks both against the answer
    /// and the API node's public key.
    async fn check_signed_image(&self, done: &Value) {
        let download = |path: String| async move {
            let response = self.client.get(self.url(&path)).send().await.unwrap();
            assert_eq!(response.status(), 200, "{path}");
            response.bytes().await.unwrap().to_vec()
        };
        let fingerprint = done["signing_key"].as_str().unwrap();
        let key = download(format!("/keys/{fingerprint}")).await;
        let public = PublicKey::parse(&key).unwrap();
        let hash = done["request_hash"].as_str().unwrap();
        let image = &done["images"][0];
        let name = image["name"].as_str().unwrap();
        let bytes = download(format!("/store/{hash}/{name}")).await;
        assert_eq!(hex::encode(Sha256::digest(&bytes)), image["sha256"]);
        let signature = download(format!("/store/{hash}/{name}.sig")).await;
        public
            .verify(&bytes, &Signature::parse(&signature).unwrap())
            .unwrap();
    }
}

/// A configuration in `home` of its own: the mirror over HTTP, its key copied in.
fn own_config(home: &Path, mirror: &MirrorInfo, upstream: &MirrorServer) -> Config {
    std::fs::create_dir_all(home.join("data")).unwrap();
    let mut config = config(home, mirror);
    config.upstream_url = upstream.url();
    let key = home.join("upstream.pub");
    std::fs::copy(&mirror.public_key, &key).unwrap();
    config.trusted_keys = vec![key];
    config
}

/// The remote workers: `w<index>` in the topology's worker namespace `index`, with its own
/// data directory, configuration and token file under `<dir>/w<index>/`.
struct Workers<'a> {
    topology: &'a Topology,
    dir: PathBuf,
    base: String,
}

impl<'a> Workers<'a> {
    /// Registers a worker identity per worker namespace on the API node.
    async fn new(
        topology: &'a Topology,
        dir: &Path,
        api: &ApiNode,
        mirror: &MirrorInfo,
        upstream: &MirrorServer,
    ) -> Self {
        for index in 1..=u8::try_from(topology.workers.len()).unwrap() {
            let name = format!("w{index}");
            let home = dir.join(&name);
            let token = api.cli(&["workers", "add", &name]).await;
            let config = own_config(&home, mirror, upstream);
            std::fs::write(home.join("worker.token"), token.trim()).unwrap();
            std::fs::write(home.join("worker.toml"), toml::to_string(&config).unwrap()).unwrap();
        }
        Self {
            topology,
            dir: dir.to_owned(),
            base: format!("http://{}:{API_PORT}", topology.api_address()),
        }
    }

    /// Starts worker `index` with `extra` arguments.
    fn start(&self, index: u8, extra: &[&str]) -> Child {
        let home = self.dir.join(format!("w{index}"));
        let config = home.join("worker.toml");
        let token = home.join("worker.token");
        let mut argv: Vec<&std::ffi::OsStr> = vec![
            env!("CARGO_BIN_EXE_attendant-server").as_ref(),
            "--config".as_ref(),
            config.as_os_str(),
            "worker".as_ref(),
            "--workers".as_ref(),
            "1".as_ref(),
            "--server".as_ref(),
            self.base.as_ref(),
            "--token-file".as_ref(),
            token.as_os_str(),
        ];
        argv.extend(extra.iter().map(|arg| std::ffi::OsStr::new(*arg)));
        spawn_in(
            self.topology.worker_namespace(index),
            &argv,
            &home.join("worker.log"),
        )
    }

    fn log(&self, index: u8) -> String {
        std::fs::read_to_string(self.dir.join(format!("w{index}/worker.log"))).unwrap_or_default()
    }

    async fn wait_for_log(&self, index: u8, text: &str) {
        let started = Instant::now();
        while !self.log(index).contains(text) {
            assert!(
                started.elapsed() < PATIENCE,
                "worker {index} never logged `{text}`\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every process's log, for failure messages.
    fn logs(&self) -> String {
        let mut out = String::new();
        let api = self.dir.join("api/serve.log");
        out.push_str(&format!(
            "--- API node\n{}\n",
            tail(&std::fs::read_to_string(api).unwrap_or_default())
        ));
        for index in 1..=u8::try_from(self.topology.workers.len()).unwrap() {
            out.push_str(&format!("--- w{index}\n{}\n", tail(&self.log(index))));
        }
        out
    }
}

/// The last 40 lines of a log.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
