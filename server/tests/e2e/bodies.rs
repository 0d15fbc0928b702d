//! Every body the server sends, read back through the parsers the agent uses
//! (`attendant_proto::api::parse_*`): a body that a parser rejects, or whose value changes on
//! the way through, is a body a router cannot use.

use std::time::Duration;

use attendant_proto::api::{
    BuildResponse, BuildStatusBody, ImageType, ImagebuilderStatus, RequestHash,
    parse_build_response, parse_error_body, parse_overview, parse_status_body,
    parse_validation_errors,
};
use attendant_server::state::now;
use attendant_server::worker::run_workers;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::support::Server;

/// Status, `X-Imagebuilder-Status` and the raw body of a request.
async fn fetch(request: reqwest::RequestBuilder) -> (u16, String, Vec<u8>) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let stage = response
        .headers()
        .get("x-imagebuilder-status")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, stage, response.bytes().await.unwrap().to_vec())
}

async fn get(server: &Server, path: &str) -> (u16, String, Vec<u8>) {
    fetch(server.client.get(server.url(path))).await
}

async fn post(server: &Server, body: &Value) -> (u16, String, Vec<u8>) {
    let request = server
        .client
        .post(server.url("/api/v1/build"))
        .header("content-type", "application/json")
        .body(body.to_string());
    fetch(request).await
}

/// The parsed value, written out again, is the body as sent: no field lost or changed.
fn assert_lossless<T: Serialize>(parsed: &T, raw: &[u8]) {
    let sent: Value = serde_json::from_slice(raw).unwrap();
    assert_eq!(serde_json::to_value(parsed).unwrap(), sent);
}

fn tmux_request() -> Value {
    json!({"version": "24.10.5", "target": "x86/64", "profile": "generic", "packages": ["tmux"]})
}

#[tokio::test]
async fn every_build_body_round_trips_through_the_agent_parsers() {
    let server = Server::start(|config| {
        config.workers = 0;
        let key = config.data_dir.join("key-build");
        std::fs::create_dir_all(&config.data_dir).unwrap();
        attendant_server::signing::generate_key_pair(&key, None).unwrap();
        config.signing_key = Some(key);
    })
    .await;

    // 202 queued.
    let (status, stage, raw) = post(&server, &tmux_request()).await;
    assert_eq!((status, stage.as_str()), (202, "queued"));
    let queued: BuildStatusBody = parse_status_body(&raw).unwrap();
    assert_lossless(&queued, &raw);
    assert_eq!((queued.status, queued.detail.as_str()), (202, "queued"));
    assert_eq!(queued.queue_position, Some(0));
    assert_eq!(queued.imagebuilder_status, None);
    let hash: RequestHash = queued.request_hash.unwrap();
    let request = queued.request.clone().unwrap();
    assert_eq!(
        (request.profile.as_str(), request.packages.as_slice()),
        ("generic", ["tmux".to_owned()].as_slice())
    );
    assert!(queued.enqueued_at.is_some());

    // 202 building: a worker holds the job at a stage.
    let workers = server.running.service.workers.clone();
    let claim = workers
        .store
        .claim("test", now(), now() + 60_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claim.request_hash, hash);
    workers
        .store
        .set_stage(&hash, claim.attempt, &ImagebuilderStatus::BuildingImage)
        .await
        .unwrap();
    let (status, stage, raw) = get(&server, &format!("/api/v1/build/{hash}")).await;
    assert_eq!((status, stage.as_str()), (202, "building_image"));
    let building = parse_status_body(&raw).unwrap();
    assert_lossless(&building, &raw);
    assert_eq!(building.detail, "started");
    assert_eq!(
        building.imagebuilder_status,
        Some(ImagebuilderStatus::BuildingImage)
    );
    assert_eq!(
        building.queue_position, None,
        "LuCI reads its presence as queued"
    );
    assert_eq!(building.request, queued.request);
    assert_eq!(building.enqueued_at, queued.enqueued_at);

    // 200: hand the job back and let a real worker build it.
    workers
        .store
        .retry(&hash, claim.attempt, "handed back by the test", now())
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(run_workers(workers.clone(), 1, shutdown.clone()));
    server.wait(&hash.to_string()).await;
    let (status, stage, raw) = get(&server, &format!("/api/v1/build/{hash}")).await;
    assert_eq!((status, stage.as_str()), (200, "done"));
    let done: BuildResponse = parse_build_response(&raw).unwrap();
    assert_lossless(&done, &raw);
    assert_finished(&server, &done, hash);
    assert_eq!(done.request.as_ref(), queued.request.as_ref());

    // 500: a pinned version the ImageBuilder does not have.
    let pinned = json!({"version": "24.10.5", "target": "x86/64", "profile": "generic",
                        "packages_versions": {"tmux": "0.0"}});
    let (status, _, raw) = post(&server, &pinned).await;
    assert_eq!(status, 202);
    let failing = parse_status_body(&raw).unwrap().request_hash.unwrap();
    server.wait(&failing.to_string()).await;
    let (status, stage, raw) = get(&server, &format!("/api/v1/build/{failing}")).await;
    assert_eq!((status, stage.as_str()), (500, "failed"));
    let failed = parse_status_body(&raw).unwrap();
    assert_lossless(&failed, &raw);
    assert_eq!(
        failed.detail,
        "Error: Impossible package selection: tmux version not as requested: 0.0 vs. 3.5a-r1"
    );
    assert_eq!(failed.imagebuilder_status, Some(ImagebuilderStatus::Failed));
    assert_eq!(failed.request_hash, Some(failing));
    assert!(failed.stdout.is_some() && failed.stderr.is_some());

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .unwrap()
        .unwrap();
}

