//! `attendant-server serve` and `attendant-server worker` as separate processes sharing one
//! database and one `store_dir`, the way an operator scales out: a build submitted over HTTP to
//! `serve --workers 0` is built by the worker process; when that worker is killed mid-build its
//! lease runs out and another worker process finishes the job. Run against PostgreSQL (workers
//! on other hosts) and against the SQLite file (worker processes on the same host).

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use attendant_e2e::mirror_server::MirrorServer;
use attendant_server::config::{Config, DatabaseUrl};
use attendant_server::service::open_store;
use attendant_server::state::now;
use attendant_server::store::JobState;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::process::{Child, Command};

use crate::fixture::free_port;
use crate::postgres::TestDatabase;
use crate::support::{config, mirror};

/// The ImageBuilder download the first worker is stuck in when it is killed.
const IMAGEBUILDER: &str = "/releases/24.10.5/targets/x86/64/openwrt-imagebuilder";

#[tokio::test]
async fn postgres_worker_process_builds_and_a_killed_one_is_replaced() {
    let database = TestDatabase::start().await;
    let url = DatabaseUrl::try_from(database.url().to_owned()).unwrap();
    worker_process_builds_and_a_killed_one_is_replaced(|config| config.database_url = Some(url))
        .await;
}

#[tokio::test]
async fn sqlite_worker_process_builds_and_a_killed_one_is_replaced() {
    worker_process_builds_and_a_killed_one_is_replaced(|_| {}).await;
}

async fn worker_process_builds_and_a_killed_one_is_replaced(configure: impl FnOnce(&mut Config)) {
    let mirror = mirror();
    let upstream = MirrorServer::start(&mirror.root).unwrap();
    upstream.delay(IMAGEBUILDER, Duration::from_secs(30));
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), &mirror);
    config.upstream_url = upstream.url();
    config.listen = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    configure(&mut config);
    let config_file = dir.path().join("attendant.toml");
    std::fs::write(&config_file, toml::to_string(&config).unwrap()).unwrap();
    let processes = Processes {
        dir: dir.path(),
        config_file: &config_file,
    };
    let base = format!("http://{}", config.listen);
    let client = reqwest::Client::new();

    let _serve = processes.spawn("serve", &["serve", "--workers", "0"]);
    processes
        .wait_for("the API to answer", || async {
            client
                .get(format!("{base}/api/v1/stats"))
                .send()
                .await
                .is_ok_and(|response| response.status() == 200)
        })
        .await;
    let mut first = processes.spawn("worker-1", &["worker", "--workers", "1"]);

    let request = json!({"version": "24.10.5", "target": "x86/64", "profile": "generic",
                         "packages": ["tmux"]});
    let response = client
        .post(format!("{base}/api/v1/build"))
        .header("content-type", "application/json")
        .body(request.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202, "{}", processes.logs());
    let queued: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    let hash = queued["request_hash"].as_str().unwrap().to_owned();
    let status_url = format!("{base}/api/v1/build/{hash}");
    processes
        .wait_for("worker 1 to start the build", || async {
            client.get(&status_url).send().await.is_ok_and(|response| {
                response.headers().get("x-imagebuilder-status")
                    == Some(&"container_setup".parse().unwrap())
            })
        })
        .await;

    first.kill().await.unwrap();
    upstream.clear_faults();
    let store = open_store(&config).await.unwrap();
    let job = store
        .job(&hash.parse().unwrap(), now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (job.state, job.attempt),
        (JobState::Running, 1),
        "the killed worker still holds the job until its lease runs out"
    );

    let _second = processes.spawn("worker-2", &["worker", "--workers", "1"]);
    let started = Instant::now();
    // Polled as owut and LuCI poll, by posting the same body again: `serve` answers it from its
    // request memo (made by the first `POST`), and must still see the job another process
    // finishes.
    let post = || {
        client
            .post(format!("{base}/api/v1/build"))
            .header("content-type", "application/json")
            .body(request.to_string())
            .send()
    };
    let done: Value = loop {
        let response = post().await.unwrap();
        if response.status() != 202 {
            break serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "worker 2 did not finish the build\n{}",
            processes.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(done["status"], 200, "{done:#}\n{}", processes.logs());
    assert_eq!(done["request_hash"], hash.as_str());
    let polled: Value = serde_json::from_slice(
        &client
            .get(&status_url)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        polled, done,
        "the status poll and the re-posted request agree"
    );
    let job = store
        .job(&hash.parse().unwrap(), now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((job.state, job.attempt), (JobState::Succeeded, 2));
    assert_eq!(
        job.last_error.as_deref(),
        Some("the worker stopped renewing its lease")
    );

    // The worker wrote the images into the shared store; `serve` serves them.
    let image = &done["images"][0];
    let url = format!(
        "{base}/store/{}/{}",
        done["bin_dir"].as_str().unwrap(),
        image["name"].as_str().unwrap()
    );
    let bytes = client
        .get(&url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(
        hex::encode(Sha256::digest(&bytes)),
        image["sha256"],
        "{url}"
    );
    assert_eq!(
        config.database_path().exists(),
        config.database_url.is_none(),
        "the SQLite file is used exactly when no `database_url` is set"
    );
}

/// The server's processes of one test, their stderr in `<dir>/<name>.log`.
struct Processes<'a> {
    dir: &'a Path,
    config_file: &'a Path,
}

impl Processes<'_> {
    fn spawn(&self, name: &str, args: &[&str]) -> Child {
        let log = std::fs::File::create(self.dir.join(format!("{name}.log"))).unwrap();
        // Through `setpriv --pdeathsig` so that a killed test run leaves no server behind.
        Command::new("setpriv")
            .args([
                "--pdeathsig=KILL",
                "--",
                env!("CARGO_BIN_EXE_attendant-server"),
            ])
            .arg("--config")
            .arg(self.config_file)
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    }

    /// Polls `ready` until it holds, failing with every process's log after 90 s.
    async fn wait_for<F, Fut>(&self, what: &str, mut ready: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let started = Instant::now();
        while !ready().await {
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "gave up waiting for {what}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn logs(&self) -> String {
        ["serve", "worker-1", "worker-2"]
            .iter()
            .map(|name| {
                let text = std::fs::read_to_string(self.dir.join(format!("{name}.log")))
                    .unwrap_or_default();
                format!("--- {name}.log\n{text}")
            })
            .collect()
    }
}
