//! The admin API under `/api/v1/admin/` on a real server on `127.0.0.1:0` (SQLite, the fixture
//! mirror and ImageBuilder): bearer tokens (401 without, 403 for a wrong one), every channel
//! operation and its refusals, `dry_run`, a build settled into the pool, and the audit log.

#![expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test code: a panic is a failed test"
)]

use std::time::{Duration, Instant};

use attendant_e2e::mirror::{DEFAULT_SEED, MirrorInfo};
use attendant_e2e::workspace;
use attendant_server::config::{AdminToken, Config};
use attendant_server::service::{Running, spawn};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const TOKEN: &str = "s3cret-admin-token";
const DEVICE: &str = "ath79/generic/tplink_archer-c7-v5";

fn mirror() -> MirrorInfo {
    workspace::fixture(DEFAULT_SEED).unwrap()
}

struct Admin {
    mirror: MirrorInfo,
    running: Running,
    base: String,
    client: reqwest::Client,
    dir: tempfile::TempDir,
}

impl Admin {
    async fn start() -> Self {
        let mirror = mirror();
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key-build");
        attendant_server::signing::generate_key_pair(&key, None).unwrap();
        let mut config = Config::default();
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.data_dir = dir.path().join("data");
        config.upstream_url = mirror.root.display().to_string();
        config.trusted_keys = vec![mirror.public_key.clone()];
        config.signing_key = Some(key);
        config.workers = 1;
        config.job_lease = Duration::from_secs(2);
        config.shutdown_timeout = Duration::from_secs(5);
        config.channels.public_url = "https://upgrade.example.org".to_owned();
        config.admin_tokens = vec![AdminToken::new(
            "ops",
            hex::encode(Sha256::digest(TOKEN.as_bytes())),
        )];
        let running = spawn(config).await.unwrap();
        Self {
            mirror,
            base: format!("http://{}", running.addr),
            running,
            client: reqwest::Client::new(),
            dir,
        }
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
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

    async fn ok(&self, path: &str, body: &Value) -> Value {
        let (status, answer) = self.post(path, body).await;
        assert_eq!(status, 200, "{path} {body}: {answer}");
        answer
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .client
            .get(format!("{}/api/v1/admin/{path}", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (
            status,
            serde_json::from_slice(&response.bytes().await.unwrap()).unwrap(),
        )
    }

    async fn builds(&self, channel: &str) -> Vec<u64> {
        let (status, device) = self
            .get(&format!(
                "channels/images?channel={channel}&device={DEVICE}"
            ))
            .await;
        assert_eq!(status, 200, "{device}");
        device["builds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["number"].as_u64().unwrap())
            .collect()
    }

    async fn stop(self) {
        self.running.shutdown.cancel();
        let _ = self.running.task.await;
    }
}

#[tokio::test]
async fn tokens_are_required_and_checked() {
    let admin = Admin::start().await;
    let url = format!("{}/api/v1/admin/channels", admin.base);
    let none = admin.client.get(&url).send().await.unwrap();
    assert_eq!(none.status(), 401);
    assert_eq!(none.headers()["www-authenticate"], "Bearer");
    let body: Value = serde_json::from_slice(&none.bytes().await.unwrap()).unwrap();
    assert_eq!(body["status"], 401);
    let basic = admin
        .client
        .get(&url)
        .header("authorization", "Basic b3BzOnRva2Vu")
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 401);
    let wrong = admin
        .client
        .get(&url)
        .bearer_auth("not-the-token")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
    let wrong_post = admin
        .client
        .post(format!("{}/api/v1/admin/channels/create", admin.base))
        .bearer_auth("not-the-token")
        .body(json!({"name": "stable"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_post.status(), 403);
    let (status, tree) = admin.get("channels").await;
    assert_eq!(status, 200);
    assert_eq!(tree, json!([]), "the refused create changed nothing");
    admin.stop().await;
}

#[tokio::test]
async fn malformed_bodies_are_422_naming_the_problem() {
    let admin = Admin::start().await;
    let (status, body) = admin
        .post(
            "channels/create",
            &json!({"name": "stable", "colour": "red"}),
        )
        .await;
    assert_eq!(status, 422);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("unknown field `colour`"),
        "{body}"
    );
    let (status, body) = admin
        .post("channels/phase", &json!({"name": "stable"}))
        .await;
    assert_eq!(status, 422);
    assert!(
        body["detail"].as_str().unwrap().contains("missing field"),
        "{body}"
    );
    admin.stop().await;
}

#[tokio::test]
async fn every_operation_over_http_with_refusals_and_audit() {
    let admin = Admin::start().await;
    // dry_run shows the change and commits nothing.
    let planned = admin
        .ok(
            "channels/create",
            &json!({"name": "stable", "dry_run": true}),
        )
        .await;
    assert_eq!(planned["committed"], false);
    assert_eq!(admin.get("channels").await.1, json!([]));
    admin
        .ok("channels/create", &json!({"name": "stable"}))
        .await;
    let added = admin
        .ok(
            "channels/device/add",
            &json!({"name": "stable", "device": "ath79/generic/tplink,archer-c7-v5"}),
        )
        .await;
    assert_eq!(
        added["summary"][0],
        format!("add device `{DEVICE}` to channel `stable`")
    );

    // A real build, taken into the pool by `settle`.
    let built = admin
        .ok(
            "channels/build",
            &json!({"name": "stable", "device": DEVICE, "version": "24.10.5"}),
        )
        .await;
    assert_eq!(built["rebuilds"][0]["number"], 1);
    let started = Instant::now();
    loop {
        let settled = admin.ok("settle", &json!({})).await;
        if !settled["ready"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(
            settled["failed"].as_array().unwrap().is_empty(),
            "{settled}"
        );
        assert!(started.elapsed() < Duration::from_secs(120), "{settled}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, device) = admin
        .get(&format!("channels/images?channel=stable&device={DEVICE}"))
        .await;
    assert_eq!(device["builds"][0]["state"]["state"], "ready");
    assert!(!device["builds"][0]["images"].as_array().unwrap().is_empty());

    // Phase, refusals with their status and hint.
    admin
        .ok(
            "channels/phase",
            &json!({"name": "stable", "device": DEVICE, "build": 1, "percent": 30}),
        )
        .await;
    let (status, refused) = admin
        .post(
            "channels/phase",
            &json!({"name": "stable", "device": DEVICE, "build": 1, "percent": 130}),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(
        refused["detail"],
        "phased percentage 130 is out of range; expected 0 (pulled) to 100 (everyone)"
    );
    let (status, refused) = admin
        .post(
            "channels/phase",
            &json!({"name": "nope", "device": DEVICE, "build": 1, "percent": 30}),
        )
        .await;
    assert_eq!(status, 404);
    assert!(
        refused["hint"]
            .as_str()
            .unwrap()
            .contains("channel create nope")
    );

    // Tag and copy of a built build rebuild it with the new number's stamp.
    let tagged = admin
        .ok(
            "channels/tag",
            &json!({"name": "stable", "device": DEVICE, "build": 1, "tag": "Q4", "dry_run": true}),
        )
        .await;
    assert_eq!(tagged["rebuilds"][0]["number"], 2);
    assert_eq!(admin.builds("stable").await, [1]);
    admin
        .ok("channels/create", &json!({"name": "testing"}))
        .await;
    admin
        .ok(
            "channels/device/add",
            &json!({"name": "testing", "device": DEVICE}),
        )
        .await;
    let (status, refused) = admin
        .post(
            "channels/copy",
            &json!({"name": "stable", "device": DEVICE, "build": 1, "target_channel": "stable"}),
        )
        .await;
    assert_eq!(status, 409, "{refused}");
    let copied = admin
        .ok(
            "channels/copy",
            &json!({"name": "stable", "device": DEVICE, "build": 1, "target_channel": "testing"}),
        )
        .await;
    assert_eq!(copied["rebuilds"][0]["channel"], "testing");
    assert_eq!(admin.builds("testing").await, [1]);

    // Alias, redirect, rename, hide/show, remove-build, device remove, remove.
    admin
        .ok(
            "channels/alias",
            &json!({"alias": "daily", "target": "testing"}),
        )
        .await;
    assert_eq!(admin.builds("daily").await, [1]);
    admin
        .ok(
            "channels/redirect",
            &json!({"name": "old", "target": "stable"}),
        )
        .await;
    admin
        .ok(
            "channels/rename",
            &json!({"old": "testing", "new": "candidate"}),
        )
        .await;
    let (_, tree) = admin.get("channels").await;
    let names: Vec<&str> = tree
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["candidate", "daily", "old", "stable", "testing"]);
    assert_eq!(tree[1]["alias"], "candidate");
    assert_eq!(tree[4]["redirect"], "candidate");
    admin.ok("channels/hide", &json!({"name": "stable"})).await;
    admin.ok("channels/show", &json!({"name": "stable"})).await;
    admin
        .ok(
            "channels/remove-build",
            &json!({"name": "candidate", "device": DEVICE, "build": 1}),
        )
        .await;
    assert_eq!(admin.builds("daily").await, Vec::<u64>::new());
    admin
        .ok(
            "channels/device/remove",
            &json!({"name": "candidate", "device": DEVICE}),
        )
        .await;
    let (status, refused) = admin
        .post("channels/remove", &json!({"name": "candidate"}))
        .await;
    assert_eq!(status, 409);
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("still the target")
    );
    admin.ok("channels/remove", &json!({"name": "daily"})).await;
    admin.ok("channels/remove", &json!({"name": "old"})).await;

    // The audit log names the token and keeps before and after.
    let (status, log) = admin.get("audit?limit=1000").await;
    assert_eq!(status, 200);
    let entries = log.as_array().unwrap();
    assert!(entries.iter().all(|e| e["actor"] == "ops"), "{log}");
    let operations: Vec<&str> = entries
        .iter()
        .map(|e| e["operation"].as_str().unwrap())
        .collect();
    assert_eq!(operations.first(), Some(&"create"));
    assert!(operations.contains(&"settle"));
    assert!(operations.contains(&"rename"));
    let phase = entries.iter().find(|e| e["operation"] == "phase").unwrap();
    let before: Value = serde_json::from_str(phase["before"].as_str().unwrap()).unwrap();
    let after: Value = serde_json::from_str(phase["after"].as_str().unwrap()).unwrap();
    assert_eq!(
        before["stable"]["devices"][DEVICE]["builds"][0]["phased_percentage"],
        100
    );
    assert_eq!(
        after["stable"]["devices"][DEVICE]["builds"][0]["phased_percentage"],
        30
    );
    let first = entries[0]["id"].as_i64().unwrap();
    let (_, page) = admin.get(&format!("audit?after={first}&limit=1")).await;
    assert_eq!(page.as_array().unwrap().len(), 1);
    assert_eq!(
        page[0]["id"].as_i64().unwrap(),
        entries[1]["id"].as_i64().unwrap()
    );
    admin.stop().await;
}

#[tokio::test]
async fn import_uploads_a_prebuilt_image() {
    let admin = Admin::start().await;
    admin
        .ok("channels/create", &json!({"name": "stable"}))
        .await;
    admin
        .ok(
            "channels/device/add",
            &json!({"name": "stable", "device": DEVICE}),
        )
        .await;
    let dir = admin.mirror.target_dir("24.10.5", "ath79/generic");
    let upload = |profile: &str| {
        let name = format!("openwrt-24.10.5-ath79-generic-{profile}-squashfs-sysupgrade.bin");
        let bytes = std::fs::read(dir.join(&name)).unwrap();
        let url = format!(
            "{}/api/v1/admin/channels/import?name=stable&device={DEVICE}&version=24.10.5&filename={name}",
            admin.base
        );
        (url, bytes)
    };
    let (url, bytes) = upload("tplink_archer-c7-v5");
    let response = admin
        .client
        .post(&url)
        .bearer_auth(TOKEN)
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(answer["operation"], "build");
    let (_, device) = admin
        .get(&format!("channels/images?channel=stable&device={DEVICE}"))
        .await;
    let image = &device["builds"][0]["images"][0];
    assert_eq!(image["size"], bytes.len());
    assert_eq!(image["sha256"], hex::encode(Sha256::digest(&bytes)));
    assert!(
        device["builds"][0]["source"]["origin"]
            .as_str()
            .unwrap()
            .starts_with("upload by ops: ")
    );

    // An image for another device is refused, and leaves nothing behind.
    let (url, bytes) = upload("tplink_archer-c7-v2");
    let response = admin
        .client
        .post(&url)
        .bearer_auth(TOKEN)
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 409);
    assert_eq!(admin.builds("stable").await, [1]);
    let uploads = admin.dir.path().join("data/channels/.uploads");
    assert_eq!(std::fs::read_dir(uploads).unwrap().count(), 0);
    admin.stop().await;
}
