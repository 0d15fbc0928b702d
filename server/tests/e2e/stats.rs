//! Statistics, download counts and `/metrics` driven by real builds over HTTP.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::Server;

/// The samples of a Prometheus text exposition (format 0.0.4), checked line by line: every
/// sample belongs to a family announced by `# TYPE`, names and labels are well-formed, values
/// are numbers.
fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    let mut families = BTreeMap::new();
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(
                ["counter", "gauge", "histogram"].contains(&kind),
                "type of {name}: {kind}"
            );
            families.insert(name.to_owned(), kind.to_owned());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect(line);
        let value: f64 = value.parse().expect(line);
        let name = series.split('{').next().unwrap();
        assert!(
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':'),
            "metric name in {line}"
        );
        let labels = series.strip_prefix(name).unwrap_or_default();
        if !labels.is_empty() {
            let inner = labels.strip_prefix('{').and_then(|l| l.strip_suffix('}'));
            for pair in inner.expect(line).split("\",") {
                let (label, quoted) = pair.split_once("=\"").expect(line);
                assert!(
                    label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_')
                );
                assert!(!quoted.trim_end_matches('"').contains('\n'));
            }
        }
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                name.strip_suffix(suffix)
                    .filter(|base| families.get(*base).is_some_and(|k| k == "histogram"))
            })
            .unwrap_or(name);
        assert!(families.contains_key(family), "no # TYPE for {line}");
        samples.insert(series.to_owned(), value);
    }
    samples
}

async fn scrape(server: &Server) -> BTreeMap<String, f64> {
    let response = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    parse_metrics(&response.text().await.unwrap())
}

fn sample(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    samples.get(series).copied().unwrap_or(0.0)
}

