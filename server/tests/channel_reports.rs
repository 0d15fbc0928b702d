//! Outcome reports and the rollout they steer, on a real server on `127.0.0.1:0` (SQLite, channel
//! keys, the admin API): the salt, reports checked and counted once per router, the counts in the
//! admin API, an auto-halt that re-signs and publishes 0 % with its audit entry and metric, a
//! manual `phase` afterwards that wins, and an auto-advance after successes and the soak time.

#![expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test code: a panic is a failed test"
)]

use std::path::Path;
use std::time::Duration;

use attendant_proto::channel::{ReportRequest, ReportResult, encode_report, machine_token};
use attendant_proto::usign::SecretKey;
use attendant_server::channels::model::{BuildSource, BuildState, DeviceId, ImageFile, Recipe};
use attendant_server::channels::ops::{self, CreateOptions, NewBuild};
use attendant_server::channels::publish::pool_relative;
use attendant_server::channels::{apply, rollout};
use attendant_server::config::{AdminToken, Config};
use attendant_server::service::{Running, spawn};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const TOKEN: &str = "report-admin-token";
const DEVICE: &str = "ath79/generic/tplink_archer-c7-v5";

struct Server {
    running: Running,
    base: String,
    client: reqwest::Client,
    root_public: attendant_proto::usign::PublicKey,
    _dir: tempfile::TempDir,
}

impl Server {
    /// A server publishing signed channels, with `stable` holding build 1 of [`DEVICE`] at 50 %.
    async fn start(reports: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.data_dir = dir.path().join("data");
        config.upstream_url = dir.path().join("no-upstream").display().to_string();
        config.workers = 0;
        config.channels.reports = reports;
        // Only the schedule test below evaluates on its own clock; the schedule's own rounds
        // are not waited for.
        config.channels.publish_interval = Duration::from_secs(3600);
        config.admin_tokens = vec![AdminToken::new(
            "ops",
            hex::encode(Sha256::digest(TOKEN.as_bytes())),
        )];
        let key_path = dir.path().join("key.sec");
        attendant_server::signing::generate_key_pair(&key_path, None).unwrap();
        let key = attendant_server::signing::load_secret_key(&key_path).unwrap();
        let root = dir.path().join("root.sec");
        let root_public = attendant_server::channels::keys::root_init(&root).unwrap();
        let delegation = dir.path().join("signing.ucert");
        attendant_server::channels::keys::delegate(
            &root,
            &key_path,
            unix_now() - 60,
            Duration::from_secs(30 * 86_400),
            &delegation,
        )
        .unwrap();
        config.signing_key = Some(key_path.clone());
        config.channels.signing_key = Some(key_path);
        config.channels.delegation = Some(delegation);
        let tree_dir = config.channels_path();
        std::fs::create_dir_all(&tree_dir).unwrap();
        let running = spawn(config).await.unwrap();
        let server = Self {
            base: format!("http://{}", running.addr),
            running,
            client: reqwest::Client::new(),
            root_public,
            _dir: dir,
        };
        let state = &server.running.service.state;
        let image = pool_image(&tree_dir, &key);
        for operation in [
            Box::new(|tree: &ops::Tree| ops::create(tree, "stable", &CreateOptions::default()))
                as Box<dyn Fn(&ops::Tree) -> _>,
            Box::new(|tree: &ops::Tree| {
                ops::device_add(tree, "stable", &DEVICE.parse::<DeviceId>().unwrap())
            }),
            Box::new(move |tree: &ops::Tree| {
                ops::add_build(
                    tree,
                    "stable",
                    DEVICE,
                    NewBuild {
                        source: BuildSource::Imported {
                            origin: "test".to_owned(),
                        },
                        state: BuildState::Ready,
                        openwrt_version: "24.10.5".to_owned(),
                        version_code: "r28959-29397011cc".to_owned(),
                        recipe: Recipe::default(),
                        description: "build 1".to_owned(),
                        version_detail: vec![("openwrt".to_owned(), "24.10.5".to_owned())],
                        minversion: None,
                        images: vec![image.clone()],
                        embeds_stamp: false,
                    },
                    attendant_server::state::now(),
                )
            }),
            Box::new(|tree: &ops::Tree| ops::phase(tree, "stable", DEVICE, 1, 50)),
        ] {
            apply::apply(state, "cli:test", false, operation)
                .await
                .unwrap();
        }
        server
    }

