//! HTTPS through rustls on ring, trusting only the CA bundle file given (`--ca-file`).
//!
//! The certificates in `tests/tls/` come from `tests/tls/make-certs.sh`.

#![expect(clippy::unwrap_used, reason = "test helpers may unwrap")]

mod util;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::thread;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use util::{Router, assert_exit, stderr, stdout};

const CERT: &[u8] = include_bytes!("tls/server.pem");
const KEY: &[u8] = include_bytes!("tls/server.key");

/// An HTTPS server answering every request with the overview fixture.
fn https_server() -> String {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(CERT)
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_slice(KEY).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let config = config.clone();
            thread::spawn(move || {
                let connection = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(connection, stream);
                let mut reader = BufReader::new(&mut tls);
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                    if line == "\r\n" {
                        break;
                    }
                    line.clear();
                }
                let body = include_bytes!("../../proto/testdata/asu/overview.json");
                let head = format!(
                    "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                let _ = tls.write_all(head.as_bytes());
                let _ = tls.write_all(body);
                let _ = tls.flush();
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    url
}

fn tls_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tls")
}

#[test]
fn talks_https_with_the_ca_bundle_from_a_file() {
    let url = https_server();
    let router = Router::new(&url);
    let ca = tls_dir().join("ca.pem");
    let output = router.run(&["versions", "--ca-file", ca.to_str().unwrap()]);
    assert_exit(&output, 0);
    assert!(stdout(&output).contains("24.10.6"), "{}", stdout(&output));
}

#[test]
fn refuses_a_server_whose_certificate_the_bundle_does_not_trust() {
    let url = https_server();
    let router = Router::new(&url);
    let other = tls_dir().join("other-ca.pem");
    let output = router.run(&["versions", "--ca-file", other.to_str().unwrap()]);
    assert_exit(&output, 5);
    assert!(
        stderr(&output).contains("cannot reach `https://127.0.0.1"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_missing_ca_bundle_names_the_file_and_the_fix() {
    let url = https_server();
    let router = Router::new(&url);
    let output = router.run(&["versions", "--ca-file", "/nonexistent/ca.pem"]);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("cannot read the CA bundle `/nonexistent/ca.pem`"),
        "{}",
        stderr(&output)
    );
}
