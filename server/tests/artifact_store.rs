//! The artifact store, one suite for both backends: every test function runs against the local
//! directory and against an S3-compatible bucket served by a real S3 protocol server (s3s with
//! s3s-fs: SigV4, multipart uploads, ranged GETs) on a loopback port, started once for this
//! binary. Each test runs a real server (`service::spawn`) and talks HTTP to it.

#![expect(clippy::unwrap_used, reason = "test helpers may unwrap")]
#![expect(clippy::expect_used, reason = "test helpers may unwrap")]
#![expect(clippy::indexing_slicing, reason = "test helpers index JSON answers")]

#[path = "e2e/fixture.rs"]
#[expect(dead_code, reason = "the soak benchmark uses the rest of the file")]
mod fixture;
#[path = "s3/server.rs"]
mod s3;

use std::path::Path;
use std::time::{Duration, Instant};

use attendant_proto::api::RequestHash;
use attendant_server::artifacts::Artifacts;
use attendant_server::config::{Config, StoreBackend, StoreConfig};
use attendant_server::service::{Running, spawn};
use futures_util::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use sha2::{Digest, Sha256};

use s3::{ACCESS_KEY, SECRET_KEY, s3_server};

const PREFIX: &str = "results/";

/// Which backend a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Local,
    S3,
}

const BACKENDS: [Backend; 2] = [Backend::Local, Backend::S3];

/// A server on a fresh data directory (and, for S3, a fresh bucket).
struct Setup {
    backend: Backend,
    running: Running,
    base: String,
    client: reqwest::Client,
    config: Config,
    bucket: String,
    dir: tempfile::TempDir,
}

impl Setup {
    async fn start(backend: Backend, configure: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.data_dir = dir.path().join("data");
        config.upstream_url = dir.path().join("no-mirror").display().to_string();
        config.workers = 0;
        config.shutdown_timeout = Duration::from_secs(5);
        let bucket = format!("bucket-{}", unique());
        if backend == Backend::S3 {
            let server = s3_server();
            server.create_bucket(&bucket);
            let credentials = dir.path().join("s3-credentials.toml");
            std::fs::write(
                &credentials,
                format!("access_key_id = \"{ACCESS_KEY}\"\nsecret_access_key = \"{SECRET_KEY}\"\n"),
            )
            .unwrap();
            config.store = s3_config(&server.endpoint, &bucket, &credentials);
        }
        configure(&mut config);
        let running = spawn(config.clone()).await.unwrap();
        let base = format!("http://{}", running.addr);
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self {
            backend,
            running,
            base,
            client,
            config,
            bucket,
            dir,
        }
    }

    fn artifacts(&self) -> &Artifacts {
        &self.running.service.state.artifacts
    }

    /// The bucket as a client of our own sees it, to look behind the server's back.
    fn bucket(&self) -> impl ObjectStore {
        AmazonS3Builder::new()
            .with_endpoint(&s3_server().endpoint)
            .with_bucket_name(&self.bucket)
            .with_region("us-east-1")
            .with_access_key_id(ACCESS_KEY)
            .with_secret_access_key(SECRET_KEY)
            .with_allow_http(true)
            .build()
            .unwrap()
    }

    async fn get(&self, path: &str, range: Option<&str>) -> reqwest::Response {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(range) = range {
            request = request.header("Range", range);
        }
        request.send().await.unwrap()
    }

    /// Publishes `files` (name, contents) as the result of `hash` through the store.
    async fn publish(&self, hash: &RequestHash, files: &[(&str, &[u8])]) {
        let output = self.config.data_dir.join(format!("out-{}", unique()));
        for (name, contents) in files {
            let path = output.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, contents).unwrap();
        }
        self.artifacts().publish(&output, hash).await.unwrap();
        assert!(
            !output.exists(),
            "{:?}: publishing takes the output",
            self.backend
        );
    }

    /// Runs one collection pass with `grace`.
    async fn gc(&self, grace: Duration) -> attendant_server::gc::GcReport {
        let now = i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        )
        .unwrap();
        attendant_server::gc::collect(
            &*self.running.service.state.store,
            self.artifacts(),
            now,
            grace,
        )
        .await
        .unwrap()
    }

    async fn stop(self) {
        self.running.shutdown.cancel();
        let _ = self.running.task.await;
        if self.backend == Backend::S3 {
            let _ = std::fs::remove_dir_all(s3_server().root.join(&self.bucket));
        }
    }
}

