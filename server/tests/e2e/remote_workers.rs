//! Remote workers (`attendant-server worker --server URL --token-file F`) against one main
//! server with no workers of its own: each worker has its own data directory and talks only HTTP
//! to the main server, which checks, signs and publishes what they upload. One main server for
//! the whole story, so the test stays lean: a worker killed with SIGKILL mid-build loses no job
//! (its lease runs out and a second worker builds it; the client downloads the signed image); an
//! upload from an attempt that lost its lease is refused and the result that replaced it stands;
//! a garbage upload is refused and the job built again; a revoked token gets 401.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use attendant_e2e::mirror_server::MirrorServer;
use attendant_proto::usign::{PublicKey, Signature};
use attendant_server::state::now;
use attendant_server::store::JobState;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::process::{Child, Command};

use crate::support::{Server, config};

/// The ImageBuilder download the first worker is stuck in when it is killed.
const IMAGEBUILDER: &str = "/releases/24.10.5/targets/x86/64/openwrt-imagebuilder";

fn x86(packages: &[&str]) -> Value {
    json!({"version": "24.10.5", "target": "x86/64", "profile": "generic", "packages": packages})
}

#[tokio::test]
async fn remote_workers_build_over_http_and_lose_no_job() {
    let server = Server::start(|config| {
        config.workers = 0;
        config.retry_backoff = Duration::from_millis(100);
        let key = config.data_dir.join("key-build");
        std::fs::create_dir_all(&config.data_dir).unwrap();
        attendant_server::signing::generate_key_pair(&key, None).unwrap();
        config.signing_key = Some(key);
    })
    .await;
    let dir = server.dir.path();
    let main_config = dir.join("main.toml");
    std::fs::write(&main_config, toml::to_string(&server.config).unwrap()).unwrap();
    let cli = Cli {
        config: main_config,
        dir: dir.to_owned(),
    };
    let mut tokens = Vec::new();
    for name in ["w1", "w2", "w3"] {
        let token = cli.run(&["workers", "add", name]).await;
        assert_eq!(token.trim().len(), 64, "{token}");
        let file = dir.join(format!("{name}.token"));
        std::fs::write(&file, &token).unwrap();
        tokens.push(token.trim().to_owned());
    }

    // Worker 1 is stuck downloading the ImageBuilder when it is killed with SIGKILL; worker 2,
    // with a data directory of its own, builds the job once the lease ran out.
    let upstream = MirrorServer::start(&server.mirror.root).unwrap();
    upstream.delay(IMAGEBUILDER, Duration::from_secs(30));
    let mut first = cli.worker("w1", &server, &upstream);
    let (status, _, queued) = server.post(&x86(&["tmux"])).await;
    assert_eq!(status, 202, "{queued}");
    let hash = queued["request_hash"].as_str().unwrap().to_owned();
    cli.wait_for("worker 1 to start the build", || async {
        let (_, headers, _) = server.get(&format!("/api/v1/build/{hash}")).await;
        headers.get("x-imagebuilder-status") == Some(&"container_setup".parse().unwrap())
    })
    .await;
    first.kill().await.unwrap();
    upstream.clear_faults();
    let mut second = cli.worker("w2", &server, &upstream);
    let (status, done) = server.wait(&hash).await;
    assert_eq!(status, 200, "{done}\n{}", cli.logs());
    assert_eq!(done["worker"], "w2");
    let store = &server.running.service.state.store;
    let job = store
        .job(&hash.parse().unwrap(), now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((job.state, job.attempt), (JobState::Succeeded, 2));
    assert_eq!(job.worker.as_deref(), Some("w2"));
    assert_eq!(
        job.last_error.as_deref(),
        Some("the worker stopped renewing its lease")
    );
    // The client downloads the image the main server signed: the worker holds no key.
    let fingerprint = done["signing_key"].as_str().unwrap();
    let key = server
        .client
        .get(server.url(&format!("/keys/{fingerprint}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let public = PublicKey::parse(key.as_bytes()).unwrap();
    let image = &done["images"][0];
    let name = image["name"].as_str().unwrap();
    let bytes = download(&server, &format!("/store/{hash}/{name}")).await;
    assert_eq!(hex::encode(Sha256::digest(&bytes)), image["sha256"]);
    let signature = download(&server, &format!("/store/{hash}/{name}.sig")).await;
    public
        .verify(&bytes, &Signature::parse(&signature).unwrap())
        .unwrap();
    second.kill().await.unwrap();

    // A stale attempt: claimed by hand with w1's token, never heartbeated; its lease runs out,
    // worker 2 builds the job, and the stale attempt's upload is refused, changing nothing.
    let (status, _, queued) = server.post(&x86(&["htop"])).await;
    assert_eq!(status, 202, "{queued}");
    let stale_hash = queued["request_hash"].as_str().unwrap().to_owned();
    let stale = claim(&server, &tokens[0], 10).await;
    assert_eq!(stale["request_hash"], stale_hash.as_str());
    assert_eq!(stale["attempt"], 1);
    assert_eq!(stale["imagebuilder"]["target"], "x86/64");
    let _second = cli.worker("w2", &server, &upstream);
    let (status, rebuilt) = server.wait(&stale_hash).await;
    assert_eq!(status, 200, "{rebuilt}\n{}", cli.logs());
    let declaration = json!({"status": "success", "result": rebuilt,
        "files": [{"name": "x.bin", "size": 4, "sha256": hex::encode(Sha256::digest(b"evil"))}]});
    let base = format!("/api/v1/worker/jobs/{stale_hash}/1");
    let (status, body) = send(
        &server,
        "POST",
        &format!("{base}/result"),
        &tokens[0],
        declaration.to_string(),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    let (status, _) = send(
        &server,
        "PUT",
        &format!("{base}/files/x.bin"),
        &tokens[0],
        "evil".into(),
    )
    .await;
    assert_eq!(status, 409);
    let (status, _) = send(
        &server,
        "POST",
        &format!("{base}/complete"),
        &tokens[0],
        String::new(),
    )
    .await;
    assert_eq!(status, 409);
    let (status, _) = send(
        &server,
        "POST",
        &format!("{base}/heartbeat"),
        &tokens[0],
        String::new(),
    )
    .await;
    assert_eq!(status, 409, "a lost lease is not renewed");
    let (_, after) = server.wait(&stale_hash).await;
    assert_eq!(after, rebuilt, "the other attempt's result stands");
    drop(_second);

    // Garbage: an upload whose bytes do not match the declaration is refused, the half-finished
    // upload is never served, and the job is queued again and built by a real worker.
    let (status, _, queued) = server.post(&x86(&["tmux", "htop"])).await;
    assert_eq!(status, 202, "{queued}");
    let garbage_hash = queued["request_hash"].as_str().unwrap().to_owned();
    let garbage = claim(&server, &tokens[0], 10).await;
    assert_eq!(garbage["request_hash"], garbage_hash.as_str());
    let base = format!("/api/v1/worker/jobs/{garbage_hash}/{}", garbage["attempt"]);
    let declaration = json!({"status": "success", "result": rebuilt,
        "files": [{"name": "x.bin", "size": 4, "sha256": hex::encode(Sha256::digest(b"good"))}]});
    let (status, held) = send(
        &server,
        "POST",
        &format!("{base}/result"),
        &tokens[0],
        declaration.to_string(),
    )
    .await;
    assert_eq!(status, 200, "{held}");
    assert_eq!(held["files"][0]["received"], 0);
    let (status, body) = send(
        &server,
        "PUT",
        &format!("{base}/files/x.bin"),
        &tokens[0],
        "evil!".into(),
    )
    .await;
    assert_eq!(status, 413, "past the declared size: {body}");
    let (status, body) = send(
        &server,
        "PUT",
        &format!("{base}/files/x.bin"),
        &tokens[0],
        "ev".into(),
    )
    .await;
    assert_eq!((status, &body["received"]), (200, &json!(2)), "{body}");
    let (status, body) = send(
        &server,
        "POST",
        &format!("{base}/complete"),
        &tokens[0],
        String::new(),
    )
    .await;
    assert_eq!(status, 409, "a short file is not complete: {body}");
    let (status, held) = send(
        &server,
        "POST",
        &format!("{base}/result"),
        &tokens[0],
        declaration.to_string(),
    )
    .await;
    assert_eq!(
        (status, &held["files"][0]["received"]),
        (200, &json!(2)),
        "resumed: {held}"
    );
    let mut part = send_request(
        &server,
        "PUT",
        &format!("{base}/files/x.bin"),
        &tokens[0],
        "il".into(),
    );
    part = part.header("content-range", "bytes 2-3/4");
    let response = part.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let (status, _, _) = server
        .get(&format!("/store/.upload-{garbage_hash}-1/files/x.bin"))
        .await;
    assert_eq!(status, 404, "a staged upload is never served");
    let (status, body) = send(
        &server,
        "POST",
        &format!("{base}/complete"),
        &tokens[0],
        String::new(),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("SHA-256"),
        "{body}"
    );
    let job = store
        .job(&garbage_hash.parse().unwrap(), now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.state, JobState::Queued, "not done, queued again");
    assert!(
        job.last_error.as_deref().unwrap().contains("did not match"),
        "{job:?}"
    );
    assert!(
        !server
            .config
            .store_path()
            .join(format!(".upload-{garbage_hash}-1"))
            .exists()
    );
    let _third = cli.worker("w2", &server, &upstream);
    let (status, retried) = server.wait(&garbage_hash).await;
    assert_eq!(status, 200, "{retried}\n{}", cli.logs());
    assert_eq!(retried["worker"], "w2");

    // Revocation: w3's token works until `workers revoke`, then gets 401.
    let (status, _) = send(
        &server,
        "POST",
        "/api/v1/worker/claim?wait=0",
        &tokens[2],
        String::new(),
    )
    .await;
    assert_eq!(status, 204);
    cli.run(&["workers", "revoke", "w3"]).await;
    let (status, body) = send(
        &server,
        "POST",
        "/api/v1/worker/claim?wait=0",
        &tokens[2],
        String::new(),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    let (status, _) = send(
        &server,
        "POST",
        "/api/v1/worker/claim?wait=61",
        &tokens[0],
        String::new(),
    )
    .await;
    assert_eq!(status, 400, "the long poll is capped");
    for wait in ["abc", "-1", "999", "1.5"] {
        let (status, body) = send(
            &server,
            "POST",
            &format!("/api/v1/worker/claim?wait={wait}"),
            &tokens[0],
            String::new(),
        )
        .await;
        assert_eq!(status, 400, "wait={wait}: {body}");
        assert_eq!(body["status"], 400, "the API's JSON refusal: {body}");
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains("`wait`"), "{detail}");
    }

    let listed: Value =
        serde_json::from_str(&cli.run(&["workers", "list", "--json"]).await).unwrap();
    let workers = listed["workers"].as_array().unwrap();
    let w2 = workers.iter().find(|w| w["name"] == "w2").unwrap();
    assert_eq!(w2["builds"], 3, "{listed}");
    assert!(w2["last_heartbeat"].is_string());
    let w3 = workers.iter().find(|w| w["name"] == "w3").unwrap();
    assert!(w3["revoked_at"].is_string(), "{listed}");
    let metrics = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("attendant_worker_builds_total{worker=\"w2\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("attendant_worker_last_heartbeat_seconds{worker=\"w2\"}"),
        "{metrics}"
    );

    // A second API node on the same database, which no worker ever talked to, reports the
    // same last heartbeats: they come from the database, not from the process.
    let port = crate::fixture::free_port();
    let _other = Command::new("setpriv")
        .args([
            "--pdeathsig=KILL",
            "--",
            env!("CARGO_BIN_EXE_attendant-server"),
        ])
        .arg("--config")
        .arg(&cli.config)
        .args(["serve", "--workers", "0", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let started = Instant::now();
    let other = loop {
        if let Ok(response) = server
            .client
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .await
        {
            break response.text().await.unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the second API node did not answer"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let heartbeat = |text: &str, worker: &str| {
        let prefix = format!("attendant_worker_last_heartbeat_seconds{{worker=\"{worker}\"}} ");
        text.lines()
            .find_map(|line| line.strip_prefix(&prefix)?.parse::<f64>().ok())
    };
    assert!(heartbeat(&other, "w2").is_some(), "{other}");
    assert_eq!(
        heartbeat(&other, "w3"),
        heartbeat(&metrics, "w3"),
        "{other}"
    );
}

async fn claim(server: &Server, token: &str, wait: u64) -> Value {
    let (status, body) = send(
        server,
        "POST",
        &format!("/api/v1/worker/claim?wait={wait}"),
        token,
        String::new(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

fn send_request(
    server: &Server,
    method: &str,
    path: &str,
    token: &str,
    body: String,
) -> reqwest::RequestBuilder {
    server
        .client
        .request(method.parse().unwrap(), server.url(path))
        .bearer_auth(token)
        .body(body)
}

async fn send(
    server: &Server,
    method: &str,
    path: &str,
    token: &str,
    body: String,
) -> (u16, Value) {
    let response = send_request(server, method, path, token, body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn download(server: &Server, path: &str) -> Vec<u8> {
    let response = server.client.get(server.url(path)).send().await.unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.bytes().await.unwrap().to_vec()
}

/// The test's processes: CLI commands against the main server's configuration, and remote
/// workers each with a data directory of their own; their stderr in `<dir>/<name>.log`.
struct Cli {
    config: PathBuf,
    dir: PathBuf,
}

impl Cli {
    async fn run(&self, args: &[&str]) -> String {
        let output = Command::new(env!("CARGO_BIN_EXE_attendant-server"))
            .arg("--config")
            .arg(&self.config)
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

    /// Starts remote worker `name` with its own data directory and configuration (upstream:
    /// `upstream`), its token from `<dir>/<name>.token`.
    fn worker(&self, name: &str, server: &Server, upstream: &MirrorServer) -> Child {
        let home = self.dir.join(format!("worker-{name}"));
        let mut config = config(&home, &server.mirror);
        config.upstream_url = upstream.url();
        let file = self.dir.join(format!("worker-{name}.toml"));
        std::fs::create_dir_all(&home).unwrap();
        std::fs::write(&file, toml::to_string(&config).unwrap()).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("worker-{name}.log")))
            .unwrap();
        // Through `setpriv --pdeathsig` so that a killed test run leaves no worker behind.
        Command::new("setpriv")
            .args([
                "--pdeathsig=KILL",
                "--",
                env!("CARGO_BIN_EXE_attendant-server"),
            ])
            .arg("--config")
            .arg(&file)
            .args([
                "worker",
                "--workers",
                "1",
                "--server",
                &server.base,
                "--token-file",
            ])
            .arg(self.dir.join(format!("{name}.token")))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for entry in std::fs::read_dir(&self.dir).unwrap().flatten() {
            let path: &Path = &entry.path();
            if path.extension().is_some_and(|ext| ext == "log") {
                out.push_str(&format!(
                    "--- {}\n{}\n",
                    path.display(),
                    std::fs::read_to_string(path).unwrap_or_default()
                ));
            }
        }
        out
    }

    async fn wait_for<F, Fut>(&self, what: &str, mut ready: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let started = Instant::now();
        while !ready().await {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "gave up waiting for {what}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
