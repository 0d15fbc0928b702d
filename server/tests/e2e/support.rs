//! Harness for the end-to-end tests: a real server on `127.0.0.1:0` against the fixture mirror
//! of `attendant-e2e`, with a fresh data directory per test.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use attendant_e2e::mirror::MirrorInfo;
use attendant_server::config::Config;
use attendant_server::service::{Running, spawn};
use serde_json::Value;

pub(crate) use crate::fixture::mirror;

/// A running test server.
pub(crate) struct Server {
    pub(crate) base: String,
    pub(crate) running: Running,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) client: reqwest::Client,
    pub(crate) mirror: MirrorInfo,
    pub(crate) config: Config,
}

/// A configuration for a fresh data directory in `dir`, upstream = the fixture mirror.
pub(crate) fn config(dir: &Path, mirror: &MirrorInfo) -> Config {
    let mut config = Config::default();
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.data_dir = dir.join("data");
    config.upstream_url = mirror.root.display().to_string();
    config.trusted_keys = vec![mirror.public_key.clone()];
    config.workers = 1;
    config.job_lease = Duration::from_secs(2);
    config.job_timeout = Duration::from_secs(120);
    config.shutdown_timeout = Duration::from_secs(5);
    config
}

impl Server {
    /// Starts a server; `configure` adjusts the configuration first.
    pub(crate) async fn start(configure: impl FnOnce(&mut Config)) -> Self {
        let mirror = mirror();
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(dir.path(), &mirror);
        configure(&mut config);
        Self::start_with(dir, mirror, config).await
    }

    /// Starts a server that signs its images with a fresh key.
    pub(crate) async fn start_signed() -> Self {
        Self::start(|config| {
            let key = config.data_dir.join("key-build");
            std::fs::create_dir_all(&config.data_dir).unwrap();
            attendant_server::signing::generate_key_pair(&key, None).unwrap();
            config.signing_key = Some(key);
        })
        .await
    }

    /// Starts a server on an existing directory and configuration (restarts).
    pub(crate) async fn start_with(
        dir: tempfile::TempDir,
        mirror: MirrorInfo,
        config: Config,
    ) -> Self {
        let running = spawn(config.clone()).await.expect("start the server");
        Self {
            base: format!("http://{}", running.addr),
            running,
            dir,
            client: reqwest::Client::new(),
            mirror,
            config,
        }
    }

    /// Stops the server and returns its directory and configuration.
    pub(crate) async fn stop(self) -> (tempfile::TempDir, MirrorInfo, Config) {
        self.running.shutdown.cancel();
        let _ = self.running.task.await;
        (self.dir, self.mirror, self.config)
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POSTs a raw body to `/api/v1/build`.
    pub(crate) async fn post_raw(&self, body: &str) -> (u16, reqwest::header::HeaderMap, Value) {
        let response = self
            .client
            .post(self.url("/api/v1/build"))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        split(response).await
    }

    pub(crate) async fn post(&self, body: &Value) -> (u16, reqwest::header::HeaderMap, Value) {
        self.post_raw(&body.to_string()).await
    }

    pub(crate) async fn get(&self, path: &str) -> (u16, reqwest::header::HeaderMap, Value) {
        split(self.client.get(self.url(path)).send().await.unwrap()).await
    }

    /// Polls a build until it is no longer 202 (or fails the test after 60 s).
    pub(crate) async fn wait(&self, request_hash: &str) -> (u16, Value) {
        let started = Instant::now();
        loop {
            let (status, _, body) = self.get(&format!("/api/v1/build/{request_hash}")).await;
            if status != 202 {
                return (status, body);
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "build did not finish: {body}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// POSTs and waits for the outcome.
    pub(crate) async fn build(&self, body: &Value) -> (u16, Value) {
        let (status, _, answer) = self.post(body).await;
        if status != 200 && status != 202 {
            return (status, answer);
        }
        let hash = answer["request_hash"].as_str().unwrap().to_owned();
        self.wait(&hash).await
    }

    /// `make image` runs so far.
    pub(crate) fn builds_started(&self) -> u64 {
        self.running
            .service
            .workers
            .builds_started
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn store_dir(&self) -> PathBuf {
        self.config.store_path()
    }
}

async fn split(response: reqwest::Response) -> (u16, reqwest::header::HeaderMap, Value) {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    (status, headers, body)
}
