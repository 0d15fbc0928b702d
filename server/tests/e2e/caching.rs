//! Stored answers over real HTTP: a finished build and `overview.json` carry `ETag` and
//! `Last-Modified`, answer a client that holds them with `304`, and come gzip- or
//! Brotli-compressed to a client that asks, byte for byte the identity body once decompressed.
//! A client that sends no `Accept-Encoding` (as ASU's clients do) gets what it always got.

use std::io::Read;

use reqwest::header::HeaderMap;
use serde_json::json;

use crate::support::Server;

/// `GET path` with `headers`: status, response headers, raw body bytes.
async fn fetch(server: &Server, path: &str, headers: &[(&str, &str)]) -> (u16, HeaderMap, Vec<u8>) {
    let mut request = server.client.get(server.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.bytes().await.unwrap().to_vec())
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|value| value.to_str().unwrap())
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn unbrotli(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(bytes, 4096)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// Every way of fetching `path` that a stored document answers: identity, gzip, br, and the
/// three conditional forms; returns the identity body.
async fn check_document(server: &Server, path: &str) -> Vec<u8> {
    let (status, plain_headers, plain) = fetch(server, path, &[]).await;
    assert_eq!(status, 200, "{path}");
    assert_eq!(header(&plain_headers, "content-encoding"), None, "{path}");
    assert_eq!(
        header(&plain_headers, "content-type"),
        Some("application/json")
    );
    let etag = header(&plain_headers, "etag").expect("an ETag").to_owned();
    let last_modified = header(&plain_headers, "last-modified")
        .expect("a Last-Modified")
        .to_owned();
    assert_eq!(header(&plain_headers, "cache-control"), Some("no-cache"));
    assert!(plain.len() > 512, "{path} is long enough to be compressed");

    let (status, headers, gzip) = fetch(server, path, &[("accept-encoding", "gzip")]).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-encoding"), Some("gzip"), "{path}");
    assert_eq!(header(&headers, "vary"), Some("accept-encoding"), "{path}");
    assert!(gzip.len() < plain.len());
    assert_eq!(gunzip(&gzip), plain, "{path}");
    let gzip_etag = header(&headers, "etag").unwrap().to_owned();
    assert_ne!(gzip_etag, etag, "each representation has its own tag");

    let (status, headers, br) =
        fetch(server, path, &[("accept-encoding", "gzip, deflate, br")]).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-encoding"), Some("br"), "{path}");
    assert_eq!(unbrotli(&br), plain, "{path}");

    for (name, value) in [
        ("if-none-match", etag.as_str()),
        ("if-none-match", gzip_etag.as_str()),
        ("if-modified-since", last_modified.as_str()),
    ] {
        let (status, headers, body) = fetch(server, path, &[(name, value)]).await;
        assert_eq!(status, 304, "{path} {name}: {value}");
        assert!(body.is_empty());
        assert_eq!(header(&headers, "etag"), Some(etag.as_str()));
    }
    let (status, _, body) = fetch(server, path, &[("if-none-match", "\"another\"")]).await;
    assert_eq!((status, body), (200, plain.clone()), "{path}");
    plain
}

#[tokio::test]
async fn stored_answers_are_compressed_and_conditional() {
    let server = Server::start(|_| {}).await;
    let request = json!({
        "version": "24.10.5", "target": "x86/64", "profile": "generic", "packages": ["tmux"]
    });
    let (status, done) = server.build(&request).await;
    assert_eq!(status, 200, "{done}");
    let hash = done["request_hash"].as_str().unwrap().to_owned();

    let body = check_document(&server, &format!("/api/v1/build/{hash}")).await;
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
        done
    );
    let overview = check_document(&server, "/json/v1/overview.json").await;
    let overview: serde_json::Value = serde_json::from_slice(&overview).unwrap();
    assert!(overview["branches"]["24.10"].is_object(), "{overview}");

    // A cache-hit POST is never conditional: it gets the whole answer even with a matching tag.
    let (_, headers, _) = fetch(&server, &format!("/api/v1/build/{hash}"), &[]).await;
    let etag = header(&headers, "etag").unwrap().to_owned();
    let response = server
        .client
        .post(server.url("/api/v1/build"))
        .header("content-type", "application/json")
        .header("if-none-match", &etag)
        .body(request.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: serde_json::Value =
        serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(answer, done);

    // Answers made per request are compressed as they go out.
    let index = "/json/v1/releases/24.10.5/targets/x86/64/index.json";
    let (status, _, plain) = fetch(&server, index, &[]).await;
    assert_eq!(status, 200);
    let (status, headers, gzip) = fetch(&server, index, &[("accept-encoding", "gzip")]).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-encoding"), Some("gzip"));
    assert_eq!(gunzip(&gzip), plain);
}