fn s3_config(endpoint: &str, bucket: &str, credentials: &Path) -> StoreConfig {
    let text = format!(
        "backend = \"s3\"\nbucket = \"{bucket}\"\nendpoint = \"{endpoint}\"\nprefix = \"{PREFIX}\"\n\
         credentials_file = \"{}\"\nallow_http = true\n",
        credentials.display()
    );
    let config: StoreConfig = toml::from_str(&text).unwrap();
    assert_eq!(config.backend, StoreBackend::S3);
    config
}

/// A name no other test of this process uses.
fn unique() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}-{n}", std::process::id())
}

fn hash(n: u8) -> RequestHash {
    format!("{:02x}", n).repeat(32).parse().unwrap()
}

/// A file bigger than one multipart part (8 MiB), with bytes that show any misplaced range.
fn big_image() -> Vec<u8> {
    (0..9 * 1024 * 1024 + 4321)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect()
}

async fn json(response: reqwest::Response) -> serde_json::Value {
    serde_json::from_slice(&body(response).await).unwrap()
}

async fn body(response: reqwest::Response) -> Vec<u8> {
    response.bytes().await.unwrap().to_vec()
}

#[tokio::test]
async fn published_result_is_served_whole_and_by_range_then_collected() {
    let image = big_image();
    for backend in BACKENDS {
        let setup = Setup::start(backend, |_| {}).await;
        let h = hash(1);
        setup
            .publish(
                &h,
                &[("openwrt-sysupgrade.bin", &image), ("profiles.json", b"{}")],
            )
            .await;

        let whole = setup
            .get(&format!("/store/{h}/openwrt-sysupgrade.bin"), None)
            .await;
        assert_eq!(whole.status(), 200, "{backend:?}");
        let headers = whole.headers().clone();
        assert_eq!(headers["content-length"], image.len().to_string().as_str());
        assert_eq!(headers["content-type"], "application/octet-stream");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(
            headers["content-disposition"],
            "attachment; filename=\"openwrt-sysupgrade.bin\""
        );
        assert!(
            body(whole).await == image,
            "{backend:?}: whole body differs"
        );

        let start = 8 * 1024 * 1024 - 10;
        let part = setup
            .get(
                &format!("/store/{h}/openwrt-sysupgrade.bin"),
                Some(&format!("bytes={start}-{}", start + 99)),
            )
            .await;
        assert_eq!(part.status(), 206, "{backend:?}");
        assert_eq!(
            part.headers()["content-range"],
            format!("bytes {start}-{}/{}", start + 99, image.len()).as_str()
        );
        assert!(
            body(part).await == image[start..start + 100],
            "{backend:?}: range differs"
        );
        let tail = setup
            .get(
                &format!("/store/{h}/openwrt-sysupgrade.bin"),
                Some("bytes=-5"),
            )
            .await;
        assert_eq!(tail.status(), 206);
        assert!(body(tail).await == image[image.len() - 5..]);
        let past = setup
            .get(&format!("/store/{h}/profiles.json"), Some("bytes=100-"))
            .await;
        assert_eq!(past.status(), 416, "{backend:?}");
        assert_eq!(past.headers()["content-range"], "bytes */2");

        // No job row references the hash: once the grace period is over it goes.
        let young = setup.gc(Duration::from_secs(3600)).await;
        assert_eq!(
            young.orphans, 0,
            "{backend:?}: within the grace period it stays"
        );
        assert_eq!(
            setup
                .get(&format!("/store/{h}/profiles.json"), None)
                .await
                .status(),
            200
        );
        let report = setup.gc(Duration::ZERO).await;
        assert_eq!(report.orphans, 1, "{backend:?}");
        let gone = setup
            .get(&format!("/store/{h}/openwrt-sysupgrade.bin"), None)
            .await;
        assert_eq!(gone.status(), 404, "{backend:?}");
        assert_eq!(json(gone).await["detail"], "Not found");
        assert_eq!(setup.artifacts().stored_bytes().await, 0, "{backend:?}");
        if backend == Backend::S3 {
            let left: Vec<_> = setup.bucket().list(None).collect::<Vec<_>>().await;
            assert!(left.is_empty(), "objects left in the bucket: {left:?}");
        }
        setup.stop().await;
    }
}

