//! Validation, error texts, redirects and metadata endpoints (no build needed: workers = 0).

use serde_json::{Value, json};

use crate::support::Server;

async fn idle_server() -> Server {
    Server::start(|config| config.workers = 0).await
}

fn request(version: &str, target: &str, profile: &str) -> Value {
    json!({"version": version, "target": target, "profile": profile})
}

#[tokio::test]
async fn bad_requests_have_asu_texts_in_asu_order() {
    let server = idle_server().await;
    let cases = [
        (
            json!({"version": "24.10.5", "target": "x86/64", "profile": "generic", "defaults": "echo hi", "distro": "nope"}),
            "Handling `defaults` not enabled on server",
        ),
        (
            json!({"version": "24.10.5", "target": "x86/64", "profile": "generic", "repositories": {"x": "https://feed.example/x"}, "distro": "nope"}),
            "Repository not allowed: https://feed.example/x",
        ),
        (
            json!({"version": "24.10.5", "target": "x86/64", "profile": "generic", "distro": "lede"}),
            "Unsupported distro: lede",
        ),
        (
            request("10.10.10", "x86/64", "generic"),
            "Unsupported branch: 10.10.10",
        ),
        (
            request("99.99.99", "x86/64", "generic"),
            "Unsupported branch: 99.99.99",
        ),
        (
            request("24.10.99", "x86/64", "generic"),
            "Unsupported version: 24.10.99",
        ),
        (
            request("24.10.5", "foo/bar", "generic"),
            "Unsupported target: foo/bar. The requested target was either dropped, is still being built or is not supported by the selected version. Please check the forums or try again later.",
        ),
        (
            request("24.10.5", "ath79/generic", "tplink,archer-c9-v9"),
            "Unsupported profile: tplink_archer-c9-v9. The requested profile was either dropped or never existed. Please check the forums for more information.",
        ),
    ];
    for (body, detail) in cases {
        let (status, _, answer) = server.post(&body).await;
        assert_eq!(status, 400, "{body} → {answer}");
        assert_eq!(answer, json!({"detail": detail, "status": 400}), "{body}");
    }
}

#[tokio::test]
async fn schema_errors_are_list_shaped_422() {
    let server = Server::start(|config| {
        config.workers = 0;
        config.allow_defaults = true;
        config.max_defaults_length = 10;
    })
    .await;
    let (status, _, answer) = server.post_raw("").await;
    assert_eq!(status, 422);
    assert_eq!(
        answer,
        json!({"detail": [{"type": "missing", "loc": ["body"], "msg": "Field required", "input": null}]})
    );
    let cases = [
        (
            json!({"version": "24.10.5", "target": "x86/64", "profile": "generic", "packages": "x"}),
            "Input should be a valid list",
        ),
        (
            json!({"version": "24.10.5", "target": "x86/64", "profile": "generic", "rootfs_size_mb": 0}),
            "Input should be greater than or equal to 1",
        ),
        (
            json!({"version": "24.10.5", "target": "x86/64", "profile": "generic", "rootfs_size_mb": 1025}),
            "Input should be less than or equal to 1024",
        ),
        (
            json!({"version": "24.10.5", "target": "x86/64", "profile": "generic", "defaults": "x".repeat(11)}),
            "String should have at most 10 characters",
        ),
        (
            json!({"target": "x86/64", "profile": "generic"}),
            "Field required",
        ),
    ];
    for (body, msg) in cases {
        let (status, _, answer) = server.post(&body).await;
        assert_eq!(status, 422, "{body} → {answer}");
        assert_eq!(answer["detail"][0]["msg"], msg, "{body} → {answer}");
    }
    let (status, _, answer) = server
        .post(&json!({"version": "24.10.5", "target": "x86/64", "profile": "generic", "filesystem": "zfs"}))
        .await;
    assert_eq!(status, 422);
    assert_eq!(answer["detail"][0]["loc"], json!(["body", "filesystem"]));
}