    async fn salt(&self) -> (u16, Value) {
        let response = self
            .client
            .get(format!("{}/api/v1/report", self.base))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (
            status,
            serde_json::from_slice(&response.bytes().await.unwrap()).unwrap(),
        )
    }

    async fn report(&self, body: Vec<u8>) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}/api/v1/report", self.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (
            status,
            serde_json::from_slice(&response.bytes().await.unwrap()).unwrap(),
        )
    }

    /// Sends the report of router `machine_id` and expects it accepted.
    async fn accepted(&self, salt: &str, machine_id: &str, result: ReportResult) {
        let report = ReportRequest {
            channel: "stable".to_owned(),
            device: DEVICE.to_owned(),
            from_build: 0,
            to_build: 1,
            result,
            cause: result
                .is_failure()
                .then(|| "image checksum mismatch".to_owned()),
            machine: machine_token(salt, machine_id),
        };
        let (status, body) = self.report(encode_report(&report)).await;
        assert_eq!((status, &body), (202, &json!({"status": "accepted"})));
    }

    async fn admin_get(&self, path: &str) -> Value {
        let response = self
            .client
            .get(format!("{}/api/v1/admin/{path}", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
    }

    async fn admin_post(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}/api/v1/admin/{path}", self.base))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (
            status,
            serde_json::from_slice(&response.bytes().await.unwrap()).unwrap(),
        )
    }

    /// Build 1 as the admin API shows it.
    async fn build(&self) -> Value {
        let device = self
            .admin_get(&format!("channels/images?channel=stable&device={DEVICE}"))
            .await;
        device["builds"][0].clone()
    }

    /// The published index of [`DEVICE`], its signature checked as a router checks it.
    async fn published_index(&self) -> Value {
        let fetch = |path: String| async move {
            let response = self
                .client
                .get(format!("{}{path}", self.base))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{path}");
            response.bytes().await.unwrap().to_vec()
        };
        let channels: Value =
            serde_json::from_slice(&fetch("/channels/channels.json".to_owned()).await).unwrap();
        let url = channels["channels"]["stable"]["devices"][DEVICE]["index"]
            .as_str()
            .unwrap()
            .to_owned();
        let bytes = fetch(url.clone()).await;
        let signature = fetch(format!("{url}.sig")).await;
        let fingerprint = attendant_proto::channel::trust::signing_key_of(&signature).unwrap();
        let delegation = fetch(format!("/channels/keys/{fingerprint}.ucert")).await;
        attendant_proto::channel::trust::verify_metadata(
            &bytes,
            &signature,
            &delegation,
            None,
            std::slice::from_ref(&self.root_public),
            unix_now(),
        )
        .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    async fn audit_actors(&self) -> Vec<(String, String)> {
        let log = self.admin_get("audit?limit=1000").await;
        log.as_array()
            .unwrap()
            .iter()
            .map(|entry| {
                (
                    entry["actor"].as_str().unwrap().to_owned(),
                    entry["operation"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    async fn stop(self) {
        self.running.shutdown.cancel();
        let _ = self.running.task.await;
    }
}

fn unix_now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// One image in the pool under `out`, as the pool stores it (content-addressed, signed).
fn pool_image(out: &Path, key: &SecretKey) -> ImageFile {
    let content = b"image of build 1";
    let image = ImageFile {
        name: "openwrt-24.10.5-ath79-generic-tplink_archer-c7-v5-squashfs-sysupgrade.bin"
            .to_owned(),
        image_type: "sysupgrade".to_owned(),
        filesystem: "squashfs".to_owned(),
        size: content.len() as u64,
        sha256: hex::encode(Sha256::digest(content)),
    };
    let path = out.join(pool_relative(&image));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(
        format!("{}.sig", path.display()),
        key.sign(content).to_file(),
    )
    .unwrap();
    std::fs::write(&path, content).unwrap();
    image
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_are_counted_and_halt_then_advance_the_rollout() {
    let server = Server::start(true).await;

    // One salt per server, the same for every router.
    let (status, first) = server.salt().await;
    assert_eq!(status, 200);
    let salt = first["salt"].as_str().unwrap().to_owned();
    assert_eq!(salt.len(), 32, "{first}");
    assert_eq!(server.salt().await.1, first);

    // Refusals name what is wrong and store nothing.
    let (status, body) = server
        .report(br#"{"channel":"stable","result":"exploded"}"#.to_vec())
        .await;
    assert_eq!(status, 400, "{body}");
    let mut unknown = ReportRequest {
        channel: "stable".to_owned(),
        device: DEVICE.to_owned(),
        from_build: 0,
        to_build: 9,
        result: ReportResult::Booted,
        cause: None,
        machine: machine_token(&salt, "m0"),
    };
    let (status, body) = server.report(encode_report(&unknown)).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        body["detail"],
        format!("channel `stable` has no build 9 for device `{DEVICE}`")
    );
    unknown.machine = "x".repeat(64);
    unknown.to_build = 1;
    let (status, body) = server.report(encode_report(&unknown)).await;
    assert_eq!(status, 400);
    assert!(
        body["detail"].as_str().unwrap().contains("machine"),
        "{body}"
    );
    let (status, _) = server.report(vec![b' '; 5000]).await;
    assert_eq!(status, 413);

    // Counted once per router: a retry replaces the router's earlier report.
    server.accepted(&salt, "m1", ReportResult::RolledBack).await;
    server.accepted(&salt, "m1", ReportResult::Booted).await;
    server.accepted(&salt, "m2", ReportResult::Booted).await;
    assert_eq!(
        server.build().await["reports"],
        json!({"booted": 2, "rolled_back": 0, "failed_before_flash": 0, "failure_rate": 0.0})
    );

    // Auto-halt: above 30 % failures once 4 reports are in.
    let (status, body) = server
        .admin_post(
            "channels/rollout",
            &json!({"name": "stable", "halt_failure_rate": 0.3, "halt_min_reports": 4}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    server
        .accepted(&salt, "m3", ReportResult::FailedBeforeFlash)
        .await;
    assert_eq!(server.build().await["phased_percentage"], 50, "3 reports");
    server.accepted(&salt, "m4", ReportResult::RolledBack).await;
    let build = server.build().await;
    assert_eq!(build["phased_percentage"], 0, "2 of 4 failed: halted");
    assert_eq!(build["reports"]["failure_rate"], 0.5);
    // Re-signed and published: routers are told at once.
    let index = server.published_index().await;
    assert_eq!(index["images"][0]["phased-percentage"], 0, "{index}");
    let actors = server.audit_actors().await;
    assert_eq!(
        actors.last().unwrap(),
        &("auto-halt".to_owned(), "phase".to_owned())
    );
    let metrics = server
        .client
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("attendant_rollout_actions_total{action=\"auto-halt\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("attendant_reports_total{result=\"booted\"} 2"),
        "{metrics}"
    );

    // A manual phase afterwards wins: the failures that caused the halt do not halt it again.
    let (status, body) = server
        .admin_post(
            "channels/phase",
            &json!({"name": "stable", "device": DEVICE, "build": 1, "percent": 50}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    server.accepted(&salt, "m5", ReportResult::Booted).await;
    assert_eq!(server.build().await["phased_percentage"], 50);

    // Auto-advance: 50 -> 100 after 2 successes and an hour at 50 %.
    let (status, body) = server
        .admin_post(
            "channels/rollout",
            &json!({"name": "stable", "advance": [50, 100], "min_successes": 2, "soak": "1h"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    server.accepted(&salt, "m6", ReportResult::Booted).await;
    assert_eq!(
        server.build().await["phased_percentage"],
        50,
        "successes, but not soaked"
    );
    let state = &server.running.service.state;
    let later = attendant_server::state::now() + 3_600_000;
    let acted = rollout::evaluate_all(state, later).await;
    assert_eq!(acted.len(), 1, "{acted:?}");
    assert_eq!((acted[0].from, acted[0].to), (50, 100));
    assert_eq!(server.build().await["phased_percentage"], 100);
    let index = server.published_index().await;
    assert!(
        index["images"][0].get("phased-percentage").is_none(),
        "100 % is published without the field: {index}"
    );
    assert_eq!(
        server.audit_actors().await.last().unwrap(),
        &("auto-advance".to_owned(), "phase".to_owned())
    );
    assert!(
        rollout::evaluate_all(state, later).await.is_empty(),
        "the last step"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_switched_off_answer_404() {
    let server = Server::start(false).await;
    let (status, body) = server.salt().await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({"detail": "outcome reports are disabled on this server", "status": 404})
    );
    let report = ReportRequest {
        channel: "stable".to_owned(),
        device: DEVICE.to_owned(),
        from_build: 0,
        to_build: 1,
        result: ReportResult::Booted,
        cause: None,
        machine: machine_token("s", "m"),
    };
    assert_eq!(server.report(encode_report(&report)).await.0, 404);
    let build = server.build().await;
    assert_eq!(build["reports"]["booted"], 0);
    server.stop().await;
}
