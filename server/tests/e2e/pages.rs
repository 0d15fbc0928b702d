//! The HTML pages (`/`, `/stats`, `/store/<hash>/`) against real builds: parsed, checked for
//! content and escaping, and rendered by headless Chromium (which also writes the screenshots
//! in `server/docs/` when `ATTENDANT_UPDATE_SCREENSHOTS=1`).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::support::Server;

/// Elements that have no end tag.
const VOID: [&str; 4] = ["meta", "br", "hr", "img"];

/// Parses `html` strictly enough to catch what escaping mistakes produce: every tag is
/// well-formed with quoted attributes, every element is closed in order, no `<` or `>` stands in
/// text, and no `<script>` appears. Returns the text content (character references decoded).
fn parse_html(html: &str) -> String {
    let body = html
        .strip_prefix("<!DOCTYPE html>\n")
        .expect("starts with a doctype");
    let mut open: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut rest = body;
    while let Some(start) = rest.find('<') {
        let (before, tag) = rest.split_at(start);
        assert!(!before.contains('>'), "raw `>` in text: {before}");
        text.push_str(&decode(before));
        let end = tag.find('>').expect("unterminated tag");
        let inner = &tag[1..end];
        rest = &tag[end + 1..];
        if let Some(name) = inner.strip_prefix('/') {
            let expected = open.pop().unwrap_or_default();
            assert_eq!(name, expected, "mis-nested </{name}>");
            continue;
        }
        let self_closing = inner.ends_with('/');
        let inner = inner.trim_end_matches('/');
        let (name, attributes) = inner.split_once(' ').unwrap_or((inner, ""));
        assert!(
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric()),
            "tag name `{name}`"
        );
        assert_ne!(name, "script", "a script element");
        check_attributes(attributes);
        if !self_closing && !VOID.contains(&name) {
            open.push(name.to_owned());
        }
        if name == "style" || name == "title" {
            let close = format!("</{name}>");
            let end = rest.find(&close).expect("closed");
            text.push_str(&decode(&rest[..end]));
            rest = &rest[end..];
        }
    }
    assert!(!rest.contains('>'), "raw `>` in text: {rest}");
    assert!(open.is_empty(), "unclosed elements: {open:?}");
    text
}

fn check_attributes(mut attributes: &str) {
    loop {
        attributes = attributes.trim_start();
        if attributes.is_empty() {
            return;
        }
        let (name, value) = attributes.split_once("=\"").expect("quoted attribute");
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b':'),
            "attribute name `{name}`"
        );
        let end = value.find('"').expect("closing quote");
        assert!(!value[..end].contains('<'), "`<` in an attribute");
        attributes = &value[end + 1..];
    }
}

