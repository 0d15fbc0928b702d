//! Browser clients from another origin: the firmware selector and luci-app-attendedsysupgrade
//! call the API from JavaScript, so preflights must pass and every answer must name the origin.

use reqwest::Method;
use reqwest::header::HeaderMap;

use crate::support::Server;

const SELECTOR: &str = "https://firmware-selector.openwrt.org";
const ROUTER_PAGE: &str = "http://192.168.1.1";

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn preflight(server: &Server, path: &str, method: &str, origin: &str) -> (u16, HeaderMap) {
    let response = no_redirects()
        .request(Method::OPTIONS, server.url(path))
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.headers().clone())
}

async fn send(server: &Server, method: Method, path: &str, origin: &str) -> (u16, HeaderMap) {
    let mut request = no_redirects()
        .request(method.clone(), server.url(path))
        .header("origin", origin)
        .header("content-type", "application/json");
    if method == Method::POST {
        request = request.body(r#"{"version":"24.10.5","target":"nope/nope","profile":"x"}"#);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.headers().clone())
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .map_or("", |value| value.to_str().unwrap())
}

#[tokio::test]
async fn preflights_pass_on_every_browser_path() {
    let server = Server::start(|config| config.workers = 0).await;
    let unknown_hash = "0".repeat(64);
    let paths = [
        ("/api/v1/build", "POST"),
        (&*format!("/api/v1/build/{unknown_hash}"), "GET"),
        ("/api/v1/overview", "GET"),
        ("/overview", "GET"),
        ("/json/v1/overview.json", "GET"),
        (
            "/json/v1/releases/24.10.5/targets/x86/64/generic.json",
            "GET",
        ),
        ("/store/whatever/file.bin", "GET"),
        ("/api/v1/stats", "GET"),
    ];
    for (path, method) in paths {
        let (status, headers) = preflight(&server, path, method, SELECTOR).await;
        assert!((200..300).contains(&status), "{path}: preflight {status}");
        assert_eq!(
            header(&headers, "access-control-allow-origin"),
            "*",
            "{path}"
        );
        assert!(
            header(&headers, "access-control-allow-methods").contains(method),
            "{path}: {headers:?}"
        );
        assert!(
            header(&headers, "access-control-allow-headers").contains("content-type"),
            "{path}: {headers:?}"
        );
        // The admin API's bearer token must never be sendable from a web page.
        assert!(
            !header(&headers, "access-control-allow-headers").contains("authorization"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn every_answer_names_the_origin_errors_and_redirects_included() {
    let server = Server::start(|config| config.workers = 0).await;
    let unknown_hash = "0".repeat(64);
    let cases = [
        (Method::GET, "/api/v1/overview".to_owned(), 301),
        (Method::GET, "/json/v1/overview.json".to_owned(), 200),
        (Method::GET, format!("/api/v1/build/{unknown_hash}"), 404),
        (Method::HEAD, format!("/api/v1/build/{unknown_hash}"), 404),
        (Method::POST, "/api/v1/build".to_owned(), 400),
        (Method::GET, "/store/nothing/here.bin".to_owned(), 404),
        (Method::GET, "/no/such/path".to_owned(), 404),
    ];
    for (method, path, expected) in cases {
        let (status, headers) = send(&server, method.clone(), &path, ROUTER_PAGE).await;
        assert_eq!(status, expected, "{method} {path}");
        assert_eq!(
            header(&headers, "access-control-allow-origin"),
            "*",
            "{method} {path}: {headers:?}"
        );
    }
}

#[tokio::test]
async fn a_configured_origin_list_admits_only_its_origins() {
    let server = Server::start(|config| {
        config.workers = 0;
        config.cors_allowed_origins = vec![SELECTOR.to_owned()];
    })
    .await;
    let (status, headers) = preflight(&server, "/api/v1/build", "POST", SELECTOR).await;
    assert!((200..300).contains(&status));
    assert_eq!(header(&headers, "access-control-allow-origin"), SELECTOR);
    let (_, headers) = send(&server, Method::GET, "/json/v1/overview.json", ROUTER_PAGE).await;
    assert_eq!(header(&headers, "access-control-allow-origin"), "");
}

#[tokio::test]
async fn an_empty_origin_list_sends_no_cors_headers() {
    let server = Server::start(|config| {
        config.workers = 0;
        config.cors_allowed_origins = Vec::new();
    })
    .await;
    let (_, headers) = send(&server, Method::GET, "/json/v1/overview.json", SELECTOR).await;
    assert_eq!(header(&headers, "access-control-allow-origin"), "");
}