/// A publisher that died half-way: files without the completion marker (S3), a staging
/// directory (local), and on S3 a multipart upload that was never completed. Nothing of it is
/// served, and the collector reaps it after the grace period.
#[tokio::test]
async fn interrupted_upload_is_never_served_and_is_reaped() {
    for backend in BACKENDS {
        let setup = Setup::start(backend, |_| {}).await;
        let h = hash(2);
        match backend {
            Backend::Local => {
                let staging = setup.artifacts().root().join(format!(".incoming-{h}-0123"));
                std::fs::create_dir_all(&staging).unwrap();
                std::fs::write(staging.join("image.bin"), b"half").unwrap();
            }
            Backend::S3 => {
                let bucket = setup.bucket();
                let key = |name: &str| Key::from(format!("{PREFIX}{h}/{name}"));
                bucket
                    .put(&key("image.bin"), PutPayload::from_static(b"half"))
                    .await
                    .unwrap();
                // A multipart upload cut off after its first part: no object appears.
                let mut upload = bucket.put_multipart(&key("big.bin")).await.unwrap();
                upload
                    .put_part(PutPayload::from(vec![7u8; 5 * 1024 * 1024]))
                    .await
                    .unwrap();
                drop(upload);
            }
        }
        for path in [
            format!("/store/{h}/image.bin"),
            format!("/store/{h}/big.bin"),
            format!("/store/.incoming-{h}-0123/image.bin"),
        ] {
            assert_eq!(
                setup.get(&path, None).await.status(),
                404,
                "{backend:?} {path}"
            );
        }
        let young = setup.gc(Duration::from_secs(3600)).await;
        assert_eq!(young.orphans, 0, "{backend:?}");
        let report = setup.gc(Duration::ZERO).await;
        assert_eq!(report.orphans, 1, "{backend:?}");
        assert!(
            setup.artifacts().entries().await.unwrap().is_empty(),
            "{backend:?}"
        );
        setup.stop().await;
    }
}

/// Only plain names of a complete result are served: no traversal, no `.` names (the marker
/// included), no foreign keys, no directory listings.
#[tokio::test]
async fn only_plain_paths_of_complete_results_are_served() {
    for backend in BACKENDS {
        let setup = Setup::start(backend, |_| {}).await;
        let h = hash(3);
        setup
            .publish(&h, &[("image.bin", b"image"), ("sub/x.json", b"{}")])
            .await;
        assert_eq!(
            setup
                .get(&format!("/store/{h}/sub/x.json"), None)
                .await
                .status(),
            200
        );
        for path in [
            format!("/store/{h}/.complete"),
            // `%2f` keeps the client from resolving the `..` (it does for `/%2e%2e/`); the
            // server decodes it to `sub/../image.bin`, an existing file if `..` were followed.
            format!("/store/{h}/sub/..%2fimage.bin"),
            format!("/store/{h}/..%2f..%2fetc%2fpasswd"),
            format!("/store/{h}//image.bin"),
            format!("/store/{h}/missing.bin"),
            format!("/store/{h}/sub"),
            format!("/store/{}/image.bin", hash(4)),
            "/store/not-a-hash/image.bin".to_owned(),
            "/store/%2e%2e/%2e%2e/etc/passwd".to_owned(),
        ] {
            let response = setup.get(&path, None).await;
            assert_eq!(response.status(), 404, "{backend:?} {path}");
        }
        setup.stop().await;
    }
}

/// With `public_url`, `/store/` redirects to the CDN, after the same checks.
#[tokio::test]
async fn public_url_redirects_complete_files_only() {
    let setup = Setup::start(Backend::S3, |config| {
        config.store.public_url = "https://cdn.example.net/attendant/".to_owned();
    })
    .await;
    let h = hash(5);
    setup.publish(&h, &[("image.bin", b"image")]).await;
    let response = setup.get(&format!("/store/{h}/image.bin"), None).await;
    assert_eq!(response.status(), 302);
    assert_eq!(
        response.headers()["location"],
        format!("https://cdn.example.net/attendant/{h}/image.bin").as_str()
    );
    for path in [
        format!("/store/{h}/missing.bin"),
        format!("/store/{h}/.complete"),
        format!("/store/{}/image.bin", hash(6)),
    ] {
        assert_eq!(setup.get(&path, None).await.status(), 404, "{path}");
    }
    setup.stop().await;
}