fn decode(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

async fn html(server: &Server, path: &str) -> (u16, String) {
    let response = server
        .client
        .get(server.url(path))
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    if status == 200 {
        assert_eq!(
            response.headers()["content-type"],
            "text/html; charset=utf-8",
            "{path}"
        );
    }
    (status, response.text().await.unwrap())
}

/// A server with one signed build (requested by a client with a hostile name), downloaded once,
/// and one failure.
async fn server_with_history() -> (Server, String, Value) {
    let server = Server::start_signed().await;
    let (status, done) = server
        .build(
            &json!({"version": "24.10.5", "target": "x86/64", "profile": "generic",
                        "packages": ["tmux"], "client": "<script>alert(1)</script>"}),
        )
        .await;
    assert_eq!(status, 200, "{done}");
    let (status, failed) = server
        .build(
            &json!({"version": "24.10.5", "target": "x86/64", "profile": "generic",
                        "packages_versions": {"tmux": "0.0"}}),
        )
        .await;
    assert_eq!(status, 500, "{failed}");
    let hash = done["request_hash"].as_str().unwrap().to_owned();
    let image = done["images"][0]["name"].as_str().unwrap();
    let (status, _, _) = server.get(&format!("/store/{hash}/{image}")).await;
    assert_eq!(status, 200);
    (server, hash, done)
}

/// Waits for the background statistics writes to land.
async fn settle(server: &Server) {
    for _ in 0..200 {
        let (_, _, clients) = server.get("/api/v1/top-clients").await;
        if clients["clients"].as_array().is_some_and(|c| c.len() == 2) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("statistics never arrived");
}

#[tokio::test]
async fn pages_show_status_statistics_and_builds_escaped() {
    let (server, hash, done) = server_with_history().await;
    settle(&server).await;

    let (status, page) = html(&server, "/").await;
    assert_eq!(status, 200);
    let text = parse_html(&page);
    assert!(text.contains(env!("CARGO_PKG_VERSION")), "{text}");
    assert!(text.contains("Jobs waiting0"), "{text}");
    assert!(
        text.contains("Build workers in this process1 running (1 configured)"),
        "{text}"
    );
    assert!(text.contains("Images signedyes"), "{text}");
    assert!(text.contains("24.10.5:x86/64:generic"), "{text}");
    assert!(
        text.contains("tmux version not as requested: 0.0"),
        "{text}"
    );
    assert!(!text.contains("key-build"), "the key's path is not shown");

    let (status, page) = html(&server, "/stats").await;
    assert_eq!(status, 200);
    let text = parse_html(&page);
    assert!(page.matches("<svg ").count() >= 6, "{page}");
    assert!(text.contains("Builds per day"));
    assert!(
        text.contains("<script>alert(1)</script>"),
        "the client is shown"
    );
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(text.contains("x86/64"));
    let image = done["images"][0]["name"].as_str().unwrap();
    assert!(text.contains(&format!("{image}{}1", &hash[..12])), "{text}");
    assert!(page.contains(&format!("href=\"/store/{hash}/\"")), "{page}");
    let (status, page) = html(&server, "/stats?branch=24.10").await;
    assert_eq!(status, 200);
    assert!(parse_html(&page).contains("per version of 24.10"));

    let (status, page) = html(&server, &format!("/store/{hash}/")).await;
    assert_eq!(status, 200);
    let text = parse_html(&page);
    for image in done["images"].as_array().unwrap() {
        let name = image["name"].as_str().unwrap();
        assert!(page.contains(&format!("href=\"/store/{hash}/{name}\"")));
        assert!(text.contains(image["sha256"].as_str().unwrap()));
        assert!(page.contains(&format!("href=\"/store/{hash}/{name}.sig\"")));
    }
    for (package, version) in done["manifest"].as_object().unwrap() {
        assert!(
            text.contains(&format!("{package}{}", version.as_str().unwrap())),
            "manifest entry {package}"
        );
    }
    assert!(text.contains(done["version_code"].as_str().unwrap()));
    let archive_sha = done["imagebuilder"]["sha256"].as_str().unwrap();
    assert_eq!(archive_sha.len(), 64);
    assert!(text.contains(archive_sha));
    assert!(text.contains("curl -H 'Content-Type: application/json' -d '{"));
    assert!(text.contains(&format!("{}/api/v1/build", server.base)));
    assert!(text.contains("make image"));
    // The request, hostile client name included, is in the command line, escaped.
    assert!(
        text.contains("\"client\":\"<script>alert(1)</script>\""),
        "{text}"
    );

    // Everyone else gets what `/store/<hash>/` always answered.
    let (status, _, body) = server.get(&format!("/store/{hash}/")).await;
    assert_eq!(status, 404);
    assert_eq!(body, json!({"detail": "Not found"}));
    let (status, _) = html(&server, &format!("/store/{}/", "0".repeat(64))).await;
    assert_eq!(status, 404);
}

fn chromium() -> PathBuf {
    let path =
        PathBuf::from(std::env::var_os("CHROMIUM").unwrap_or_else(|| "/usr/bin/chromium".into()));
    assert!(
        path.exists(),
        "missing {}: apt-get install -y chromium (or set CHROMIUM)",
        path.display()
    );
    path
}

/// Runs headless Chromium on `url` with `args`; returns stdout, failing on a non-zero exit.
fn run_chromium(url: &str, args: &[&str], profile: &Path) -> String {
    let output = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--window-size=1100,1500",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "chromium failed on {url}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_render_in_chromium() {
    let (server, hash, _) = server_with_history().await;
    settle(&server).await;
    let update = std::env::var_os("ATTENDANT_UPDATE_SCREENSHOTS").is_some();
    let shots = if update {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs")
    } else {
        server.dir.path().join("screenshots")
    };
    std::fs::create_dir_all(&shots).unwrap();
    let profile = server.dir.path().join("chromium-profile");
    let build_path = format!("/store/{hash}/");
    for (path, file, expected) in [
        ("/", "status-page.png", "Recent failures"),
        ("/stats", "stats-page.png", "Builds per day"),
        (build_path.as_str(), "build-page.png", "Manifest"),
    ] {
        let url = server.url(path);
        let dom = tokio::task::block_in_place(|| run_chromium(&url, &["--dump-dom"], &profile));
        assert!(dom.contains(expected), "{path} rendered as: {dom}");
        assert!(!dom.contains("<script"), "{path}");
        let target = shots.join(file);
        let screenshot = format!("--screenshot={}", target.display());
        tokio::task::block_in_place(|| run_chromium(&url, &[&screenshot], &profile));
        let png = std::fs::read(&target).unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{file} is a PNG");
        assert!(png.len() > 10_000, "{file} is more than a blank page");
    }
}
