//! Serving the fixture tree over HTTP: GET, HEAD, ranges, 404, and the fault injection the
//! server tests use.

#![expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test helpers fail the test by panicking"
)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use attendant_e2e::mirror::{DEFAULT_SEED, shared_fixture};
use attendant_e2e::mirror_server::{FaultAction, MirrorServer};

/// Sends one request and returns (status, headers, body).
fn request(server: &MirrorServer, method: &str, path: &str, extra: &str) -> (u16, String, Vec<u8>) {
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: mirror\r\n{extra}\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(response[..split].to_vec()).unwrap();
    let body = response[split + 4..].to_vec();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head, body)
}

fn server() -> (MirrorServer, std::path::PathBuf) {
    let mirror = shared_fixture(DEFAULT_SEED).unwrap();
    (MirrorServer::start(&mirror.root).unwrap(), mirror.root)
}

#[test]
fn get_head_and_missing_files() {
    let (server, root) = server();
    let (status, head, body) = request(&server, "GET", "/.versions.json", "");
    assert_eq!(status, 200);
    assert!(head.contains("Content-Type: application/json"), "{head}");
    assert_eq!(body, std::fs::read(root.join(".versions.json")).unwrap());
    let (status, head, body) = request(
        &server,
        "HEAD",
        "/releases/24.10.4/targets/x86/64/sha256sums",
        "",
    );
    assert_eq!(status, 200);
    let length = std::fs::metadata(root.join("releases/24.10.4/targets/x86/64/sha256sums"))
        .unwrap()
        .len();
    assert!(
        head.contains(&format!("Content-Length: {length}\r\n")),
        "{head}"
    );
    assert!(body.is_empty());
    assert_eq!(
        request(&server, "GET", "/releases/99.99.0/.targets.json", "").0,
        404
    );
    assert_eq!(request(&server, "GET", "/../../etc/passwd", "").0, 400);
    assert_eq!(request(&server, "POST", "/.versions.json", "").0, 405);
    let (status, _, listing) = request(&server, "GET", "/releases/", "");
    assert_eq!(status, 200);
    assert!(String::from_utf8(listing).unwrap().contains("24.10.4/"));
    assert_eq!(server.requests("/.versions.json"), 2);
}

#[test]
fn ranges_return_partial_content() {
    let (server, root) = server();
    let full = std::fs::read(root.join(".versions.json")).unwrap();
    let (status, head, body) = request(&server, "GET", "/.versions.json", "Range: bytes=5-\r\n");
    assert_eq!(status, 206);
    assert!(
        head.contains(&format!(
            "Content-Range: bytes 5-{}/{}",
            full.len() - 1,
            full.len()
        )),
        "{head}"
    );
    assert_eq!(body, full[5..]);
    let (status, _, body) = request(&server, "GET", "/.versions.json", "Range: bytes=0-3\r\n");
    assert_eq!((status, body.as_slice()), (206, &full[..4]));
    assert_eq!(
        request(
            &server,
            "GET",
            "/.versions.json",
            "Range: bytes=100000-\r\n"
        )
        .0,
        416
    );
}

#[test]
fn faults_change_status_cut_bodies_and_delay() {
    let (server, _root) = server();
    server.fail_with_status("/releases/24.10.4/", 503);
    assert_eq!(
        request(&server, "GET", "/releases/24.10.4/.targets.json", "").0,
        503
    );
    assert_eq!(
        request(&server, "GET", "/releases/24.10.5/.targets.json", "").0,
        200
    );
    server.clear_faults();
    assert_eq!(
        request(&server, "GET", "/releases/24.10.4/.targets.json", "").0,
        200
    );

    server.cut_after("/.versions.json", 10);
    let (status, head, body) = request(&server, "GET", "/.versions.json", "");
    assert_eq!(status, 200);
    assert!(
        !head.contains("Content-Length: 10\r\n"),
        "the promised length stays the full one"
    );
    assert_eq!(body.len(), 10);
    server.clear_faults();

    server.add_fault("/snapshots/", FaultAction::Status(500), Some(1));
    assert_eq!(
        request(&server, "GET", "/snapshots/.targets.json", "").0,
        500
    );
    assert_eq!(
        request(&server, "GET", "/snapshots/.targets.json", "").0,
        200,
        "a limited fault expires"
    );

    server.delay("/.versions.json", Duration::from_millis(300));
    let started = Instant::now();
    assert_eq!(request(&server, "GET", "/.versions.json", "").0, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(server.requests("/snapshots/.targets.json"), 2);
}