/// What a router relies on in a finished build.
fn assert_finished(server: &Server, done: &BuildResponse, hash: RequestHash) {
    assert_eq!((done.status, done.detail.as_str()), (200, "done"));
    assert_eq!(done.request_hash, hash);
    assert_eq!(done.bin_dir, hash.to_string());
    assert_eq!(done.imagebuilder_status, Some(ImagebuilderStatus::Done));
    assert_eq!(
        (done.id.as_str(), done.target.as_str()),
        ("generic", "x86/64")
    );
    assert_eq!(done.version_number, "24.10.5");
    assert!(done.manifest.contains_key("tmux"), "{:?}", done.manifest);
    assert_eq!(
        done.build_cmd.get(..2),
        Some(["make", "image"].map(String::from).as_slice())
    );
    assert!(done.build_cmd_packages.iter().any(|p| p == "tmux"));
    assert!(done.build_at.is_some() && done.enqueued_at.is_some());
    assert!(done.signing_key.is_some());
    assert!(!done.images.is_empty());
    assert!(
        done.images
            .iter()
            .any(|image| image.image_type == ImageType::Combined),
        "{:?}",
        done.images
    );
    for image in &done.images {
        let path = server.store_dir().join(&done.bin_dir).join(&image.name);
        let sha256 = hex::encode(Sha256::digest(std::fs::read(&path).unwrap()));
        assert_eq!(image.sha256, sha256, "{}", image.name);
        let signature = format!("{}.sig", image.name);
        assert_eq!(image.signature.as_deref(), Some(signature.as_str()));
        let signature = server.store_dir().join(&done.bin_dir).join(signature);
        assert!(signature.is_file(), "{}", signature.display());
    }
}

#[tokio::test]
async fn every_error_body_and_the_overview_round_trip_through_the_agent_parsers() {
    let server = Server::start(|config| {
        config.workers = 0;
        config.max_pending_jobs = 0;
    })
    .await;

    // 400 with ASU's text.
    let unsupported = json!({"version": "24.10.99", "target": "x86/64", "profile": "generic"});
    let (status, _, raw) = post(&server, &unsupported).await;
    assert_eq!(status, 400);
    let error = parse_error_body(&raw).unwrap();
    assert_lossless(&error, &raw);
    assert_eq!(
        (error.status, error.detail.as_str(), error.title),
        (400, "Unsupported version: 24.10.99", None)
    );

    // 404 for a hash nobody asked for.
    let (status, _, raw) = get(&server, &format!("/api/v1/build/{}", "0".repeat(64))).await;
    assert_eq!(status, 404);
    let error = parse_error_body(&raw).unwrap();
    assert_lossless(&error, &raw);
    assert_eq!(error.status, 404);
    assert_eq!(error.title.as_deref(), Some("Not Found"));
    assert_eq!(error.detail, "could not find provided request hash");

    // 422, list-shaped (the body breaks the model) ...
    let (status, _, raw) = post(&server, &json!({"target": "x86/64"})).await;
    assert_eq!(status, 422);
    let errors = parse_validation_errors(&raw).unwrap();
    assert_lossless(&errors, &raw);
    let missing: Vec<String> = errors
        .detail
        .iter()
        .map(|error| format!("{}: {:?}", error.msg, error.loc))
        .collect();
    assert!(
        errors
            .detail
            .iter()
            .all(|error| error.msg == "Field required"),
        "{missing:?}"
    );
    assert_eq!(errors.detail.len(), 2, "version and profile: {missing:?}");

    // ... and string-shaped (packages no index knows).
    let unknown = json!({"version": "24.10.5", "target": "x86/64", "profile": "generic",
                         "packages": ["no-such-pkg"]});
    let (status, _, raw) = post(&server, &unknown).await;
    assert_eq!(status, 422);
    let error = parse_error_body(&raw).unwrap();
    assert_lossless(&error, &raw);
    assert_eq!(
        (error.status, error.detail.as_str()),
        (422, "Unsupported package(s): no-such-pkg")
    );

    // The overview a router starts from.
    let (status, _, raw) = get(&server, "/json/v1/overview.json").await;
    assert_eq!(status, 200);
    let overview = parse_overview(&raw).unwrap();
    assert_lossless(&overview, &raw);
    let branch = overview.branch_of("24.10.5").expect("the 24.10 branch");
    assert!(
        branch.versions.iter().any(|version| version == "24.10.5"),
        "{:?}",
        branch.versions
    );

    // 529 once the queue is over its limit (here: one job waiting, none allowed).
    let (status, _, _) = post(&server, &tmux_request()).await;
    assert_eq!(status, 202);
    let htop = json!({"version": "24.10.5", "target": "x86/64", "profile": "generic",
                      "packages": ["htop"]});
    let (status, _, raw) = post(&server, &htop).await;
    assert_eq!(status, 529);
    let error = parse_error_body(&raw).unwrap();
    assert_lossless(&error, &raw);
    assert_eq!(error.title.as_deref(), Some("Server overloaded"));
    assert_eq!(
        error.detail,
        "server overload, queue contains too many build requests: 1"
    );
}
