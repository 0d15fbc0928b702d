//! `/openapi.json` against the router: every documented path and method answers (neither the
//! fallback's 404 nor a 405), undocumented methods are refused with 405, and every route that
//! `server/src/http/` registers is documented.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

use crate::support::Server;

/// Values for path parameters that reach the handler; `fingerprint` is the server's key's.
fn sample(parameter: &str, fingerprint: &str) -> String {
    let value = match parameter {
        "request_hash" => "0000000000000000000000000000000000000000000000000000000000000000",
        "version" => "24.10.5",
        "target" => "x86",
        "subtarget" => "64",
        "fingerprint" => fingerprint,
        // The remote worker API: an attempt number and an uploaded file's name.
        "attempt" => "1",
        "name" => "openwrt-24.10.5-x86-64-generic-squashfs-combined.img.gz",
        // Under `/json/v1/` a document the fixture mirror has (an unknown one is a 404 with
        // the fallback's text); under `/store/` any file (its 404 has its own text).
        "path" => "releases/24.10.5/targets/x86/64/index.json",
        other => panic!("no sample for path parameter `{other}`"),
    };
    value.to_owned()
}

fn concrete(path: &str, fingerprint: &str) -> String {
    path.split('/')
        .map(
            |segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => sample(name, fingerprint),
                None => segment.to_owned(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

/// The paths of every `.route("...")` in the non-test code of `dir`, written as OpenAPI writes
/// them (`{*path}` → `{path}`).
fn registered_routes(dir: &Path) -> BTreeSet<String> {
    let mut routes = BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            routes.extend(registered_routes(&path));
            continue;
        }
        if path.extension().is_none_or(|ext| ext != "rs") {
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        let code = source.split("#[cfg(test)]").next().unwrap();
        for call in code.split(".route(").skip(1) {
            let call = call.trim_start();
            let Some(rest) = call.strip_prefix('"') else {
                continue;
            };
            let route = &rest[..rest.find('"').unwrap()];
            routes.insert(route.replace("{*", "{"));
        }
    }
    routes
}

#[tokio::test]
async fn document_matches_the_router() {
    let server = Server::start_signed().await;
    let fingerprint = server
        .running
        .service
        .state
        .signing_public_key
        .as_ref()
        .unwrap()
        .fingerprint()
        .to_string();
    let (status, headers, document) = server.get("/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(document["openapi"], "3.1.0");
    let paths = document["paths"].as_object().unwrap();

    let documented: BTreeSet<String> = paths.keys().cloned().collect();
    let registered = registered_routes(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http"));
    assert_eq!(documented, registered, "documented vs registered routes");

    let mut answers = BTreeMap::new();
    for (path, item) in paths {
        let methods: BTreeSet<&str> = item
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for operation in item.as_object().unwrap().values() {
            let responses = operation["responses"].as_object().unwrap();
            assert!(!responses.is_empty(), "{path}: no responses");
            for parameter in operation["parameters"].as_array().unwrap() {
                if parameter["in"] == "path" {
                    let name = parameter["name"].as_str().unwrap();
                    assert!(path.contains(&format!("{{{name}}}")), "{path}: {name}");
                }
            }
        }
        let url = server.url(&concrete(path, &fingerprint));
        for method in ["get", "post", "put", "delete"] {
            let response = server
                .client
                .request(method.to_uppercase().parse().unwrap(), &url)
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let body: Value =
                serde_json::from_slice(&response.bytes().await.unwrap()).unwrap_or(Value::Null);
            if methods.contains(method) {
                assert_ne!(status, 405, "{method} {path}");
                assert_ne!(
                    (status, body.get("detail").and_then(Value::as_str)),
                    (404, Some("Not Found")),
                    "{method} {path} fell through to the fallback"
                );
            } else if method != "post" || path != "/api/v1/build/{request_hash}" {
                assert_eq!(status, 405, "{method} {path} is not documented");
            }
            answers.insert(format!("{method} {path}"), status);
        }
    }
    assert_eq!(answers["get /api/v1/stats"], 200);
}