/// Republishing an expired result replaces it whole; removing it takes the marker first.
#[tokio::test]
async fn republishing_replaces_the_old_result() {
    for backend in BACKENDS {
        let setup = Setup::start(backend, |_| {}).await;
        let h = hash(7);
        setup
            .publish(&h, &[("old.bin", b"old"), ("image.bin", b"v1")])
            .await;
        setup.publish(&h, &[("image.bin", b"version 2")]).await;
        let image = setup.get(&format!("/store/{h}/image.bin"), None).await;
        assert_eq!(body(image).await, b"version 2", "{backend:?}");
        assert_eq!(
            setup
                .get(&format!("/store/{h}/old.bin"), None)
                .await
                .status(),
            404
        );
        let files = setup
            .artifacts()
            .fetch(&h, &["image.bin".to_owned()])
            .await
            .unwrap();
        assert_eq!(
            std::fs::read(files.dir().join("image.bin")).unwrap(),
            b"version 2"
        );
        let fetched = files.dir().to_owned();
        drop(files);
        assert_eq!(
            fetched.exists(),
            backend == Backend::Local,
            "{backend:?}: a fetched copy is deleted, the job directory stays"
        );
        assert!(setup.artifacts().remove(&h).await.unwrap());
        assert!(!setup.artifacts().remove(&h).await.unwrap());
        assert_eq!(
            setup
                .get(&format!("/store/{h}/image.bin"), None)
                .await
                .status(),
            404
        );
        setup.stop().await;
    }
}

/// A whole build through `serve` with the object store: the fixture ImageBuilder builds, the
/// server signs and uploads, and the client downloads the image from `/store/` with the
/// SHA-256 the build response names.
#[tokio::test]
async fn build_through_serve_lands_in_the_bucket_and_downloads_intact() {
    let mirror = fixture::mirror();
    let setup = Setup::start(Backend::S3, |config| builds_from(config, &mirror, 1)).await;
    build_and_check(&setup).await;
    setup.stop().await;
}