/// Events are written in the background: poll until `check` holds (or fail after 10 s).
async fn eventually(server: &Server, path: &str, check: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let (status, _, body) = server.get(path).await;
        assert_eq!(status, 200, "{path}: {body}");
        if check(&body) {
            return body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{path} never got there: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn today(series: &Value, label: &str) -> u64 {
    let dataset = series["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|dataset| dataset["label"] == label)
        .unwrap_or_else(|| panic!("no dataset {label}: {series}"));
    dataset["data"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn builds_downloads_and_failures_show_in_statistics_and_metrics() {
    let server = Server::start(|_| {}).await;
    let before = scrape(&server).await;
    assert_eq!(sample(&before, "attendant_workers_alive"), 1.0);

    let request = json!({"version": "24.10.5", "target": "x86/64", "profile": "generic",
                         "packages": ["tmux", "htop"], "client": "owut/2024.07"});
    let (status, done) = server.build(&request).await;
    assert_eq!(status, 200, "{done}");
    let hash = done["request_hash"].as_str().unwrap().to_owned();
    // The same request again from auc (no `client` field): a cache hit.
    let mut again = request.clone();
    again.as_object_mut().unwrap().remove("client");
    let response = server
        .client
        .post(server.url("/api/v1/build"))
        .header("user-agent", "auc (0.3.2)")
        .body(again.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (status, _) = server
        .build(
            &json!({"version": "24.10.5", "target": "x86/64", "profile": "generic",
                        "packages_versions": {"tmux": "0.0"}}),
        )
        .await;
    assert_eq!(status, 500);

    let image = done["images"][0]["name"].as_str().unwrap().to_owned();
    for _ in 0..2 {
        let response = server
            .client
            .get(server.url(&format!("/store/{hash}/{image}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap();
    }

    let per_day = eventually(&server, "/api/v1/builds-per-day", |body| {
        today(body, "Requests") == 3 && today(body, "Failures") == 1
    })
    .await;
    assert_eq!(per_day["labels"].as_array().unwrap().len(), 30);
    let label = per_day["labels"][29].as_str().unwrap();
    assert!(label.len() == 11 && label.ends_with('Z'), "{label}");
    assert_eq!(today(&per_day, "Cache-Hits"), 1);
    let colors: Vec<&str> = per_day["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["color"].as_str().unwrap())
        .collect();
    assert_eq!(colors, ["green", "orange", "red"]);

    let by_branch = eventually(&server, "/api/v1/builds-by-version", |body| {
        body["datasets"].as_array().is_some_and(|d| !d.is_empty())
    })
    .await;
    assert_eq!(by_branch["labels"].as_array().unwrap().len(), 26);
    assert_eq!(by_branch["datasets"][0]["label"], "24.10");
    assert_eq!(today(&by_branch, "24.10"), 1);
    let (_, _, by_version) = server.get("/api/v1/builds-by-version?branch=24.10").await;
    assert_eq!(by_version["datasets"][0]["label"], "24.10.5");
    let (_, _, other_branch) = server.get("/api/v1/builds-by-version?branch=23.05").await;
    assert_eq!(other_branch["datasets"], json!([]));

    let (status, _, packages) = server.get("/api/v1/top-packages?branch=24.10&n=1000").await;
    assert_eq!(status, 200);
    assert_eq!(
        packages,
        json!({"packages": [{"name": "htop", "count": 1}, {"name": "tmux", "count": 1}],
               "branch": "24.10", "days": 30})
    );
    let (_, _, one) = server.get("/api/v1/top-packages?n=1").await;
    assert_eq!(one["packages"].as_array().unwrap().len(), 1);
    assert_eq!(one["branch"], Value::Null);
    let (_, _, targets) = server.get("/api/v1/top-targets").await;
    assert_eq!(
        targets,
        json!({"targets": [{"name": "x86/64", "count": 1}], "days": 30})
    );
    let (_, _, profiles) = server.get("/api/v1/top-profiles").await;
    assert_eq!(
        profiles["profiles"],
        json!([{"name": "generic", "count": 1}])
    );
    let (_, _, clients) = server.get("/api/v1/top-clients").await;
    assert_eq!(
        clients["clients"],
        json!([{"name": "auc/0.3.2", "count": 1}, {"name": "owut/2024.07", "count": 1},
               {"name": "unknown/0", "count": 1}])
    );

    let response = server
        .client
        .get(server.url("/api/v1/build-errors?n=5"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    assert!(
        text.starts_with("Build Errors: 1 entries\nTime range: "),
        "{text}"
    );
    assert!(
        text.contains(
            " 24.10.5:x86/64:generic Error: Impossible package selection: tmux version not as requested"
        ),
        "{text}"
    );

    let (_, _, downloads) = server
        .get(&format!("/api/v1/downloads?request_hash={hash}"))
        .await;
    assert_eq!(
        downloads,
        json!({"downloads": [{"request_hash": hash, "image": image, "count": 2}]})
    );

    for (path, parameter) in [
        ("/api/v1/top-packages?n=many", "`n`"),
        ("/api/v1/build-errors?n=-1", "`n`"),
        (
            &*format!("/api/v1/top-packages?branch={}", "9".repeat(65)),
            "`branch`",
        ),
    ] {
        let (status, _, body) = server.get(path).await;
        assert_eq!(status, 422, "{path}: {body}");
        assert!(
            body["detail"].as_str().unwrap().contains(parameter),
            "{body}"
        );
    }

    let after = scrape(&server).await;
    let delta = |series: &str| sample(&after, series) - sample(&before, series);
    assert_eq!(delta("attendant_builds_total{outcome=\"success\"}"), 1.0);
    assert_eq!(delta("attendant_builds_total{outcome=\"failure\"}"), 1.0);
    assert_eq!(
        delta(
            "attendant_http_requests_total{method=\"POST\",route=\"/api/v1/build\",status=\"200\"}"
        ),
        1.0
    );
    assert_eq!(
        delta(
            "attendant_http_requests_total{method=\"GET\",route=\"/store/{*path}\",status=\"200\"}"
        ),
        2.0
    );
    assert!(delta("attendant_http_request_duration_seconds_count{route=\"/api/v1/build\"}") >= 3.0);
    assert_eq!(
        sample(
            &after,
            "attendant_http_request_duration_seconds_bucket{route=\"/api/v1/build\",le=\"+Inf\"}"
        ),
        sample(
            &after,
            "attendant_http_request_duration_seconds_count{route=\"/api/v1/build\"}"
        )
    );
    assert_eq!(
        sample(&after, "attendant_imagebuilder_downloads_total"),
        1.0
    );
    assert!(sample(&after, "attendant_imagebuilder_cache_hits_total") >= 1.0);
    assert!(sample(&after, "attendant_store_bytes") > 0.0);
    assert_eq!(sample(&after, "attendant_queue_length"), 0.0);
}