#[tokio::test]
async fn unknown_packages_are_refused_before_queueing() {
    let server = idle_server().await;
    let started = std::time::Instant::now();
    let (status, _, answer) = server
        .post(
            &json!({"version": "24.10.5", "target": "x86/64", "profile": "generic",
                      "packages": ["tmux", "no-such-pkg", "-ppp", "kmod-e1000", "also-missing"]}),
        )
        .await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(
        answer,
        json!({"detail": "Unsupported package(s): no-such-pkg, also-missing", "status": 422})
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let (_, _, stats) = server.get("/api/v1/stats").await;
    assert_eq!(stats, json!({"queue_length": 0}));
}

#[tokio::test]
async fn queued_job_reports_position_and_overload_is_529() {
    let server = Server::start(|config| {
        config.workers = 0;
        config.max_pending_jobs = 1;
    })
    .await;
    let mut hashes = Vec::new();
    for (n, package) in ["tmux", "htop"].into_iter().enumerate() {
        let (status, headers, answer) = server
            .post(&json!({"version": "24.10.5", "target": "x86/64", "profile": "generic", "packages": [package]}))
            .await;
        assert_eq!(status, 202, "{answer}");
        assert_eq!(answer["status"], 202);
        assert_eq!(answer["detail"], "queued");
        assert_eq!(answer["queue_position"], n);
        assert_eq!(headers["x-queue-position"], n.to_string().as_str());
        assert_eq!(headers["x-imagebuilder-status"], "queued");
        assert_eq!(answer["request_hash"].as_str().unwrap().len(), 64);
        assert!(answer["enqueued_at"].as_str().unwrap().ends_with("+00:00"));
        hashes.push(answer["request_hash"].as_str().unwrap().to_owned());
    }
    let (status, _, answer) = server
        .post(&json!({"version": "24.10.5", "target": "x86/64", "profile": "generic", "packages": ["nano"]}))
        .await;
    assert_eq!(status, 529);
    assert_eq!(
        answer,
        json!({"status": 529, "title": "Server overloaded",
               "detail": "server overload, queue contains too many build requests: 2"})
    );
    // An existing job is still answered while the queue is full.
    let (status, _, answer) = server
        .post(&json!({"version": "24.10.5", "target": "x86/64", "profile": "generic", "packages": ["htop"]}))
        .await;
    assert_eq!((status, answer["queue_position"].clone()), (202, json!(1)));
    let (_, _, stats) = server.get("/api/v1/stats").await;
    assert_eq!(stats["queue_length"], 2);
    let head = server
        .client
        .head(server.url(&format!("/api/v1/build/{}", hashes[1])))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 202);
    assert_eq!(head.headers()["x-queue-position"], "1");
    assert!(head.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn unknown_hash_is_404_and_post_on_it_is_405() {
    let server = idle_server().await;
    let hash = "ab".repeat(32);
    for path in [
        format!("/api/v1/build/{hash}"),
        "/api/v1/build/not-a-hash".to_owned(),
    ] {
        let (status, _, answer) = server.get(&path).await;
        assert_eq!(status, 404);
        assert_eq!(
            answer,
            json!({"status": 404, "title": "Not Found", "detail": "could not find provided request hash"})
        );
    }
    let response = server
        .client
        .post(server.url(&format!("/api/v1/build/{hash}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
}

#[tokio::test]
async fn aliases_and_generic_fallback_share_one_hash() {
    let server = idle_server().await;
    let hash_of = |answer: &Value| answer["request_hash"].as_str().unwrap().to_owned();
    let (_, _, a) = server
        .post(&request("24.10.5", "ath79/generic", "tplink,archer-c7-v5"))
        .await;
    let (_, _, b) = server
        .post(&request("24.10.5", "ath79/generic", "tplink_archer-c7-v5"))
        .await;
    assert_eq!(hash_of(&a), hash_of(&b));
    assert_eq!(a["request"]["profile"], "tplink_archer-c7-v5");
    let (_, _, c) = server
        .post(&request("24.10.5", "x86/64", "some-random-pc"))
        .await;
    let (_, _, d) = server.post(&request("24.10.5", "x86/64", "generic")).await;
    assert_eq!(hash_of(&c), hash_of(&d));
    assert_eq!(c["request"]["profile"], "generic");
    let (_, _, stats) = server.get("/api/v1/stats").await;
    assert_eq!(stats["queue_length"], 2, "two distinct builds, not four");
}

#[tokio::test]
async fn body_over_the_limit_is_413_naming_it() {
    let server = Server::start(|config| {
        config.workers = 0;
        config.limits.max_body_bytes = 1000;
    })
    .await;
    let packages: Vec<String> = (0..200).map(|n| format!("package{n}")).collect();
    let (status, _, answer) = server
        .post(&json!({"version": "24.10.5", "target": "x86/64", "profile": "generic", "packages": packages}))
        .await;
    assert_eq!(status, 413);
    assert_eq!(
        answer,
        json!({"detail": "request body is larger than the limit of 1000 bytes", "status": 413})
    );
}

#[tokio::test]
async fn missing_user_agent_and_client_are_fine() {
    let server = idle_server().await;
    // reqwest sends no User-Agent unless told to.
    let (status, _, answer) = server.post(&request("24.10.5", "x86/64", "generic")).await;
    assert_eq!(status, 202, "{answer}");
}

#[tokio::test]
async fn redirects_and_metadata_endpoints() {
    let server = idle_server().await;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for (from, to) in [
        ("/api/v1/latest", "/json/v1/latest.json"),
        ("/api/v1/overview", "/json/v1/overview.json"),
        ("/overview", "/json/v1/overview.json"),
        ("//api/v1/stats", "/api/v1/stats"),
    ] {
        let response = no_redirects.get(server.url(from)).send().await.unwrap();
        assert_eq!(response.status(), 301, "{from}");
        assert_eq!(response.headers()["location"], to, "{from}");
    }
    let (status, _, latest) = server.get("/json/v1/latest.json").await;
    assert_eq!(status, 200);
    assert_eq!(latest, json!({"latest": ["25.12.1", "24.10.5"]}));
    let (_, _, overview) = server.get("/json/v1/overview.json").await;
    let branch = &overview["branches"]["24.10"];
    assert_eq!(
        branch["versions"],
        json!(["24.10.5", "24.10.4", "24.10-SNAPSHOT"])
    );
    assert_eq!(branch["targets"]["x86/64"], "x86_64");
    assert_eq!(overview["server"]["max_defaults_length"], 20480);
    let (_, _, branches) = server.get("/json/v1/branches.json").await;
    assert!(
        branches
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["name"] == "25.12")
    );
    let (status, _, revision) = server.get("/api/v1/revision/24.10.5/x86/64").await;
    assert_eq!(status, 200);
    assert!(
        revision["revision"]
            .as_str()
            .unwrap()
            .starts_with("r29237-")
    );
    let (status, _, revision) = server.get("/api/v1/revision/10.10.10/x86/64").await;
    assert_eq!(
        (status, revision["detail"].clone()),
        (400, json!("Unsupported branch: 10.10.10"))
    );
    let (status, _, index) = server
        .get("/json/v1/releases/24.10.5/targets/x86/64/index.json")
        .await;
    assert_eq!(status, 200);
    assert_eq!(index["architecture"], "x86_64");
    assert!(index["packages"]["base-files"].is_string());
    assert!(
        index["packages"]
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k.starts_with("kmod-"))
    );
    let (status, _, feeds) = server
        .get("/json/v1/releases/24.10.5/packages/x86_64-index.json")
        .await;
    assert_eq!(status, 200);
    assert_eq!(feeds["tmux"], "3.5a-r1");
    let (status, _, profile) = server
        .get("/json/v1/releases/24.10.5/targets/x86/64/generic.json")
        .await;
    assert_eq!(status, 200);
    assert_eq!(profile["id"], "generic");
    assert!(profile.get("profiles").is_none());
    let (status, _, _) = server
        .get("/json/v1/releases/24.10.5/targets/x86/64/nope.json")
        .await;
    assert_eq!(status, 404);
    let (status, _, _) = server
        .get("/json/v1/releases/../../etc/targets/x/y/index.json")
        .await;
    assert_eq!(status, 404);
    let (status, _, summary) = server.get("/api/v1/stats/summary").await;
    assert_eq!((status, summary["builds_24h"].clone()), (200, json!(0)));
}

#[tokio::test]
async fn store_refuses_traversal_and_missing_files() {
    let server = idle_server().await;
    std::fs::create_dir_all(server.store_dir().join("x")).unwrap();
    std::fs::write(server.store_dir().join("x/file.bin"), b"0123456789").unwrap();
    std::fs::write(server.dir.path().join("secret"), b"secret").unwrap();
    // Sent raw: an HTTP client would normalise the dots away before sending.
    for path in [
        "/store/../secret",
        "/store/x/../../secret",
        "/store/%2e%2e/secret",
        "/store/.x/file.bin",
    ] {
        let (status, body) = raw_get(&server, path).await;
        assert_eq!(status, 404, "{path}");
        assert!(!body.contains("secret"), "{path}: {body}");
    }
    let (status, _, answer) = server.get("/store/x/missing").await;
    assert_eq!((status, answer), (404, json!({"detail": "Not found"})));
    let ranged = server
        .client
        .get(server.url("/store/x/file.bin"))
        .header("range", "bytes=2-4")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 206);
    assert_eq!(ranged.headers()["content-range"], "bytes 2-4/10");
    assert_eq!(ranged.bytes().await.unwrap().as_ref(), b"234");
    let beyond = server
        .client
        .get(server.url("/store/x/file.bin"))
        .header("range", "bytes=20-")
        .send()
        .await
        .unwrap();
    assert_eq!(beyond.status(), 416);
    let whole = server
        .client
        .get(server.url("/store/x/file.bin"))
        .send()
        .await
        .unwrap();
    assert_eq!(whole.headers()["content-length"], "10");
    assert_eq!(whole.headers()["x-content-type-options"], "nosniff");
    assert_eq!(
        whole.headers()["content-disposition"],
        "attachment; filename=\"file.bin\""
    );
}

/// A GET with the path sent byte for byte.
async fn raw_get(server: &Server, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = server.running.addr;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response.get(9..12).unwrap().parse().unwrap();
    (status, response)
}