/// The topology the object store is for: a remote worker with a data directory of its own and
/// no database builds the job; the main server checks and signs its upload and publishes it to
/// the bucket, from which `/store/` serves it.
#[tokio::test]
async fn remote_worker_upload_lands_in_the_bucket() {
    let mirror = fixture::mirror();
    let setup = Setup::start(Backend::S3, |config| builds_from(config, &mirror, 0)).await;
    let main_config = setup.dir.path().join("main.toml");
    std::fs::write(&main_config, toml::to_string(&setup.config).unwrap()).unwrap();
    let added = std::process::Command::new(env!("CARGO_BIN_EXE_attendant-server"))
        .arg("--config")
        .arg(&main_config)
        .args(["workers", "add", "w1"])
        .output()
        .unwrap();
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let token = setup.dir.path().join("w1.token");
    std::fs::write(&token, &added.stdout).unwrap();
    let mut worker_config = Config::default();
    worker_config.data_dir = setup.dir.path().join("worker");
    worker_config.upstream_url = mirror.root.display().to_string();
    worker_config.trusted_keys = vec![mirror.public_key.clone()];
    let worker_file = setup.dir.path().join("worker.toml");
    std::fs::write(&worker_file, toml::to_string(&worker_config).unwrap()).unwrap();
    let log = setup.dir.path().join("worker.log");
    // Through `setpriv --pdeathsig` so that a killed test run leaves no worker behind.
    let mut worker = tokio::process::Command::new("setpriv")
        .args([
            "--pdeathsig=KILL",
            "--",
            env!("CARGO_BIN_EXE_attendant-server"),
        ])
        .arg("--config")
        .arg(&worker_file)
        .args([
            "worker",
            "--workers",
            "1",
            "--server",
            &setup.base,
            "--token-file",
        ])
        .arg(&token)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let result = build_and_check(&setup).await;
    assert_eq!(
        result["worker"],
        "w1",
        "{result}\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    worker.kill().await.unwrap();
    setup.stop().await;
}

/// A server that builds (`workers` local build workers) from the fixture mirror and signs.
fn builds_from(config: &mut Config, mirror: &attendant_e2e::mirror::MirrorInfo, workers: usize) {
    config.upstream_url = mirror.root.display().to_string();
    config.trusted_keys = vec![mirror.public_key.clone()];
    config.workers = workers;
    config.job_timeout = Duration::from_secs(120);
    let key = config.data_dir.join("key-build");
    std::fs::create_dir_all(&config.data_dir).unwrap();
    attendant_server::signing::generate_key_pair(&key, None).unwrap();
    config.signing_key = Some(key);
}

/// Builds a request through `/api/v1/build`, downloads every image from `/store/` checking the
/// SHA-256 the answer names, and checks the result's completion marker in the bucket and that
/// nothing of it stayed in the local staging directory. The build's answer.
async fn build_and_check(setup: &Setup) -> serde_json::Value {
    let request =
        serde_json::json!({"version": "24.10.5", "target": "x86/64", "profile": "generic"});
    let submitted = setup
        .client
        .post(format!("{}/api/v1/build", setup.base))
        .header("content-type", "application/json")
        .body(request.to_string())
        .send()
        .await
        .unwrap();
    assert!(submitted.status() == 200 || submitted.status() == 202);
    let hash = json(submitted).await["request_hash"]
        .as_str()
        .unwrap()
        .to_owned();
    let started = Instant::now();
    let result = loop {
        let response = setup.get(&format!("/api/v1/build/{hash}"), None).await;
        if response.status() != 202 {
            assert_eq!(response.status(), 200);
            break json(response).await;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the build did not finish"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let images = result["images"].as_array().unwrap();
    assert!(!images.is_empty(), "{result}");
    for image in images {
        let name = image["name"].as_str().unwrap();
        let response = setup.get(&format!("/store/{hash}/{name}"), None).await;
        assert_eq!(response.status(), 200, "{name}");
        let bytes = body(response).await;
        assert_eq!(
            hex::encode(Sha256::digest(&bytes)),
            image["sha256"].as_str().unwrap()
        );
        let signature = setup.get(&format!("/store/{hash}/{name}.sig"), None).await;
        assert_eq!(signature.status(), 200, "{name}.sig");
    }
    let marker = setup
        .bucket()
        .get(&Key::from(format!("{PREFIX}{hash}/.complete")))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let marker: serde_json::Value = serde_json::from_slice(&marker).unwrap();
    assert!(
        marker["files"].as_array().unwrap().len() > images.len(),
        "{marker}"
    );
    assert!(
        !setup.artifacts().job_dir(&hash.parse().unwrap()).exists(),
        "nothing of the result is left in the local staging directory"
    );
    result
}

/// `check-config` summarises the object store without its credentials, and a broken `[store]`
/// key stops loading with the key's name.
#[test]
fn check_config_shows_the_object_store_and_names_bad_keys() {
    let dir = tempfile::tempdir().unwrap();
    let credentials = dir.path().join("s3-credentials.toml");
    std::fs::write(
        &credentials,
        "access_key_id = \"AKIDEXAMPLE\"\nsecret_access_key = \"wJalrXUtnFEMI-secret\"\n",
    )
    .unwrap();
    let write = |prefix: &str| {
        let config = dir.path().join("attendant.toml");
        std::fs::write(
            &config,
            format!(
                "data_dir = {data:?}\nupstream_url = {upstream:?}\n[store]\nbackend = \"s3\"\n\
                 bucket = \"attendant-images\"\nendpoint = \"https://s3.example.net\"\n\
                 prefix = \"{prefix}\"\ncredentials_file = {credentials:?}\n\
                 public_url = \"https://cdn.example.net/store\"\n",
                data = dir.path().join("data"),
                upstream = dir.path().join("mirror"),
            ),
        )
        .unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_attendant-server"))
            .arg("check-config")
            .arg("--config")
            .arg(&config)
            .env_remove("ATTENDANT_CONFIG")
            .output()
            .unwrap()
    };
    let output = write("store/");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let expected = format!(
        "s3 bucket `attendant-images` prefix `store/` at https://s3.example.net, credentials from {}, 302 to https://cdn.example.net/store",
        credentials.display()
    );
    assert!(stdout.contains(&expected), "{stdout}");
    assert!(
        !stdout.contains("wJalrXUtnFEMI") && !stdout.contains("AKIDEXAMPLE"),
        "{stdout}"
    );

    let output = write("store");
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains(
            "`store.prefix` is `store`; expected plain names separated by `/` and ending with `/`"
        ),
        "{stderr}"
    );
}
